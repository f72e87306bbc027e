/* Host staging for the blocking _host calls (internal.h). The read-back waits for the operator's
 * event, so it is right on out-of-order queues too (the softmax host call once read its output
 * before the attention had run there). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void clattn__stage_init(clattn__stage *s, clattn_context *ctx)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
}

static clattn_status keep(clattn__stage *s, cl_mem b, cl_mem *out)
{
    if (s->n >= CLATTN__STAGE_MAX) {
        clReleaseMemObject(b);
        return clattn__fail(s->ctx, CLATTN_INTERNAL_ERROR, "host staging: too many buffers");
    }
    s->bufs[s->n++] = b;
    *out = b;
    return CLATTN_SUCCESS;
}

clattn_status clattn__stage_in(clattn__stage *s, const void *src, size_t bytes, const char *what,
                               cl_mem *out)
{
    cl_mem b = NULL;
    *out = NULL;
    clattn_status st = clattn__buffer_upload(s->ctx, src, bytes ? bytes : 4, &b);
    if (st != CLATTN_SUCCESS) {
        if (b)
            clReleaseMemObject(b);
        return clattn__fail(s->ctx, st, "host staging: uploading %s (%zu bytes) failed: %s", what,
                            bytes, clattn_status_string(st));
    }
    return keep(s, b, out);
}

clattn_status clattn__stage_out(clattn__stage *s, void *dst, size_t bytes, const char *what,
                                cl_mem *out)
{
    cl_mem b = NULL;
    *out = NULL;
    if (dst && s->nout >= CLATTN__STAGE_MAX)
        return clattn__fail(s->ctx, CLATTN_INTERNAL_ERROR, "host staging: too many outputs");
    clattn_status st = clattn__buffer_create(s->ctx, bytes ? bytes : 4, what, &b);
    if (st != CLATTN_SUCCESS) {
        if (b)
            clReleaseMemObject(b);
        return st;
    }
    st = keep(s, b, out);
    if (st == CLATTN_SUCCESS && dst) {
        s->outs[s->nout].buf = b;
        s->outs[s->nout].dst = dst;
        s->outs[s->nout].bytes = bytes;
        s->nout++;
    }
    return st;
}

clattn_status clattn__stage_read(clattn__stage *s, cl_event done)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    void *tmp[CLATTN__STAGE_MAX] = {0};
    for (unsigned i = 0; i < s->nout; i++) {
        tmp[i] = malloc(s->outs[i].bytes ? s->outs[i].bytes : 1);
        CLATTN_CHECK(tmp[i] != NULL, CLATTN_OUT_OF_HOST_MEMORY, "host staging: %zu bytes",
                     s->outs[i].bytes);
        CLATTN_CL(clEnqueueReadBuffer(ctx->queue, s->outs[i].buf, CL_TRUE, 0, s->outs[i].bytes,
                                      tmp[i], done ? 1 : 0, done ? &done : NULL, NULL));
    }
    for (unsigned i = 0; i < s->nout; i++)
        memcpy(s->outs[i].dst, tmp[i], s->outs[i].bytes);
cleanup:
    for (unsigned i = 0; i < s->nout; i++)
        free(tmp[i]);
    if (done)
        clReleaseEvent(done);
    return status;
}

void clattn__stage_end(clattn__stage *s)
{
    /* Commands of a call that failed midway may still use the buffers. */
    if (s->ctx && s->n > 0)
        clFinish(s->ctx->queue);
    for (unsigned i = 0; i < s->n; i++)
        clReleaseMemObject(s->bufs[i]);
    s->n = s->nout = 0;
}
