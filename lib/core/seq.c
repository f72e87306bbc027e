/* Command sequences (see internal.h): the first command honours the caller's wait list, the last
 * returns the caller's event; an in-order queue orders the rest by itself and an out-of-order one
 * gets an event chain (made only then: PoCL 3.1 can deadlock releasing events when several
 * threads enqueue on one queue). */
#include "internal.h"

#include <string.h>

clattn_status clattn__seq_init(clattn__seq *s, clattn_context *ctx, cl_uint num_wait,
                               const cl_event *wait)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->nwait = num_wait;
    s->wait = wait;
    cl_command_queue_properties qp = 0;
    cl_int err = clGetCommandQueueInfo(ctx->queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "clGetCommandQueueInfo failed: %s",
                            clattn_status_string((clattn_status)err));
    s->in_order = !(qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
    return CLATTN_SUCCESS;
}

void clattn__seq_wait(const clattn__seq *s, cl_uint *nw, const cl_event **w)
{
    *nw = s->started ? (s->prev ? 1 : 0) : s->nwait;
    *w = s->started ? (s->prev ? &s->prev : NULL) : s->wait;
}

void clattn__seq_push(clattn__seq *s, cl_event ev)
{
    if (s->prev)
        clReleaseEvent(s->prev);
    s->prev = ev;
    s->started = true;
}

void clattn__seq_next(clattn__seq *s, bool last, cl_event *event)
{
    clattn__seq_wait(s, &s->nw, &s->w);
    s->ev = NULL;
    s->evp = last ? event : (s->in_order ? NULL : &s->ev);
}

void clattn__seq_done(clattn__seq *s)
{
    clattn__seq_push(s, s->ev);
    s->ev = NULL;
}

void clattn__seq_end(clattn__seq *s)
{
    if (s->prev)
        clReleaseEvent(s->prev);
    s->prev = NULL;
}

clattn_status clattn__seq_kernel_local(clattn__seq *s, cl_kernel kernel, cl_uint dims,
                                       const size_t *global, const size_t *local, bool last,
                                       cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, kernel, dims, NULL, global, local, s->nw, s->w,
                                     s->evp));
    clattn__seq_done(s);
cleanup:
    return status;
}

clattn_status clattn__seq_kernel(clattn__seq *s, cl_kernel kernel, cl_uint dims,
                                 const size_t *global, bool last, cl_event *event)
{
    return clattn__seq_kernel_local(s, kernel, dims, global, NULL, last, event);
}

clattn_status clattn__seq_marker(clattn__seq *s, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, s->nw, s->w, s->evp));
    clattn__seq_done(s);
cleanup:
    return status;
}

size_t clattn__local_for(size_t n, size_t want)
{
    size_t l = 1;
    while (l * 2 <= want && n % (l * 2) == 0)
        l *= 2;
    return l;
}

clattn_status clattn__seq_library(clattn__seq *s, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(s, last, event);
    if (s->nw > 0)
        CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, s->nw, s->w, NULL));
cleanup:
    return status;
}
