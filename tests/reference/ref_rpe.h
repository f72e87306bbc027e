/* ref_rpe.h - plain-C double-precision reference for kernelized attention with relative positional
 * encoding (Luo et al. 2021). Written for clarity, not speed: the direct O(N^2) double sums. */
#ifndef CLATTN_TESTS_REF_RPE_H
#define CLATTN_TESTS_REF_RPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The maximum of the bias entries head h uses: every r in [-(N-1), N-1], or r <= 0 when causal.
   bias: [H][2N-1], element r + N - 1 holding b_r. */
double ref_rpe_bias_max(const float *bias, size_t h, size_t N, int causal);

/* From features: fq, fk [B][H][N][M] (phi already applied), v [B][H][N][Dv], bias [H][2N-1],
   out [B][H][N][Dv]:
     w_ij  = fq_i . fk_j * exp(b_(j-i) - bmax_h)     (j <= i only when causal)
     out_i = sum_j w_ij v_j / (sum_j w_ij + eps exp(-bmax_h))
   with bmax_h = ref_rpe_bias_max(bias, h, N, causal): the shift cancels in the quotient, and eps
   is added in the formula's scale (that of the unshifted weights), as the library documents; a
   row whose denominator is exactly 0 (eps = 0) outputs 0. */
void ref_rpe_from_features(const double *fq, const double *fk, const float *v, const float *bias,
                           float *out, size_t B, size_t H, size_t N, size_t M, size_t Dv,
                           double eps, int causal);

/* The same with an element-wise feature map (numbered as clattn_linear_feature_map: 0 elu + 1, 1 relu,
   2 identity; ref_linear_phi) applied to q, k [B][H][N][D] (M = D). If scratch cannot be
   allocated, out is filled with NaN so any comparison fails. */
void ref_rpe_attention(const float *q, const float *k, const float *v, const float *bias,
                       float *out, size_t B, size_t H, size_t N, size_t D, size_t Dv, int fmap,
                       double eps, int causal);

/* Every feature map, FAVOR+ (fmap 3, w [M][D]) included, through ref_linear_features: queries
   take their stabilised features, keys their true features times exp(-c_max) with c_max the
   largest key log-scale of the (b, h) -- the library's stabilisers, which cancel in the quotient;
   eps is added in the formula's scale, eps exp(-(c_q + c_max + bmax_h)) to the stabilised sums
   (c_q the query row's log-scale), so the result is the formula's with the true features. M is
   taken as D for the element-wise maps. */
void ref_rpe_general(const float *q, const float *k, const float *v, const float *bias, float *out,
                     size_t B, size_t H, size_t N, size_t D, size_t Dv, int fmap, const float *w,
                     size_t M, double eps, int causal);

/* ref_rpe_general with query heads sharing key/value heads: q [B][H][N][D], k [B][Hk][N][D],
   v [B][Hk][N][Dv] (H a multiple of Hk; query head h reads key head h / (H / Hk)), bias
   [H][2N-1] per query head, out [B][H][N][Dv]. FAVOR's key stabiliser is per (b, key head). */
void ref_rpe_gqa(const float *q, const float *k, const float *v, const float *bias, float *out,
                 size_t B, size_t H, size_t Hk, size_t N, size_t D, size_t Dv, int fmap,
                 const float *w, size_t M, double eps, int causal);

/* ref_rpe_gqa with the double results unrounded (the reference of the half-storage tests, whose
   outputs are checked against the fp64 value before any rounding). */
void ref_rpe_gqa_d(const float *q, const float *k, const float *v, const float *bias, double *out,
                   size_t B, size_t H, size_t Hk, size_t N, size_t D, size_t Dv, int fmap,
                   const float *w, size_t M, double eps, int causal);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_RPE_H */
