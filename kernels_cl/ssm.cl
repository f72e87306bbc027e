//@include seq_select.clh
//@include ssm_step.clh
/* Diagonal state-space models (S4D / DSS): the convolution kernel they induce, the long causal
 * convolution by FFT or directly, and the recurrent step. Host side: lib/ops/ssm.c (plans) and
 * lib/ops/ssm_state.c (the step); the sizes below come from lib/sched/sched_ssm.c as -D options.
 *
 * Per channel h and state n, with z = dt_h * A[h, n] and w = exp(z):
 *   K[h, l] = Re(sum_n Ct[h, n] * w^l)
 * Parameters arrive as float4 per (h, n): w (re, im) and Ct (re, im); the phase data for exact
 * powers as float4 (Re z split in two floats, Im z / 2pi split in two floats). */

#ifndef SSM_CHUNK
#define SSM_CHUNK 32 /* kernel positions per work-item: one accurate power, then SSM_CHUNK - 1 products */
#endif
#ifndef SSM_DIRECT_ROWS
#define SSM_DIRECT_ROWS 8 /* outputs per work-item of the direct convolution */
#endif
#ifndef SSM_DIRECT_BLOCK
#define SSM_DIRECT_BLOCK 4096 /* the direct sum's inner loop length (llvmpipe stops loops at 65535) */
#endif
/* Element types of the plan's u (input) and y (output) views (-DU_DT / -DY_DT from
 * clattn__plan_set_dtypes; absent: float32). Kernels K, the skip term D, the FFT scratch and the
 * decoding state stay float32. */
#ifndef U_DT
#define U_DT 0
#endif
#ifndef Y_DT
#define Y_DT 0
#endif

inline float2 ssm_cmul(float2 a, float2 b)
{
    return (float2)(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

/* exp(z * l) for an integer l < 2^24, accurate for any l: the products l * Re z and l * Im z / 2pi
 * are carried in two floats (the rounding error of the leading product recovered by fma), the
 * whole turns are dropped before the angle reaches sinpi/cospi, so the phase error stays at the
 * float rounding of a value in [-0.5, 0.5] turns however large l * Im z grows. */
inline float2 ssm_pow(float4 ph, float l)
{
    float re_hi = l * ph.x;
    float re_lo = fma(l, ph.x, -re_hi) + l * ph.y;
    float mag = exp(re_hi) * (1.0f + re_lo);
    float t_hi = l * ph.z;
    float t_err = fma(l, ph.z, -t_hi);
    float t = (t_hi - rint(t_hi)) + (t_err + l * ph.w); /* t_hi - rint(t_hi) is exact */
    t -= rint(t);
    float c, s;
    s = sinpi(2.0f * t);
    c = cospi(2.0f * t);
    return (float2)(mag * c, mag * s);
}

/* K[h, l] for l < rowlen: the kernel for l < L, zeros after (the FFT path's padding), written at
 * k[k_off + h * k_row + l * k_pos] (any strided view). One work-item per (chunk of SSM_CHUNK
 * positions, h). wct: [H * N] float4 (w, Ct); ph: [H * N]. */
__kernel void clattn_ssm_kernel_gen(__global float *k, ulong k_off, ulong k_row, ulong k_pos,
                                    uint L, uint rowlen, uint N, __global const float4 *wct,
                                    __global const float4 *ph)
{
    uint c = get_global_id(0), h = get_global_id(1);
    uint l0 = c * SSM_CHUNK;
    if (l0 >= rowlen)
        return;
    float acc[SSM_CHUNK];
    for (int j = 0; j < SSM_CHUNK; j++)
        acc[j] = 0.0f;
    if (l0 < L) {
        for (uint n = 0; n < N; n++) {
            float4 p = wct[(ulong)h * N + n];
            float2 w = p.xy, ct = p.zw;
            float2 x = ssm_cmul(ct, ssm_pow(ph[(ulong)h * N + n], (float)l0));
            for (int j = 0; j < SSM_CHUNK; j++) {
                acc[j] += x.x;
                x = ssm_cmul(x, w);
            }
        }
    }
    __global float *row = k + k_off + (ulong)h * k_row;
    for (int j = 0; j < SSM_CHUNK; j++) {
        uint l = l0 + j;
        if (l < rowlen)
            row[l * k_pos] = l < L ? acc[j] : 0.0f;
    }
}

/* Rows of the FFT input: dst[(b * H + h) * M + m] = src(b, h, m, 0) for m < L, else 0. The source
 * is any strided view ([B, H, L, 1]); B = 1 for a kernel given as a tensor. clattn_ssm_pack reads
 * u in its type (U_DT) into the float32 rows; clattn_ssm_pack_k reads a float32 kernel. */
#define SSM_PACK(name, DT)                                                                        \
    __kernel void name(__global const CLATTN_STYPE(DT) *src, ulong src_off, ulong4 src_st,        \
                       __global float *dst, uint M, uint L, uint H)                              \
    {                                                                                             \
        uint m = get_global_id(0), bh = get_global_id(1);                                         \
        uint b = bh / H, h = bh % H;                                                              \
        dst[(ulong)bh * M + m] =                                                                  \
            m < L ? CLATTN_LOAD(DT, src, clattn_at(src_off, src_st, b, h, m, 0)) : 0.0f;          \
    }
SSM_PACK(clattn_ssm_pack, U_DT)
SSM_PACK(clattn_ssm_pack_k, 0)

/* Pointwise product of spectra: U[bh, k] *= Kf[bh % H, k], rows of `bins` complex values. */
__kernel void clattn_ssm_cmul(__global float2 *u, __global const float2 *kf, uint bins, uint H)
{
    uint k = get_global_id(0), bh = get_global_id(1);
    ulong i = (ulong)bh * bins + k;
    u[i] = ssm_cmul(u[i], kf[(ulong)(bh % H) * bins + k]);
}

/* y(b, h, l) = conv[(b * H + h) * M + l] + D[h] * u(b, h, l) (D skipped when has_d is 0), y
 * written in its type (Y_DT), u read in its (U_DT). */
__kernel void clattn_ssm_finish(__global const float *conv, uint M, uint H,
                                __global const CLATTN_STYPE(U_DT) *u, ulong u_off, ulong4 u_st,
                                __global const float *d, ulong d_off, ulong4 d_st, int has_d,
                                __global CLATTN_STYPE(Y_DT) *y, ulong y_off, ulong4 y_st)
{
    uint l = get_global_id(0), bh = get_global_id(1);
    uint b = bh / H, h = bh % H;
    float v = conv[(ulong)bh * M + l];
    if (has_d)
        v += d[clattn_at(d_off, d_st, 0, h, 0, 0)] *
             CLATTN_LOAD(U_DT, u, clattn_at(u_off, u_st, b, h, l, 0));
    CLATTN_STORE(Y_DT, v, y, clattn_at(y_off, y_st, b, h, l, 0));
}

/* The direct causal convolution, O(L) per output: y(b, h, l) = sum_{j <= l} K(h, j) u(b, h, l - j)
 * + D[h] u(b, h, l). One work-item owns SSM_DIRECT_ROWS consecutive outputs l0.. and keeps the
 * inputs they need for the current lag j in a sliding window (win[i] = u(l0 + i - j), zero before
 * the sequence starts), so each K(h, j) and each u value is loaded once per work-item. The lag
 * loop is split in blocks of SSM_DIRECT_BLOCK iterations (llvmpipe stops loops at 65535). */
__kernel void clattn_ssm_direct(__global const CLATTN_STYPE(U_DT) *u, ulong u_off, ulong4 u_st,
                                __global const float *k, ulong k_off, ulong4 k_st,
                                __global const float *d, ulong d_off, ulong4 d_st, int has_d,
                                __global CLATTN_STYPE(Y_DT) *y, ulong y_off, ulong4 y_st, uint H,
                                uint L)
{
    uint l0 = get_global_id(0) * SSM_DIRECT_ROWS, bh = get_global_id(1);
    if (l0 >= L)
        return;
    uint b = bh / H, h = bh % H;
    ulong ub = clattn_at(u_off, u_st, b, h, 0, 0), kb = clattn_at(k_off, k_st, 0, h, 0, 0);
    ulong us = u_st.s2, ks = k_st.s2;
    float acc[SSM_DIRECT_ROWS], win[SSM_DIRECT_ROWS];
    for (int i = 0; i < SSM_DIRECT_ROWS; i++) {
        acc[i] = 0.0f;
        win[i] = l0 + i < L ? CLATTN_LOAD(U_DT, u, ub + (l0 + i) * us) : 0.0f;
    }
    uint jend = min(l0 + SSM_DIRECT_ROWS, L); /* lags beyond reach no output of this item */
    for (uint j0 = 0; j0 < jend; j0 += SSM_DIRECT_BLOCK) {
        uint j1 = min(jend, j0 + SSM_DIRECT_BLOCK);
        for (uint j = j0; j < j1; j++) {
            float kj = k[kb + j * ks];
            for (int i = 0; i < SSM_DIRECT_ROWS; i++)
                acc[i] = fma(kj, win[i], acc[i]);
            for (int i = SSM_DIRECT_ROWS - 1; i > 0; i--)
                win[i] = win[i - 1];
            win[0] = j < l0 ? CLATTN_LOAD(U_DT, u, ub + (l0 - j - 1) * us) : 0.0f;
        }
    }
    for (int i = 0; i < SSM_DIRECT_ROWS; i++) {
        uint l = l0 + i;
        if (l >= L)
            break;
        float v = acc[i];
        if (has_d)
            v += d[clattn_at(d_off, d_st, 0, h, 0, 0)] * CLATTN_LOAD(U_DT, u, ub + l * us);
        CLATTN_STORE(Y_DT, v, y, clattn_at(y_off, y_st, b, h, l, 0));
    }
}

/* One recurrent step per (b, h): x[n] = w[n] x[n] + u, y = Re(sum_n Ct[n] x[n]) + D u. The state
 * x is [B * H * N] complex as float pairs; d holds D per channel (has_d 0: no skip term); u and y
 * are of element types u_dt and y_dt. Scalar arithmetic (no float2 temporaries): oclgrind's
 * --uninitialized check flags values built by vector inserts. */
__kernel void clattn_ssm_step(SSM_STEP_PARAMS(wct))
{
    SSM_STEP_READ(wct);
    if (b >= nb)
        return;
    uint bh = b * H + h;
    float uv = ssm_load_dt(u, u_dt, clattn_at(u_off, u_st, b, h, 0, 0));
    __global float *xs = x + (ulong)bh * N * 2;
    float acc = 0.0f;
    for (uint n = 0; n < N; n++) {
        float4 p = wct[(ulong)h * N + n];
        float xr = xs[2 * n], xi = xs[2 * n + 1];
        float vr = p.x * xr - p.y * xi + uv;
        float vi = p.x * xi + p.y * xr;
        xs[2 * n] = vr;
        xs[2 * n + 1] = vi;
        acc += p.z * vr - p.w * vi;
    }
    if (has_d)
        acc += d[h] * uv;
    ssm_store_dt(y, y_dt, clattn_at(y_off, y_st, b, h, 0, 0), acc);
}
