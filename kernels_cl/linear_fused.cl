/* The fused non-causal form of linear attention for the element-wise maps (elu, relu, identity),
 * a program of its own so that the materialised forms' program (kernels_cl/linear.cl, which
 * explains the state layout) does not carry it.
 * The materialised pipeline writes the features of Q and K, a padded copy of V and the chunk
 * weights, then reads them back: about five passes over memory per row. For the element-wise maps
 * (phi(x)_t = elu(x_t) + 1 or relu(x_t), log-scale 0, so every chunk weight is 1) the two kernels
 * below read Q, K and V straight from the caller's views and compute phi in registers: one pass
 * over K and V (clattn_linear_fused_state, chunk sums), linear.cl's scan over the chunk sums
 * (scales all 1), and one pass over Q writing out (clattn_linear_fused_out). */

/* Tunables, set by the host scheduler (lib/sched/sched_linear.c) as -D options, the same as
 * linear.cl's (one defines string builds both programs). */
#ifndef LINEAR_MB
#define LINEAR_MB 4 /* feature rows per chunk-state work-item; divides the feature padding 16 */
#endif
#ifndef LINEAR_RB
#define LINEAR_RB 8 /* query rows per output work-item */
#endif
#ifndef LINEAR_EB
#define LINEAR_EB 2 /* float16 value blocks per output and chunk-state work-item */
#endif

/* Element types of the caller's tensors (clattn_dtype, -DQ_DT=... from the plan; absent:
 * float32), read and written only through common.clh's macros. */
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

/* row[e0 + k] = v[k] of out (O_DT) for the first min(count, 16) lanes. A copy of linear.cl's
 * (the two files are separate programs, and it depends on this file's O_DT). */
inline void clattn_linear_store16(float16 v, uint count, __global CLATTN_STYPE(O_DT) *x,
                                  ulong off, ulong4 st, ulong i0, ulong i1, ulong i2, ulong e0)
{
    float t[16];
    vstore16(v, 0, t);
    for (uint k = 0; k < 16 && k < count; k++)
        CLATTN_STORE(O_DT, t[k], x, clattn_at(off, st, i0, i1, i2, e0 + k));
}

#define LIN_CAT_(a, b) a##b
#define LIN_CAT(a, b) LIN_CAT_(a, b)
typedef LIN_CAT(float, LINEAR_MB) lin_fvec; /* LINEAR_MB features of one key */
#define LIN_VLOAD_MB LIN_CAT(vload, LINEAR_MB)
#define LIN_VSTORE_MB LIN_CAT(vstore, LINEAR_MB)

/* Vector loads of a caller's tensor (role R, type DT) at element `at`, any alignment: PoCL's
 * vload_halfn faults on addresses not aligned to the vector (seen with -DK_DT=1), so the 16-bit
 * types take the vector path only where at is a multiple of the width (always for contiguous
 * rows of D a multiple of 16) and go element by element otherwise. float32 keeps vloadn. */
#define LIN_DEF_LOADS(R, DT)                                                                     \
    inline float16 lin_ld16_##R(__global const CLATTN_STYPE(DT) *p, ulong at)                   \
    {                                                                                            \
        if (DT == 0 || at % 16 == 0)                                                             \
            return CLATTN_VLOAD(DT, 16, 0, p + at);                                              \
        float t[16];                                                                             \
        for (int u = 0; u < 16; u++)                                                             \
            t[u] = CLATTN_LOAD(DT, p, at + u);                                                   \
        return vload16(0, t);                                                                    \
    }                                                                                            \
    inline lin_fvec lin_ldmb_##R(__global const CLATTN_STYPE(DT) *p, ulong at)                  \
    {                                                                                            \
        if (DT == 0 || at % LINEAR_MB == 0)                                                      \
            return CLATTN_VLOAD(DT, LINEAR_MB, 0, p + at);                                       \
        float t[LINEAR_MB];                                                                      \
        for (int u = 0; u < LINEAR_MB; u++)                                                      \
            t[u] = CLATTN_LOAD(DT, p, at + u);                                                   \
        return LIN_VLOAD_MB(0, t);                                                               \
    }
LIN_DEF_LOADS(q, Q_DT)
LIN_DEF_LOADS(k, K_DT)
LIN_DEF_LOADS(v, V_DT)

/* phi of a vector of inputs, numbered as clattn_linear_feature_map (blocks_features.cl's
 * FEATURES_*): 0 elu + 1, 1 relu, 2 identity. elu's exp(min(x, 0)) is EXP2N (common.clh's
 * clattn_exp2_neg of T's width) of x log2(e), as linear_causal.cl's linc_phi16; a NaN x takes
 * the x + 1 side. */
#define LIN_PHI(x, fmap, T, EXP2N)                                                             \
    ((fmap) == 0   ? select((x) + (T)(1.0f),                                                   \
                            EXP2N(((x) < (T)(0.0f) ? (x) : (T)(0.0f)) * (T)(CLATTN_LOG2E)),     \
                            isless((x), (T)(0.0f)))                                            \
     : (fmap) == 1 ? fmax((x), (T)(0.0f))                                                      \
                   : (x))
#define LIN_EXP2N_MB LIN_CAT(clattn_exp2_neg, LINEAR_MB)

/* LINEAR_MB features m0.. of row (b, h, j) of x: phi(x_t) for t < d, 0 for the padding. fast:
 * the row is contiguous (st.s3 = 1) and m0 + LINEAR_MB <= d. */
__attribute__((always_inline)) inline lin_fvec clattn_linear_phi_mb(__global const CLATTN_STYPE(K_DT) *x, ulong base, ulong sw, uint m0,
                                     uint d, int fmap, int fast)
{
    if (fast) {
        lin_fvec v = lin_ldmb_k(x, base + m0);
        return LIN_PHI(v, fmap, lin_fvec, LIN_EXP2N_MB);
    }
    float t[LINEAR_MB];
    #pragma unroll
    for (int u = 0; u < LINEAR_MB; u++)
        t[u] = m0 + u < d ? CLATTN_LOAD(K_DT, x, base + (m0 + u) * sw) : 0.0f;
    lin_fvec v = LIN_VLOAD_MB(0, t);
    v = LIN_PHI(v, fmap, lin_fvec, LIN_EXP2N_MB);
    LIN_VSTORE_MB(v, 0, t);
    #pragma unroll
    for (int u = 0; u < LINEAR_MB; u++)
        if (m0 + u >= d)
            t[u] = 0.0f;
    return LIN_VLOAD_MB(0, t);
}

/* 16 values e0.. of row (b, h, j) of v, 0 past dv. fast: contiguous and e0 + 16 <= dv. */
__attribute__((always_inline)) inline float16 clattn_linear_row16(__global const CLATTN_STYPE(V_DT) *x, ulong base, ulong sw, uint e0,
                                   uint dv, int fast)
{
    if (fast)
        return lin_ld16_v(x, base + e0);
    float t[16];
    #pragma unroll
    for (uint u = 0; u < 16; u++)
        t[u] = e0 + u < dv ? CLATTN_LOAD(V_DT, x, base + (e0 + u) * sw) : 0.0f;
    return vload16(0, t);
}

/* Chunk sums straight from the views: ca[g][m][e] = sum_j phi(k_j)_m v_je, the z column
 * ca[g][m][DVP] = sum_j phi(k_j)_m (written by eg 0, with the other 15 columns 0), and with
 * momentum cb[g][m][e] = sum_j mu^(j1-1-j) phi(k_j)_m v_je; g = bhk * nchunks + c (chunks of
 * `chunk` keys). Work-item (eg, mb, g): LINEAR_MB feature rows times LINEAR_EB float16 value
 * blocks. k [B, Hk, N, D] and v [B, Hk, N, Dv] any strides. Global size
 * (ceil(DVP / (16 LINEAR_EB)), MP/LINEAR_MB, BHk * nchunks). */
__kernel void clattn_linear_fused_state(__global const CLATTN_STYPE(K_DT) *k, ulong k_off,
                                        ulong4 k_st, __global const CLATTN_STYPE(V_DT) *v,
                                        ulong v_off, ulong4 v_st,
                                        uint heads, uint d, uint dv, int fmap, uint n, uint mp,
                                        uint dvp, uint chunk, uint nchunks, int momentum,
                                        float mu, __global float *ca, __global float *cb)
{
    uint eg = get_global_id(0), mb = get_global_id(1), g = get_global_id(2);
    uint bh = g / nchunks, c = g % nchunks, m0 = mb * LINEAR_MB, dw = dvp + 16;
    uint b = bh / heads, h = bh % heads;
    uint j0 = c * chunk, j1 = min(j0 + chunk, n);
    uint e0 = eg * 16 * LINEAR_EB, nblk = min((uint)LINEAR_EB, (dvp - e0) / 16);
    ulong kb = clattn_at(k_off, k_st, b, h, 0, 0), vb = clattn_at(v_off, v_st, b, h, 0, 0);
    int kfast = k_st.s3 == 1 && m0 + LINEAR_MB <= d;
    int vfast = v_st.s3 == 1 && e0 + 16 * LINEAR_EB <= dv;
    int want_z = eg == 0;
    lin_fvec z = (lin_fvec)(0.0f);
    float16 a[LINEAR_MB][LINEAR_EB], bm[LINEAR_MB][LINEAR_EB];
    #pragma unroll
    for (int t = 0; t < LINEAR_MB; t++)
        #pragma unroll
        for (int u = 0; u < LINEAR_EB; u++) {
            a[t][u] = CLATTN_SPLAT16(0.0f);
            bm[t][u] = a[t][u];
        }
    float fr[LINEAR_MB];
    if (!momentum && vfast && nblk == LINEAR_EB) { /* the common case */
        for (uint j = j0; j < j1; j++) {
            lin_fvec f = clattn_linear_phi_mb(k, kb + j * k_st.s2, k_st.s3, m0, d, fmap, kfast);
            z += f;
            LIN_VSTORE_MB(f, 0, fr);
            ulong vr = vb + j * v_st.s2 + e0;
            float16 vv[LINEAR_EB];
            #pragma unroll
            for (int u = 0; u < LINEAR_EB; u++)
                vv[u] = lin_ld16_v(v, vr + 16 * u);
            #pragma unroll
            for (int t = 0; t < LINEAR_MB; t++) {
                float16 ft = CLATTN_SPLAT16(fr[t]);
                #pragma unroll
                for (int u = 0; u < LINEAR_EB; u++)
                    a[t][u] = fma(ft, vv[u], a[t][u]);
            }
        }
    } else {
        float16 m16 = CLATTN_SPLAT16(mu);
        for (uint j = j0; j < j1; j++) {
            lin_fvec f = clattn_linear_phi_mb(k, kb + j * k_st.s2, k_st.s3, m0, d, fmap, kfast);
            z += f;
            LIN_VSTORE_MB(f, 0, fr);
            ulong vrow = vb + j * v_st.s2;
            float16 vv[LINEAR_EB];
            #pragma unroll
            for (int u = 0; u < LINEAR_EB; u++)
                vv[u] = (uint)u < nblk ? clattn_linear_row16(v, vrow, v_st.s3, e0 + 16 * u, dv,
                                                             vfast)
                                       : CLATTN_SPLAT16(0.0f);
            #pragma unroll
            for (int t = 0; t < LINEAR_MB; t++) {
                float16 ft = CLATTN_SPLAT16(fr[t]);
                #pragma unroll
                for (int u = 0; u < LINEAR_EB; u++) {
                    a[t][u] = fma(ft, vv[u], a[t][u]);
                    if (momentum)
                        bm[t][u] = fma(m16, bm[t][u], ft * vv[u]);
                }
            }
        }
    }
    #pragma unroll
    for (int t = 0; t < LINEAR_MB; t++)
        #pragma unroll
        for (int u = 0; u < LINEAR_EB; u++) {
            if ((uint)u >= nblk)
                break;
            ulong at = ((ulong)g * mp + m0 + t) * dw + e0 + u * 16;
            vstore16(a[t][u], 0, ca + at);
            if (momentum)
                vstore16(bm[t][u], 0, cb + at);
        }
    if (want_z) {
        LIN_VSTORE_MB(z, 0, fr);
        #pragma unroll
        for (int t = 0; t < LINEAR_MB; t++) {
            ulong at = ((ulong)g * mp + m0 + t) * dw + dvp;
            vstore16(CLATTN_SPLAT16(0.0f), 0, ca + at);
            ca[at] = fr[t];
            if (momentum)
                vstore16(CLATTN_SPLAT16(0.0f), 0, cb + at);
        }
    }
}

/* 16 features m0.. of query row (b, h, i): phi(q_t) for t < d, 0 for the padding (into dst). */
__attribute__((always_inline)) inline void clattn_linear_phi16(float *dst, __global const CLATTN_STYPE(Q_DT) *x, ulong base, ulong sw,
                                uint m0, uint d, int fmap)
{
    float16 q;
    if (sw == 1 && m0 + 16 <= d) {
        q = lin_ld16_q(x, base + m0);
        vstore16(LIN_PHI(q, fmap, float16, clattn_exp2_neg16), 0, dst);
        return;
    }
    #pragma unroll
    for (uint u = 0; u < 16; u++)
        dst[u] = m0 + u < d ? CLATTN_LOAD(Q_DT, x, base + (m0 + u) * sw) : 0.0f;
    q = vload16(0, dst);
    vstore16(LIN_PHI(q, fmap, float16, clattn_exp2_neg16), 0, dst);
    #pragma unroll
    for (uint u = 0; u < 16; u++)
        if (m0 + u >= d)
            dst[u] = 0.0f;
}

/* Output rows of the non-causal form from the total state (sa, sb: [BHk][MP][DW], scale ps[bk]),
 * phi(q) computed in registers from the view q [B, H, Nq, D], 16 features at a time:
 *   out_i = coef phi(q_i) (A - mu B) / (phi(q_i) z + eps exp(-r)).
 * Work-item: LINEAR_RB query rows times LINEAR_EB float16 value blocks, as clattn_linear_out.
 * Global size (ceil(DVP/(16 LINEAR_EB)), ceil(Nq/LINEAR_RB), BH). */
__kernel void clattn_linear_fused_out(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off,
                                      ulong4 q_st, uint d, int fmap,
                                      __global CLATTN_STYPE(O_DT) *out, ulong o_off,
                                      ulong4 o_st, uint heads, uint nq, uint mp, uint dv,
                                      uint dvp, __global const float *sa,
                                      __global const float *sb, __global const float *ps,
                                      int momentum, float mu, float coef, float log_eps,
                                      uint group)
{
    uint eg = get_global_id(0), rb = get_global_id(1), bh = get_global_id(2), bk = bh / group;
    uint b = bh / heads, h = bh % heads, dw = dvp + 16;
    uint e0 = eg * 16 * LINEAR_EB, nblk = min((uint)LINEAR_EB, (dvp - e0) / 16);
    uint i0 = rb * LINEAR_RB, nr = min((uint)LINEAR_RB, nq - i0);
    ulong st = (ulong)bk * mp * dw;
    __global const float *A = sa + st + e0, *B = sb + st + e0, *Z = sa + st + dvp;
    float16 qa[LINEAR_RB][LINEAR_EB], qb[LINEAR_RB][LINEAR_EB], qz[LINEAR_RB];
    float qf[LINEAR_RB][16], zs[16];
    ulong qbase[LINEAR_RB];
    #pragma unroll
    for (int r = 0; r < LINEAR_RB; r++) {
        #pragma unroll
        for (int u = 0; u < LINEAR_EB; u++) {
            qa[r][u] = CLATTN_SPLAT16(0.0f);
            qb[r][u] = qa[r][u];
        }
        qz[r] = CLATTN_SPLAT16(0.0f);
        /* rows past the end repeat the last */
        qbase[r] = clattn_at(q_off, q_st, b, h, i0 + min((uint)r, nr - 1), 0);
    }
    int plain = !momentum && nblk == LINEAR_EB;
    for (uint m0 = 0; m0 < mp; m0 += 16) {
        /* z of these 16 features as one vector: phi(q) . z by vector FMAs, summed at the end */
        #pragma unroll
        for (int t = 0; t < 16; t++)
            zs[t] = Z[(ulong)(m0 + t) * dw];
        float16 zv = vload16(0, zs);
        #pragma unroll
        for (int r = 0; r < LINEAR_RB; r++) {
            clattn_linear_phi16(qf[r], q, qbase[r], q_st.s3, m0, d, fmap);
            qz[r] = fma(vload16(0, qf[r]), zv, qz[r]);
        }
        if (plain) { /* the common case, without guards in the hot loop */
            #pragma unroll
            for (uint t = 0; t < 16; t++) {
                __global const float *ar = A + (ulong)(m0 + t) * dw;
                float16 av[LINEAR_EB];
                #pragma unroll
                for (int u = 0; u < LINEAR_EB; u++)
                    av[u] = vload16(u, ar);
                #pragma unroll
                for (int r = 0; r < LINEAR_RB; r++) {
                    float16 fv = CLATTN_SPLAT16(qf[r][t]);
                    #pragma unroll
                    for (int u = 0; u < LINEAR_EB; u++)
                        qa[r][u] = fma(fv, av[u], qa[r][u]);
                }
            }
        } else {
            #pragma unroll
            for (uint t = 0; t < 16; t++) {
                ulong m = m0 + t;
                float16 av[LINEAR_EB], bv[LINEAR_EB];
                #pragma unroll
                for (int u = 0; u < LINEAR_EB; u++) {
                    av[u] = (uint)u < nblk ? vload16(u, A + m * dw) : CLATTN_SPLAT16(0.0f);
                    bv[u] = momentum && (uint)u < nblk ? vload16(u, B + m * dw)
                                                       : CLATTN_SPLAT16(0.0f);
                }
                #pragma unroll
                for (int r = 0; r < LINEAR_RB; r++) {
                    float16 fv = CLATTN_SPLAT16(qf[r][t]);
                    #pragma unroll
                    for (int u = 0; u < LINEAR_EB; u++) {
                        qa[r][u] = fma(fv, av[u], qa[r][u]);
                        qb[r][u] = fma(fv, bv[u], qb[r][u]);
                    }
                }
            }
        }
    }
    float r0 = ps[bk], eps = clattn_eps_scaled(log_eps, r0);
    float16 c16 = CLATTN_SPLAT16(coef), mub = CLATTN_SPLAT16(momentum ? mu : 0.0f);
    #pragma unroll
    for (int r = 0; r < LINEAR_RB; r++) {
        if ((uint)r >= nr)
            break;
        float inv = clattn_safe_inv(clattn_hsum16(qz[r]) + eps);
        #pragma unroll
        for (int u = 0; u < LINEAR_EB; u++) {
            if ((uint)u >= nblk)
                break;
            float16 o = c16 * (qa[r][u] - mub * qb[r][u]) * CLATTN_SPLAT16(inv);
            clattn_linear_store16(o, dv - (e0 + u * 16), out, o_off, o_st, b, h, i0 + r,
                                  e0 + u * 16);
        }
    }
}

/* ---- clattn_linear_out_tiled: the non-causal output rows for GPU-like devices (issue 12) ----
 * Built only with -DLINEAR_OT_TX=... (lib/sched/sched_linear.c picks it on GPU-like devices; the
 * CPU program above is unchanged). The same formula as clattn_linear_fused_out (and the
 * non-causal rows of linear.cl's clattn_linear_out):
 *   out_i = phi(q_i) . C / (phi(q_i) . z + eps_i),  C = coef (A - mu B) (C = A without momentum)
 * in the discipline of softmax_gpu.cl:
 *  - a work-group of OT_TX x OT_TY work-items owns BR = TY * RM query rows and BN = TX * RN value
 *    columns of one (b, query head); the features go 16 at a time: phi(Q) of the BR rows
 *    transposed into __local Qs[16][BR + 1] (phi computed once per element from the caller's q
 *    view, or read from the materialised features fq), the state rows of C (momentum folded in
 *    while staging: one set of accumulators) into Cs[16][BN], z's 16 entries into Zs;
 *  - work-item (tx, ty) accumulates rows ty * RM + i and columns tx + TX * j in an RM x RN
 *    register micro-tile (per feature RM + RN local loads feed RM RN FMAs); the first BR
 *    work-items each also accumulate one row's normaliser phi(q_i) . z (once per row);
 *  - the epilogue shares 1 / (den_i + eps_i) through __local and stores the tile (O_DT).
 * Micro-tiles are arrays indexed only by fully unrolled loops over compile-time sizes.
 * Global (ceil(Nq / BR) * WG, ceil(Dv / BN), BH), local (WG, 1, 1). */
#ifdef LINEAR_OT_TX
#define LOT_TX LINEAR_OT_TX
#define LOT_TY LINEAR_OT_TY
#define LOT_RM LINEAR_OT_RM
#define LOT_RN LINEAR_OT_RN
#define LOT_KC 16 /* features per stage (the feature padding) */
#define LOT_WG (LOT_TX * LOT_TY)
#define LOT_BR (LOT_TY * LOT_RM)
#define LOT_BN (LOT_TX * LOT_RN)
#define LOT_QS (LOT_BR + 1) /* Qs row pitch: the transposing stores spread over the banks */

__kernel __attribute__((reqd_work_group_size(LOT_WG, 1, 1))) void
clattn_linear_out_tiled(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 q_st, uint d,
                        int fmap, __global const float *fq, int from_features,
                        __global const float *lq, __global CLATTN_STYPE(O_DT) *out, ulong o_off,
                        ulong4 o_st, uint heads, uint nq, uint mp, uint dv, uint dvp,
                        __global const float *sa, __global const float *sb,
                        __global const float *ps, int momentum, float mu, float coef,
                        float log_eps, uint group)
{
    __local float Qs[LOT_KC * LOT_QS];
    __local float Cs[LOT_KC * LOT_BN];
    __local float Zs[LOT_KC];
    __local float Dinv[LOT_BR];
    /* Every argument read before the first branch (rusticl, DESIGN.md). */
    __global const CLATTN_STYPE(Q_DT) *qq = q;
    __global const float *fqq = fq, *lqq = lq, *saa = sa, *sbb = sb, *pss = ps;
    __global CLATTN_STYPE(O_DT) *oo = out;
    const ulong qo = q_off, oof = o_off;
    const ulong4 qst = q_st, ost = o_st;
    const uint dn = d, hn = heads, nqn = nq, mpn = mp, dvn = dv, dvpn = dvp, grp = group;
    const int fm = fmap, fromf = from_features, mom = momentum;
    const float mun = mu, cf = coef, leps = log_eps;

    uint lid = get_local_id(0);
    uint ty = lid / LOT_TX, tx = lid - ty * LOT_TX;
    uint i0 = get_group_id(0) * LOT_BR, n0 = get_group_id(1) * LOT_BN, bh = get_global_id(2);
    uint bk = bh / grp, b = bh / hn, h = bh - b * hn, dw = dvpn + 16;
    ulong st = (ulong)bk * mpn * dw;
    __global const float *A = saa + st, *B = sbb + st;
    __global const float *F = fqq + (ulong)bh * nqn * mpn;
    /* C = coef (A - mu B): without momentum coef is 1 and B is not read. */
    const float ca = mom ? cf : 1.0f, cb = mom ? cf * mun : 0.0f;

    float acc[LOT_RM][LOT_RN];
    #pragma unroll
    for (uint i = 0; i < LOT_RM; i++)
        #pragma unroll
        for (uint j = 0; j < LOT_RN; j++)
            acc[i][j] = 0.0f;
    float zacc = 0.0f; /* work-item lid < BR: row lid's phi(q) . z */

    for (uint m0 = 0; m0 < mpn; m0 += LOT_KC) {
        barrier(CLK_LOCAL_MEM_FENCE);
        /* phi(Q): consecutive work-items take consecutive features of a row (coalesced). */
        if (fromf) {
            for (uint e = lid; e < LOT_BR * LOT_KC; e += LOT_WG) {
                uint r = e / LOT_KC, kk = e - r * LOT_KC, i = i0 + r;
                float x = F[(ulong)min(i, nqn - 1u) * mpn + m0 + kk];
                Qs[kk * LOT_QS + r] = i < nqn ? x : 0.0f;
            }
        } else {
            for (uint e = lid; e < LOT_BR * LOT_KC; e += LOT_WG) {
                uint r = e / LOT_KC, kk = e - r * LOT_KC, i = i0 + r, m = m0 + kk;
                float x = CLATTN_LOAD(Q_DT, qq,
                                      clattn_at(qo, qst, b, h, min(i, nqn - 1u), min(m, dn - 1u)));
                x = LIN_PHI(x, fm, float, clattn_exp2_neg);
                Qs[kk * LOT_QS + r] = i < nqn && m < dn ? x : 0.0f;
            }
        }
        /* C's 16 state rows, columns n0..: consecutive work-items, consecutive columns. */
        if (mom) {
            for (uint e = lid; e < LOT_BN * LOT_KC; e += LOT_WG) {
                uint kk = e / LOT_BN, c = e - kk * LOT_BN, col = n0 + c;
                ulong at = (ulong)(m0 + kk) * dw + min(col, dvn - 1u);
                float x = ca * A[at] - cb * B[at];
                Cs[e] = col < dvn ? x : 0.0f;
            }
        } else {
            for (uint e = lid; e < LOT_BN * LOT_KC; e += LOT_WG) {
                uint kk = e / LOT_BN, c = e - kk * LOT_BN, col = n0 + c;
                float x = A[(ulong)(m0 + kk) * dw + min(col, dvn - 1u)];
                Cs[e] = col < dvn ? x : 0.0f;
            }
        }
        if (lid < LOT_KC)
            Zs[lid] = A[(ulong)(m0 + lid) * dw + dvpn];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < LOT_BR) {
            #pragma unroll
            for (uint kk = 0; kk < LOT_KC; kk++)
                zacc = fma(Qs[kk * LOT_QS + lid], Zs[kk], zacc);
        }
        __local const float *qp = Qs + ty * LOT_RM;
        __local const float *cp = Cs + tx;
        #pragma unroll
        for (uint kk = 0; kk < LOT_KC; kk++) {
            float qr[LOT_RM], cr[LOT_RN];
            #pragma unroll
            for (uint i = 0; i < LOT_RM; i++)
                qr[i] = qp[kk * LOT_QS + i];
            #pragma unroll
            for (uint j = 0; j < LOT_RN; j++)
                cr[j] = cp[kk * LOT_BN + j * LOT_TX];
            #pragma unroll
            for (uint i = 0; i < LOT_RM; i++)
                #pragma unroll
                for (uint j = 0; j < LOT_RN; j++)
                    acc[i][j] = fma(qr[i], cr[j], acc[i][j]);
        }
    }

    /* 1 / (den_i + eps_i) once per row: eps_i = eps exp(-(lq_i + r)), lq 0 for phi computed
     * here (element-wise maps), the features' log-scale otherwise (FAVOR). */
    float r0 = pss[bk];
    if (lid < LOT_BR) {
        uint i = min(i0 + lid, nqn - 1u);
        float li = fromf ? lqq[(ulong)bh * nqn + i] : 0.0f;
        Dinv[lid] = clattn_safe_inv(zacc + clattn_eps_scaled(leps, li + r0));
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    #pragma unroll
    for (uint i = 0; i < LOT_RM; i++) {
        uint r = ty * LOT_RM + i, row = i0 + r;
        float inv = Dinv[r];
        #pragma unroll
        for (uint j = 0; j < LOT_RN; j++) {
            uint col = n0 + tx + j * LOT_TX;
            if (row < nqn && col < dvn)
                CLATTN_STORE(O_DT, acc[i][j] * inv, oo, clattn_at(oof, ost, b, h, row, col));
        }
    }
}
#endif /* LINEAR_OT_TX */
