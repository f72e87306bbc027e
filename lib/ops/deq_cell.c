/* The built-in DEQ attention cell (include/clattn/deq.h):
 *   f(z, x) = LayerNorm(z + Attention(z Wq, z Wk, z Wv) Wo + x)
 * One CLBlast GEMM for [q k v] = z [Wq Wk Wv] (the three weights copied once into a [D, 3D]
 * matrix), the attention plan on strided [B, H, N, D/H] views of q, k and v (no head split
 * copies), one GEMM for the projection, and one kernel for the residual sum and LayerNorm. Every
 * plan, kernel and intermediate is made by clattn_deq_cell_create. */
#include "deq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct cell_plan {
    clattn__deq_head head;
    clattn_deq_cell_desc desc;
    size_t B, N, D, H;
    clattn__deq_launch launch;
    clattn_plan *attn;    /* softmax or linear plan, owned */
    cl_kernel ln;
    cl_mem wqkv, wo;      /* [D, 3D] and [D, D] copies */
    cl_mem qkv, o, a;     /* [B N, 3D], [B N, D], [B N, D] */
    clattn_tensor x;      /* the input, set by clattn_deq_cell_set_input */
    bool has_x;
} cell_plan;

static void cell_release(clattn_plan *base) { clattn_plan_destroy(((cell_plan *)base)->attn); }
static void cell_info(const clattn_plan *base, clattn_plan_info *info)
{
    (void)base;
    snprintf(info->variant, sizeof info->variant, "clattn_deq_add_ln");
}
static const clattn__plan_ops cell_ops = {CLATTN_OP_DEQ, cell_release, cell_info};

void clattn_deq_cell_desc_init(clattn_deq_cell_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->heads = 1;
    desc->causal = 0;
    desc->attention = CLATTN_DEQ_CELL_SOFTMAX;
}

static clattn_status check_weight(clattn_context *ctx, cl_mem w, size_t D, const char *what)
{
    if (!w)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "deq cell: %s is NULL", what);
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(w, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "deq cell: clGetMemObjectInfo(%s) failed",
                            what);
    if (size < D * D * sizeof(float))
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL,
                            "deq cell: %s holds %zu bytes, [%zu, %zu] floats need %zu", what,
                            size, D, D, D * D * sizeof(float));
    return CLATTN_SUCCESS;
}

/* [B, H, N, dh] view of column block `col` of a [B N, width] row-major matrix. */
static clattn_tensor head_view(cl_mem m, const cell_plan *c, size_t width, size_t col)
{
    size_t dh = c->D / c->H;
    clattn_tensor t = clattn_tensor_make(m, c->B, c->H, c->N, dh);
    t.offset = col;
    t.strides[0] = c->N * width;
    t.strides[1] = dh;
    t.strides[2] = width;
    t.strides[3] = 1;
    return t;
}

clattn_status clattn_deq_cell_create(clattn_context *ctx, const clattn_deq_cell_desc *desc,
                                     size_t batch, size_t n, size_t d, cl_mem wq, cl_mem wk,
                                     cl_mem wv, cl_mem wo, clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    cl_event ev = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "deq cell: ctx is NULL");
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "deq cell: cell is required");
    *out = NULL;
    clattn_deq_cell_desc dd;
    clattn_deq_cell_desc_init(&dd);
    CLATTN_FORWARD(clattn__desc_read(ctx, desc, &dd, sizeof dd, sizeof dd, "deq cell desc"));
    CLATTN_FORWARD(clattn__check_flag(ctx, dd.causal, "deq cell desc: causal"));
    CLATTN_CHECK(dd.attention == CLATTN_DEQ_CELL_SOFTMAX || dd.attention == CLATTN_DEQ_CELL_LINEAR,
                 CLATTN_INVALID_ARGUMENT, "deq cell desc: unknown attention %d",
                 (int)dd.attention);
    CLATTN_CHECK(batch >= 1 && n >= 1 && d >= 1, CLATTN_INVALID_SHAPE,
                 "deq cell: x [%zu, %zu, %zu] has a zero size", batch, n, d);
    size_t rows;
    CLATTN_CHECK(clattn__mul_ok(batch, n, &rows) && rows <= ((size_t)1 << 31) / (3 * d) &&
                     d <= 65536,
                 CLATTN_INVALID_SHAPE, "deq cell: x [%zu, %zu, %zu] is too large", batch, n, d);
    CLATTN_CHECK(dd.heads >= 1 && d % dd.heads == 0, CLATTN_INVALID_ARGUMENT,
                 "deq cell desc: heads %u must divide D = %zu", dd.heads, d);
    CLATTN_CHECK(d / dd.heads <= 256, CLATTN_INVALID_SHAPE,
                 "deq cell: head dimension %zu beyond 256", d / dd.heads);
    CLATTN_FORWARD(check_weight(ctx, wq, d, "wq"));
    CLATTN_FORWARD(check_weight(ctx, wk, d, "wk"));
    CLATTN_FORWARD(check_weight(ctx, wv, d, "wv"));
    CLATTN_FORWARD(check_weight(ctx, wo, d, "wo"));

    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(cell_plan), &cell_ops, &base));
    cell_plan *c = (cell_plan *)base;
    c->head.kind = CLATTN__DEQ_CELL;
    c->desc = dd;
    c->B = batch;
    c->N = n;
    c->D = d;
    c->H = dd.heads;
    clattn__schedule_deq(&ctx->info, rows * d, &c->launch);
    size_t shp[4] = {batch, dd.heads, n, d / dd.heads};
    if (dd.attention == CLATTN_DEQ_CELL_SOFTMAX) {
        clattn_softmax_desc sd;
        clattn_softmax_desc_init(&sd);
        sd.causal = dd.causal;
        CLATTN_FORWARD(clattn_softmax_plan_create(ctx, &sd, shp, shp, shp, &c->attn));
    } else {
        clattn_linear_desc ld;
        clattn_linear_desc_init(&ld);
        ld.causal = dd.causal;
        CLATTN_FORWARD(clattn_linear_plan_create(ctx, &ld, shp, shp, shp, &c->attn));
    }
    base->algorithm = (int)dd.attention;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "cell_%s",
             dd.attention == CLATTN_DEQ_CELL_SOFTMAX ? "softmax" : "linear");
    snprintf(base->launch, sizeof base->launch, "heads=%zu attention=%s local=%zu", c->H,
             c->attn->algorithm_name, c->launch.ln_local);
    CLATTN_FORWARD(clattn__plan_kernel(base, "deq.cl", c->launch.defines, "clattn_deq_add_ln",
                                       c->launch.ln_local, "scheduler", &c->ln));
    size_t f = sizeof(float);
    CLATTN_FORWARD(clattn__plan_scratch(base, 3 * d * d * f, "deq cell wqkv", &c->wqkv));
    CLATTN_FORWARD(clattn__plan_scratch(base, d * d * f, "deq cell wo", &c->wo));
    CLATTN_FORWARD(clattn__plan_scratch(base, rows * 3 * d * f, "deq cell qkv", &c->qkv));
    CLATTN_FORWARD(clattn__plan_scratch(base, rows * d * f, "deq cell attention", &c->o));
    CLATTN_FORWARD(clattn__plan_scratch(base, rows * d * f, "deq cell projection", &c->a));
    /* the weights, copied once: Wq, Wk, Wv side by side as the columns of [D, 3D] */
    cl_mem src[3] = {wq, wk, wv};
    for (int i = 0; i < 3; i++) {
        size_t so[3] = {0, 0, 0}, dst[3] = {(size_t)i * d * f, 0, 0}, region[3] = {d * f, d, 1};
        CLATTN_CL(clEnqueueCopyBufferRect(ctx->queue, src[i], c->wqkv, so, dst, region, d * f, 0,
                                          3 * d * f, 0, 0, NULL, NULL));
    }
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, wo, c->wo, 0, 0, d * d * f, 0, NULL, &ev));
    CLATTN_CL(clWaitForEvents(1, &ev));
    CLATTN_CL(clFinish(ctx->queue)); /* the rect copies too, on an out-of-order queue */
    *out = base;
    base = NULL;
cleanup:
    if (ev)
        clReleaseEvent(ev);
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_deq_cell_set_input(clattn_plan *cell, const clattn_tensor *x)
{
    clattn_status st = clattn__deq_check(cell, CLATTN__DEQ_CELL, "clattn_deq_cell_set_input");
    if (st != CLATTN_SUCCESS)
        return st;
    cell_plan *c = (cell_plan *)cell;
    size_t shp[4] = {c->B, 1, c->N, c->D};
    st = clattn__deq_dense(cell->ctx, x, "x", shp);
    if (st != CLATTN_SUCCESS)
        return st;
    c->x = *x;
    c->has_x = true;
    return CLATTN_SUCCESS;
}

static clattn_status gemm(clattn__seq *s, size_t m, size_t n, size_t k, cl_mem a, size_t a_off,
                          cl_mem b, cl_mem c)
{
    clattn_status st = clattn__seq_library(s, false, NULL);
    if (st == CLATTN_SUCCESS)
        st = clattn__sgemm(s->ctx, false, m, n, k, 1.0f, a, a_off, k, b, 0, n, 0.0f, c, 0, n,
                           s->evp);
    if (st == CLATTN_SUCCESS)
        clattn__seq_done(s);
    return st;
}

clattn_status clattn_deq_cell_eval(void *user, const clattn_tensor *z, const clattn_tensor *out,
                                   cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_plan *cell = user;
    clattn_status status = clattn__deq_check(cell, CLATTN__DEQ_CELL, "clattn_deq_cell_eval");
    if (status != CLATTN_SUCCESS)
        return status;
    cell_plan *c = (cell_plan *)cell;
    clattn_context *ctx = cell->ctx;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(c->has_x, CLATTN_INVALID_ARGUMENT,
                 "clattn_deq_cell_eval: no input (clattn_deq_cell_set_input)");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "clattn_deq_cell_eval: wait is NULL with num_wait %u", num_wait);
    size_t shp[4] = {c->B, 1, c->N, c->D};
    CLATTN_CHECK(z && out, CLATTN_NULL_POINTER, "clattn_deq_cell_eval: z and out are required");
    /* the solver's views may be shaped otherwise: only the element count must agree */
    clattn_tensor zv, ov;
    size_t nz = z->shape[0] * z->shape[1] * z->shape[2] * z->shape[3];
    size_t no = out->shape[0] * out->shape[1] * out->shape[2] * out->shape[3];
    CLATTN_CHECK(nz == c->B * c->N * c->D && no == nz, CLATTN_SHAPE_MISMATCH,
                 "clattn_deq_cell_eval: z and out must hold B N D = %zu elements",
                 c->B * c->N * c->D);
    zv = clattn_tensor_make(z->buffer, c->B, 1, c->N, c->D);
    zv.offset = z->offset;
    ov = clattn_tensor_make(out->buffer, c->B, 1, c->N, c->D);
    ov.offset = out->offset;
    CLATTN_FORWARD(clattn__deq_dense(ctx, z, "z", z->shape));
    CLATTN_FORWARD(clattn__deq_dense(ctx, out, "out", out->shape));
    CLATTN_FORWARD(clattn__deq_dense(ctx, &zv, "z", shp));
    CLATTN_FORWARD(clattn__deq_dense(ctx, &ov, "out", shp));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, &ov, "out", &zv, "z", sizeof(float)));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, &ov, "out", &c->x, "x", sizeof(float)));

    size_t rows = c->B * c->N, D = c->D;
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(gemm(&s, rows, 3 * D, D, z->buffer, z->offset, c->wqkv, c->qkv));
    clattn_tensor q = head_view(c->qkv, c, 3 * D, 0), k = head_view(c->qkv, c, 3 * D, D),
                  v = head_view(c->qkv, c, 3 * D, 2 * D), o = head_view(c->o, c, D, 0);
    clattn__seq_next(&s, false, NULL);
    if (c->desc.attention == CLATTN_DEQ_CELL_SOFTMAX)
        status = clattn_softmax_plan_enqueue(c->attn, &q, &k, &v, &o, NULL, s.nw, s.w, s.evp);
    else
        status = clattn_linear_plan_enqueue(c->attn, &q, &k, &v, &o, s.nw, s.w, s.evp);
    clattn__seq_done(&s);
    CLATTN_FORWARD(status);
    CLATTN_FORWARD(gemm(&s, rows, D, D, c->o, 0, c->wo, c->a));
    clattn__args a = {c->ln, 0, CL_SUCCESS};
    cl_ulong oo = out->offset, zo = z->offset, xo = c->x.offset;
    cl_uint nr = (cl_uint)rows, dd = (cl_uint)D;
    CLATTN_ARG(&a, out->buffer);
    CLATTN_ARG(&a, oo);
    CLATTN_ARG(&a, z->buffer);
    CLATTN_ARG(&a, zo);
    CLATTN_ARG(&a, c->a);
    CLATTN_ARG(&a, c->x.buffer);
    CLATTN_ARG(&a, xo);
    CLATTN_ARG(&a, nr);
    CLATTN_ARG(&a, dd);
    CLATTN_CHECK(a.err == CL_SUCCESS, (clattn_status)a.err,
                 "clattn_deq_cell_eval: clSetKernelArg failed");
    size_t local = c->launch.ln_local, global = clattn__div_up(rows, local) * local;
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, c->ln, 1, &global, &local, true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}
