/* ref_ssm.h - plain-C double-precision references for diagonal state-space models (S4D / DSS);
 * the GSS layer's is ref_gss.h. Written for clarity, not speed: naive loops, double (complex)
 * arithmetic. Complex arrays are float pairs (re, im). */
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

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_SSM_H */
