/* Throwaway measurement: SGEMM GFLOP/s through CLBlast on the first CPU OpenCL device (PoCL here),
 * with CLBlast's own choice of parameters or with a parameter set handed over by
 * CLBlastOverrideParameters. Not registered with ctest; built by hand:
 *
 *   gcc -std=c11 -O2 -o /tmp/bench_sgemm tests/bench_sgemm_params.c -lclblast -lOpenCL -lm
 *   /tmp/bench_sgemm <set> [n] [nt]      (set: see the table below; "default" overrides nothing)
 *
 * Each parameter set must run in its own process: CLBlast keeps its overrides and compiled
 * programs for the life of the process. */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast_c.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *xgemm_names[16] = {"GEMMK", "KREG", "KWG",   "KWI",  "MDIMA", "MDIMC",
                                            "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                            "STRM",  "STRN",  "VWM",   "VWN"};

typedef struct param_set {
    const char *name;
    size_t xgemm[16];
} param_set;

/* GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA SB STRM STRN VWM VWN */
static const param_set sets[] = {
    /* CLBlast database, Intel CPU "default" entry */
    {"intel_default", {0, 1, 32, 2, 16, 16, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4}},
    /* CLBlast database, i7-4790K (Haswell) */
    {"i7_4790k", {0, 1, 16, 2, 8, 8, 128, 8, 8, 128, 1, 1, 1, 0, 1, 8}},
    /* CLBlast database, i7-3770 */
    {"i7_3770", {0, 1, 32, 2, 32, 8, 128, 8, 8, 128, 1, 1, 1, 1, 2, 8}},
    /* CLBlast database, i5-6200U (Skylake) */
    {"i5_6200u", {0, 1, 32, 8, 32, 32, 64, 32, 16, 64, 1, 1, 1, 0, 2, 2}},
    /* CLBlast database, Xeon E5-2630 v3 */
    {"e5_2630v3", {0, 1, 32, 2, 16, 8, 32, 8, 32, 128, 1, 1, 1, 1, 1, 4}},
    /* CLBlast database, i7-2670QM */
    {"i7_2670qm", {0, 1, 16, 2, 8, 8, 128, 16, 8, 128, 0, 1, 1, 1, 1, 8}},
    /* CLBlast database, i5-4590S, the 2D register-tiled kernel */
    {"i5_4590s_k1", {1, 16, 1, 1, 2, 2, 64, 2, 2, 128, 0, 0, 0, 0, 8, 2}},
    /* variations: wide vectors along M (AVX-512 holds 16 floats) */
    {"v_m8", {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 8, 4}},
    {"v_m16", {0, 1, 32, 2, 8, 8, 128, 8, 8, 64, 0, 0, 0, 0, 16, 4}},
    {"v_n8", {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 4, 8}},
    {"v_n16", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 4, 16}},
    /* variations: larger tiles */
    {"v_128x128", {0, 1, 32, 2, 16, 16, 128, 16, 16, 128, 0, 0, 0, 0, 4, 4}},
    {"v_128x128_w8", {0, 1, 32, 2, 16, 16, 128, 16, 16, 128, 0, 0, 0, 0, 8, 8}},
    {"v_64x128_n8", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 8, 8}},
    {"v_4790k_k32", {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 1, 1, 1, 0, 1, 8}},
    {"v_4790k_n16", {0, 1, 16, 2, 8, 8, 128, 8, 8, 128, 1, 1, 1, 0, 1, 16}},
    {"v_4790k_m2", {0, 1, 16, 2, 8, 8, 128, 8, 8, 128, 1, 1, 1, 0, 2, 8}},
    {"v_4790k_sa0", {0, 1, 16, 2, 8, 8, 128, 8, 8, 128, 0, 0, 1, 0, 1, 8}},
    {"v_4790k_wg4", {0, 1, 16, 2, 4, 4, 128, 4, 4, 128, 1, 1, 1, 0, 1, 8}},
    {"v_4790k_256", {0, 1, 16, 2, 8, 8, 128, 16, 8, 256, 1, 1, 1, 0, 1, 16}},
    {"w_64x128_k16", {0, 1, 16, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 8, 8}},
    {"w_64x128_k64", {0, 1, 64, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 8, 8}},
    {"w_64x128_sab", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 1, 1, 0, 0, 8, 8}},
    {"w_128x128_8x8", {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 0, 0, 0, 0, 8, 8}},
    {"w_64x256_n16", {0, 1, 32, 2, 8, 8, 64, 8, 8, 256, 0, 0, 0, 0, 8, 16}},
    {"w_64x128_m4", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 4, 8}},
    {"w_64x128_n16", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 8, 16}},
    {"w_64x128_kwi8", {0, 1, 32, 8, 8, 8, 64, 8, 8, 128, 0, 0, 0, 0, 8, 8}},
    {"w_4790k_k32_256", {0, 1, 32, 2, 8, 8, 128, 16, 8, 256, 1, 1, 1, 0, 1, 16}},
    {"x_sab_k16", {0, 1, 16, 2, 8, 8, 64, 8, 8, 128, 1, 1, 0, 0, 8, 8}},
    {"x_sab_64x256", {0, 1, 32, 2, 8, 8, 64, 8, 8, 256, 1, 1, 0, 0, 8, 16}},
    {"x_sab_strm", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 1, 1, 1, 0, 8, 8}},
    {"x_sab_128x128", {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 1, 1, 0, 0, 8, 8}},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *set_name = argc > 1 ? argv[1] : "default";
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 2048;
    int trans_b = argc > 3 && strcmp(argv[3], "nt") == 0;

    cl_platform_id platforms[8];
    cl_uint np = 0;
    cl_device_id dev = NULL;
    clGetPlatformIDs(8, platforms, &np);
    for (cl_uint i = 0; i < np && !dev; ++i)
        if (clGetDeviceIDs(platforms[i], CL_DEVICE_TYPE_CPU, 1, &dev, NULL) != CL_SUCCESS)
            dev = NULL;
    if (!dev) {
        fprintf(stderr, "no CPU device\n");
        return 1;
    }
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &err);

    if (strcmp(set_name, "default") != 0) {
        const param_set *ps = NULL;
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; ++i)
            if (strcmp(sets[i].name, set_name) == 0)
                ps = &sets[i];
        if (!ps) {
            fprintf(stderr, "unknown set %s\n", set_name);
            return 1;
        }
        CLBlastStatusCode st = CLBlastOverrideParameters(dev, "Xgemm", CLBlastPrecisionSingle, 16,
                                                         xgemm_names, ps->xgemm);
        if (st != CLBlastSuccess) {
            fprintf(stderr, "override failed: %d\n", (int)st);
            return 1;
        }
    }

    size_t elems = n * n;
    float *ha = malloc(elems * sizeof(float)), *hb = malloc(elems * sizeof(float));
    float *hc = malloc(elems * sizeof(float));
    srand(1);
    for (size_t i = 0; i < elems; ++i) {
        ha[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        hb[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    }
    cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, elems * 4, ha, &err);
    cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, elems * 4, hb, &err);
    cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, elems * 4, NULL, &err);

    double times[5];
    for (int it = -1; it < 5; ++it) {
        double t0 = now_s();
        CLBlastStatusCode st =
            CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                         trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, n, n, n, 1.0f, a, 0,
                         n, b, 0, n, 0.0f, c, 0, n, &q, NULL);
        clFinish(q);
        double t = now_s() - t0;
        if (st != CLBlastSuccess) {
            fprintf(stderr, "sgemm failed: %d\n", (int)st);
            return 1;
        }
        if (it < 0)
            fprintf(stderr, "%s: first call (compile + run) %.2f s\n", set_name, t);
        else
            times[it] = t;
    }
    qsort(times, 5, sizeof times[0], cmp_double);

    /* spot check a few entries against a double-precision dot product */
    clEnqueueReadBuffer(q, c, CL_TRUE, 0, elems * 4, hc, 0, NULL, NULL);
    double max_err = 0.0;
    for (size_t s = 0; s < 64; ++s) {
        size_t i = (s * 7919u) % n, j = (s * 104729u) % n;
        double ref = 0.0;
        for (size_t p = 0; p < n; ++p)
            ref += (double)ha[i * n + p] * (trans_b ? hb[j * n + p] : hb[p * n + j]);
        double e = fabs(ref - (double)hc[i * n + j]);
        if (e > max_err)
            max_err = e;
    }
    double gflops = 2.0 * (double)n * (double)n * (double)n / times[2] * 1e-9;
    printf("%-14s n=%zu %s median %.4f s  %.1f GFLOP/s  (min %.4f max %.4f)  max_abs_err %.2e\n",
           set_name, n, trans_b ? "NT" : "NN", times[2], gflops, times[0], times[4], max_err);

    clReleaseMemObject(a);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    free(ha);
    free(hb);
    free(hc);
    return max_err > 1e-2 ? 2 : 0;
}
