/* clattn_softmax_merge_enqueue (include/clattn/softmax.h): out, lse <- the lse-weighted merge of
 * (out, lse) and (part_out, part_lse), per row. O_DT / P_DT: the element types of out and
 * part_out (common.clh codes). Global (Nq, B * Hq); each work-item merges one row of Dv values. */
#ifndef O_DT
#define O_DT 0
#endif
#ifndef P_DT
#define P_DT 0
#endif

__kernel void clattn_softmax_merge(__global CLATTN_STYPE(O_DT) *out, ulong o_off, ulong4 o_st,
                                   __global float *lse, ulong l_off, ulong4 l_st,
                                   __global const CLATTN_STYPE(P_DT) *part, ulong p_off,
                                   ulong4 p_st, __global const float *plse, ulong pl_off,
                                   ulong4 pl_st, uint hq, uint dv)
{
    const ulong4 os = o_st, ls = l_st, ps = p_st, pls = pl_st;
    const uint i = get_global_id(0), bh = get_global_id(1), b = bh / hq, h = bh % hq;
    const ulong la_at = clattn_at(l_off, ls, b, h, i, 0);
    const float la = lse[la_at], lb = plse[clattn_at(pl_off, pls, b, h, i, 0)];
    const float m = fmax(la, lb);
    /* -inf on both sides: zeros and -inf (the weights would be NaN) */
    const bool none = m == -INFINITY;
    const float ea = none ? 0.0f : exp(la - m), eb = none ? 0.0f : exp(lb - m);
    const float tot = ea + eb;
    const float wa = none ? 0.0f : ea / tot, wb = none ? 0.0f : eb / tot;
    for (uint d = 0; d < dv; d++) {
        const ulong at = clattn_at(o_off, os, b, h, i, d);
        /* a weight of 0 must not turn a row's stale non-finite value into NaN: select, not 0 * x */
        float xa = CLATTN_LOAD(O_DT, out, at), xb = CLATTN_LOAD(P_DT, part, clattn_at(p_off, ps, b, h, i, d));
        float r = (wa > 0.0f ? wa * xa : 0.0f) + (wb > 0.0f ? wb * xb : 0.0f);
        CLATTN_STORE(O_DT, r, out, at);
    }
    lse[la_at] = none ? -INFINITY : m + log(tot);
}
