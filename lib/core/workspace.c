/* Reusable per-context scratch buffers (see internal.h). */
#include "internal.h"

#define WS_SLOTS ((int)(sizeof(((clattn_context *)0)->ws) / sizeof(cl_mem)))

bool clattn__ws_begin(clattn_context *ctx)
{
    cl_command_queue_properties qp = 0;
    if (clGetCommandQueueInfo(ctx->queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL) !=
            CL_SUCCESS ||
        (qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE))
        return false;
    pthread_mutex_lock(&ctx->ws_lock);
    return true;
}

clattn_status clattn__ws_get(clattn_context *ctx, bool ws, int slot, size_t bytes,
                             const char *what, cl_mem *out)
{
    *out = NULL;
    if (bytes == 0)
        bytes = sizeof(float);
    if (!ws || slot < 0 || slot >= WS_SLOTS)
        return clattn__buffer_create(ctx, bytes, what, out);
    if (ctx->ws[slot] && ctx->ws_bytes[slot] >= bytes) {
        clRetainMemObject(ctx->ws[slot]);
        *out = ctx->ws[slot];
        return CLATTN_SUCCESS;
    }
    /* Grow: OpenCL keeps the old buffer alive until the commands using it have run. */
    cl_mem b = NULL;
    clattn_status st = clattn__buffer_create(ctx, bytes, what, &b);
    if (st != CLATTN_SUCCESS)
        return st;
    if (ctx->ws[slot])
        clReleaseMemObject(ctx->ws[slot]);
    ctx->ws[slot] = b;
    ctx->ws_bytes[slot] = bytes;
    clRetainMemObject(b);
    *out = b;
    return CLATTN_SUCCESS;
}

void clattn__ws_end(clattn_context *ctx, bool ws)
{
    if (ws)
        pthread_mutex_unlock(&ctx->ws_lock);
}

void clattn__ws_release(clattn_context *ctx)
{
    for (int i = 0; i < WS_SLOTS; i++)
        if (ctx->ws[i]) {
            clReleaseMemObject(ctx->ws[i]);
            ctx->ws[i] = NULL;
            ctx->ws_bytes[i] = 0;
        }
}
