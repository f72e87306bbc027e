/* Paged KV cache maintenance (include/clattn/kvcache.h). Element types: KN_DT / VN_DT (new rows),
 * KP_DT / VP_DT (pools). A page id outside [0, num_pages), a position beyond the table's row or a
 * negative start position writes nothing: the pools are never touched outside their views. */
#ifndef KN_DT
#define KN_DT 0
#endif
#ifndef VN_DT
#define VN_DT 0
#endif
#ifndef KP_DT
#define KP_DT 0
#endif
#ifndef VP_DT
#define VP_DT 0
#endif

/* Rows of sequence b to append: new_lengths[b] clamped to [0, t_max], or t_max. */
inline int kv_rows(__global const int *nl, ulong nl_off, ulong nl_st, int has_nl, ulong b,
                   uint t_max)
{
    int n = nl[nl_off + b * nl_st]; /* nl is a valid int32 view even without new lengths */
    return has_nl ? clamp(n, 0, (int)t_max) : (int)t_max;
}

/* Global [max(D, Dv), T, B * Hk]: one work-item per element d of row t of (b, h), for K and V.
 * Every argument is read before any branch (rusticl on llvmpipe mis-compiles kernel-argument loads
 * inside divergent control flow: "Treating load_kernel_arg in control flow as uniform"). */
__kernel void clattn_kvcache_append(
    __global const CLATTN_STYPE(KN_DT) *kn, ulong kn_off, ulong4 kn_st,
    __global const CLATTN_STYPE(VN_DT) *vn, ulong vn_off, ulong4 vn_st,
    __global CLATTN_STYPE(KP_DT) *kp, ulong kp_off, ulong4 kp_st,
    __global CLATTN_STYPE(VP_DT) *vp, ulong vp_off, ulong4 vp_st,
    __global const int *table, ulong tb_off, ulong4 tb_st,
    __global const int *pos, ulong pos_off, ulong4 pos_st,
    __global const int *nl, ulong nl_off, ulong4 nl_st, int has_nl,
    uint hk, uint t_max, uint d, uint dv, uint page_size, uint max_pages, uint num_pages)
{
    const uint e = get_global_id(0), t = get_global_id(1);
    const uint bh = get_global_id(2), b = bh / hk, h = bh % hk;
    const ulong4 kns = kn_st, vns = vn_st, kps = kp_st, vps = vp_st;
    const ulong kno = kn_off, vno = vn_off, kpo = kp_off, vpo = vp_off;
    const uint ud = d, udv = dv, ups = page_size, ump = max_pages, unp = num_pages;
    const int p0 = pos[pos_off + b * pos_st.s3];
    const int rows = kv_rows(nl, nl_off, nl_st.s3, has_nl, b, t_max);
    /* unsigned 64-bit positions: p0 + t never wraps (p0 <= INT_MAX, t < 2^31) */
    const ulong p = (ulong)max(p0, 0) + t, col = p / ups;
    const bool live = p0 >= 0 && (int)t < rows && col < ump;
    const int id = live ? table[tb_off + b * tb_st.s2 + col * tb_st.s3] : -1;
    const ulong slot = p % ups;
    if (id >= 0 && (uint)id < unp) {
        if (e < ud) {
            float x = CLATTN_LOAD(KN_DT, kn, clattn_at(kno, kns, b, h, t, e));
            CLATTN_STORE(KP_DT, x, kp, clattn_at(kpo, kps, (ulong)id, h, slot, e));
        }
        if (e < udv) {
            float x = CLATTN_LOAD(VN_DT, vn, clattn_at(vno, vns, b, h, t, e));
            CLATTN_STORE(VP_DT, x, vp, clattn_at(vpo, vps, (ulong)id, h, slot, e));
        }
    }
}

/* positions[b] += rows appended (sequences with a negative position stay as they are). */
__kernel void clattn_kvcache_advance(__global int *pos, ulong pos_off, ulong4 pos_st,
                                     __global const int *nl, ulong nl_off, ulong4 nl_st,
                                     int has_nl, uint t_max)
{
    const ulong b = get_global_id(0);
    const ulong at = pos_off + b * pos_st.s3;
    const int p0 = pos[at];
    const long np = (long)p0 + kv_rows(nl, nl_off, nl_st.s3, has_nl, b, t_max);
    pos[at] = p0 < 0 ? p0 : (np > INT_MAX ? INT_MAX : (int)np);
}
