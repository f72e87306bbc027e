/* ref_linear.h - plain-C double-precision reference for linear (kernelized) attention.
 * Written for clarity, not speed: naive loops, double accumulation. */
#ifndef CLATTN_TESTS_REF_LINEAR_H
#define CLATTN_TESTS_REF_LINEAR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Feature maps, numbered as clattn_feature_map: 0 elu(x) + 1, 1 max(x, 0), 2 identity. */
double ref_linear_phi(double x, int fmap);

/* q: [B][H][Nq][D], k: [B][H][Nk][D], v: [B][H][Nk][Dv], out: [B][H][Nq][Dv]; contiguous float32.
   Non-causal: out_i = phi(q_i)^T S / (phi(q_i)^T z + eps) with S = sum_j phi(k_j) v_j^T and
   z = sum_j phi(k_j) over every key.
   Causal (Nq == Nk, the caller's job): the sequential recurrence S += phi(k_i) v_i^T,
   z += phi(k_i), then out_i from the S, z that include position i.
   If scratch cannot be allocated, out is filled with NaN so any comparison fails. */
void ref_linear_attention(const float *q, const float *k, const float *v, float *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          double eps, int causal);

/* The state after N positions: s [B][H][D][Dv] = sum_j phi(k_j) v_j^T, z [B][H][D] = sum_j
   phi(k_j), for k [B][H][N][D], v [B][H][N][Dv]. */
void ref_linear_state(const float *k, const float *v, float *s, float *z, size_t B, size_t H,
                      size_t N, size_t D, size_t Dv, int fmap);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_LINEAR_H */
