/* The recurrent view of a diagonal SSM for decoding: the state x [B, H, N] complex and one step
 * per token (kernels_cl/ssm.cl, clattn_ssm_step). The state holds a plan whose step kernel is
 * created once, with the state; a step sets its arguments and enqueues it, nothing more. */
#include "ssm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clattn_ssm_state {
    clattn_context *ctx;
    size_t batch, heads, n;
    cl_mem wct, d;     /* the handle's parameters, retained (d may be NULL) */
    clattn_plan *plan; /* owns `step` and `x` */
    cl_kernel step;
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

clattn_status clattn_ssm_step(clattn_ssm_state *state, const clattn_tensor *u,
                              const clattn_tensor *y, cl_uint num_wait, const cl_event *wait,
                              cl_event *event)
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
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    size_t gl[1] = {state->batch * state->heads};
    CLATTN_FORWARD(clattn__seq_kernel(&s, state->step, 1, gl, true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}
