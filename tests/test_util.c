/* Helpers shared by the device test suites (see test_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

clattn_tensor tu_view(cl_mem buf, size_t B, size_t H, size_t N, size_t D, int bnhd)
{
    clattn_tensor t = clattn_tensor_make(buf, B, H, N, D);
    if (bnhd) {
        t.strides[3] = 1;
        t.strides[1] = D;
        t.strides[2] = H * D;
        t.strides[0] = N * H * D;
    }
    return t;
}

float *tu_relayout(const float *x, size_t B, size_t H, size_t N, size_t D, int to_bnhd)
{
    float *y = malloc(B * H * N * D * sizeof(float) + 1);
    if (!y) {
        fprintf(stderr, "tu_relayout: out of memory\n");
        abort();
    }
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t n = 0; n < N; n++)
                for (size_t d = 0; d < D; d++) {
                    size_t bhnd = ((b * H + h) * N + n) * D + d;
                    size_t bnhd = ((b * N + n) * H + h) * D + d;
                    if (to_bnhd)
                        y[bnhd] = x[bhnd];
                    else
                        y[bhnd] = x[bnhd];
                }
    return y;
}

cl_mem tu_buffer(clattn_context *ctx, size_t bytes, const void *init)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE,
                              bytes ? bytes : 4, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    if (init && bytes)
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0,
                                              bytes, init, 0, NULL, NULL),
                         CL_SUCCESS);
    return m;
}

void tu_read(clattn_context *ctx, cl_mem m, size_t bytes, void *dst)
{
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, bytes,
                                         dst, 0, NULL, NULL),
                     CL_SUCCESS);
}
