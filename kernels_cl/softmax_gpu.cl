//@include softmax_opts.clh
/* Register-tiled exact softmax attention for devices with real local memory (FlashAttention-2
 * style forward, online softmax in base 2). clattn_softmax_fwd_gpu_rt:
 *
 *  - a work-group of SOFTMAX_GPU_TX x SOFTMAX_GPU_TY work-items owns BR = TY * RM query rows; the
 *    rows' scaled queries sit in __local memory transposed (Qs[D][BR]) for the whole kernel;
 *  - keys go BC = TX * RN at a time: the K tile is staged transposed (Kt[D][BC + KPAD]) and the V
 *    tile row-major (Vs[BC][DP], DP = TX * RD >= D, zero-padded), in separate buffers or, with
 *    SOFTMAX_GPU_KV_SHARED, one buffer that holds K for the scores and then V for P.V;
 *  - work-item (tx, ty) computes scores of rows ty*RM + i and keys tx + TX*j (i < RM, j < RN) in
 *    registers: per d, RM + RN local loads feed RM * RN FMAs;
 *  - the row maxima are reduced across the TX work-items of a row through __local red[BR][TX]; the
 *    row sums are kept per work-item (all its terms share the row's running maximum) and reduced
 *    once at the end;
 *  - the probabilities go through __local Ps[BR][BC]; work-item (tx, ty) accumulates rows
 *    ty*RM + i and head dims tx + TX*e (e < RD) of P.V in registers: per key, RM + RD local loads
 *    feed RM * RD FMAs;
 *  - the work-group stops at the last key its last row may see (causal offset and key length),
 *    so whole masked tiles are skipped; per-row masks cover the rest.
 * Micro-tiles and accumulators are arrays indexed only by fully unrolled loops over compile-time
 * sizes, so they stay in registers. Four barriers per key tile (uniform trip count per group).
 * Rows that see no key get zeros and lse = -INFINITY.
 *
 * Issue 16: V's head dim Dv (-DSOFTMAX_HEAD_DIM_V) sizes the V tile and the accumulators. With
 * -DSOFTMAX_GPU_DCHUNK=DC (D or Dv above what local memory holds whole, up to 512) Q's and K's
 * head dims go through one __local buffer DC at a time (scores accumulate over the chunks; Q is
 * staged again per key tile), then V's DC at a time for P.V (2 barriers per chunk). With
 * -DSOFTMAX_OPTS=1: each score of the micro-tile goes through softmax_opt_logit, the group's
 * keys run from its first row's window start (down to the tile) to its last row's end, key
 * tiles that no block of the block mask meets are skipped (the same decision in every
 * work-item: barriers stay uniform), rows finish through softmax_opt_finish (sinks).
 *
 * Issue 17 (options build only): with q_lengths / q_offsets (SOFTMAX_OPT_SEQ) the group's rows
 * are the sequence's rows i < o.qlen at (o.qbat, o.qrow0 + i) of q, out and lse, aligned to its
 * key length (softmax_opt_seq); QLENS padding rows (qlen <= i < Nq) are written as rows that see
 * no key, VARLEN rows past qlen are not written, and no q row outside the sequence is read.
 * With a block table (SOFTMAX_OPT_PAGED) K and V tile rows come from the page pools (g_kv_at,
 * branch-free: PoCL miscompiled branchy forms at D = 1); a key whose page id is invalid is never
 * read (zeros staged) and is masked by softmax_opt_logit (a per-key mask computed once per tile
 * instead also miscompiled on PoCL at D = 1: test_softmax_opts d1_dv1). With -DSOFTMAX_SPLIT=1 (split-KV for few queries) global dimension 1 is
 * (B * Hq) x nsplit, the split fastest; the group runs only keys [split * split_keys, + split_keys)
 * of its range and writes, for every row i < Nq, the un-normalised accumulators
 * part_acc[(bh, i, split)][DVPAD] and the base-2 maximum and sum part_ml[(bh, i, split)][2], the
 * layout of clattn_softmax_fwd_cpu's split (softmax.cl), which clattn_softmax_split_merge combines. */

#ifndef SOFTMAX_HEAD_DIM
#define SOFTMAX_HEAD_DIM 64
#endif
#ifndef SOFTMAX_GPU_TX
#define SOFTMAX_GPU_TX 16 /* work-items across keys (scores) and head dims (P.V) */
#endif
#ifndef SOFTMAX_GPU_TY
#define SOFTMAX_GPU_TY 8 /* work-items across query rows */
#endif
#ifndef SOFTMAX_GPU_RM
#define SOFTMAX_GPU_RM 4 /* query rows per work-item */
#endif
#ifndef SOFTMAX_GPU_RN
#define SOFTMAX_GPU_RN 4 /* keys per work-item in the score micro-tile */
#endif
#ifndef SOFTMAX_GPU_KV_SHARED
#define SOFTMAX_GPU_KV_SHARED 0 /* 1: K and V tiles share one buffer (less local memory) */
#endif
#ifndef SOFTMAX_GPU_KPAD
#define SOFTMAX_GPU_KPAD 1 /* padding of the transposed K rows: the staging stores hit distinct banks */
#endif
#ifndef SOFTMAX_GPU_DUNROLL
#define SOFTMAX_GPU_DUNROLL 4 /* unroll of the loops over d and over the tile's keys */
#endif

/* Element types of q, k, v, out (common.clh codes): global tiles are loaded through CLATTN_LOAD
 * of their type into the __local float tiles (converted at the load), out is stored through
 * CLATTN_STORE; __local memory, arithmetic and lse stay float32. */
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

#ifndef SOFTMAX_HEAD_DIM_V
#define SOFTMAX_HEAD_DIM_V SOFTMAX_HEAD_DIM /* V's and out's head dim (Dv) */
#endif
#ifndef SOFTMAX_GPU_DCHUNK
#define SOFTMAX_GPU_DCHUNK 0 /* 0: whole head dims staged; else Q, K, V staged this many at a time */
#endif

#define G_STR_(x) #x
#define G_STR(x) G_STR_(x)
#define G_TX SOFTMAX_GPU_TX
#define G_TY SOFTMAX_GPU_TY
#define G_RM SOFTMAX_GPU_RM
#define G_RN SOFTMAX_GPU_RN
#define G_D SOFTMAX_HEAD_DIM
#define G_DV SOFTMAX_HEAD_DIM_V
#define G_DC SOFTMAX_GPU_DCHUNK
#define G_WG (G_TX * G_TY)
#define G_BR (G_TY * G_RM)
#define G_BC (G_TX * G_RN)
#define G_KS (G_BC + SOFTMAX_GPU_KPAD)
#if G_DC
#if G_DC % G_TX
#error "SOFTMAX_GPU_DCHUNK must be a multiple of SOFTMAX_GPU_TX"
#endif
#define G_QW G_DC                        /* head dims of a staged Q / K chunk */
#define G_NQC ((G_D + G_DC - 1) / G_DC)  /* chunks over D */
#define G_VW G_DC                        /* head dims of a staged V chunk */
#define G_NVC ((G_DV + G_DC - 1) / G_DC) /* chunks over Dv */
#else
#define G_QW G_D
#define G_NQC 1
#define G_VW (((G_DV + G_TX - 1) / G_TX) * G_TX) /* Dv padded to whole TX */
#define G_NVC 1
#endif
#define G_RC (G_VW / G_TX)      /* accumulator columns of one V chunk per work-item */
#define G_RA (G_NVC * G_RC)     /* accumulator columns per row per work-item */
#define G_KT_SIZE (G_QW * G_KS)
#define G_V_SIZE (G_BC * G_VW)
#define G_MAX(a, b) ((a) > (b) ? (a) : (b))

#if SOFTMAX_OPTS
#define G_OPT_ARGS , SOFTMAX_OPT_PARAMS
#else
#define G_OPT_ARGS
#endif

#ifndef SOFTMAX_SPLIT
#define SOFTMAX_SPLIT 0
#endif
#if SOFTMAX_SPLIT
#define G_SPLIT_ARGS                                                                               \
    , uint nsplit, uint split_keys, __global float *part_acc, __global float *part_ml
#define G_DVPAD (((G_DV) + 15) / 16 * 16) /* softmax.cl's DVPAD: a partial row's floats */
#else
#define G_SPLIT_ARGS
#endif

#if SOFTMAX_OPTS
/* The element index of head dim d of key `key` of K or V head (b, hk): with paged K/V its slot of
 * the pool page softmax_opt_page names (*ok cleared for an invalid id: the caller loads nothing;
 * no table entry outside the sequence's row is read), else the sequence's own row. */
inline ulong g_kv_at(const softmax_opt *o, ulong off, ulong4 st, uint b, uint hk, long key, uint d,
                     bool *ok)
{
    bool paged = (o->flags & SOFTMAX_OPT_PAGED) != 0;
    long pg = softmax_opt_page(o, key); /* -1 without a table (maxp 0: nothing read) */
    *ok = *ok && (!paged || pg >= 0);
    ulong i0 = paged ? (ulong)max(pg, 0L) : (ulong)b;
    ulong i2 = paged ? (ulong)(key % (long)o->page) : (ulong)key;
    return clattn_at(off, st, i0, hk, i2, d);
}
/* G_KV_AT(off, st, key, d, in): key's element index; `in` (a bool lvalue, true where the key is
 * in range) is cleared where it may not be read. */
#define G_KV_AT(off, st, key, d, in) g_kv_at(&o, (off), (st), b, hk, (key), (d), &(in))
#else
#define G_KV_AT(off, st, key, d, in) clattn_at((off), (st), b, hk, (key), (d))
#endif

/* The RM x RN score micro-tile s += Q . K over N staged head dims (Qs[N][BR], Kt[N][KS]). */
#define G_SCORES(N)                                                                                \
    do {                                                                                           \
        __local const float *qp = Qs + ty * G_RM;                                                  \
        __local const float *kp = Kt + tx;                                                         \
        _Pragma(G_STR(unroll SOFTMAX_GPU_DUNROLL)) for (uint d = 0; d < (N); d++) {                \
            float qr[G_RM], kr[G_RN];                                                              \
            _Pragma("unroll") for (uint i = 0; i < G_RM; i++)                                      \
                qr[i] = qp[d * G_BR + i];                                                          \
            _Pragma("unroll") for (uint j = 0; j < G_RN; j++)                                      \
                kr[j] = kp[d * G_KS + j * G_TX];                                                   \
            _Pragma("unroll") for (uint i = 0; i < G_RM; i++)                                      \
                _Pragma("unroll") for (uint j = 0; j < G_RN; j++)                                  \
                    s[i][j] = fma(qr[i], kr[j], s[i][j]);                                          \
        }                                                                                          \
    } while (0)

/* The P.V micro-tile of V chunk VC (a compile-time index once its loop is unrolled): the
 * accumulator columns VC * RC + e, head dims VC * VW + tx + TX * e. */
#define G_PV(VC)                                                                                   \
    do {                                                                                           \
        __local const float *pp = Ps + ty * G_RM * G_BC;                                           \
        __local const float *vp = Vs + tx;                                                         \
        _Pragma(G_STR(unroll SOFTMAX_GPU_DUNROLL)) for (uint c = 0; c < G_BC; c++) {               \
            float pr[G_RM], vr[G_RC];                                                              \
            _Pragma("unroll") for (uint i = 0; i < G_RM; i++)                                      \
                pr[i] = pp[i * G_BC + c];                                                          \
            _Pragma("unroll") for (uint e = 0; e < G_RC; e++)                                      \
                vr[e] = vp[c * G_VW + e * G_TX];                                                   \
            _Pragma("unroll") for (uint i = 0; i < G_RM; i++)                                      \
                _Pragma("unroll") for (uint e = 0; e < G_RC; e++)                                  \
                    acc[i][(VC) * G_RC + e] = fma(pr[i], vr[e], acc[i][(VC) * G_RC + e]);          \
        }                                                                                          \
    } while (0)

/* Stages V's head dims [D0, D0 + VW) of keys [kt, kt + BC) into Vs[BC][VW] (zero past Dv and kend). */
#define G_STAGE_V(D0)                                                                              \
    do {                                                                                           \
        for (uint idx = lid; idx < G_BC * G_VW; idx += G_WG) {                                     \
            uint j = idx / G_VW, dd = idx - j * G_VW, d = (D0) + dd;                               \
            long key = kt + j;                                                                     \
            bool in_ = key < kend && d < G_DV;                                                     \
            ulong at_ = G_KV_AT(v_off, vs, key, d, in_);                                           \
            Vs[idx] = in_ ? CLATTN_LOAD(V_DT, v, at_) : 0.0f;                                      \
        }                                                                                          \
    } while (0)

/* Global size: (ceil(Nq / BR) * TX * TY, B * Hq); local size (TX * TY, 1). */
__kernel __attribute__((reqd_work_group_size(G_WG, 1, 1))) void
clattn_softmax_fwd_gpu_rt(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                          __global const CLATTN_STYPE(K_DT) *k, ulong k_off, ulong4 ks,
                          __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 vs,
                          __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 os, __global float *lse,
                          ulong l_off, ulong4 ls, int has_lse, __global const int *key_lengths,
                          ulong kl_off, int has_kl, uint hq_count, uint hk_count, uint nq, uint nk,
                          float scale_log2, int causal G_SPLIT_ARGS G_OPT_ARGS)
{
#if G_DC
    /* One buffer: the Q and K chunks for the scores, then the V chunks for P.V (barriers apart). */
    __local float ST[G_MAX(G_DC * G_BR + G_KT_SIZE, G_V_SIZE)];
#define Qs ST
#define Kt (ST + G_DC * G_BR)
#define Vs ST
#else
    __local float Qs[G_D * G_BR];
#if SOFTMAX_GPU_KV_SHARED
    __local float KV[G_MAX(G_KT_SIZE, G_V_SIZE)];
#define Kt KV
#define Vs KV
#else
    __local float Kt[G_KT_SIZE];
    __local float Vs[G_V_SIZE];
#endif
#endif
    __local float Ps[G_BR * G_BC];
    __local float red[G_BR * G_TX];

    uint lid = get_local_id(0);
    uint ty = lid / G_TX, tx = lid - ty * G_TX; /* no div/rem pair: oclgrind's
                                                    * --uninitialized rejects LLVM's freeze */
    uint row0 = get_group_id(0) * G_BR;
#if SOFTMAX_SPLIT
    /* The split's arguments read before the first branch (rusticl, see DESIGN.md). */
    uint ns = nsplit, skeys = split_keys;
    __global float *pacc = part_acc, *pml = part_ml;
    uint sbh = get_global_id(1);
    uint bh = sbh / ns;
    uint split = sbh - bh * ns;
#else
    uint bh = get_global_id(1);
#endif
    uint b = bh / hq_count, h = bh - b * hq_count;
    uint hk = h / (hq_count / hk_count);
#if SOFTMAX_OPTS
    SOFTMAX_OPT_SETUP(o, b, h, nq, nk); /* every option argument read before any branch */
#endif
    float qscale = scale_log2;

    long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, nk);
#if SOFTMAX_OPTS
    /* The sequence's rows (nrow; at (qb, qr0 + i) of q, out and lse), the Nk its causal mask
     * aligns to (nvis: kl with SEQ flags, else Nk) and the rows stored (VARLEN: its own only). */
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
    /* Under a causal mask the group's last row sees the most keys: the group stops there (no
     * key at all for a group past the sequence's rows). */
    long rlast = min((long)row0 + G_BR - 1, nrow - 1);
    long kend = rlast >= (long)row0 ? clattn_visible(rlast, nrow, nvis, kl, causal) : 0;
    long kbeg = 0;
#if SOFTMAX_OPTS
    {
        /* A row's window [lo, hi) never moves left as the row grows: the group's keys run from
         * its first row's lo (down to the tile) to its last row's hi. */
        long lo0 = 0, hi0 = clattn_visible(row0, nrow, nvis, kl, causal), lo1 = 0;
        softmax_opt_range(&o, row0, &lo0, &hi0);
        softmax_opt_range(&o, rlast, &lo1, &kend);
        kbeg = lo0 / G_BC * G_BC;
    }
#endif
#if SOFTMAX_SPLIT
    /* This group's keys: its split's range (a whole number of tiles) within its own range. */
    {
        long sbeg = (long)split * skeys;
        kbeg = max(kbeg, sbeg);
        kend = min(kend, sbeg + (long)skeys);
    }
#endif

#if !G_DC
    for (uint idx = lid; idx < G_BR * G_D; idx += G_WG) {
        uint r = idx / G_D, d = idx - r * G_D;
        uint row = row0 + r;
        Qs[d * G_BR + r] =
            row < nrow ? CLATTN_LOAD(Q_DT, q, clattn_at(q_off, qs, qb, h, qr0 + row, d)) * qscale
                       : 0.0f;
    }
#endif

#if SOFTMAX_OPTS
    long lo[G_RM], hi[G_RM];
#else
    int lim[G_RM];
#endif
    float m[G_RM], l[G_RM], acc[G_RM][G_RA];
    _Pragma("unroll") for (uint i = 0; i < G_RM; i++) {
        uint row = min(row0 + ty * G_RM + i, nq - 1);
#if SOFTMAX_OPTS
        /* Rows past the sequence's (QLENS padding, VARLEN tail) see no key. */
        long srow = (long)row0 + ty * G_RM + i;
        lo[i] = 0;
        hi[i] = srow < nrow ? clattn_visible(srow, nrow, nvis, kl, causal) : 0;
        softmax_opt_range(&o, srow, &lo[i], &hi[i]);
#else
        lim[i] = (int)clattn_visible(row, nq, nk, kl, causal);
#endif
        m[i] = -INFINITY;
        l[i] = 0.0f;
        _Pragma("unroll") for (uint e = 0; e < G_RA; e++)
            acc[i][e] = 0.0f;
    }

    for (long kt = kbeg; kt < kend; kt += G_BC) {
#if SOFTMAX_OPTS
        /* Block-sparse: a key tile no block of the group's rows meets is never loaded. Every
         * work-item decides alike, so the barriers stay uniform. */
        if (!softmax_opt_live(&o, row0, rlast, kt, min(kt + G_BC, kend) - 1))
            continue;
#endif
        float s[G_RM][G_RN];
        _Pragma("unroll") for (uint i = 0; i < G_RM; i++)
            _Pragma("unroll") for (uint j = 0; j < G_RN; j++)
                s[i][j] = 0.0f;
#if G_DC
        /* Scores over D in chunks: Q's and K's chunk staged, then accumulated. */
        for (uint c = 0; c < G_NQC; c++) {
            uint d0 = c * G_DC;
            barrier(CLK_LOCAL_MEM_FENCE);
            for (uint idx = lid; idx < G_BR * G_DC; idx += G_WG) {
                uint r = idx / G_DC, dd = idx - r * G_DC, d = d0 + dd;
                uint row = row0 + r;
                Qs[dd * G_BR + r] =
                    row < nrow && d < G_D
                        ? CLATTN_LOAD(Q_DT, q, clattn_at(q_off, qs, qb, h, qr0 + row, d)) * qscale
                        : 0.0f;
            }
            for (uint idx = lid; idx < G_BC * G_DC; idx += G_WG) {
                uint j = idx / G_DC, dd = idx - j * G_DC, d = d0 + dd;
                long key = kt + j;
                bool in = key < kend && d < G_D;
                ulong at = G_KV_AT(k_off, ks, key, d, in);
                Kt[dd * G_KS + j] = in ? CLATTN_LOAD(K_DT, k, at) : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            G_SCORES(G_DC);
        }
#else
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint idx = lid; idx < G_BC * G_D; idx += G_WG) {
            uint j = idx / G_D, d = idx - j * G_D;
            long key = kt + j;
            bool in = key < kend;
            ulong at = G_KV_AT(k_off, ks, key, d, in);
            Kt[d * G_KS + j] = in ? CLATTN_LOAD(K_DT, k, at) : 0.0f;
        }
#if !SOFTMAX_GPU_KV_SHARED
        G_STAGE_V(0);
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Scores: an RM x RN micro-tile in registers. */
        G_SCORES(G_D);
#endif
        /* Mask (and the options' logits), then this work-item's share of each row maximum. */
        _Pragma("unroll") for (uint i = 0; i < G_RM; i++) {
            float mx = -INFINITY;
#if SOFTMAX_OPTS
            long row = min(row0 + ty * G_RM + i, nq - 1);
#endif
            _Pragma("unroll") for (uint j = 0; j < G_RN; j++) {
                long key = kt + tx + j * G_TX;
#if SOFTMAX_OPTS
                /* Branch-free (the key clamped into range for the option loads, then selected):
                 * PoCL miscompiled the branchy form at D <= 2 (wrong results, every option). */
                long kc = clamp(key, 0L, (long)nk - 1);
                float x = softmax_opt_logit(&o, s[i][j], row, kc);
                s[i][j] = key >= lo[i] && key < hi[i] ? x : -INFINITY;
#else
                s[i][j] = key < lim[i] ? s[i][j] : -INFINITY;
#endif
                mx = fmax(mx, s[i][j]);
            }
            red[(ty * G_RM + i) * G_TX + tx] = mx;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        _Pragma("unroll") for (uint i = 0; i < G_RM; i++) {
            uint r = ty * G_RM + i;
            float mt = -INFINITY;
            _Pragma("unroll") for (uint t = 0; t < G_TX; t++)
                mt = fmax(mt, red[r * G_TX + t]);
            float ref, corr = clattn_online_step(&m[i], mt, &ref);
            float sum = 0.0f;
            _Pragma("unroll") for (uint j = 0; j < G_RN; j++) {
                float p = exp2(s[i][j] - ref);
                sum += p;
                Ps[r * G_BC + tx + j * G_TX] = p;
            }
            l[i] = l[i] * corr + sum;
            _Pragma("unroll") for (uint e = 0; e < G_RA; e++)
                acc[i][e] *= corr;
        }
#if G_DC
        /* P.V over Dv in chunks (unrolled: the accumulator's indices stay compile-time). */
        _Pragma("unroll") for (uint vc = 0; vc < G_NVC; vc++) {
            barrier(CLK_LOCAL_MEM_FENCE);
            G_STAGE_V(vc * G_VW);
            barrier(CLK_LOCAL_MEM_FENCE);
            G_PV(vc);
        }
#else
#if SOFTMAX_GPU_KV_SHARED
        /* Every score is computed (barrier above): K's buffer now takes the V tile. */
        G_STAGE_V(0);
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        /* P.V: an RM x RD micro-tile of the accumulator in registers. */
        G_PV(0);
#endif
    }

    /* Row sums: one reduction across the row's work-items, at the end. */
    barrier(CLK_LOCAL_MEM_FENCE);
    _Pragma("unroll") for (uint i = 0; i < G_RM; i++)
        red[(ty * G_RM + i) * G_TX + tx] = l[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    _Pragma("unroll") for (uint i = 0; i < G_RM; i++) {
        uint r = ty * G_RM + i, row = row0 + r;
        float lt = 0.0f;
        _Pragma("unroll") for (uint t = 0; t < G_TX; t++)
            lt += red[r * G_TX + t];
#if SOFTMAX_SPLIT
        /* A partial row (every row of the plan's Nq, those past the sequence's empty: m = -inf,
         * l = 0, zeros), in clattn_softmax_fwd_cpu's split layout. */
        if (row < nq) {
            ulong pr = ((ulong)bh * nq + row) * ns + split;
            _Pragma("unroll") for (uint vc = 0; vc < G_NVC; vc++)
                _Pragma("unroll") for (uint e = 0; e < G_RC; e++) {
                    uint d = vc * G_VW + tx + e * G_TX;
                    if (d < G_DV)
                        pacc[pr * G_DVPAD + d] = acc[i][vc * G_RC + e];
                }
            if (tx == 0) {
                for (uint d = G_DV; d < G_DVPAD; d++)
                    pacc[pr * G_DVPAD + d] = 0.0f;
                pml[2 * pr] = m[i];
                pml[2 * pr + 1] = lt;
            }
        }
#else
        if (row < nst) {
#if SOFTMAX_OPTS
            float f, lse2;
            softmax_opt_finish(&o, m[i], lt, &f, &lse2); /* the sink joins the denominator */
#else
            float f = clattn_online_inv(lt);
#define lse2 clattn_online_lse2(m[i], lt) /* computed where it is stored only */
#endif
            _Pragma("unroll") for (uint vc = 0; vc < G_NVC; vc++)
                _Pragma("unroll") for (uint e = 0; e < G_RC; e++) {
                    uint d = vc * G_VW + tx + e * G_TX;
                    if (d < G_DV)
                        CLATTN_STORE(O_DT, acc[i][vc * G_RC + e] * f, out,
                                     clattn_at(o_off, os, qb, h, qr0 + row, d));
                }
            if (has_lse && tx == 0)
                lse[clattn_at(l_off, ls, qb, h, qr0 + row, 0)] = lse2 * CLATTN_LN2;
#undef lse2
        }
#endif
    }
#undef Qs
#undef Kt
#undef Vs
}
