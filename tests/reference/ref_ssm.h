/* ref_ssm.h - plain-C double-precision references for diagonal state-space models (S4D / DSS)
 * and the GSS layer. Written for clarity, not speed: naive loops, double (complex) arithmetic.
 * Complex arrays are float pairs (re, im). */
#ifndef CLATTN_TESTS_REF_SSM_H
#define CLATTN_TESTS_REF_SSM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* K[h][l] = Re(sum_n Ct[h][n] exp(dt_h A[h][n] l)), dt_h = exp(log_dt[h]), for l < L.
 * A, Ct: [H][N][2]; log_dt: [H]; K: [H][L]. */
void ref_ssm_kernel(const float *A, const float *Ct, const float *log_dt, size_t H, size_t N,
                    size_t L, double *K);

/* y[b][h][l] = sum_{j <= l} K[h][j] u[b][h][l - j] + D[h] u[b][h][l] (D may be NULL: 0).
 * u, y: [B][H][L]; K: [H][L]. */
void ref_ssm_conv(const float *u, const double *K, const float *D, size_t B, size_t H, size_t L,
                  float *y);

/* The whole SSM: kernel then convolution (y as ref_ssm_conv). */
void ref_ssm_forward(const float *u, const float *A, const float *Ct, const float *log_dt,
                     const float *D, size_t B, size_t H, size_t N, size_t L, float *y);

/* The recurrence over l = 0..L-1 from a zero state: x = exp(dt A) x + u_l,
 * y_l = Re(sum_n Ct x) + D u_l. Same layouts as ref_ssm_forward. */
void ref_ssm_recurrence(const float *u, const float *A, const float *Ct, const float *log_dt,
                        const float *D, size_t B, size_t H, size_t N, size_t L, float *y);

/* S4D zero-order hold: Ct = f C B (exp(dt A) - 1) / A, f = 2 with conj_pairs else 1; B NULL
 * means 1. */
void ref_ssm_s4d_zoh(const float *A, const float *Bm, const float *C, const float *log_dt,
                     size_t H, size_t N, int conj_pairs, float *Ct);

/* GSS forward (Mehta et al. 2022, Figure 1) on x [B][L][E] into out [B][L][E]:
 * xn = layernorm(x) * gamma + beta (eps), v = gelu(xn Wv + bv) [F], u = gelu(xn Wu + bu) [H],
 * y = SSM(u) per sequence (as ref_ssm_forward), uc = y Wo1 + bo1 [F], out = (uc * v) Wo2 + bo2 + x.
 * gelu(x) = x (1 + erf(x / sqrt 2)) / 2. Weights row-major: Wv [E][F], Wu [E][H], Wo1 [H][F],
 * Wo2 [F][E]; any of gamma, beta and the biases may be NULL. */
void ref_gss(const float *x, size_t B, size_t L, size_t E, size_t F, size_t H, size_t N,
             const float *gamma, const float *beta, double eps, const float *Wv, const float *bv,
             const float *Wu, const float *bu, const float *Wo1, const float *bo1,
             const float *Wo2, const float *bo2, const float *A, const float *Ct,
             const float *log_dt, const float *D, float *out);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_SSM_H */
