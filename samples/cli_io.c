/* The data of a run command (cli.h): .npy files in and out (token-major files moved between the
 * [B, N, H, D] and [B, H, N, D] layouts), and the device buffers a run uploads, computes into and
 * reads back after its plan's event. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_swap_axes12_bytes(void *dst, const void *src, const size_t shape[4], size_t esize)
{
    const size_t a = shape[1], b = shape[2], d = shape[3] * esize;
    char *o = dst;
    const char *in = src;
    for (size_t n = 0; n < shape[0]; n++)
        for (size_t i = 0; i < a; i++)
            for (size_t j = 0; j < b; j++)
                memcpy(o + ((n * b + j) * a + i) * d, in + ((n * a + i) * b + j) * d, d);
}

void cli_swap_axes12(float *dst, const float *src, const size_t shape[4])
{
    cli_swap_axes12_bytes(dst, src, shape, sizeof *dst);
}

int load_tensor(const char *path, const char *opt, int ndim, npy_array *a, clattn_dtype *dt)
{
    char err[512];
    if (npy_read(path, a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    char shp[160];
    format_shape(shp, sizeof shp, a->ndim, a->shape);
    int want = cli_get_in_dtype();
    clattn_dtype have;
    switch (a->dtype) {
    case NPY_F32:
        have = CLATTN_F32;
        break;
    case NPY_F16:
        have = CLATTN_F16;
        break;
    case NPY_U16:
    case NPY_V2:
        if (want != CLATTN_BF16)
            return fail(EXIT_USAGE,
                        "%s (%s): dtype %s holds bfloat16 words only with --dtype bf16 (pass it, "
                        "or save the array as float32 or float16)",
                        path, opt, dtype_name(a->dtype));
        have = CLATTN_BF16;
        a->dtype = NPY_U16;
        break;
    default:
        return fail(EXIT_USAGE, "%s (%s): dtype %s, expected float32, float16 or bfloat16", path,
                    opt, dtype_name(a->dtype));
    }
    if (ndim > 0 && a->ndim != ndim)
        return fail(EXIT_USAGE, "%s (%s): shape %s has %d dimensions, expected %d", path, opt,
                    shp, a->ndim, ndim);
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] == 0)
            return fail(EXIT_USAGE, "%s (%s): shape %s has an empty dimension", path, opt, shp);
    if (want >= 0 && (clattn_dtype)want != have) {
        size_t es = clattn_dtype_size((clattn_dtype)want);
        void *t = malloc(a->count * es);
        if (!t)
            return fail(EXIT_RUNTIME, "%s (%s): out of memory", path, opt);
        clattn_convert_host(a->data, have, t, (clattn_dtype)want, a->count);
        free(a->data);
        a->data = t;
        have = (clattn_dtype)want;
        a->dtype = have == CLATTN_F32 ? NPY_F32 : have == CLATTN_F16 ? NPY_F16 : NPY_U16;
    }
    if (ndim == 4 && cli_get_layout() == CLI_LAYOUT_BNHD) {
        size_t es = clattn_dtype_size(have);
        void *t = malloc(a->count * es);
        if (!t)
            return fail(EXIT_RUNTIME, "%s (%s): out of memory", path, opt);
        cli_swap_axes12_bytes(t, a->data, a->shape, es);
        free(a->data);
        a->data = t;
        size_t n = a->shape[1];
        a->shape[1] = a->shape[2];
        a->shape[2] = n;
    }
    *dt = have;
    return 0;
}

int write_tensor(const char *path, const void *data, clattn_dtype dt, int ndim,
                 const size_t *shape)
{
    char err[512];
    void *t = NULL;
    size_t file_shape[8], es = clattn_dtype_size(dt);
    memcpy(file_shape, shape, (size_t)ndim * sizeof *shape);
    if (ndim == 4 && cli_get_layout() == CLI_LAYOUT_BNHD) {
        t = malloc(shape[0] * shape[1] * shape[2] * shape[3] * es);
        if (!t)
            return fail(EXIT_RUNTIME, "%s: out of memory", path);
        cli_swap_axes12_bytes(t, data, shape, es);
        data = t;
        file_shape[1] = shape[2];
        file_shape[2] = shape[1];
    }
    npy_dtype nd = dt == CLATTN_F32 ? NPY_F32 : dt == CLATTN_F16 ? NPY_F16 : NPY_U16;
    int rc = npy_write(path, nd, data, ndim, file_shape, err, sizeof err);
    free(t);
    return rc != 0 ? fail(EXIT_RUNTIME, "%s", err) : 0;
}

/* ---- files ---- */

int load_f32(const char *path, const char *opt, int ndim, npy_array *a)
{
    char err[512];
    if (npy_read(path, a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    char shp[160];
    format_shape(shp, sizeof shp, a->ndim, a->shape);
    if (a->dtype != NPY_F32)
        return fail(EXIT_USAGE, "%s (%s): dtype %s, expected float32", path, opt,
                    dtype_name(a->dtype));
    if (ndim > 0 && a->ndim != ndim)
        return fail(EXIT_USAGE, "%s (%s): shape %s has %d dimensions, expected %d", path, opt,
                    shp, a->ndim, ndim);
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] == 0)
            return fail(EXIT_USAGE, "%s (%s): shape %s has an empty dimension", path, opt, shp);
    if (ndim == 4 && cli_get_layout() == CLI_LAYOUT_BNHD) {
        /* [B, N, H, D] in the file; [B, H, N, D] from here on */
        float *t = malloc(a->count * sizeof *t);
        if (!t)
            return fail(EXIT_RUNTIME, "%s (%s): out of memory", path, opt);
        cli_swap_axes12(t, a->data, a->shape);
        free(a->data);
        a->data = t;
        size_t n = a->shape[1];
        a->shape[1] = a->shape[2];
        a->shape[2] = n;
    }
    return 0;
}

int write_f32(const char *path, const float *data, int ndim, const size_t *shape)
{
    char err[512];
    float *t = NULL;
    size_t file_shape[8];
    memcpy(file_shape, shape, (size_t)ndim * sizeof *shape);
    if (ndim == 4 && cli_get_layout() == CLI_LAYOUT_BNHD) {
        t = malloc(shape[0] * shape[1] * shape[2] * shape[3] * sizeof *t);
        if (!t)
            return fail(EXIT_RUNTIME, "%s: out of memory", path);
        cli_swap_axes12(t, data, shape);
        data = t;
        file_shape[1] = shape[2];
        file_shape[2] = shape[1];
    }
    int rc = npy_write_f32(path, data, ndim, file_shape, err, sizeof err);
    free(t);
    return rc != 0 ? fail(EXIT_RUNTIME, "%s", err) : 0;
}

/* ---- device buffers of a run ---- */

void cli_io_init(cli_io *io, clattn_context *ctx)
{
    memset(io, 0, sizeof *io);
    io->ctx = ctx;
    io->err = ctx ? CL_SUCCESS : CL_INVALID_CONTEXT;
}

static cl_mem io_buffer(cli_io *io, const void *host, void *dst, size_t bytes)
{
    if (io->err != CL_SUCCESS)
        return NULL;
    if (io->n >= CLI_IO_MAX) {
        io->err = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_mem_flags flags = host ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE;
    cl_int err = CL_SUCCESS;
    cl_mem b = clCreateBuffer(clattn_context_get_cl_context(io->ctx), flags, bytes, (void *)host,
                              &err);
    if (err != CL_SUCCESS) { /* OpenCL returns NULL with any error */
        io->err = err;
        return NULL;
    }
    io->buf[io->n] = b;
    io->dst[io->n] = dst;
    io->bytes[io->n] = bytes;
    io->n++;
    return b;
}

cl_mem cli_io_in(cli_io *io, const void *host, size_t bytes)
{
    return io_buffer(io, host, NULL, bytes);
}

cl_mem cli_io_out(cli_io *io, void *dst, size_t bytes)
{
    return io_buffer(io, NULL, dst, bytes);
}

int cli_io_check(const cli_io *io)
{
    if (io->err != CL_SUCCESS)
        return fail(EXIT_RUNTIME, "cannot allocate the device buffers (OpenCL error %d)",
                    (int)io->err);
    return 0;
}

int cli_io_read(cli_io *io, clattn_status st, cl_event done, const char *what)
{
    int rc = 0;
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(io->ctx, st, what);
    } else {
        cl_command_queue queue = clattn_context_get_cl_queue(io->ctx);
        cl_int err = CL_SUCCESS;
        for (size_t i = 0; i < io->n && err == CL_SUCCESS; i++)
            if (io->dst[i])
                err = clEnqueueReadBuffer(queue, io->buf[i], CL_TRUE, 0, io->bytes[i],
                                          io->dst[i], done ? 1 : 0, done ? &done : NULL, NULL);
        if (err != CL_SUCCESS)
            rc = fail(EXIT_RUNTIME, "reading the result back failed (OpenCL error %d)", (int)err);
    }
    if (done)
        clReleaseEvent(done);
    return rc;
}

void cli_io_end(cli_io *io)
{
    if (io->ctx && io->n > 0)
        clattn_context_finish(io->ctx);
    for (size_t i = 0; i < io->n; i++)
        clReleaseMemObject(io->buf[i]);
    io->n = 0;
}

clattn_tensor cli_tensor_typed(cl_mem buffer, const size_t shape[4], clattn_dtype dt)
{
    clattn_tensor t = cli_tensor(buffer, shape);
    t.dtype = dt;
    return t;
}

clattn_tensor cli_tensor(cl_mem buffer, const size_t shape[4])
{
    return clattn_tensor_make(buffer, shape[0], shape[1], shape[2], shape[3]);
}
