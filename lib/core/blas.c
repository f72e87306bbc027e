/* The CLBlast adapter: one row-major SGEMM entry point, and CPU tuning parameters for CLBlast.
 *
 * Why the parameters: CLBlast 1.5.3 picks its kernel parameters from a database keyed on the
 * device vendor string. PoCL on an AMD CPU reports "AuthenticAMD", which CLBlast does not know, so
 * it falls back to its generic (GPU-shaped) defaults. We hand it a CPU set instead, chosen by
 * device type, through CLBlastOverrideParameters. The override is global to CLBlast and per
 * device; giving the same values again for a second context on the same device is harmless. */
#include "internal.h"

#include <clblast_c.h>

#include <stdlib.h>
#include <string.h>

/* Measured with tests/bench_sgemm_params.c on PoCL 3.1 (pthread, 2 vCPU AMD EPYC, AVX-512),
 * row-major SGEMM M=N=K=2048, median of 5 after a warm-up, GFLOP/s (the machine was shared, so
 * figures drift by up to 2x between runs; each figure below was repeated at least twice):
 *   CLBlast's own choice (no override)                                    ~21-24
 *   CLBlast database, Intel CPU "default" {0,1,32,2,16,16,64,8,8,64,0,0,0,0,4,4} ~23
 *   CLBlast database, i7-4790K {0,1,16,2,8,8,128,8,8,128,1,1,1,0,1,8}     ~67
 *   same with KWG=32                                                     ~80
 *   MWG=64 NWG=128 8x8 threads VWM=VWN=8, SA=SB=0                         ~87-91
 *   the set below (same with SA=SB=1)                               ~110-121 (NN), ~106-109 (NT)
 * The only other set in that range was NWG=256 VWN=16 (~110-116 NN, ~106 NT); the smaller NWG
 * was kept because it pads less and gives more work-groups at mid sizes. GEMMK=1 (the 2D
 * register-tiled kernel) crashed in PoCL; VWM=2 sets and 4x4 work-groups ran below 6 GFLOP/s. */
static const char *xgemm_names[] = {"GEMMK", "KREG", "KWG", "KWI",  "MDIMA", "MDIMC",
                                    "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                    "STRM",  "STRN", "VWM", "VWN"};
static const size_t xgemm_cpu[] = {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 1, 1, 0, 0, 8, 8};

/* CLBlast runs small products with its "direct" kernel, which managed only ~9-11 GFLOP/s on PoCL,
 * while the indirect kernel above reached ~43 at M=N=K=256 and ~27 at 128 (direct: ~9). So the
 * indirect path starts at 64 (CLBlast's generic default is 832). */
static const char *routine_names[] = {"XGEMM_MIN_INDIRECT_SIZE"};
static const size_t routine_cpu[] = {64};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *clblast_status_name(CLBlastStatusCode st)
{
    switch (st) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidOverrideKernel: return "CLBlastInvalidOverrideKernel";
    case CLBlastMissingOverrideParameter: return "CLBlastMissingOverrideParameter";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    case CLBlastDatabaseError: return "CLBlastDatabaseError";
    case CLBlastUnknownError: return "CLBlastUnknownError";
    case CLBlastUnexpectedError: return "CLBlastUnexpectedError";
    default: return "CLBlast error";
    }
}

/* True when the user asked to keep CLBlast's own parameters (to compare against them). */
static bool cpu_params_disabled(void)
{
    const char *v = getenv("CLATTN_CLBLAST_CPU_PARAMS");
    return v != NULL && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0);
}

/* Gives CLBlast the CPU parameters once per context. A failed override is not an error for the
 * caller: CLBlast then keeps its own parameters, which are slower but correct (a newer CLBlast
 * that expects other parameter names lands here). */
static void tune_for_cpu(clattn_context *ctx)
{
    bool tuned;
    pthread_mutex_lock(&ctx->lock);
    tuned = ctx->clblast_tuned;
    pthread_mutex_unlock(&ctx->lock);
    if (tuned)
        return;

    /* Outside the lock (it is never held while calling out); two threads racing here give CLBlast
     * the same values twice, which is harmless. */
    CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle, COUNT(xgemm_names),
                              xgemm_names, xgemm_cpu);
    CLBlastOverrideParameters(ctx->device, "GemmRoutine", CLBlastPrecisionSingle,
                              COUNT(routine_names), routine_names, routine_cpu);

    pthread_mutex_lock(&ctx->lock);
    ctx->clblast_tuned = true;
    pthread_mutex_unlock(&ctx->lock);
}

clattn_status clattn__sgemm(clattn_context *ctx, bool trans_b, size_t m, size_t n, size_t k,
                            float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off,
                            size_t ldc, cl_event *event)
{
    return clattn__sgemm_batched(ctx, false, trans_b, m, n, k, alpha, a, a_off, lda, 0, b, b_off,
                                 ldb, 0, beta, c, c_off, ldc, 0, 1, event);
}

clattn_status clattn__sgemm_batched(clattn_context *ctx, bool trans_a, bool trans_b, size_t m,
                                    size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                                    size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                                    size_t ldb, size_t b_stride, float beta, cl_mem c,
                                    size_t c_off, size_t ldc, size_t c_stride, size_t batch,
                                    cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    CLBlastStatusCode st;

    /* CPUs with room for the set's local tiles: rusticl on llvmpipe (a CPU device with 32 KiB of
     * local memory) rejects it with CLBlastInvalidLocalMemUsage and runs CLBlast's defaults. */
    if (ctx->info.device_class == CLATTN_DEVICE_CPU && ctx->info.local_mem_size >= 65536 &&
        !cpu_params_disabled())
        tune_for_cpu(ctx);

    CLBlastTranspose ta = trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    if (batch == 1)
        st = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off,
                          ldb, beta, c, c_off, ldc, &ctx->queue, event);
    else
        st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, a, a_off,
                                        lda, a_stride, b, b_off, ldb, b_stride, beta, c, c_off,
                                        ldc, c_stride, batch, &ctx->queue, event);
    if (st == CLBlastSuccess)
        goto cleanup;

    /* CLBlast passes OpenCL errors through with their own values; its own codes start at -1000. */
    if (st < 0 && st > -1000)
        status = clattn__fail(ctx, (clattn_status)st,
                              "CLBlastSgemm failed: %s (%d) for m=%zu n=%zu k=%zu trans_b=%d "
                              "lda=%zu ldb=%zu ldc=%zu",
                              clattn__cl_error_name((cl_int)st) ? clattn__cl_error_name((cl_int)st)
                                                                : "OpenCL error",
                              (int)st, m, n, k, (int)trans_b, lda, ldb, ldc);
    else
        status = clattn__fail(ctx, CLATTN_BLAS_ERROR,
                              "CLBlastSgemm failed: %s (%d) for m=%zu n=%zu k=%zu trans_b=%d "
                              "lda=%zu ldb=%zu ldc=%zu offsets a=%zu b=%zu c=%zu",
                              clblast_status_name(st), (int)st, m, n, k, (int)trans_b, lda, ldb,
                              ldc, a_off, b_off, c_off);

cleanup:
    return status;
}
