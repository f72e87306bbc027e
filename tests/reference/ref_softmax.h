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

/* Options of ref_softmax_ex (issue 16 section 1). Zero-initialised = plain attention with
   scale 1/sqrt(D): every option is off, and options compose freely.

   Order, per (b, h, i, j), with i' = i + Nk - Nq the query's bottom-right aligned position:
     1. s = scale * q_i . k_j                       (scale 0 means 1/sqrt(D))
     2. softcap c > 0: s = c * tanh(s / c)          (Gemma 2: the SCALED logit is capped, before
                                                     anything is added or masked; bias/ALiBi are
                                                     not capped)
     3. s += bias[b,h,i,j] - slope[h] * |i' - j|     (each term only when given)
     4. key j is masked (left out of the softmax) when any of: causal and j > i';
        j >= key_lengths[b]; mask[b,h,i,j] == 0; window and not (i' - left <= j <= i' + right);
        block_mask[b,h,i/bq,j/bk] == 0; or s == -inf (a -inf bias entry).
     5. softmax over the kept keys plus, with sinks, one value-less logit sinks[h] (taken as is:
        not scaled, not capped, not biased); out = sum p_j v_j, lse = log(sum exp(s_j) + exp(sink)).
   A row with no kept key gives out = 0 and lse = -inf; with sinks it gives out = 0 and
   lse = sinks[h] (the sink alone is the denominator). A sink of -inf is the same as no sink.
   Bias must not hold +inf or NaN. Strides are in elements over [B, Hq, Nq, Nk] (for the block
   mask [B, Hq, ceil(Nq/bq), ceil(Nk/bk)]); a stride of 0 broadcasts that axis. */
typedef struct ref_softmax_opts {
    double scale;                /* 0: 1/sqrt(D) */
    int causal;
    const int32_t *key_lengths;  /* int32 [B] (clamped to [0, Nk]) or NULL */
    size_t Dv;                   /* v/out head dim, 0: D. v [B][Hk][Nk][Dv], out [B][Hq][Nq][Dv] */
    const float *bias;           /* additive, or NULL */
    size_t bias_stride[4];
    const uint8_t *mask;         /* nonzero = attend, or NULL */
    size_t mask_stride[4];
    const float *alibi_slopes;   /* float [Hq] or NULL; see ref_alibi_slopes */
    int window;                  /* nonzero: apply window_left/right */
    long window_left, window_right; /* -1 = unbounded on that side */
    double softcap;              /* 0: none; else > 0 */
    const float *sinks;          /* float [Hq] or NULL */
    const uint8_t *block_mask;   /* nonzero block = attend, or NULL */
    size_t block_mask_stride[4];
    size_t block_q, block_k;     /* block sizes (> 0 when block_mask is set) */
    long long position_offset;   /* added to every query's aligned position i' (causal, window,
                                    ALiBi), as the desc's position_offset */
} ref_softmax_opts;

/* Exact softmax attention in double with every option above; opts NULL = all zero. Same shapes and
   GQA mapping as ref_softmax (lse may be NULL), except v and out use Dv. Logits of magnitude 1e4
   stay finite (max subtraction, the sink included). If scratch cannot be allocated, out and lse
   are filled with NaN. */
void ref_softmax_ex(const float *q, const float *k, const float *v, float *out, float *lse,
                    size_t B, size_t Hq, size_t Hk, size_t Nq, size_t Nk, size_t D,
                    const ref_softmax_opts *opts);

/* The standard ALiBi slopes for Hq heads (Press et al., "Train Short, Test Long", reference code
   get_slopes in ofirpress/attention_with_linear_biases, also used by BLOOM/MPT/xformers):
   Hq a power of two: slope[h] = 2^(-8 (h+1) / Hq), h = 0..Hq-1.
   Otherwise, with P = 2^floor(log2 Hq): the P slopes for P heads, followed by the first Hq - P
   of the even-indexed slopes for 2P heads, i.e. slope[P + m] = 2^(-8 (2m+1) / (2P)), m = 0..Hq-P-1.
   Hq == 0 writes nothing. */
void ref_alibi_slopes(size_t Hq, float *out);

/* Expands a block mask (strides as in ref_softmax_opts) to a dense contiguous uint8
   [B][Hq][Nq][Nk] mask: dense[b,h,i,j] = block_mask[b,h,i/bq,j/bk] != 0. Ragged last blocks
   cover the remainder. */
void ref_expand_block_mask(const uint8_t *block_mask, const size_t stride[4], size_t B, size_t Hq,
                           size_t Nq, size_t Nk, size_t bq, size_t bk, uint8_t *dense);

/* Fills x with uniform values in [-amp, amp], never exactly 0, from a xorshift64* generator seeded by *state.
   *state advances, so consecutive calls give fresh values; a zero state is replaced by a fixed
   non-zero seed (xorshift never leaves 0). amp is taken as |amp|; amp == 0 fills zeros. */
void ref_fill_uniform(float *x, size_t n, float amp, uint64_t *state);

/* max |a-b| and max |b| over n elements; NaN anywhere in a (poisoned, unwritten) makes the error +INFINITY.
   a is the result under test, b the reference. Equal values count as 0 even when infinite (an lse of
   -INFINITY on both sides of a masked row); a NaN in b also gives +INFINITY; non-finite b values are
   left out of *max_abs_ref so a normalised error stays meaningful. max_abs_ref may be NULL. */
double ref_max_abs_diff(const float *a, const float *b, size_t n, double *max_abs_ref);

/* Serving and decoding (issue 17; include/clattn/softmax.h's "Serving and decoding" block): B
   sequences, each with its own query rows, key length and (paged) keys, on top of every option of
   ref_softmax_opts. Fields left 0 / NULL are off.
   - Queries: without q_lengths / q_offsets, q/out/lse are [B][Hq][T][*] and sequence b has all T
     rows. q_lengths (int32 [B], each clamped to [0, T]): sequence b's queries are rows
     0 .. ql - 1 of its T rows; rows ql .. T - 1 are padding, written as rows that see no key
     (zeros; lse -inf, or sinks[h]). q_offsets (int32 [B + 1], cu_seqlens): q/out/lse are packed
     [1][Hq][T][*], sequence b's queries are rows off[b] .. off[b + 1] - 1 (each clamped to
     [0, T], the end to at least the start); rows outside every sequence are NOT written.
   - Keys: without a block table k/v are [B][Hk][Nk][D|Dv]. With block_table (int32
     [B][max_pages], row-contiguous) k/v are pools [num_pages][Hk][page_size][D|Dv], Nk is
     max_pages * page_size, key j of sequence b is slot j % page_size of page
     block_table[b][j / page_size]; an id outside [0, num_pages) masks the keys of that page.
   - Key length kl = opts->key_lengths[b] clamped to [0, Nk] (Nk without); keys from kl on
     are never read (a pool's stale slots may hold anything). With q_lengths or q_offsets, query
     row i of a sequence with ql queries sits at position i' = i + kl - ql (causal, window,
     ALiBi); without either at i' = i + Nk - T, as in ref_softmax_ex. Option tensors are indexed (b, h, i, j) with i the sequence's own row
     (q_offsets: the bias / mask / block mask batch axis is the sequence b).
   Computed per sequence by ref_softmax_ex on the gathered rows and keys. If scratch cannot be
   allocated the written rows are filled with NaN. */
typedef struct ref_serving {
    size_t B;                    /* sequences */
    size_t T;                    /* q rows per sequence (padded), or packed rows with q_offsets */
    size_t Nk;                   /* keys per sequence (ignored when paged: max_pages * page_size) */
    const int32_t *q_lengths;    /* int32 [B] or NULL */
    const int32_t *q_offsets;    /* int32 [B + 1] or NULL (excludes q_lengths) */
    const int32_t *block_table;  /* int32 [B][max_pages] or NULL */
    size_t max_pages, page_size, num_pages;
} ref_serving;

void ref_softmax_serving(const float *q, const float *k, const float *v, float *out, float *lse,
                         size_t Hq, size_t Hk, size_t D, const ref_serving *sv,
                         const ref_softmax_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_SOFTMAX_H */
