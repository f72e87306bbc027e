/* ref_lsh.h - plain-C double-precision reference for Reformer LSH attention (shared-QK).
 * Written for clarity, not speed: naive loops, double accumulation, qsort for the bucket sort. */
#ifndef CLATTN_TESTS_REF_LSH_H
#define CLATTN_TESTS_REF_LSH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The score a query gives its own position (it attends to itself only when nothing else is
 * visible), as in Reformer. */
#define REF_LSH_SELF_SCORE (-1e5)

/* Hashes every position of q [B][H][N][D] with rotations rot [n_hashes][D][n_buckets / 2]:
 * buckets[((b * H + h) * n_hashes + r) * N + i] = argmax over the concatenation [x, -x] of
 * x = q_i R_r (first index on ties), in double. margin (may be NULL) receives, per entry, the gap
 * between the best and the second-best value of that concatenation divided by max(1, |best|):
 * where it is tiny an fp32 device may rightly pick the other bucket. */
void ref_lsh_hash(const float *q, const float *rot, int32_t *buckets, double *margin, size_t B,
                  size_t H, size_t N, size_t D, size_t n_hashes, size_t n_buckets);

/* LSH attention given the buckets (as ref_lsh_hash lays them out), following Reformer:
 * per (b, h, round) positions are sorted stably by (bucket, position) and cut into chunks of
 * chunk_size; a query sees the keys of its own chunk and of the previous one (chunk 0 looks back
 * to the last; with a single chunk, only that chunk), restricted to its own bucket unless
 * attend_across, and to original positions <= its own when causal. Keys are the L2-normalised
 * queries (x / max(|x|, 1e-12)); scores q_i . k_j / sqrt(D), REF_LSH_SELF_SCORE for j == i.
 * Each round gives o_r and lse_r; rounds are combined as sum_r exp(lse_r - logsumexp lse) o_r,
 * without de-duplicating keys seen in several rounds. out [B][H][N][Dv]; lse [B][H][N] (may be
 * NULL) receives logsumexp over rounds of lse_r. v [B][H][N][Dv]. */
void ref_lsh_attention(const float *q, const float *v, const int32_t *buckets, float *out,
                       float *lse, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                       size_t n_hashes, size_t chunk_size, int causal, int attend_across);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_LSH_H */
