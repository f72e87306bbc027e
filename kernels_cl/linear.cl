/* Linear (kernelized) attention: phi(q) . phi(k) in place of softmax, so keys are summed into a
 * D x (Dv + 1) state per (batch, head): columns 0..Dv-1 hold S = sum phi(k) v^T and column Dv
 * holds z = sum phi(k). Keeping z as an extra column lets one kernel build both.
 *
 * Causal form, chunk-parallel: clattn_linear_chunk_state sums each chunk of LIN_CHUNK positions,
 * clattn_linear_scan turns the chunk sums into exclusive prefix sums (plus an optional initial
 * state), and clattn_linear_out adds, for each query row, the masked part of its own chunk. One
 * work-item per state element or per output row, no __local memory and no barriers: on CPUs
 * (PoCL) barriers are costly, and these loops vectorise across work-items.
 *
 * Private arrays are sized by the largest head dim and the chunk, fixed at build time so one
 * program serves every shape. */

#ifndef LIN_MAX_D
#define LIN_MAX_D 256
#endif
#ifndef LIN_CHUNK
#define LIN_CHUNK 64
#endif

/* Feature maps, numbered as clattn_feature_map. */
#define LIN_ELU 0
#define LIN_RELU 1

inline float clattn_linear_phi(float x, int fmap)
{
    if (fmap == LIN_ELU)
        return x > 0.0f ? x + 1.0f : exp(x); /* elu(x) + 1 without the cancellation of exp-1+1 */
    if (fmap == LIN_RELU)
        return fmax(x, 0.0f);
    return x;
}

/* cs[g][d][e] for g = bh * nchunks + c: the sum over the positions of chunk c of phi(k_jd) times
 * v_je (e < Dv) or 1 (e == Dv). Global size (Dv + 1, D, BH * nchunks). */
__kernel void clattn_linear_chunk_state(__global const float *k, ulong k_off, ulong4 k_st,
                                        __global const float *v, ulong v_off, ulong4 v_st,
                                        uint heads, uint n, uint d_k, uint d_v, uint chunk,
                                        uint nchunks, int fmap, __global float *cs)
{
    uint e = get_global_id(0), d = get_global_id(1), g = get_global_id(2);
    uint bh = g / nchunks, c = g % nchunks, b = bh / heads, h = bh % heads;
    uint j0 = c * chunk, j1 = min(j0 + chunk, n);
    float s = 0.0f;
    for (uint j = j0; j < j1; j++) {
        float pk = clattn_linear_phi(k[clattn_at(k_off, k_st, b, h, j, d)], fmap);
        s += e < d_v ? pk * v[clattn_at(v_off, v_st, b, h, j, e)] : pk;
    }
    cs[((ulong)g * d_k + d) * (d_v + 1) + e] = s;
}

/* Exclusive scan over the chunks of each (bh, d, e): cs[c] becomes init + sum of chunks before c
 * (when write_prefix), and fin receives init + the sum of every chunk (when has_fin). init and fin
 * are [BH][D][Dv + 1] and may be the same buffer: each work-item reads its element before
 * writing it. Global size (Dv + 1, D, BH). */
__kernel void clattn_linear_scan(__global float *cs, uint nchunks, uint d_k, uint d_v,
                                 __global const float *init, int has_init, __global float *fin,
                                 int has_fin, int write_prefix)
{
    uint e = get_global_id(0), d = get_global_id(1), bh = get_global_id(2);
    ulong w = d_v + 1, one = ((ulong)bh * d_k + d) * w + e;
    ulong first = ((ulong)bh * nchunks * d_k + d) * w + e, step = (ulong)d_k * w;
    float run = has_init ? init[one] : 0.0f;
    for (uint c = 0; c < nchunks; c++) {
        ulong at = first + c * step;
        float t = cs[at];
        if (write_prefix)
            cs[at] = run;
        run += t;
    }
    if (has_fin)
        fin[one] = run;
}

/* One output row per work-item: out_i = (phi(q_i)^T S + sum_j a_j v_j) / (phi(q_i)^T z +
 * sum_j a_j + eps), a_j = phi(q_i) . phi(k_j), where S, z is the carried state of the row's chunk
 * and j runs over the row's chunk up to i (causal), or S, z is the whole state and no j
 * (non-causal, decoding steps). Global size (Nq, BH). */
__kernel void clattn_linear_out(__global const float *q, ulong q_off, ulong4 q_st,
                                __global const float *k, ulong k_off, ulong4 k_st,
                                __global const float *v, ulong v_off, ulong4 v_st,
                                __global float *out, ulong o_off, ulong4 o_st, uint heads, uint d_k,
                                uint d_v, __global const float *st, uint nchunks, int causal,
                                int fmap, float eps)
{
    uint i = get_global_id(0), bh = get_global_id(1), b = bh / heads, h = bh % heads;
    ulong w = d_v + 1;
    uint c = causal ? i / LIN_CHUNK : 0;
    __global const float *s = st + ((ulong)bh * nchunks + c) * d_k * w;
    float pq[LIN_MAX_D], a[LIN_CHUNK];
    float den = 0.0f;
    for (uint d = 0; d < d_k; d++) {
        pq[d] = clattn_linear_phi(q[clattn_at(q_off, q_st, b, h, i, d)], fmap);
        den += pq[d] * s[d * w + d_v];
    }
    uint j0 = c * LIN_CHUNK, nj = causal ? i - j0 + 1 : 0;
    for (uint t = 0; t < nj; t++) {
        float dot = 0.0f;
        for (uint d = 0; d < d_k; d++)
            dot += pq[d] * clattn_linear_phi(k[clattn_at(k_off, k_st, b, h, j0 + t, d)], fmap);
        a[t] = dot;
        den += dot;
    }
    float inv = 1.0f / (den + eps);
    for (uint e = 0; e < d_v; e++) {
        float acc = 0.0f;
        for (uint d = 0; d < d_k; d++)
            acc += pq[d] * s[d * w + e];
        for (uint t = 0; t < nj; t++)
            acc += a[t] * v[clattn_at(v_off, v_st, b, h, j0 + t, e)];
        out[clattn_at(o_off, o_st, b, h, i, e)] = acc * inv;
    }
}

/* A decoding step's state update: st[bh][d][e] += phi(k_d) * (v_e, or 1 for e == Dv), k and v of
 * length 1. Global size (Dv + 1, D, BH). */
__kernel void clattn_linear_step_update(__global const float *k, ulong k_off, ulong4 k_st,
                                        __global const float *v, ulong v_off, ulong4 v_st,
                                        uint heads, uint d_k, uint d_v, int fmap,
                                        __global float *st)
{
    uint e = get_global_id(0), d = get_global_id(1), bh = get_global_id(2);
    uint b = bh / heads, h = bh % heads;
    float pk = clattn_linear_phi(k[clattn_at(k_off, k_st, b, h, 0, d)], fmap);
    float x = e < d_v ? pk * v[clattn_at(v_off, v_st, b, h, 0, e)] : pk;
    st[((ulong)bh * d_k + d) * (d_v + 1) + e] += x;
}
