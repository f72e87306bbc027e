/* Kernelized attention with relative positional encoding (Luo et al. 2021):
 *   w_ij = phi(q_i) . phi(k_j) * exp(b_(j-i)),  o_i = sum_j w_ij v_j / (sum_j w_ij + eps)
 * Features arrive precomputed (blocks_features.cl's kernels), contiguous [B*Hq][N][MS] for the
 * queries and [B*Hk][N][MS] for the keys, M of each row's MS slots used (MS >= M: rows are
 * padded). Query heads share key/value heads in groups of G = Hq / Hk (GQA; G = 1 is plain
 * multi-head): query head h reads key head h / G. The bias of query head h is a row of 2N - 1
 * floats, element r + N - 1 holding b_r; bmax_h is the largest entry the head uses (r <= 0 when
 * causal), subtracted before exp so no weight overflows (it cancels in the quotient). FAVOR's
 * features are stabilised too: a query row is stored divided by exp(lq_i), the keys of a
 * (b, key head) by exp(lk) (scaled: lq and lk given; the other maps have none). The sums therefore
 * run on w_ij exp(-(lq_i + lk + bmax_h)), and eps is added in that scale (clattn_eps_scaled).
 *
 * Two paths. Direct: clattn_rpe_direct, one query row per work-item, O(N^2 (M + Dv)).
 * FFT: for every feature m and value column d (column Dv standing for the denominator's ones), the
 * Toeplitz product y_i = sum_j c_(j-i) x_j with x_j = phi(k_j)_m v_jd is a circular convolution of
 * x (zero-padded to L >= 2N - 1) with the circulant embedding g of c; the host runs the FFTs
 * (clFFT), these kernels build g and x, multiply the spectra and contract y with phi(q_i). The
 * signals x belong to a key head: their spectra are made once and multiplied by the spectrum of
 * each of its query heads' biases in turn.
 *
 * Launch sizes come from lib/sched/sched_rpe.c; the -D options below are its output.
 *
 * As elsewhere in clattn: no __local memory, no barriers (costly on CPUs), one work-item per
 * output element or row -- except clattn_rpe_direct_tiled, the direct sums for GPUs. */

#ifndef RPE_MAX_DV
#define RPE_MAX_DV 256
#endif
/* Element types of the tensors these kernels touch (-D options from the plan, clattn_dtype codes;
 * absent: float32): the values v, the bias and the output, read and written only through
 * common.clh's CLATTN_LOAD / CLATTN_STORE, arithmetic in float32. q and k reach these kernels as
 * float32 features (blocks_features.cl's kernels, half q/k staged to float32 first). */
#ifndef V_DT
#define V_DT 0
#endif
#ifndef BIAS_DT
#define BIAS_DT 0
#endif
#ifndef O_DT
#define O_DT 0
#endif
#ifndef RPE_PARTS
#define RPE_PARTS 256
#endif

/* eps belongs to the formula's scale: o_i = sum_j w_ij v_j / (sum_j w_ij + eps) with the true
 * weights. Sums kept as exp(-shift) times the formula's (shift = lq_i + lk + bmax_h, every
 * stabiliser) get eps exp(-shift), computed in the log domain from log_eps = log(eps) (-inf for
 * eps 0: none); it underflows to 0 where it is negligible and overflows to inf where eps dominates
 * (the output is then 0, its limit). */

/* The stabilisers of query row i of query head h (row = bh * N + i) and key head bhk: the shift
 * of clattn_eps_scaled. scaled: FAVOR (lq [B*Hq][N] and lk [B*Hk] hold the log-scales). */
inline float clattn_rpe_shift(int scaled, __global const float *lq, __global const float *lk,
                              __global const float *bmax, ulong row, uint bhk, uint h)
{
    return bmax[h] + (scaled ? lq[row] + lk[bhk] : 0.0f);
}


/* Partial maxima of the used bias entries: part[h][p] covers an equal share of entries
 * [0, used) of head h (used = N when causal: entries 0..N-1 hold r <= 0, else 2N - 1). A
 * non-finite entry makes the part NaN, so the head's outputs become NaN rather than quietly wrong
 * (fmax would skip a NaN). Shares keep each loop short (llvmpipe caps loops at 65535 iterations).
 * Global (RPE_PARTS, H). */
__kernel void clattn_rpe_bias_parts(__global const CLATTN_STYPE(BIAS_DT) *bias, ulong b_off,
                                    ulong4 b_st,
                                    uint used, __global float *part)
{
    uint p = get_global_id(0), h = get_global_id(1);
    uint share = (used + RPE_PARTS - 1) / RPE_PARTS;
    uint lo = min(p * share, used), hi = min(lo + share, used);
    float m = -INFINITY;
    int bad = 0;
    for (uint x = lo; x < hi; x++) {
        float t = CLATTN_LOAD(BIAS_DT, bias, clattn_at(b_off, b_st, 0, h, 0, x));
        bad |= !isfinite(t);
        m = fmax(m, t);
    }
    part[h * RPE_PARTS + p] = bad ? NAN : m;
}

/* bmax[h] = the largest of head h's parts, NaN if any part is. Global (H). */
__kernel void clattn_rpe_bias_max(__global const float *part, __global float *bmax)
{
    uint h = get_global_id(0);
    float m = -INFINITY;
    int bad = 0;
    for (uint p = 0; p < RPE_PARTS; p++) {
        float x = part[h * RPE_PARTS + p];
        bad |= isnan(x);
        m = fmax(m, x);
    }
    bmax[h] = bad ? NAN : m;
}

/* c = exp(b - bmax[h]), r > 0 zeroed when causal.
 * len == 0: c itself, [H][2N - 1] at element r + N - 1 (direct path); a NaN bmax gives NaN.
 * len == L: the first column of the circulant embedding, g[h][t] = c_(-t) for t < N, c_(L-t) for
 * t > L - N, else 0, so that y_i = sum_j g_((i - j) mod L) x_j (FFT path). A NaN bmax gives
 * zeros there instead: clFFT may pair rows of a batch in one complex transform, so a NaN would
 * leak into other heads; clattn_rpe_normalize marks the head instead.
 * Global (len ? L : 2N - 1, H). */
__kernel void clattn_rpe_exp_bias(__global const CLATTN_STYPE(BIAS_DT) *bias, ulong b_off,
                                  ulong4 b_st, uint n, int causal, __global const float *bmax,
                                  uint len, __global float *out)
{
    uint t = get_global_id(0), h = get_global_id(1);
    float mx = bmax[h];
    long r; /* the offset j - i this element stands for */
    int zero = 0;
    if (len == 0) {
        r = (long)t - (long)(n - 1);
    } else if (t < n) {
        r = -(long)t;
    } else if (t > len - n) {
        r = (long)len - (long)t;
    } else {
        r = 0;
        zero = 1;
    }
    zero |= (causal && r > 0) || (len != 0 && isnan(mx));
    float c = zero ? 0.0f
                   : exp(CLATTN_LOAD(BIAS_DT, bias,
                                     clattn_at(b_off, b_st, 0, h, 0, (ulong)(r + (long)n - 1))) -
                         mx);
    out[(ulong)h * (len ? len : 2 * n - 1) + t] = c;
}

/* One query row per work-item: out_i = sum_j w_ij v_j / (sum_j w_ij + eps_i), with
 * w_ij = fq_i . fk_j * c_(j-i) from clattn_rpe_exp_bias (len 0) and eps_i = clattn_eps_scaled.
 * heads = Hq, group = Hq / Hk.
 * Global (rows, B*Hq): the first `rows` rows (all of them, or the head rows of the causal FFT
 * path). */
__kernel void clattn_rpe_direct(__global const float *fq, __global const float *fk, uint m_st,
                                __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 v_st,
                                __global const float *c, __global CLATTN_STYPE(O_DT) *out,
                                ulong o_off, ulong4 o_st, uint heads, uint group, uint n,
                                uint m_dim, uint d_v, int causal, float log_eps, int scaled,
                                __global const float *lq, __global const float *lk,
                                __global const float *bmax)
{
    uint i = get_global_id(0), bh = get_global_id(1), b = bh / heads, h = bh % heads;
    uint hk = h / group, bhk = bh / group; /* bh = (b Hk + hk) G + h % G */
    float acc[RPE_MAX_DV]; /* phi(q_i) stays in global memory: FAVOR's M reaches 4096 */
    __global const float *qrow = fq + ((ulong)bh * n + i) * m_st;
    __global const float *kh = fk + (ulong)bhk * n * m_st;
    __global const float *ch = c + (ulong)h * (2 * n - 1) + (n - 1 - i); /* ch[j] = c_(j-i) */
    for (uint e = 0; e < d_v; e++)
        acc[e] = 0.0f;
    float den = 0.0f;
    uint jend = causal ? i + 1 : n;
    for (uint j = 0; j < jend; j++) {
        __global const float *krow = kh + (ulong)j * m_st;
        float dot = 0.0f;
        for (uint m = 0; m < m_dim; m++)
            dot += qrow[m] * krow[m];
        float w = dot * ch[j];
        den += w;
        for (uint e = 0; e < d_v; e++)
            acc[e] += w * CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, b, hk, j, e));
    }
    float shift = clattn_rpe_shift(scaled, lq, lk, bmax, (ulong)bh * n + i, bhk, h);
    float inv = clattn_safe_inv(den + clattn_eps_scaled(log_eps, shift));
    for (uint e = 0; e < d_v; e++)
        CLATTN_STORE(O_DT, acc[e] * inv, out, clattn_at(o_off, o_st, b, h, i, e));
}

/* The direct sums for devices with real local memory (GPUs; lib/sched/sched_rpe.c chooses it),
 * the same result as clattn_rpe_direct. A work-group owns RPE_BR query rows and RPE_DT value
 * columns (column tile get_group_id(1)) of one (batch, query head); it walks the key tiles of
 * RPE_BC keys (causal: up to its last row). Per key tile: the scores fq_i . fk_j are a GEMM over
 * the features in chunks of RPE_MK, both operands staged in __local once per work-group, each
 * work-item an RPE_RM x RPE_RN register micro-tile (rows ty + r TY, keys tx + c TX); the weights
 * w_ij = score * c_(j-i) (masked: j >= N, causal j > i) go to __local with the value tile, then
 * each work-item adds its RPE_RM x RPE_RD block of w V (columns tx + e TX) into registers. The
 * denominators are per-item partial row sums, reduced across the TX items of a row through
 * __local at the end. Every accumulator and micro-tile is constant-indexed in fully unrolled
 * loops, so it stays in registers (oclgrind --inst-counts: no private traffic). Arguments as clattn_rpe_direct plus `rows` (rows [0, rows) are computed).
 * Global (ceil(rows / RPE_BR) RPE_WG, ceil(Dv / RPE_DT), B*Hq), local (RPE_WG).
 * Compiled only with -DRPE_TILED (the scheduler's tiled launch), so the per-row program that CPUs
 * build carries none of it. */
#ifdef RPE_TILED
#ifndef RPE_RM
#define RPE_RM 4
#endif
#ifndef RPE_RN
#define RPE_RN 4
#endif
#ifndef RPE_RD
#define RPE_RD 4
#endif
#ifndef RPE_TX
#define RPE_TX 8
#endif
#ifndef RPE_TY
#define RPE_TY 8
#endif
#ifndef RPE_MK
#define RPE_MK 16
#endif
#ifndef RPE_UNROLL /* of the feature and key loops, which index __local only (4: compile time on
                      * PoCL stays small; the register tiles are unrolled in full regardless) */
#define RPE_UNROLL 4
#endif
#define RPE_WG (RPE_TX * RPE_TY)
#define RPE_BR (RPE_RM * RPE_TY)
#define RPE_BC (RPE_RN * RPE_TX)
#define RPE_DT (RPE_RD * RPE_TX)

__kernel __attribute__((reqd_work_group_size(RPE_WG, 1, 1))) void
clattn_rpe_direct_tiled(__global const float *fq, __global const float *fk, uint m_st,
                        __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 v_st,
                        __global const float *c, __global CLATTN_STYPE(O_DT) *out, ulong o_off,
                        ulong4 o_st,
                        uint heads, uint group, uint n, uint m_dim, uint d_v, int causal,
                        float log_eps, int scaled, __global const float *lq,
                        __global const float *lk, __global const float *bmax, uint rows)
{
    __local float qs[RPE_MK][RPE_BR];     /* feature chunk of the block's rows */
    __local float ks[RPE_MK][RPE_BC];     /* the same chunk of the tile's keys */
    __local float ws[RPE_BR][RPE_BC + 1]; /* weights of the tile; row sums at the end */
    __local float vs[RPE_BC][RPE_DT];     /* value tile */
    uint lid = get_local_id(0), tx = lid % RPE_TX, ty = lid / RPE_TX;
    uint i0 = get_group_id(0) * RPE_BR, d0 = get_group_id(1) * RPE_DT, bh = get_global_id(2);
    uint b = bh / heads, h = bh % heads, hk = h / group, bhk = bh / group;
    __global const float *qh = fq + (ulong)bh * n * m_st;
    __global const float *kh = fk + (ulong)bhk * n * m_st;
    __global const float *ch = c + (ulong)h * (2 * n - 1) + (n - 1); /* ch[j - i] = c_(j-i) */
    float acc[RPE_RM][RPE_RD], den[RPE_RM];
#pragma unroll
    for (uint r = 0; r < RPE_RM; r++) {
        den[r] = 0.0f;
#pragma unroll
        for (uint e = 0; e < RPE_RD; e++)
            acc[r][e] = 0.0f;
    }
    uint iend = min(i0 + RPE_BR, rows);
    uint jend = causal ? min(iend, n) : n; /* uniform over the work-group */
    for (uint j0 = 0; j0 < jend; j0 += RPE_BC) {
        float s[RPE_RM][RPE_RN];
#pragma unroll
        for (uint r = 0; r < RPE_RM; r++)
#pragma unroll
            for (uint cc = 0; cc < RPE_RN; cc++)
                s[r][cc] = 0.0f;
        for (uint m0 = 0; m0 < m_dim; m0 += RPE_MK) {
            barrier(CLK_LOCAL_MEM_FENCE); /* the previous chunk (and tile) is read */
            for (uint t = lid; t < RPE_MK * RPE_BR; t += RPE_WG) {
                uint r = t / RPE_MK, mm = t % RPE_MK, i = i0 + r, m = m0 + mm;
                qs[mm][r] = i < rows && m < m_dim ? qh[(ulong)i * m_st + m] : 0.0f;
            }
            for (uint t = lid; t < RPE_MK * RPE_BC; t += RPE_WG) {
                uint cc = t / RPE_MK, mm = t % RPE_MK, j = j0 + cc, m = m0 + mm;
                ks[mm][cc] = j < n && m < m_dim ? kh[(ulong)j * m_st + m] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll RPE_UNROLL
            for (uint mm = 0; mm < RPE_MK; mm++) {
                float a[RPE_RM], k[RPE_RN];
#pragma unroll
                for (uint r = 0; r < RPE_RM; r++)
                    a[r] = qs[mm][ty + r * RPE_TY];
#pragma unroll
                for (uint cc = 0; cc < RPE_RN; cc++)
                    k[cc] = ks[mm][tx + cc * RPE_TX];
#pragma unroll
                for (uint r = 0; r < RPE_RM; r++)
#pragma unroll
                    for (uint cc = 0; cc < RPE_RN; cc++)
                        s[r][cc] = fma(a[r], k[cc], s[r][cc]);
            }
        }
        /* Weights (masked to 0) into __local, partial row sums into den. */
#pragma unroll
        for (uint r = 0; r < RPE_RM; r++) {
            uint i = i0 + ty + r * RPE_TY;
#pragma unroll
            for (uint cc = 0; cc < RPE_RN; cc++) {
                uint j = j0 + tx + cc * RPE_TX;
                bool live = i < rows && j < n && !(causal && j > i);
                float w = live ? s[r][cc] * ch[(long)j - (long)i] : 0.0f;
                den[r] += w;
                ws[ty + r * RPE_TY][tx + cc * RPE_TX] = w;
            }
        }
        for (uint t = lid; t < RPE_BC * RPE_DT; t += RPE_WG) {
            uint jj = t / RPE_DT, e = t % RPE_DT, j = j0 + jj, d = d0 + e;
            vs[jj][e] = j < n && d < d_v
                            ? CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, b, hk, j, d))
                            : 0.0f; /* __local stays float32 */
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll RPE_UNROLL
        for (uint jj = 0; jj < RPE_BC; jj++) {
            float w[RPE_RM], x[RPE_RD];
#pragma unroll
            for (uint r = 0; r < RPE_RM; r++)
                w[r] = ws[ty + r * RPE_TY][jj];
#pragma unroll
            for (uint e = 0; e < RPE_RD; e++)
                x[e] = vs[jj][tx + e * RPE_TX];
#pragma unroll
            for (uint r = 0; r < RPE_RM; r++)
#pragma unroll
                for (uint e = 0; e < RPE_RD; e++)
                    acc[r][e] = fma(w[r], x[e], acc[r][e]);
        }
    }
    /* Row sums: the TX partial sums of each row through __local. */
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (uint r = 0; r < RPE_RM; r++)
        ws[ty + r * RPE_TY][tx] = den[r];
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (uint r = 0; r < RPE_RM; r++) {
        uint i = i0 + ty + r * RPE_TY;
        float sum = 0.0f;
#pragma unroll
        for (uint t = 0; t < RPE_TX; t++)
            sum += ws[ty + r * RPE_TY][t];
        if (i >= rows)
            continue;
        float shift = clattn_rpe_shift(scaled, lq, lk, bmax, (ulong)bh * n + i, bhk, h);
        float inv = clattn_safe_inv(sum + clattn_eps_scaled(log_eps, shift));
#pragma unroll
        for (uint e = 0; e < RPE_RD; e++) {
            uint d = d0 + tx + e * RPE_TX;
            if (d < d_v)
                CLATTN_STORE(O_DT, acc[r][e] * inv, out, clattn_at(o_off, o_st, b, h, i, d));
        }
    }
}
#endif /* RPE_TILED */

/* Signals of the FFT path, a group of (bh, m) pairs bm0 .. bm1 - 1 over the key heads
 * (bh < B*Hk, heads = Hk) with Dv + 1 columns each: signal s = (bm - bm0) * (Dv + 1) + d holds
 * x_j = fk[bh][j][m] * (v[bh][j][d], or 1 for d == Dv) for j < N and zeros up to L; rows past
 * bm1 (padding of the last group, which keeps one batch size for clFFT) are zeros.
 * Global (L, signals). */
__kernel void clattn_rpe_signals(__global const float *fk, uint m_st,
                                 __global const CLATTN_STYPE(V_DT) *v, ulong v_off,
                                 ulong4 v_st, uint heads, uint n, uint m_dim, uint d_v, uint bm0,
                                 uint bm1, uint len, __global float *x)
{
    uint t = get_global_id(0), s = get_global_id(1);
    uint bm = bm0 + s / (d_v + 1), d = s % (d_v + 1), bh = bm / m_dim, m = bm % m_dim;
    float val = 0.0f;
    if (t < n && bm < bm1) {
        val = fk[((ulong)bh * n + t) * m_st + m];
        if (d < d_v)
            val *= CLATTN_LOAD(V_DT, v, clattn_at(v_off, v_st, bh / heads, bh % heads, t, d));
    }
    x[(ulong)s * len + t] = val;
}

/* Y[s] = X[s] * G[h] for the Hermitian halves (len/2 + 1 complex bins), signals as above, h the
 * query head `sub` of the signal's key head (h = hk * group + sub); yf may be xf (in place).
 * Global (bins, signals). */
__kernel void clattn_rpe_cmul(__global const float2 *xf, __global float2 *yf,
                              __global const float2 *gf, uint bins, uint key_heads, uint m_dim,
                              uint d_v, uint bm0, uint group, uint sub)
{
    uint f = get_global_id(0), s = get_global_id(1);
    uint h = ((bm0 + s / (d_v + 1)) / m_dim) % key_heads * group + sub;
    float2 a = xf[(ulong)s * bins + f], g = gf[(ulong)h * bins + f];
    yf[(ulong)s * bins + f] = (float2)(a.x * g.x - a.y * g.y, a.x * g.y + a.y * g.x);
}

/* Contraction of the group's convolved signals y with phi(q_i) of query head `sub` of each key
 * head: for each key bh touched by the group (bh = bh0 + z, over B*Hk) and its query head
 * qh = bh * group + sub (= b Hq + hk G + sub),
 *   acc[qh][i][d] (+)= sum over the group's m of fq[qh][i][m] * y[s(bm, d)][i].
 * The group holding m = 0 of a bh writes, later groups add (groups run in bm order).
 * Global (N, Dv + 1, bh touched). */
__kernel void clattn_rpe_contract(__global const float *fq, uint m_st, __global const float *y,
                                  uint n, uint m_dim, uint d_v, uint bm0, uint bm1, uint bh0,
                                  uint len, uint group, uint sub, __global float *acc)
{
    uint i = get_global_id(0), d = get_global_id(1), bh = bh0 + get_global_id(2);
    uint qh = bh * group + sub;
    uint lo = max(bm0, bh * m_dim), hi = min(bm1, (bh + 1) * m_dim);
    __global const float *qrow = fq + ((ulong)qh * n + i) * m_st - (ulong)bh * m_dim;
    float s = 0.0f;
    for (uint bm = lo; bm < hi; bm++)
        s += qrow[bm] * y[((ulong)(bm - bm0) * (d_v + 1) + d) * len + i];
    ulong at = ((ulong)qh * n + i) * (d_v + 1) + d;
    acc[at] = (lo == bh * m_dim ? 0.0f : acc[at]) + s;
}

/* out_i = acc[i][e] / (acc[i][Dv] + eps_i) for rows i >= row0, eps_i = clattn_eps_scaled (the
 * stabilisers as for clattn_rpe_direct; group = Hq / Hk); NaN for a head whose bias is not finite
 * (bmax NaN). Global (Dv, N - row0, B*Hq). */
__kernel void clattn_rpe_normalize(__global const float *acc, __global const float *bmax,
                                   __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 o_st,
                                   uint heads, uint group, uint n, uint d_v, uint row0,
                                   float log_eps,
                                   int scaled, __global const float *lq, __global const float *lk)
{
    uint e = get_global_id(0), i = row0 + get_global_id(1), bh = get_global_id(2);
    uint h = bh % heads;
    ulong at = (ulong)bh * n + i;
    __global const float *row = acc + at * (d_v + 1);
    float shift = clattn_rpe_shift(scaled, lq, lk, bmax, at, bh / group, h);
    float den = row[d_v] + clattn_eps_scaled(log_eps, shift);
    float o = den != 0.0f ? row[e] / den : 0.0f; /* 0 for a row with no weight and eps = 0 */
    CLATTN_STORE(O_DT, isnan(bmax[h]) ? NAN : o, out, clattn_at(o_off, o_st, bh / heads, h, i, e));
}
