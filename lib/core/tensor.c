/* Tensor descriptors: construction and validation against shapes and buffer sizes. */
#include "internal.h"

#include <string.h>

clattn_tensor clattn_tensor_make_typed(cl_mem buffer, clattn_dtype dtype, size_t b, size_t h,
                                       size_t n, size_t d)
{
    clattn_tensor t = clattn_tensor_make(buffer, b, h, n, d);
    t.dtype = dtype;
    return t;
}

clattn_status clattn__tensor_dtype(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                   clattn_dtype want)
{
    if (t->dtype == want)
        return CLATTN_SUCCESS;
    if (clattn_dtype_size(t->dtype) == 0)
        return clattn__fail(ctx, CLATTN_DTYPE_MISMATCH, "%s: dtype %d is not a clattn_dtype", what,
                            (int)t->dtype);
    return clattn__fail(ctx, CLATTN_DTYPE_MISMATCH, "%s: %s tensor but the plan takes %s", what,
                        clattn_dtype_name(t->dtype), clattn_dtype_name(want));
}

/* Bytes per element of a view (int32 and float32 views: 4). */
static size_t elem_of(const clattn_tensor *t)
{
    size_t e = clattn_dtype_size(t->dtype);
    return e ? e : 4;
}

clattn_tensor clattn_tensor_make(cl_mem buffer, size_t b, size_t h, size_t n, size_t d)
{
    clattn_tensor t;
    memset(&t, 0, sizeof t);
    t.buffer = buffer;
    t.shape[0] = b;
    t.shape[1] = h;
    t.shape[2] = n;
    t.shape[3] = d;
    t.strides[3] = 1;
    t.strides[2] = d;
    t.strides[1] = n * d;
    t.strides[0] = h * n * d;
    return t;
}

void clattn__tensor_extent(const clattn_tensor *t, size_t elem, size_t *first, size_t *last)
{
    size_t far = t->offset;
    for (int i = 0; i < 4; i++)
        far += (t->shape[i] - 1) * t->strides[i];
    *first = t->offset * elem;
    *last = far * elem + elem - 1;
}

clattn_status clattn__tensor_check(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                   const size_t expected[4], size_t elem)
{
    if (!t)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "%s: tensor descriptor is NULL", what);
    if (!t->buffer)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "%s: buffer is NULL", what);
    /* A view whose element size is not the one the caller sizes it with (a half tensor given to
     * a float32 or int32 argument, or the reverse) never reaches a kernel. */
    if (clattn_dtype_size(t->dtype) != elem)
        return clattn__tensor_dtype(ctx, t, what, elem == 4 ? CLATTN_F32 : CLATTN_F16);
    for (int i = 0; i < 4; i++) {
        if (t->shape[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "%s: shape[%d] is 0", what, i);
        if (expected && t->shape[i] != expected[i])
            return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                "%s: shape [%zu, %zu, %zu, %zu] but [%zu, %zu, %zu, %zu] expected",
                                what, t->shape[0], t->shape[1], t->shape[2], t->shape[3],
                                expected[0], expected[1], expected[2], expected[3]);
    }
    /* Furthest element reached, in bytes, with overflow checks at every step. */
    size_t far = t->offset;
    for (int i = 0; i < 4; i++) {
        size_t step;
        if (!clattn__mul_ok(t->shape[i] - 1, t->strides[i], &step) || far + step < far)
            return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "%s: offset and strides overflow",
                                what);
        far += step;
    }
    size_t bytes;
    if (far + 1 < far || !clattn__mul_ok(far + 1, elem, &bytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "%s: byte extent overflows", what);
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(t->buffer, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "%s: not a valid cl_mem (%s)", what,
                            clattn_status_string((clattn_status)err));
    if (bytes > size)
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL,
                            "%s: view reaches %zu bytes but the buffer holds %zu", what, bytes,
                            size);
    return CLATTN_SUCCESS;
}

/* Resolves sub-buffers to their parent and adds the sub-buffer's origin to the byte range. */
static cl_mem root_of(cl_mem m, size_t *origin)
{
    *origin = 0;
    for (int depth = 0; depth < 4; depth++) {
        cl_mem parent = NULL;
        size_t off = 0;
        if (clGetMemObjectInfo(m, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL) !=
                CL_SUCCESS ||
            !parent)
            break;
        if (clGetMemObjectInfo(m, CL_MEM_OFFSET, sizeof off, &off, NULL) == CL_SUCCESS)
            *origin += off;
        m = parent;
    }
    return m;
}

clattn_status clattn__check_no_alias(clattn_context *ctx, const clattn_tensor *out,
                                     const char *out_name, const clattn_tensor *in,
                                     const char *in_name, size_t elem)
{
    size_t oa, ob, ia, ib, oo, io;
    cl_mem ro = root_of(out->buffer, &oo), ri = root_of(in->buffer, &io);
    if (ro != ri)
        return CLATTN_SUCCESS;
    (void)elem; /* each view's own element size */
    clattn__tensor_extent(out, elem_of(out), &oa, &ob);
    clattn__tensor_extent(in, elem_of(in), &ia, &ib);
    oa += oo;
    ob += oo;
    ia += io;
    ib += io;
    if (oa <= ib && ia <= ob)
        return clattn__fail(ctx, CLATTN_ALIASING, "%s overlaps %s in the same buffer", out_name,
                            in_name);
    return CLATTN_SUCCESS;
}

clattn_status clattn__tensor_check_disjoint(clattn_context *ctx, const clattn_tensor *t,
                                            const char *what)
{
    /* Sort the dimensions that have more than one element by stride; the view is one-to-one iff
     * each stride exceeds the furthest offset reachable with the smaller ones. */
    size_t st[4], ex[4];
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (t->shape[i] > 1) {
            int j = n++;
            while (j > 0 && st[j - 1] > t->strides[i]) {
                st[j] = st[j - 1];
                ex[j] = ex[j - 1];
                j--;
            }
            st[j] = t->strides[i];
            ex[j] = t->shape[i];
        }
    size_t reach = 0; /* furthest offset reachable with the dimensions so far */
    for (int i = 0; i < n; i++) {
        if (st[i] <= reach)
            return clattn__fail(ctx, CLATTN_ALIASING,
                                "%s: strides make distinct elements overlap (stride %zu within "
                                "a reach of %zu)",
                                what, st[i], reach);
        reach += (ex[i] - 1) * st[i]; /* no overflow: tensor_check bounded the extent */
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn__buffer_create(clattn_context *ctx, size_t bytes, const char *what,
                                    cl_mem *out)
{
    if (bytes > ctx->info.max_alloc_size)
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "%s needs %zu bytes, more than the device's max allocation %llu",
                            what, bytes, (unsigned long long)ctx->info.max_alloc_size);
    cl_int err;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "allocating %s (%zu bytes): %s", what, bytes,
                            clattn_status_string((clattn_status)err));
    return CLATTN_SUCCESS;
}

clattn_status clattn__buffer_upload(clattn_context *ctx, const void *src, size_t bytes,
                                    cl_mem *out)
{
    clattn_status status = clattn__buffer_create(ctx, bytes, "host input copy", out);
    if (status != CLATTN_SUCCESS)
        return status;
    cl_int err = clEnqueueWriteBuffer(ctx->queue, *out, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "uploading %zu bytes: %s", bytes,
                            clattn_status_string((clattn_status)err));
    return CLATTN_SUCCESS;
}

static size_t elem_size(clattn_dtype dt)
{
    size_t e = clattn_dtype_size(dt);
    return e ? e : 4;
}

clattn_status clattn__check_views(clattn_context *ctx, const clattn__view *ins, int n_in,
                                  const clattn__view *outs, int n_out)
{
    clattn_status status = CLATTN_SUCCESS;
    for (int i = 0; i < n_in; i++)
        if (ins[i].t || !ins[i].optional) {
            CLATTN_FORWARD(clattn__tensor_check(ctx, ins[i].t, ins[i].name, ins[i].shape,
                                                elem_size(ins[i].dtype)));
            CLATTN_FORWARD(clattn__tensor_dtype(ctx, ins[i].t, ins[i].name, ins[i].dtype));
        }
    for (int o = 0; o < n_out; o++) {
        const clattn__view *w = &outs[o];
        if (!w->t && w->optional)
            continue;
        CLATTN_FORWARD(clattn__tensor_check(ctx, w->t, w->name, w->shape, elem_size(w->dtype)));
        CLATTN_FORWARD(clattn__tensor_dtype(ctx, w->t, w->name, w->dtype));
        CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, w->t, w->name));
        for (int i = 0; i < n_in; i++)
            if (ins[i].t)
                CLATTN_FORWARD(clattn__check_no_alias(ctx, w->t, w->name, ins[i].t, ins[i].name,
                                                      sizeof(float)));
        for (int e = 0; e < o; e++)
            if (outs[e].t)
                CLATTN_FORWARD(clattn__check_no_alias(ctx, w->t, w->name, outs[e].t, outs[e].name,
                                                      sizeof(float)));
    }
cleanup:
    return status;
}
