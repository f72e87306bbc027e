/* The per-sequence verbs of the linear decoding state (include/clattn/linear.h): copy, reset,
 * read, write, save and load one sequence (or a selection) of a batched state, through the
 * whole state's helpers (lib/ops/linear_state.h). */
#include "linear_state.h"
#include "states.h"

#include <math.h>
#include <string.h>

clattn_status clattn_linear_state_copy_seq(clattn_linear_state *dst, size_t dst_seq,
                                           const clattn_linear_state *src, size_t src_seq,
                                           cl_uint num_wait, const cl_event *wait,
                                           cl_event *event)
{
    if (!dst || !src)
        return clattn__fail(dst ? dst->ctx : src ? src->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state copy seq: dst and src are required");
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state copy seq: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__lstate_check_pair(dst, src, false, "linear state copy seq"));
    CLATTN_CHECK(src_seq < src->shape[0] && dst_seq < dst->shape[0], CLATTN_INVALID_ARGUMENT,
                 "linear state copy seq: sequence %zu of %zu into %zu of %zu is out of range",
                 src_seq, src->shape[0], dst_seq, dst->shape[0]);
    status = clattn__lstate_copy_range(dst, dst_seq, src, src_seq, 1, num_wait, wait, event);
cleanup:
    return status;
}

/* The value a reset writes into part i (as 32-bit words): -inf for the scale, 0 elsewhere. */
static cl_uint reset_bits(const clattn_linear_state *st, const clattn__lstate_part *p)
{
    float ninf = -INFINITY;
    cl_uint bits = 0;
    if (p->buf == st->sr)
        memcpy(&bits, &ninf, sizeof bits);
    return bits;
}

clattn_status clattn_linear_state_reset_seqs(clattn_linear_state *state, const size_t *seqs,
                                             size_t count, cl_uint num_wait, const cl_event *wait,
                                             cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state reset seqs: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state reset seqs: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(seqs != NULL || count == 0, CLATTN_NULL_POINTER,
                 "linear state reset seqs: count > 0 but seqs is NULL");
    for (size_t i = 0; i < count; i++)
        CLATTN_CHECK(seqs[i] < state->shape[0], CLATTN_INVALID_ARGUMENT,
                     "linear state reset seqs: seqs[%zu] = %zu is out of range (batch %zu)", i,
                     seqs[i], state->shape[0]);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    if (count == 0) {
        CLATTN_FORWARD(clattn__seq_marker(&s, true, event));
        goto cleanup;
    }
    clattn__lstate_part p[8];
    int np = clattn__lstate_parts(state, p);
    for (size_t i = 0; i < count; i++)
        for (int j = 0; j < np; j++) {
            bool last = i == count - 1 && j == np - 1;
            cl_uint bits = reset_bits(state, &p[j]);
            clattn__seq_next(&s, last, event);
            CLATTN_CL(clEnqueueFillBuffer(ctx->queue, p[j].buf, &bits, sizeof bits,
                                          seqs[i] * p[j].per, p[j].per, s.nw, s.w, s.evp));
            clattn__seq_done(&s);
        }
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_linear_state_reset_select(clattn_linear_state *state,
                                               const clattn_seq_select *select, cl_uint num_wait,
                                               const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state reset select: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool started = false;
    size_t slots = 0;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state reset select: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__seq_select_check(ctx, select, state->shape[0], "linear state reset select", &slots));
    if (!select || select->kind == CLATTN_SEQ_ALL)
        return clattn__lstate_clear(state, num_wait, wait, event);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    started = true;
    if (slots == 0) {
        CLATTN_FORWARD(clattn__seq_marker(&s, true, event));
        goto cleanup;
    }
    clattn__lstate_part p[8];
    int np = clattn__lstate_parts(state, p);
    for (int j = 0; j < np; j++) {
        cl_ulong per = p[j].per / 4;
        cl_uint bits = reset_bits(state, &p[j]);
        clattn__args a = {state->kfill, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p[j].buf);
        CLATTN_ARG(&a, per);
        CLATTN_ARG(&a, bits);
        clattn__seq_select_args(&a, select, state->pos, state->shape[0]);
        CLATTN_CL(a.err);
        size_t g[2] = {(size_t)per, slots};
        CLATTN_FORWARD(clattn__seq_kernel(&s, state->kfill, 2, g, j == np - 1, event));
    }
cleanup:
    if (started)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_linear_state_read_seq(clattn_linear_state *state, size_t seq, float *s,
                                           float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state read seq: state is NULL");
    if (seq >= state->shape[0])
        return clattn__fail(state->ctx, CLATTN_INVALID_ARGUMENT,
                            "linear state read seq: sequence %zu of a batch of %zu", seq,
                            state->shape[0]);
    return clattn__lstate_read_range(state, seq, 1, s, z);
}

clattn_status clattn_linear_state_write_seq(clattn_linear_state *state, size_t seq,
                                            const float *s, const float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state write seq: state is NULL");
    if (seq >= state->shape[0])
        return clattn__fail(state->ctx, CLATTN_INVALID_ARGUMENT,
                            "linear state write seq: sequence %zu of a batch of %zu", seq,
                            state->shape[0]);
    return clattn__lstate_write_range(state, seq, 1, s, z);
}

clattn_status clattn_linear_state_seq_save_size(const clattn_linear_state *state, size_t *bytes)
{
    if (!state || !bytes)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state seq save size: NULL argument");
    *bytes = clattn__lstate_snap_size(state, 1);
    return CLATTN_SUCCESS;
}

clattn_status clattn_linear_state_save_seq(clattn_linear_state *state, size_t seq, void *buf,
                                           size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save seq: NULL argument");
    if (seq >= state->shape[0])
        return clattn__fail(state->ctx, CLATTN_INVALID_ARGUMENT,
                            "linear state save seq: sequence %zu of a batch of %zu", seq,
                            state->shape[0]);
    return clattn__lstate_save_range(state, seq, 1, buf, size, "linear state save seq");
}

clattn_status clattn_linear_state_load_seq(clattn_linear_state *state, size_t seq,
                                           const void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state load seq: NULL argument");
    if (seq >= state->shape[0])
        return clattn__fail(state->ctx, CLATTN_INVALID_ARGUMENT,
                            "linear state load seq: sequence %zu of a batch of %zu", seq,
                            state->shape[0]);
    return clattn__lstate_load_range(state, seq, 1, buf, size, "linear state load seq");
}
