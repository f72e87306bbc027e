/* Feature maps of the kernelized attention family (a building block: linear attention and RPE
 * attention both run it; host side lib/blocks/features.c).
 *
 * Output: f [BH][N][MP] contiguous, MP = M rounded up to 16 (the padding features are 0), and
 * optionally each row's log-scale l [BH][N]: the true features are f * exp(l) (l = 0 except for
 * FAVOR+, whose rows are divided by their largest feature). */

/* The element type of the input x (clattn_dtype; -DX_DT=1 or 2 from the host for half inputs,
 * one kernel per type a plan reads). Features, log-scales and W stay float32. */
#ifndef X_DT
#define X_DT 0
#endif

/* Feature maps, numbered as the public enum clattn_linear_feature_map (a kernel argument). */
#define FEATURES_ELU 0
#define FEATURES_RELU 1

/* Element-wise maps: f[bh][i][t] = phi(x_it) (0 for the padding t >= D), and l = 0.
 * One float16 block of a row per work-item: exp on explicit vectors is vectorised, a scalar exp
 * per work-item is not (PoCL calls it lane by lane). elu(x) + 1 is x + 1 above 0 and exp(x)
 * below, without the cancellation of exp(x) - 1 + 1; exp(min(x, 0)) is common.clh's
 * clattn_exp2_neg16 of x log2(e) (a NaN x takes the x + 1 side). Global size (MP/16, N, BH). */
__kernel void clattn_features_map(__global const CLATTN_STYPE(X_DT) *x, ulong x_off, ulong4 x_st, uint heads,
                                  uint d, int fmap, __global float *f, int want_l,
                                  __global float *l)
{
    uint tb = get_global_id(0), i = get_global_id(1), bh = get_global_id(2);
    uint mp = get_global_size(0) * 16, n = get_global_size(1), b = bh / heads, h = bh % heads;
    ulong row = (ulong)bh * n + i;
    float xs[16];
    for (uint u = 0; u < 16; u++) {
        uint t = tb * 16 + u;
        xs[u] = t < d ? CLATTN_LOAD(X_DT, x, clattn_at(x_off, x_st, b, h, i, t)) : 0.0f;
    }
    float16 xv = vload16(0, xs), r;
    if (fmap == FEATURES_ELU)
        r = select(xv + CLATTN_SPLAT16(1.0f),
                   clattn_exp2_neg16((xv < CLATTN_SPLAT16(0.0f) ? xv : CLATTN_SPLAT16(0.0f)) *
                                     CLATTN_SPLAT16(CLATTN_LOG2E)),
                   isless(xv, CLATTN_SPLAT16(0.0f)));
    else if (fmap == FEATURES_RELU)
        r = fmax(xv, CLATTN_SPLAT16(0.0f));
    else
        r = xv;
    vstore16(r, 0, xs);
    for (uint u = 0; u < 16; u++) /* the padding must be 0 whatever phi(0) is */
        if (tb * 16 + u >= d)
            xs[u] = 0.0f;
    vstore16(vload16(0, xs), 0, f + row * mp + tb * 16);
    if (want_l && tb == 0)
        l[row] = 0.0f;
}

/* FAVOR+ exponents: u[bh][i][r] = w_r . x_i' - |x_i'|^2 / 2 with x' = x * xs, from wt = W^T
 * [D][M]; -inf for the padding r >= M. Global size (MP, N, BH). */
__kernel void clattn_features_favor_proj(__global const CLATTN_STYPE(X_DT) *x, ulong x_off,
                                         ulong4 x_st,
                                         uint heads, uint d, uint m, __global const float *wt,
                                         float xs, __global float *f)
{
    uint r = get_global_id(0), i = get_global_id(1), bh = get_global_id(2);
    uint mp = get_global_size(0), n = get_global_size(1), b = bh / heads, h = bh % heads;
    float u = 0.0f, hn = 0.0f;
    uint rr = min(r, m - 1);
    for (uint t = 0; t < d; t++) {
        float xv = CLATTN_LOAD(X_DT, x, clattn_at(x_off, x_st, b, h, i, t)) * xs;
        hn += xv * xv;
        u += wt[(ulong)t * m + rr] * xv;
    }
    f[((ulong)bh * n + i) * mp + r] = r < m ? u - 0.5f * hn : -INFINITY;
}

/* FAVOR+ features from the exponents, one row per work-item (float16 steps; MP is a multiple of
 * 16): f = exp(u - max u) * fs, and the row's log-scale max u into l when want_l. Global size
 * (N, BH). */
__kernel void clattn_features_favor_exp(__global float *f, uint mp, float fs, int want_l,
                                        __global float *l)
{
    uint i = get_global_id(0), bh = get_global_id(1), n = get_global_size(0);
    ulong row = (ulong)bh * n + i;
    __global float *fr = f + row * mp;
    float16 mx16 = CLATTN_SPLAT16(-INFINITY);
    for (uint t = 0; t < mp; t += 16)
        mx16 = fmax(mx16, vload16(0, fr + t));
    float mx = clattn_hmax16(mx16);
    for (uint t = 0; t < mp; t += 16)
        vstore16(exp(vload16(0, fr + t) - CLATTN_SPLAT16(mx)) * CLATTN_SPLAT16(fs), 0, fr + t);
    if (want_l)
        l[row] = mx;
}

/* Per (b, h): lmax = max_j l_j. Global size (BH). */
__kernel void clattn_features_head_max(__global const float *l, uint n, __global float *lmax)
{
    uint bh = get_global_id(0);
    float mx = -INFINITY;
    for (uint j = 0; j < n; j++)
        mx = fmax(mx, l[(ulong)bh * n + j]);
    lmax[bh] = mx;
}

/* f_j *= exp(l_j - lmax): every row of a head on its head's scale. Global size (MP, N, BH). */
__kernel void clattn_features_head_rescale(__global float *f, __global const float *l,
                                           __global const float *lmax)
{
    uint t = get_global_id(0), j = get_global_id(1), bh = get_global_id(2);
    uint mp = get_global_size(0), n = get_global_size(1);
    ulong row = (ulong)bh * n + j;
    f[row * mp + t] *= exp(l[row] - lmax[bh]);
}
