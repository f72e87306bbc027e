//@include attend_tiled.clh
/* Routing attention (Routing Transformer, balanced routing); host side in lib/ops/routing.c,
 * launch sizes and the -D options below from lib/sched/sched_routing.c.
 * The pipeline per call:
 *   clattn_routing_pack_centroids  centroids → panels [Hk][C/16][D][16] (zero-padded clusters)
 *   clattn_routing_scores          normalised dot products of every query and key with every
 *                                  centroid of its key head, 16 centroids per float16
 *   segmented top-w                per (batch, query head, cluster) over the queries and per
 *                                  (batch, key head, cluster) over the keys, indices in position
 *                                  order (kernels_cl/sort.cl)
 *   clattn_routing_pack_keys       each key cluster's keys → panels [w/16][D][16], its values →
 *                                  rows padded to 16, its key positions (-1 for padding)
 *   clattn_routing_attend          exact attention inside each query cluster over the same
 *                                  cluster of its key head, one query slot per work-item, 16 keys
 *                                  per float16 score vector
 *   scatter-mean of the slots back to positions (sort.cl), clattn_routing_store into the
 *   caller's strided output.
 * The centroid update is pack_centroids, clattn_routing_assign, a scatter-mean, clattn_routing_ema.
 *
 * Grouped-query attention: Hq query heads share Hk key/value heads (G = Hq / Hk) and the key
 * head's centroids [Hk, C, D]. The keys of a key head are scored, selected and packed once and
 * serve the G query heads of its group; each query head's queries are selected on their own.
 * Scoring units: u = b * Hq + hq (u < B Hq) are the queries of (b, hq), then u = B Hq + b * Hk + hk
 * the keys of (b, hk). Score segments are numbered seg = u * C + c, so one top-k call serves every
 * selection, queries first.
 *
 * This is the CPU recipe of DESIGN.md §8 (register blocking over 16 lanes, panels packed once,
 * no __local memory, no barriers). On GPU-like devices the attention inside the clusters runs
 * clattn_routing_attend_gpu (end of the file: register micro-tiles, __local K/V tiles). */

/* Longest q/k row (and v row, for attend's accumulators) held in private memory. */
#ifndef ROUTING_MAX_D
#define ROUTING_MAX_D 256
#endif
/* Centroids and keys per score vector: the kernels use float16 vectors, so 16 is the only value. */
#ifndef ROUTING_LANES
#define ROUTING_LANES 16
#endif
#if ROUTING_LANES != 16
#error "ROUTING_LANES must be 16 (the kernels compute scores as float16 vectors)"
#endif
#define ROUTING_NONE 0xffffffffu

/* Element types of the caller's q, k, v and out (clattn_dtype codes from the plan: -DQ_DT=1 ...;
 * absent: float32): read and written in those types directly. Centroids (state the library
 * updates), the packed key panels and value rows, the scores and every other scratch stay
 * float32 (packing converts once; the attention's inner loops then read float32 panels). */
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
#define ROUTING_Q __global const CLATTN_STYPE(Q_DT)
#define ROUTING_K __global const CLATTN_STYPE(K_DT)
#define ROUTING_V __global const CLATTN_STYPE(V_DT)

#if !ROUTING_GPU /* the tiled attend's program (below) carries only its kernel */
/* Scoring unit u (see the top of the file): writes its batch b, its head h in q (queries) or k
 * (keys) and the key head hk whose centroids it uses; returns 1 for keys, 0 for queries. */
inline uint clattn_routing_unit(uint u, uint batch, uint heads_q, uint heads_k, uint *b, uint *h,
                                uint *hk)
{
    uint nq = batch * heads_q;
    if (u < nq) {
        *b = u / heads_q;
        *h = u % heads_q;
        *hk = *h / (heads_q / heads_k);
        return 0;
    }
    *b = (u - nq) / heads_k;
    *h = (u - nq) % heads_k;
    *hk = *h;
    return 1;
}

/* mp[((h * cb + c / 16) * D + d) * 16 + c % 16] = centroid (h, c) element d, 0 for c >= C.
 * Global (cb * 16, H). */
__kernel void clattn_routing_pack_centroids(__global const float *mu, ulong mu_off, ulong4 mu_st,
                                            uint d_k, uint n_clusters, uint cb,
                                            __global float *mp)
{
    uint c = get_global_id(0), h = get_global_id(1);
    __global float *dst = mp + ((ulong)(h * cb + c / ROUTING_LANES) * d_k) * ROUTING_LANES +
                          c % ROUTING_LANES;
    for (uint d = 0; d < d_k; d++)
        dst[d * ROUTING_LANES] = c < n_clusters ? mu[clattn_at(mu_off, mu_st, 0, h, c, d)] : 0.0f;
}

/* Loads row (b, h, n) of q (which 0) or k (which 1) into x and returns 1 / |x| (0 for a zero
 * row). */
inline float clattn_routing_row(ROUTING_Q *q, ulong q_off, ulong4 q_st, ROUTING_K *k, ulong k_off,
                                ulong4 k_st, uint which, uint b, uint h, uint n, uint d_k,
                                float *x)
{
    if (which)
        for (uint d = 0; d < d_k; d++)
            x[d] = CLATTN_LOAD(K_DT, k, clattn_at(k_off, k_st, b, h, n, d));
    else
        for (uint d = 0; d < d_k; d++)
            x[d] = CLATTN_LOAD(Q_DT, q, clattn_at(q_off, q_st, b, h, n, d));
    float nn = 0.0f;
    for (uint d = 0; d < d_k; d++)
        nn += x[d] * x[d];
    return nn > 0.0f ? rsqrt(nn) : 0.0f;
}

/* x . (16 centroids of panel p) for a row x of d_k floats. */
inline float16 clattn_routing_dot16(const float *x, __global const float *p, uint d_k)
{
    float16 s = CLATTN_SPLAT16(0.0f);
    for (uint d = 0; d < d_k; d++)
        s = fma(CLATTN_SPLAT16(x[d]), vload16(d, p), s);
    return s;
}

/* scores[(u * C + c) * N + n] = (x . mu_c) / |x| for the row x of scoring unit u at position
 * n (mu: the centroids of the unit's key head), 0 when x is zero. Global (N, B Hq + B Hk). */
__kernel void clattn_routing_scores(ROUTING_Q *q, ulong q_off, ulong4 q_st,
                                    ROUTING_K *k, ulong k_off, ulong4 k_st,
                                    __global const float *mp, uint batch, uint heads_q,
                                    uint heads_k, uint n_len, uint d_k, uint n_clusters, uint cb,
                                    __global float *scores)
{
    uint n = get_global_id(0), u = get_global_id(1), b, h, hk;
    uint which = clattn_routing_unit(u, batch, heads_q, heads_k, &b, &h, &hk);
    float x[ROUTING_MAX_D];
    float inv = clattn_routing_row(q, q_off, q_st, k, k_off, k_st, which, b, h, n, d_k, x);
    ulong out = (ulong)u * n_clusters * n_len + n;
    for (uint p = 0; p < cb; p++) {
        float s[ROUTING_LANES];
        vstore16(clattn_routing_dot16(x, mp + (ulong)(hk * cb + p) * d_k * ROUTING_LANES, d_k) *
                     CLATTN_SPLAT16(inv),
                 0, s);
        uint c0 = p * ROUTING_LANES, have = min((uint)ROUTING_LANES, n_clusters - c0);
        for (uint j = 0; j < have; j++)
            scores[out + (ulong)(c0 + j) * n_len] = s[j];
    }
}

/* Packs the keys chosen by key cluster g = (b * Hk + hk) * C + c (slot t < wp, wp = w rounded up
 * to 16; its selection is segment kseg0 + g, kseg0 = B Hq C):
 * kp[((g * wp / 16 + t / 16) * D + d) * 16 + t % 16] = k row, vp[(g * wp + t) * dvp + e] = v row
 * padded with zeros to dvp, kpos[g * wp + t] = its position, or -1 for padding (t >= w).
 * Global (wp, B Hk C). */
__kernel void clattn_routing_pack_keys(ROUTING_K *k, ulong k_off, ulong4 k_st,
                                       ROUTING_V *v, ulong v_off, ulong4 v_st,
                                       __global const uint *idx, uint kseg0, uint heads_k,
                                       uint d_k, uint d_v, uint dvp, uint n_clusters, uint w,
                                       uint wp, __global float *kp, __global float *vp,
                                       __global int *kpos)
{
    uint t = get_global_id(0), g = get_global_id(1);
    uint bh = g / n_clusters, b = bh / heads_k, h = bh % heads_k;
    bool real = t < w;
    uint kj = real ? idx[((ulong)kseg0 + g) * w + t] : 0u;
    __global float *pk = kp + ((ulong)g * (wp / ROUTING_LANES) + t / ROUTING_LANES) * d_k *
                                  ROUTING_LANES +
                         t % ROUTING_LANES;
    for (uint d = 0; d < d_k; d++)
        pk[d * ROUTING_LANES] = real ? CLATTN_LOAD(K_DT, k, clattn_at(k_off, k_st, b, h, kj, d))
                                     : 0.0f;
    __global float *vrow = vp + ((ulong)g * wp + t) * dvp;
    for (uint e = 0; e < dvp; e++)
        vrow[e] = real && e < d_v ? CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, b, h, kj, e))
                                  : 0.0f;
    kpos[(ulong)g * wp + t] = real ? (int)kj : -1;
}

/* One query slot j of query cluster g = (b * Hq + hq) * C + c: online-softmax attention over the
 * packed keys of cluster c of its key head (gk = (b * Hk + hq / G) * C + c), 16 at a time. Keys
 * arrive in position order, so under the causal mask the visible ones are a prefix and the loop
 * stops at the first block that starts after the query. slots[(g * w + j) * Dv + e] receives the
 * output and dest[g * w + j] the flat position (b * Hq + hq) * N + i, or ROUTING_NONE (with a
 * zero row) when the query saw no key. Global (w, B Hq C). */
__kernel void clattn_routing_attend(ROUTING_Q *q, ulong q_off, ulong4 q_st,
                                    __global const uint *idx, __global const float *kp,
                                    __global const float *vp, __global const int *kpos,
                                    uint heads_q, uint heads_k, uint n_len, uint d_k, uint d_v,
                                    uint dvp, uint n_clusters, uint w, uint wp, float scale_log2,
                                    int causal, __global float *slots, __global uint *dest)
{
    uint j = get_global_id(0), g = get_global_id(1);
    uint bh = g / n_clusters, c = g % n_clusters, b = bh / heads_q, h = bh % heads_q;
    uint gk = (b * heads_k + h / (heads_q / heads_k)) * n_clusters + c;
    uint i = idx[(ulong)g * w + j];
    float qv[ROUTING_MAX_D];
    for (uint d = 0; d < d_k; d++)
        qv[d] = CLATTN_LOAD(Q_DT, q, clattn_at(q_off, q_st, b, h, i, d)) * scale_log2;
    float16 acc[ROUTING_MAX_D / ROUTING_LANES];
    uint nv = dvp / ROUTING_LANES;
    for (uint u = 0; u < nv; u++)
        acc[u] = CLATTN_SPLAT16(0.0f);
    float m = -INFINITY, l = 0.0f;
    __global const int *pos = kpos + (ulong)gk * wp;
    for (uint tb = 0; tb < wp / ROUTING_LANES; tb++) {
        int16 kp16 = vload16(tb, pos);
        int first = pos[tb * ROUTING_LANES];
        if (first < 0 || (causal && first > (int)i))
            break; /* padding, or (causal) every later key comes after the query */
        float16 s = clattn_routing_dot16(
            qv, kp + ((ulong)gk * (wp / ROUTING_LANES) + tb) * d_k * ROUTING_LANES, d_k);
        s = clattn_mask16(s, clattn_visible16(kp16, (int)i, causal));
        /* the block's first key is visible, so ref is the new (finite) maximum */
        float ref, corr = clattn_online_step(&m, clattn_hmax16(s), &ref);
        float16 a16 = s - CLATTN_SPLAT16(ref); /* <= 0; a NaN score stays a NaN weight */
        float16 p16 = clattn_exp2_neg16(a16);
        l = l * corr + clattn_hsum16(p16);
        CLATTN_SCALE16(acc, nv, corr);
        float p[ROUTING_LANES];
        vstore16(p16, 0, p);
        __global const float *vrow = vp + ((ulong)gk * wp + tb * ROUTING_LANES) * dvp;
        for (uint t = 0; t < ROUTING_LANES; t++)
            if (p[t] != 0.0f)
                CLATTN_AXPY16(acc, nv, p[t], vrow + t * dvp);
    }
    ulong slot = (ulong)g * w + j;
    float16 inv = CLATTN_SPLAT16(clattn_online_inv(l));
    for (uint u = 0; u < nv; u++)
        clattn_store16(acc[u] * inv, d_v - u * ROUTING_LANES, slots, slot * d_v, CLATTN_ROW_VIEW, 0,
                       0, 0, u * ROUTING_LANES);
    dest[slot] = l > 0.0f ? bh * n_len + i : ROUTING_NONE;
}

/* out (strided, the output's type) = dense [BH * N][Dv]. Global (Dv, N, BH). */
__kernel void clattn_routing_store(__global const float *dense, uint heads, uint n_len, uint d_v,
                                   __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 o_st)
{
    uint e = get_global_id(0), n = get_global_id(1), bh = get_global_id(2);
    CLATTN_STORE(O_DT, dense[((ulong)bh * n_len + n) * d_v + e], out,
                 clattn_at(o_off, o_st, bh / heads, bh % heads, n, e));
}

/* The same into a float32 view (the centroids of clattn_routing_centroids_draw). */
__kernel void clattn_routing_store_f32(__global const float *dense, uint heads, uint n_len,
                                       uint d_v, __global float *out, ulong o_off, ulong4 o_st)
{
    uint e = get_global_id(0), n = get_global_id(1), bh = get_global_id(2);
    out[clattn_at(o_off, o_st, bh / heads, bh % heads, n, e)] =
        dense[((ulong)bh * n_len + n) * d_v + e];
}

/* Centroid update, step 1: the normalised row x of scoring unit u at position n goes to rows[r]
 * with r = ((hk * (G + 1) + s) * B + b) * N + n, s = hq % G for the queries of query head hq and
 * G for the keys of key head hk, and dest[r] = hk * C + the centroid with the largest x . mu
 * (lower cluster on ties). So each key head's vectors are contiguous, in the order of
 * clattn_routing_centroids_init's data. Global (N, B Hq + B Hk). */
__kernel void clattn_routing_assign(ROUTING_Q *q, ulong q_off, ulong4 q_st,
                                    ROUTING_K *k, ulong k_off, ulong4 k_st,
                                    __global const float *mp, uint batch, uint heads_q,
                                    uint heads_k, uint n_len, uint d_k, uint n_clusters, uint cb,
                                    __global float *rows, __global uint *dest)
{
    uint n = get_global_id(0), u = get_global_id(1), b, h, hk;
    uint which = clattn_routing_unit(u, batch, heads_q, heads_k, &b, &h, &hk);
    uint group = heads_q / heads_k, slot = which ? group : h % group;
    ulong r = ((ulong)(hk * (group + 1) + slot) * batch + b) * n_len + n;
    float x[ROUTING_MAX_D];
    float inv = clattn_routing_row(q, q_off, q_st, k, k_off, k_st, which, b, h, n, d_k, x);
    for (uint d = 0; d < d_k; d++) {
        x[d] *= inv;
        rows[r * d_k + d] = x[d];
    }
    uint best = 0;
    float bs = -INFINITY;
    for (uint p = 0; p < cb; p++) {
        float s[ROUTING_LANES];
        vstore16(clattn_routing_dot16(x, mp + (ulong)(hk * cb + p) * d_k * ROUTING_LANES, d_k), 0,
                 s);
        uint c0 = p * ROUTING_LANES, have = min((uint)ROUTING_LANES, n_clusters - c0);
        for (uint j = 0; j < have; j++)
            if (s[j] > bs) {
                bs = s[j];
                best = c0 + j;
            }
    }
    dest[r] = hk * n_clusters + best;
}

/* Centroid update, step 3: mu[h, c] = decay * mu + (1 - decay) * m / |m| for the mean m of the
 * rows assigned to (h, c); unchanged when none were or m is zero. Each work-item reads its own
 * centroid before writing it. Global (C, H). */
__kernel void clattn_routing_ema(__global const float *means, __global const uint *counts,
                                 uint d_k, uint n_clusters, float decay, __global float *mu,
                                 ulong mu_off, ulong4 mu_st)
{
    uint c = get_global_id(0), h = get_global_id(1);
    ulong r = (ulong)h * n_clusters + c;
    float nn = 0.0f;
    for (uint d = 0; d < d_k; d++)
        nn += means[r * d_k + d] * means[r * d_k + d];
    if (counts[r] == 0 || !(nn > 0.0f))
        return;
    float inv = rsqrt(nn);
    for (uint d = 0; d < d_k; d++) {
        ulong at = clattn_at(mu_off, mu_st, 0, h, c, d);
        mu[at] = decay * mu[at] + (1.0f - decay) * (means[r * d_k + d] * inv);
    }
}

#endif /* !ROUTING_GPU */

#if ROUTING_GPU
/* ---- clattn_routing_attend_gpu: the attention inside each query cluster for GPU-like devices
 * (issue 12), in the discipline of softmax_gpu.cl. Built as its own program with -DROUTING_GPU=1
 * and the tile options below (lib/sched/sched_routing.c), so the CPU program above is unchanged.
 *
 *  - a work-group of RG_TX x RG_TY work-items owns BR = TY * RM query slots of one query cluster
 *    g; their scaled queries are staged transposed in __local Qs[QC][BR] (once, when D <= QC;
 *    else QC head dims at a time per key tile), their positions in qpos[BR];
 *  - the cluster's packed keys go BC = TX * RN at a time: K's head dims QC at a time transposed
 *    into Kt[QC][BC + 1] straight from the [w/16][D][16] panels, then V's VC at a time into
 *    Vs[BC][VC] (one buffer ST holds either);
 *  - work-item (tx, ty) computes the RM x RN score micro-tile of slots ty*RM + i and keys
 *    tx + TX*j in registers (per head dim RM + RN local loads feed RM * RN FMAs), masks it (key
 *    padding, causal by position), and the row maxima are reduced across the row's TX work-items
 *    through __local red[BR][TX]; row sums stay per work-item (every term shares the row's
 *    running maximum) and are reduced once at the end;
 *  - the probabilities go through __local Ps[BR][BC]; work-item (tx, ty) accumulates P.V for
 *    slots ty*RM + i and value dims vc*VC + tx + TX*e (e < VC / TX) in registers;
 *  - keys arrive in position order, so under the causal mask the group stops at the first tile
 *    that starts after its last slot's position (uniform: the barriers stay uniform).
 * Micro-tiles and accumulators are arrays indexed only by fully unrolled loops over compile-time
 * sizes (the V chunks expanded one by one), so they stay in registers. The staging, micro-tile
 * loops and online-softmax step are attend_tiled.clh's, shared with clattn_lsh_attend_gpu. Same
 * outputs as clattn_routing_attend: slots (zeros for a slot that saw no key) and dest. */
#ifndef RG_TX
#define RG_TX 8 /* work-items across keys (scores) and value dims (P.V) */
#endif
#ifndef RG_TY
#define RG_TY 8 /* work-items across query slots */
#endif
#ifndef RG_RM
#define RG_RM 4 /* query slots per work-item */
#endif
#ifndef RG_RN
#define RG_RN 8 /* keys per work-item in the score micro-tile */
#endif
#ifndef RG_D
#define RG_D 64 /* D (q and k head dim) */
#endif
#ifndef RG_DV
#define RG_DV 64 /* Dv */
#endif
#ifndef RG_QC
#define RG_QC 32 /* head dims of Q and K staged at a time */
#endif
#ifndef RG_VC
#define RG_VC 64 /* value dims staged at a time (a multiple of RG_TX) */
#endif
#if RG_VC % RG_TX
#error "RG_VC must be a multiple of RG_TX"
#endif
/* The shared tiled attend body (attend_tiled.clh) in this kernel's sizes. */
#define TA_TX RG_TX
#define TA_TY RG_TY
#define TA_RM RG_RM
#define TA_RN RG_RN
#define TA_QC RG_QC
#define TA_VC RG_VC
#define TA_D RG_D
#define TA_DV RG_DV

/* Global (ceil(w / BR) * WG, B Hq C), local (WG, 1). */
__kernel __attribute__((reqd_work_group_size(TA_WG, 1, 1))) void
clattn_routing_attend_gpu(ROUTING_Q *q, ulong q_off, ulong4 q_st, __global const uint *idx,
                          __global const float *kp, __global const float *vp,
                          __global const int *kpos, uint heads_q, uint heads_k, uint n_len,
                          uint d_k, uint d_v, uint dvp, uint n_clusters, uint w, uint wp,
                          float scale_log2, int causal, __global float *slots,
                          __global uint *dest)
{
    __local float Qs[TA_QC * TA_BR];
    __local float ST[TA_ST];
    __local float Ps[TA_BR * TA_BC];
    __local float red[TA_BR * TA_TX];
    __local int qpos[TA_BR];
    /* Every argument read before the first branch (rusticl, DESIGN.md). */
    const uint hq_ = heads_q, hk_ = heads_k, nl = n_len, dvn = d_v, dvpad = dvp;
    const uint ncl = n_clusters, wn = w, wpn = wp;
    const float qscale = scale_log2;
    const int caus = causal;
    const ulong qo = q_off;
    const ulong4 qst = q_st;
    ROUTING_Q *qq = q;
    __global const uint *ix = idx;
    __global const float *kpp = kp, *vpp = vp;
    __global const int *kps = kpos;
    __global float *sl = slots;
    __global uint *de = dest;

    uint lid = get_local_id(0);
    uint ty = lid / TA_TX, tx = lid - ty * TA_TX;
    uint j0 = get_group_id(0) * TA_BR, g = get_global_id(1);
    uint bh = g / ncl, c = g - bh * ncl, b = bh / hq_, h = bh - b * hq_;
    uint gk = (b * hk_ + h / (hq_ / hk_)) * ncl + c;
    __global const uint *gidx = ix + (ulong)g * wn;
    __global const int *pos = kps + (ulong)gk * wpn;
    __global const float *kbase = kpp + (ulong)gk * wpn * RG_D;   /* (wp / 16) panels of D x 16 */
    __global const float *vbase = vpp + (ulong)gk * wpn * dvpad;
    /* The group's slots hold positions in increasing order: its last one sees the most keys. */
    uint jl = min(j0 + TA_BR, wn) - 1u;
    int ilast = (int)gidx[jl];
    if (lid < TA_BR)
        qpos[lid] = j0 + lid < wn ? (int)gidx[j0 + lid] : -1;
    barrier(CLK_LOCAL_MEM_FENCE);

#if TA_NQC == 1
    TA_STAGE_Q(0, (uint)RG_D, qpos, Q_DT, qq, qo, qst, b, h, qscale);
#endif
    int qi[TA_RM];
    float m[TA_RM], l[TA_RM], acc[TA_RM][TA_RA];
    _Pragma("unroll") for (uint i = 0; i < TA_RM; i++) {
        qi[i] = qpos[ty * TA_RM + i];
        m[i] = -INFINITY;
        l[i] = 0.0f;
        _Pragma("unroll") for (uint e = 0; e < TA_RA; e++)
            acc[i][e] = 0.0f;
    }

    /* Key j of the tile starting at kt: its packed slot (clamped into the panels), and whether
     * it is one of the cluster's wp slots (padding slots past w are masked below). */
#define RG_SLOT(j) min(kt + (j), wpn - 1u)
#define RG_VALID(j) (kt + (j) < wpn)
    for (uint kt = 0; kt < wn; kt += TA_BC) {
        if (caus && pos[kt] > ilast)
            break; /* every later key comes after the group's last slot (uniform) */
        float s[TA_RM][TA_RN];
        _Pragma("unroll") for (uint i = 0; i < TA_RM; i++)
            _Pragma("unroll") for (uint j = 0; j < TA_RN; j++)
                s[i][j] = 0.0f;
        for (uint qc = 0; qc < TA_NQC; qc++) {
            uint d0 = qc * TA_QC;
            barrier(CLK_LOCAL_MEM_FENCE);
#if TA_NQC > 1
            TA_STAGE_Q(d0, (uint)RG_D, qpos, Q_DT, qq, qo, qst, b, h, qscale);
#endif
            TA_STAGE_K(d0, kbase, RG_SLOT, RG_VALID);
            barrier(CLK_LOCAL_MEM_FENCE);
            TA_SCORES();
        }
        /* Mask (padding keys, slots past w, causal). */
        int kj[TA_RN];
        _Pragma("unroll") for (uint j = 0; j < TA_RN; j++) {
            uint key = kt + tx + j * TA_TX;
            int p = pos[min(key, wpn - 1u)];
            kj[j] = key < wn ? p : -1;
        }
        _Pragma("unroll") for (uint i = 0; i < TA_RM; i++)
            _Pragma("unroll") for (uint j = 0; j < TA_RN; j++) {
                bool vis = qi[i] >= 0 && kj[j] >= 0 && (!caus || kj[j] <= qi[i]);
                s[i][j] = vis ? s[i][j] : -INFINITY;
            }
        TA_SOFTMAX_STEP();
        /* P.V, VC value dims at a time: one expansion per chunk (Dv <= 256: at most 4). */
        TA_PVC(0, vbase, dvpad, RG_SLOT, RG_VALID);
#if TA_NVC > 1
        TA_PVC(1, vbase, dvpad, RG_SLOT, RG_VALID);
#endif
#if TA_NVC > 2
        TA_PVC(2, vbase, dvpad, RG_SLOT, RG_VALID);
#endif
#if TA_NVC > 3
        TA_PVC(3, vbase, dvpad, RG_SLOT, RG_VALID);
#endif
#if TA_NVC > 4
#error "RG_DV / RG_VC above 4 chunks"
#endif
    }
#undef RG_SLOT
#undef RG_VALID

    /* Row sums: one reduction across the row's work-items, at the end. */
    float lt[TA_RM];
    TA_ROW_SUMS(lt);
    _Pragma("unroll") for (uint i = 0; i < TA_RM; i++) {
        uint j = j0 + ty * TA_RM + i;
        if (j < wn) {
            ulong slot = (ulong)g * wn + j;
            float f = clattn_online_inv(lt[i]);
            _Pragma("unroll") for (uint a = 0; a < TA_RA; a++) {
                uint dcol = TA_ACC_COL(a);
                if (dcol < dvn)
                    sl[slot * dvn + dcol] = acc[i][a] * f;
            }
            if (tx == 0)
                de[slot] = lt[i] > 0.0f ? bh * nl + (uint)qi[i] : ROUTING_NONE;
        }
    }
}
#endif /* ROUTING_GPU */
