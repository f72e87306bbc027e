/* The recurrent decoding state of linear attention (the "RNN view" of its causal form): device
 * buffers holding the running sums, and a plan made when the state is created, whose kernels
 * every prefill and step runs through (nothing is built, created or uploaded after creation). */
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct clattn_linear_state {
    clattn_context *ctx;
    clattn_plan *plan;            /* a stateful linear plan (linear.h) */
    size_t shape[4];              /* batch, heads, d, dv */
    size_t m, mp, dvp, dw;        /* features, padded features, padded dv, state row length */
    cl_mem sa, sb, s1, u1, sr, st; /* clattn__linear_bufs */
    size_t bytes;                 /* of one [BH][MP][DW] buffer */
};

static const clattn__linear_plan *plan_of(const clattn_linear_state *s)
{
    return (const clattn__linear_plan *)s->plan;
}

static clattn__linear_bufs state_bufs(const clattn_linear_state *s)
{
    clattn__linear_bufs b = {s->sa, s->sb, s->s1, s->u1, s->sr, s->st};
    return b;
}

/* One command of a sequence that is not a kernel (fill, copy, marker): its wait list and event
 * come from the sequence. */
static clattn_status seq_fill(clattn__seq *s, cl_mem buf, float value, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, buf, &value, sizeof value, 0, bytes, s->nw, s->w,
                                  s->evp));
    clattn__seq_done(s);
cleanup:
    return status;
}

static clattn_status seq_copy(clattn__seq *s, cl_mem src, cl_mem dst, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src, dst, 0, 0, bytes, s->nw, s->w, s->evp));
    clattn__seq_done(s);
cleanup:
    return status;
}

/* Enqueues the zero state (r = -inf: no key seen) with the caller's wait list and event. */
static clattn_status state_clear(clattn_linear_state *st, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_context *ctx = st->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t bh = st->shape[0] * st->shape[1];
    clattn__seq s;
    bool started = false;
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    cl_mem big[] = {st->sa, st->sb, st->s1, st->u1};
    for (int i = 0; i < 4; i++)
        if (big[i])
            CLATTN_FORWARD(seq_fill(&s, big[i], 0.0f, st->bytes, false, NULL));
    if (st->st)
        CLATTN_FORWARD(seq_fill(&s, st->st, 0.0f, bh * sizeof(cl_uint), false, NULL));
    CLATTN_FORWARD(seq_fill(&s, st->sr, -INFINITY, bh * sizeof(float), true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_linear_state_create(clattn_context *ctx, const clattn_linear_desc *desc,
                                         size_t batch, size_t heads, size_t d, size_t dv,
                                         clattn_linear_state **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_state *s = NULL;
    if (out)
        *out = NULL; /* on every failure */
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state: ctx is NULL");
    CLATTN_CHECK(out != NULL, CLATTN_NULL_POINTER, "linear state: state pointer is NULL");
    s = calloc(1, sizeof *s);
    CLATTN_CHECK(s != NULL, CLATTN_OUT_OF_HOST_MEMORY, "linear state");
    s->ctx = ctx;
    size_t qs[4] = {batch, heads, 1, d}, vs[4] = {batch, heads, 1, dv};
    /* The plan validates the desc and the shapes, draws or copies W and uploads it once. */
    CLATTN_FORWARD(clattn__linear_plan_make(ctx, desc, qs, qs, vs, NULL, 1, &s->plan));
    size_t shape[4] = {batch, heads, d, dv};
    memcpy(s->shape, shape, sizeof shape);
    const clattn__linear_plan *p = plan_of(s);
    s->m = p->feat.m;
    s->mp = p->feat.mp;
    s->dvp = clattn__div_up(dv, 16) * 16;
    s->dw = s->dvp + 16;
    size_t bh = batch * heads;
    CLATTN_CHECK(clattn__mul_ok(bh * s->mp, s->dw * sizeof(float), &s->bytes),
                 CLATTN_SIZE_OVERFLOW, "linear state: size overflows");
    bool adaptive = p->desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE;
    CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "linear state", &s->sa));
    if (p->desc.momentum != CLATTN_LINEAR_MOMENTUM_NONE)
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "momentum state", &s->sb));
    if (adaptive) {
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "adaptive S_{i-1}", &s->s1));
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "adaptive U_{i-1}", &s->u1));
        CLATTN_FORWARD(clattn__buffer_create(ctx, bh * sizeof(cl_uint), "adaptive steps", &s->st));
    }
    CLATTN_FORWARD(clattn__buffer_create(ctx, bh * sizeof(float), "state scale", &s->sr));
    CLATTN_FORWARD(state_clear(s, 0, NULL, NULL));
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
    cl_mem all[] = {state->sa, state->sb, state->s1, state->u1, state->sr, state->st};
    for (int i = 0; i < 6; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clattn_plan_destroy(state->plan);
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
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state reset: num_wait > 0 but wait is NULL");
    status = state_clear(state, num_wait, wait, event);
cleanup:
    return status;
}

/* Same operator: everything that changes what the state means. */
static bool same_desc(const clattn_linear_state *a, const clattn_linear_state *b)
{
    const clattn_linear_desc *x = &plan_of(a)->desc, *y = &plan_of(b)->desc;
    return x->feature_map == y->feature_map && x->eps == y->eps && a->m == b->m &&
           x->momentum == y->momentum && x->mu == y->mu && x->step_size == y->step_size &&
           plan_of(a)->w_hash == plan_of(b)->w_hash;
}

clattn_status clattn_linear_state_copy(clattn_linear_state *dst, const clattn_linear_state *src,
                                       cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!dst || !src)
        return clattn__fail(dst ? dst->ctx : src ? src->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state copy: dst and src are required");
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state copy: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(src->ctx == dst->ctx, CLATTN_INVALID_CONTEXT,
                 "linear state copy: states belong to different contexts");
    CLATTN_CHECK(memcmp(src->shape, dst->shape, sizeof dst->shape) == 0, CLATTN_SHAPE_MISMATCH,
                 "linear state copy: shapes [%zu, %zu, %zu, %zu] and [%zu, %zu, %zu, %zu] differ",
                 src->shape[0], src->shape[1], src->shape[2], src->shape[3], dst->shape[0],
                 dst->shape[1], dst->shape[2], dst->shape[3]);
    CLATTN_CHECK(same_desc(src, dst), CLATTN_INVALID_ARGUMENT,
                 "linear state copy: the two states have different descs (feature map, eps, M, "
                 "momentum or projection)");
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    if (dst == src) { /* nothing to copy, but the caller's wait list and event still hold */
        clattn__seq_next(&s, true, event);
        CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, s.nw, s.w, s.evp));
        clattn__seq_done(&s);
        goto cleanup;
    }
    size_t bh = dst->shape[0] * dst->shape[1];
    cl_mem from[] = {src->sa, src->sb, src->s1, src->u1, src->st};
    cl_mem to[] = {dst->sa, dst->sb, dst->s1, dst->u1, dst->st};
    size_t sizes[] = {dst->bytes, dst->bytes, dst->bytes, dst->bytes, bh * sizeof(cl_uint)};
    for (int i = 0; i < 5; i++)
        if (from[i])
            CLATTN_FORWARD(seq_copy(&s, from[i], to[i], sizes[i], false, NULL));
    CLATTN_FORWARD(seq_copy(&s, src->sr, dst->sr, bh * sizeof(float), true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

/* Blocking read of one device buffer after everything enqueued before. */
static clattn_status read_buf(clattn_context *ctx, cl_mem b, size_t bytes, void *dst)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, b, CL_TRUE, 0, bytes, dst, 0, NULL, NULL));
cleanup:
    return status;
}

static clattn_status write_buf(clattn_context *ctx, cl_mem b, size_t bytes, const void *src)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, b, CL_TRUE, 0, bytes, src, 0, NULL, NULL));
cleanup:
    return status;
}

clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state read: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t bh = state->shape[0] * state->shape[1], dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    const clattn_linear_desc *desc = &plan_of(state)->desc;
    bool fixed = desc->momentum == CLATTN_LINEAR_MOMENTUM_FIXED;
    float *a = malloc(state->bytes), *b = fixed ? malloc(state->bytes) : NULL;
    float *r = malloc(bh * sizeof *r);
    CLATTN_CHECK(a && r && (b || !fixed), CLATTN_OUT_OF_HOST_MEMORY,
                 "linear state read: staging");
    CLATTN_FORWARD(read_buf(ctx, state->sa, state->bytes, a));
    if (fixed)
        CLATTN_FORWARD(read_buf(ctx, state->sb, state->bytes, b));
    CLATTN_FORWARD(read_buf(ctx, state->sr, bh * sizeof *r, r));
    double coef = fixed ? (double)desc->step_size / (1.0 - (double)desc->mu) : 1.0;
    double mu = fixed ? desc->mu : 0.0;
    for (size_t g = 0; g < bh; g++) {
        double sc = isinf(r[g]) && r[g] < 0 ? 0.0 : exp((double)r[g]);
        for (size_t i = 0; i < m; i++) {
            const float *ar = a + (g * mp + i) * dw, *br = b ? b + (g * mp + i) * dw : NULL;
            if (s)
                for (size_t e = 0; e < dv; e++) {
                    double val = br ? coef * ((double)ar[e] - mu * br[e]) : ar[e];
                    s[(g * m + i) * dv + e] = (float)(val * sc);
                }
            if (z)
                z[g * m + i] = (float)(ar[dvp] * sc);
        }
    }
cleanup:
    free(a);
    free(b);
    free(r);
    return status;
}

clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                        const float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state write: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *t = NULL, *r = NULL;
    CLATTN_CHECK(s && z, CLATTN_NULL_POINTER, "linear state write: s and z are required");
    CLATTN_CHECK(plan_of(state)->desc.momentum == CLATTN_LINEAR_MOMENTUM_NONE, CLATTN_UNSUPPORTED,
                 "linear state write: a momentum state cannot be rebuilt from S and z (use "
                 "clattn_linear_state_save / _load)");
    size_t bh = state->shape[0] * state->shape[1], dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    t = calloc(1, state->bytes);
    r = calloc(bh, sizeof *r);
    CLATTN_CHECK(t && r, CLATTN_OUT_OF_HOST_MEMORY, "linear state write: staging");
    for (size_t g = 0; g < bh; g++)
        for (size_t i = 0; i < m; i++) {
            float *tr = t + (g * mp + i) * dw;
            for (size_t e = 0; e < dv; e++) {
                float x = s[(g * m + i) * dv + e];
                CLATTN_CHECK(isfinite(x), CLATTN_INVALID_ARGUMENT,
                             "linear state write: s[%zu] is not finite", (g * m + i) * dv + e);
                tr[e] = x;
            }
            CLATTN_CHECK(isfinite(z[g * m + i]), CLATTN_INVALID_ARGUMENT,
                         "linear state write: z[%zu] is not finite", g * m + i);
            tr[dvp] = z[g * m + i];
        }
    CLATTN_FORWARD(write_buf(ctx, state->sa, state->bytes, t));
    CLATTN_FORWARD(write_buf(ctx, state->sr, bh * sizeof *r, r));
cleanup:
    free(t);
    free(r);
    return status;
}

/* ---- snapshots: header, then the device buffers in a fixed order, then a checksum ---- */

#define SNAP_MAGIC 0x534c4e5441434c43ull /* "CLATNLS" + 'S', little-endian */
#define SNAP_VERSION 1u

typedef struct snap_header {
    uint64_t magic;
    uint32_t version, feature_map, momentum, reserved;
    float mu, step_size, eps, pad;
    uint64_t shape[4], m, w_hash, payload;
} snap_header;

static size_t snap_payload(const clattn_linear_state *st)
{
    size_t bh = st->shape[0] * st->shape[1], n = st->bytes + bh * sizeof(float);
    if (st->sb)
        n += st->bytes;
    if (st->s1)
        n += 2 * st->bytes + bh * sizeof(cl_uint);
    return n;
}

static void snap_fill_header(const clattn_linear_state *st, snap_header *h)
{
    memset(h, 0, sizeof *h);
    h->magic = SNAP_MAGIC;
    h->version = SNAP_VERSION;
    h->feature_map = (uint32_t)plan_of(st)->desc.feature_map;
    h->momentum = (uint32_t)plan_of(st)->desc.momentum;
    h->mu = plan_of(st)->desc.mu;
    h->step_size = plan_of(st)->desc.step_size;
    h->eps = plan_of(st)->desc.eps;
    for (int i = 0; i < 4; i++)
        h->shape[i] = st->shape[i];
    h->m = st->m;
    h->w_hash = plan_of(st)->w_hash;
    h->payload = snap_payload(st);
}

clattn_status clattn_linear_state_save_size(const clattn_linear_state *state, size_t *bytes)
{
    if (!state || !bytes)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save size: NULL argument");
    *bytes = sizeof(snap_header) + snap_payload(state) + sizeof(uint64_t);
    return CLATTN_SUCCESS;
}

/* The state's buffers in snapshot order, with their sizes. Returns the count. */
static int snap_parts(const clattn_linear_state *st, cl_mem *bufs, size_t *sizes)
{
    size_t bh = st->shape[0] * st->shape[1];
    int n = 0;
    bufs[n] = st->sa, sizes[n++] = st->bytes;
    if (st->sb)
        bufs[n] = st->sb, sizes[n++] = st->bytes;
    if (st->s1) {
        bufs[n] = st->s1, sizes[n++] = st->bytes;
        bufs[n] = st->u1, sizes[n++] = st->bytes;
        bufs[n] = st->st, sizes[n++] = bh * sizeof(cl_uint);
    }
    bufs[n] = st->sr, sizes[n++] = bh * sizeof(float);
    return n;
}

clattn_status clattn_linear_state_save(clattn_linear_state *state, void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save: NULL argument");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = 0;
    clattn_linear_state_save_size(state, &need);
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL,
                 "linear state save: %zu bytes given, %zu needed", size, need);
    snap_header h;
    snap_fill_header(state, &h);
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    unsigned char *body = p + sizeof h, *at = body;
    cl_mem bufs[6];
    size_t sizes[6];
    int n = snap_parts(state, bufs, sizes);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(read_buf(ctx, bufs[i], sizes[i], at));
        at += sizes[i];
    }
    uint64_t sum = clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload);
    memcpy(at, &sum, sizeof sum);
cleanup:
    return status;
}

clattn_status clattn_linear_state_load(clattn_linear_state *state, const void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state load: NULL argument");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = 0;
    clattn_linear_state_save_size(state, &need);
    CLATTN_CHECK(size >= sizeof(snap_header), CLATTN_BUFFER_TOO_SMALL,
                 "linear state load: %zu bytes is shorter than a snapshot header", size);
    snap_header h, mine;
    memcpy(&h, buf, sizeof h);
    snap_fill_header(state, &mine);
    CLATTN_CHECK(h.magic == SNAP_MAGIC && h.version == SNAP_VERSION, CLATTN_INVALID_ARGUMENT,
                 "linear state load: not a clattn linear-state snapshot (or another version)");
    CLATTN_CHECK(memcmp(&h, &mine, sizeof h) == 0, CLATTN_INVALID_ARGUMENT,
                 "linear state load: the snapshot is of a state with another shape or desc");
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL,
                 "linear state load: %zu bytes given, the snapshot needs %zu", size, need);
    const unsigned char *p = buf;
    uint64_t sum;
    memcpy(&sum, p + sizeof h + h.payload, sizeof sum);
    CLATTN_CHECK(sum == clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload),
                 CLATTN_INVALID_ARGUMENT, "linear state load: checksum mismatch (corrupt)");
    const unsigned char *at = p + sizeof h;
    cl_mem bufs[6];
    size_t sizes[6];
    int n = snap_parts(state, bufs, sizes);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(write_buf(ctx, bufs[i], sizes[i], at));
        at += sizes[i];
    }
cleanup:
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
    /* Query heads: any multiple of the state's (key) heads (GQA). */
    size_t hq = q->shape[1] % sh[1] == 0 ? q->shape[1] : sh[1];
    size_t qs[4] = {sh[0], hq, n, sh[2]}, ks[4] = {sh[0], sh[1], n, sh[2]};
    size_t vs[4] = {sh[0], sh[1], n, sh[3]};
    /* The desc's element types (the state itself is float32). */
    clattn_dtype dts[4];
    clattn__linear_dtypes(&((const clattn__linear_plan *)state->plan)->desc, dts);
    const clattn_tensor *ts[3] = {q, k, v};
    const size_t *shapes[3] = {qs, ks, vs};
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        size_t e = clattn_dtype_size(dts[i]);
        CLATTN_FORWARD(clattn__tensor_check(ctx, ts[i], names[i], shapes[i], e ? e : 4));
    }
    CLATTN_FORWARD(clattn__linear_check_dims(ctx, q->shape, k->shape, v->shape, 1));
    CLATTN_FORWARD(clattn__linear_check_views(ctx, q, k, v, out, dts));
cleanup:
    return status;
}

/* Prefill (causal, any length) or step through the state's plan. */
static clattn_status state_run(clattn_linear_state *state, const clattn_tensor *q,
                               const clattn_tensor *k, const clattn_tensor *v,
                               const clattn_tensor *out, bool step, cl_uint num_wait,
                               const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const char *what = step ? "linear step" : "linear prefill";
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "%s: num_wait > 0 but wait is NULL", what);
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, step));
    clattn__linear_bufs b = state_bufs(state);
    clattn__linear_plan *p = (clattn__linear_plan *)state->plan;
    clattn__linear_job j;
    memset(&j, 0, sizeof j);
    j.p = p;
    j.z = clattn__linear_dims_of(p, q->shape, k->shape, v->shape);
    j.causal = !step;
    j.step = step;
    j.q = q;
    j.k = k;
    j.v = v;
    j.out = out;
    j.state = &b;
    status = clattn__linear_run(&j, num_wait, wait, event);
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
    return state_run(state, q, k, v, out, false, num_wait, wait, event);
}

clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear step: state is NULL");
    return state_run(state, q, k, v, out, true, num_wait, wait, event);
}
