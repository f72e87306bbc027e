/* Device building blocks for the hashed and clustered attention families (lib/blocks/sort.c):
 * a stable LSD radix sort of (uint key, uint value) pairs over equal-length segments, a segmented
 * top-k by radix select, and row gather / scatter / scatter-mean.
 *
 * Every kernel gives one work-item a contiguous block of a segment and walks it in order, with
 * per-digit counters in private memory: no __local memory and no barriers (on PoCL both are
 * costly, see DESIGN.md §8), and walking in order is what makes the scatter stable. A pass is
 * three launches: per-block digit histograms, a scan per (segment, digit) over the blocks, and the
 * scatter, which derives the digit bases from the per-digit totals itself.
 *
 * Histograms are laid out [segment][digit][block], so the scan of one (segment, digit) row walks
 * contiguous memory and "all smaller digits first, then earlier blocks" is the order of the
 * flattened row: the exclusive prefix of that order is where a block's first element of a digit
 * lands. */

/* Bits per radix digit, from the scheduler (lib/sched/sched_blocks.c); divides 32. */
#ifndef SORT_BITS
#define SORT_BITS 8
#endif
#define SORT_RADIX (1u << SORT_BITS)
#define SORT_MASK (SORT_RADIX - 1u)

/* ---- radix sort ---- */

/* hist[(seg * RADIX + d) * nblk + blk] = number of keys of block blk of segment seg whose digit
 * at `shift` is d; `mask` keeps the digit's bits below the caller's key_bits. Global size
 * nseg * nblk. */
__kernel void clattn_sort_hist(__global const uint *keys, uint len, uint block, uint nblk,
                               uint shift, uint mask, __global uint *hist)
{
    uint g = get_global_id(0), seg = g / nblk, blk = g % nblk;
    uint count[SORT_RADIX];
    for (uint d = 0; d < SORT_RADIX; d++)
        count[d] = 0;
    ulong base = (ulong)seg * len;
    uint i0 = blk * block, i1 = min(i0 + block, len);
    for (uint i = i0; i < i1; i++)
        count[(keys[base + i] >> shift) & mask]++;
    ulong row = (ulong)seg * SORT_RADIX * nblk + blk;
    for (uint d = 0; d < SORT_RADIX; d++)
        hist[row + (ulong)d * nblk] = count[d];
}

/* Exclusive scan of one (segment, digit) row over its blocks; tot receives the row's sum.
 * Global size nseg * RADIX. */
__kernel void clattn_sort_scan(__global uint *hist, uint nblk, __global uint *tot)
{
    uint g = get_global_id(0);
    ulong row = (ulong)g * nblk;
    uint run = 0;
    for (uint b = 0; b < nblk; b++) {
        uint t = hist[row + b];
        hist[row + b] = run;
        run += t;
    }
    tot[g] = run;
}

/* Moves each pair of block blk to its place: the digit's base in the segment (totals of smaller
 * digits) plus the scanned count of earlier blocks plus the pairs of the same digit already seen
 * in this block. has_vals 0: the value is the element's index in its segment (argsort).
 * Global size nseg * nblk. */
__kernel void clattn_sort_scatter(__global const uint *keys, __global const uint *vals,
                                  int has_vals, uint len, uint block, uint nblk, uint shift,
                                  uint mask, __global const uint *hist, __global const uint *tot,
                                  __global uint *keys_out, __global uint *vals_out)
{
    uint g = get_global_id(0), seg = g / nblk, blk = g % nblk;
    uint next[SORT_RADIX];
    uint run = 0;
    ulong row = (ulong)seg * SORT_RADIX * nblk + blk;
    for (uint d = 0; d < SORT_RADIX; d++) {
        next[d] = run + hist[row + (ulong)d * nblk];
        run += tot[seg * SORT_RADIX + d];
    }
    ulong base = (ulong)seg * len;
    uint i0 = blk * block, i1 = min(i0 + block, len);
    for (uint i = i0; i < i1; i++) {
        uint key = keys[base + i];
        uint at = next[(key >> shift) & mask]++;
        keys_out[base + at] = key;
        vals_out[base + at] = has_vals ? vals[base + i] : i;
    }
}

/* ---- segmented top-k by radix select ---- */

/* A uint that orders floats from largest to smallest: the k largest scores are the k smallest
 * keys. -0 counts as +0; NaN gets the largest key (it ranks below every number). */
inline uint clattn_topk_key(float f)
{
    if (isnan(f))
        return 0xffffffffu;
    uint u = f == 0.0f ? 0u : as_uint(f);
    uint asc = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~asc;
}

/* Digit histograms of the keys that match the digits chosen so far (state[2 seg] holds them, in
 * the bits above shift + SORT_BITS). Same layout as clattn_sort_hist. Global nseg * nblk.
 * (State and counts are uint pairs stored as scalars: oclgrind's uninitialised-value check
 * mistakes vector literals for uninitialised data.) */
__kernel void clattn_topk_hist(__global const float *scores, uint len, uint block, uint nblk,
                               uint shift, __global const uint *state, __global uint *hist)
{
    uint g = get_global_id(0), seg = g / nblk, blk = g % nblk;
    uint count[SORT_RADIX];
    for (uint d = 0; d < SORT_RADIX; d++)
        count[d] = 0;
    uint hs = shift + SORT_BITS;
    /* shift + SORT_BITS == 32 on the first pass: every key matches (no bits chosen yet). */
    uint want_hi = hs >= 32 ? 0u : state[2 * seg] >> hs;
    ulong base = (ulong)seg * len;
    uint i0 = blk * block, i1 = min(i0 + block, len);
    for (uint i = i0; i < i1; i++) {
        uint key = clattn_topk_key(scores[base + i]);
        uint hi = hs >= 32 ? 0u : key >> hs;
        if (hi == want_hi)
            count[(key >> shift) & SORT_MASK]++;
    }
    ulong row = (ulong)seg * SORT_RADIX * nblk + blk;
    for (uint d = 0; d < SORT_RADIX; d++)
        hist[row + (ulong)d * nblk] = count[d];
}

/* Picks the digit at `shift` of the k-th smallest key of each segment: state[2 seg], state[2 seg
 * + 1] = (key bits chosen so far, how many of the keys matching them are still to take). first:
 * start from (0, k). After the pass at shift 0, the first is the k-th smallest key T and the
 * second how many keys equal to T belong to the top k. Global size nseg. */
__kernel void clattn_topk_choose(__global const uint *hist, uint nblk, uint shift, uint k,
                                 int first, __global uint *state)
{
    uint seg = get_global_id(0);
    uint sx = 0, sy = k;
    if (!first) {
        sx = state[2 * seg];
        sy = state[2 * seg + 1];
    }
    ulong row = (ulong)seg * SORT_RADIX * nblk;
    for (uint d = 0; d < SORT_RADIX; d++) {
        uint c = 0;
        for (uint b = 0; b < nblk; b++)
            c += hist[row + (ulong)d * nblk + b];
        if (sy <= c) {
            sx |= d << shift;
            break;
        }
        sy -= c;
    }
    state[2 * seg] = sx;
    state[2 * seg + 1] = sy;
}

/* cnt[2 (seg * nblk + blk)], cnt[... + 1] = (keys below T, keys equal to T) in the block.
 * Global nseg * nblk. */
__kernel void clattn_topk_count(__global const float *scores, uint len, uint block, uint nblk,
                                __global const uint *state, __global uint *cnt)
{
    uint g = get_global_id(0), seg = g / nblk, blk = g % nblk;
    uint t = state[2 * seg], lt = 0, eq = 0;
    ulong base = (ulong)seg * len;
    uint i0 = blk * block, i1 = min(i0 + block, len);
    for (uint i = i0; i < i1; i++) {
        uint key = clattn_topk_key(scores[base + i]);
        lt += key < t;
        eq += key == t;
    }
    cnt[2 * g] = lt;
    cnt[2 * g + 1] = eq;
}

/* Writes the selected elements of each segment in index order: every key below T, and the first
 * state[2 seg + 1] keys equal to T (lower indices win ties). An element's slot is the number of
 * selected elements before it. idx[seg * k + j] is an index within the segment; out_scores (when
 * has_scores) the score. Global nseg * nblk. */
__kernel void clattn_topk_collect(__global const float *scores, uint len, uint block, uint nblk,
                                  uint k, __global const uint *state,
                                  __global const uint *cnt, __global uint *idx,
                                  __global float *out_scores, int has_scores)
{
    uint g = get_global_id(0), seg = g / nblk, blk = g % nblk;
    uint t = state[2 * seg], take = state[2 * seg + 1];
    uint lt = 0, eq = 0;
    for (uint b = 0; b < blk; b++) {
        lt += cnt[2 * (seg * nblk + b)];
        eq += cnt[2 * (seg * nblk + b) + 1];
    }
    ulong base = (ulong)seg * len, obase = (ulong)seg * k;
    uint i0 = blk * block, i1 = min(i0 + block, len);
    for (uint i = i0; i < i1; i++) {
        float s = scores[base + i];
        uint key = clattn_topk_key(s);
        uint at = 0xffffffffu;
        if (key < t)
            at = lt++ + min(eq, take);
        else if (key == t && eq < take)
            at = lt + eq++;
        else if (key == t)
            eq++;
        if (at != 0xffffffffu) {
            idx[obase + at] = i;
            if (has_scores)
                out_scores[obase + at] = s;
        }
    }
}

/* keys[i] = clattn_topk_key(scores[i]) (to re-sort selected elements by score). Global n. */
__kernel void clattn_topk_keys(__global const float *scores, __global uint *keys)
{
    size_t i = get_global_id(0);
    keys[i] = clattn_topk_key(scores[i]);
}

/* scores_out[seg * k + j] = scores[seg * len + idx[seg * k + j]]. Global nseg * k. */
__kernel void clattn_topk_fetch(__global const float *scores, uint len, uint k,
                                __global const uint *idx, __global float *scores_out)
{
    size_t g = get_global_id(0), seg = g / k;
    scores_out[g] = scores[seg * len + idx[g]];
}

/* ---- rows: gather, scatter, scatter-mean ---- */

/* dst[i][e] = src[idx[i]][e], or 0 when idx[i] >= nsrc. Global (d, n). */
__kernel void clattn_rows_gather(__global const float *src, uint nsrc, uint d,
                                 __global const uint *idx, __global float *dst)
{
    uint e = get_global_id(0);
    size_t i = get_global_id(1);
    uint r = idx[i];
    dst[i * d + e] = r < nsrc ? src[(size_t)r * d + e] : 0.0f;
}

/* dst[idx[i]][e] = src[i][e] for idx[i] < ndst; other rows are dropped. Global (d, n). */
__kernel void clattn_rows_scatter(__global const float *src, uint ndst, uint d,
                                  __global const uint *idx, __global float *dst)
{
    uint e = get_global_id(0);
    size_t i = get_global_id(1);
    uint r = idx[i];
    if (r < ndst)
        dst[(size_t)r * d + e] = src[i * d + e];
}

/* Sort keys for scatter-mean: a destination, or ndst for rows to drop (they sort last).
 * Global n. */
__kernel void clattn_rows_dest_keys(__global const uint *dest, uint ndst, __global uint *keys)
{
    size_t i = get_global_id(0);
    uint r = dest[i];
    keys[i] = r < ndst ? r : ndst;
}

/* First position in sorted[0, n) whose key is >= x. */
inline uint clattn_lower_bound(__global const uint *sorted, uint n, uint x)
{
    uint lo = 0, hi = n;
    while (lo < hi) {
        uint mid = lo + (hi - lo) / 2;
        if (sorted[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* dst[r][:] = mean of the rows src[order[j]][:] over the run of sorted keys equal to r, summed in
 * the order of the source rows (the sort is stable), or 0 when no row goes to r; counts[r] (when
 * has_counts) = the run's length. One destination per work-item (one pair of binary searches).
 * Global ndst. */
__kernel void clattn_rows_mean(__global const float *src, uint d, uint n,
                               __global const uint *sorted, __global const uint *order,
                               __global float *dst, __global uint *counts, int has_counts)
{
    uint r = get_global_id(0);
    uint lo = clattn_lower_bound(sorted, n, r), hi = clattn_lower_bound(sorted, n, r + 1);
    float cnt = (float)(hi - lo);
    for (uint e = 0; e < d; e++) {
        float s = 0.0f;
        for (uint j = lo; j < hi; j++)
            s += src[(size_t)order[j] * d + e];
        dst[(size_t)r * d + e] = hi > lo ? s / cnt : 0.0f;
    }
    if (has_counts)
        counts[r] = hi - lo;
}
