/* The CLBlast adapter: row-major SGEMM entry points (the internal ones and the public
 * clattn_sgemm_enqueue, which validates its arguments first), CPU tuning parameters for CLBlast,
 * and the release of CLBlast's programs for a context being destroyed.
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

    /* From now on CLBlast's program cache holds programs (and so references) of this context. */
    pthread_mutex_lock(&ctx->lock);
    ctx->clblast_used = true;
    pthread_mutex_unlock(&ctx->lock);

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

/* ---- the public entry point ---- */

/* One matrix operand: `rows` rows of `cols` floats, row stride `ld`, from element `off`. */
typedef struct gemm_operand {
    cl_mem buf;
    size_t off, ld, rows, cols;
    const char *name;
    size_t first, end; /* byte range it reaches, set by operand_check */
} gemm_operand;

static clattn_status operand_check(clattn_context *ctx, gemm_operand *x)
{
    if (x->ld < x->cols)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "sgemm: ld%s %zu is below the row length %zu of %s", x->name, x->ld,
                            x->cols, x->name);
    size_t span, elems, bytes, size = 0;
    if (!clattn__mul_ok(x->rows - 1, x->ld, &span) || span > SIZE_MAX - x->cols ||
        span + x->cols > SIZE_MAX - x->off ||
        !clattn__mul_ok(x->off + span + x->cols, sizeof(float), &bytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "sgemm: the extent of %s overflows",
                            x->name);
    elems = x->off + span + x->cols;
    cl_int err = clGetMemObjectInfo(x->buf, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "sgemm: %s is not a valid cl_mem (%s)",
                            x->name, clattn_status_string((clattn_status)err));
    if (bytes > size)
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL,
                            "sgemm: %s [%zu x %zu] at offset %zu with ld %zu reaches %zu floats "
                            "(%zu bytes) but its buffer holds %zu bytes",
                            x->name, x->rows, x->cols, x->off, x->ld, elems, bytes, size);
    x->first = x->off * sizeof(float);
    x->end = bytes;
    return CLATTN_SUCCESS;
}

static bool operands_overlap(const gemm_operand *x, const gemm_operand *y)
{
    return x->buf == y->buf && x->first < y->end && y->first < x->end;
}

clattn_status clattn_sgemm_enqueue(clattn_context *ctx, int trans_b, size_t m, size_t n, size_t k,
                                   float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                                   size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off,
                                   size_t ldc, cl_uint num_wait, const cl_event *wait,
                                   cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool seq = false;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "sgemm: ctx is NULL");
    CLATTN_CHECK(a && b && c, CLATTN_NULL_POINTER, "sgemm: a, b and c are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "sgemm: num_wait %u with wait NULL",
                 (unsigned)num_wait);
    CLATTN_FORWARD(clattn__check_flag(ctx, trans_b, "sgemm trans_b"));
    CLATTN_CHECK(m > 0 && n > 0 && k > 0, CLATTN_INVALID_SHAPE,
                 "sgemm: m, n, k must be >= 1 (got %zu, %zu, %zu)", m, n, k);
    gemm_operand oa = {a, a_off, lda, m, k, "A", 0, 0};
    gemm_operand ob = {b, b_off, ldb, trans_b ? n : k, trans_b ? k : n, "B", 0, 0};
    gemm_operand oc = {c, c_off, ldc, m, n, "C", 0, 0};
    CLATTN_FORWARD(operand_check(ctx, &oa));
    CLATTN_FORWARD(operand_check(ctx, &ob));
    CLATTN_FORWARD(operand_check(ctx, &oc));
    CLATTN_CHECK(!operands_overlap(&oc, &oa) && !operands_overlap(&oc, &ob), CLATTN_ALIASING,
                 "sgemm: C overlaps %s in the same buffer", operands_overlap(&oc, &oa) ? "A" : "B");

    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(clattn__seq_library(&s, true, event));
    CLATTN_FORWARD(clattn__sgemm(ctx, trans_b != 0, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
                                 beta, c, c_off, ldc, s.evp));
    clattn__seq_done(&s);
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

void clattn__blas_release(clattn_context *ctx)
{
    bool used;
    pthread_mutex_lock(&ctx->lock);
    used = ctx->clblast_used;
    pthread_mutex_unlock(&ctx->lock);
    /* CLBlast 1.5 keeps every program it built in a process-wide cache keyed by (cl_context,
     * device, precision, routine), and each program holds a reference to its context, so a
     * caller's cl_context would outlive clattn_context_destroy by one reference per program.
     * CLBlast has no per-context eviction: CLBlastClearCache drops the programs (and compiled
     * binaries) of every context, which other contexts then rebuild on their next CLBlast call
     * (from the driver's own kernel cache where it has one). Done only for a context that ran a
     * CLBlast routine. */
    if (used)
        CLBlastClearCache();
}
