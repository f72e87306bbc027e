/* The naive attention baseline's softmax: scores S [Nq][Nk] of one (batch, head) were written by
 * a CLBlast GEMM; this kernel masks, scales and normalises each row in place and writes the
 * row's log-sum-exp. One work-group per row; WG_SIZE work-items stride over the keys. */

#ifndef WG_SIZE
#define WG_SIZE 64
#endif

__kernel __attribute__((reqd_work_group_size(WG_SIZE, 1, 1))) void
clattn_naive_softmax(__global float *s, ulong s_off, uint nq, uint nk, float scale, int causal,
                     __global const int *key_lengths, ulong kl_off, int has_kl, uint batch,
                     __global float *lse, ulong l_off, int has_lse)
{
    long kl = nk;
    if (has_kl) {
        long x = key_lengths[kl_off + batch];
        kl = x < 0 ? 0 : (x > (long)nk ? (long)nk : x);
    }
    __local float red[WG_SIZE];
    uint row = get_group_id(0);
    uint lid = get_local_id(0);
    __global float *sr = s + s_off + (ulong)row * nk;
    long lim = clattn_visible(row, nq, nk, kl, causal);

    float mx = -INFINITY;
    for (uint j = lid; j < lim; j += WG_SIZE)
        mx = fmax(mx, sr[j] * scale);
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint w = WG_SIZE / 2; w > 0; w /= 2) {
        if (lid < w)
            red[lid] = fmax(red[lid], red[lid + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);

    float sum = 0.0f;
    for (uint j = lid; j < lim; j += WG_SIZE)
        sum += exp(sr[j] * scale - mx);
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint w = WG_SIZE / 2; w > 0; w /= 2) {
        if (lid < w)
            red[lid] += red[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    sum = red[0];
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (uint j = lid; j < nk; j += WG_SIZE)
        sr[j] = j < lim ? exp(sr[j] * scale - mx) * inv : 0.0f;
    if (has_lse && lid == 0)
        lse[l_off + row] = sum > 0.0f ? mx + log(sum) : -INFINITY;
}
