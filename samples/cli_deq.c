/* clattn run deq / clattn bench deq: the DEQ attention cell's fixed point (Bai et al. 2019) by
 * plain iteration, Anderson acceleration or limited-memory Broyden. */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_deq(FILE *f)
{
    fprintf(f,
            "  clattn run deq --x X.npy (--weights W.npz | --seed S) -o Z.npy [--heads 1]\n"
            "         [--causal] [--attention softmax|linear] [--solver anderson|broyden|iterate]\n"
            "         [--tol 1e-5] [--max-iter 50] [--device SEL]\n"
            "      solves z = LayerNorm(z + Attention(z Wq, z Wk, z Wv) Wo + x) from z = 0 for\n"
            "      float32 x [B, N, D] (or [N, D]); W.npz (np.savez, uncompressed) holds float32\n"
            "      wq, wk, wv, wo [D, D] ([in, out]: q = z wq); --seed S draws them uniform in\n"
            "      +-1/sqrt(D). Prints the iterations, f evaluations and the residual\n"
            "      |f(z) - z| / |z|; writes z* only when it reached --tol (exit 1 otherwise)\n"
            "  clattn bench deq [--n 1024] [--d 64] [--batch 1] [--heads 1] [--causal]\n"
            "         [--attention softmax|linear] [--solvers iterate,anderson,broyden]\n"
            "         [--tol 1e-5] [--max-iter 100] [--seed 1] [--csv] [--device SEL]\n"
            "      each solver on the same cell (random x and weights from --seed) from z = 0:\n"
            "      iterations, f evaluations, final residual and wall time to --tol (the second\n"
            "      of two solves), and the median time of one f evaluation\n");
}

static const char *const SOLVERS[] = {"iterate", "anderson", "broyden"};

static int solver_option(const char *cmd, const char *s, clattn_deq_method *m)
{
    for (int i = 0; i < 3; i++)
        if (!s ? i == 1 : strcmp(s, SOLVERS[i]) == 0) {
            *m = (clattn_deq_method)i;
            return 0;
        }
    return fail(EXIT_USAGE, "%s: --solver '%s' is not anderson, broyden or iterate", cmd, s);
}

static int attention_option(const char *cmd, const char *s, clattn_deq_attention *a)
{
    if (!s || strcmp(s, "softmax") == 0)
        *a = CLATTN_DEQ_CELL_SOFTMAX;
    else if (strcmp(s, "linear") == 0)
        *a = CLATTN_DEQ_CELL_LINEAR;
    else
        return fail(EXIT_USAGE, "%s: --attention '%s' is not softmax or linear", cmd, s);
    return 0;
}

/* The weights: from W.npz (each [D, D] float32) or drawn from a seed. w[4 * D * D]. */
static int load_weights(const char *cmd, const char *path, const uint64_t *seed, size_t D,
                        float *w)
{
    static const char *const names[4] = {"wq", "wk", "wv", "wo"};
    for (int i = 0; i < 4; i++) {
        if (seed) {
            fill_random(w + i * D * D, D * D, *seed + (uint64_t)i + 1);
            for (size_t j = 0; j < D * D; j++)
                w[i * D * D + j] /= sqrtf((float)D);
            continue;
        }
        npy_array a;
        char err[512];
        if (npz_read(path, names[i], &a, err, sizeof err) != 0)
            return fail(EXIT_USAGE, "%s: --weights %s", cmd, err);
        int bad = a.dtype != NPY_F32 || a.ndim != 2 || a.shape[0] != D || a.shape[1] != D;
        if (!bad)
            memcpy(w + i * D * D, a.data, D * D * sizeof(float));
        npy_free(&a);
        if (bad)
            return fail(EXIT_USAGE, "%s: --weights %s: %s must be float32 [%zu, %zu]", cmd, path,
                        names[i], D, D);
    }
    return 0;
}

/* The cell and a solver on the device, x and the weights uploaded. */
typedef struct deq_setup {
    cl_mem bw[4], bx, bz;
    clattn_plan *cell, *solver;
} deq_setup;

static void setup_free(deq_setup *s)
{
    clattn_plan_destroy(s->solver);
    clattn_plan_destroy(s->cell);
    for (int i = 0; i < 4; i++)
        if (s->bw[i])
            clReleaseMemObject(s->bw[i]);
    if (s->bx)
        clReleaseMemObject(s->bx);
    if (s->bz)
        clReleaseMemObject(s->bz);
    memset(s, 0, sizeof *s);
}

static cl_mem upload(clattn_context *ctx, const float *src, size_t n, cl_int *err)
{
    if (*err != CL_SUCCESS)
        return NULL;
    return clCreateBuffer(clattn_context_get_cl_context(ctx),
                          CL_MEM_READ_WRITE | (src ? CL_MEM_COPY_HOST_PTR : 0), n * sizeof(float),
                          (void *)src, err);
}

static int setup_make(clattn_context *ctx, const clattn_deq_cell_desc *cd, size_t B, size_t N,
                      size_t D, const float *x, const float *w, deq_setup *s)
{
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < 4; i++)
        s->bw[i] = upload(ctx, w + i * D * D, D * D, &err);
    s->bx = upload(ctx, x, B * N * D, &err);
    s->bz = upload(ctx, NULL, B * N * D, &err);
    if (err != CL_SUCCESS)
        return fail(EXIT_RUNTIME, "cannot allocate the device buffers (OpenCL error %d)", err);
    clattn_status st = clattn_deq_cell_create(ctx, cd, B, N, D, s->bw[0], s->bw[1], s->bw[2],
                                              s->bw[3], &s->cell);
    clattn_tensor tx = clattn_tensor_make(s->bx, B, 1, N, D);
    if (st == CLATTN_SUCCESS)
        st = clattn_deq_cell_set_input(s->cell, &tx);
    return st == CLATTN_SUCCESS ? 0 : fail_status(ctx, st, "DEQ cell");
}

/* z = 0, then a solve; st receives the solver's status. Returns 0 or EXIT_RUNTIME (a failure
 * other than NOT_CONVERGED, reported). */
static int solve_once(clattn_context *ctx, deq_setup *s, size_t B, size_t N, size_t D,
                      clattn_deq_result *r, clattn_status *st)
{
    float zero = 0.0f;
    cl_int e = clEnqueueFillBuffer(clattn_context_get_cl_queue(ctx), s->bz, &zero, sizeof zero, 0,
                                   B * N * D * sizeof(float), 0, NULL, NULL);
    if (e != CL_SUCCESS)
        return fail(EXIT_RUNTIME, "clearing z failed (OpenCL error %d)", e);
    clattn_tensor tz = clattn_tensor_make(s->bz, B, 1, N, D);
    *st = clattn_deq_solve(s->solver, clattn_deq_cell_eval, s->cell, &tz, r);
    if (*st != CLATTN_SUCCESS && *st != CLATTN_NOT_CONVERGED)
        return fail_status(ctx, *st, "DEQ solve");
    return 0;
}

int cli_run_deq(int argc, char **argv)
{
    const char *cmd = "run deq";
    const char *xp = NULL, *wp = NULL, *sp = NULL, *op = NULL, *hp = NULL, *solver = NULL,
               *attn = NULL, *tolp = NULL, *itp = NULL, *device = NULL;
    int help = 0, causal = 0;
    const opt_spec specs[] = {
        {"--x", NULL, &xp, NULL},          {"--weights", NULL, &wp, NULL},
        {"--seed", NULL, &sp, NULL},       {"--out", "-o", &op, NULL},
        {"--heads", NULL, &hp, NULL},      {"--causal", NULL, NULL, &causal},
        {"--solver", NULL, &solver, NULL}, {"--attention", NULL, &attn, NULL},
        {"--tol", NULL, &tolp, NULL},      {"--max-iter", NULL, &itp, NULL},
        {"--device", NULL, &device, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_deq))
        return rc;
    const char *missing = !xp ? "--x" : !op ? "-o" : (!wp && !sp) ? "--weights or --seed" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "%s: missing required option %s", cmd, missing);
    if (wp && sp)
        return fail(EXIT_USAGE, "%s: give --weights or --seed, not both", cmd);
    if ((cli_get_in_dtype() >= 0 && cli_get_in_dtype() != CLATTN_F32) ||
        cli_get_out_dtype() != CLATTN_F32)
        return fail(EXIT_USAGE, "%s: the DEQ solver's iterates and its cell are float32: --dtype "
                    "and --out-dtype take only f32 here", cmd);
    clattn_deq_desc dd;
    clattn_deq_desc_init(&dd);
    clattn_deq_cell_desc cd;
    clattn_deq_cell_desc_init(&cd);
    cd.causal = causal;
    size_t heads = 1, iters = dd.max_iter;
    uint64_t seed = 0;
    float tol = (float)dd.tol;
    if ((rc = solver_option(cmd, solver, &dd.method)) ||
        (rc = attention_option(cmd, attn, &cd.attention)) ||
        (hp && (rc = size_option(cmd, "--heads", hp, 1, 4096, &heads))) ||
        (itp && (rc = size_option(cmd, "--max-iter", itp, 1, 100000, &iters))) ||
        (tolp && (rc = float_option(cmd, "--tol", tolp, 0.0f, INFINITY, 0, &tol))) ||
        (sp && (rc = seed_option(cmd, "--seed", sp, &seed))))
        return rc;
    cd.heads = (unsigned)heads;
    dd.max_iter = (unsigned)iters;
    dd.tol = tol;

    npy_array x;
    float *w = NULL, *z = NULL;
    clattn_context *ctx = NULL;
    deq_setup s;
    memset(&s, 0, sizeof s);
    if ((rc = load_f32(xp, "--x", 0, &x)))
        goto cleanup;
    if (x.ndim != 2 && x.ndim != 3) {
        rc = fail(EXIT_USAGE, "%s: --x %s must be [B, N, D] or [N, D]", cmd, xp);
        goto cleanup;
    }
    size_t B = x.ndim == 3 ? x.shape[0] : 1, N = x.shape[x.ndim - 2], D = x.shape[x.ndim - 1];
    if (D % heads != 0 || D / heads > MAX_HEAD_DIM) {
        rc = fail(EXIT_USAGE, "%s: --heads %zu must divide D = %zu into heads of at most %d",
                  cmd, heads, D, MAX_HEAD_DIM);
        goto cleanup;
    }
    w = malloc(4 * D * D * sizeof *w);
    z = malloc(B * N * D * sizeof *z);
    if (!w || !z) {
        rc = fail(EXIT_RUNTIME, "out of memory");
        goto cleanup;
    }
    if ((rc = load_weights(cmd, wp, sp ? &seed : NULL, D, w)))
        goto cleanup;
    if ((rc = open_context(device, &ctx)) ||
        (rc = setup_make(ctx, &cd, B, N, D, (const float *)x.data, w, &s)))
        goto cleanup;
    const size_t shape[4] = {B, 1, N, D};
    clattn_status st = clattn_deq_plan_create(ctx, &dd, shape, &s.solver);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "DEQ solver");
        goto cleanup;
    }
    clattn_deq_result r;
    if ((rc = solve_once(ctx, &s, B, N, D, &r, &st)))
        goto cleanup;
    printf("%s: %u iterations, %u f evaluations, residual %.3e (tol %.1e)%s\n",
           SOLVERS[dd.method], r.iterations, r.f_evals, r.residual, dd.tol,
           r.converged ? "" : ": NOT CONVERGED");
    if (st == CLATTN_NOT_CONVERGED) {
        rc = fail(EXIT_RUNTIME, "%s: %s did not reach --tol %g in %u evaluations (residual %.3e)",
                  cmd, SOLVERS[dd.method], dd.tol, r.f_evals, r.residual);
        goto cleanup;
    }
    cl_int e = clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), s.bz, CL_TRUE, 0,
                                   B * N * D * sizeof(float), z, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        rc = fail(EXIT_RUNTIME, "reading z back failed (OpenCL error %d)", e);
        goto cleanup;
    }
    rc = write_f32(op, z, x.ndim, x.shape);
    if (rc == 0)
        cli_run_summary(ctx, "deq", s.solver);
cleanup:
    if (ctx)
        clattn_context_finish(ctx);
    setup_free(&s);
    clattn_context_destroy(ctx);
    npy_free(&x);
    free(w);
    free(z);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

int cli_bench_deq(int argc, char **argv)
{
    const char *cmd = "bench deq";
    const char *np = NULL, *dp = NULL, *bp = NULL, *hp = NULL, *attn = NULL, *list = NULL,
               *tolp = NULL, *itp = NULL, *sp = NULL, *device = NULL;
    int help = 0, causal = 0, csv = 0;
    const opt_spec specs[] = {
        {"--n", NULL, &np, NULL},           {"--d", NULL, &dp, NULL},
        {"--batch", NULL, &bp, NULL},       {"--heads", NULL, &hp, NULL},
        {"--causal", NULL, NULL, &causal},  {"--attention", NULL, &attn, NULL},
        {"--solvers", NULL, &list, NULL},   {"--tol", NULL, &tolp, NULL},
        {"--max-iter", NULL, &itp, NULL},   {"--seed", NULL, &sp, NULL},
        {"--csv", NULL, NULL, &csv},        {"--device", NULL, &device, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_deq))
        return rc;
    size_t N = 1024, D = 64, B = 1, heads = 1, iters = 100;
    uint64_t seed = 1;
    float tol = 1e-5f;
    clattn_deq_cell_desc cd;
    clattn_deq_cell_desc_init(&cd);
    cd.causal = causal;
    int order[3], count = 0;
    if ((np && (rc = size_option(cmd, "--n", np, 1, (size_t)1 << 20, &N))) ||
        (dp && (rc = size_option(cmd, "--d", dp, 1, 4096, &D))) ||
        (bp && (rc = size_option(cmd, "--batch", bp, 1, 4096, &B))) ||
        (hp && (rc = size_option(cmd, "--heads", hp, 1, 4096, &heads))) ||
        (itp && (rc = size_option(cmd, "--max-iter", itp, 1, 100000, &iters))) ||
        (tolp && (rc = float_option(cmd, "--tol", tolp, 0.0f, INFINITY, 0, &tol))) ||
        (sp && (rc = seed_option(cmd, "--seed", sp, &seed))) ||
        (rc = attention_option(cmd, attn, &cd.attention)) ||
        (rc = parse_variant_list(cmd, list, SOLVERS, 3, order, &count)))
        return rc;
    if (D % heads != 0 || D / heads > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: --heads %zu must divide --d %zu into heads of at most %d",
                    cmd, heads, D, MAX_HEAD_DIM);
    cd.heads = (unsigned)heads;
    float *x = malloc(B * N * D * sizeof *x), *w = malloc(4 * D * D * sizeof *w);
    clattn_context *ctx = NULL;
    deq_setup s;
    memset(&s, 0, sizeof s);
    if (!x || !w) {
        rc = fail(EXIT_RUNTIME, "out of memory");
        goto cleanup;
    }
    fill_random(x, B * N * D, seed);
    if ((rc = load_weights(cmd, NULL, &seed, D, w)) || (rc = bench_open(device, &ctx)) ||
        (rc = setup_make(ctx, &cd, B, N, D, x, w, &s)))
        goto cleanup;
    /* one f evaluation: warm (CLBlast builds its kernels), then the median of 5 */
    double t[5], f_ms = NAN;
    clattn_tensor tz = clattn_tensor_make(s.bz, B, 1, N, D);
    cl_mem bo = NULL;
    cl_int e = CL_SUCCESS;
    bo = upload(ctx, NULL, B * N * D, &e);
    if (e != CL_SUCCESS) {
        rc = fail(EXIT_RUNTIME, "cannot allocate the device buffers (OpenCL error %d)", e);
        goto cleanup;
    }
    clattn_tensor to = clattn_tensor_make(bo, B, 1, N, D);
    clattn_status st = CLATTN_SUCCESS;
    for (int i = -1; i < 5 && st == CLATTN_SUCCESS; i++) {
        double t0 = now_ms();
        st = clattn_deq_cell_eval(s.cell, &tz, &to, 0, NULL, NULL);
        if (st == CLATTN_SUCCESS)
            st = clattn_context_finish(ctx);
        if (i >= 0)
            t[i] = now_ms() - t0;
    }
    clReleaseMemObject(bo);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "DEQ cell");
        goto cleanup;
    }
    f_ms = median(t, 5);
    if (csv)
        printf("solver,batch,n,d,heads,causal,iterations,f_evals,residual,converged,ms,f_ms\n");
    else
        printf("DEQ cell B %zu N %zu D %zu heads %zu %s%s, tol %.1e, max %zu evaluations; one f "
               "evaluation %.3f ms\n%-10s %10s %8s %12s %10s %12s\n",
               B, N, D, heads, cd.attention == CLATTN_DEQ_CELL_SOFTMAX ? "softmax" : "linear",
               causal ? " causal" : "", (double)tol, iters, f_ms, "solver", "iterations",
               "f_evals", "residual", "converged", "ms");
    int failed = 0;
    for (int i = 0; i < count; i++) {
        clattn_deq_desc dd;
        clattn_deq_desc_init(&dd);
        dd.method = (clattn_deq_method)order[i];
        dd.tol = tol;
        dd.max_iter = (unsigned)iters;
        const size_t shape[4] = {B, 1, N, D};
        clattn_plan_destroy(s.solver);
        s.solver = NULL;
        st = clattn_deq_plan_create(ctx, &dd, shape, &s.solver);
        if (st != CLATTN_SUCCESS) {
            rc = fail_status(ctx, st, "DEQ solver");
            goto cleanup;
        }
        /* a first solve warms what the device compiles on first use, then the timed one */
        clattn_deq_result r;
        if ((rc = solve_once(ctx, &s, B, N, D, &r, &st)))
            goto cleanup;
        double t0 = now_ms();
        if ((rc = solve_once(ctx, &s, B, N, D, &r, &st)))
            goto cleanup;
        double ms = now_ms() - t0;
        failed |= !r.converged;
        if (csv)
            printf("%s,%zu,%zu,%zu,%zu,%d,%u,%u,%.3e,%d,%.3f,%.3f\n", SOLVERS[order[i]], B, N, D,
                   heads, causal, r.iterations, r.f_evals, r.residual, r.converged, ms, f_ms);
        else
            printf("%-10s %10u %8u %12.3e %10s %12.3f\n", SOLVERS[order[i]], r.iterations,
                   r.f_evals, r.residual, r.converged ? "yes" : "NO", ms);
    }
    if (failed)
        fprintf(stderr, "clattn: note: a solver did not reach --tol %g within --max-iter %zu\n",
                (double)tol, iters);
cleanup:
    if (ctx)
        clattn_context_finish(ctx);
    setup_free(&s);
    clattn_context_destroy(ctx);
    free(x);
    free(w);
    return rc;
}
