/* Measurement helpers for benchmarks and the tuner: the FMA ceiling (the public SGEMM entry is in
 * blas.c). */
#include "internal.h"

#include <stdio.h>

#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

clattn_status clattn_measure_peak_gflops(clattn_context *ctx, double *gflops)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    cl_kernel kern = NULL;
    cl_mem buf = NULL;
    cl_int err;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "peak: ctx is NULL");
    CLATTN_CHECK(gflops != NULL, CLATTN_NULL_POINTER, "peak: gflops is NULL");
    /* The loop count and the independent float16 FMA chains of bench.cl, passed to it here. */
    const int iters = 4096, chains = 8;
    char opts[64];
    snprintf(opts, sizeof opts, "-DBENCH_ITERS=%d -DBENCH_CHAINS=%d", iters, chains);
    CLATTN_FORWARD(clattn__program_get(ctx, "bench.cl", opts, &prog));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_bench_peak", &kern));
    /* Enough work-items to fill every compute unit many times over and to run for tens of
     * milliseconds (GPUs need thousands of resident items to hide latency). Timed by the wall
     * clock around enqueue + finish, which can only understate the peak: PoCL's profiling
     * timestamps overstated it under load (over 490 GFLOP/s on two vCPUs whose FMA units allow
     * about 380). */
    size_t per_cu = 4096;
    size_t global = per_cu * ctx->info.compute_units;
    size_t local = ctx->info.max_work_group_size >= 64 ? 64 : ctx->info.max_work_group_size;
    global = clattn__div_up(global, local) * local;
    buf = clCreateBuffer(ctx->cl_ctx, CL_MEM_WRITE_ONLY, global * sizeof(float), NULL, &err);
    CLATTN_CL(err);
    cl_float a = 0.999f, b = 1e-3f;
    CLATTN_CL(clSetKernelArg(kern, 0, sizeof buf, &buf));
    CLATTN_CL(clSetKernelArg(kern, 1, sizeof a, &a));
    CLATTN_CL(clSetKernelArg(kern, 2, sizeof b, &b));
    /* Median of 5 timed runs after one warm-up (which also compiles on PoCL): shared machines are
     * noisy, and the best of a few runs overstates what attention can be compared against. */
    double rates[5];
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now_ms();
        CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, kern, 1, NULL, &global, &local, 0, NULL, NULL));
        CLATTN_CL(clFinish(ctx->queue));
        double ms = now_ms() - t0;
        if (rep > 0)
            rates[rep - 1] = ms > 0 ? (double)global * iters * chains * 16 * 2 / (ms * 1e6) : 0;
    }
    for (int i = 1; i < 5; i++) /* insertion sort of five */
        for (int j = i; j > 0 && rates[j] < rates[j - 1]; j--) {
            double t = rates[j];
            rates[j] = rates[j - 1];
            rates[j - 1] = t;
        }
    *gflops = rates[2];
cleanup:
    if (kern)
        clReleaseKernel(kern);
    if (buf)
        clReleaseMemObject(buf);
    return status;
}
