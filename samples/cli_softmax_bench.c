/* clattn bench softmax (and the demo's softmax part): exact attention timed through the plan
 * API, with the option variants of issue 16 (their scenarios in cli_softmax_bench_opts.c); usage
 * and `run softmax` are in cli_softmax.c. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"
#include "cli_softmax.h"
#include "cli_softmax_bench.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------- */
/* clattn bench softmax                                                                           */
/* ---------------------------------------------------------------------------------------------- */

static const char *const VARIANT_NAMES[V_COUNT] = {
    "tiled", "tiled-cpu", "tiled-gpu", "tiled-gpu-rows", "naive", "sgemm", "peak",
    "window", "blocksparse", "bias", "d512"};
static const clattn_softmax_algo VARIANT_ALGO[V_COUNT] = {
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_TILED_GPU,
    CLATTN_SOFTMAX_TILED_GPU_ROWS, CLATTN_SOFTMAX_NAIVE,
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO,
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO};

typedef struct plan_job {
    clattn_plan *plan;
    clattn_tensor t[5]; /* q, k, v, out, lse */
} plan_job;

/* Five buffers of one bench point: q [B,H,Nq,D], k, v [B,H,Nk,D] random in [-1, 1) rounded to dt,
 * out [B,H,Nq,D] of dt and lse [B,H,Nq] float32. CL_SUCCESS or the error (bufs all NULL). */
cl_int cli_softmax_typed_buffers(clattn_context *ctx, clattn_dtype dt, size_t nq_el,
                                 size_t nk_el, size_t rows, cl_mem bufs[5])
{
    cl_context clctx = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    size_t es = clattn_dtype_size(dt), big = nq_el > nk_el ? nq_el : nk_el;
    const size_t sizes[5] = {nq_el * es, nk_el * es, nk_el * es, nq_el * es, rows * 4};
    float *host = malloc(big * sizeof *host);
    void *conv = malloc(big * es);
    cl_int err = host && conv ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
    for (int i = 0; i < 5; i++)
        bufs[i] = NULL;
    for (int i = 0; i < 5 && err == CL_SUCCESS; i++) {
        bufs[i] = clCreateBuffer(clctx, i < 3 ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE, sizes[i],
                                 NULL, &err);
        if (err == CL_SUCCESS && i < 3) {
            size_t n = sizes[i] / es;
            fill_random(host, n, (uint64_t)i + 1);
            if (clattn_convert_host(host, CLATTN_F32, conv, dt, n) != CLATTN_SUCCESS)
                err = CL_INVALID_VALUE;
            else
                err = clEnqueueWriteBuffer(queue, bufs[i], CL_TRUE, 0, sizes[i], conv, 0, NULL,
                                           NULL);
        }
    }
    free(host);
    free(conv);
    if (err != CL_SUCCESS)
        release_buffers(bufs, 5);
    return err;
}

/* The wall clock is used for every variant because the tiled CPU family runs a packing kernel
 * before the one whose event the plan returns. */
static clattn_status plan_enqueue(void *arg)
{
    plan_job *j = arg;
    return clattn_softmax_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], &j->t[4],
                                       0, NULL, NULL);
}

/* Bakes `desc` for q [B,H,nq,d], k and v [B,H,n,d] (its option tensors set by the caller) and
 * times it on bufs (typed_buffers of that shape); row `name` with FLOPs 4*B*H*pairs*d, pairs
 * being the (query, key) pairs the options keep. 0 with *sr filled, or -1 after a note. */
int cli_softmax_time_desc(clattn_context *ctx, const bench_config *cfg,
                          const clattn_softmax_desc *desc, size_t nq, size_t n, size_t d,
                          double pairs, const char *name, cl_mem bufs[5],
                          const progress *prog, softmax_row *sr)
{
    bench_row *r = &sr->b;
    clattn_dtype dt = desc->q_dtype;
    const size_t qshape[4] = {cfg->batch, cfg->heads, nq, d};
    const size_t kshape[4] = {cfg->batch, cfg->heads, n, d};
    plan_job job;
    memset(&job, 0, sizeof job);

    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, desc, qshape, kshape, kshape, &job.plan);
    r->build_ms = now_ms() - t0;
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s %s N=%zu D=%zu skipped: %s", name, clattn_dtype_name(dt), n, d,
             lib_error(ctx, st));
        return -1;
    }
    clattn_plan_info pi;
    size_t scratch = 0;
    if (clattn_plan_get_info(job.plan, &pi) == CLATTN_SUCCESS) {
        snprintf(r->kernel, sizeof r->kernel, "%s", pi.variant);
        scratch = pi.scratch_bytes;
    }
    job.t[0] = clattn_tensor_make_typed(bufs[0], dt, cfg->batch, cfg->heads, nq, d);
    job.t[1] = clattn_tensor_make_typed(bufs[1], dt, cfg->batch, cfg->heads, n, d);
    job.t[2] = clattn_tensor_make_typed(bufs[2], dt, cfg->batch, cfg->heads, n, d);
    job.t[3] = clattn_tensor_make_typed(bufs[3], dt, cfg->batch, cfg->heads, nq, d);
    job.t[4] = clattn_tensor_make(bufs[4], cfg->batch, cfg->heads, nq, 1);
    st = time_median(ctx, plan_enqueue, &job, cfg->reps, &r->ms);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s %s N=%zu D=%zu failed: %s", name, clattn_dtype_name(dt), n, d,
             lib_error(ctx, st));
    clattn_plan_destroy(job.plan);
    if (st != CLATTN_SUCCESS)
        return -1;
    snprintf(r->op, sizeof r->op, "softmax");
    snprintf(r->variant, sizeof r->variant, "%s", name);
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = nq;
    r->nk = n;
    r->d = d;
    r->causal = desc->causal;
    r->gflops = 4.0 * (double)cfg->batch * (double)cfg->heads * pairs * (double)d / (r->ms * 1e6);
    double bh = (double)cfg->batch * (double)cfg->heads, es = (double)clattn_dtype_size(dt);
    double io = bh * ((2.0 * (double)nq + 2.0 * (double)n) * (double)d * es + 4.0 * (double)nq);
    sr->dtype = dt;
    sr->bytes = io;
    sr->footprint = io + (double)scratch;
    return 0;
}

/* Bakes and times one attention variant at length n; 0 with *r filled, or -1 after a note. */
static int bench_attention(clattn_context *ctx, const bench_config *cfg, size_t n, clattn_dtype dt,
                           variant_id var, cl_mem bufs[5], const progress *prog, softmax_row *sr)
{
    size_t nq = cfg->nq ? cfg->nq : n;
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = cfg->causal;
    desc.algorithm = VARIANT_ALGO[var];
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.out_dtype = dt;
    double pairs = (double)nq * (double)n;
    return cli_softmax_time_desc(ctx, cfg, &desc, nq, n, cfg->d, cfg->causal ? pairs / 2 : pairs,
                                 VARIANT_NAMES[var], bufs, prog, sr);
}

/* Every attention variant at one length and element type, sharing one set of inputs. Returns
 * rows added. */
static size_t bench_length(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, size_t n, clattn_dtype dt, progress *prog,
                           softmax_row *res)
{
    size_t nattn = 0, added = 0;
    for (int i = 0; i < cfg->n_variants; i++)
        nattn += IS_ATTENTION(cfg->order[i]);
    if (nattn == 0)
        return 0;
    size_t nq = cfg->nq ? cfg->nq : n;
    size_t bh = cfg->batch * cfg->heads; /* all bounded by the option ranges */
    size_t nq_el = bh * nq * cfg->d, nk_el = bh * n * cfg->d, big = nq_el > nk_el ? nq_el : nk_el;
    cl_mem bufs[5];
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (big * clattn_dtype_size(dt) <= info->max_alloc_size)
        err = cli_softmax_typed_buffers(ctx, dt, nq_el, nk_el, bh * nq, bufs);
    if (err != CL_SUCCESS) {
        note(prog,
             "N=%zu %s skipped: cannot allocate its tensors (largest %zu bytes, max allocation "
             "%llu; OpenCL error %d)",
             n, clattn_dtype_name(dt), big * clattn_dtype_size(dt),
             (unsigned long long)info->max_alloc_size, (int)err);
        prog->step += nattn;
        return 0;
    }
    for (int i = 0; i < cfg->n_variants; i++) {
        variant_id v = (variant_id)cfg->order[i];
        if (!IS_ATTENTION(v))
            continue;
        progress_step(prog, "%s %s N=%zu", VARIANT_NAMES[v], clattn_dtype_name(dt), n);
        softmax_row *r = &res[added];
        memset(r, 0, sizeof *r);
        if (bench_attention(ctx, cfg, n, dt, v, bufs, prog, r) == 0)
            added++;
    }
    release_buffers(bufs, 5);
    return added;
}

typedef struct sgemm_job {
    clattn_context *ctx;
    cl_mem bufs[3];
} sgemm_job;

static clattn_status sgemm_enqueue(void *arg)
{
    sgemm_job *j = arg;
    const size_t m = SGEMM_SIZE;
    return clattn_sgemm_enqueue(j->ctx, 0, m, m, m, 1.0f, j->bufs[0], 0, m, j->bufs[1], 0, m,
                                0.0f, j->bufs[2], 0, m, 0, NULL, NULL);
}

static int bench_sgemm(clattn_context *ctx, const bench_config *cfg, const progress *prog,
                       bench_row *r)
{ /* float32 only (CLBlast): its dtype column reads f32 */
    const size_t m = SGEMM_SIZE;
    sgemm_job job = {ctx, {NULL, NULL, NULL}};
    cl_int err = make_buffers(ctx, job.bufs, 3, 2, m * m);
    if (err != CL_SUCCESS) {
        note(prog, "sgemm skipped: cannot allocate its matrices (OpenCL error %d)", (int)err);
        return -1;
    }
    memset(r, 0, sizeof *r);
    clattn_status st = time_median(ctx, sgemm_enqueue, &job, cfg->reps, &r->ms);
    release_buffers(job.bufs, 3);
    if (st != CLATTN_SUCCESS) {
        note(prog, "sgemm failed: %s", lib_error(ctx, st));
        return -1;
    }
    snprintf(r->op, sizeof r->op, "sgemm");
    snprintf(r->variant, sizeof r->variant, "sgemm");
    r->batch = r->heads = 1;
    r->nq = r->nk = r->d = m;
    r->gflops = 2.0 * (double)m * (double)m * (double)m / (r->ms * 1e6);
    r->build_ms = NAN;
    snprintf(r->kernel, sizeof r->kernel, "CLBlast SGEMM %zux%zux%zu", m, m, m);
    return 0;
}

/* The first row of `variant` at length len (0: any), head dim d (0: any) and type dt. */
const softmax_row *cli_softmax_find_row(const softmax_row *res, size_t n, const char *variant,
                                        size_t len, size_t d, clattn_dtype dt)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(res[i].b.variant, variant) == 0 && (len == 0 || res[i].b.nk == len) &&
            (d == 0 || res[i].b.d == d) && res[i].dtype == dt)
            return &res[i];
    return NULL;
}

/* Runs the sweep; *res (malloc'd, caller frees) receives *count rows. Returns an exit code. */
static int bench_run(const bench_config *cfg, softmax_row **res, size_t *count)
{
    *res = NULL;
    *count = 0;
    clattn_context *ctx = NULL;
    int rc = bench_open(cfg->device, &ctx);
    if (rc)
        return rc;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);

    size_t nattn = 0, nopt = 0;
    int want_sgemm = 0, want_peak = 0;
    for (int i = 0; i < cfg->n_variants; i++) {
        nattn += IS_ATTENTION(cfg->order[i]);
        nopt += cli_softmax_option_rows(cfg, (variant_id)cfg->order[i]);
        want_sgemm |= cfg->order[i] == V_SGEMM;
        want_peak |= cfg->order[i] == V_PEAK || cfg->order[i] == V_D512; /* d512's %peak */
    }
    /* The family variants sweep --n (when any is listed); the option variants follow, each on
     * its own lengths. */
    size_t sweep = nattn ? cfg->n_count * cfg->n_dtypes * nattn : 0;
    softmax_row *r = calloc(sweep + nopt * cfg->n_dtypes + 2, sizeof *r);
    if (!r) {
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    progress prog = {isatty(fileno(stderr)), 0,
                     sweep + nopt * cfg->n_dtypes + (size_t)want_sgemm + (size_t)want_peak};
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_count; i++)
        for (size_t t = 0; t < cfg->n_dtypes; t++)
            n += bench_length(ctx, &info, cfg, cfg->ns[i], cfg->dtypes[t], &prog, r + n);
    for (int i = 0; i < cfg->n_variants; i++)
        for (size_t t = 0; t < cfg->n_dtypes && IS_OPTION_VARIANT(cfg->order[i]); t++)
            n += cli_softmax_bench_option_variant(ctx, &info, cfg, (variant_id)cfg->order[i],
                                                  cfg->dtypes[t], &prog, r + n);
    if (want_sgemm) {
        progress_step(&prog, "sgemm M=N=K=%d", SGEMM_SIZE);
        n += bench_sgemm(ctx, cfg, &prog, &r[n].b) == 0;
    }
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        n += bench_peak_row(ctx, &prog, &r[n].b) == 0;
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    *res = r;
    *count = n;
    if (n == 0)
        return fail(EXIT_RUNTIME, "bench: no measurement succeeded");
    return 0;
}

/* The shared columns first (old parsers keep working; they end in dtype), then bytes and
 * footprint_bytes. */
static void print_csv(const softmax_row *res, size_t n)
{
    printf("%s,bytes,footprint_bytes\n", BENCH_CSV_HEADER); /* BENCH_CSV_HEADER ends in dtype */
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &res[i].b;
        printf("%s,%s,%zu,%zu,%zu,%zu,%zu,%d,%.4f,%.3f,%s,%.0f,%.0f\n", r->op, r->variant,
               r->batch, r->heads, r->nq, r->nk, r->d, r->causal, isnan(r->ms) ? 0.0 : r->ms,
               r->gflops, clattn_dtype_name(res[i].dtype), res[i].bytes, res[i].footprint);
    }
}

/* cli_print_table's columns plus dtype, bytes moved (MB) and footprint (MB); "vs base" compares
 * with naive at the same length and type, "vs f32" with the same variant in float32. */
static void print_table(const softmax_row *res, size_t n, double peak_gflops)
{
    printf("%-8s %-16s %-5s %5s %5s %7s %7s %4s %6s %10s %9s %9s %6s %8s %7s %9s %10s  %s\n",
           "op", "variant", "dtype", "batch", "heads", "nq", "nk", "d", "causal", "ms", "GFLOP/s",
           "build ms", "%peak", "vs base", "vs f32", "bytes MB", "footprint", "kernel");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &res[i].b;
        char ms[32] = "-", build[32] = "-", frac[32] = "-", speed[32] = "-", vf[32] = "-";
        char by[32] = "-", fp[32] = "-";
        if (!isnan(r->ms))
            snprintf(ms, sizeof ms, "%.3f", r->ms);
        if (!isnan(r->build_ms))
            snprintf(build, sizeof build, "%.1f", r->build_ms);
        if (peak_gflops > 0 && r->gflops > 0)
            snprintf(frac, sizeof frac, "%.1f%%", 100.0 * r->gflops / peak_gflops);
        bool attn = strcmp(r->op, "softmax") == 0;
        /* The option variants' comparisons are in the summary below the table. */
        bool family = false;
        for (int v = 0; v <= V_NAIVE; v++)
            family |= strcmp(r->variant, VARIANT_NAMES[v]) == 0;
        const softmax_row *nv =
            attn && family ? cli_softmax_find_row(res, n, "naive", r->nk, r->d, res[i].dtype)
                           : NULL;
        if (nv && strcmp(r->variant, "naive") != 0 && r->ms > 0 && !isnan(nv->b.ms))
            snprintf(speed, sizeof speed, "%.2fx", nv->b.ms / r->ms);
        const softmax_row *f32 =
            attn ? cli_softmax_find_row(res, n, r->variant, r->nk, r->d, CLATTN_F32) : NULL;
        if (f32 && res[i].dtype != CLATTN_F32 && r->ms > 0 && !isnan(f32->b.ms))
            snprintf(vf, sizeof vf, "%.2fx", f32->b.ms / r->ms);
        if (attn) {
            snprintf(by, sizeof by, "%.2f", res[i].bytes / 1e6);
            snprintf(fp, sizeof fp, "%.2f", res[i].footprint / 1e6);
        }
        printf("%-8s %-16s %-5s %5zu %5zu %7zu %7zu %4zu %6d %10s %9.2f %9s %6s %8s %7s %9s %10s  "
               "%s\n",
               r->op, r->variant, attn ? clattn_dtype_name(res[i].dtype) : "f32", r->batch,
               r->heads, r->nq, r->nk, r->d, r->causal, ms, r->gflops, build, frac, speed, vf, by,
               fp, r->kernel);
    }
}

static void print_rows(const bench_config *cfg, const softmax_row *res, size_t n)
{
    const softmax_row *peak = NULL;
    bool options = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(res[i].b.variant, "peak") == 0)
            peak = &res[i];
    }
    for (int i = 0; i < cfg->n_variants; i++)
        options |= IS_OPTION_VARIANT(cfg->order[i]);
    if (cfg->csv)
        print_csv(res, n);
    else
        print_table(res, n, peak ? peak->b.gflops : 0);
    if (options) {
        if (!cfg->csv)
            printf("\n");
        cli_softmax_print_option_summary(cfg->csv ? stderr : stdout, cfg, res, n,
                                         peak ? peak->b.gflops : 0);
    }
}

static void bench_defaults(bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const size_t ns[] = {1024, 2048, 4096};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg->ns[cfg->n_count++] = ns[i];
    cfg->d = 64;
    cfg->heads = 8;
    cfg->batch = 1;
    cfg->reps = 5;
    cfg->dtypes[0] = CLATTN_F32;
    cfg->n_dtypes = 1;
    cfg->algo = CLATTN_SOFTMAX_AUTO;
    cfg->block_q = cfg->block_k = 64;
    const variant_id def[] = {V_TILED, V_NAIVE, V_SGEMM, V_PEAK};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
        cfg->order[cfg->n_variants++] = def[i];
}

static int bench_parse(int argc, char **argv, bench_config *cfg, int *help)
{
    const char *cmd = "bench softmax";
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL, *vars = NULL;
    const char *dtypes = NULL, *nq = NULL, *algo = NULL, *block = NULL;
    bench_defaults(cfg);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--nq", NULL, &nq, NULL},
        {"--dtype", NULL, &dtypes, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--device", NULL, &cfg->device, NULL},
        {"--causal", NULL, NULL, &cfg->causal},
        {"--csv", NULL, NULL, &cfg->csv},
        {"--algo", NULL, &algo, NULL},
        {"--block", NULL, &block, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    cfg->n_given = n != NULL;
    if (algo && cli_softmax_parse_algo(algo, &cfg->algo) != 0)
        return fail(EXIT_USAGE, "%s: --algo '%s' is not one of auto, cpu, gpu, gpu-rows, naive",
                    cmd, algo);
    if (block) {
        size_t b[MAX_SWEEP], nb = 0;
        if ((rc = parse_list(cmd, "--block", block, 16, 256, b, &nb)))
            return rc;
        if (nb > 2)
            return fail(EXIT_USAGE, "%s: --block takes BQ,BK (or one size for both)", cmd);
        for (size_t i = 0; i < nb; i++)
            if (b[i] & (b[i] - 1))
                return fail(EXIT_USAGE, "%s: --block: %zu is not one of 16, 32, 64, 128, 256",
                            cmd, b[i]);
        cfg->block_q = (unsigned)b[0];
        cfg->block_k = (unsigned)b[nb - 1];
    }
    if ((n && (rc = parse_list(cmd, "--n", n, 1, (size_t)1 << 24, cfg->ns, &cfg->n_count))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, SOFTMAX_MAX_HEAD_DIM, &cfg->d))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &cfg->batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &cfg->reps))) ||
        (vars &&
         (rc = parse_variant_list(cmd, vars, VARIANT_NAMES, V_COUNT, cfg->order, &cfg->n_variants))) ||
        (nq && (rc = size_option(cmd, "--nq", nq, 1, (size_t)1 << 24, &cfg->nq))))
        return rc;
    if (dtypes && (rc = cli_dtype_list(cmd, dtypes, cfg->dtypes, &cfg->n_dtypes)))
        return rc;
    return 0;
}

int cli_bench_softmax(int argc, char **argv)
{
    bench_config cfg;
    int help = 0;
    int rc = bench_parse(argc, argv, &cfg, &help);
    if (rc)
        return rc;
    if (help) { /* the dispatcher answers --help first; kept for direct callers */
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_softmax, "bench softmax");
        return 0;
    }
    softmax_row *res = NULL;
    size_t n = 0;
    rc = bench_run(&cfg, &res, &n);
    if (n > 0)
        print_rows(&cfg, res, n);
    free(res);
    return rc;
}

int cli_softmax_demo(void)
{
    bench_config cfg;
    bench_defaults(&cfg);
    const size_t ns[] = {256, 512, 1024};
    cfg.n_count = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg.ns[cfg.n_count++] = ns[i];
    cfg.heads = 4;
    cfg.reps = 3;
    printf("\n== clattn bench softmax --n 256,512,1024 --heads 4 --d 64 --reps 3 ==\n\n");
    fflush(stdout);
    softmax_row *res = NULL;
    size_t n = 0;
    int rc = bench_run(&cfg, &res, &n);
    if (n > 0) {
        print_rows(&cfg, res, n);
        printf("\ntiled speed-up over naive:");
        int any = 0;
        for (size_t i = 0; i < cfg.n_count; i++) {
            const softmax_row *t = cli_softmax_find_row(res, n, "tiled", cfg.ns[i], 0, CLATTN_F32);
            const softmax_row *nv = cli_softmax_find_row(res, n, "naive", cfg.ns[i], 0, CLATTN_F32);
            if (t && nv && t->b.ms > 0) {
                printf("%s N=%zu %.2fx", any ? "," : "", cfg.ns[i], nv->b.ms / t->b.ms);
                any = 1;
            }
        }
        printf("%s\n", any ? "" : " not measured");
    }
    free(res);
    return rc;
}
