/* DEQ fixed-point solvers' vector kernels (lib/ops/deq.c) and the attention cell's residual +
 * LayerNorm (lib/ops/deq_cell.c). Vectors are flat float arrays with element offsets. */

/* Partial sums per dot product: work-item p of row r sums elements p, p + DEQ_PARTS, ... */
#ifndef DEQ_PARTS
#define DEQ_PARTS 64
#endif
/* LayerNorm's eps (the DEQ cell: no affine parameters). */
#ifndef DEQ_LN_EPS
#define DEQ_LN_EPS 1e-5f
#endif

/* Row r < nrows: partial sums of <a[r * stride + j], v[j]>; row nrows (launched only when the
 * caller wants it): partial sums of <u, u>. part[r * DEQ_PARTS + p]; the host adds them in
 * double. Global size {DEQ_PARTS, rows}. */
__kernel void clattn_deq_dots(__global const float *a, ulong a_off, ulong stride, uint nrows,
                              __global const float *v, ulong v_off, __global const float *u,
                              ulong u_off, ulong len, __global float *part)
{
    const ulong p = get_global_id(0);
    const uint r = (uint)get_global_id(1);
    __global const float *x = r < nrows ? a + a_off + r * stride : u + u_off;
    __global const float *y = r < nrows ? v + v_off : u + u_off;
    float acc = 0.0f;
    for (ulong j = p; j < len; j += DEQ_PARTS)
        acc = fma(x[j], y[j], acc);
    part[(ulong)r * DEQ_PARTS + p] = acc;
}

/* out = ca x + cb y + sum_{i < nh} ch[i] h_i + sum_{i < nk} ck[i] k_i, element by element, with
 * h_i at h[h_off + i * h_stride] (likewise k); terms whose coefficient is 0 are not read (they
 * may hold anything). out may be x, y or a row of h or k (each element is read, then written,
 * by one work-item). One work-item per element. */
__kernel void clattn_deq_comb(__global float *out, ulong o_off, float ca, __global const float *x,
                              ulong x_off, float cb, __global const float *y, ulong y_off,
                              __global const float *h, ulong h_off, ulong h_stride, uint nh,
                              float16 ch, __global const float *k, ulong k_off, ulong k_stride,
                              uint nk, float16 ck, ulong len)
{
    const ulong j = get_global_id(0);
    if (j >= len)
        return;
    float c1[16], c2[16];
    vstore16(ch, 0, c1);
    vstore16(ck, 0, c2);
    float acc = 0.0f;
    if (ca != 0.0f)
        acc = ca * x[x_off + j];
    if (cb != 0.0f)
        acc = fma(cb, y[y_off + j], acc);
    for (uint i = 0; i < nh; i++)
        if (c1[i] != 0.0f)
            acc = fma(c1[i], h[h_off + i * h_stride + j], acc);
    for (uint i = 0; i < nk; i++)
        if (c2[i] != 0.0f)
            acc = fma(c2[i], k[k_off + i * k_stride + j], acc);
    out[o_off + j] = acc;
}

/* The DEQ cell's last step: out[r, :] = LayerNorm(z[r, :] + a[r, :] + x[r, :]) over d columns,
 * no affine parameters, biased variance. One work-item per row. */
__kernel void clattn_deq_add_ln(__global float *out, ulong o_off, __global const float *z,
                                ulong z_off, __global const float *a, __global const float *x,
                                ulong x_off, uint rows, uint d)
{
    const uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    const ulong base = (ulong)r * d;
    float mean = 0.0f;
    for (uint c = 0; c < d; c++)
        mean += z[z_off + base + c] + a[base + c] + x[x_off + base + c];
    mean /= (float)d;
    float var = 0.0f;
    for (uint c = 0; c < d; c++) {
        float t = z[z_off + base + c] + a[base + c] + x[x_off + base + c] - mean;
        var = fma(t, t, var);
    }
    const float inv = rsqrt(var / (float)d + DEQ_LN_EPS);
    for (uint c = 0; c < d; c++)
        out[o_off + base + c] =
            (z[z_off + base + c] + a[base + c] + x[x_off + base + c] - mean) * inv;
}
