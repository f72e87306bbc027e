/* ref_mgk.h - plain-C double-precision references for Transformer-MGK (include/clattn/mgk.h),
 * written from the formulas, not from the kernels: squared distances |q - k|^2 computed directly,
 * the log-sum over keys and components by one max subtraction over all of them. */
#ifndef CLATTN_TESTS_REF_MGK_H
#define CLATTN_TESTS_REF_MGK_H

#include <stddef.h>
#include <stdint.h>

/* Layouts (contiguous): q [B][H][Nq][D], k [B][H][R][Nk][D], v [B][H][Nk][D], pi [H][R][Nk],
 * out [B][H][Nq][D], lse [B][H][Nq] (may be NULL).
 * Softmax form: w_ij = sum_r pi_jr exp(-|q_i - k_jr|^2 / (2 sigma2[r])) over the keys j the row
 * sees (causal bottom-right aligned, key_lengths as ref_softmax; pi <= 0 drops a term), out_i =
 * sum_j w_ij v_j / sum_j w_ij, lse_i = log sum_j w_ij; a row with no weight: 0 and -INFINITY. */
void ref_mgk_softmax(const float *q, const float *k, const float *v, const float *pi, double *out,
                     double *lse, size_t B, size_t H, size_t R, size_t Nq, size_t Nk, size_t D,
                     const double *sigma2, int causal, const int32_t *key_lengths);

/* Linear form: phi(x) = (elu(x) + 1) / sum(elu(x) + 1), psi_j = sum_r pi_jr phi(k_jr),
 * out_i = sum_j (phi(q_i).psi_j) v_j / (phi(q_i) . sum_j psi_j + eps), over all j (causal = 0) or
 * j <= i (causal = 1, Nq = Nk). */
void ref_mgk_linear(const float *q, const float *k, const float *v, const float *pi, double *out,
                    size_t B, size_t H, size_t R, size_t Nq, size_t Nk, size_t D, double eps,
                    int causal);

#endif
