/* ref_routing.h - plain-C double-precision reference for routing attention (Routing Transformer,
 * balanced routing), its k-means++ centroid initialisation and its EMA centroid update, as
 * documented in include/clattn.h. Naive loops, double accumulation, written for clarity. */
#ifndef CLATTN_TESTS_REF_ROUTING_H
#define CLATTN_TESTS_REF_ROUTING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* q, k: [B][H][N][D], v: [B][H][N][Dv], centroids: [H][C][D], out: [B][H][N][Dv], contiguous.
   Cluster c of (b, h) takes the w queries and the w keys with the largest normalised dot product
   with centroid c (ties: lower position), attends exactly inside (logits scale * q.k, causal by
   position when asked), and each position's output is the mean over the clusters where it was a
   query and saw at least one key; zeros where there is none.
   min_gap (may be NULL) receives the smallest non-zero difference, over every cluster and both
   selections, between the w-th and (w+1)-th largest scores (+INFINITY when w == N): a selection
   closer than fp32 rounding to its boundary could legitimately differ on a device.
   On allocation failure out is filled with NaN. */
void ref_routing_attention(const float *q, const float *k, const float *v,
                           const float *centroids, float *out, size_t B, size_t H, size_t N,
                           size_t D, size_t Dv, size_t C, size_t w, double scale, int causal,
                           double *min_gap);

/* Grouped-query form: q [B][Hq][N][D], k [B][Hk][N][D], v [B][Hk][N][Dv], centroids [Hk][C][D],
   out [B][Hq][N][Dv], Hq a multiple of Hk. Query head h is routed and attends exactly as with
   key/value head h / (Hq / Hk) and its centroids repeated for it (ref_routing_attention is the
   case Hq = Hk = H). */
void ref_routing_attention_gqa(const float *q, const float *k, const float *v,
                               const float *centroids, float *out, size_t B, size_t Hq,
                               size_t Hk, size_t N, size_t D, size_t Dv, size_t C, size_t w,
                               double scale, int causal, double *min_gap);

/* k-means++ exactly as clattn_routing_centroids_draw documents it. centroids: [H][C][D]. */
void ref_routing_kmeanspp(const float *q, const float *k, size_t B, size_t H, size_t N, size_t D,
                          size_t C, uint64_t seed, float *centroids);
/* The same with Hq query heads sharing Hk key heads: q [B][Hq][N][D], k [B][Hk][N][D],
   centroids [Hk][C][D] (each key head's data: its group's queries, then its keys). */
void ref_routing_kmeanspp_gqa(const float *q, const float *k, size_t B, size_t Hq, size_t Hk,
                              size_t N, size_t D, size_t C, uint64_t seed, float *centroids);

/* One EMA step as clattn_routing_update_centroids documents it; centroids [H][C][D] updated in
   place. min_gap (may be NULL): smallest non-zero margin between a vector's best and second-best
   centroid scores (+INFINITY when C == 1). */
void ref_routing_update(const float *q, const float *k, float *centroids, size_t B, size_t H,
                        size_t N, size_t D, size_t C, double decay, double *min_gap);
/* The same with Hq query heads sharing Hk key heads (shapes as ref_routing_kmeanspp_gqa). */
void ref_routing_update_gqa(const float *q, const float *k, float *centroids, size_t B,
                            size_t Hq, size_t Hk, size_t N, size_t D, size_t C, double decay,
                            double *min_gap);

#ifdef __cplusplus
}
#endif

#endif
