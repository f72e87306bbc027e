/* The GSS layer's element-wise steps (Mehta et al. 2022, Figure 1); host side lib/ops/gss.c, which
 * runs the dense layers as CLBlast GEMMs and the DSS with the kernels of ssm.cl. The layer has no
 * tunables: every kernel here runs one work-item per element or per token row. */

/* Element types of the layer's x (input) and out (output): -DX_DT / -DOUT_DT (absent: float32).
 * Everything between them is float32 scratch. */
#ifndef X_DT
#define X_DT 0
#endif
#ifndef OUT_DT
#define OUT_DT 0
#endif

/* Layer norm of one token row per work-item: xn = (x - mean) / sqrt(var + eps) * gamma + beta.
 * x rows start at x_off + t * E; has_gamma / has_beta 0 mean 1 and 0. Two passes over the row
 * (mean, then centred variance) rather than E[x^2] - mean^2, which cancels for large means. */
__kernel void clattn_gss_layernorm(__global const CLATTN_STYPE(X_DT) *x, ulong x_off,
                                   __global float *xn, uint E, float eps,
                                   __global const float *gamma, int has_gamma,
                                   __global const float *beta, int has_beta)
{
    ulong t = get_global_id(0);
    ulong row = x_off + t * E; /* x read in its type (X_DT), xn written in float32 */
    float mean = 0.0f;
    for (uint e = 0; e < E; e++)
        mean += CLATTN_LOAD(X_DT, x, row + e);
    mean /= (float)E;
    float var = 0.0f;
    for (uint e = 0; e < E; e++) {
        float c = CLATTN_LOAD(X_DT, x, row + e) - mean;
        var = fma(c, c, var);
    }
    float inv = rsqrt(var / (float)E + eps);
    for (uint e = 0; e < E; e++) {
        float v = (CLATTN_LOAD(X_DT, x, row + e) - mean) * inv;
        if (has_gamma)
            v *= gamma[e];
        if (has_beta)
            v += beta[e];
        xn[t * E + e] = v;
    }
}

inline float gss_gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }

/* a[t, j] = gelu(a[t, j] + bias[j]) over rows of `width` (has_bias 0: no bias). */
__kernel void clattn_gss_bias_gelu(__global float *a, uint width, __global const float *bias,
                                   int has_bias)
{
    uint j = get_global_id(0);
    ulong i = get_global_id(1) * (ulong)width + j;
    float v = a[i];
    if (has_bias)
        v += bias[j];
    a[i] = gss_gelu(v);
}

/* The gate: v[t, j] *= uc[t, j] + bias[j]. */
__kernel void clattn_gss_gate(__global float *v, __global const float *uc, uint width,
                              __global const float *bias, int has_bias)
{
    uint j = get_global_id(0);
    ulong i = get_global_id(1) * (ulong)width + j;
    float g = uc[i];
    if (has_bias)
        g += bias[j];
    v[i] *= g;
}

/* out = x + bias + o (the residual, the last dense layer's bias and its GEMM's float32 result o),
 * x read in its type (X_DT) and out written in its type (OUT_DT). */
__kernel void clattn_gss_residual(__global const CLATTN_STYPE(X_DT) *x, ulong x_off,
                                  __global CLATTN_STYPE(OUT_DT) *out, ulong out_off, uint width,
                                  __global const float *bias, int has_bias,
                                  __global const float *o)
{
    uint j = get_global_id(0);
    ulong i = get_global_id(1) * (ulong)width + j;
    float v = CLATTN_LOAD(X_DT, x, x_off + i);
    if (has_bias)
        v += bias[j];
    v += o[i];
    CLATTN_STORE(OUT_DT, v, out, out_off + i);
}
