//@include seq_select.clh
/* Batched decoding states (host side lib/ops/linear_state.c): one launch per decoding step of a
 * linear-attention state for the whole batch, the per-sequence position counter, and the fills of
 * a subset of sequences (reset by a device index list).
 *
 * Sequence selection (clattn_seq_select, include/clattn/linear.h): a work-item slot si stands for
 * sequence clattn_seq_pick(si, ...): kind 0 every sequence (si), 1 a uint8 mask [B] and 2 an int32
 * mask [B] (si where the mask is nonzero), 3 an int32 index list (its si-th entry). Slots that
 * stand for no sequence (inactive, or a list entry outside 0..B-1) do nothing. `off` counts
 * elements of the selection's type. */

/* Element types of the caller's tensors (-DQ_DT=... from the plan; absent: float32). */
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

/* exp(a - b) for log-scales where a may be -inf (an empty state): 0 then (linear.cl's). */
inline float states_rescale(float a, float b)
{
    return isinf(a) && a < 0.0f ? 0.0f : exp(a - b);
}

#ifndef STATES_WG
#define STATES_WG 64 /* the largest work-group the step is launched with */
#endif

/* The work-group's sum (max when is_max) of each item's v, through red[0..L): every item gets
 * it. Two barriers, so red may be reused right after. */
inline float states_reduce(float v, int is_max, __local float *red)
{
    uint lid = get_local_id(0), l = get_local_size(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    float r = is_max ? -INFINITY : 0.0f;
    for (uint i = 0; i < l; i++)
        r = is_max ? fmax(r, red[i]) : r + red[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* phi(x) of one row x[b, h, 0, :] into f[0..mp) (padding 0) by the work-group's items (feature
 * r by item r mod L), returning its log-scale to every item: 0 for the element-wise maps (0 elu
 * + 1, 1 relu, 2 identity), for FAVOR+ (3) max_r u_r with u_r = w_r . x' - |x'|^2 / 2,
 * x' = x * xs, f_r = exp(u_r - max) * fs (blocks_features.cl). Ends with a barrier (f visible to
 * the whole group). */
#define STATES_DEF_FEAT(R, DT)                                                                   \
    inline float states_feat_##R(__global const CLATTN_STYPE(DT) *x, ulong off, ulong4 st,      \
                                 uint b, uint h, uint d, uint m, uint mp, int fmap,             \
                                 __global const float *wt, float xs, float fs,                  \
                                 __global float *f, __local float *red)                         \
    {                                                                                            \
        uint lid = get_local_id(0), l = get_local_size(0);                                      \
        int favor = fmap == 3;                                                                   \
        float hn = 0.0f, pm = -INFINITY;                                                         \
        for (uint t = 0; favor && mp && t < d; t++) {                                            \
            float v = CLATTN_LOAD(DT, x, clattn_at(off, st, b, h, 0, t)) * xs;                   \
            hn += v * v;                                                                         \
        }                                                                                        \
        for (uint r = lid; r < mp; r += l) {                                                     \
            float u;                                                                             \
            if (!favor) {                                                                        \
                float v = r < d ? CLATTN_LOAD(DT, x, clattn_at(off, st, b, h, 0, r)) : 0.0f;     \
                u = fmap == 0 ? (v < 0.0f ? exp(v) : v + 1.0f) : fmap == 1 ? fmax(v, 0.0f) : v;  \
                u = r < d ? u : 0.0f;                                                            \
            } else if (r < m) {                                                                  \
                u = 0.0f;                                                                        \
                for (uint t = 0; t < d; t++)                                                     \
                    u += wt[(ulong)t * m + r] *                                                  \
                         (CLATTN_LOAD(DT, x, clattn_at(off, st, b, h, 0, t)) * xs);              \
                u -= 0.5f * hn;                                                                  \
                pm = fmax(pm, u);                                                                \
            } else {                                                                             \
                u = -INFINITY;                                                                   \
            }                                                                                    \
            f[r] = u;                                                                            \
        }                                                                                        \
        float mx = states_reduce(pm, 1, red); /* every item, every map: uniform barriers */      \
        for (uint r = lid; favor && r < mp; r += l)                                              \
            f[r] = exp(f[r] - mx) * fs; /* exp(-inf) = 0 for the padding */                      \
        barrier(CLK_GLOBAL_MEM_FENCE);                                                           \
        return favor ? mx : 0.0f;                                                                \
    }
STATES_DEF_FEAT(q, Q_DT)
STATES_DEF_FEAT(k, K_DT)

/* One decoding step of a batched linear-attention state, every form: one work-group per
 * (selected sequence, key head), its L items over the value columns (column c < dv by item
 * c mod L; the z column DVP by item dv mod L), so the state rows are read coalesced. phi(k) and
 * the values go to the group's scratch rows (fk [BHk][MP], vp [BHk][DVP]), then the state update
 * of linear.cl's clattn_linear_step_update + step_commit (momentum 0 none, 1 fixed: sa = A,
 * sb = B) or of clattn_linear_adaptive for one key (2: S, P, S_{i-1}, U_{i-1}, token count st;
 * its norms reduced over the group), then out[b, h * group + g, 0, :] for the `group` query heads
 * sharing the key head (phi(q) into fq [BHk * group][MP]) as clattn_linear_out writes a step's
 * rows, and pos[b] += 1 (by the key head 0 group). Unselected sequences keep their state and
 * position, and their out rows are not written. Global size (slots * heads * L), local L <=
 * STATES_WG. */
__kernel void clattn_linear_state_step(
    __global const CLATTN_STYPE(Q_DT) *q_, ulong q_off_, ulong4 q_st_,
    __global const CLATTN_STYPE(K_DT) *k_, ulong k_off_, ulong4 k_st_,
    __global const CLATTN_STYPE(V_DT) *v_, ulong v_off_, ulong4 v_st_,
    __global CLATTN_STYPE(O_DT) *o_, ulong o_off_, ulong4 o_st_, uint heads_, uint group_,
    uint d_, uint m_, uint mp_, uint dv_, uint dvp_, int fmap_, __global const float *wt_,
    float xs_, float fs_, int mom_, float mu_, float coef_, float eta_, float log_eps_,
    __global float *sa_, __global float *sb_, __global float *s1_, __global float *u1_,
    __global float *sr_, __global uint *st_, __global uint *pos_, __global float *fk_,
    __global float *vp_, __global float *fq_, int kind_, __global const uchar *sel_,
    ulong sel_off_, uint nb_)
{
    /* Every argument into a private first (rusticl: argument loads in divergent code). */
    __global const CLATTN_STYPE(Q_DT) *qx = q_;
    __global const CLATTN_STYPE(K_DT) *kx = k_;
    __global const CLATTN_STYPE(V_DT) *vx = v_;
    __global CLATTN_STYPE(O_DT) *ox = o_;
    ulong q_off = q_off_, k_off = k_off_, v_off = v_off_, o_off = o_off_;
    ulong4 q_st = q_st_, k_st = k_st_, v_st = v_st_, o_st = o_st_;
    uint heads = heads_, group = group_, d = d_, m = m_, mp = mp_, dv = dv_, dvp = dvp_;
    int fmap = fmap_, mom = mom_, kind = kind_, form = mom_;
    __global const float *wt = wt_;
    float xs = xs_, fs = fs_, mu = mu_, coef = coef_, eta = eta_, log_eps = log_eps_;
    __global float *sa = sa_, *sb = sb_, *s1 = s1_, *u1 = u1_, *sr = sr_;
    __global uint *stc = st_, *pos = pos_;
    __global float *fkb = fk_, *vpb = vp_, *fqb = fq_;
    __global const uchar *sel = sel_;
    ulong sel_off = sel_off_;
    uint nb = nb_;
    __local float red[2 * STATES_WG];

    uint grp = get_group_id(0), si = grp / heads, h = grp % heads;
    uint lid = get_local_id(0), l = get_local_size(0);
    uint b = clattn_seq_pick(si, kind, sel, sel_off, nb);
    /* An unselected group runs every barrier with empty loops and writes nothing (no early
     * return: PoCL wants every barrier reached). */
    int live = b < nb;
    b = live ? b : 0u;
    uint ncol = live ? dv + 1u : 0u, lmp = live ? mp : 0u, ldv = live ? dv : 0u;
    uint bh = b * heads + h, dw = dvp + 16;
    ulong base = (ulong)bh * mp * dw;
    __global float *fk = fkb + (ulong)bh * mp, *vr = vpb + (ulong)bh * dvp;
    float r = live ? sr[bh] : 0.0f;
    uint t = live && mom == 2 ? stc[bh] : 0u;
    for (uint e = lid; live && e < dvp; e += l)
        vr[e] = e < dv ? CLATTN_LOAD(V_DT, vx, clattn_at(v_off, v_st, b, h, 0, e)) : 0.0f;
    float lk = states_feat_k(kx, k_off, k_st, b, h, d, m, lmp, fmap, wt, xs, fs, fk, red);
    float rn = fmax(r, lk), so = states_rescale(r, rn), sn = exp(lk - rn);
    __global float *S = sa + base, *B = sb + base;
    /* Columns c = lid, lid + L, ... <= dv; c == dv stands for the z column DVP. */
    float nu = 0.0f, nd = 0.0f;
    if (mom != 2) {
        for (uint c = lid; c < ncol; c += l) {
            uint e = c < dv ? c : dvp;
            float ve = c < dv ? vr[c] : 1.0f;
            for (uint mm = 0; mm < mp; mm++) {
                ulong at = (ulong)mm * dw + e;
                float x = fk[mm] * sn * ve;
                S[at] = S[at] * so + x;
                if (mom == 1 && c < dv)
                    B[at] = mu * B[at] * so + x;
            }
        }
    } else {
        __global float *P = B, *S1 = s1 + base, *U1 = u1 + base;
        for (uint c = lid; c < ncol; c += l) {
            uint e = c < dv ? c : dvp;
            for (uint mm = 0; mm < mp; mm++) {
                ulong at = (ulong)mm * dw + e;
                if (so != 1.0f) {
                    S[at] *= so;
                    if (c < dv) {
                        P[at] *= so;
                        S1[at] *= so;
                        U1[at] *= so;
                    }
                }
                if (c < dv) {
                    float du = fk[mm] * sn * vr[c] - U1[at], ds = S[at] - S1[at];
                    nu += du * du;
                    nd += ds * ds;
                }
            }
        }
    }
    /* The adaptive norms (every form runs the reductions: uniform barriers). */
    nu = states_reduce(nu, 0, red);
    nd = states_reduce(nd, 0, red);
    if (mom == 2) {
        __global float *P = B, *S1 = s1 + base, *U1 = u1 + base;
        float am = 0.0f;
        if (t > 0) {
            if (nd > 0.0f) {
                float g = 1.0f - sqrt(eta * sqrt(nu) / sqrt(nd));
                am = clamp(g * g, 0.0f, 0.9999f);
            } else {
                am = 0.9999f;
            }
        }
        for (uint c = lid; c < ncol; c += l)
            for (uint mm = 0; mm < mp; mm++) {
                float fm = fk[mm] * sn;
                if (c == dv) {
                    S[(ulong)mm * dw + dvp] += fm;
                    continue;
                }
                ulong at = (ulong)mm * dw + c;
                float u = fm * vr[c];
                float p = t > 0 ? am * P[at] - eta * u : -u;
                P[at] = p;
                S1[at] = S[at];
                S[at] -= p;
                U1[at] = u;
            }
        mom = 0; /* the output reads S itself */
    }
    barrier(CLK_GLOBAL_MEM_FENCE); /* the z column, written by one item, read by all */
    for (uint g = 0; g < group; g++) {
        uint hq = h * group + g;
        __global float *fq = fqb + ((ulong)bh * group + g) * mp;
        float lq = states_feat_q(qx, q_off, q_st, b, hq, d, m, lmp, fmap, wt, xs, fs, fq, red);
        float den = clattn_eps_scaled(log_eps, lq + rn);
        for (uint mm = 0; mm < lmp; mm++)
            den += fq[mm] * S[(ulong)mm * dw + dvp];
        float inv = clattn_safe_inv(den);
        for (uint c = lid; c < ldv; c += l) {
            float acc = 0.0f, accb = 0.0f;
            for (uint mm = 0; mm < mp; mm++) {
                acc += fq[mm] * S[(ulong)mm * dw + c];
                if (mom == 1)
                    accb += fq[mm] * B[(ulong)mm * dw + c];
            }
            float num = mom == 1 ? coef * (acc - mu * accb) : acc;
            CLATTN_STORE(O_DT, num * inv, ox, clattn_at(o_off, o_st, b, hq, 0, c));
        }
    }
    barrier(CLK_GLOBAL_MEM_FENCE); /* every item read r and t before they change */
    if (live && lid == 0) {
        sr[bh] = rn;
        if (form == 2)
            stc[bh] = t + 1u;
        if (h == 0)
            pos[b] += 1u;
    }
}

/* x[s * per + t] = value (as bits: 0 or -inf floats, 0 counters) for every t < per of each
 * selected sequence s. Global size (per, slots). */
__kernel void clattn_states_fill(__global uint *x_, ulong per_, uint value_, int kind_,
                                 __global const uchar *sel_, ulong sel_off_, uint nb_)
{
    __global uint *x = x_;
    ulong per = per_;
    uint value = value_, nb = nb_;
    int kind = kind_;
    __global const uchar *sel = sel_;
    ulong sel_off = sel_off_;
    uint t = get_global_id(0), si = get_global_id(1);
    uint b = clattn_seq_pick(si, kind, sel, sel_off, nb);
    if (b >= nb)
        return;
    x[(ulong)b * per + t] = value;
}

/* pos[b] += n for every sequence (a prefill of n tokens). Global size (B). */
__kernel void clattn_states_pos_add(__global uint *pos, uint n)
{
    uint nn = n;
    pos[get_global_id(0)] += nn;
}
