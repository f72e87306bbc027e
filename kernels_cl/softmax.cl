//@include softmax_opts.clh
/* Tiled exact softmax attention (FlashAttention-style forward with online softmax). Two families:
 *
 *  clattn_softmax_fwd_cpu — for CPU-like devices (PoCL): no __local memory and no barriers. Each
 *    work-item owns a block of SOFTMAX_QGROUPS x SOFTMAX_ROWS query rows and walks the keys in
 *    cache-sized blocks of SOFTMAX_TILE_KV; scores are float16 vectors over 16 keys read from K packed
 *    into [N/16][D][16] panels (clattn_softmax_pack_kv), so every panel load feeds SOFTMAX_ROWS FMAs; logits
 *    are kept in base 2 (log2 e folded into the scale) so exp is exp2 (a polynomial one).
 *
 *  clattn_softmax_fwd_gpu — for devices with real local memory: a work-group of SOFTMAX_WG_SIZE work-items,
 *    one query row each, shares SOFTMAX_TILE_KV x SOFTMAX_HEAD_DIM tiles of K and V loaded into __local memory.
 *
 * Both write every output element: rows that see no key get zeros and lse = -INFINITY. */

#ifndef SOFTMAX_HEAD_DIM
#define SOFTMAX_HEAD_DIM 64
#endif
#ifndef SOFTMAX_ROWS
#define SOFTMAX_ROWS 4
#endif
#ifndef SOFTMAX_TILE_KV
#define SOFTMAX_TILE_KV 64
#endif
#ifndef SOFTMAX_KEY_BLOCK
#define SOFTMAX_KEY_BLOCK 16
#endif
#ifndef SOFTMAX_WG_SIZE
#define SOFTMAX_WG_SIZE 128
#endif

/* Element types (clattn_dtype codes, common.clh): q, k, v, out from the plan; the CPU family's
 * packed K panels and V rows (KP_DT, VP_DT: float32 unless the plan packs half panels, see
 * lib/ops/softmax.c panel_dtypes). Every global read and write of these goes through
 * CLATTN_LOAD/STORE/VLOAD/VSTORE; arithmetic, lse and the naive scores stay float32. */
#ifndef Q_DT
#define Q_DT 0
#endif
#ifndef K_DT
#define K_DT 0
#endif
#ifndef V_DT
#define V_DT 0
#endif
#ifndef O_DT
#define O_DT 0
#endif
#ifndef KP_DT
#define KP_DT 0
#endif
#ifndef VP_DT
#define VP_DT 0
#endif

/* dst[k] = scale * row[k] of a q view of type Q_DT (clattn_load_row for any element type). */
inline void softmax_load_q(float *dst, __global const CLATTN_STYPE(Q_DT) *x, ulong off, ulong4 st,
                           ulong i0, ulong i1, ulong i2, float scale)
{
    for (uint k = 0; k < SOFTMAX_HEAD_DIM; k++)
        dst[k] = CLATTN_LOAD(Q_DT, x, clattn_at(off, st, i0, i1, i2, k)) * scale;
}


/* Key panels consumed per online-softmax step by the CPU family: two (32 keys) halve the per-key
 * cost of the row reductions and rescales (N2048 H8: D16 87 -> 132, D64 181 -> 192 GFLOP/s). At
 * D128 and D256 one panel was faster while a group's whole accumulator had to stay in registers
 * beside the scores; since the scheduler passes P.V through registers in slices there
 * (SOFTMAX_PV_PASSES, 4 rows x 4 vectors), two are faster there too. Up to D 64 the scheduler
 * takes four (64 keys: 16 score vectors, so the accumulators go through registers per step as in
 * the sliced path, SOFTMAX_PV_INREG 0): 5% less CPU time than two at N 4096 D 64. */
#ifndef SOFTMAX_STEP_BLOCKS
#define SOFTMAX_STEP_BLOCKS 2
#endif

/* The CPU family's cache blocking: a work-item owns SOFTMAX_QGROUPS groups of SOFTMAX_ROWS query
 * rows and consumes the keys SOFTMAX_TILE_KV at a time (a multiple of SOFTMAX_STEP_BLOCKS * 16). */
#ifndef SOFTMAX_QGROUPS
#define SOFTMAX_QGROUPS 8
#endif
#define SOFTMAX_KV_BLOCK SOFTMAX_TILE_KV
#define SOFTMAX_QBLOCK ((SOFTMAX_ROWS) * (SOFTMAX_QGROUPS))
#define SOFTMAX_STEP_KEYS ((SOFTMAX_STEP_BLOCKS) * (SOFTMAX_KEY_BLOCK))

/* SOFTMAX_HEAD_DIM rounded up to whole float16 vectors: packed V rows and the CPU accumulators use it. */
#define DPAD (((SOFTMAX_HEAD_DIM) + 15) / 16 * 16)
#define DVEC (DPAD / 16)

/* V's head dim Dv (the plan passes -DSOFTMAX_HEAD_DIM_V only when it is not D), rounded up to
 * whole float16 vectors: the CPU family's packed V rows, accumulators and stores use these. */
#ifndef SOFTMAX_HEAD_DIM_V
#define SOFTMAX_HEAD_DIM_V SOFTMAX_HEAD_DIM
#endif
#define DVPAD (((SOFTMAX_HEAD_DIM_V) + 15) / 16 * 16)
#define DVVEC (DVPAD / 16)

/* The CPU family's P.V passes: 1 keeps a register group's SOFTMAX_ROWS x DVVEC accumulators in
 * registers for a whole key block; above (the scheduler's choice when Dv > 256 or D > 256, where
 * the accumulators alone would take every AVX-512 register) they stay in the work-item's private
 * arrays and each step adds P.V in SOFTMAX_PV_PASSES passes of SOFTMAX_PV_VECS vectors. */
#ifndef SOFTMAX_PV_PASSES
#define SOFTMAX_PV_PASSES 1
#endif
#define SOFTMAX_PV_VECS ((DVVEC + SOFTMAX_PV_PASSES - 1) / SOFTMAX_PV_PASSES)
/* 1: a group's accumulators stay in registers through a key block (one pass only); 0: they stay
 * in the private arrays and every step moves them through registers (any number of passes). */
/* Independent FMA chains per score vector: 2 splits the d sum into even and odd halves added at
 * the end, so a 4 x 2 score tile keeps 16 chains in flight instead of 8 (two FMA ports of latency
 * 4 need 8 with no slack at all; +3-5% at D 128 together with the P.V key loop unrolled by 2,
 * same-run A/B); tiles of 12 or more vectors have the chains already. */
#ifndef SOFTMAX_SCORE_CHAINS
#define SOFTMAX_SCORE_CHAINS (SOFTMAX_ROWS * SOFTMAX_STEP_BLOCKS < 12 ? 2 : 1)
#endif
#if SOFTMAX_SCORE_CHAINS < 1 || SOFTMAX_SCORE_CHAINS > 2
#error "SOFTMAX_SCORE_CHAINS is 1 or 2 (a remainder of D joins chain 0 as one d)"
#endif
#ifndef SOFTMAX_PV_INREG
#define SOFTMAX_PV_INREG (SOFTMAX_PV_PASSES == 1 && SOFTMAX_STEP_BLOCKS <= 2)
#endif

/* The scores of one step of a group (rows r0 + r of qv, the keys of the K panels at PAN) into
 * S[t][r]: SOFTMAX_SCORE_CHAINS independent sums over d (chain c takes d = c mod chains; an odd
 * last d joins chain 0 through SOFTMAX_CPU_QK_ODD), added at the end. */
#if SOFTMAX_HEAD_DIM % SOFTMAX_SCORE_CHAINS
#define SOFTMAX_CPU_QK_ODD(PAN, SC, T, R)                                                          \
    SC = fma(CLATTN_SPLAT16(qv[r0 + (R)][SOFTMAX_HEAD_DIM - 1]),                                   \
             CLATTN_VLOAD(KP_DT, 16, SOFTMAX_HEAD_DIM - 1 + (T) * SOFTMAX_HEAD_DIM, (PAN)), SC)
#else
#define SOFTMAX_CPU_QK_ODD(PAN, SC, T, R)
#endif
#define SOFTMAX_CPU_QK(PAN, S)                                                                     \
    do {                                                                                           \
        float16 sc[SOFTMAX_SCORE_CHAINS][SOFTMAX_STEP_BLOCKS][SOFTMAX_ROWS];                       \
        _Pragma("unroll") for (uint c = 0; c < SOFTMAX_SCORE_CHAINS; c++)                          \
            _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++)                       \
                _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)                          \
                    sc[c][t][r] = CLATTN_SPLAT16(0.0f);                                            \
        _Pragma("unroll") for (uint d = 0; d + SOFTMAX_SCORE_CHAINS <= SOFTMAX_HEAD_DIM;           \
                               d += SOFTMAX_SCORE_CHAINS) {                                        \
            _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++) {                     \
                _Pragma("unroll") for (uint c = 0; c < SOFTMAX_SCORE_CHAINS; c++) {                \
                    float16 kv = CLATTN_VLOAD(KP_DT, 16, d + c + t * SOFTMAX_HEAD_DIM, (PAN));     \
                    _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)                      \
                        sc[c][t][r] = fma(CLATTN_SPLAT16(qv[r0 + r][d + c]), kv, sc[c][t][r]);     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++)                           \
            _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {                            \
                SOFTMAX_CPU_QK_ODD(PAN, sc[0][t][r], t, r);                                        \
                (S)[t][r] = sc[0][t][r];                                                           \
                _Pragma("unroll") for (uint c = 1; c < SOFTMAX_SCORE_CHAINS; c++)                  \
                    (S)[t][r] += sc[c][t][r];                                                      \
            }                                                                                      \
    } while (0)

/* The scores of one step from K's rows (SOFTMAX_K_DIRECT): keys K0 + t * 16 + j, read as the
 * group's last key (gend - 1) past it. */
#define SOFTMAX_CPU_QK_DIRECT(K0, S)                                                               \
    do {                                                                                           \
        _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++)                           \
            _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {                            \
                float16 tj[16];                                                                    \
                _Pragma("unroll") for (uint j = 0; j < 16; j++) {                                  \
                    __global const CLATTN_STYPE(K_DT) *kr =                                        \
                        krows + (ulong)min((K0) + (int)(t * 16 + j), gend - 1) * krs;              \
                    float16 a = vload16(0, qv[r0 + r]) * CLATTN_VLOAD(K_DT, 16, 0, kr);            \
                    _Pragma("unroll") for (uint c = 1; c < DVEC; c++)                              \
                        a = fma(vload16(c, qv[r0 + r]), CLATTN_VLOAD(K_DT, 16, c, kr), a);         \
                    tj[j] = a;                                                                     \
                }                                                                                  \
                (S)[t][r] = softmax_cpu_lanesum16(tj);                                             \
            }                                                                                      \
    } while (0)

/* A step's scores, from the panels or (SOFTMAX_K_DIRECT with kdir_) from K's rows. */
#if SOFTMAX_K_DIRECT
#define SOFTMAX_CPU_SCORES(K0, S)                                                                  \
    do {                                                                                           \
        if (kdir_)                                                                                 \
            SOFTMAX_CPU_QK_DIRECT(K0, S);                                                          \
        else                                                                                       \
            SOFTMAX_CPU_QK(kpan + (ulong)(K0) * SOFTMAX_HEAD_DIM, S);                              \
    } while (0)
#else
#define SOFTMAX_CPU_SCORES(K0, S) SOFTMAX_CPU_QK(kpan + (ulong)(K0) * SOFTMAX_HEAD_DIM, S)
#endif

/* Packs K of head (b, hk) into panels kp[bh][Npad/16][SOFTMAX_HEAD_DIM][16] and V into rows
 * vp[bh][Npad][DVPAD], zero-filling keys in [kl, ...) and columns in [SOFTMAX_HEAD_DIM_V, DVPAD).
 * kl is the sequence's key length (Nk without key_lengths): keys past it are written as zeros
 * only up to the next step boundary (SOFTMAX_STEP_KEYS: the furthest the main kernel reads for it),
 * not at all beyond, so a plan baked for a long capacity packs what the sequences hold. Paged
 * K/V (paged != 0): k and v are the pools, key j of sequence b in slot j % page of page
 * bt[bt_off + b * bt_sb + j / page]; a key whose page id is invalid (outside the row's maxp
 * entries or [0, npages)) is packed as zeros, never read (the main kernel masks it).
 * With v_direct the V rows are not packed: the main kernel reads them in place (see there).
 * Global size: (Npad, B * Hk). Every argument is read before any branch. */
__kernel void clattn_softmax_pack_kv(__global const CLATTN_STYPE(K_DT) *k, ulong k_off, ulong4 ks,
                                   __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 vs,
                                   uint hk_count, uint nk, uint npad,
                                   __global CLATTN_STYPE(KP_DT) *kp,
                                   __global CLATTN_STYPE(VP_DT) *vp,
                                   __global const int *key_lengths, ulong kl_off, int has_kl,
                                   __global const int *bt, ulong bt_off, ulong bt_sb, uint maxp,
                                   uint page, uint npages, int paged, int v_direct)
{
    const ulong ko = k_off, vo = v_off, klo = kl_off, bo = bt_off, bsb = bt_sb;
    const int vdir = v_direct;
    const ulong4 kst = ks, vst = vs;
    const uint hkc = hk_count, n = nk, np = npad, mp = maxp, ps = max(page, 1u), npg = npages;
    const int hkl = has_kl, pg = paged;
    uint j = get_global_id(0);
    uint bh = get_global_id(1);
    uint b = bh / hkc, h = bh - b * hkc; /* no div/rem pair (oclgrind and freeze) */
    long kl = clattn_key_length(key_lengths, klo + b, hkl, n);
    long zend = min((kl + SOFTMAX_STEP_KEYS - 1) / SOFTMAX_STEP_KEYS * SOFTMAX_STEP_KEYS,
                    (long)np);
    if (j >= np || (long)j >= zend)
        return;
    uint col = j / ps;
    int id = pg && j < n && col < mp ? bt[bo + (ulong)b * bsb + col] : -1;
    bool live = !pg || (id >= 0 && (uint)id < npg);
    /* the element (row, d) of K / V: b's row j, or slot j % page of page id */
    ulong rb = pg ? (ulong)max(id, 0) : b, rj = pg ? (ulong)(j - col * ps) : j;
    ulong kbase = ((ulong)bh * (np / SOFTMAX_KEY_BLOCK) + j / SOFTMAX_KEY_BLOCK) * SOFTMAX_HEAD_DIM * SOFTMAX_KEY_BLOCK +
                  j % SOFTMAX_KEY_BLOCK;
    ulong vbase = ((ulong)bh * np + j) * DVPAD;
    bool in = (long)j < kl && live;
    for (uint d = 0; d < SOFTMAX_HEAD_DIM; d++) {
        float x = in ? CLATTN_LOAD(K_DT, k, clattn_at(ko, kst, rb, h, rj, d)) : 0.0f;
        CLATTN_STORE(KP_DT, x, kp, kbase + (ulong)d * SOFTMAX_KEY_BLOCK);
    }
    if (vdir)
        return; /* the main kernel reads V's rows where they are */
    for (uint d = 0; d < DVPAD; d++) {
        float x = in && d < SOFTMAX_HEAD_DIM_V
                      ? CLATTN_LOAD(V_DT, v, clattn_at(vo, vst, rb, h, rj, d))
                      : 0.0f;
        CLATTN_STORE(VP_DT, x, vp, vbase + d);
    }
}

/* Writes one finished row: out = acc / l, lse = natural-log log-sum-exp (from base-2 state). */
#define SOFTMAX_STORE_ROW(ACC, M, L, B, H, ROW)                                                    \
    do {                                                                                           \
        float inv_ = clattn_online_inv(L);                                                         \
        for (uint d_ = 0; d_ < SOFTMAX_HEAD_DIM; d_++)                                             \
            CLATTN_STORE(O_DT, (ACC)[d_] * inv_, out, clattn_at(o_off, os, (B), (H), (ROW), d_)); \
        if (has_lse)                                                                               \
            lse[clattn_at(l_off, ls, (B), (H), (ROW), 0)] = clattn_online_lse2(M, L) * CLATTN_LN2;  \
    } while (0)

/* ---- the CPU family ----
 * clattn_softmax_fwd_cpu: one work-item owns a query block of SOFTMAX_QGROUPS groups of SOFTMAX_ROWS
 * rows and walks the keys in blocks of SOFTMAX_TILE_KV; every group of the query block consumes a
 * key block before the next one is touched, so the block's K panels and V rows are read from the
 * caches SOFTMAX_QGROUPS times instead of streaming all of K and V per group (at N >= 2048 they no
 * longer fit in L2). A group's state (accumulators, running max, sums) lives in private arrays
 * (the work-item's stack, in L1) and is moved into registers for its pass over a key block. */

/* max(a, b) lane by lane as one compare-and-select (x86 maxps) where fmax's NaN rule costs PoCL
 * four instructions per vector (no score is NaN for finite inputs; -inf for masked keys). */
inline float16 softmax_cpu_max16(float16 a, float16 b)
{
    return a > b ? a : b;
}

/* The largest lane by halving (element by element under CLATTN_NO_SWIZZLE, common.clh). */
inline float softmax_cpu_hmax16(float16 v)
{
#ifndef CLATTN_NO_SWIZZLE
    float8 a = v.lo > v.hi ? v.lo : v.hi;
    float4 b = a.lo > a.hi ? a.lo : a.hi;
    float2 c = b.lo > b.hi ? b.lo : b.hi;
    return c.x > c.y ? c.x : c.y;
#else
    return clattn_hmax16(v);
#endif
}

#if SOFTMAX_OPTS
/* The options of one row i over 16 keys j0 .. j0 + 15 of a score vector s (base 2), applied as
 * softmax_opt_logit does lane by lane: softcap, bias (one vector load where the bias has unit key
 * stride and the 16 keys are in range, else lane by lane), ALiBi from the lanes' positions, the
 * boolean mask (likewise) and the block mask once (j0 is a multiple of 16 and block_k of 16, so
 * the 16 keys lie in one key block). The window and the row limits are the caller's (lane masks
 * from each row's [lo, hi)); lanes at or past nk are never read (the caller masks them). fl: the
 * options to apply (a subset of o->flags). */
inline float16 softmax_cpu_opts16(const softmax_opt *o, uint fl, float16 s, long i, long j0,
                                  long nk)
{
    if (fl & SOFTMAX_OPT_SOFTCAP)
        s = CLATTN_SPLAT16(o->cap) * tanh(s * CLATTN_SPLAT16(CLATTN_LN2 / o->cap)) *
            CLATTN_SPLAT16(CLATTN_LOG2E);
    if (fl & SOFTMAX_OPT_BIAS) {
        ulong at = o->bias_base + (ulong)i * o->bias_si + (ulong)j0 * o->bias_sj;
        float16 bv;
        if (o->bias_sj == 1 && j0 + 16 <= nk) {
            bv = CLATTN_VLOAD(B_DT, 16, 0, o->bias + at);
        } else {
            float t[16];
            for (uint l = 0; l < 16; l++)
                t[l] = j0 + l < nk ? CLATTN_LOAD(B_DT, o->bias, at + l * o->bias_sj) : 0.0f;
            bv = vload16(0, t);
        }
        s += bv * CLATTN_SPLAT16(CLATTN_LOG2E);
    }
    if (fl & SOFTMAX_OPT_ALIBI) {
        float16 dist = convert_float16(CLATTN_LANES16) + CLATTN_SPLAT16((float)(j0 - (i + o->shift)));
        s -= CLATTN_SPLAT16(o->slope2) * fabs(dist);
    }
    if (fl & SOFTMAX_OPT_MASK) {
        ulong at = o->mask_base + (ulong)i * o->mask_si + (ulong)j0 * o->mask_sj;
        if (o->mask_sj == 1 && j0 + 16 <= nk) {
            s = clattn_mask16(s, convert_int16(vload16(0, o->mask + at)) != CLATTN_ISPLAT16(0));
        } else {
            float t[16];
            for (uint l = 0; l < 16; l++)
                t[l] = j0 + l < nk && o->mask[at + l * o->mask_sj] != 0 ? 0.0f : -INFINITY;
            s += vload16(0, t);
        }
    }
    if ((fl & SOFTMAX_OPT_BLOCKS) && j0 < nk &&
        !o->bmask[o->bm_base + (ulong)(i / o->bq) * o->bm_si + (ulong)(j0 / o->bk) * o->bm_sj])
        s = CLATTN_SPLAT16(-INFINITY);
    /* j0 is a multiple of 16 and a page holds at least 16 keys: one page id for all 16 lanes */
    if ((fl & SOFTMAX_OPT_PAGED) && softmax_opt_page(o, j0) < 0)
        s = CLATTN_SPLAT16(-INFINITY);
    return s;
}
#define CPU_OPT_ARGS , SOFTMAX_OPT_PARAMS
#else
#define CPU_OPT_ARGS
#endif

/* Split-KV (issue 17, -DSOFTMAX_SPLIT=1; without it the kernel is the unsplit one, unchanged):
 * each work-item's keys (those its rows see: the sequence's key length, causal limit and window,
 * not the plan's Nk) are cut into nsplit ranges of whole SOFTMAX_TILE_KV blocks (trailing ranges
 * may be empty; split_keys, the plan's cut of its capacity, is an upper bound the kernel no
 * longer needs); global dimension 1 is (B * Hq) x nsplit, the split fastest.
 * Each work-item runs the unsplit loop over its range only (intersected with its rows' causal,
 * key-length and window ranges and the block mask) and writes, per row, its un-normalised
 * accumulators (part_acc[(b, hq, row, split)][DVPAD]) and its base-2 running maximum and sum
 * (part_ml[(b, hq, row, split)][2]); clattn_softmax_split_merge combines them. */
#ifndef SOFTMAX_SPLIT
#define SOFTMAX_SPLIT 0
#endif
#if SOFTMAX_SPLIT
#define CPU_SPLIT_ARGS                                                                             \
    , uint nsplit, uint split_keys, __global float *part_acc, __global float *part_ml
#else
#define CPU_SPLIT_ARGS
#endif

/* K read in place (-DSOFTMAX_K_DIRECT=1: plans whose keys are each read by one query block, such
 * as decoding, where packing K would copy at memory bandwidth as many bytes as the attention
 * itself reads; lib/ops/softmax_enqueue.c, k_in_place). With kdir != 0 a step's scores come from
 * K's own rows (kd: element type K_DT, unit stride over D, a multiple of 16) instead of the
 * panels: per row and key a float16 of partial dot products over d, then 16 keys' partials summed
 * into the lanes of one score vector (softmax_cpu_lanesum16); keys past the group's end are
 * read as its last key (then masked), so no row outside K is touched. kdir == 0: the panels, as
 * without the define (a K whose layout does not allow it). */
#ifndef SOFTMAX_K_DIRECT
#define SOFTMAX_K_DIRECT 0
#endif
#if SOFTMAX_K_DIRECT
#if SOFTMAX_HEAD_DIM % 16
#error "SOFTMAX_K_DIRECT needs SOFTMAX_HEAD_DIM a multiple of 16"
#endif
#define CPU_KDIR_ARGS , __global const CLATTN_STYPE(K_DT) *kd, ulong kd_off, ulong4 kds, int kdir
#else
#define CPU_KDIR_ARGS
#endif

/* Lane j of the result: the sum of T[j]'s 16 lanes. Halving across pairs of vectors (45 shuffles
 * and adds for 16 vectors, against 16 horizontal sums of 8 operations each): level 1 puts two
 * vectors' halves side by side and adds, leaving 8 partials of each of 2 keys per vector; each
 * further level halves the partials per key and doubles the keys per vector. */
inline float16 softmax_cpu_lanesum16(const float16 *t)
{
#ifndef CLATTN_NO_SWIZZLE
    float16 u[8], w[4], x[2];
    _Pragma("unroll") for (uint i = 0; i < 8; i++)
        u[i] = (float16)(t[2 * i].lo, t[2 * i + 1].lo) + (float16)(t[2 * i].hi, t[2 * i + 1].hi);
    _Pragma("unroll") for (uint i = 0; i < 4; i++) {
        float16 a = u[2 * i], b = u[2 * i + 1];
        w[i] = (float16)(a.s0123, a.s89ab, b.s0123, b.s89ab) +
               (float16)(a.s4567, a.scdef, b.s4567, b.scdef);
    }
    _Pragma("unroll") for (uint i = 0; i < 2; i++) {
        float16 a = w[2 * i], b = w[2 * i + 1];
        x[i] = (float16)(a.s01, a.s45, a.s89, a.scd, b.s01, b.s45, b.s89, b.scd) +
               (float16)(a.s23, a.s67, a.sab, a.sef, b.s23, b.s67, b.sab, b.sef);
    }
    return (float16)(x[0].even, x[1].even) + (float16)(x[0].odd, x[1].odd);
#else
    float a[16];
    for (uint j = 0; j < 16; j++)
        a[j] = clattn_hsum16(t[j]);
    return vload16(0, a);
#endif
}

/* GQA folding (issue 17 section 1, -DSOFTMAX_GQA_FOLD=G, G = Hq / Hk, only where G x Nq rows fit
 * one query block and no option varies by head within a group: no ALiBi, no sinks, option
 * tensors broadcast over heads): global dimension 1 is B * Hk (x nsplit) and one work-item's rows
 * are slot r -> query head hk * G + r / Nq, sequence row r % Nq, for r < G * Nq (later slots
 * duplicate the last, never stored), so each K/V panel is read once per KV head instead of G
 * times. Without it slot r is row row0 + r of head h. CPU_ROW_REAL: a slot that is a row. */
#ifndef SOFTMAX_GQA_FOLD
#define SOFTMAX_GQA_FOLD 0
#endif
#if SOFTMAX_GQA_FOLD
#define CPU_ROW_SLOT(i) min((uint)(i), SOFTMAX_GQA_FOLD * nq - 1)
#define CPU_ROW_HEAD(i) (h + CPU_ROW_SLOT(i) / nq)
#define CPU_ROW_SEQ(i) (CPU_ROW_SLOT(i) - CPU_ROW_SLOT(i) / nq * nq)
#define CPU_ROW_REAL(i) ((uint)(i) < SOFTMAX_GQA_FOLD * nq)
#else
#define CPU_ROW_HEAD(i) h
#define CPU_ROW_SEQ(i) (row0 + (uint)(i))
#define CPU_ROW_REAL(i) true
#endif

/* Writes one finished CPU-family row of Dv outputs from its accumulators (a[DVPAD]) and its
 * online state (m, l): out = a / l (the sink in the denominator with options), lse natural. */
#if SOFTMAX_OPTS
#define SOFTMAX_CPU_FINISH(M, L, F, LSE2) softmax_opt_finish(&o, (M), (L), &(F), &(LSE2))
#else
#define SOFTMAX_CPU_FINISH(M, L, F, LSE2)                                                          \
    do {                                                                                           \
        (F) = clattn_online_inv(L);                                                                \
        (LSE2) = clattn_online_lse2((M), (L));                                                     \
    } while (0)
#endif

/* Global size: (ceil(Nq / (SOFTMAX_ROWS * SOFTMAX_QGROUPS)) rounded up to the work-group, B * Hq);
 * npad (the packed key count) a multiple of SOFTMAX_STEP_BLOCKS * 16. For each key block, each
 * group of the query block loads its state into registers and consumes the block's keys
 * SOFTMAX_STEP_BLOCKS 16-key panels at a time: SOFTMAX_ROWS x SOFTMAX_STEP_BLOCKS float16 score
 * vectors (each K panel load feeds SOFTMAX_ROWS FMAs), masked only in steps that reach past the
 * group's shortest row; one online-softmax rescale per step (a lazy one, skipped by a branch
 * unless the maximum grows, computed wrong results in the CI's oclgrind --uninitialized run); row
 * sums are kept per lane and reduced once at the end; then the probabilities times V's rows into
 * SOFTMAX_ROWS x DVVEC float16 accumulators (in SOFTMAX_PV_PASSES passes, see above).
 *
 * With SOFTMAX_OPTS (the options of softmax_opts.clh as its last parameters): each row's key range
 * is narrowed to its window ([lo, hi), softmax_opt_range); a group starts at its smallest lo
 * rounded down to a step and ends at its largest hi, and the work-item's key blocks start at the
 * smallest start of its groups, so a window costs its width, not Nk; steps that reach outside any
 * row's range are masked per lane; the other options are applied to the score vectors
 * (softmax_cpu_opts16); key blocks, groups' blocks and steps that meet no live block of the block
 * mask are skipped (never loaded); rows finish with the sink (softmax_opt_finish).
 * Serving (SOFTMAX_OPT_SEQ, issue 17): the work-item's rows are its sequence's rows i (loaded
 * from and stored to rows o.qrow0 + i of batch o.qbat), aligned to the sequence's own lengths
 * (position i + kl - qlen); the grid stays sized by the plan's Nq (T packed): blocks wholly past
 * a packed sequence return at once, q_lengths padding rows are stored as rows that see no key,
 * and groups with no row of the sequence do no work. */
__kernel void clattn_softmax_fwd_cpu(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                                   __global const CLATTN_STYPE(KP_DT) *kp,
                                   __global const CLATTN_STYPE(VP_DT) *vp, ulong vp_off,
                                   ulong4 vps, uint npad,
                                   __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 os,
                                   __global float *lse, ulong l_off, ulong4 ls, int has_lse,
                                   __global const int *key_lengths, ulong kl_off, int has_kl,
                                   uint hq_count, uint hk_count, uint nq, uint nk,
                                   float scale_log2, int causal CPU_SPLIT_ARGS CPU_OPT_ARGS
                                   CPU_KDIR_ARGS)
{
    const ulong vpo = vp_off; /* read before the first branch (rusticl, see DESIGN.md) */
    const ulong4 vpst = vps;
#if SOFTMAX_K_DIRECT
    const int kdir_ = kdir;
    const ulong kdo = kd_off;
    const ulong4 kdst = kds;
#endif
#if SOFTMAX_SPLIT
    /* The split's arguments read before the first branch (rusticl, see DESIGN.md). */
    uint ns = nsplit;
    __global float *pacc = part_acc, *pml = part_ml;
    uint sbh = get_global_id(1);
    uint bh = sbh / ns;
    uint split = sbh - bh * ns;
#else
    uint bh = get_global_id(1);
#endif
#if SOFTMAX_GQA_FOLD
    /* Dimension 1 runs over (b, hk): the rows are those of the SOFTMAX_GQA_FOLD query heads of KV
     * head hk; h is the group's first, the options' head (they do not vary within the group). */
    uint b = bh / hk_count, hk = bh - b * hk_count; /* no div/rem pair (oclgrind and freeze) */
    uint h = hk * SOFTMAX_GQA_FOLD;
#else
    uint b = bh / hq_count, h = bh - b * hq_count; /* no div/rem pair (oclgrind and freeze) */
    uint hk = h / (hq_count / hk_count);
#endif
#if SOFTMAX_OPTS
    /* Every option argument is read before the first branch (softmax_opts.clh). */
    SOFTMAX_OPT_SETUP(o, b, h, nq, nk);
#endif
    long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, nk);
    /* The sequence's query rows: rows i < sqlen are rows srow0 + i of batch sb of q, out and lse,
     * at position i + spos - sqlen; rows sqlen <= i < slim are padding (q_lengths), stored as rows
     * that see no key; rows from slim on (past nq, or past a packed sequence) are not stored. */
#if SOFTMAX_OPTS
    softmax_opt_seq(&o, kl);
    long sqlen = o.qlen, spos = o.qlen + o.shift;
    ulong srow0 = (ulong)o.qrow0;
    uint sb = o.qbat, slim = (o.flags & SOFTMAX_OPT_VARLEN) ? (uint)o.qlen : nq;
#else
    long sqlen = nq, spos = nk;
    ulong srow0 = 0;
    uint sb = b, slim = nq;
#endif
    /* Query blocks are handed out last-first: under a causal mask the last rows see the most keys,
     * and PoCL takes work-groups in order, so the long ones start first and the short ones fill in. */
#if SOFTMAX_GQA_FOLD
    uint items = 1; /* the plan folds only where the group's G x nq rows fit one query block */
#else
    uint items = (nq + SOFTMAX_QBLOCK - 1) / SOFTMAX_QBLOCK;
#endif
    uint gid = get_global_id(0);
    if (gid >= items)
        return; /* no barriers in this kernel: early exit is safe */
    uint row0 = (items - 1 - gid) * SOFTMAX_QBLOCK;
#if !SOFTMAX_GQA_FOLD
    if (row0 >= slim)
        return; /* a block wholly past a packed sequence's rows: nothing to store */
#endif
    ulong kvh = (ulong)b * hk_count + hk;
    __global const CLATTN_STYPE(KP_DT) *kpan = kp + kvh * (ulong)npad * SOFTMAX_HEAD_DIM;
    /* V's rows of head (b, hk): the packed rows, or V's own (vps.s2 apart) where the host found
     * them laid out as packed ones would be (element type VP_DT, unit stride over Dv, Dv a multiple
     * of 16, not paged); the P.V loops read no key at or past the group's end, so no padding row
     * is needed. */
    __global const CLATTN_STYPE(VP_DT) *vrows = vp + vpo + b * vpst.s0 + hk * vpst.s1;
    const ulong vrs = vpst.s2;
#if SOFTMAX_K_DIRECT
    /* K's own rows of head (b, hk), kdst.s2 apart (read where kdir_ != 0) */
    __global const CLATTN_STYPE(K_DT) *krows = kd + kdo + b * kdst.s0 + hk * kdst.s1;
    const ulong krs = kdst.s2;
#endif
    /* The last row computed: tail and padding rows duplicate it (never stored as computed). */
    uint qmax = sqlen > 0 ? (uint)sqlen - 1 : 0;

    float qv[SOFTMAX_QBLOCK][SOFTMAX_HEAD_DIM];
    float16 accs[SOFTMAX_QBLOCK][DVVEC];
    float16 lsum[SOFTMAX_QBLOCK];
    float ms[SOFTMAX_QBLOCK];
    int lims[SOFTMAX_QBLOCK];
    int gmin[SOFTMAX_QGROUPS], gmax[SOFTMAX_QGROUPS];
    int kend = 0;
#if SOFTMAX_OPTS
    /* Each row's first key (lims: its end); per group its first step and the largest first key. */
    int los[SOFTMAX_QBLOCK];
    int glo[SOFTMAX_QGROUPS], gmaxlo[SOFTMAX_QGROUPS];
    /* Each slot's sequence row as computed (the options' row index); per group and for the
     * work-item the smallest and largest (block-mask liveness). */
    uint rows[SOFTMAX_QBLOCK];
    uint grlo[SOFTMAX_QGROUPS], grhi[SOFTMAX_QGROUPS];
    uint wrlo = nq, wrhi = 0;
    int kbeg = (int)npad;
    /* The options applied to score vectors (the window is the rows' ranges). */
    uint vflags = o.flags & (SOFTMAX_OPT_BIAS | SOFTMAX_OPT_MASK | SOFTMAX_OPT_ALIBI |
                             SOFTMAX_OPT_SOFTCAP | SOFTMAX_OPT_BLOCKS | SOFTMAX_OPT_PAGED);
#endif
    for (uint g = 0; g < SOFTMAX_QGROUPS; g++) {
        int lo = (int)nk, hi = 0;
        bool glive = false;
#if SOFTMAX_OPTS
        int flo = (int)nk, mlo = 0;
        uint rmin = nq, rmax = 0;
#endif
        for (uint r = 0; r < SOFTMAX_ROWS; r++) {
            uint i = g * SOFTMAX_ROWS + r;
            uint si = CPU_ROW_SEQ(i);
            uint row = min(si, qmax);
            glive = glive || (CPU_ROW_REAL(i) && (long)si < sqlen);
            int lr = sqlen > 0 ? (int)clattn_visible(row, sqlen, spos, kl, causal) : 0;
#if SOFTMAX_OPTS
            rows[i] = row;
            rmin = min(rmin, row);
            rmax = max(rmax, row);
            long rlo = 0, rhi = lr;
            softmax_opt_range(&o, row, &rlo, &rhi);
            lr = (int)rhi;
            los[i] = (int)rlo;
            mlo = max(mlo, (int)rlo);
            if (rlo < rhi) { /* a row that sees no key does not widen its group's range */
                flo = min(flo, (int)rlo);
                hi = max(hi, lr);
            }
            lims[i] = lr;
            lo = min(lo, lr);
#else
            lims[i] = lr;
            lo = min(lo, lr);
            hi = max(hi, lr);
#endif
            softmax_load_q(qv[i], q, q_off, qs, sb, CPU_ROW_HEAD(i), min(srow0 + row, (ulong)nq - 1),
                           scale_log2);
            for (uint c = 0; c < DVVEC; c++)
                accs[i][c] = CLATTN_SPLAT16(0.0f);
            lsum[i] = CLATTN_SPLAT16(0.0f);
            ms[i] = -INFINITY;
        }
        /* A group with no row of the sequence does no work. */
        gmin[g] = lo;
        gmax[g] = glive ? hi : 0;
#if SOFTMAX_OPTS
        grlo[g] = rmin;
        grhi[g] = rmax;
        glo[g] = flo / SOFTMAX_STEP_KEYS * SOFTMAX_STEP_KEYS;
        gmaxlo[g] = mlo;
        if (gmax[g] > glo[g]) {
            kbeg = min(kbeg, glo[g]);
            wrlo = min(wrlo, rmin);
            wrhi = max(wrhi, rmax);
        }
#endif
        kend = max(kend, gmax[g]);
    }
#if SOFTMAX_SPLIT
    /* This work-item's keys: its share of the keys its rows see, [sfrom, kend) cut into nsplit
     * ranges of whole key blocks (the sequence's own length, not the plan's capacity: a plan baked
     * for 64k keys running at 4k spreads the 4k over every split; trailing ranges may be empty).
     * Every split of a query block computes the same cut from the same rows. */
#if SOFTMAX_OPTS
    int sfrom = kbeg < kend ? kbeg / SOFTMAX_KV_BLOCK * SOFTMAX_KV_BLOCK : 0;
#else
    int sfrom = 0;
#endif
    int sspan = max(kend - sfrom, 0);
    int skd = (sspan + (int)ns * SOFTMAX_KV_BLOCK - 1) / ((int)ns * SOFTMAX_KV_BLOCK) *
              SOFTMAX_KV_BLOCK;
    int sbeg = min(sfrom + (int)split * skd, kend);
    int send = min(sbeg + skd, kend);
    kend = 0;
    for (uint g = 0; g < SOFTMAX_QGROUPS; g++) {
        gmax[g] = min(gmax[g], send);
        kend = max(kend, gmax[g]);
    }
#endif

#if SOFTMAX_OPTS
#if SOFTMAX_SPLIT
    kbeg = max(kbeg, sbeg);
#endif
    for (int kb0 = kbeg; kb0 < kend; kb0 += SOFTMAX_KV_BLOCK) {
        if (!softmax_opt_live(&o, wrlo, wrhi, kb0, min(kb0 + SOFTMAX_KV_BLOCK, kend) - 1))
            continue; /* no live block of the block mask: never loaded */
#elif SOFTMAX_SPLIT
    for (int kb0 = sbeg; kb0 < kend; kb0 += SOFTMAX_KV_BLOCK) {
#else
    for (int kb0 = 0; kb0 < kend; kb0 += SOFTMAX_KV_BLOCK) {
#endif
        for (uint g = 0; g < SOFTMAX_QGROUPS; g++) {
            int gend = min(gmax[g], kb0 + SOFTMAX_KV_BLOCK);
#if SOFTMAX_OPTS
            int gbeg = max(kb0, glo[g]);
            uint gr0 = grlo[g], gr1 = grhi[g];
            if (gend <= gbeg || !softmax_opt_live(&o, gr0, gr1, gbeg, gend - 1))
                continue;
#else
            int gbeg = kb0;
            if (gend <= kb0)
                continue;
#endif
            uint r0 = g * SOFTMAX_ROWS;
            float16 lv[SOFTMAX_ROWS];
            float m[SOFTMAX_ROWS];
#if SOFTMAX_PV_INREG
            float16 acc[SOFTMAX_ROWS][DVVEC];
#endif
            _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {
#if SOFTMAX_PV_INREG
                _Pragma("unroll") for (uint c = 0; c < DVVEC; c++)
                    acc[r][c] = accs[r0 + r][c];
#endif
                lv[r] = lsum[r0 + r];
                m[r] = ms[r0 + r];
            }
            for (int k0 = gbeg; k0 < gend; k0 += SOFTMAX_STEP_KEYS) {
#if SOFTMAX_OPTS
                if (!softmax_opt_live(&o, gr0, gr1, k0, min(k0 + SOFTMAX_STEP_KEYS, gend) - 1))
                    continue;
#endif
                float16 s[SOFTMAX_STEP_BLOCKS][SOFTMAX_ROWS];
                SOFTMAX_CPU_SCORES(k0, s);
#if SOFTMAX_OPTS
                bool edge = k0 < gmaxlo[g] || k0 + SOFTMAX_STEP_KEYS > gmin[g];
#else
                bool edge = k0 + SOFTMAX_STEP_KEYS > gmin[g];
#endif
#if SOFTMAX_OPTS
                /* The options on the score vectors, one branch per step when none applies (a
                 * window alone); a unit-stride bias over in-range keys without softcap is added by
                 * plain vector loads, the rest by softmax_cpu_opts16. */
                if (vflags) {
                    bool fast_bias = (vflags & (SOFTMAX_OPT_BIAS | SOFTMAX_OPT_SOFTCAP)) ==
                                         SOFTMAX_OPT_BIAS &&
                                     o.bias_sj == 1 && k0 + SOFTMAX_STEP_KEYS <= (int)nk;
                    uint rest = fast_bias ? vflags & ~SOFTMAX_OPT_BIAS : vflags;
                    _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {
                        long orow = rows[r0 + r];
                        if (fast_bias) {
                            __global const CLATTN_STYPE(B_DT) *brow =
                                o.bias + o.bias_base + (ulong)orow * o.bias_si + (ulong)k0;
                            _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++)
                                s[t][r] = fma(CLATTN_VLOAD(B_DT, 16, t, brow),
                                              CLATTN_SPLAT16(CLATTN_LOG2E), s[t][r]);
                        }
                        if (rest) {
                            _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++)
                                s[t][r] = softmax_cpu_opts16(&o, rest, s[t][r], orow,
                                                             k0 + (long)(t * SOFTMAX_KEY_BLOCK), nk);
                        }
                    }
                }
#endif
                float p[SOFTMAX_ROWS][SOFTMAX_STEP_KEYS];
#if !SOFTMAX_PV_INREG
                float corrs[SOFTMAX_ROWS];
#endif
                /* Each row's new maximum (ref: the exponent's reference, 0 while every score
                 * seen is masked, clattn_online_step) and its rescale factor 2^(m_old - ref),
                 * computed for all rows in one vector exp2 (exactly 1 where the maximum did not
                 * grow, 0 from a row's first live step on). */
#if SOFTMAX_ROWS > 16
#error "SOFTMAX_ROWS above 16: the rescale factors are one float16"
#endif
                float refs[16], dms[16];
                _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {
                    float16 sm = CLATTN_SPLAT16(-INFINITY);
                    _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++) {
                        if (edge) {
                            int16 key = CLATTN_LANES16 +
                                        CLATTN_ISPLAT16(k0 + (int)(t * SOFTMAX_KEY_BLOCK));
#if SOFTMAX_OPTS
                            s[t][r] = clattn_mask16(s[t][r],
                                                    (key >= CLATTN_ISPLAT16(los[r0 + r])) &
                                                        (key < CLATTN_ISPLAT16(lims[r0 + r])));
#else
                            s[t][r] = clattn_mask16(s[t][r], key < CLATTN_ISPLAT16(lims[r0 + r]));
#endif
                        }
                        sm = softmax_cpu_max16(sm, s[t][r]);
                    }
                    float bm = softmax_cpu_hmax16(sm);
                    float mnew = bm > m[r] ? bm : m[r];
                    float rs = mnew == -INFINITY ? 0.0f : mnew;
                    dms[r] = m[r] - rs;
                    refs[r] = rs;
                    m[r] = mnew;
                }
                _Pragma("unroll") for (uint r = SOFTMAX_ROWS; r < 16; r++)
                    dms[r] = 0.0f;
                float16 dm = vload16(0, dms);
                float16 cv = clattn_exp2_neg16(dm);
                vstore16(select(cv, CLATTN_SPLAT16(1.0f), dm == CLATTN_SPLAT16(0.0f)), 0, dms);
                _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {
                    float corr = dms[r];
                    lv[r] *= CLATTN_SPLAT16(corr);
#if SOFTMAX_PV_INREG
                    CLATTN_SCALE16(acc[r], DVVEC, corr);
#else
                    corrs[r] = corr;
#endif
                    float16 ref = CLATTN_SPLAT16(refs[r]);
                    _Pragma("unroll") for (uint t = 0; t < SOFTMAX_STEP_BLOCKS; t++) {
                        float16 e = clattn_exp2_neg16(s[t][r] - ref);
                        lv[r] += e;
                        vstore16(e, t, p[r]);
                    }
                }
                __global const CLATTN_STYPE(VP_DT) *vb = vrows + (ulong)k0 * vrs;
                /* the step's keys up to the group's end (V rows past it: not packed, not read) */
                const uint jn = (uint)min(SOFTMAX_STEP_KEYS, gend - k0);
#if SOFTMAX_PV_INREG
#if SOFTMAX_STEP_BLOCKS == 1
                _Pragma("unroll") for (uint j = 0; j < SOFTMAX_KEY_BLOCK; j++) { /* fully unrolled */
                    if (j >= jn)
                        break;
#else
                for (uint j = 0; j < jn; j++) { /* measured faster as a loop */
#endif
#if VP_DT == 0
                    CLATTN_AXPY16_ROWS(acc, SOFTMAX_ROWS, DVVEC, p, j, vb + j * vrs);
#else /* half V rows: CLATTN_AXPY16_ROWS with the load converted */
                    _Pragma("unroll") for (uint c = 0; c < DVVEC; c++) {
                        float16 x = CLATTN_VLOAD(VP_DT, 16, c, vb + j * vrs);
                        _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)
                            acc[r][c] = fma(CLATTN_SPLAT16(p[r][j]), x, acc[r][c]);
                    }
#endif
                }
#else /* !SOFTMAX_PV_INREG: the accumulators pass through registers a slice at a time */
                /* Unrolled passes: constant vector offsets, so each V load is one 64-byte load
                 * (with a run-time pass index LLVM split it into a 32-byte load and a
                 * vinsertf64x4 on an FMA port: 4 inserts beside the 16 FMAs of each key; N 2048
                 * D 128 ran 12% faster without them). */
                _Pragma("unroll") for (uint ps = 0; ps < SOFTMAX_PV_PASSES; ps++) {
                    const uint c0 = ps * SOFTMAX_PV_VECS;
                    float16 a[SOFTMAX_ROWS][SOFTMAX_PV_VECS];
                    _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)
                        _Pragma("unroll") for (uint c = 0; c < SOFTMAX_PV_VECS; c++)
                            a[r][c] = c0 + c < DVVEC ? accs[r0 + r][c0 + c] * CLATTN_SPLAT16(corrs[r])
                                                     : CLATTN_SPLAT16(0.0f);
                    /* by 2: half the loop's own instructions per key (steps are 16-key panels) */
                    _Pragma("unroll 2") for (uint j = 0; j < jn; j++) {
                        _Pragma("unroll") for (uint c = 0; c < SOFTMAX_PV_VECS; c++) {
                            if (c0 + c < DVVEC) {
                                float16 x = CLATTN_VLOAD(VP_DT, 16, c0 + c, vb + j * vrs);
                                _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)
                                    a[r][c] = fma(CLATTN_SPLAT16(p[r][j]), x, a[r][c]);
                            }
                        }
                    }
                    _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++)
                        _Pragma("unroll") for (uint c = 0; c < SOFTMAX_PV_VECS; c++)
                            if (c0 + c < DVVEC)
                                accs[r0 + r][c0 + c] = a[r][c];
                }
#endif
            }
            _Pragma("unroll") for (uint r = 0; r < SOFTMAX_ROWS; r++) {
#if SOFTMAX_PV_INREG
                _Pragma("unroll") for (uint c = 0; c < DVVEC; c++)
                    accs[r0 + r][c] = acc[r][c];
#endif
                lsum[r0 + r] = lv[r];
                ms[r0 + r] = m[r];
            }
        }
    }
#if SOFTMAX_SPLIT
    for (uint i = 0; i < SOFTMAX_QBLOCK; i++) {
        uint si = CPU_ROW_SEQ(i);
        if (CPU_ROW_REAL(i) && si < slim) {
            /* a padding row's partial is that of a row that saw no key */
            bool pad = (long)si >= sqlen;
            ulong p = (((ulong)b * hq_count + CPU_ROW_HEAD(i)) * nq + si) * ns + split;
            for (uint c = 0; c < DVVEC; c++)
                vstore16(accs[i][c], c, pacc + p * DVPAD);
            pml[2 * p] = pad ? -INFINITY : ms[i];
            pml[2 * p + 1] = pad ? 0.0f : clattn_hsum16(lsum[i]);
        }
    }
#else
    for (uint i = 0; i < SOFTMAX_QBLOCK; i++) {
        uint si = CPU_ROW_SEQ(i);
        if (CPU_ROW_REAL(i) && si < slim) {
            bool pad = (long)si >= sqlen;
            uint rh = CPU_ROW_HEAD(i);
            ulong orow = srow0 + si;
            float a[DVPAD];
            for (uint c = 0; c < DVVEC; c++)
                vstore16(accs[i][c], c, a);
            float l = pad ? 0.0f : clattn_hsum16(lsum[i]), m = pad ? -INFINITY : ms[i];
#if !SOFTMAX_OPTS && SOFTMAX_HEAD_DIM_V == SOFTMAX_HEAD_DIM
            SOFTMAX_STORE_ROW(a, m, l, sb, rh, orow);
#else
            float f, lse2;
            SOFTMAX_CPU_FINISH(m, l, f, lse2);
            for (uint d = 0; d < SOFTMAX_HEAD_DIM_V; d++)
                CLATTN_STORE(O_DT, a[d] * f, out, clattn_at(o_off, os, sb, rh, orow, d));
            if (has_lse)
                lse[clattn_at(l_off, ls, sb, rh, orow, 0)] = lse2 * CLATTN_LN2;
#endif
        }
    }
#endif
}

#if SOFTMAX_SPLIT
/* Merges the nsplit partials of each row written by clattn_softmax_fwd_cpu (SOFTMAX_SPLIT): with
 * M = max_s m_s, acc = sum_s acc_s 2^(m_s - M) and l = sum_s l_s 2^(m_s - M) (splits that saw no
 * key have m_s = -inf and weigh 0), then the row finishes as the unsplit kernel's (the sink joins
 * here) and is written in O_DT with its natural lse. Global size: (Nq, B * Hq), no padding;
 * partials are indexed by (b, query head, the sequence's row), the row stored through the
 * sequence's batch and first row (SOFTMAX_OPT_SEQ); rows past a packed sequence are skipped. */
__kernel void clattn_softmax_split_merge(__global const float *part_acc,
                                         __global const float *part_ml, uint nsplit,
                                         __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 os,
                                         __global float *lse, ulong l_off, ulong4 ls, int has_lse,
                                         uint hq_count, uint nq, uint nk CPU_OPT_ARGS)
{
    /* Every argument is read before the first branch (rusticl, see DESIGN.md). */
    uint ns = nsplit, n = nq, hl = has_lse;
    __global const float *pacc = part_acc, *pml = part_ml;
    __global CLATTN_STYPE(O_DT) *dst = out;
    __global float *dlse = lse;
    ulong oo = o_off, lo = l_off;
    ulong4 ost = os, lst = ls;
    uint row = get_global_id(0);
    uint bh = get_global_id(1);
    uint b = bh / hq_count, h = bh - b * hq_count;
#if SOFTMAX_OPTS
    SOFTMAX_OPT_SETUP(o, b, h, nq, nk);
    uint slim = (o.flags & SOFTMAX_OPT_VARLEN) ? (uint)o.qlen : n, sb = o.qbat;
    ulong orow = (ulong)o.qrow0 + row;
#else
    uint slim = n, sb = b;
    ulong orow = row;
#endif
    if (row >= slim)
        return; /* past a packed sequence's rows: not written */
    ulong p0 = ((ulong)bh * n + row) * ns;
    float mx = -INFINITY;
    for (uint s = 0; s < ns; s++)
        mx = fmax(mx, pml[2 * (p0 + s)]);
    float ref = mx == -INFINITY ? 0.0f : mx;
    float16 acc[DVVEC];
    for (uint c = 0; c < DVVEC; c++)
        acc[c] = CLATTN_SPLAT16(0.0f);
    float l = 0.0f;
    for (uint s = 0; s < ns; s++) {
        float w = exp2(pml[2 * (p0 + s)] - ref); /* 0 for a split that saw no key */
        l = fma(pml[2 * (p0 + s) + 1], w, l);
        for (uint c = 0; c < DVVEC; c++)
            acc[c] = fma(CLATTN_SPLAT16(w), vload16(c, pacc + (p0 + s) * DVPAD), acc[c]);
    }
    float a[DVPAD], f, lse2;
    for (uint c = 0; c < DVVEC; c++)
        vstore16(acc[c], c, a);
    SOFTMAX_CPU_FINISH(mx, l, f, lse2);
    for (uint d = 0; d < SOFTMAX_HEAD_DIM_V; d++)
        CLATTN_STORE(O_DT, a[d] * f, dst, clattn_at(oo, ost, sb, h, orow, d));
    if (hl)
        dlse[clattn_at(lo, lst, sb, h, orow, 0)] = lse2 * CLATTN_LN2;
}
#endif

/* clattn_softmax_fwd_gpu's V head dim (Dv): -DSOFTMAX_HEAD_DIM_V, else D. With -DSOFTMAX_OPTS=1 it
 * takes the options (softmax_opts.clh) last: per-score logits, the group's keys narrowed to its
 * rows' windows, key tiles no block of the block mask meets skipped (uniformly), sinks; and
 * issue 17's serving fields: with q_lengths / q_offsets a work-item's row is the sequence's row
 * i < o.qlen at (o.qbat, o.qrow0 + i) of q, out and lse (QLENS padding rows written as rows that
 * see no key, VARLEN rows past qlen not written, no q row outside the sequence read); with a
 * block table the K/V tile rows come from the page pools, invalid page ids staged as zeros
 * (never read) and their keys masked (softmax_opt_logit). */
#ifdef SOFTMAX_HEAD_DIM_V
#define GR_DV SOFTMAX_HEAD_DIM_V
#else
#define GR_DV SOFTMAX_HEAD_DIM
#endif
#if SOFTMAX_OPTS
#define GR_OPT_ARGS , SOFTMAX_OPT_PARAMS
/* The element index of head dim d of key `key` of K or V head (b, hk): with paged K/V its slot of
 * the pool page softmax_opt_page names (*ok cleared for an invalid id: nothing is loaded), else
 * the sequence's own row. */
inline ulong softmax_gr_kv_at(const softmax_opt *o, ulong off, ulong4 st, uint b, uint hk,
                              long key, uint d, bool *ok)
{
    /* Branch-free (selects): PoCL miscompiled branchy option code at D = 1 (softmax_gpu.cl). */
    bool paged = (o->flags & SOFTMAX_OPT_PAGED) != 0;
    long pg = softmax_opt_page(o, key); /* -1 without a table (maxp 0: nothing read) */
    *ok = *ok && (!paged || pg >= 0);
    ulong i0 = paged ? (ulong)max(pg, 0L) : (ulong)b;
    ulong i2 = paged ? (ulong)(key % (long)o->page) : (ulong)key;
    return clattn_at(off, st, i0, hk, i2, d);
}
#define GR_KV_AT(off, st, key, d, in) softmax_gr_kv_at(&o, (off), (st), b, hk, (key), (d), &(in))
#else
#define GR_OPT_ARGS
#define GR_KV_AT(off, st, key, d, in) clattn_at((off), (st), b, hk, (key), (d))
#endif

/* Global size: (ceil(Nq / SOFTMAX_WG_SIZE) * SOFTMAX_WG_SIZE, B * Hq); local size (SOFTMAX_WG_SIZE, 1). */
__kernel __attribute__((reqd_work_group_size(SOFTMAX_WG_SIZE, 1, 1))) void
clattn_softmax_fwd_gpu(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                     __global const CLATTN_STYPE(K_DT) *k, ulong k_off, ulong4 ks,
                     __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 vs,
                     __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 os, __global float *lse, ulong l_off,
                     ulong4 ls, int has_lse, __global const int *key_lengths, ulong kl_off,
                     int has_kl, uint hq_count, uint hk_count, uint nq, uint nk, float scale_log2,
                     int causal GR_OPT_ARGS)
{
    __local float kt_tile[SOFTMAX_TILE_KV][SOFTMAX_HEAD_DIM];
    __local float vt_tile[SOFTMAX_TILE_KV][GR_DV];
    uint lid = get_local_id(0);
    uint row = get_global_id(0);
    uint bh = get_global_id(1);
    uint b = bh / hq_count, h = bh - b * hq_count; /* no div/rem pair (oclgrind and freeze) */
    uint hk = h / (hq_count / hk_count);
    ulong qo = q_off; /* read before the branch that loads the row (rusticl, see DESIGN.md) */
    ulong4 qst = qs;
#if SOFTMAX_OPTS
    SOFTMAX_OPT_SETUP(o, b, h, nq, nk); /* every option argument read before any branch */
#endif
    long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, nk);
#if SOFTMAX_OPTS
    /* The sequence's rows (nrow, at (qb, qr0 + i) of q, out, lse), the Nk its causal mask aligns
     * to (nvis: kl with SEQ flags, else Nk) and the rows stored (VARLEN: its own only). */
    softmax_opt_seq(&o, kl);
    const long nrow = o.qlen, nvis = o.qlen + o.shift;
    const uint qb = o.qbat;
    const ulong qr0 = (ulong)o.qrow0;
    const long nst = (o.flags & SOFTMAX_OPT_VARLEN) ? o.qlen : (long)nq;
#else
    const long nrow = nq, nvis = nk;
    const uint qb = b;
    const ulong qr0 = 0;
    const long nst = nq;
#endif
    bool valid = row < nst;
    bool live = (long)row < nrow; /* a row of the sequence (else it sees no key) */
    uint qrow = live ? row : 0;   /* rows that are not are never read */

    long lim = live ? clattn_visible(qrow, nrow, nvis, kl, causal) : 0;
    /* The whole group loops to the furthest key its last row sees, so barriers stay uniform. */
    uint first = get_group_id(0) * SOFTMAX_WG_SIZE;
    long last = min((long)first + SOFTMAX_WG_SIZE - 1, nrow - 1);
    long kend = last >= (long)first ? clattn_visible(last, nrow, nvis, kl, causal) : 0;
    long kbeg = 0;
#if SOFTMAX_OPTS
    long lo = 0;
    softmax_opt_range(&o, qrow, &lo, &lim);
    {
        /* Windows never move left as rows grow: the group's keys run from its first row's lo
         * (down to the tile) to its last row's hi. */
        long lo0 = 0, hi0 = clattn_visible(first, nrow, nvis, kl, causal), lo1 = 0;
        softmax_opt_range(&o, first, &lo0, &hi0);
        softmax_opt_range(&o, last, &lo1, &kend);
        kbeg = lo0 / SOFTMAX_TILE_KV * SOFTMAX_TILE_KV;
    }
#endif

    float qv[SOFTMAX_HEAD_DIM], acc[GR_DV];
    if (live)
        softmax_load_q(qv, q, qo, qst, qb, h, qr0 + qrow, scale_log2);
    else
        for (uint d = 0; d < SOFTMAX_HEAD_DIM; d++)
            qv[d] = 0.0f;
    for (uint d = 0; d < GR_DV; d++)
        acc[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (long kt = kbeg; kt < kend; kt += SOFTMAX_TILE_KV) {
#if SOFTMAX_OPTS
        /* Block-sparse: the same decision in every work-item, so the barriers stay uniform. */
        if (!softmax_opt_live(&o, first, last, kt, min(kt + SOFTMAX_TILE_KV, kend) - 1))
            continue;
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
#if GR_DV == SOFTMAX_HEAD_DIM
        for (uint idx = lid; idx < SOFTMAX_TILE_KV * SOFTMAX_HEAD_DIM; idx += SOFTMAX_WG_SIZE) {
            uint j = idx / SOFTMAX_HEAD_DIM, d = idx % SOFTMAX_HEAD_DIM;
            long key = kt + j;
            bool in = key < kend;
            ulong ka = GR_KV_AT(k_off, ks, key, d, in), va = GR_KV_AT(v_off, vs, key, d, in);
            kt_tile[j][d] = in ? CLATTN_LOAD(K_DT, k, ka) : 0.0f;
            vt_tile[j][d] = in ? CLATTN_LOAD(V_DT, v, va) : 0.0f;
        }
#else
        for (uint idx = lid; idx < SOFTMAX_TILE_KV * SOFTMAX_HEAD_DIM; idx += SOFTMAX_WG_SIZE) {
            uint j = idx / SOFTMAX_HEAD_DIM, d = idx % SOFTMAX_HEAD_DIM;
            long key = kt + j;
            bool in = key < kend;
            ulong ka = GR_KV_AT(k_off, ks, key, d, in);
            kt_tile[j][d] = in ? CLATTN_LOAD(K_DT, k, ka) : 0.0f;
        }
        for (uint idx = lid; idx < SOFTMAX_TILE_KV * GR_DV; idx += SOFTMAX_WG_SIZE) {
            uint j = idx / GR_DV, d = idx % GR_DV;
            long key = kt + j;
            bool in = key < kend;
            ulong va = GR_KV_AT(v_off, vs, key, d, in);
            vt_tile[j][d] = in ? CLATTN_LOAD(V_DT, v, va) : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
        float sc[SOFTMAX_TILE_KV];
        float mt = -INFINITY;
        for (uint j = 0; j < SOFTMAX_TILE_KV; j++) {
            float sj = 0.0f;
            for (uint d = 0; d < SOFTMAX_HEAD_DIM; d++)
                sj = fma(qv[d], kt_tile[j][d], sj);
#if SOFTMAX_OPTS
            long key = kt + j;
            float x = -INFINITY;
            if (key >= lo && key < lim)
                x = softmax_opt_logit(&o, sj, qrow, key);
            sj = x;
#else
            sj = (kt + j < lim) ? sj : -INFINITY;
#endif
            sc[j] = sj;
            mt = fmax(mt, sj);
        }
        float ref, corr = clattn_online_step(&m, mt, &ref);
        float sum = 0.0f;
        for (uint j = 0; j < SOFTMAX_TILE_KV; j++) {
            sc[j] = exp2(sc[j] - ref);
            sum += sc[j];
        }
        l = l * corr + sum;
        for (uint d = 0; d < GR_DV; d++) {
            float a = acc[d] * corr;
            for (uint j = 0; j < SOFTMAX_TILE_KV; j++)
                a = fma(sc[j], vt_tile[j][d], a);
            acc[d] = a;
        }
    }
    if (valid) {
        float f, lse2;
#if SOFTMAX_OPTS
        softmax_opt_finish(&o, m, l, &f, &lse2); /* the sink joins the denominator */
#else
        f = clattn_online_inv(l);
        lse2 = clattn_online_lse2(m, l);
#endif
        for (uint d = 0; d < GR_DV; d++)
            CLATTN_STORE(O_DT, acc[d] * f, out, clattn_at(o_off, os, qb, h, qr0 + row, d));
        if (has_lse)
            lse[clattn_at(l_off, ls, qb, h, qr0 + row, 0)] = lse2 * CLATTN_LN2;
    }
}

/* ---- the naive baseline's softmax ----
 * Scores S [Nq][Nk] of one (batch, head) were written by a CLBlast GEMM; this kernel scales, applies
 * the options (softmax_opts.clh) and masks, and normalises each row in place (in base 2, as the
 * tiled kernels), and writes the row's log-sum-exp. One work-group per row; SOFTMAX_WG_SIZE
 * work-items stride over the keys: the first pass leaves each kept key's final logit in place. */

#if SOFTMAX_OPTS
#define NAIVE_OPT_ARGS , uint head, SOFTMAX_OPT_PARAMS
#else
#define NAIVE_OPT_ARGS
#endif

__kernel __attribute__((reqd_work_group_size(SOFTMAX_WG_SIZE, 1, 1))) void
clattn_softmax_naive_rows(__global float *s, ulong s_off, uint nq, uint nk, float scale, int causal,
                     __global const int *key_lengths, ulong kl_off, int has_kl, uint batch,
                     __global float *lse, ulong l_off, int has_lse NAIVE_OPT_ARGS)
{
    long kl = clattn_key_length(key_lengths, kl_off + batch, has_kl, nk);
    __local float red[SOFTMAX_WG_SIZE];
    uint row = get_group_id(0);
    uint lid = get_local_id(0);
    __global float *sr = s + s_off + (ulong)row * nk;
    float scale2 = scale * CLATTN_LOG2E;
    long lo = 0, hi = clattn_visible(row, nq, nk, kl, causal);
#if SOFTMAX_OPTS
    SOFTMAX_OPT_SETUP(o, batch, head, nq, nk);
    /* q_lengths: the sequence's own alignment; its padding rows (row >= qlen) see no key */
    softmax_opt_seq(&o, kl);
    /* o.qlen + o.shift: kl with SEQ flags, else Nk (without them i' = i + Nk - Nq, as before) */
    hi = (long)row < o.qlen ? clattn_visible(row, o.qlen, o.qlen + o.shift, kl, causal) : 0;
    softmax_opt_range(&o, row, &lo, &hi);
#endif

    float mx = -INFINITY;
    for (long j = lo + lid; j < hi; j += SOFTMAX_WG_SIZE) {
        float t = sr[j] * scale2;
#if SOFTMAX_OPTS
        t = softmax_opt_logit(&o, t, row, j);
#endif
        sr[j] = t;
        mx = fmax(mx, t);
    }
    red[lid] = mx;
    /* Global too: with a window (lo > 0) the last loop's items touch logits that other items
     * wrote here and read in the next loop (oclgrind --data-races, test_softmax_opts oclgrind). */
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    for (uint w = SOFTMAX_WG_SIZE / 2; w > 0; w /= 2) {
        if (lid < w)
            red[lid] = fmax(red[lid], red[lid + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    float ref = mx == -INFINITY ? 0.0f : mx; /* all masked: every weight 2^-inf = 0 */
    barrier(CLK_LOCAL_MEM_FENCE);

    float sum = 0.0f;
    for (long j = lo + lid; j < hi; j += SOFTMAX_WG_SIZE)
        sum += exp2(sr[j] - ref);
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE); /* as above */
    for (uint w = SOFTMAX_WG_SIZE / 2; w > 0; w /= 2) {
        if (lid < w)
            red[lid] += red[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    sum = red[0];
    float inv, lse2;
#if SOFTMAX_OPTS
    softmax_opt_finish(&o, ref, sum, &inv, &lse2);
#else
    inv = clattn_online_inv(sum);
    lse2 = clattn_online_lse2(ref, sum);
#endif
    for (uint j = lid; j < nk; j += SOFTMAX_WG_SIZE)
        sr[j] = j >= lo && j < hi ? exp2(sr[j] - ref) * inv : 0.0f;
    if (has_lse && lid == 0)
        lse[l_off + row] = lse2 * CLATTN_LN2;
}

/* NAIVE with a paged cache (issue 17): gathers sequence b's keys and values from the page pools
 * (views k [num_pages, Hk, page, D], v [num_pages, Hk, page, Dv] of K_DT / V_DT) into dense
 * float32 dk [B, Hk, Nk, D], dv [B, Hk, Nk, Dv] (Nk = max_pages * page) for CLBlast; keys whose
 * page id is invalid (softmax_opt_page) become zero rows, masked later by the row kernel. Global:
 * (Nk, B * Hk). Every argument is read before any branch. */
__kernel void clattn_softmax_gather_paged(__global const CLATTN_STYPE(K_DT) *k, ulong k_off,
                                          ulong4 ks, __global const CLATTN_STYPE(V_DT) *v,
                                          ulong v_off, ulong4 vs, uint hk_count, uint nk,
                                          uint d_count, uint dv_count, __global float *dk,
                                          __global float *dv, __global const int *key_lengths,
                                          ulong kl_off, int has_kl, __global const int *bt,
                                          ulong bt_off, ulong bt_sb, uint maxp, uint page,
                                          uint npages, int paged)
{
    /* The last ten parameters are the pack kernel's (lib/ops/softmax_enqueue.c's arg_pack_seq);
     * paged is always 1 here. */
    const uint j = get_global_id(0), bh = get_global_id(1);
    const ulong ko = k_off, vo = v_off, bo = bt_off, bsb = bt_sb;
    const ulong4 kst = ks, vst = vs;
    const uint hkc = hk_count, n = nk, ps = max(page, 1u), mp = maxp, np = npages;
    const uint dd = d_count, ddv = dv_count;
    const uint b = bh / hkc, h = bh - b * hkc;
    const uint col = j / ps;
    /* keys at or past the sequence's length are zeros: a pool's stale slots (even NaN) never
     * reach the GEMMs */
    const long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, n);
    const int id = j < n && col < mp && (long)j < kl ? bt[bo + (ulong)b * bsb + col] : -1;
    const bool live = id >= 0 && (uint)id < np;
    if (j >= n)
        return;
    const ulong slot = j - col * ps;
    __global float *krow = dk + ((ulong)bh * n + j) * dd;
    __global float *vrow = dv + ((ulong)bh * n + j) * ddv;
    for (uint e = 0; e < dd; e++)
        krow[e] = live ? CLATTN_LOAD(K_DT, k, clattn_at(ko, kst, (ulong)id, h, slot, e)) : 0.0f;
    for (uint e = 0; e < ddv; e++)
        vrow[e] = live ? CLATTN_LOAD(V_DT, v, clattn_at(vo, vst, (ulong)id, h, slot, e)) : 0.0f;
}
