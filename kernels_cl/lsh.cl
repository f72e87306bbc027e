//@include attend_tiled.clh
/* Reformer LSH attention (Kitaev et al. 2020), shared-QK. A plan (lib/ops/lsh.c) runs, for every
 * segment seg = (b, h, round):
 *
 *  clattn_lsh_hash       bucket of each position: argmax over [q R_r, -q R_r], first index on ties,
 *                        with the rotations the plan uploaded once, padded to whole float16
 *                        vectors (zeros beyond n_buckets/2); also the normalised key
 *                        q / max(|q|, 1e-12);
 *  clattn_lsh_hist, clattn_lsh_scan, clattn_lsh_scatter
 *                        a stable counting sort of positions by bucket: per tile of positions a
 *                        histogram, one exclusive scan in (bucket, tile) order, then each tile
 *                        scatters its positions in position order. Stable by construction,
 *                        O(N + n_buckets * tiles), no barriers and no atomics: each (bucket,
 *                        tile) counter belongs to one work-item. (With many buckets the plan
 *                        sorts with the radix-sort block of sort.cl instead: see
 *                        lib/sched/sched_lsh.c.)
 *  clattn_lsh_pack_keys  the normalised keys (written by the hash kernel) in sorted order as
 *                        LSH_PANEL-key panels [Dp][LSH_PANEL] (the CPU layout of
 *                        clattn_softmax_fwd_cpu), with each slot's original position and bucket
 *                        (-1 for padding slots);
 *  clattn_lsh_pack_v     values as contiguous rows padded to whole float16 vectors;
 *  clattn_lsh_attend     per round, LSH_ROWS consecutive sorted queries per work-item (they share
 *                        their chunk window, so each key panel load feeds LSH_ROWS rows, and
 *                        neighbouring work-items reuse the same panels from cache): online softmax
 *                        over own chunk + previous chunk, the round's normalised output and
 *                        base-2 log-sum-exp stored by original position;
 *  clattn_lsh_combine    the rounds weighted by their log-sum-exps, in the original order.
 *
 * Designed for CPU devices (PoCL): float16 vectors inside each work-item, no __local memory and
 * no barriers. On GPU-like devices the attend step runs clattn_lsh_attend_gpu instead (end of
 * the file: register micro-tiles, __local K/V tiles). Logits are kept in base 2 (log2 e folded into
 * the scale) so the exponentials are exp2. Every tunable below comes from the scheduler
 * (lib/sched/sched_lsh.c) as a -D option; the defaults let the file compile on its own. */

#ifndef LSH_DP
#define LSH_DP 64 /* head dim rounded up to a multiple of LSH_PANEL */
#endif
#ifndef LSH_DVP
#define LSH_DVP 64 /* value dim rounded up to a multiple of LSH_PANEL */
#endif
#ifndef LSH_ROWS
/* positions (hash) and sorted queries (attend) per work-item; divides LSH_PANEL */
#define LSH_ROWS 4
#endif
#ifndef LSH_PANEL
#define LSH_PANEL 16 /* keys per panel and the padding granule of dims and chunks */
#endif
#if LSH_PANEL != 16
#error "LSH_PANEL is the width of the float16 score vectors"
#endif
#define LSH_DVEC (LSH_DVP / 16)
/* Reformer's score for a query's own position, in base-2 units. */
#define LSH_SELF_SCORE (-1e5f * CLATTN_LOG2E)

/* Element types of the caller's tensors (clattn_dtype codes from the plan: -DQ_DT=1 ...; absent:
 * float32). q and v are read in their own types and out written in its type; everything the
 * plan keeps (normalised keys, packed values, round outputs, log-sum-exps) is float32, as is
 * lse. */
#ifndef Q_DT
#define Q_DT 0
#endif
#ifndef V_DT
#define V_DT 0
#endif
#ifndef O_DT
#define O_DT 0
#endif
#define LSH_Q __global const CLATTN_STYPE(Q_DT)
#define LSH_V __global const CLATTN_STYPE(V_DT)
#define LSH_O __global CLATTN_STYPE(O_DT)

#if !LSH_GPU /* the tiled attend's program (below) carries only its kernel */
/* clattn_load_row of a q row in its type: dst[k] = scale * q[b, h, i, k] for k < count, else 0. */
inline void lsh_load_q(float *dst, uint width, LSH_Q *x, ulong off, ulong4 st, ulong i0, ulong i1,
                       ulong i2, uint count, float scale)
{
    for (uint k = 0; k < width; k++)
        dst[k] = k < count ? CLATTN_LOAD(Q_DT, x, clattn_at(off, st, i0, i1, i2, k)) * scale : 0.0f;
}

/* LSH_ROWS consecutive positions per work-item (each rotation load feeds LSH_ROWS rows):
 * bkt[seg * n + i] for seg = bh * n_hashes + r, the caller's bucket view when has_out, and the
 * normalised key khat[bh][i][LSH_DP] (zero-padded). The argmax runs in vectors: per lane the
 * first column holding the lane's maximum, then the lowest such column among the lanes holding
 * the overall maximum; [x, -x] puts the positive half first, so it wins a tie between halves.
 * rp is [n_hashes][d][nhalfp], nhalfp = n_buckets / 2 rounded up to LSH_PANEL (zeros beyond).
 * Global size (at least ceil(n / LSH_ROWS), B * H). */
__kernel void clattn_lsh_hash(LSH_Q *q, ulong q_off, ulong4 q_st, uint heads,
                              uint n, uint d, uint n_hashes, uint nhalf, uint nhalfp,
                              __global const float *rp, __global int *bkt, __global int *bout,
                              ulong b_off, ulong4 b_st, int has_out, __global float *khat)
{
    uint i0 = get_global_id(0) * LSH_ROWS, bh = get_global_id(1);
    if (i0 >= n)
        return;
    uint b = bh / heads, h = bh % heads;
    float x[LSH_ROWS][LSH_DP];
    for (uint r = 0; r < LSH_ROWS; r++) {
        uint i = i0 + r;
        lsh_load_q(x[r], LSH_DP, q, q_off, q_st, b, h, i, i < n ? d : 0, 1.0f);
        if (i >= n)
            continue;
        float ss = 0.0f;
        for (uint k = 0; k < LSH_DP; k++)
            ss += x[r][k] * x[r][k];
        float rn = 1.0f / fmax(sqrt(ss), 1e-12f);
        __global float *kh = khat + ((ulong)bh * n + i) * LSH_DP;
        for (uint k = 0; k < LSH_DP; k++)
            kh[k] = x[r][k] * rn;
    }
    for (uint hr = 0; hr < n_hashes; hr++) {
        float16 bp[LSH_ROWS], bn[LSH_ROWS];
        int16 ip[LSH_ROWS], in[LSH_ROWS];
        _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++) {
            bp[r] = bn[r] = CLATTN_SPLAT16(-INFINITY);
            ip[r] = in[r] = CLATTN_ISPLAT16(0);
        }
        __global const float *rr = rp + (ulong)hr * d * nhalfp;
        for (uint c0 = 0; c0 < nhalfp; c0 += LSH_PANEL) {
            float16 y[LSH_ROWS];
            _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++)
                y[r] = CLATTN_SPLAT16(0.0f);
            for (uint k = 0; k < d; k++) {
                float16 rv = vload16(0, rr + (ulong)k * nhalfp + c0);
                _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++)
                    y[r] = fma(CLATTN_SPLAT16(x[r][k]), rv, y[r]);
            }
            int16 col = CLATTN_LANES16 + CLATTN_ISPLAT16((int)c0);
            int16 live = col < CLATTN_ISPLAT16((int)nhalf);
            _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++) {
                float16 yp = select(CLATTN_SPLAT16(-INFINITY), y[r], live);
                float16 yn = select(CLATTN_SPLAT16(-INFINITY), -y[r], live);
                int16 up = yp > bp[r], un = yn > bn[r];
                bp[r] = select(bp[r], yp, up);
                ip[r] = select(ip[r], col, up);
                bn[r] = select(bn[r], yn, un);
                in[r] = select(in[r], col, un);
            }
        }
        for (uint r = 0; r < LSH_ROWS; r++) {
            uint i = i0 + r;
            if (i >= n)
                break;
            float mp = clattn_hmax16(bp[r]), mn = clattn_hmax16(bn[r]);
            int tp[16], tn[16];
            vstore16(select(CLATTN_ISPLAT16(INT_MAX), ip[r], bp[r] == CLATTN_SPLAT16(mp)), 0, tp);
            vstore16(select(CLATTN_ISPLAT16(INT_MAX), in[r], bn[r] == CLATTN_SPLAT16(mn)), 0, tn);
            int ap = INT_MAX, an = INT_MAX;
            for (uint l = 0; l < 16; l++) {
                ap = min(ap, tp[l]);
                an = min(an, tn[l]);
            }
            /* A NaN query compares false everywhere and lands in bucket 0. */
            int bucket = mn > mp ? (int)nhalf + an : (ap == INT_MAX ? 0 : ap);
            ulong seg = (ulong)bh * n_hashes + hr;
            bkt[seg * n + i] = bucket;
            if (has_out)
                bout[clattn_at(b_off, b_st, b, h, hr, i)] = bucket;
        }
    }
}

/* cnt[seg][k][t] = positions of tile t (tile positions each) in bucket k. Global size (tiles,
 * segments). */
__kernel void clattn_lsh_hist(__global const int *bkt, uint n, uint n_buckets, uint tile,
                              uint tiles, __global int *cnt)
{
    uint t = get_global_id(0), seg = get_global_id(1);
    __global int *c = cnt + (ulong)seg * n_buckets * tiles + t;
    for (uint k = 0; k < n_buckets; k++)
        c[(ulong)k * tiles] = 0;
    __global const int *bs = bkt + (ulong)seg * n;
    uint i1 = min(n, (t + 1) * tile);
    for (uint i = t * tile; i < i1; i++)
        c[(ulong)bs[i] * tiles] += 1;
}

/* Exclusive scan of cnt[seg] in (bucket, tile) order: the first sorted slot of each (bucket,
 * tile). Global size (segments). */
__kernel void clattn_lsh_scan(__global int *cnt, uint n_buckets, uint tiles)
{
    __global int *c = cnt + (ulong)get_global_id(0) * n_buckets * tiles;
    ulong len = (ulong)n_buckets * tiles;
    int run = 0;
    for (ulong u = 0; u < len; u++) {
        int x = c[u];
        c[u] = run;
        run += x;
    }
}

/* Each tile places its positions in position order: sorted[seg][slot] = i. Global size (tiles,
 * segments). */
__kernel void clattn_lsh_scatter(__global const int *bkt, uint n, uint n_buckets, uint tile,
                                 uint tiles, __global int *cnt, __global int *sorted)
{
    uint t = get_global_id(0), seg = get_global_id(1);
    __global int *c = cnt + (ulong)seg * n_buckets * tiles + t;
    __global const int *bs = bkt + (ulong)seg * n;
    uint i1 = min(n, (t + 1) * tile);
    for (uint i = t * tile; i < i1; i++) {
        ulong k = (ulong)bs[i] * tiles;
        int slot = c[k];
        c[k] = slot + 1;
        sorted[(ulong)seg * n + slot] = (int)i;
    }
}

/* Slot u = c * cp + t of segment seg holds sorted index s = c * chunk + t when t < chunk and
 * s < n: its key khat[p] goes into the panels kp, its position and bucket into spos / sbkt; other
 * slots get zeros and -1. One work-item per panel of LSH_PANEL slots. Global size
 * (nchunks * cp / LSH_PANEL, segments). */
__kernel void clattn_lsh_pack_keys(uint n, uint n_hashes, uint chunk, uint cp, uint nchunks,
                                   __global const int *sorted, __global const int *bkt,
                                   __global const float *khat, __global float *kp,
                                   __global int *spos, __global int *sbkt)
{
    uint blk = get_global_id(0), seg = get_global_id(1), bh = seg / n_hashes;
    uint u0 = blk * LSH_PANEL, c = u0 / cp, t0 = u0 % cp;
    ulong g0 = (ulong)seg * nchunks * cp + u0;
    __global float *panel = kp + g0 * LSH_DP;
    __global const float *kb = khat + (ulong)bh * n * LSH_DP;
    int p[LSH_PANEL];
    for (uint l = 0; l < LSH_PANEL; l++) {
        uint t = t0 + l, s = c * chunk + t;
        bool valid = t < chunk && s < n;
        p[l] = valid ? sorted[(ulong)seg * n + s] : -1;
        spos[g0 + l] = p[l];
        sbkt[g0 + l] = valid ? bkt[(ulong)seg * n + p[l]] : -1;
    }
    /* Column by column, so the panel is written as whole 64-byte rows. */
    __global const float *krow[LSH_PANEL];
    bool keep[LSH_PANEL];
    for (uint l = 0; l < LSH_PANEL; l++) {
        krow[l] = kb + (ulong)max(p[l], 0) * LSH_DP;
        keep[l] = p[l] >= 0;
    }
    for (uint k = 0; k < LSH_DP; k++) {
        float col[LSH_PANEL];
        _Pragma("unroll") for (uint l = 0; l < LSH_PANEL; l++)
            col[l] = keep[l] ? krow[l][k] : 0.0f;
        vstore16(vload16(0, col), k, panel);
    }
}

/* vp[bh][j][LSH_DVP] = v[b, h, j, :], zero-padded. Global size (n rounded up, B * H). */
__kernel void clattn_lsh_pack_v(LSH_V *v, ulong v_off, ulong4 v_st, uint heads,
                                uint n, uint dv, __global float *vp)
{
    uint j = get_global_id(0), bh = get_global_id(1), b = bh / heads, h = bh % heads;
    if (j >= n)
        return;
    __global float *dst = vp + ((ulong)bh * n + j) * LSH_DVP;
    for (uint k = 0; k < LSH_DVP; k++)
        dst[k] = k < dv ? CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, b, h, j, k)) : 0.0f;
}

/* Round r of LSH_ROWS consecutive sorted slots (one chunk): ro[seg][p][:] = the normalised
 * output and rl[seg][p] = the base-2 log-sum-exp of each valid slot's query p. scale2 is
 * log2(e) / sqrt(D). Global size (nchunks * cp / LSH_ROWS, segments). */
__kernel void clattn_lsh_attend(LSH_Q *q, ulong q_off, ulong4 q_st, uint heads,
                                uint n, uint d, uint n_hashes, uint cp, uint nchunks,
                                __global const float *kp, __global const int *spos,
                                __global const int *sbkt, __global const float *vp, int causal,
                                int across, float scale2, __global float *ro, __global float *rl)
{
    uint seg = get_global_id(1), bh = seg / n_hashes, b = bh / heads, h = bh % heads;
    uint slot0 = get_global_id(0) * LSH_ROWS, c = slot0 / cp;
    ulong gq = ((ulong)seg * nchunks) * cp + slot0;
    int qp[LSH_ROWS], qb[LSH_ROWS];
    bool live = false;
    for (uint r = 0; r < LSH_ROWS; r++) {
        qp[r] = spos[gq + r];
        qb[r] = sbkt[gq + r];
        live |= qp[r] >= 0;
    }
    if (!live)
        return;
    float qr[LSH_ROWS][LSH_DP];
    for (uint r = 0; r < LSH_ROWS; r++)
        lsh_load_q(qr[r], LSH_DP, q, q_off, q_st, b, h, qp[r], qp[r] >= 0 ? d : 0, scale2);
    float m[LSH_ROWS], l[LSH_ROWS];
    float16 acc[LSH_ROWS][LSH_DVEC];
    for (uint r = 0; r < LSH_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (uint e = 0; e < LSH_DVEC; e++)
            acc[r][e] = CLATTN_SPLAT16(0.0f);
    }
    __global const float *vb = vp + (ulong)bh * n * LSH_DVP;
    uint nwin = nchunks > 1 ? 2 : 1;
    for (uint w = 0; w < nwin; w++) {
        uint cc = w == 0 ? c : (c + nchunks - 1) % nchunks;
        ulong g0 = ((ulong)seg * nchunks + cc) * cp;
        for (uint t0 = 0; t0 < cp; t0 += LSH_PANEL) {
            int16 pos = vload16(0, spos + g0 + t0);
            int16 kb = vload16(0, sbkt + g0 + t0);
            int16 vis[LSH_ROWS];
            bool anyv = false;
            for (uint r = 0; r < LSH_ROWS; r++) {
                int16 v = clattn_visible16(pos, qp[r], causal);
                if (!across)
                    v &= kb == CLATTN_ISPLAT16(qb[r]);
                vis[r] = qp[r] >= 0 ? v : CLATTN_ISPLAT16(0);
                anyv |= any(vis[r]) != 0;
            }
            if (!anyv)
                continue;
            __global const float *panel = kp + (g0 + t0) * LSH_DP;
            float16 sc[LSH_ROWS];
            for (uint r = 0; r < LSH_ROWS; r++)
                sc[r] = CLATTN_SPLAT16(0.0f);
            _Pragma("unroll") for (uint k = 0; k < LSH_DP; k++) {
                float16 kv = vload16(k, panel);
                _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++)
                    sc[r] = fma(CLATTN_SPLAT16(qr[r][k]), kv, sc[r]);
            }
            float pt[LSH_ROWS][LSH_PANEL];
            _Pragma("unroll") for (uint r = 0; r < LSH_ROWS; r++) {
                float16 x = select(sc[r], CLATTN_SPLAT16(LSH_SELF_SCORE),
                                   pos == CLATTN_ISPLAT16(qp[r]));
                x = clattn_mask16(x, vis[r]);
                /* The online-softmax step, with its work skipped where it would change nothing:
                 * a row that sees no key here adds zeros, and one whose maximum stays keeps its
                 * scale (ref is then m, finite since this row has seen a key). */
                float bm = clattn_hmax16(x);
                if (bm == -INFINITY) {
                    vstore16(CLATTN_SPLAT16(0.0f), 0, pt[r]);
                    continue;
                }
                if (bm > m[r]) {
                    float ref, corr = clattn_online_step(&m[r], bm, &ref);
                    l[r] *= corr;
                    CLATTN_SCALE16(acc[r], LSH_DVEC, corr);
                }
                /* x - m <= 0 (-inf masked); a NaN score (NaN in q or k) stays a NaN weight */
                float16 a = x - CLATTN_SPLAT16(m[r]);
                float16 p = clattn_exp2_neg16(a);
                l[r] += clattn_hsum16(p);
                vstore16(p, 0, pt[r]);
            }
            /* Values by original position (invisible lanes read row 0 with weight 0).
             * Gathering beat a per-round sorted copy of V at N = 64k (less memory traffic) and
             * tied at 16k. */
            int pp[LSH_PANEL];
            vstore16(max(pos, CLATTN_ISPLAT16(0)), 0, pp);
            _Pragma("unroll") for (uint x = 0; x < LSH_PANEL; x++)
                CLATTN_AXPY16_ROWS(acc, LSH_ROWS, LSH_DVEC, pt, x, vb + (ulong)pp[x] * LSH_DVP);
        }
    }
    for (uint r = 0; r < LSH_ROWS; r++) {
        if (qp[r] < 0)
            continue;
        /* A query always sees itself, so l >= 1 here. */
        ulong at = (ulong)seg * n + qp[r];
        float16 rcp = CLATTN_SPLAT16(clattn_online_inv(l[r]));
        for (uint e = 0; e < LSH_DVEC; e++)
            vstore16(acc[r][e] * rcp, e, ro + at * LSH_DVP);
        rl[at] = clattn_online_lse2(m[r], l[r]);
    }
}

/* out[b, h, i, :] = sum_r 2^(rl_r - L) ro_r with L = log2 sum_r 2^rl_r; lse = L ln 2: an online
 * softmax over the rounds, with scores rl_r and values ro_r. Global size (n rounded up, B * H). */
__kernel void clattn_lsh_combine(__global const float *ro, __global const float *rl, uint heads,
                                 uint n, uint dv, uint n_hashes, LSH_O *out, ulong o_off,
                                 ulong4 o_st, __global float *lse, ulong l_off, ulong4 l_st,
                                 int has_lse)
{
    uint i = get_global_id(0), bh = get_global_id(1);
    if (i >= n)
        return;
    uint b = bh / heads, h = bh % heads;
    ulong first = (ulong)bh * n_hashes * n + i;
    float16 acc[LSH_DVEC];
    for (uint e = 0; e < LSH_DVEC; e++)
        acc[e] = CLATTN_SPLAT16(0.0f);
    float m = -INFINITY, l = 0.0f;
    for (uint r = 0; r < n_hashes; r++) {
        ulong at = first + (ulong)r * n;
        float ref, corr = clattn_online_step(&m, rl[at], &ref);
        float w = clattn_exp2_neg(rl[at] - ref); /* <= 0 (ref is the new maximum); NaN: NaN */
        l = l * corr + w;
        CLATTN_SCALE16(acc, LSH_DVEC, corr);
        CLATTN_AXPY16(acc, LSH_DVEC, w, ro + at * LSH_DVP);
    }
    float16 inv = CLATTN_SPLAT16(clattn_online_inv(l));
    for (uint e = 0; e < LSH_DVEC; e++) {
        float t[16];
        vstore16(acc[e] * inv, 0, t);
        for (uint k = 0; k < 16 && e * 16 + k < dv; k++)
            CLATTN_STORE(O_DT, t[k], out, clattn_at(o_off, o_st, b, h, i, e * 16 + k));
    }
    if (has_lse)
        lse[clattn_at(l_off, l_st, b, h, i, 0)] = clattn_online_lse2(m, l) * CLATTN_LN2;
}

#endif /* !LSH_GPU */

#if LSH_GPU
/* ---- clattn_lsh_attend_gpu: the attend kernel for GPU-like devices (issue 12), in the
 * discipline of softmax_gpu.cl (-DLSH_GPU=1 and the tile options below, lib/sched/sched_lsh.c).
 *
 *  - a work-group of LSH_GTX x LSH_GTY work-items owns BR = TY * RM consecutive sorted slots of one
 *    chunk c of segment seg; their scaled queries are staged transposed in __local Qs[QC][BR]
 *    (once when LSH_DP <= QC, else QC head dims at a time per key tile), their positions and
 *    buckets in __local;
 *  - the window (chunk c - 1, then chunk c, when there are several) goes BC = TX * RN slots at a
 *    time: K's head dims QC at a time transposed into Kt[QC][BC + 1] from the panels, each
 *    slot's position and bucket into __local, then V's rows (gathered by original position) VC
 *    value dims at a time into Vs[BC][VC] (one buffer ST holds K's or V's);
 *  - work-item (tx, ty) computes the RM x RN score micro-tile of slots ty*RM + i and keys
 *    tx + TX*j in registers, masks it (padding, causal, other buckets unless `across`, the
 *    query's own position scored LSH_SELF_SCORE), and the row maxima are reduced across the
 *    row's TX work-items through __local red[BR][TX]; row sums stay per work-item and are
 *    reduced once at the end;
 *  - the probabilities go through __local Ps[BR][BC]; work-item (tx, ty) accumulates P.V for
 *    slots ty*RM + i and value dims vc*VC + tx + TX*e in registers;
 *  - the group walks only the part of its window from the first to the last key that may be
 *    visible to one of its rows (in the group's bucket range unless `across`, at or before its
 *    last position under the causal mask, not padding): the key tiles outside are skipped, as
 *    clattn_lsh_attend skips such panels.
 * Micro-tiles and accumulators are indexed only by fully unrolled loops over compile-time sizes
 * (the V chunks expanded one by one), so they stay in registers. The staging, micro-tile loops
 * and online-softmax step are attend_tiled.clh's, shared with clattn_routing_attend_gpu. Same
 * outputs as clattn_lsh_attend. */
#ifndef LSH_GTX
#define LSH_GTX 8
#endif
#ifndef LSH_GTY
#define LSH_GTY 8
#endif
#ifndef LSH_GRM
#define LSH_GRM 4
#endif
#ifndef LSH_GRN
#define LSH_GRN 8
#endif
#ifndef LSH_GQC
#define LSH_GQC 32 /* head dims of Q and K staged at a time */
#endif
#ifndef LSH_GVC
#define LSH_GVC 64 /* value dims staged at a time (a multiple of LSH_GTX) */
#endif
#if LSH_GVC % LSH_GTX
#error "LSH_GVC must be a multiple of LSH_GTX"
#endif
/* The shared tiled attend body (attend_tiled.clh) in this kernel's sizes. */
#define TA_TX LSH_GTX
#define TA_TY LSH_GTY
#define TA_RM LSH_GRM
#define TA_RN LSH_GRN
#define TA_QC LSH_GQC
#define TA_VC LSH_GVC
#define TA_D LSH_DP
#define TA_DV LSH_DVP

/* Slot k of a group's key window in the round's sorted order: the cp slots from `first` (the
 * previous chunk's, or the own chunk's when there is one chunk), then the cp from `second` (the
 * own chunk's). In this order the keys of the group's buckets are contiguous (the previous
 * chunk's tail, then a run of the own chunk's). */
inline ulong lsh_window_slot(uint k, uint cp, ulong first, ulong second)
{
    uint w = k >= cp;
    return (w ? second : first) + (k - w * cp);
}

/* Global (nchunks * ceil(cp / BR) * WG, segments), local (WG, 1). */
__kernel __attribute__((reqd_work_group_size(TA_WG, 1, 1))) void
clattn_lsh_attend_gpu(LSH_Q *q, ulong q_off, ulong4 q_st, uint heads, uint n, uint d,
                      uint n_hashes, uint cp, uint nchunks, __global const float *kp,
                      __global const int *spos, __global const int *sbkt,
                      __global const float *vp, int causal, int across, float scale2,
                      __global float *ro, __global float *rl)
{
    __local float Qs[TA_QC * TA_BR];
    __local float ST[TA_ST];
    __local float Ps[TA_BR * TA_BC];
    __local float red[TA_BR * TA_TX];
    __local int qpos[TA_BR], qbk[TA_BR], kps[TA_BC], kbs[TA_BC];
    __local int krange[2]; /* the window's first and last key that may be visible to a row */
    /* Every argument read before the first branch (rusticl, DESIGN.md). */
    LSH_Q *qq = q;
    const ulong qo = q_off;
    const ulong4 qst = q_st;
    const uint hd = heads, nn = n, dn = d, nh = n_hashes, cpn = cp, nch = nchunks;
    __global const float *kpp = kp, *vpp = vp;
    __global const int *sp = spos, *sb = sbkt;
    const int caus = causal, acr = across;
    const float qscale = scale2;
    __global float *rop = ro, *rlp = rl;

    uint lid = get_local_id(0);
    uint ty = lid / TA_TX, tx = lid - ty * TA_TX;
    uint seg = get_global_id(1), grp = get_group_id(0);
    uint gpc = (cpn + TA_BR - 1u) / TA_BR, c = grp / gpc, r0 = (grp - c * gpc) * TA_BR;
    uint bh = seg / nh, b = bh / hd, h = bh - b * hd;
    ulong gq = ((ulong)seg * nch + c) * cpn + r0;
    if (lid < TA_BR) {
        bool in = r0 + lid < cpn;
        ulong at = in ? gq + lid : gq;
        int p = sp[at], k = sb[at];
        qpos[lid] = in ? p : -1;
        qbk[lid] = in ? k : -1;
    }
    if (lid == 0) {
        krange[0] = INT_MAX;
        krange[1] = -1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Valid slots are a prefix of each chunk: a group whose first slot is padding has none and
     * runs no key tile (the same trip count in every work-item; no early return: PoCL crashed
     * on one before the later barriers). */
    bool live = qpos[0] >= 0;
    /* The group's bucket range and last position: a key outside the range (unless `across`) or
     * after that position (causal) is visible to none of its rows. */
    int qbmin = INT_MAX, qbmax = -1, qpmax = -1;
    for (uint r = 0; r < TA_BR; r++) {
        int p = qpos[r], k = qbk[r];
        qbmin = p >= 0 ? min(qbmin, k) : qbmin;
        qbmax = p >= 0 ? max(qbmax, k) : qbmax;
        qpmax = max(qpmax, p);
    }
    __global const float *vb = vpp + (ulong)bh * nn * LSH_DVP;
#if TA_NQC == 1
    TA_STAGE_Q(0, dn, qpos, Q_DT, qq, qo, qst, b, h, qscale);
#endif
    int qi[TA_RM], qb[TA_RM];
    float m[TA_RM], l[TA_RM], acc[TA_RM][TA_RA];
    _Pragma("unroll") for (uint i = 0; i < TA_RM; i++) {
        qi[i] = qpos[ty * TA_RM + i];
        qb[i] = qbk[ty * TA_RM + i];
        m[i] = -INFINITY;
        l[i] = 0.0f;
        _Pragma("unroll") for (uint e = 0; e < TA_RA; e++)
            acc[i][e] = 0.0f;
    }
    uint nwin = live ? (nch > 1 ? 2u : 1u) * cpn : 0u;
    ulong own = ((ulong)seg * nch + c) * cpn, prev = ((ulong)seg * nch + (c + nch - 1u) % nch) * cpn;
    ulong first = nch > 1 ? prev : own;
    /* The window's keys that may be visible to a row of the group: not padding, in the group's
     * bucket range (unless `across`), not after its last position (causal). The group walks
     * only [klo, khi), from the first such key to the last (in the window's order they are
     * contiguous: about a chunk, where the full window is two), so the FMAs of the key tiles
     * with no such key are skipped, as clattn_lsh_attend skips such panels. The bounds reach
     * every work-item through __local atomics and a barrier: the same trip count in all. */
    for (uint k = lid; k < nwin; k += TA_WG) {
        ulong at = lsh_window_slot(k, cpn, first, own);
        int p = sp[at], bk = sb[at];
        if (p >= 0 && (acr || (bk >= qbmin && bk <= qbmax)) && (!caus || p <= qpmax)) {
            atomic_min(&krange[0], (int)k);
            atomic_max(&krange[1], (int)k);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int klo_ = krange[0], khi_ = krange[1] + 1;
    uint khi = (uint)max(khi_, 0), klo = khi_ > 0 ? (uint)klo_ : 0u;

    /* Key j of the tile starting at kt: its window slot (clamped into [klo, khi)) and whether it
     * is in the range; for V, its original position (row of vb), -1 for none. */
#define LG_SLOT(j) lsh_window_slot(min(kt + (j), khi - 1u), cpn, first, own)
#define LG_VALID(j) (kt + (j) < khi)
#define LG_VROW(j) max(kps[j], 0)
#define LG_VVALID(j) (kps[j] >= 0)
    for (uint kt = klo; kt < khi; kt += TA_BC) {
        if (lid < TA_BC) { /* the tile's slot positions and buckets */
            uint k = kt + lid;
            bool in = k < khi;
            ulong at = lsh_window_slot(min(k, khi - 1u), cpn, first, own);
            int p = sp[at], bk = sb[at];
            kps[lid] = in ? p : -1;
            kbs[lid] = in ? bk : -1;
        }
        float s[TA_RM][TA_RN];
        _Pragma("unroll") for (uint i = 0; i < TA_RM; i++)
            _Pragma("unroll") for (uint j = 0; j < TA_RN; j++)
                s[i][j] = 0.0f;
        for (uint qc = 0; qc < TA_NQC; qc++) {
            uint d0 = qc * TA_QC;
            barrier(CLK_LOCAL_MEM_FENCE);
#if TA_NQC > 1
            TA_STAGE_Q(d0, dn, qpos, Q_DT, qq, qo, qst, b, h, qscale);
#endif
            TA_STAGE_K(d0, kpp, LG_SLOT, LG_VALID);
            barrier(CLK_LOCAL_MEM_FENCE);
            TA_SCORES();
        }
        /* Masks and the query's own position (scored LSH_SELF_SCORE). */
        int kj[TA_RN], kb[TA_RN];
        _Pragma("unroll") for (uint j = 0; j < TA_RN; j++) {
            kj[j] = kps[tx + j * TA_TX];
            kb[j] = kbs[tx + j * TA_TX];
        }
        _Pragma("unroll") for (uint i = 0; i < TA_RM; i++)
            _Pragma("unroll") for (uint j = 0; j < TA_RN; j++) {
                bool vis = qi[i] >= 0 && kj[j] >= 0 && (!caus || kj[j] <= qi[i]) &&
                           (acr || kb[j] == qb[i]);
                float x = kj[j] == qi[i] ? LSH_SELF_SCORE : s[i][j];
                s[i][j] = vis ? x : -INFINITY;
            }
        TA_SOFTMAX_STEP();
        TA_PVC(0, vb, (uint)LSH_DVP, LG_VROW, LG_VVALID);
#if TA_NVC > 1
        TA_PVC(1, vb, (uint)LSH_DVP, LG_VROW, LG_VVALID);
#endif
#if TA_NVC > 2
        TA_PVC(2, vb, (uint)LSH_DVP, LG_VROW, LG_VVALID);
#endif
#if TA_NVC > 3
        TA_PVC(3, vb, (uint)LSH_DVP, LG_VROW, LG_VVALID);
#endif
#if TA_NVC > 4
#error "LSH_DVP / LSH_GVC above 4 chunks"
#endif
    }
#undef LG_SLOT
#undef LG_VALID
#undef LG_VROW
#undef LG_VVALID

    float lt[TA_RM];
    TA_ROW_SUMS(lt);
    _Pragma("unroll") for (uint i = 0; i < TA_RM; i++) {
        if (qi[i] >= 0) {
            /* A query always sees itself, so lt >= 1 here. */
            ulong at = (ulong)seg * nn + (uint)qi[i];
            float f = clattn_online_inv(lt[i]);
            _Pragma("unroll") for (uint a = 0; a < TA_RA; a++) {
                uint dcol = TA_ACC_COL(a);
                if (dcol < LSH_DVP)
                    rop[at * LSH_DVP + dcol] = acc[i][a] * f;
            }
            if (tx == 0)
                rlp[at] = clattn_online_lse2(m[i], lt[i]);
        }
    }
}
#endif /* LSH_GPU */
