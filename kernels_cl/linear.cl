/* Linear (kernelized) attention over materialised features.
 *
 * Every form runs on the same buffers (all contiguous, made by the host side):
 *   F   features [BH][N][MP] (kernels_cl/blocks_features.cl; MP = M rounded up to 16, the
 *       padding features 0), for queries and for keys;
 *   L   key log-scales [BH][N]: phi(k_j) = F_j * exp(L_j) (0 except for FAVOR, whose rows are
 *       divided by their largest feature);
 *   VP  values [BH][N][DVP], DVP = Dv rounded up to 16, zero padded;
 *   states [.][MP][DW], DW = DVP + 16: columns 0..Dv-1 hold S (or a part of it), column DVP holds
 *       z, the rest is 0. A state is stored relative to a log-scale r (true sums = stored *
 *       exp(r)); r grows as keys with larger L arrive and the sums are rescaled, as online softmax
 *       does, so nothing depends on later keys and nothing overflows.
 * Fixed momentum keeps two sums per state: A = sum_j x_j and the mu-decayed B = sum_j mu^(i-j)
 * x_j (x_j = phi(k_j) v_j^T); S_i = eta / (1 - mu) (A_i - mu B_i) is the unrolled recurrence
 * P_i = mu P_{i-1} - eta x_i, S_i = S_{i-1} - P_i. Without momentum mu = 0, eta = 1: S = A.
 *
 * Causal form, chunk-parallel: clattn_linear_chunk_state sums each chunk of keys,
 * clattn_linear_scan turns the chunk sums into exclusive prefix states (continuing an initial
 * state), clattn_linear_out adds for each query row the masked part of its own chunk. The
 * non-causal form is the same with one scan total (for the element-wise feature maps the fused
 * kernels of kernels_cl/linear_fused.cl replace the feature, pack and chunk-state passes).
 * Work-items are register-blocked for CPUs (float16 rows of the state, LINEAR_MB feature rows or
 * LINEAR_RB query rows each), with no __local memory and no barriers. */

/* Tunables, set by the host scheduler (lib/sched/sched_linear.c) as -D options. */
#ifndef LINEAR_CHUNK
#define LINEAR_CHUNK 64 /* keys per causal chunk; a multiple of 16 */
#endif
#ifndef LINEAR_MB
#define LINEAR_MB 4 /* feature rows per chunk-state work-item; divides the feature padding 16 */
#endif
#ifndef LINEAR_RB
#define LINEAR_RB 8 /* query rows per output work-item; divides LINEAR_CHUNK */
#endif
#ifndef LINEAR_EB
#define LINEAR_EB 2 /* float16 value blocks per output and chunk-state work-item */
#endif

/* Element types of the caller's tensors (clattn_dtype, -DQ_DT=... from the plan; absent:
 * float32): q, k and v are read and out written only through common.clh's CLATTN_LOAD / STORE /
 * VLOAD macros; features, states and scratch are float32. */
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

/* row[e0 + k] = v[k] of out (O_DT) for the first min(count, 16) lanes. */
inline void clattn_linear_store16(float16 v, uint count, __global CLATTN_STYPE(O_DT) *x,
                                  ulong off, ulong4 st, ulong i0, ulong i1, ulong i2, ulong e0)
{
    float t[16];
    vstore16(v, 0, t);
    for (uint k = 0; k < 16 && k < count; k++)
        CLATTN_STORE(O_DT, t[k], x, clattn_at(off, st, i0, i1, i2, e0 + k));
}

/* exp(a - b) for log-scales where a may be -inf (an empty state): 0 then. */
inline float clattn_linear_rescale(float a, float b)
{
    return isinf(a) && a < 0.0f ? 0.0f : exp(a - b);
}

/* eps belongs to the formula's scale: out = phi(q) . S / (phi(q) . z + eps). A denominator kept
 * as exp(-(lq + r)) times the formula's (lq the query row's log-scale, r the state's) gets
 * eps * exp(-(lq + r)) = common.clh's clattn_eps_scaled(log_eps, lq + r), from log_eps = log(eps)
 * (-inf for eps 0: no eps); it underflows to 0 where it is negligible and overflows to inf where
 * eps dominates (the output is then 0, its limit). */


/* vp [BH][N][width] = v, zero padded, with 1 in column ones_at (the GEMM form's [V 1], so one
 * product gives S and z; ones_at >= width: none, the fused form's padded copy). One row per
 * work-item. Global size (N, BH). */
__kernel void clattn_linear_pack_v(__global const CLATTN_STYPE(V_DT) *v, ulong v_off,
                                   ulong4 v_st, uint heads, uint dv, uint width, uint ones_at,
                                   __global float *vp)
{
    uint j = get_global_id(0), bh = get_global_id(1), n = get_global_size(0);
    uint b = bh / heads, h = bh % heads;
    __global float *o = vp + ((ulong)bh * n + j) * width;
    for (uint e = 0; e < width; e++)
        o[e] = e < dv ? CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, b, h, j, e)) : 0.0f;
    if (ones_at >= dv && ones_at < width)
        o[ones_at] = 1.0f;
}

/* Per chunk of keys: cm = max L over the chunk, wc_j = exp(L_j - cm). Global size
 * (nchunks, BH). */
__kernel void clattn_linear_chunk_weights(__global const float *l, uint n, uint chunk,
                                          __global float *wc, __global float *cm)
{
    uint c = get_global_id(0), bh = get_global_id(1), nchunks = get_global_size(0);
    ulong base = (ulong)bh * n;
    uint j0 = c * chunk, j1 = min(j0 + chunk, n);
    float mx = -INFINITY;
    for (uint j = j0; j < j1; j++)
        mx = fmax(mx, l[base + j]);
    for (uint j = j0; j < j1; j++)
        wc[base + j] = exp(l[base + j] - mx);
    cm[(ulong)bh * nchunks + c] = mx;
}

/* Chunk sums relative to the chunk's scale: ca[g][m][e] = sum_j wc_j F_jm VP_je and the z column
 * ca[g][m][DVP] = sum_j wc_j F_jm; with momentum also cb[g][m][e] = sum_j mu^(j1-1-j) wc_j F_jm
 * VP_je. g = bh * nchunks + c. Work-item (eg, mb, g): LINEAR_MB feature rows times LINEAR_EB float16
 * blocks of value columns (eg < ceil(DVP / (16 LINEAR_EB))) or the z column (the last eg). Global
 * size (ceil(DVP / (16 LINEAR_EB)) + 1, MP/LINEAR_MB, BH * nchunks). */
__kernel void clattn_linear_chunk_state(__global const float *f, __global const float *vp,
                                        __global const float *wc, uint n, uint mp, uint dvp,
                                        uint chunk, uint nchunks, int momentum, float mu,
                                        __global float *ca, __global float *cb)
{
    uint eg = get_global_id(0), mb = get_global_id(1), g = get_global_id(2);
    uint bh = g / nchunks, c = g % nchunks, m0 = mb * LINEAR_MB, dw = dvp + 16;
    uint j0 = c * chunk, j1 = min(j0 + chunk, n);
    uint e0 = eg * 16 * LINEAR_EB;
    ulong row0 = (ulong)bh * n;
    if (eg == get_global_size(0) - 1) { /* the z column */
        __global float *oz = ca + ((ulong)g * mp + m0) * dw + dvp;
        float z[LINEAR_MB];
        for (int t = 0; t < LINEAR_MB; t++)
            z[t] = 0.0f;
        for (uint j = j0; j < j1; j++) {
            __global const float *fr = f + (row0 + j) * mp + m0;
            float wj = wc[row0 + j];
            for (int t = 0; t < LINEAR_MB; t++)
                z[t] += fr[t] * wj;
        }
        for (int t = 0; t < LINEAR_MB; t++) {
            oz[t * dw] = z[t];
            for (int k = 1; k < 16; k++)
                oz[t * dw + k] = 0.0f;
            if (momentum)
                for (int k = 0; k < 16; k++)
                    cb[((ulong)g * mp + m0 + t) * dw + dvp + k] = 0.0f;
        }
        return;
    }
    uint nblk = min((uint)LINEAR_EB, (dvp - e0) / 16);
    float16 a[LINEAR_MB][LINEAR_EB], bm[LINEAR_MB][LINEAR_EB];
    for (int t = 0; t < LINEAR_MB; t++)
        for (int u = 0; u < LINEAR_EB; u++) {
            a[t][u] = CLATTN_SPLAT16(0.0f);
            bm[t][u] = a[t][u];
        }
    if (!momentum && nblk == LINEAR_EB) {
        for (uint j = j0; j < j1; j++) {
            __global const float *fr = f + (row0 + j) * mp + m0;
            __global const float *vr = vp + (row0 + j) * dvp + e0;
            float wj = wc[row0 + j];
            float16 vv[LINEAR_EB];
            for (int u = 0; u < LINEAR_EB; u++)
                vv[u] = vload16(u, vr);
            for (int t = 0; t < LINEAR_MB; t++) {
                float16 ft = CLATTN_SPLAT16(fr[t] * wj);
                for (int u = 0; u < LINEAR_EB; u++)
                    a[t][u] = fma(ft, vv[u], a[t][u]);
            }
        }
    } else {
        float16 m16 = CLATTN_SPLAT16(mu);
        for (uint j = j0; j < j1; j++) {
            __global const float *fr = f + (row0 + j) * mp + m0;
            __global const float *vr = vp + (row0 + j) * dvp + e0;
            float wj = wc[row0 + j];
            float16 vv[LINEAR_EB];
            for (int u = 0; u < LINEAR_EB; u++)
                vv[u] = (uint)u < nblk ? vload16(u, vr) : CLATTN_SPLAT16(0.0f);
            for (int t = 0; t < LINEAR_MB; t++) {
                float16 ft = CLATTN_SPLAT16(fr[t] * wj);
                for (int u = 0; u < LINEAR_EB; u++) {
                    a[t][u] = fma(ft, vv[u], a[t][u]);
                    bm[t][u] = fma(m16, bm[t][u], ft * vv[u]);
                }
            }
        }
    }
    for (int t = 0; t < LINEAR_MB; t++)
        for (int u = 0; u < LINEAR_EB; u++) {
            if ((uint)u >= nblk)
                break;
            ulong at = ((ulong)g * mp + m0 + t) * dw + e0 + u * 16;
            vstore16(a[t][u], 0, ca + at);
            if (momentum)
                vstore16(bm[t][u], 0, cb + at);
        }
}

/* The scan's per-chunk factors, once per (b, h): with r_c the log-scale of the state before chunk
 * c (r_0 = init_r or -inf), r_{c+1} = max(r_c, cm_c), so_c = exp(r_c - r_{c+1}) rescales the
 * running sums and sn_c = exp(cm_c - r_{c+1}) the chunk's; ps[c] = r_c, fin_r = r_nchunks.
 * fac is [BH][nchunks][2]. Global size (BH). */
__kernel void clattn_linear_scan_scales(__global const float *cm, uint nchunks, int has_init,
                                        __global const float *init_r, __global float *fac,
                                        __global float *ps, __global float *fin_r)
{
    uint bh = get_global_id(0);
    float r = has_init ? init_r[bh] : -INFINITY;
    for (uint c = 0; c < nchunks; c++) {
        ulong at = (ulong)bh * nchunks + c;
        float mc = cm[at], rn = fmax(r, mc);
        ps[at] = r;
        fac[2 * at] = clattn_linear_rescale(r, rn);
        fac[2 * at + 1] = exp(mc - rn);
        r = rn;
    }
    fin_r[bh] = r;
}

/* Scan over the chunks of each (bh, m, 16-column block) with the factors above: with
 * write_prefix, chunk c's sums become the state before it (continuing `init` when has_init); with
 * has_fin, fin receives the state after the last chunk. init and fin ([BH][MP][DW], B parts
 * likewise) may be the same buffers: each work-item reads its elements before writing them.
 * Global size (DW/16, MP, BH). */
__kernel void clattn_linear_scan(__global float *ca, __global float *cb, __global const float *fac,
                                 uint n, uint chunk, uint nchunks, uint mp, int momentum, float mu,
                                 int has_init, __global const float *init_a,
                                 __global const float *init_b, int has_fin,
                                 __global float *fin_a, __global float *fin_b, int write_prefix)
{
    uint eb = get_global_id(0), m = get_global_id(1), bh = get_global_id(2);
    uint dw = get_global_size(0) * 16;
    ulong one = ((ulong)bh * mp + m) * dw + eb * 16;
    ulong first = ((ulong)bh * nchunks * mp + m) * dw + eb * 16, step = (ulong)mp * dw;
    float16 zero = CLATTN_SPLAT16(0.0f);
    float16 a = has_init ? vload16(0, init_a + one) : zero;
    float16 bb = has_init && momentum ? vload16(0, init_b + one) : zero;
    float mfull = momentum ? pown(mu, (int)chunk) : 0.0f;
    for (uint c = 0; c < nchunks; c++) {
        ulong at = first + c * step, f = 2 * ((ulong)bh * nchunks + c);
        float16 ta = vload16(0, ca + at);
        float so = fac[f], sn = fac[f + 1];
        if (write_prefix)
            vstore16(a, 0, ca + at);
        a = a * CLATTN_SPLAT16(so) + ta * CLATTN_SPLAT16(sn);
        if (momentum) {
            float16 tb = vload16(0, cb + at);
            if (write_prefix)
                vstore16(bb, 0, cb + at);
            float md = c + 1 < nchunks ? mfull : pown(mu, (int)(n - c * chunk));
            bb = bb * CLATTN_SPLAT16(md * so) + tb * CLATTN_SPLAT16(sn);
        }
    }
    if (has_fin) {
        vstore16(a, 0, fin_a + one);
        if (momentum)
            vstore16(bb, 0, fin_b + one);
    }
}

/* Key features of each causal chunk transposed, kt[g][m][t] = F[c * LINEAR_CHUNK + t][m] (0 past
 * the last key), so that clattn_linear_intra reads 16 keys' features as one vector. Global size
 * (LINEAR_CHUNK, MP, BH * nchunks). */
__kernel void clattn_linear_kt(__global const float *fk, uint n, uint nchunks,
                               __global float *kt)
{
    uint t = get_global_id(0), m = get_global_id(1), g = get_global_id(2);
    uint mp = get_global_size(1), bh = g / nchunks, j = (g % nchunks) * LINEAR_CHUNK + t;
    kt[((ulong)g * mp + m) * LINEAR_CHUNK + t] = j < n ? fk[((ulong)bh * n + j) * mp + m] : 0.0f;
}

/* Causal rows' weights for the keys of their own chunk: w[i][t] = exp(L_j - m_i) (phi(q_i) . F_j)
 * for j = j0 + t <= i (0 beyond), with m_i = max(r, L_j0..L_i) written to mi[i] (r = the chunk's
 * carried log-scale). Query head bh reads key head bh / group (GQA; group = 1 otherwise). One row per work-item, the chunk's LINEAR_CHUNK keys as float16 vectors (from
 * the transposed kt); kept apart from the output kernel so each dot product is computed once
 * rather than once per value block. Global size (Nq, BH). */
__kernel void clattn_linear_intra(__global const float *fq, __global const float *kt,
                                  __global const float *l, __global const float *ps, uint mp,
                                  uint nchunks, uint group, __global float *w,
                                  __global float *mi)
{
    uint i = get_global_id(0), bh = get_global_id(1), nq = get_global_size(0), bk = bh / group;
    uint c = i / LINEAR_CHUNK, j0 = c * LINEAR_CHUNK, last = i - j0;
    ulong lrow = (ulong)bh * nq, krow = (ulong)bk * nq;
    __global const float *qr = fq + (lrow + i) * mp;
    __global const float *kr = kt + ((ulong)bk * nchunks + c) * mp * LINEAR_CHUNK;
    float16 dt[LINEAR_CHUNK / 16];
    for (int u = 0; u < LINEAR_CHUNK / 16; u++)
        dt[u] = CLATTN_SPLAT16(0.0f);
    for (uint m = 0; m < mp; m++) {
        float16 qv = CLATTN_SPLAT16(qr[m]);
        __global const float *km = kr + (ulong)m * LINEAR_CHUNK;
        for (int u = 0; u < LINEAR_CHUNK / 16; u++)
            dt[u] = fma(qv, vload16(u, km), dt[u]);
    }
    float ls[LINEAR_CHUNK];
    float mx = ps[(ulong)bk * nchunks + c];
    for (uint t = 0; t < LINEAR_CHUNK; t++) {
        ls[t] = t <= last ? l[krow + j0 + t] : -INFINITY;
        mx = fmax(mx, ls[t]);
    }
    float16 m16 = CLATTN_SPLAT16(mx);
    __global float *wr = w + (lrow + i) * LINEAR_CHUNK;
    for (int u = 0; u < LINEAR_CHUNK / 16; u++) /* exp(-inf) = 0 masks j > i */
        vstore16(exp(vload16(u, ls) - m16) * dt[u], u, wr);
    mi[lrow + i] = mx;
}

/* Output rows: LINEAR_RB query rows times up to LINEAR_EB float16 blocks of value columns per
 * work-item, so each query feature loaded feeds LINEAR_EB vector FMAs.
 * Carried state: per chunk (causal: st + (bk * nchunks + c) states, log-scale ps[bk][c]) or one
 * per (b, key head) (non-causal and decoding: alpha = 1), bk = bh / group the key head query head
 * bh reads (GQA; group = 1 otherwise). With S = coef (A - mu B) and, for causal
 * rows, the masked keys of their own chunk (weights w_ij from clattn_linear_intra):
 *   num_i = alpha_i (coef phi(q_i) A - coef mu^(i - j0 + 2) phi(q_i) B)
 *           + sum_{j0 <= j <= i} w_ij coef (1 - mu^(i-j+1)) v_j
 *   den_i = alpha_i phi(q_i) z + sum_j w_ij
 * with alpha_i = exp(r - m_i); out_i = num_i / (den_i + eps_i), eps_i = eps exp(-(lq_i + m_i))
 * (clattn_eps_scaled; m_i = r for non-causal rows and steps, whose ps holds the state's scale).
 * Global size (ceil(DVP/(16 LINEAR_EB)), ceil(Nq/LINEAR_RB), BH). */
__kernel void clattn_linear_out(__global const float *fq, __global const float *vp,
                                __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 o_st, uint heads,
                                uint nq, uint mp, uint dv, uint dvp, __global const float *sa,
                                __global const float *sb, __global const float *ps, uint nchunks,
                                __global const float *iw, __global const float *imi, int causal,
                                int momentum, float mu, float coef, float log_eps,
                                __global const float *lq, uint group)
{
    uint eg = get_global_id(0), rb = get_global_id(1), bh = get_global_id(2), bk = bh / group;
    uint b = bh / heads, h = bh % heads, dw = dvp + 16;
    uint e0 = eg * 16 * LINEAR_EB, nblk = min((uint)LINEAR_EB, (dvp - e0) / 16);
    uint i0 = rb * LINEAR_RB, c = causal ? i0 / LINEAR_CHUNK : 0;
    ulong st = ((ulong)bk * (causal ? nchunks : 1) + c) * mp * dw;
    __global const float *A = sa + st + e0, *B = sb + st + e0, *Z = sa + st + dvp;
    __global const float *q = fq + ((ulong)bh * nq + i0) * mp;
    uint nr = min((uint)LINEAR_RB, nq - i0);
    float16 qa[LINEAR_RB][LINEAR_EB], qb[LINEAR_RB][LINEAR_EB];
    float qz[LINEAR_RB];
    __global const float *qrow[LINEAR_RB];
    for (int r = 0; r < LINEAR_RB; r++) {
        for (int u = 0; u < LINEAR_EB; u++) {
            qa[r][u] = CLATTN_SPLAT16(0.0f);
            qb[r][u] = qa[r][u];
        }
        qz[r] = 0.0f;
        qrow[r] = q + (ulong)min((uint)r, nr - 1) * mp; /* rows past the end repeat the last */
    }
    if (!momentum && nblk == LINEAR_EB) { /* the common case, without guards in the hot loop */
        for (uint m = 0; m < mp; m++) {
            __global const float *ar = A + (ulong)m * dw;
            float16 av[LINEAR_EB];
            for (int u = 0; u < LINEAR_EB; u++)
                av[u] = vload16(u, ar);
            float az = Z[(ulong)m * dw];
            for (int r = 0; r < LINEAR_RB; r++) {
                float16 fv = CLATTN_SPLAT16(qrow[r][m]);
                for (int u = 0; u < LINEAR_EB; u++)
                    qa[r][u] = fma(fv, av[u], qa[r][u]);
                qz[r] = fma(qrow[r][m], az, qz[r]);
            }
        }
    } else {
        for (uint m = 0; m < mp; m++) {
            float16 av[LINEAR_EB], bv[LINEAR_EB];
            for (int u = 0; u < LINEAR_EB; u++) {
                av[u] = (uint)u < nblk ? vload16(u, A + (ulong)m * dw) : CLATTN_SPLAT16(0.0f);
                bv[u] = momentum && (uint)u < nblk ? vload16(u, B + (ulong)m * dw)
                                                   : CLATTN_SPLAT16(0.0f);
            }
            float az = Z[(ulong)m * dw];
            for (int r = 0; r < LINEAR_RB; r++) {
                float fv = qrow[r][m];
                for (int u = 0; u < LINEAR_EB; u++) {
                    qa[r][u] = fma(CLATTN_SPLAT16(fv), av[u], qa[r][u]);
                    qb[r][u] = fma(CLATTN_SPLAT16(fv), bv[u], qb[r][u]);
                }
                qz[r] = fma(fv, az, qz[r]);
            }
        }
    }
    float r0 = ps[(ulong)bk * (causal ? nchunks : 1) + c];
    uint j0 = c * LINEAR_CHUNK;
    ulong lrow = (ulong)bh * nq;
    float den[LINEAR_RB];
    for (int r = 0; r < LINEAR_RB; r++) {
        float alpha = 1.0f;
        float mub = momentum ? mu : 0.0f;
        uint i = min(i0 + (uint)r, nq - 1);
        float ri = r0;
        if (causal) {
            ri = imi[lrow + i];
            alpha = clattn_linear_rescale(r0, ri);
            mub = momentum ? pown(mu, (int)(i - j0 + 2)) : 0.0f;
        }
        for (int u = 0; u < LINEAR_EB; u++)
            qa[r][u] = CLATTN_SPLAT16(alpha * coef) * (qa[r][u] - CLATTN_SPLAT16(mub) * qb[r][u]);
        den[r] = alpha * qz[r] + clattn_eps_scaled(log_eps, lq[lrow + i] + ri);
    }
    if (causal) {
        uint jend = min(i0 + (uint)LINEAR_RB, nq);
        for (uint j = j0; j < jend; j++) {
            __global const float *vr = vp + ((ulong)bk * nq + j) * dvp + e0;
            float16 vv[LINEAR_EB];
            for (int u = 0; u < LINEAR_EB; u++)
                vv[u] = (uint)u < nblk ? vload16(u, vr) : CLATTN_SPLAT16(0.0f);
            for (int r = 0; r < LINEAR_RB; r++) {
                uint i = min(i0 + (uint)r, nq - 1);
                float t = iw[(lrow + i) * LINEAR_CHUNK + (j - j0)]; /* 0 for j > i */
                den[r] += t;
                float cw = momentum && j <= i ? coef * (1.0f - pown(mu, (int)(i - j + 1))) : 1.0f;
                for (int u = 0; u < LINEAR_EB; u++)
                    qa[r][u] = fma(CLATTN_SPLAT16(t * cw), vv[u], qa[r][u]);
            }
        }
    }
    for (int r = 0; r < LINEAR_RB; r++) {
        if ((uint)r >= nr)
            break;
        float inv = clattn_safe_inv(den[r]);
        for (int u = 0; u < LINEAR_EB; u++) {
            if ((uint)u >= nblk)
                break;
            clattn_linear_store16(qa[r][u] * CLATTN_SPLAT16(inv), dv - (e0 + u * 16), out, o_off,
                                  o_st, b, h, i0 + r, e0 + u * 16);
        }
    }
}

/* A decoding step's state update for one key per (b, h): with r' = max(r, L), the sums are
 * rescaled by exp(r - r') and x = exp(L - r') F VP^T (z column: F) is added (A += x,
 * B = mu B + x). r itself is advanced by clattn_linear_step_commit afterwards (every work-item
 * reads it here). Global size (DW, MP, BH). */
__kernel void clattn_linear_step_update(__global const float *fk, __global const float *l,
                                        __global const float *vp, uint mp, uint dvp,
                                        int momentum, float mu, __global float *sa,
                                        __global float *sb, __global const float *sr)
{
    uint e = get_global_id(0), m = get_global_id(1), bh = get_global_id(2);
    uint dw = get_global_size(0);
    float r = sr[bh], lk = l[bh], rn = fmax(r, lk);
    float so = clattn_linear_rescale(r, rn), sn = exp(lk - rn);
    float fm = fk[(ulong)bh * mp + m] * sn;
    float x = e < dvp ? fm * vp[(ulong)bh * dvp + e] : (e == dvp ? fm : 0.0f);
    ulong at = ((ulong)bh * mp + m) * dw + e;
    sa[at] = sa[at] * so + x;
    if (momentum && e < dvp)
        sb[at] = mu * sb[at] * so + x;
}

/* r = max(r, L) after a step's update. Global size (BH). */
__kernel void clattn_linear_step_commit(__global float *sr, __global const float *l)
{
    uint bh = get_global_id(0);
    sr[bh] = fmax(sr[bh], l[bh]);
}

/* Adaptive momentum (the authors' frmomentum recurrence), sequential: one work-item per (b, key
 * head) walks keys j0..j1-1, keeping S (z in its DVP column), P, S_{i-1}, U_{i-1} ([BHk][MP][DW]
 * each), the log-scale r and the token count t in global memory, so a long scan may be split into
 * several launches. With want_out, row j of out receives, for each of the `group` query heads
 * sharing the key head (GQA; 1 otherwise), the output after key j (causal form); fq and out are
 * [B, heads * group, N, .]. Global size (BHk). */
__kernel void clattn_linear_adaptive(__global const float *fq, __global const float *fk,
                                     __global const float *l, __global const float *vp, uint n,
                                     uint mp, uint dv, uint dvp, float eta, float log_eps,
                                     __global const float *lq,
                                     __global float *ss, __global float *sp, __global float *sprev,
                                     __global float *uprev, __global float *sr,
                                     __global uint *steps, int want_out,
                                     __global CLATTN_STYPE(O_DT) *out,
                                     ulong o_off, ulong4 o_st, uint heads, uint group, uint j0,
                                     uint j1)
{
    uint bh = get_global_id(0), b = bh / heads, h = bh % heads, dw = dvp + 16;
    ulong base = (ulong)bh * mp * dw;
    __global float *S = ss + base, *P = sp + base, *S1 = sprev + base, *U1 = uprev + base;
    float r = sr[bh];
    uint t = steps[bh];
    for (uint j = j0; j < j1; j++) {
        ulong row = (ulong)bh * n + j;
        float lk = l[row], rn = fmax(r, lk), so = clattn_linear_rescale(r, rn);
        float sn = exp(lk - rn);
        if (so != 1.0f)
            for (uint m = 0; m < mp; m++)
                for (uint e = 0; e <= dvp; e++) {
                    ulong at = (ulong)m * dw + e;
                    S[at] *= so;
                    if (e < dvp) {
                        P[at] *= so;
                        S1[at] *= so;
                        U1[at] *= so;
                    }
                }
        r = rn;
        __global const float *kr = fk + row * mp, *vr = vp + row * dvp;
        float mu = 0.0f;
        if (t > 0) {
            float nu = 0.0f, nd = 0.0f;
            for (uint m = 0; m < mp; m++) {
                float fm = kr[m] * sn;
                for (uint e = 0; e < dvp; e++) {
                    ulong at = (ulong)m * dw + e;
                    float du = fm * vr[e] - U1[at], ds = S[at] - S1[at];
                    nu += du * du;
                    nd += ds * ds;
                }
            }
            if (nd > 0.0f) {
                float g = 1.0f - sqrt(eta * sqrt(nu) / sqrt(nd));
                mu = clamp(g * g, 0.0f, 0.9999f);
            } else {
                mu = 0.9999f;
            }
        }
        for (uint m = 0; m < mp; m++) {
            float fm = kr[m] * sn;
            for (uint e = 0; e < dvp; e++) {
                ulong at = (ulong)m * dw + e;
                float u = fm * vr[e];
                float p = t > 0 ? mu * P[at] - eta * u : -u;
                P[at] = p;
                S1[at] = S[at];
                S[at] -= p;
                U1[at] = u;
            }
            S[(ulong)m * dw + dvp] += fm;
        }
        t++;
        for (uint g = 0; want_out && g < group; g++) {
            ulong qrow = (ulong)(bh * group + g) * n + j;
            __global const float *qr = fq + qrow * mp;
            float den = clattn_eps_scaled(log_eps, lq[qrow] + r);
            for (uint m = 0; m < mp; m++)
                den += qr[m] * S[(ulong)m * dw + dvp];
            float inv = clattn_safe_inv(den);
            for (uint e = 0; e < dv; e++) {
                float acc = 0.0f;
                for (uint m = 0; m < mp; m++)
                    acc += qr[m] * S[(ulong)m * dw + e];
                CLATTN_STORE(O_DT, acc * inv, out, clattn_at(o_off, o_st, b, h * group + g, j, e));
            }
        }
    }
    sr[bh] = r;
    steps[bh] = t;
}

/* out_i = o'_i[0..Dv) / (o'_i[DVP] + eps_i) from the GEMM form's o' [BH][Nq][DW], eps_i = eps
 * exp(-(lq_i + lmax)) with lmax the key head's scale (has_lmax; 0 otherwise). Global size
 * (Nq, BH). */
__kernel void clattn_linear_normalize(__global const float *op, uint dv, uint dvp, float log_eps,
                                      __global const float *lq, int has_lmax,
                                      __global const float *lmax, uint group,
                                      __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 o_st,
                                      uint heads)
{
    uint i = get_global_id(0), bh = get_global_id(1), nq = get_global_size(0);
    uint b = bh / heads, h = bh % heads;
    ulong row = (ulong)bh * nq + i;
    __global const float *r = op + row * (dvp + 16);
    float rk = has_lmax ? lmax[bh / group] : 0.0f;
    float inv = clattn_safe_inv(r[dvp] + clattn_eps_scaled(log_eps, lq[row] + rk));
    for (uint e = 0; e < dv; e++)
        CLATTN_STORE(O_DT, r[e] * inv, out, clattn_at(o_off, o_st, b, h, i, e));
}
