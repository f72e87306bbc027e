/* The fused causal form of linear attention for the element-wise maps (elu, relu, identity) on
 * CPU-like devices, a program of its own (issue 11 section 2).
 * The materialised pipeline of kernels_cl/linear.cl writes the features of Q and K, a padded copy
 * of V, chunk weights, chunk states, transposed key features and in-chunk weights, then reads
 * them back: many passes over memory per row. Here one work-item owns one (batch, key head,
 * block of 16 LINC_EB value columns), keeps the running state S (MP x 16 LINC_EB) and z (MP) in
 * private memory (a CPU core's L1) and walks the sequence in chunks of 16 rows, in order:
 *   - phi(K_c) by rows (kf[j]; causal: also transposed, 16 keys per float16, kt[m]) and V_c read
 *     once from the caller's views, phi computed in registers (any dtype, any strides);
 *   - for each query head of the key head (GQA), phi(Q_c) likewise, then for blocks of 4 rows:
 *       w_i   = phi(q_i) . phi(K_c)^T masked to j <= i (one float16 over the chunk's keys),
 *       num_i = phi(q_i)^T S + sum_j w_ij v_j,  den_i = phi(q_i) . z + sum_j w_ij + eps,
 *       out_i = num_i / den_i (0 where den_i is exactly 0, as clattn_safe_inv);
 *   - then S += phi(K_c)^T V_c and z += sum_j phi(k_j).
 * One pass over Q, K, V and out; nothing but the output is written. The element-wise maps have
 * log-scale 0, so eps is added as it is (clattn_eps_scaled(log_eps, 0)). The non-causal form
 * (causal_arg 0; Nq may differ from Nk) runs the key steps over all Nk keys first, then the
 * query steps over the Nq rows without the in-chunk part. Global size
 * (ceil(DVP / (16 LINC_EB)), B * Hk); one item per work-group. */

/* Tunables (host: lib/ops/linear.c from the scheduler's clattn__linear_causal_fused). */
#ifndef LINC_EB
#define LINC_EB 4 /* float16 value blocks per work-item: 1, 2 or 4 */
#endif
#ifndef LINC_MPMAX
#define LINC_MPMAX 256 /* private arrays' feature capacity: >= MP (M rounded up to 16) */
#endif
#define LINC_C 16 /* rows per chunk: one float16 of keys */
#define LINC_RB 4 /* query rows per register block */

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

/* phi of 16 inputs (numbered as clattn_linear_feature_map): 0 elu + 1, 1 relu, 2 identity;
 * branch-free selects. elu's exp(min(x, 0)) is common.clh's clattn_exp2_neg16 of x log2(e)
 * (relative error 7.5e-8, 0 below -88): about a dozen vector instructions where PoCL's exp took
 * several dozen; at N 64k D 64 (same-run A/B, quiet machine) the non-causal form ran 8-17%
 * faster with it. Tried and measured slower on PoCL before (back to back, under load): one branch
 * per map. */
inline float16 linc_phi16(float16 x, int fmap)
{
    float16 neg = x < 0.0f ? x : (float16)(0.0f);
    float16 e = select(x + 1.0f, clattn_exp2_neg16(neg * (float16)(CLATTN_LOG2E)),
                       isless(x, 0.0f));
    float16 r = fmax(x, 0.0f);
    return fmap == 0 ? e : fmap == 1 ? r : x;
}

/* 16 consecutive elements e0.. of a row of a caller's tensor (role R, dtype DT) at element base
 * with element stride sw, 0 past `lim`; fast: contiguous and e0 + 16 <= lim. */
#define LINC_DEF_ROW(R, DT)                                                                      \
    inline float16 linc_row16_##R(__global const CLATTN_STYPE(DT) *p, ulong base, ulong sw,      \
                                  uint e0, uint lim, int fast)                                   \
    {                                                                                            \
        if (fast && (DT == 0 || (base + e0) % 16 == 0))                                          \
            return CLATTN_VLOAD(DT, 16, 0, p + base + e0);                                       \
        float t[16];                                                                             \
        for (uint u = 0; u < 16; u++)                                                            \
            t[u] = e0 + u < lim ? CLATTN_LOAD(DT, p, base + (e0 + u) * sw) : 0.0f;               \
        return vload16(0, t);                                                                    \
    }
LINC_DEF_ROW(q, Q_DT)
LINC_DEF_ROW(k, K_DT)
LINC_DEF_ROW(v, V_DT)

/* 16 features m0.. of a row: phi(x_t) for t < d, 0 for the padding. */
inline float16 linc_pad16(float16 f, uint m0, uint d)
{
    int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return select((float16)(0.0f), f, lane < (int16)((int)d - (int)m0));
}

__kernel void clattn_linear_causal(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off,
                                   ulong4 q_st, __global const CLATTN_STYPE(K_DT) *k,
                                   ulong k_off, ulong4 k_st,
                                   __global const CLATTN_STYPE(V_DT) *v, ulong v_off,
                                   ulong4 v_st, __global CLATTN_STYPE(O_DT) *out, ulong o_off,
                                   ulong4 o_st, uint hk_arg, uint group_arg, uint n_arg,
                                   uint d_arg, uint dv_arg, uint mp_arg, int fmap_arg,
                                   float log_eps_arg, uint nq_arg, int causal_arg)
{
    /* every argument into a private first (see the project's notes on llvmpipe) */
    const uint hk = hk_arg, group = group_arg, n = n_arg, d = d_arg, dv = dv_arg, mp = mp_arg;
    const int fmap = fmap_arg;
    const uint nq = nq_arg;
    const int causal = causal_arg;
    const float eps = clattn_eps_scaled(log_eps_arg, 0.0f);
    const ulong4 qs = q_st, ks = k_st, vs = v_st, os = o_st;
    const ulong qo = q_off, ko = k_off, vo = v_off, oo = o_off;
    const uint eg = get_global_id(0), g = get_global_id(1);
    const uint b = g / hk, hv = g % hk, e0 = eg * 16u * LINC_EB, nmb = mp / 16u;
    const ulong kb = clattn_at(ko, ks, b, hv, 0, 0), vb = clattn_at(vo, vs, b, hv, 0, 0);
    const int kfast = ks.s3 == 1, vfast = vs.s3 == 1, qfast = qs.s3 == 1;
    const int o32 = O_DT == 0; /* float32 out: whole rows by vstore16 */
    const int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    float16 S[LINC_MPMAX][LINC_EB]; /* running state, value columns e0.. */
    float16 zv[LINC_MPMAX / 16];    /* running z, 16 features per vector */
    float16 zc[LINC_MPMAX / 16];    /* this chunk's key feature sums */
    float kf[LINC_C][LINC_MPMAX];   /* phi(K_c) by rows, kf[j][m] (one vector store per 16) */
    float kt[LINC_MPMAX * LINC_C];  /* causal: kf transposed, kt[m * 16 + j] */
    float qf[LINC_C][LINC_MPMAX];   /* phi(Q_c) */
    float16 vv[LINC_C][LINC_EB];    /* V_c, value columns e0.. */
    float wt[LINC_RB][LINC_C];      /* a row block's masked in-chunk weights */

    for (uint m = 0; m < mp; m++)
        for (int u = 0; u < LINC_EB; u++)
            S[m][u] = (float16)(0.0f);
    for (uint mb = 0; mb < nmb; mb++)
        zv[mb] = (float16)(0.0f);

    /* causal: one pass, each chunk's queries right after its keys; non-causal: the keys first
     * (pass 0: the state only), then the queries against the whole state (pass 1, no in-chunk
     * part: its loop skips phi(q) phi(K_c)^T, so every in-chunk weight stays 0) */
    for (uint pass = causal ? 1u : 0u; pass < 2u; pass++) {
        const int keys = causal || pass == 0, queries = causal || pass == 1;
        const uint len = keys ? n : nq;
        for (uint j0 = 0; j0 < len; j0 += LINC_C) {
            const uint nr = min((uint)LINC_C, len - j0);
            if (keys) {
                /* keys and values of the chunk (rows past the end: zero features and values) */
                for (uint mb = 0; mb < nmb; mb++)
                    zc[mb] = (float16)(0.0f);
                for (uint t = 0; t < LINC_C; t++) {
                    const int in = t < nr;
                    const ulong kr = kb + (ulong)(j0 + min(t, nr - 1)) * ks.s2;
                    for (uint mb = 0; mb < nmb; mb++) {
                        float16 f = linc_pad16(
                            linc_phi16(linc_row16_k(k, kr, ks.s3, mb * 16, d,
                                                    kfast && mb * 16 + 16 <= d),
                                       fmap),
                            mb * 16, in ? d : 0);
                        zc[mb] += f;
                        vstore16(f, 0, &kf[t][mb * 16]);
                    }
                    const ulong vr = vb + (ulong)(j0 + min(t, nr - 1)) * vs.s2;
                    for (uint u = 0; u < LINC_EB; u++) {
                        uint c0 = e0 + 16 * u;
                        vv[t][u] = in ? linc_row16_v(v, vr, vs.s3, c0, dv, vfast && c0 + 16 <= dv)
                                      : (float16)(0.0f);
                    }
                }
            }
            if (keys && causal) {
                /* kt = kf transposed (the in-chunk weights take 16 keys per vector), 16 x 16
                 * blocks in registers: four shuffle2 stages swap the off-diagonal blocks of 8, 4,
                 * 2 and 1 lanes. Scalar stores into kt (16 per vector of features) ran 11-15%
                 * slower over the whole causal kernel (N 64k D 64, same-run A/B, chrt). */
                const uint16 lo8 = (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
                const uint16 hi8 = (uint16)(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
                const uint16 lo4 = (uint16)(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
                const uint16 hi4 = (uint16)(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
                const uint16 lo2 = (uint16)(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
                const uint16 hi2 = (uint16)(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
                const uint16 lo1 = (uint16)(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
                const uint16 hi1 = (uint16)(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
                for (uint mb = 0; mb < nmb; mb++) {
                    float16 r[16];
                    #pragma unroll
                    for (uint t = 0; t < 16; t++)
                        r[t] = vload16(0, &kf[t][mb * 16]);
#define LINC_STAGE(B, LO, HI)                                                                      \
    _Pragma("unroll") for (uint i = 0; i < 16; i++) if ((i & (B)) == 0) {                          \
        float16 a = r[i], c = r[i + (B)];                                                          \
        r[i] = shuffle2(a, c, LO);                                                                 \
        r[i + (B)] = shuffle2(a, c, HI);                                                           \
    }
                    LINC_STAGE(8, lo8, hi8)
                    LINC_STAGE(4, lo4, hi4)
                    LINC_STAGE(2, lo2, hi2)
                    LINC_STAGE(1, lo1, hi1)
#undef LINC_STAGE
                    #pragma unroll
                    for (uint u = 0; u < 16; u++)
                        vstore16(r[u], mb * 16 + u, kt);
                }
            }
            if (queries) {
                for (uint gq = 0; gq < group; gq++) {
                    const uint h = hv * group + gq;
                    const ulong qb = clattn_at(qo, qs, b, h, 0, 0);
                    for (uint t = 0; t < LINC_C; t++) {
                        const ulong qr = qb + (ulong)(j0 + min(t, nr - 1)) * qs.s2;
                        for (uint mb = 0; mb < nmb; mb++) {
                            float16 f = linc_pad16(
                                linc_phi16(
                                    linc_row16_q(q, qr, qs.s3, mb * 16, d,
                                                 qfast && mb * 16 + 16 <= d),
                                    fmap),
                                mb * 16, d);
                            vstore16(f, 0, &qf[t][mb * 16]);
                        }
                    }
                    for (uint r0 = 0; r0 < nr; r0 += LINC_RB) {
                        float16 acc[LINC_RB][LINC_EB], w[LINC_RB], qz[LINC_RB];
                        #pragma unroll
                        for (int r = 0; r < LINC_RB; r++) {
                            w[r] = (float16)(0.0f);
                            qz[r] = (float16)(0.0f);
                            #pragma unroll
                            for (int u = 0; u < LINC_EB; u++)
                                acc[r][u] = (float16)(0.0f);
                        }
                        /* phi(q) S (inter-chunk) and phi(q) phi(K_c)^T, one feature at a time */
                        for (uint m = 0; m < (causal ? mp : 0u); m++) {
                            float16 kv = vload16(m, kt);
                            float16 sv[LINC_EB];
                            #pragma unroll
                            for (int u = 0; u < LINC_EB; u++)
                                sv[u] = S[m][u];
                            #pragma unroll
                            for (int r = 0; r < LINC_RB; r++) {
                                float16 qv = (float16)(qf[r0 + r][m]);
                                w[r] = fma(qv, kv, w[r]);
                                #pragma unroll
                                for (int u = 0; u < LINC_EB; u++)
                                    acc[r][u] = fma(qv, sv[u], acc[r][u]);
                            }
                        }
                        /* non-causal: phi(q) S only (w stays 0) */
                        for (uint m = 0; m < (causal ? 0u : mp); m++) {
                            float16 sv[LINC_EB];
                            #pragma unroll
                            for (int u = 0; u < LINC_EB; u++)
                                sv[u] = S[m][u];
                            #pragma unroll
                            for (int r = 0; r < LINC_RB; r++) {
                                float16 qv = (float16)(qf[r0 + r][m]);
                                #pragma unroll
                                for (int u = 0; u < LINC_EB; u++)
                                    acc[r][u] = fma(qv, sv[u], acc[r][u]);
                            }
                        }
                        for (uint mb = 0; mb < nmb; mb++) {
                            #pragma unroll
                            for (int r = 0; r < LINC_RB; r++)
                                qz[r] = fma(vload16(mb, qf[r0 + r]), zv[mb], qz[r]);
                        }
                        float den[LINC_RB];
                        #pragma unroll
                        for (int r = 0; r < LINC_RB; r++) {
                            /* keys j <= i = r0 + r only */
                            w[r] = select((float16)(0.0f), w[r], lane <= (int16)(int)(r0 + r));
                            den[r] = clattn_hsum16(qz[r]) + clattn_hsum16(w[r]) + eps;
                            vstore16(w[r], 0, wt[r]);
                        }
                        const uint jend = causal ? min(r0 + LINC_RB, nr) : 0u;
                        for (uint j = 0; j < jend; j++) {
                            #pragma unroll
                            for (int r = 0; r < LINC_RB; r++) {
                                float16 a = (float16)(wt[r][j]);
                                #pragma unroll
                                for (int u = 0; u < LINC_EB; u++)
                                    acc[r][u] = fma(a, vv[j][u], acc[r][u]);
                            }
                        }
                        #pragma unroll
                        for (int r = 0; r < LINC_RB; r++) {
                            if (r0 + (uint)r >= nr)
                                break;
                            float16 inv = (float16)(clattn_safe_inv(den[r]));
                            #pragma unroll
                            for (int u = 0; u < LINC_EB; u++) {
                                uint c0 = e0 + 16 * (uint)u;
                                if (c0 >= dv)
                                    break;
                                float16 o = acc[r][u] * inv;
                                if (o32 && os.s3 == 1 && c0 + 16 <= dv) {
                                    vstore16(o, 0,
                                             (__global float *)out +
                                                 clattn_at(oo, os, b, h, j0 + r0 + (uint)r, c0));
                                } else {
                                    float ot[16];
                                    vstore16(o, 0, ot);
                                    for (uint x = 0; x < 16 && c0 + x < dv; x++)
                                        CLATTN_STORE(O_DT, ot[x], out,
                                                     clattn_at(oo, os, b, h, j0 + r0 + (uint)r,
                                                               c0 + x));
                                }
                            }
                        }
                    }
                }
            }
            if (keys) {
                /* S += phi(K_c)^T V_c, z += sum_j phi(k_j): 4 feature rows at a time */
                for (uint m = 0; m < mp; m += 4) {
                    float16 sa[4][LINC_EB];
                    #pragma unroll
                    for (int t = 0; t < 4; t++)
                        #pragma unroll
                        for (int u = 0; u < LINC_EB; u++)
                            sa[t][u] = S[m + t][u];
                    for (uint j = 0; j < nr; j++) {
                        #pragma unroll
                        for (int t = 0; t < 4; t++) {
                            float16 kv = (float16)(kf[j][m + t]);
                            #pragma unroll
                            for (int u = 0; u < LINC_EB; u++)
                                sa[t][u] = fma(kv, vv[j][u], sa[t][u]);
                        }
                    }
                    #pragma unroll
                    for (int t = 0; t < 4; t++)
                        #pragma unroll
                        for (int u = 0; u < LINC_EB; u++)
                            S[m + t][u] = sa[t][u];
                }
                for (uint mb = 0; mb < nmb; mb++)
                    zv[mb] += zc[mb];
            }
        }
    }
}
