/* clattn_softmax_merge_enqueue: the lse merge of two key blocks' partial results (issue 18's device
 * groups and ring attention; include/clattn/softmax.h). A plan-less entry point: the program comes
 * from the context's cache, the kernel object is made per call (cheap next to a block's attention). */
#include <limits.h>
#include <stdio.h>

#include "../core/internal.h"
#include "clattn/softmax.h"

clattn_status clattn_softmax_merge_enqueue(clattn_context *ctx, const clattn_tensor *out,
                                           const clattn_tensor *lse, const clattn_tensor *part_out,
                                           const clattn_tensor *part_lse, cl_uint num_wait,
                                           const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel k = NULL;
    clattn__seq s;
    bool seq = false;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "softmax merge: context is NULL");
    CLATTN_CHECK(out && lse && part_out && part_lse, CLATTN_NULL_POINTER,
                 "softmax merge: out, lse, part_out or part_lse is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "softmax merge: wait list is NULL with num_wait %u", num_wait);
    const size_t *sh = out->shape;
    const size_t lsh[4] = {sh[0], sh[1], sh[2], 1};
    for (int i = 0; i < 4; i++)
        CLATTN_CHECK(sh[i] > 0, CLATTN_INVALID_SHAPE,
                     "softmax merge: out shape [%zu, %zu, %zu, %zu] has a zero size", sh[0], sh[1],
                     sh[2], sh[3]);
    CLATTN_CHECK(sh[2] <= UINT_MAX && sh[3] <= UINT_MAX && sh[1] <= UINT_MAX &&
                     sh[0] <= UINT_MAX / sh[1],
                 CLATTN_SIZE_OVERFLOW, "softmax merge: sizes beyond the kernel's 32-bit indices");
    {
        const clattn__view ins[] = {{part_out, "part_out", sh, false, part_out->dtype},
                                    {part_lse, "part_lse", lsh, false, CLATTN_F32}};
        const clattn__view outs[] = {{out, "out", sh, false, out->dtype},
                                     {lse, "lse", lsh, false, CLATTN_F32}};
        CLATTN_FORWARD(clattn__dtype_check(ctx, out->dtype, "softmax merge: out dtype"));
        CLATTN_FORWARD(clattn__dtype_check(ctx, part_out->dtype, "softmax merge: part_out dtype"));
        CLATTN_FORWARD(clattn__check_views(ctx, ins, 2, outs, 2));
    }
    {
        const clattn__dtype_role roles[2] = {{"O", out->dtype}, {"P", part_out->dtype}};
        char defs[64] = "";
        clattn__dtype_defines(defs, sizeof defs, roles, 2);
        cl_program prog = NULL;
        CLATTN_FORWARD(clattn__program_get(ctx, "softmax_merge.cl", defs, &prog));
        CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_softmax_merge", &k));
        cl_uint hq = (cl_uint)sh[1], dv = (cl_uint)sh[3];
        clattn__args a = {k, 0, CL_SUCCESS};
        clattn__arg_view(&a, out);
        clattn__arg_view(&a, lse);
        clattn__arg_view(&a, part_out);
        clattn__arg_view(&a, part_lse);
        CLATTN_ARG(&a, hq);
        CLATTN_ARG(&a, dv);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
        seq = true;
        size_t g[2] = {sh[2], sh[0] * sh[1]};
        CLATTN_FORWARD(clattn__seq_kernel(&s, k, 2, g, true, event));
    }
cleanup:
    if (seq)
        clattn__seq_end(&s);
    if (k)
        clReleaseKernel(k);
    return status;
}
