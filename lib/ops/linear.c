/* Host side of linear (kernelized) attention and its recurrent decoding state: validate, fetch the
 * program (kernels_cl/linear.cl), enqueue. Every call runs the same three steps — per-chunk key
 * sums, a scan over chunks, one output row per work-item — with the chunking and the state
 * buffer deciding between the non-causal, causal and prefill forms; a decoding step is a state
 * update plus the output kernel. States are [BH][D][Dv + 1] floats, z in the last column. */
#include "../core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIN_MAX_D 256 /* LIN_MAX_D in linear.cl: private arrays hold one query's features */
#define LIN_CHUNK 64  /* causal chunk (LIN_CHUNK in linear.cl): the masked part costs this per row */
#define LIN_MAX_CHUNKS 256 /* non-causal: bounds the scratch to 256 partial states */
#define LIN_OPTIONS "-DLIN_MAX_D=256 -DLIN_CHUNK=64"

struct clattn_linear_state {
    clattn_context *ctx;
    clattn_linear_desc desc;
    size_t shape[4]; /* batch, heads, d, dv */
    cl_mem buf;      /* [B*H][D][Dv + 1] */
    size_t bytes;
};

/* What one enqueue does; out may be NULL (prefill without output), state NULL (plain calls). */
typedef struct lin_job {
    int fmap;
    float eps;
    int causal;
    const clattn_tensor *q, *k, *v, *out;
    cl_mem state; /* causal only: initial sums, replaced by the final sums */
} lin_job;

void clattn_linear_desc_init(clattn_linear_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->feature_map = CLATTN_FEATURE_ELU;
    desc->eps = CLATTN_LINEAR_DEFAULT_EPS;
}

/* Copies the caller's desc honouring struct_size, and resolves eps 0 to the default. */
static clattn_status read_desc(clattn_context *ctx, const clattn_linear_desc *in,
                               clattn_linear_desc *out)
{
    clattn_linear_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_linear_desc, feature_map) + sizeof(int) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: struct_size %zu is not valid (call "
                            "clattn_linear_desc_init first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (out->feature_map != CLATTN_FEATURE_ELU && out->feature_map != CLATTN_FEATURE_RELU &&
        out->feature_map != CLATTN_FEATURE_IDENTITY)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown feature map %d",
                            (int)out->feature_map);
    if (!isfinite(out->eps) || out->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: eps %g must be finite and >= 0", (double)out->eps);
    if (out->eps == 0.0f)
        out->eps = CLATTN_LINEAR_DEFAULT_EPS;
    return CLATTN_SUCCESS;
}

/* Shapes of q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv] among themselves and against the kernels'
 * limits (32-bit row, head and chunk indices; LIN_MAX_D). */
static clattn_status check_dims(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                const size_t v[4], int causal)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "linear: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    if (q[3] > LIN_MAX_D || v[3] > LIN_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "linear: D %zu or Dv %zu > %d", q[3],
                            v[3], LIN_MAX_D);
    if (q[0] != k[0] || q[0] != v[0] || q[1] != k[1] || q[1] != v[1])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "linear: batch/heads differ: q [%zu, %zu], k [%zu, %zu], v [%zu, %zu]",
                            q[0], q[1], k[0], k[1], v[0], v[1]);
    if (k[2] != v[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "linear: %zu keys but %zu values", k[2],
                            v[2]);
    if (q[3] != k[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "linear: head dim %zu (q) != %zu (k)",
                            q[3], k[3]);
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim || k[2] >= lim ||
        clattn__div_up(k[2], LIN_CHUNK) > (lim - 1) / (q[0] * q[1]))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "linear: sizes beyond 2^31");
    if (causal && q[2] != k[2])
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "linear: causal form needs Nq == Nk (got %zu and %zu)", q[2], k[2]);
    return CLATTN_SUCCESS;
}

/* Every view fits its buffer and out (if any) is one-to-one and overlaps no input. The shapes
 * among q, k, v were checked by check_dims; out must be [B, H, Nq, Dv]. */
static clattn_status check_views(clattn_context *ctx, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", NULL, sizeof(float)));
    if (!out)
        return CLATTN_SUCCESS;
    size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", oshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, "out"));
    const clattn_tensor *ins[] = {q, k, v};
    const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", ins[i], names[i], sizeof(float)));
cleanup:
    return status;
}

/* ---- kernel arguments and launches ---- */

/* A sequence of commands on the context's queue: the first honours the caller's wait list, the
 * last returns the caller's event. An in-order queue orders the rest by itself; an out-of-order
 * one gets an event chain (made only then: PoCL 3.1 can deadlock releasing events when several
 * threads enqueue on one queue). */
typedef struct seq {
    clattn_context *ctx;
    bool in_order, started;
    cl_uint nwait;
    const cl_event *wait;
    cl_event prev;
} seq;

static clattn_status seq_init(seq *s, clattn_context *ctx, cl_uint nwait, const cl_event *wait)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->nwait = nwait;
    s->wait = wait;
    cl_command_queue_properties qp = 0;
    cl_int err = clGetCommandQueueInfo(ctx->queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "clGetCommandQueueInfo failed: %s",
                            clattn_status_string((clattn_status)err));
    s->in_order = !(qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
    return CLATTN_SUCCESS;
}

static clattn_status seq_kernel(seq *s, cl_kernel kernel, cl_uint dims, const size_t *global,
                                bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint nw = s->started ? (s->prev ? 1 : 0) : s->nwait;
    const cl_event *w = s->started ? (s->prev ? &s->prev : NULL) : s->wait;
    cl_event ev = NULL;
    cl_event *evp = last ? event : (s->in_order ? NULL : &ev);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, kernel, dims, NULL, global, NULL, nw, w, evp));
    if (s->prev)
        clReleaseEvent(s->prev);
    s->prev = ev;
    s->started = true;
cleanup:
    return status;
}

static void seq_end(seq *s)
{
    if (s->prev)
        clReleaseEvent(s->prev);
    s->prev = NULL;
}

static clattn_status get_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "linear.cl", LIN_OPTIONS, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

/* ---- the three steps ---- */

static clattn_status launch_chunks(seq *s, const lin_job *j, size_t chunk, size_t nchunks,
                                   cl_mem cs)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_chunk_state", &kern));
    cl_uint heads = (cl_uint)j->k->shape[1], n = (cl_uint)j->k->shape[2];
    cl_uint dk = (cl_uint)j->k->shape[3], dv = (cl_uint)j->v->shape[3];
    cl_uint uchunk = (cl_uint)chunk, unchunks = (cl_uint)nchunks;
    cl_int fmap = j->fmap;
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->k);
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unchunks);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, cs);
    CLATTN_CL(a.err);
    size_t gl[3] = {(size_t)dv + 1, dk, j->k->shape[0] * heads * nchunks};
    CLATTN_FORWARD(seq_kernel(s, kern, 3, gl, false, NULL));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* Causal: chunk sums become carried prefixes, the state (if any) seeds them and receives the
 * total. Non-causal: the total goes to `fin`. */
static clattn_status launch_scan(seq *s, const lin_job *j, size_t nchunks, cl_mem cs, cl_mem fin,
                                 bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_scan", &kern));
    cl_uint dk = (cl_uint)j->k->shape[3], dv = (cl_uint)j->v->shape[3];
    cl_uint unchunks = (cl_uint)nchunks;
    cl_mem init = j->state ? j->state : cs; /* any valid buffer when unused */
    cl_mem final = j->causal ? (j->state ? j->state : cs) : fin;
    cl_int has_init = j->state != NULL, has_fin = !j->causal || j->state != NULL;
    cl_int prefix = j->causal != 0;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, cs);
    CLATTN_ARG(&a, unchunks);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, init);
    CLATTN_ARG(&a, has_init);
    CLATTN_ARG(&a, final);
    CLATTN_ARG(&a, has_fin);
    CLATTN_ARG(&a, prefix);
    CLATTN_CL(a.err);
    size_t gl[3] = {(size_t)dv + 1, dk, j->k->shape[0] * j->k->shape[1]};
    CLATTN_FORWARD(seq_kernel(s, kern, 3, gl, last, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* Output rows from the state `st`: per chunk (causal, nchunks of LIN_CHUNK) or one per (b, h). */
static clattn_status launch_out(seq *s, const lin_job *j, cl_mem st, size_t nchunks,
                                cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_out", &kern));
    cl_uint heads = (cl_uint)j->q->shape[1], dk = (cl_uint)j->q->shape[3];
    cl_uint dv = (cl_uint)j->v->shape[3], unchunks = (cl_uint)nchunks;
    cl_int causal = j->causal != 0, fmap = j->fmap;
    cl_float eps = j->eps;
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    clattn__arg_view(&a, j->k);
    clattn__arg_view(&a, j->v);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, st);
    CLATTN_ARG(&a, unchunks);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, eps);
    CLATTN_CL(a.err);
    size_t gl[2] = {j->q->shape[2], j->q->shape[0] * heads};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, true, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* Keys per chunk: LIN_CHUNK when causal (the masked in-chunk part costs that much per row),
 * otherwise as few chunks as keep the work-items busy, at most LIN_MAX_CHUNKS of scratch. */
static size_t chunk_rule(size_t nk, int causal)
{
    if (causal)
        return LIN_CHUNK;
    size_t c = clattn__div_up(nk, LIN_MAX_CHUNKS);
    return c < LIN_CHUNK ? LIN_CHUNK : c;
}

/* Validated job → chunk sums, scan, output. Scratch is released here; OpenCL keeps it alive
 * until the commands using it have finished. */
static clattn_status run_job(clattn_context *ctx, const lin_job *j, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem cs = NULL, tot = NULL;
    seq s;
    memset(&s, 0, sizeof s);
    size_t bh = j->k->shape[0] * j->k->shape[1], nk = j->k->shape[2];
    size_t chunk = chunk_rule(nk, j->causal), nchunks = clattn__div_up(nk, chunk);
    size_t one, all;
    CLATTN_CHECK(clattn__mul_ok(bh * j->k->shape[3], (j->v->shape[3] + 1) * sizeof(float),
                                &one) &&
                     clattn__mul_ok(one, nchunks, &all),
                 CLATTN_SIZE_OVERFLOW, "linear: scratch size overflows");
    CLATTN_FORWARD(clattn__buffer_create(ctx, all, "linear attention chunk states", &cs));
    if (!j->causal)
        CLATTN_FORWARD(clattn__buffer_create(ctx, one, "linear attention state", &tot));
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(launch_chunks(&s, j, chunk, nchunks, cs));
    CLATTN_FORWARD(launch_scan(&s, j, nchunks, cs, tot, j->out == NULL, event));
    if (j->out)
        CLATTN_FORWARD(launch_out(&s, j, j->causal ? cs : tot, j->causal ? nchunks : 1, event));
cleanup:
    seq_end(&s);
    if (cs)
        clReleaseMemObject(cs);
    if (tot)
        clReleaseMemObject(tot);
    return status;
}

clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                    const clattn_tensor *q, const clattn_tensor *k,
                                    const clattn_tensor *v, const clattn_tensor *out,
                                    cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_desc d;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear enqueue: ctx is NULL");
    CLATTN_CHECK(q && k && v && out, CLATTN_NULL_POINTER,
                 "linear enqueue: q, k, v and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q->shape, k->shape, v->shape, d.causal));
    CLATTN_FORWARD(check_views(ctx, q, k, v, out));
    lin_job j = {(int)d.feature_map, d.eps, d.causal != 0, q, k, v, out, NULL};
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    return status;
}

static size_t numel(const size_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], const float *q, const float *k,
                                 const float *v, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL;
    clattn_linear_desc d;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear host: ctx is NULL");
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "linear host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q_shape, k_shape, v_shape, d.causal));
    size_t o_shape[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
    const size_t *shapes[] = {q_shape, k_shape, v_shape, o_shape};
    for (int i = 0; i < 4; i++) {
        size_t a, b;
        CLATTN_CHECK(clattn__mul_ok(shapes[i][0] * shapes[i][1], shapes[i][2], &a) &&
                         clattn__mul_ok(a, shapes[i][3], &b) && b < SIZE_MAX / sizeof(float),
                     CLATTN_SIZE_OVERFLOW, "linear host: sizes overflow");
    }
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, numel(q_shape) * sizeof(float), &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, k, numel(k_shape) * sizeof(float), &bk));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, numel(v_shape) * sizeof(float), &bv));
    CLATTN_FORWARD(clattn__buffer_create(ctx, numel(o_shape) * sizeof(float), "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    CLATTN_FORWARD(clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL));
    /* Blocking read after the kernels (a barrier also orders an out-of-order queue). */
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, numel(o_shape) * sizeof(float), out,
                                  0, NULL, NULL));
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* the buffers below may still be used by failed-midway commands */
    cl_mem bufs[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}

/* ---- recurrent decoding state ---- */

clattn_status clattn_linear_state_create(clattn_context *ctx, const clattn_linear_desc *desc,
                                         size_t batch, size_t heads, size_t d, size_t dv,
                                         clattn_linear_state **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_state *s = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state: ctx is NULL");
    CLATTN_CHECK(out != NULL, CLATTN_NULL_POINTER, "linear state: state pointer is NULL");
    *out = NULL;
    s = calloc(1, sizeof *s);
    CLATTN_CHECK(s != NULL, CLATTN_OUT_OF_HOST_MEMORY, "linear state");
    s->ctx = ctx;
    CLATTN_FORWARD(read_desc(ctx, desc, &s->desc));
    size_t qs[4] = {batch, heads, 1, d}, vs[4] = {batch, heads, 1, dv};
    CLATTN_FORWARD(check_dims(ctx, qs, qs, vs, 0));
    size_t shape[4] = {batch, heads, d, dv};
    memcpy(s->shape, shape, sizeof shape);
    CLATTN_CHECK(clattn__mul_ok(batch * heads * d, (dv + 1) * sizeof(float), &s->bytes),
                 CLATTN_SIZE_OVERFLOW, "linear state: size overflows");
    CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "linear state", &s->buf));
    CLATTN_FORWARD(clattn_linear_state_reset(s, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *out = s;
    s = NULL;
cleanup:
    clattn_linear_state_destroy(s);
    return status;
}

void clattn_linear_state_destroy(clattn_linear_state *state)
{
    if (!state)
        return;
    if (state->buf)
        clReleaseMemObject(state->buf);
    free(state);
}

clattn_status clattn_linear_state_get_shape(const clattn_linear_state *state, size_t shape[4])
{
    if (!state || !shape)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state shape: NULL argument");
    memcpy(shape, state->shape, sizeof state->shape);
    return CLATTN_SUCCESS;
}

clattn_status clattn_linear_state_reset(clattn_linear_state *state, cl_uint num_wait,
                                        const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state reset: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_float zero = 0.0f;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state reset: num_wait > 0 but wait is NULL");
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->buf, &zero, sizeof zero, 0, state->bytes,
                                  num_wait, wait, event));
cleanup:
    return status;
}

clattn_status clattn_linear_state_copy(clattn_linear_state *dst, const clattn_linear_state *src,
                                       cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!dst || !src)
        return clattn__fail(dst ? dst->ctx : src ? src->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state copy: dst and src are required");
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state copy: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(src->ctx == dst->ctx, CLATTN_INVALID_CONTEXT,
                 "linear state copy: states belong to different contexts");
    CLATTN_CHECK(memcmp(src->shape, dst->shape, sizeof dst->shape) == 0, CLATTN_SHAPE_MISMATCH,
                 "linear state copy: shapes [%zu, %zu, %zu, %zu] and [%zu, %zu, %zu, %zu] differ",
                 src->shape[0], src->shape[1], src->shape[2], src->shape[3], dst->shape[0],
                 dst->shape[1], dst->shape[2], dst->shape[3]);
    CLATTN_CHECK(src->desc.feature_map == dst->desc.feature_map && src->desc.eps == dst->desc.eps,
                 CLATTN_INVALID_ARGUMENT,
                 "linear state copy: feature maps or eps of the two states differ");
    if (dst == src) /* nothing to copy, but the caller's wait list and event still hold */
        CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, num_wait, wait, event));
    else
        CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src->buf, dst->buf, 0, 0, dst->bytes, num_wait,
                                      wait, event));
cleanup:
    return status;
}

/* Host staging in the device layout [BH][D][Dv + 1]. */
static float *staging(clattn_linear_state *state)
{
    return malloc(state->bytes);
}

clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state read: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *t = staging(state);
    CLATTN_CHECK(t != NULL, CLATTN_OUT_OF_HOST_MEMORY, "linear state read: staging");
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, state->buf, CL_TRUE, 0, state->bytes, t, 0, NULL,
                                  NULL));
    size_t rows = state->shape[0] * state->shape[1] * state->shape[2], dv = state->shape[3];
    for (size_t r = 0; r < rows; r++) {
        if (s)
            memcpy(s + r * dv, t + r * (dv + 1), dv * sizeof(float));
        if (z)
            z[r] = t[r * (dv + 1) + dv];
    }
cleanup:
    free(t);
    return status;
}

clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                        const float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state write: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *t = NULL;
    CLATTN_CHECK(s && z, CLATTN_NULL_POINTER, "linear state write: s and z are required");
    t = staging(state);
    CLATTN_CHECK(t != NULL, CLATTN_OUT_OF_HOST_MEMORY, "linear state write: staging");
    size_t rows = state->shape[0] * state->shape[1] * state->shape[2], dv = state->shape[3];
    for (size_t r = 0; r < rows; r++) {
        for (size_t e = 0; e < dv; e++) {
            CLATTN_CHECK(isfinite(s[r * dv + e]), CLATTN_INVALID_ARGUMENT,
                         "linear state write: s[%zu] is not finite", r * dv + e);
            t[r * (dv + 1) + e] = s[r * dv + e];
        }
        CLATTN_CHECK(isfinite(z[r]), CLATTN_INVALID_ARGUMENT,
                     "linear state write: z[%zu] is not finite", r);
        t[r * (dv + 1) + dv] = z[r];
    }
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, state->buf, CL_TRUE, 0, state->bytes, t, 0, NULL,
                                   NULL));
cleanup:
    free(t);
    return status;
}

/* Tensors of a prefill (n = their length) or a step (n = 1) against the state's shape. */
static clattn_status check_state_io(clattn_linear_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *out, bool step)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(q && k && v && (out || !step), CLATTN_NULL_POINTER,
                 "linear %s: q, k, v%s are required", step ? "step" : "prefill",
                 step ? " and out" : "");
    const size_t *sh = state->shape;
    size_t n = step ? 1 : q->shape[2];
    size_t qs[4] = {sh[0], sh[1], n, sh[2]}, vs[4] = {sh[0], sh[1], n, sh[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", qs, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", qs, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", vs, sizeof(float)));
    CLATTN_FORWARD(check_dims(ctx, q->shape, k->shape, v->shape, 1));
    CLATTN_FORWARD(check_views(ctx, q, k, v, out));
cleanup:
    return status;
}

clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *out, cl_uint num_wait,
                                    const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear prefill: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear prefill: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, false));
    lin_job j = {(int)state->desc.feature_map, state->desc.eps, 1, q, k, v, out, state->buf};
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    return status;
}

static clattn_status launch_update(seq *s, const lin_job *j)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_step_update", &kern));
    cl_uint heads = (cl_uint)j->k->shape[1], dk = (cl_uint)j->k->shape[3];
    cl_uint dv = (cl_uint)j->v->shape[3];
    cl_int fmap = j->fmap;
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->k);
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, j->state);
    CLATTN_CL(a.err);
    size_t gl[3] = {(size_t)dv + 1, dk, j->k->shape[0] * heads};
    CLATTN_FORWARD(seq_kernel(s, kern, 3, gl, false, NULL));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear step: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    seq s;
    memset(&s, 0, sizeof s);
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear step: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, true));
    /* The output sees the state with this token's key added (j <= i), so update first; the
     * output kernel then reads the whole state as a non-causal one. */
    lin_job j = {(int)state->desc.feature_map, state->desc.eps, 0, q, k, v, out, state->buf};
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(launch_update(&s, &j));
    CLATTN_FORWARD(launch_out(&s, &j, state->buf, 1, event));
cleanup:
    seq_end(&s);
    return status;
}
