/* Paged KV caches (include/clattn/kvcache.h): the append plan and the host-side table check. */
#include "internal.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct kvcache_plan {
    clattn_plan base;
    clattn_kvcache_desc desc;
    size_t kshape[4], vshape[4]; /* new rows: [B, Hk, T, D], [B, Hk, T, Dv] */
    size_t kpool[4], vpool[4];   /* [num_pages, Hk, page_size, D|Dv] */
    size_t tshape[4], bshape[4]; /* block table [1, 1, B, max_pages], per-sequence [1, 1, 1, B] */
    cl_kernel append, advance;
} kvcache_plan;

void clattn_kvcache_desc_init(clattn_kvcache_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->page_size = 16;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_kvcache_desc *in,
                               clattn_kvcache_desc *out)
{
    clattn_kvcache_desc_init(out);
    clattn_status st = clattn__desc_read(ctx, in, out, sizeof *out, sizeof *out, "kvcache desc");
    if (st != CLATTN_SUCCESS)
        return st;
    size_t ps = out->page_size;
    if (ps != 16 && ps != 32 && ps != 64 && ps != 128 && ps != 256)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "kvcache desc: page_size %zu is not 16, 32, 64, 128 or 256", ps);
    if ((st = clattn__check_flag(ctx, out->advance, "kvcache desc: advance")) != CLATTN_SUCCESS)
        return st;
    const clattn_dtype dts[4] = {out->k_pool_dtype, out->v_pool_dtype, out->k_new_dtype,
                                 out->v_new_dtype};
    static const char *const names[4] = {"kvcache desc: k_pool_dtype", "kvcache desc: v_pool_dtype",
                                         "kvcache desc: k_new_dtype", "kvcache desc: v_new_dtype"};
    for (int i = 0; i < 4; i++)
        if ((st = clattn__dtype_check(ctx, dts[i], names[i])) != CLATTN_SUCCESS)
            return st;
    return CLATTN_SUCCESS;
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const kvcache_plan *p = (const kvcache_plan *)base;
    snprintf(info->variant, sizeof info->variant, "clattn_kvcache_append");
    (void)p;
}

static const clattn__plan_ops kvcache_ops = {CLATTN_OP_KVCACHE, NULL, plan_info};

clattn_status clattn_kvcache_append_plan_create(clattn_context *ctx,
                                                const clattn_kvcache_desc *desc,
                                                const size_t new_k_shape[4],
                                                const size_t new_v_shape[4], size_t num_pages,
                                                size_t max_pages_per_seq, clattn_plan **plan)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    if (plan)
        *plan = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "kvcache plan: context is NULL");
    CLATTN_CHECK(plan && new_k_shape && new_v_shape, CLATTN_NULL_POINTER,
                 "kvcache plan: plan or a shape is NULL");
    clattn_kvcache_desc d;
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    for (int i = 0; i < 4; i++)
        CLATTN_CHECK(new_k_shape[i] && new_v_shape[i], CLATTN_INVALID_SHAPE,
                     "kvcache plan: new_k_shape/new_v_shape[%d] is 0", i);
    CLATTN_CHECK(num_pages && max_pages_per_seq, CLATTN_INVALID_SHAPE,
                 "kvcache plan: num_pages %zu and max_pages_per_seq %zu must be >= 1", num_pages,
                 max_pages_per_seq);
    for (int i = 0; i < 3; i++)
        CLATTN_CHECK(new_k_shape[i] == new_v_shape[i], CLATTN_SHAPE_MISMATCH,
                     "kvcache plan: new k [%zu, %zu, %zu, %zu] and v [%zu, %zu, %zu, %zu] differ "
                     "in B, Hk or T",
                     new_k_shape[0], new_k_shape[1], new_k_shape[2], new_k_shape[3],
                     new_v_shape[0], new_v_shape[1], new_v_shape[2], new_v_shape[3]);
    size_t tmp;
    CLATTN_CHECK(num_pages <= INT_MAX && new_k_shape[0] <= UINT_MAX / new_k_shape[1] &&
                     new_k_shape[2] <= INT_MAX && new_k_shape[3] <= UINT_MAX &&
                     new_v_shape[3] <= UINT_MAX && max_pages_per_seq <= UINT_MAX &&
                     clattn__mul_ok(max_pages_per_seq, d.page_size, &tmp) && tmp <= INT_MAX,
                 CLATTN_SIZE_OVERFLOW, "kvcache plan: sizes beyond the kernels' 32-bit indices");

    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(kvcache_plan), &kvcache_ops, &base));
    kvcache_plan *p = (kvcache_plan *)base;
    p->desc = d;
    memcpy(p->kshape, new_k_shape, sizeof p->kshape);
    memcpy(p->vshape, new_v_shape, sizeof p->vshape);
    size_t B = new_k_shape[0], hk = new_k_shape[1];
    const size_t kp[4] = {num_pages, hk, d.page_size, new_k_shape[3]};
    const size_t vp[4] = {num_pages, hk, d.page_size, new_v_shape[3]};
    const size_t ts[4] = {1, 1, B, max_pages_per_seq}, bs[4] = {1, 1, 1, B};
    memcpy(p->kpool, kp, sizeof kp);
    memcpy(p->vpool, vp, sizeof vp);
    memcpy(p->tshape, ts, sizeof ts);
    memcpy(p->bshape, bs, sizeof bs);
    base->algorithm = 0;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "append");
    snprintf(base->launch, sizeof base->launch, "page_size=%zu advance=%d dtype=%s,%s->%s,%s",
             d.page_size, d.advance, clattn_dtype_name(d.k_new_dtype),
             clattn_dtype_name(d.v_new_dtype), clattn_dtype_name(d.k_pool_dtype),
             clattn_dtype_name(d.v_pool_dtype));
    const clattn__dtype_role roles[4] = {{"KN", d.k_new_dtype},
                                         {"VN", d.v_new_dtype},
                                         {"KP", d.k_pool_dtype},
                                         {"VP", d.v_pool_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 4));
    CLATTN_FORWARD(clattn__plan_kernel(base, "kvcache.cl", "", "clattn_kvcache_append", 0,
                                       "fixed", &p->append));
    if (d.advance)
        CLATTN_FORWARD(clattn__plan_kernel(base, "kvcache.cl", "", "clattn_kvcache_advance", 0,
                                           "fixed", &p->advance));
    *plan = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_kvcache_append_plan_enqueue(
    clattn_plan *plan, const clattn_tensor *k_new, const clattn_tensor *v_new,
    const clattn_tensor *k_pool, const clattn_tensor *v_pool, const clattn_tensor *block_table,
    const clattn_tensor *positions, const clattn_tensor *new_lengths, cl_uint num_wait,
    const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(plan, CLATTN_OP_KVCACHE,
                                              "clattn_kvcache_append_plan_enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn_context *ctx = plan->ctx;
    kvcache_plan *p = (kvcache_plan *)plan;
    const clattn_kvcache_desc *d = &p->desc;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "kvcache append: wait list is NULL with num_wait %u", num_wait);
    CLATTN_CHECK(positions, CLATTN_NULL_POINTER, "kvcache append: positions is NULL");
    {
        /* positions is an input, or an output too when advanced */
        const clattn__view ins[] = {{k_new, "k_new", p->kshape, false, d->k_new_dtype},
                                    {v_new, "v_new", p->vshape, false, d->v_new_dtype},
                                    {block_table, "block_table", p->tshape, false, CLATTN_F32},
                                    {new_lengths, "new_lengths", p->bshape, true, CLATTN_F32},
                                    {d->advance ? NULL : positions, "positions", p->bshape, true,
                                     CLATTN_F32}};
        const clattn__view outs[] = {{k_pool, "k_pool", p->kpool, false, d->k_pool_dtype},
                                     {v_pool, "v_pool", p->vpool, false, d->v_pool_dtype},
                                     {d->advance ? positions : NULL, "positions", p->bshape, true,
                                      CLATTN_F32}};
        CLATTN_FORWARD(clattn__check_views(ctx, ins, 5, outs, 3));
        if (!d->advance) /* positions is read while the pools are written */
            for (int i = 0; i < 2; i++)
                CLATTN_FORWARD(clattn__check_no_alias(ctx, outs[i].t, outs[i].name, positions,
                                                      "positions", 4));
    }
    {
        const clattn_tensor *nl = new_lengths ? new_lengths : positions;
        cl_int has_nl = new_lengths != NULL;
        cl_uint hk = (cl_uint)p->kshape[1], t = (cl_uint)p->kshape[2];
        cl_uint dk = (cl_uint)p->kshape[3], dv = (cl_uint)p->vshape[3];
        cl_uint ps = (cl_uint)d->page_size, mp = (cl_uint)p->tshape[3];
        cl_uint np = (cl_uint)p->kpool[0];
        clattn__args a = {p->append, 0, CL_SUCCESS};
        clattn__arg_view(&a, k_new);
        clattn__arg_view(&a, v_new);
        clattn__arg_view(&a, k_pool);
        clattn__arg_view(&a, v_pool);
        clattn__arg_view(&a, block_table);
        clattn__arg_view(&a, positions);
        clattn__arg_view(&a, nl);
        CLATTN_ARG(&a, has_nl);
        CLATTN_ARG(&a, hk);
        CLATTN_ARG(&a, t);
        CLATTN_ARG(&a, dk);
        CLATTN_ARG(&a, dv);
        CLATTN_ARG(&a, ps);
        CLATTN_ARG(&a, mp);
        CLATTN_ARG(&a, np);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
        seq = true;
        size_t g[3] = {dk > dv ? dk : dv, t, p->kshape[0] * hk};
        CLATTN_FORWARD(clattn__seq_kernel(&s, p->append, 3, g, !d->advance, event));
        if (d->advance) {
            clattn__args b = {p->advance, 0, CL_SUCCESS};
            clattn__arg_view(&b, positions);
            clattn__arg_view(&b, nl);
            CLATTN_ARG(&b, has_nl);
            CLATTN_ARG(&b, t);
            CLATTN_CL(b.err);
            size_t gb = p->kshape[0];
            CLATTN_FORWARD(clattn__seq_kernel(&s, p->advance, 1, &gb, true, event));
        }
    }
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_kvcache_validate(clattn_context *ctx, const int32_t *block_table,
                                      size_t batch, size_t max_pages_per_seq, size_t num_pages,
                                      size_t page_size, const int32_t *lengths)
{
    if (!block_table)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "kvcache validate: block_table is NULL");
    if (!batch || !max_pages_per_seq || !num_pages)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "kvcache validate: batch %zu, max_pages_per_seq %zu and num_pages %zu "
                            "must be >= 1",
                            batch, max_pages_per_seq, num_pages);
    if (!page_size)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "kvcache validate: page_size is 0");
    for (size_t b = 0; b < batch; b++) {
        size_t used = max_pages_per_seq;
        if (lengths) {
            if (lengths[b] < 0)
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "kvcache validate: sequence %zu has length %d", b,
                                    (int)lengths[b]);
            used = clattn__div_up((size_t)lengths[b], page_size);
            if (used > max_pages_per_seq)
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "kvcache validate: sequence %zu holds %d tokens: %zu pages of "
                                    "%zu, but the table has %zu columns",
                                    b, (int)lengths[b], used, page_size, max_pages_per_seq);
        }
        for (size_t j = 0; j < used; j++) {
            int32_t id = block_table[b * max_pages_per_seq + j];
            if (id < 0 || (size_t)id >= num_pages)
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "kvcache validate: sequence %zu, page %zu: id %d outside "
                                    "[0, %zu)",
                                    b, j, (int)id, num_pages);
        }
    }
    return CLATTN_SUCCESS;
}
