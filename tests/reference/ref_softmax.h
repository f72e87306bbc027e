/* ref_softmax.h - plain-C double-precision reference for softmax attention,
 * plus the small helpers every device test uses (inputs, error norms).
 * Written for clarity, not speed: naive loops, double accumulation. */
#ifndef CLATTN_TESTS_REF_SOFTMAX_H
#define CLATTN_TESTS_REF_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* q: [B][Hq][Nq][D], k, v: [B][Hk][Nk][D], out: [B][Hq][Nq][D], lse: [B][Hq][Nq] (may be NULL); all contiguous float32.
   Head h of q uses key/value head h / (Hq / Hk) (GQA/MQA). Hq % Hk == 0 is the caller's job.
   scale: logits are scale * q.k.
   causal: query i sees key j iff j <= i + Nk - Nq (bottom-right aligned), computed in signed arithmetic.
   key_lengths: NULL, or int32[B]: batch b sees only keys j < key_lengths[b] (clamped to [0, Nk]).
   A row that sees no key: out row = 0, lse = -INFINITY.
   lse is the natural-log log-sum-exp of the scaled logits over the visible keys.
   Accumulate in double; use the max-subtraction trick so logits of magnitude 1e4 do not overflow.
   If the D-double scratch row cannot be allocated, out and lse are filled with NaN so that any
   comparison fails loudly instead of passing on stale data. */
void ref_softmax(const float *q, const float *k, const float *v, float *out, float *lse,
                   size_t B, size_t Hq, size_t Hk, size_t Nq, size_t Nk, size_t D,
                   double scale, int causal, const int32_t *key_lengths);

/* Fills x with uniform values in [-amp, amp], never exactly 0, from a xorshift64* generator seeded by *state.
   *state advances, so consecutive calls give fresh values; a zero state is replaced by a fixed
   non-zero seed (xorshift never leaves 0). amp is taken as |amp|; amp == 0 fills zeros. */
void ref_fill_uniform(float *x, size_t n, float amp, uint64_t *state);

/* max |a-b| and max |b| over n elements; NaN anywhere in a (poisoned, unwritten) makes the error +INFINITY.
   a is the result under test, b the reference. Equal values count as 0 even when infinite (an lse of
   -INFINITY on both sides of a masked row); a NaN in b also gives +INFINITY; non-finite b values are
   left out of *max_abs_ref so a normalised error stays meaningful. max_abs_ref may be NULL. */
double ref_max_abs_diff(const float *a, const float *b, size_t n, double *max_abs_ref);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_SOFTMAX_H */
