/* The recurrent view of a diagonal SSM for decoding: the state x [B, H, N] complex and one step
 * per token (kernels_cl/ssm.cl, clattn_ssm_step). The state holds a plan whose step kernel is
 * created once, with the state; a step sets its arguments and enqueues it, nothing more. */
#include "ssm.h"
#include "states.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clattn_ssm_state {
    clattn_context *ctx;
    size_t batch, heads, n;
    cl_mem wct, d;     /* the handle's parameters, retained (d may be NULL) */
    clattn_plan *plan; /* owns `step` and `x` */
    cl_kernel step, fill; /* fill: kernels_cl/states.cl's, for resets by a device selection */
    cl_mem x; /* [B * H * N] complex */
    size_t bytes;
};

static const clattn__plan_ops state_ops = {CLATTN_OP_SSM, NULL, NULL};

clattn_status clattn_ssm_state_create(clattn_ssm *ssm, size_t batch, clattn_ssm_state **out)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn_ssm_state *st = NULL;
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "ssm state: state pointer is NULL");
    *out = NULL;
    CLATTN_CHECK(batch >= 1 && batch <= ((size_t)1 << 31) / (ssm->heads * ssm->n),
                 CLATTN_INVALID_SHAPE, "ssm state: batch %zu (need 1 <= B * H * N <= 2^31)",
                 batch);
    st = calloc(1, sizeof *st);
    CLATTN_CHECK(st, CLATTN_OUT_OF_HOST_MEMORY, "ssm state");
    st->ctx = ctx;
    st->batch = batch;
    st->heads = ssm->heads;
    st->n = ssm->n;
    st->bytes = batch * ssm->heads * ssm->n * 2 * sizeof(float);
    CLATTN_CL(clRetainMemObject(ssm->wct));
    st->wct = ssm->wct;
    if (ssm->d) {
        CLATTN_CL(clRetainMemObject(ssm->d));
        st->d = ssm->d;
    }
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(clattn_plan), &state_ops, &st->plan));
    st->plan->algorithm = CLATTN_SSM_DIRECT;
    snprintf(st->plan->algorithm_name, sizeof st->plan->algorithm_name, "step");
    /* The program of the handle's launch: every SSM kernel of a device comes from one build.
     * An S4 handle's step (same arguments, wct holding its DPLR constants) is in ssm_s4.cl. */
    if (ssm->s4)
        CLATTN_FORWARD(clattn__plan_kernel(st->plan, "ssm_s4.cl", "", "clattn_ssm_s4_step", 0,
                                           "fixed", &st->step));
    else
        CLATTN_FORWARD(clattn__plan_kernel(st->plan, "ssm.cl", ssm->launch.defines,
                                           "clattn_ssm_step", 0, "scheduler", &st->step));
    CLATTN_FORWARD(clattn__plan_kernel(st->plan, "states.cl", "", "clattn_states_fill", 0, "fixed",
                                       &st->fill));
    CLATTN_FORWARD(clattn__plan_scratch(st->plan, st->bytes, "ssm state", &st->x));
    CLATTN_FORWARD(clattn_ssm_state_reset(st, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *out = st;
    st = NULL;
cleanup:
    clattn_ssm_state_destroy(st);
    return status;
}

void clattn_ssm_state_destroy(clattn_ssm_state *state)
{
    if (!state)
        return;
    clattn_plan_destroy(state->plan);
    if (state->wct)
        clReleaseMemObject(state->wct);
    if (state->d)
        clReleaseMemObject(state->d);
    free(state);
}

clattn_status clattn_ssm_state_reset(clattn_ssm_state *state, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state reset: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_float zero = 0.0f;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm state reset: num_wait > 0 but wait is NULL");
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->x, &zero, sizeof zero, 0, state->bytes,
                                  num_wait, wait, event));
cleanup:
    return status;
}

/* A blocking copy of the whole state after every command enqueued before it, on in-order and
 * out-of-order queues alike (a marker with an empty wait list waits for all of them). */
static clattn_status transfer(clattn_ssm_state *state, bool write, void *host)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_event mark = NULL;
    CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &mark));
    if (write)
        CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, state->x, CL_TRUE, 0, state->bytes, host, 1,
                                       &mark, NULL));
    else
        CLATTN_CL(clEnqueueReadBuffer(ctx->queue, state->x, CL_TRUE, 0, state->bytes, host, 1,
                                      &mark, NULL));
cleanup:
    if (mark)
        clReleaseEvent(mark);
    return status;
}

clattn_status clattn_ssm_state_read(clattn_ssm_state *state, float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state read: state is NULL");
    if (!x)
        return clattn__fail(state->ctx, CLATTN_NULL_POINTER, "ssm state read: x is NULL");
    return transfer(state, false, x);
}

clattn_status clattn_ssm_state_write(clattn_ssm_state *state, const float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state write: state is NULL");
    if (!x)
        return clattn__fail(state->ctx, CLATTN_NULL_POINTER, "ssm state write: x is NULL");
    for (size_t i = 0; i < state->bytes / sizeof(float); i++)
        if (!isfinite(x[i]))
            return clattn__fail(state->ctx, CLATTN_INVALID_ARGUMENT,
                                "ssm state write: element %zu is not finite", i);
    return transfer(state, true, (void *)x);
}

static clattn_status step_run(clattn_ssm_state *state, const clattn_tensor *u,
                              const clattn_tensor *y, const clattn_seq_select *sel,
                              cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm step: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm step: u and y are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm step: num_wait > 0 but wait is NULL");
    size_t slots = 0;
    CLATTN_FORWARD(clattn__seq_select_check(ctx, sel, state->batch, "ssm step", &slots));
    size_t shape[4] = {state->batch, state->heads, 1, 1};
    /* u and y of any element type, taken from the tensors (the kernel picks the load and store
     * at run time: one element each per work-item). */
    CLATTN_FORWARD(clattn__dtype_check(ctx, u->dtype, "ssm step: u dtype"));
    CLATTN_FORWARD(clattn__dtype_check(ctx, y->dtype, "ssm step: y dtype"));
    const clattn__view ins[1] = {{u, "u", shape, false, u->dtype}};
    const clattn__view outs[1] = {{y, "y", shape, false, y->dtype}};
    CLATTN_FORWARD(clattn__check_views(ctx, ins, 1, outs, 1));
    cl_uint uh = (cl_uint)state->heads, un = (cl_uint)state->n;
    cl_int udt = (cl_int)u->dtype, ydt = (cl_int)y->dtype;
    cl_mem d = state->d ? state->d : state->wct;
    cl_int has_d = state->d != NULL;
    clattn__args a = {state->step, 0, CL_SUCCESS};
    CLATTN_ARG(&a, state->x);
    CLATTN_ARG(&a, state->wct);
    CLATTN_ARG(&a, d);
    CLATTN_ARG(&a, has_d);
    clattn__arg_view(&a, u);
    clattn__arg_view(&a, y);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, udt);
    CLATTN_ARG(&a, ydt);
    clattn__seq_select_args(&a, sel, state->x, state->batch);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    if (slots == 0) { /* an empty list: the wait list and event still hold */
        CLATTN_FORWARD(clattn__seq_marker(&s, true, event));
        goto cleanup;
    }
    size_t gl[1] = {slots * state->heads};
    CLATTN_FORWARD(clattn__seq_kernel(&s, state->step, 1, gl, true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_ssm_step(clattn_ssm_state *state, const clattn_tensor *u,
                              const clattn_tensor *y, cl_uint num_wait, const cl_event *wait,
                              cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm step: state is NULL");
    return step_run(state, u, y, NULL, num_wait, wait, event);
}

clattn_status clattn_ssm_step_select(clattn_ssm_state *state, const clattn_tensor *u,
                                     const clattn_tensor *y, const clattn_seq_select *select,
                                     cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm step: state is NULL");
    return step_run(state, u, y, select, num_wait, wait, event);
}

/* ---- per-sequence operations: sequence b is bytes [b * per, (b + 1) * per) of x ---- */

static size_t seq_bytes(const clattn_ssm_state *st)
{
    return st->bytes / st->batch;
}

/* A marker carrying the wait list to the event (empty work). */
static clattn_status marker(clattn_context *ctx, cl_uint num_wait, const cl_event *wait,
                            cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, num_wait, wait, event));
cleanup:
    return status;
}

clattn_status clattn_ssm_state_reset_seqs(clattn_ssm_state *state, const size_t *seqs,
                                          size_t count, cl_uint num_wait, const cl_event *wait,
                                          cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state reset seqs: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm state reset seqs: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(seqs || count == 0, CLATTN_NULL_POINTER,
                 "ssm state reset seqs: count > 0 but seqs is NULL");
    for (size_t i = 0; i < count; i++)
        CLATTN_CHECK(seqs[i] < state->batch, CLATTN_INVALID_ARGUMENT,
                     "ssm state reset seqs: seqs[%zu] = %zu is out of range (batch %zu)", i,
                     seqs[i], state->batch);
    if (count == 0)
        return marker(ctx, num_wait, wait, event);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    size_t per = seq_bytes(state);
    cl_float zero = 0.0f;
    for (size_t i = 0; i < count; i++) {
        clattn__seq_next(&s, i == count - 1, event);
        CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->x, &zero, sizeof zero, seqs[i] * per,
                                      per, s.nw, s.w, s.evp));
        clattn__seq_done(&s);
    }
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_ssm_state_reset_select(clattn_ssm_state *state,
                                            const clattn_seq_select *select, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state reset select: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    size_t slots = 0;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm state reset select: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(
        clattn__seq_select_check(ctx, select, state->batch, "ssm state reset select", &slots));
    if (clattn__seq_select_all(select))
        return clattn_ssm_state_reset(state, num_wait, wait, event);
    if (slots == 0)
        return marker(ctx, num_wait, wait, event);
    cl_ulong per = seq_bytes(state) / 4;
    cl_uint bits = 0;
    clattn__args a = {state->fill, 0, CL_SUCCESS};
    CLATTN_ARG(&a, state->x);
    CLATTN_ARG(&a, per);
    CLATTN_ARG(&a, bits);
    clattn__seq_select_args(&a, select, state->x, state->batch);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    size_t g[2] = {(size_t)per, slots};
    CLATTN_FORWARD(clattn__seq_kernel(&s, state->fill, 2, g, true, event));
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_ssm_state_copy_seq(clattn_ssm_state *dst, size_t dst_seq,
                                        const clattn_ssm_state *src, size_t src_seq,
                                        cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!dst || !src)
        return clattn__fail(dst ? dst->ctx : src ? src->ctx : NULL, CLATTN_NULL_POINTER,
                            "ssm state copy seq: dst and src are required");
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm state copy seq: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(src->ctx == dst->ctx, CLATTN_INVALID_CONTEXT,
                 "ssm state copy seq: states belong to different contexts");
    CLATTN_CHECK(src->heads == dst->heads && src->n == dst->n, CLATTN_SHAPE_MISMATCH,
                 "ssm state copy seq: heads x states %zu x %zu and %zu x %zu differ", src->heads,
                 src->n, dst->heads, dst->n);
    CLATTN_CHECK(src_seq < src->batch && dst_seq < dst->batch, CLATTN_INVALID_ARGUMENT,
                 "ssm state copy seq: sequence %zu of %zu into %zu of %zu is out of range",
                 src_seq, src->batch, dst_seq, dst->batch);
    if (dst == src && dst_seq == src_seq)
        return marker(ctx, num_wait, wait, event);
    size_t per = seq_bytes(dst);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src->x, dst->x, src_seq * per, dst_seq * per, per,
                                  num_wait, wait, event));
cleanup:
    return status;
}

/* A blocking copy of one sequence (x of [H][N][2]) after every command enqueued before it. */
static clattn_status transfer_seq(clattn_ssm_state *state, size_t seq, bool write, void *host,
                                  const char *what)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_event mark = NULL;
    CLATTN_CHECK(host, CLATTN_NULL_POINTER, "%s: x is NULL", what);
    CLATTN_CHECK(seq < state->batch, CLATTN_INVALID_ARGUMENT,
                 "%s: sequence %zu of a batch of %zu", what, seq, state->batch);
    size_t per = seq_bytes(state);
    if (write)
        for (size_t i = 0; i < per / sizeof(float); i++)
            CLATTN_CHECK(isfinite(((const float *)host)[i]), CLATTN_INVALID_ARGUMENT,
                         "%s: element %zu is not finite", what, i);
    CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &mark));
    if (write)
        CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, state->x, CL_TRUE, seq * per, per, host, 1,
                                       &mark, NULL));
    else
        CLATTN_CL(clEnqueueReadBuffer(ctx->queue, state->x, CL_TRUE, seq * per, per, host, 1,
                                      &mark, NULL));
cleanup:
    if (mark)
        clReleaseEvent(mark);
    return status;
}

clattn_status clattn_ssm_state_read_seq(clattn_ssm_state *state, size_t seq, float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state read seq: state is NULL");
    return transfer_seq(state, seq, false, x, "ssm state read seq");
}

clattn_status clattn_ssm_state_write_seq(clattn_ssm_state *state, size_t seq, const float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state write seq: state is NULL");
    return transfer_seq(state, seq, true, (void *)x, "ssm state write seq");
}
