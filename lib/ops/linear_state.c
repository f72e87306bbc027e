/* The recurrent decoding state of linear attention (the "RNN view" of its causal form): device
 * buffers holding the running sums, and a plan made when the state is created, whose kernels
 * every prefill and step runs through (nothing is built, created or uploaded after creation). */
#include "linear_state.h"
#include "states.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static clattn_status seq_copy(clattn__seq *s, cl_mem src, cl_mem dst, size_t src_off,
                              size_t dst_off, size_t bytes, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src, dst, src_off, dst_off, bytes, s->nw, s->w,
                                  s->evp));
    clattn__seq_done(s);
cleanup:
    return status;
}

/* Enqueues the zero state (r = -inf: no key seen) with the caller's wait list and event. */
clattn_status clattn__lstate_clear(clattn_linear_state *st, cl_uint num_wait, const cl_event *wait,
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
    CLATTN_FORWARD(seq_fill(&s, st->pos, 0.0f, st->shape[0] * sizeof(cl_uint), false, NULL));
    CLATTN_FORWARD(seq_fill(&s, st->sr, -INFINITY, bh * sizeof(float), true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

static const clattn__plan_ops step_ops = {CLATTN_OP_LINEAR, NULL, NULL};

/* The batched step's plan: kernels_cl/states.cl with the linear plan's element types. */
static clattn_status make_step_kernels(clattn_linear_state *s)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn_linear_desc *d = &plan_of(s)->desc;
    const clattn__dtype_role roles[4] = {
        {"Q", d->q_dtype}, {"K", d->k_dtype}, {"V", d->v_dtype}, {"O", d->out_dtype}};
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(clattn_plan), &step_ops, &s->kp));
    s->kp->algorithm = plan_of(s)->base.algorithm;
    snprintf(s->kp->algorithm_name, sizeof s->kp->algorithm_name, "batched step");
    CLATTN_FORWARD(clattn__plan_set_dtypes(s->kp, roles, 4));
    CLATTN_FORWARD(clattn__plan_kernel(s->kp, "states.cl", "", "clattn_linear_state_step", 0,
                                       "fixed", &s->kstep));
    CLATTN_FORWARD(
        clattn__plan_kernel(s->kp, "states.cl", "", "clattn_states_fill", 0, "fixed", &s->kfill));
    CLATTN_FORWARD(clattn__plan_kernel(s->kp, "states.cl", "", "clattn_states_pos_add", 0,
                                       "fixed", &s->kpos));
cleanup:
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
    CLATTN_FORWARD(clattn__buffer_create(ctx, batch * sizeof(cl_uint), "positions", &s->pos));
    CLATTN_FORWARD(clattn__buffer_create(ctx, bh * s->mp * sizeof(float), "step features",
                                         &s->fk));
    CLATTN_FORWARD(clattn__buffer_create(ctx, bh * s->dvp * sizeof(float), "step values", &s->vp));
    CLATTN_FORWARD(make_step_kernels(s));
    CLATTN_FORWARD(clattn__lstate_clear(s, 0, NULL, NULL));
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
    cl_mem all[] = {state->sa, state->sb, state->s1, state->u1, state->sr,
                    state->st, state->pos, state->fk, state->vp, state->fq};
    for (int i = 0; i < 10; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clattn_plan_destroy(state->kp);
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
    status = clattn__lstate_clear(state, num_wait, wait, event);
cleanup:
    return status;
}

int clattn__lstate_parts(const clattn_linear_state *st, clattn__lstate_part *p)
{
    size_t h = st->shape[1], big = st->bytes / st->shape[0];
    int n = 0;
    p[n++] = (clattn__lstate_part){st->sa, big};
    if (st->sb)
        p[n++] = (clattn__lstate_part){st->sb, big};
    if (st->s1) {
        p[n++] = (clattn__lstate_part){st->s1, big};
        p[n++] = (clattn__lstate_part){st->u1, big};
        p[n++] = (clattn__lstate_part){st->st, h * sizeof(cl_uint)};
    }
    p[n++] = (clattn__lstate_part){st->sr, h * sizeof(float)};
    p[n++] = (clattn__lstate_part){st->pos, sizeof(cl_uint)};
    return n;
}

/* Same operator: everything that changes what the state means. */
static bool same_desc(const clattn_linear_state *a, const clattn_linear_state *b)
{
    const clattn_linear_desc *x = &plan_of(a)->desc, *y = &plan_of(b)->desc;
    return x->feature_map == y->feature_map && x->eps == y->eps && a->m == b->m &&
           x->momentum == y->momentum && x->mu == y->mu && x->step_size == y->step_size &&
           plan_of(a)->w_hash == plan_of(b)->w_hash;
}

/* Checks two states for a copy: same context, shape (the batch too when whole), desc. */
clattn_status clattn__lstate_check_pair(const clattn_linear_state *dst,
                                        const clattn_linear_state *src, bool whole,
                                        const char *what)
{
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    int from = whole ? 0 : 1;
    CLATTN_CHECK(src->ctx == dst->ctx, CLATTN_INVALID_CONTEXT,
                 "%s: states belong to different contexts", what);
    CLATTN_CHECK(memcmp(src->shape + from, dst->shape + from, (4 - from) * sizeof(size_t)) == 0,
                 CLATTN_SHAPE_MISMATCH,
                 "%s: shapes [%zu, %zu, %zu, %zu] and [%zu, %zu, %zu, %zu] differ", what,
                 src->shape[0], src->shape[1], src->shape[2], src->shape[3], dst->shape[0],
                 dst->shape[1], dst->shape[2], dst->shape[3]);
    CLATTN_CHECK(same_desc(src, dst), CLATTN_INVALID_ARGUMENT,
                 "%s: the two states have different descs (feature map, eps, M, momentum or "
                 "projection)",
                 what);
cleanup:
    return status;
}

/* Enqueues sequences [sb, sb + n) of src into [db, db + n) of dst (validated). */
clattn_status clattn__lstate_copy_range(clattn_linear_state *dst, size_t db,
                                        const clattn_linear_state *src, size_t sb, size_t n,
                                        cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    if (dst == src && db == sb) { /* nothing to copy, but the wait list and event still hold */
        CLATTN_FORWARD(clattn__seq_marker(&s, true, event));
        goto cleanup;
    }
    clattn__lstate_part from[8], to[8];
    int np = clattn__lstate_parts(src, from);
    clattn__lstate_parts(dst, to);
    for (int i = 0; i < np; i++)
        CLATTN_FORWARD(seq_copy(&s, from[i].buf, to[i].buf, sb * from[i].per, db * to[i].per,
                                n * from[i].per, i == np - 1, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
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
    CLATTN_FORWARD(clattn__lstate_check_pair(dst, src, true, "linear state copy"));
    status = clattn__lstate_copy_range(dst, 0, src, 0, dst->shape[0], num_wait, wait, event);
cleanup:
    return status;
}

/* Blocking read of bytes at off of one device buffer after everything enqueued before. */
static clattn_status read_buf(clattn_context *ctx, cl_mem b, size_t off, size_t bytes, void *dst)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, b, CL_TRUE, off, bytes, dst, 0, NULL, NULL));
cleanup:
    return status;
}

static clattn_status write_buf(clattn_context *ctx, cl_mem b, size_t off, size_t bytes,
                               const void *src)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, b, CL_TRUE, off, bytes, src, 0, NULL, NULL));
cleanup:
    return status;
}

/* S and z of sequences [b0, b0 + nb) (clattn_linear_state_read's layout for that batch). */
clattn_status clattn__lstate_read_range(clattn_linear_state *state, size_t b0, size_t nb, float *s,
                                        float *z)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t hh = state->shape[1], bh = nb * hh, g0 = b0 * hh, dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    size_t bytes = state->bytes / state->shape[0] * nb, off = state->bytes / state->shape[0] * b0;
    const clattn_linear_desc *desc = &plan_of(state)->desc;
    bool fixed = desc->momentum == CLATTN_LINEAR_MOMENTUM_FIXED;
    float *a = malloc(bytes), *b = fixed ? malloc(bytes) : NULL;
    float *r = malloc(bh * sizeof *r);
    CLATTN_CHECK(a && r && (b || !fixed), CLATTN_OUT_OF_HOST_MEMORY,
                 "linear state read: staging");
    CLATTN_FORWARD(read_buf(ctx, state->sa, off, bytes, a));
    if (fixed)
        CLATTN_FORWARD(read_buf(ctx, state->sb, off, bytes, b));
    CLATTN_FORWARD(read_buf(ctx, state->sr, g0 * sizeof *r, bh * sizeof *r, r));
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

clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state read: state is NULL");
    return clattn__lstate_read_range(state, 0, state->shape[0], s, z);
}

clattn_status clattn__lstate_write_range(clattn_linear_state *state, size_t b0, size_t nb,
                                         const float *s, const float *z)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *t = NULL, *r = NULL;
    CLATTN_CHECK(s && z, CLATTN_NULL_POINTER, "linear state write: s and z are required");
    CLATTN_CHECK(plan_of(state)->desc.momentum == CLATTN_LINEAR_MOMENTUM_NONE, CLATTN_UNSUPPORTED,
                 "linear state write: a momentum state cannot be rebuilt from S and z (use "
                 "clattn_linear_state_save / _load)");
    size_t hh = state->shape[1], bh = nb * hh, dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    size_t bytes = state->bytes / state->shape[0] * nb, off = state->bytes / state->shape[0] * b0;
    t = calloc(1, bytes);
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
    CLATTN_FORWARD(write_buf(ctx, state->sa, off, bytes, t));
    CLATTN_FORWARD(write_buf(ctx, state->sr, b0 * hh * sizeof *r, bh * sizeof *r, r));
cleanup:
    free(t);
    free(r);
    return status;
}

clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                        const float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state write: state is NULL");
    return clattn__lstate_write_range(state, 0, state->shape[0], s, z);
}

clattn_status clattn_linear_state_positions(clattn_linear_state *state, uint32_t *positions)
{
    if (!state || !positions)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state positions: NULL argument");
    return read_buf(state->ctx, state->pos, 0, state->shape[0] * sizeof(cl_uint), positions);
}

/* ---- snapshots: header, then the device buffers in a fixed order, then a checksum. A snapshot
 * of sequences [b0, b0 + n) holds each buffer's range of them, with n in the header's batch: one
 * sequence's snapshot is byte for byte that of a batch-1 state holding it. ---- */

#define SNAP_MAGIC 0x534c4e5441434c43ull /* "CLATNLS" + 'S', little-endian */
#define SNAP_VERSION 2u                  /* 2: with the per-sequence positions */

typedef struct snap_header {
    uint64_t magic;
    uint32_t version, feature_map, momentum, reserved;
    float mu, step_size, eps, pad;
    uint64_t shape[4], m, w_hash, payload;
} snap_header;

static size_t snap_payload(const clattn_linear_state *st, size_t nb)
{
    clattn__lstate_part p[8];
    int np = clattn__lstate_parts(st, p);
    size_t n = 0;
    for (int i = 0; i < np; i++)
        n += p[i].per * nb;
    return n;
}

static void snap_fill_header(const clattn_linear_state *st, size_t nb, snap_header *h)
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
    h->shape[0] = nb;
    h->m = st->m;
    h->w_hash = plan_of(st)->w_hash;
    h->payload = snap_payload(st, nb);
}

size_t clattn__lstate_snap_size(const clattn_linear_state *st, size_t nb)
{
    return sizeof(snap_header) + snap_payload(st, nb) + sizeof(uint64_t);
}

clattn_status clattn_linear_state_save_size(const clattn_linear_state *state, size_t *bytes)
{
    if (!state || !bytes)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save size: NULL argument");
    *bytes = clattn__lstate_snap_size(state, state->shape[0]);
    return CLATTN_SUCCESS;
}

clattn_status clattn__lstate_save_range(clattn_linear_state *state, size_t b0, size_t nb,
                                        void *buf, size_t size, const char *what)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = clattn__lstate_snap_size(state, nb);
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL, "%s: %zu bytes given, %zu needed", what,
                 size, need);
    snap_header h;
    snap_fill_header(state, nb, &h);
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    unsigned char *at = p + sizeof h;
    clattn__lstate_part parts[8];
    int n = clattn__lstate_parts(state, parts);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(read_buf(ctx, parts[i].buf, b0 * parts[i].per, nb * parts[i].per, at));
        at += nb * parts[i].per;
    }
    uint64_t sum = clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload);
    memcpy(at, &sum, sizeof sum);
cleanup:
    return status;
}

clattn_status clattn__lstate_load_range(clattn_linear_state *state, size_t b0, size_t nb,
                                        const void *buf, size_t size, const char *what)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = clattn__lstate_snap_size(state, nb);
    CLATTN_CHECK(size >= sizeof(snap_header), CLATTN_BUFFER_TOO_SMALL,
                 "%s: %zu bytes is shorter than a snapshot header", what, size);
    snap_header h, mine;
    memcpy(&h, buf, sizeof h);
    snap_fill_header(state, nb, &mine);
    CLATTN_CHECK(h.magic == SNAP_MAGIC && h.version == SNAP_VERSION, CLATTN_INVALID_ARGUMENT,
                 "%s: not a clattn linear-state snapshot (or another version)", what);
    CLATTN_CHECK(memcmp(&h, &mine, sizeof h) == 0, CLATTN_INVALID_ARGUMENT,
                 "%s: the snapshot is of a state with another shape or desc", what);
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL,
                 "%s: %zu bytes given, the snapshot needs %zu", what, size, need);
    const unsigned char *p = buf;
    uint64_t sum;
    memcpy(&sum, p + sizeof h + h.payload, sizeof sum);
    CLATTN_CHECK(sum == clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload),
                 CLATTN_INVALID_ARGUMENT, "%s: checksum mismatch (corrupt)", what);
    const unsigned char *at = p + sizeof h;
    clattn__lstate_part parts[8];
    int n = clattn__lstate_parts(state, parts);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(write_buf(ctx, parts[i].buf, b0 * parts[i].per, nb * parts[i].per, at));
        at += nb * parts[i].per;
    }
cleanup:
    return status;
}

clattn_status clattn_linear_state_save(clattn_linear_state *state, void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save: NULL argument");
    return clattn__lstate_save_range(state, 0, state->shape[0], buf, size, "linear state save");
}

clattn_status clattn_linear_state_load(clattn_linear_state *state, const void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state load: NULL argument");
    return clattn__lstate_load_range(state, 0, state->shape[0], buf, size, "linear state load");
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

/* The state's plan over q, k, v (a causal prefill of any length, or the plan's multi-launch step:
 * features, padded values, update, commit, output), then every sequence's position += the
 * tokens it consumed. */
static clattn_status plan_run(clattn_linear_state *state, const clattn_tensor *q,
                              const clattn_tensor *k, const clattn_tensor *v,
                              const clattn_tensor *out, bool step, cl_uint num_wait,
                              const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_event mid = NULL;
    clattn__seq s;
    bool started = false;
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
    CLATTN_FORWARD(clattn__linear_run(&j, num_wait, wait, &mid));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, 1, &mid));
    started = true;
    cl_uint n = step ? 1 : (cl_uint)q->shape[2];
    clattn__args a = {state->kpos, 0, CL_SUCCESS};
    CLATTN_ARG(&a, state->pos);
    CLATTN_ARG(&a, n);
    CLATTN_CL(a.err);
    size_t g = state->shape[0];
    CLATTN_FORWARD(clattn__seq_kernel(&s, state->kpos, 1, &g, true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    if (mid)
        clReleaseEvent(mid);
    return status;
}

/* A prefill (causal, any length) through the state's plan, then positions += its length. */
static clattn_status prefill_run(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear prefill: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, false));
    status = plan_run(state, q, k, v, out, false, num_wait, wait, event);
cleanup:
    return status;
}

/* log(eps) for the kernels (linear_forms.c's): -inf for eps 0. */
static cl_float log_eps(const clattn_linear_desc *d)
{
    return d->eps > 0.0f ? (cl_float)log((double)d->eps) : -INFINITY;
}

/* The step's work-group size (its items share the value columns of one (sequence, key head)):
 * 1 where work-groups must be single items (loop-capped and SIMT CPU devices), 16 on CPUs, 64
 * (STATES_WG) elsewhere. */
static size_t step_local(const clattn_linear_state *st)
{
    const clattn_device_info *dev = &st->ctx->info;
    if (plan_of(st)->launch.one_item_groups || dev->loop_iteration_cap || dev->simt_cpu)
        return 1;
    return dev->device_class == CLATTN_DEVICE_CPU ? 16 : 64;
}

/* Loop iterations one work-group of the step runs (every item's loops together): on a device
 * that ends loops after loop_iteration_cap iterations (llvmpipe), steps above it take the
 * multi-launch path of the state's plan (whole batch only). */
static uint64_t step_iterations(const clattn_linear_state *st, size_t group)
{
    const clattn_linear_desc *d = &plan_of(st)->desc;
    uint64_t mp = st->mp, dv = st->shape[3], dd = st->shape[2];
    uint64_t feat = d->feature_map == CLATTN_LINEAR_FEATURE_FAVOR ? mp * dd + dd + 2 * mp : mp;
    uint64_t upd = mp * (dv + 1) * (d->momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? 2 : 1);
    return st->dvp + (1 + group) * feat + upd + group * (mp + dv * mp) + 16;
}

/* The plan's multi-launch step (features, padded values, update, commit, output). */
static clattn_status legacy_step(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    return plan_run(state, q, k, v, out, true, num_wait, wait, event);
}

/* One launch of kernels_cl/states.cl's clattn_linear_state_step for the selected sequences. */
static clattn_status step_run(clattn_linear_state *state, const clattn_tensor *q,
                              const clattn_tensor *k, const clattn_tensor *v,
                              const clattn_tensor *out, const clattn_seq_select *sel,
                              cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    size_t slots = 0;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear step: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, true));
    CLATTN_FORWARD(clattn__seq_select_check(ctx, sel, state->shape[0], "linear step", &slots));
    const clattn__linear_plan *p = plan_of(state);
    const clattn_linear_desc *d = &p->desc;
    size_t hk = state->shape[1], group = q->shape[1] / hk, bhk = state->shape[0] * hk;
    size_t fq_bytes = bhk * group * state->mp * sizeof(float);
    if (fq_bytes > state->fq_bytes) {
        if (state->fq)
            clReleaseMemObject(state->fq);
        state->fq = NULL;
        state->fq_bytes = 0;
        CLATTN_FORWARD(clattn__buffer_create(ctx, fq_bytes, "step query features", &state->fq));
        state->fq_bytes = fq_bytes;
    }
    uint64_t cap = ctx->info.loop_iteration_cap;
    if (cap && step_iterations(state, group) > cap / 2) {
        CLATTN_CHECK(clattn__seq_select_all(sel), CLATTN_UNSUPPORTED,
                     "linear step: a step of %zu features x %zu values per key head is too long "
                     "for this device's loop limit with a sequence selection (steps of the whole "
                     "batch run as several launches)",
                     state->m, state->shape[3]);
        return legacy_step(state, q, k, v, out, num_wait, wait, event);
    }
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    if (slots == 0) {
        CLATTN_FORWARD(clattn__seq_marker(&s, true, event));
        goto cleanup;
    }
    cl_uint heads = (cl_uint)hk, grp = (cl_uint)group, ud = (cl_uint)state->shape[2];
    cl_uint um = (cl_uint)state->m, ump = (cl_uint)state->mp, udv = (cl_uint)state->shape[3];
    cl_uint udvp = (cl_uint)state->dvp;
    cl_int fmap = (cl_int)d->feature_map;
    cl_mem wt = p->feat.wt ? p->feat.wt : state->sa;
    cl_float xs = p->feat.xs, fs = p->feat.fs;
    cl_int mom = d->momentum == CLATTN_LINEAR_MOMENTUM_FIXED      ? 1
                 : d->momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? 2
                                                                  : 0;
    cl_float mu = mom == 1 ? d->mu : 0.0f, eta = d->step_size;
    cl_float coef = mom == 1 ? d->step_size / (1.0f - d->mu) : 1.0f, le = log_eps(d);
    cl_mem sb = state->sb ? state->sb : state->sa, s1 = state->s1 ? state->s1 : state->sa;
    cl_mem u1 = state->u1 ? state->u1 : state->sa, stc = state->st ? state->st : state->pos;
    clattn__args a = {state->kstep, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    clattn__arg_view(&a, k);
    clattn__arg_view(&a, v);
    clattn__arg_view(&a, out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, grp);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, ump);
    CLATTN_ARG(&a, udv);
    CLATTN_ARG(&a, udvp);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, wt);
    CLATTN_ARG(&a, xs);
    CLATTN_ARG(&a, fs);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, coef);
    CLATTN_ARG(&a, eta);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, state->sa);
    CLATTN_ARG(&a, sb);
    CLATTN_ARG(&a, s1);
    CLATTN_ARG(&a, u1);
    CLATTN_ARG(&a, state->sr);
    CLATTN_ARG(&a, stc);
    CLATTN_ARG(&a, state->pos);
    CLATTN_ARG(&a, state->fk);
    CLATTN_ARG(&a, state->vp);
    CLATTN_ARG(&a, state->fq);
    clattn__seq_select_args(&a, sel, state->pos, state->shape[0]);
    CLATTN_CL(a.err);
    size_t local = step_local(state), g = slots * hk * local;
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, state->kstep, 1, &g, &local, true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *out, cl_uint num_wait,
                                    const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear prefill: state is NULL");
    return prefill_run(state, q, k, v, out, num_wait, wait, event);
}

clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear step: state is NULL");
    return step_run(state, q, k, v, out, NULL, num_wait, wait, event);
}

clattn_status clattn_linear_step_select(clattn_linear_state *state, const clattn_tensor *q,
                                        const clattn_tensor *k, const clattn_tensor *v,
                                        const clattn_tensor *out,
                                        const clattn_seq_select *select, cl_uint num_wait,
                                        const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear step: state is NULL");
    return step_run(state, q, k, v, out, select, num_wait, wait, event);
}
