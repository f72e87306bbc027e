/* ref_ssm_s4.h - plain-C double-precision references for full S4 (diagonal plus low rank):
 * the dense bilinear discretisation powered step by step, and HiPPO-LegS's closed form. Written
 * for clarity, not speed (O(N^2 L) per channel). Complex arrays are float pairs (re, im). */
#ifndef CLATTN_TESTS_REF_SSM_S4_H
#define CLATTN_TESTS_REF_SSM_S4_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* K[h][l] = C A_bar^l B_bar for l < L, on the dense 2N-state conjugate-pair system
 * A = diag(Lambda, conj Lambda) - [P; conj P][Q; conj Q]^*, B = [B; conj B], C = [C; conj C]
 * (Q NULL: Q = P), A_bar = (I - dt/2 A)^-1 (I + dt/2 A), B_bar = (I - dt/2 A)^-1 dt B,
 * dt = exp(log_dt[h]) (Gaussian elimination with partial pivoting, then L matrix-vector
 * products). Lambda, P, Q, B, C: [H][N][2]; K: [H][L] (the real part; the imaginary part of
 * this real system is rounding). */
void ref_ssm_s4_kernel(const float *Lambda, const float *P, const float *Q, const float *B,
                       const float *C, const float *log_dt, size_t H, size_t N, size_t L,
                       double *K);

/* HiPPO-LegS of order M in closed form: A[n][k] = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1)
 * (n = k), 0 (n < k); B[n] = sqrt(2n+1). A: [M][M] row-major, B: [M]. */
void ref_ssm_s4_legs(size_t M, double *A, double *B);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_SSM_S4_H */
