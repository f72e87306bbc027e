/* Transformer-MGK: attention with a mixture of Gaussian keys (include/clattn/mgk.h has the
 * formulas). The softmax form copies the design of softmax.cl's two tiled families:
 *
 *  clattn_mgk_pack — once per enqueue: for each head and component r, K scaled by
 *    c_r = log2(e) / sigma_r^2 into [Npad/16][D][16] panels, the per-key bias
 *    a_jr = log2(pi_jr) - c_r |k_jr|^2 / 2 (-inf for padding keys and pi_jr <= 0), V into rows.
 *  clattn_mgk_fwd_cpu — CPU-like devices: MGK_ROWS query rows per work-item, float16 score vectors
 *    over 16 keys for each of the MGK_R components, no __local memory, no barriers.
 *  clattn_mgk_fwd_gpu — devices with real local memory: one row per work-item, the R K tiles, their
 *    biases and the V tile shared in __local memory.
 *
 * The base-2 logit of query i, key j, component r is s_ijr = c_r q_i.k_jr + a_jr + b_ir with
 * b_ir = -c_r |q_i|^2 / 2 - max_r'(-c_r' |q_i|^2 / 2) (<= 0; the subtracted row constant goes
 * back into lse). Online softmax over j: the running maximum covers all R logits of every key, and
 * a key's weight is sum_r exp2(s_ijr - m), every argument <= 0.
 *
 * The linear form: clattn_mgk_lin_features writes phi(q) and psi_j = sum_r pi_jr phi(k_jr) into
 * scratch; the plan then runs the linear family's plan (linear.cl) on them with the identity
 * feature map. The decoding state's step runs clattn_mgk_lin_scan instead: one work-item per
 * (head, value column) keeping its column of S and all of z in registers. */

#ifndef MGK_HEAD_DIM
#define MGK_HEAD_DIM 64
#endif
#ifndef MGK_R
#define MGK_R 2
#endif
#ifndef MGK_ROWS
#define MGK_ROWS 4
#endif
#ifndef MGK_KEY_BLOCK
#define MGK_KEY_BLOCK 16
#endif
/* 16-key panels per online-softmax step of the CPU family: the R x STEP x ROWS score vectors stay
 * in registers beside the accumulators while R * STEP <= 2 (softmax.cl measured 2 panels faster
 * up to D = 64 with R = 1). */
#ifndef MGK_STEP_BLOCKS
#define MGK_STEP_BLOCKS ((MGK_HEAD_DIM) <= 64 && (MGK_R) == 1 ? 2 : 1)
#endif
#ifndef MGK_TILE_KV
#define MGK_TILE_KV 32
#endif
#ifndef MGK_WG_SIZE
#define MGK_WG_SIZE 64
#endif

/* Which kernels a program holds (each plan builds only its own, so a build compiles one family):
 * 1 the pack and the CPU family, 2 the pack and the GPU family, 3 the linear form, 0 all. */
#ifndef MGK_FAMILY
#define MGK_FAMILY 0
#endif

/* Storage types of the tensors (clattn_dtype codes, -D options of the plan; absent: float32).
 * Every kernel reads q, k, v, pi and writes out in these types directly (CLATTN_LOAD /
 * CLATTN_STORE); packed panels, feature scratch, lse and the decoding state stay float32. */
#ifndef Q_DT
#define Q_DT 0
#endif
#ifndef K_DT
#define K_DT 0
#endif
#ifndef V_DT
#define V_DT 0
#endif
#ifndef PI_DT
#define PI_DT 0
#endif
#ifndef O_DT
#define O_DT 0
#endif

#define MGK_DPAD (((MGK_HEAD_DIM) + 15) / 16 * 16)
#define MGK_DVEC (MGK_DPAD / 16)

#if MGK_FAMILY != 3
/* Global size: (Npad, B * H). kp[(bh * R + r)][Npad/16][D][16], a2[(bh * R + r)][Npad],
 * vp[bh][Npad][DPAD]. k is the [B, H * R, Nk, D] view; pi the [1, H, R, Nk] view. */
__kernel void clattn_mgk_pack(__global const CLATTN_STYPE(K_DT) *k, ulong k_off, ulong4 ks,
                              __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 vs,
                              __global const CLATTN_STYPE(PI_DT) *pi, ulong p_off, ulong4 ps,
                              __global const float *c2, uint h_count, uint nk, uint npad,
                              __global float *kp, __global float *a2, __global float *vp)
{
    uint j = get_global_id(0);
    uint bh = get_global_id(1);
    if (j >= npad)
        return;
    uint b = bh / h_count, h = bh % h_count;
    bool in = j < nk;
    for (uint r = 0; r < MGK_R; r++) {
        ulong bhr = (ulong)bh * MGK_R + r;
        ulong kbase = (bhr * (npad / MGK_KEY_BLOCK) + j / MGK_KEY_BLOCK) * MGK_HEAD_DIM * MGK_KEY_BLOCK +
                      j % MGK_KEY_BLOCK;
        float c = c2[r], kk = 0.0f;
        for (uint d = 0; d < MGK_HEAD_DIM; d++) {
            float x = in ? CLATTN_LOAD(K_DT, k, clattn_at(k_off, ks, b, (ulong)h * MGK_R + r, j, d))
                         : 0.0f;
            kk = fma(x, x, kk);
            kp[kbase + (ulong)d * MGK_KEY_BLOCK] = x * c;
        }
        float p = in ? CLATTN_LOAD(PI_DT, pi, clattn_at(p_off, ps, 0, h, r, j)) : 0.0f;
        a2[bhr * npad + j] = p > 0.0f ? log2(p) - 0.5f * c * kk : -INFINITY;
    }
    __global float *vrow = vp + ((ulong)bh * npad + j) * MGK_DPAD;
    for (uint d = 0; d < MGK_DPAD; d++)
        vrow[d] = in && d < MGK_HEAD_DIM ? CLATTN_LOAD(V_DT, v, clattn_at(v_off, vs, b, h, j, d))
                                         : 0.0f;
}

/* Loads query row `row` into qv and returns the row constant; bq[r] = b_ir as above. */
inline float mgk_query_row(float *qv, float *bq, __global const CLATTN_STYPE(Q_DT) *q, ulong q_off,
                           ulong4 qs, uint b, uint h, uint row, __global const float *c2)
{
    for (uint d = 0; d < MGK_HEAD_DIM; d++)
        qv[d] = CLATTN_LOAD(Q_DT, q, clattn_at(q_off, qs, b, h, row, d));
    float qq = 0.0f;
    for (uint d = 0; d < MGK_HEAD_DIM; d++)
        qq = fma(qv[d], qv[d], qq);
    float top = -INFINITY;
    for (uint r = 0; r < MGK_R; r++) {
        bq[r] = -0.5f * c2[r] * qq;
        top = fmax(top, bq[r]);
    }
    for (uint r = 0; r < MGK_R; r++)
        bq[r] -= top;
    return top;
}

/* One finished row: out = acc / l, lse = (m + log2 l + row constant) in natural log. */
#define MGK_STORE_ROW(ACC, M, L, TOP, ROW)                                                         \
    do {                                                                                           \
        float inv_ = clattn_online_inv(L);                                                         \
        for (uint d_ = 0; d_ < MGK_HEAD_DIM; d_++)                                                 \
            CLATTN_STORE(O_DT, (ACC)[d_] * inv_, out, clattn_at(o_off, os, b, h, (ROW), d_));      \
        if (has_lse)                                                                               \
            lse[clattn_at(l_off, ls, b, h, (ROW), 0)] =                                            \
                (clattn_online_lse2(M, L) + (TOP)) * CLATTN_LN2;                                   \
    } while (0)

#endif

#if MGK_FAMILY == 0 || MGK_FAMILY == 1
/* Global size: (ceil(Nq / MGK_ROWS) rounded up to the work-group, B * H). */
__kernel void clattn_mgk_fwd_cpu(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                                 __global const float *kp, __global const float *a2,
                                 __global const float *vp, uint npad, __global const float *c2,
                                 __global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 os,
                                 __global float *lse,
                                 ulong l_off, ulong4 ls, int has_lse,
                                 __global const int *key_lengths, ulong kl_off, int has_kl,
                                 uint h_count, uint nq, uint nk, int causal)
{
    /* Last rows first: under a causal mask they see the most keys (as softmax.cl). */
    uint items = (nq + MGK_ROWS - 1) / MGK_ROWS;
    uint gid = get_global_id(0);
    uint bh = get_global_id(1);
    if (gid >= items)
        return; /* no barriers: early exit is safe */
    uint row0 = (items - 1 - gid) * MGK_ROWS;
    uint b = bh / h_count, h = bh % h_count;
    __global const float *kpan = kp + (ulong)bh * MGK_R * npad * MGK_HEAD_DIM;
    __global const float *abias = a2 + (ulong)bh * MGK_R * npad;
    __global const float *vrows = vp + (ulong)bh * npad * MGK_DPAD;

    long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, nk);
    int lim[MGK_ROWS];
    float qv[MGK_ROWS][MGK_HEAD_DIM];
    float bq[MGK_ROWS][MGK_R], top[MGK_ROWS];
    float16 acc[MGK_ROWS][MGK_DVEC];
    float m[MGK_ROWS], l[MGK_ROWS];
    long kend = 0;
    _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++) {
        uint row = min(row0 + i, nq - 1); /* tail rows duplicate the last row, never stored */
        long lr = clattn_visible(row, nq, nk, kl, causal);
        lim[i] = (int)lr;
        kend = max(kend, lr);
        top[i] = mgk_query_row(qv[i], bq[i], q, q_off, qs, b, h, row, c2);
        _Pragma("unroll") for (uint c = 0; c < MGK_DVEC; c++)
            acc[i][c] = CLATTN_SPLAT16(0.0f);
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }

    uint nblk = (uint)((kend + MGK_KEY_BLOCK - 1) / MGK_KEY_BLOCK);
    uint pblk = npad / MGK_KEY_BLOCK;
    for (uint kb = 0; kb < nblk; kb += MGK_STEP_BLOCKS) {
        uint have = MGK_STEP_BLOCKS == 1 ? 1 : min((uint)MGK_STEP_BLOCKS, pblk - kb);
        float16 s[MGK_R][MGK_STEP_BLOCKS][MGK_ROWS];
        _Pragma("unroll") for (uint r = 0; r < MGK_R; r++) {
            __global const float *pan = kpan + ((ulong)r * pblk + kb) * (MGK_HEAD_DIM * MGK_KEY_BLOCK);
            _Pragma("unroll") for (uint t = 0; t < MGK_STEP_BLOCKS; t++)
                _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++)
                    s[r][t][i] = CLATTN_SPLAT16(0.0f);
            _Pragma("unroll") for (uint d = 0; d < MGK_HEAD_DIM; d++) {
                _Pragma("unroll") for (uint t = 0; t < MGK_STEP_BLOCKS; t++) {
                    float16 kv = t < have ? vload16(d + t * MGK_HEAD_DIM, pan) : CLATTN_SPLAT16(0.0f);
                    _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++)
                        s[r][t][i] = fma(CLATTN_SPLAT16(qv[i][d]), kv, s[r][t][i]);
                }
            }
            _Pragma("unroll") for (uint t = 0; t < MGK_STEP_BLOCKS; t++) {
                float16 ab = t < have ? vload16(kb + t, abias + (ulong)r * npad)
                                      : CLATTN_SPLAT16(-INFINITY);
                _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++)
                    s[r][t][i] += ab + CLATTN_SPLAT16(bq[i][r]);
            }
        }
        float p[MGK_ROWS][MGK_STEP_BLOCKS * MGK_KEY_BLOCK];
        _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++) {
            float16 sm = CLATTN_SPLAT16(-INFINITY);
            _Pragma("unroll") for (uint t = 0; t < MGK_STEP_BLOCKS; t++) {
                int16 keep = CLATTN_LANES16 + CLATTN_ISPLAT16((int)((kb + t) * MGK_KEY_BLOCK)) <
                             CLATTN_ISPLAT16(lim[i]);
                _Pragma("unroll") for (uint r = 0; r < MGK_R; r++) {
                    s[r][t][i] = clattn_mask16(s[r][t][i], keep);
                    sm = fmax(sm, s[r][t][i]);
                }
            }
            float ref, corr = clattn_online_step(&m[i], clattn_hmax16(sm), &ref);
            float16 tot = CLATTN_SPLAT16(0.0f);
            _Pragma("unroll") for (uint t = 0; t < MGK_STEP_BLOCKS; t++) {
                float16 e = CLATTN_SPLAT16(0.0f);
                _Pragma("unroll") for (uint r = 0; r < MGK_R; r++) {
                    /* <= 0 (-inf masked); a NaN logit stays a NaN weight */
                    float16 a = s[r][t][i] - CLATTN_SPLAT16(ref);
                    e += clattn_exp2_neg16(a);
                }
                tot += e;
                vstore16(e, t, p[i]);
            }
            l[i] = l[i] * corr + clattn_hsum16(tot);
            CLATTN_SCALE16(acc[i], MGK_DVEC, corr);
        }
        __global const float *vb = vrows + (ulong)kb * MGK_KEY_BLOCK * MGK_DPAD;
#if MGK_STEP_BLOCKS == 1
        _Pragma("unroll") for (uint j = 0; j < MGK_KEY_BLOCK; j++) {
#else
        uint nj = have * MGK_KEY_BLOCK;
        for (uint j = 0; j < nj; j++) {
#endif
            CLATTN_AXPY16_ROWS(acc, MGK_ROWS, MGK_DVEC, p, j, vb + j * MGK_DPAD);
        }
    }
    _Pragma("unroll") for (uint i = 0; i < MGK_ROWS; i++) {
        uint row = row0 + i;
        if (row < nq) {
            float a[MGK_DPAD];
            _Pragma("unroll") for (uint c = 0; c < MGK_DVEC; c++)
                vstore16(acc[i][c], c, a);
            MGK_STORE_ROW(a, m[i], l[i], top[i], row);
        }
    }
}

#endif

#if MGK_FAMILY == 0 || MGK_FAMILY == 2
/* Global size: (ceil(Nq / MGK_WG_SIZE) * MGK_WG_SIZE, B * H); local size (MGK_WG_SIZE, 1). Reads
 * the packed buffers of clattn_mgk_pack. */
__kernel __attribute__((reqd_work_group_size(MGK_WG_SIZE, 1, 1))) void
clattn_mgk_fwd_gpu(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                   __global const float *kp, __global const float *a2, __global const float *vp,
                   uint npad, __global const float *c2, __global CLATTN_STYPE(O_DT) *out,
                   ulong o_off, ulong4 os,
                   __global float *lse, ulong l_off, ulong4 ls, int has_lse,
                   __global const int *key_lengths, ulong kl_off, int has_kl, uint h_count,
                   uint nq, uint nk, int causal)
{
    __local float kt[MGK_R][MGK_TILE_KV][MGK_HEAD_DIM];
    __local float at[MGK_R][MGK_TILE_KV];
    __local float vt[MGK_TILE_KV][MGK_HEAD_DIM];
    uint lid = get_local_id(0);
    uint row = get_global_id(0);
    uint bh = get_global_id(1);
    uint b = bh / h_count, h = bh % h_count;
    bool valid = row < nq;
    uint qrow = valid ? row : nq - 1;
    uint pblk = npad / MGK_KEY_BLOCK;

    long kl = clattn_key_length(key_lengths, kl_off + b, has_kl, nk);
    long lim = clattn_visible(qrow, nq, nk, kl, causal);
    uint last = min((uint)(get_group_id(0) * MGK_WG_SIZE + MGK_WG_SIZE - 1), nq - 1);
    long kend = clattn_visible(last, nq, nk, kl, causal); /* uniform over the group */

    float qv[MGK_HEAD_DIM], acc[MGK_HEAD_DIM], bq[MGK_R];
    float top = mgk_query_row(qv, bq, q, q_off, qs, b, h, qrow, c2);
    for (uint d = 0; d < MGK_HEAD_DIM; d++)
        acc[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (long k0 = 0; k0 < kend; k0 += MGK_TILE_KV) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint idx = lid; idx < MGK_TILE_KV * MGK_HEAD_DIM; idx += MGK_WG_SIZE) {
            uint j = idx / MGK_HEAD_DIM, d = idx % MGK_HEAD_DIM;
            long key = k0 + j;
            bool in = key < kend;
            for (uint r = 0; r < MGK_R; r++) {
                ulong at_ = (((ulong)bh * MGK_R + r) * pblk + key / MGK_KEY_BLOCK) * MGK_HEAD_DIM *
                                MGK_KEY_BLOCK +
                            (ulong)d * MGK_KEY_BLOCK + key % MGK_KEY_BLOCK;
                kt[r][j][d] = in ? kp[at_] : 0.0f;
            }
            vt[j][d] = in ? vp[((ulong)bh * npad + key) * MGK_DPAD + d] : 0.0f;
        }
        for (uint idx = lid; idx < MGK_TILE_KV * MGK_R; idx += MGK_WG_SIZE) {
            uint r = idx / MGK_TILE_KV, j = idx % MGK_TILE_KV;
            long key = k0 + j;
            at[r][j] = key < kend ? a2[((ulong)bh * MGK_R + r) * npad + key] : -INFINITY;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float sc[MGK_R][MGK_TILE_KV];
        float mt = -INFINITY;
        for (uint j = 0; j < MGK_TILE_KV; j++) {
            bool see = k0 + j < lim;
            for (uint r = 0; r < MGK_R; r++) {
                float sj = at[r][j] + bq[r];
                for (uint d = 0; d < MGK_HEAD_DIM; d++)
                    sj = fma(qv[d], kt[r][j][d], sj);
                sj = see ? sj : -INFINITY;
                sc[r][j] = sj;
                mt = fmax(mt, sj);
            }
        }
        float ref, corr = clattn_online_step(&m, mt, &ref);
        float pj[MGK_TILE_KV];
        float sum = 0.0f;
        for (uint j = 0; j < MGK_TILE_KV; j++) {
            float e = 0.0f;
            for (uint r = 0; r < MGK_R; r++)
                e += exp2(sc[r][j] - ref);
            pj[j] = e;
            sum += e;
        }
        l = l * corr + sum;
        for (uint d = 0; d < MGK_HEAD_DIM; d++) {
            float a = acc[d] * corr;
            for (uint j = 0; j < MGK_TILE_KV; j++)
                a = fma(pj[j], vt[j][d], a);
            acc[d] = a;
        }
    }
    if (valid)
        MGK_STORE_ROW(acc, m, l, top, row);
}

#endif

/* ---- linear MGK ---- */
#if MGK_FAMILY == 0 || MGK_FAMILY == 3

/* phi(x) = (elu(x) + 1) / sum (elu(x) + 1) of one row t (private, overwritten) added into f
 * (private), scaled by w. */
inline void mgk_phi_add(float *f, float *t, float w)
{
    float sum = 0.0f;
    for (uint d = 0; d < MGK_HEAD_DIM; d++) {
        float y = t[d];
        t[d] = y > 0.0f ? y + 1.0f : clattn_exp2_neg(y * CLATTN_LOG2E); /* NaN: NaN */
        sum += t[d];
    }
    float s = sum > 0.0f ? w / sum : 0.0f;
    for (uint d = 0; d < MGK_HEAD_DIM; d++)
        f[d] = fma(t[d], s, f[d]);
}

/* Global size: (max(Nq, Nk), B * H). fq[bh][i][D] = phi(q_i); fk[bh][j][D] = psi_j. */
__kernel void clattn_mgk_lin_features(__global const CLATTN_STYPE(Q_DT) *q, ulong q_off, ulong4 qs,
                                      __global const CLATTN_STYPE(K_DT) *k, ulong k_off, ulong4 ks,
                                      __global const CLATTN_STYPE(PI_DT) *pi, ulong p_off,
                                      ulong4 ps,
                                      uint h_count, uint nq, uint nk, __global float *fq,
                                      __global float *fk)
{
    uint n = get_global_id(0);
    uint bh = get_global_id(1);
    uint b = bh / h_count, h = bh % h_count;
    float f[MGK_HEAD_DIM], t[MGK_HEAD_DIM];
    if (n < nq) {
        for (uint d = 0; d < MGK_HEAD_DIM; d++) {
            f[d] = 0.0f;
            t[d] = CLATTN_LOAD(Q_DT, q, clattn_at(q_off, qs, b, h, n, d));
        }
        mgk_phi_add(f, t, 1.0f);
        __global float *dst = fq + ((ulong)bh * nq + n) * MGK_HEAD_DIM;
        for (uint d = 0; d < MGK_HEAD_DIM; d++)
            dst[d] = f[d];
    }
    if (n < nk) {
        for (uint d = 0; d < MGK_HEAD_DIM; d++)
            f[d] = 0.0f;
        for (uint r = 0; r < MGK_R; r++) {
            for (uint d = 0; d < MGK_HEAD_DIM; d++)
                t[d] = CLATTN_LOAD(K_DT, k, clattn_at(k_off, ks, b, (ulong)h * MGK_R + r, n, d));
            mgk_phi_add(f, t, CLATTN_LOAD(PI_DT, pi, clattn_at(p_off, ps, 0, h, r, n)));
        }
        __global float *dst = fk + ((ulong)bh * nk + n) * MGK_HEAD_DIM;
        for (uint d = 0; d < MGK_HEAD_DIM; d++)
            dst[d] = f[d];
    }
}

/* Global size: (D, B * H): work-item e keeps column e of S and all of z. Positions j < n in order:
 * S += psi_j v_j^T, z += psi_j, out_j = phi(q_j) S / (phi(q_j) . z + eps). With has_state the sums
 * start from st_s [bh][D][D] and st_z_in [bh][D], and end in st_s (each item its own column) and
 * st_z_out (item 0; a different buffer, since other items may still be reading st_z_in). */
__kernel void clattn_mgk_lin_scan(__global const float *fq, __global const float *fk,
                                  __global const CLATTN_STYPE(V_DT) *v, ulong v_off, ulong4 vs,
                                  float eps, uint h_count, uint n,
                                  __global CLATTN_STYPE(O_DT) *out, ulong o_off,
                                  ulong4 os, int has_state, __global float *st_s,
                                  __global const float *st_z_in, __global float *st_z_out)
{
    uint e = get_global_id(0);
    uint bh = get_global_id(1);
    if (e >= MGK_HEAD_DIM)
        return;
    uint b = bh / h_count, h = bh % h_count;
    float s[MGK_HEAD_DIM], z[MGK_HEAD_DIM];
    __global float *ss = st_s + (ulong)bh * MGK_HEAD_DIM * MGK_HEAD_DIM + e;
    for (uint d = 0; d < MGK_HEAD_DIM; d++) {
        s[d] = has_state ? ss[d * MGK_HEAD_DIM] : 0.0f;
        z[d] = has_state ? st_z_in[(ulong)bh * MGK_HEAD_DIM + d] : 0.0f;
    }
    __global const float *fkb = fk + (ulong)bh * n * MGK_HEAD_DIM;
    __global const float *fqb = fq + (ulong)bh * n * MGK_HEAD_DIM;
    for (uint j = 0; j < n; j++) {
        float ve = CLATTN_LOAD(V_DT, v, clattn_at(v_off, vs, b, h, j, e));
        float num = 0.0f, den = 0.0f;
        for (uint d = 0; d < MGK_HEAD_DIM; d++) {
            float f = fkb[(ulong)j * MGK_HEAD_DIM + d];
            s[d] = fma(f, ve, s[d]);
            z[d] += f;
            float x = fqb[(ulong)j * MGK_HEAD_DIM + d];
            num = fma(x, s[d], num);
            den = fma(x, z[d], den);
        }
        CLATTN_STORE(O_DT, num * clattn_safe_inv(den + eps), out, clattn_at(o_off, os, b, h, j, e));
    }
    if (has_state) {
        for (uint d = 0; d < MGK_HEAD_DIM; d++)
            ss[d * MGK_HEAD_DIM] = s[d];
        if (e == 0)
            for (uint d = 0; d < MGK_HEAD_DIM; d++)
                st_z_out[(ulong)bh * MGK_HEAD_DIM + d] = z[d];
    }
}
#endif
