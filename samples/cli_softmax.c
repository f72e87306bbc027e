/* clattn run softmax / clattn bench softmax: exact attention. `run` goes through the plan API
 * (descriptor -> plan -> enqueue -> read back), so it doubles as an example of it. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SGEMM_SIZE 2048

void cli_usage_softmax(FILE *f)
{
    fprintf(f,
            "  clattn run softmax --q Q.npy --k K.npy --v V.npy -o OUT.npy [--causal]\n"
            "         [--scale S] [--key-lengths L.npy] [--lse LSE.npy]\n"
            "         [--algo auto|cpu|gpu|gpu-rows|naive] [--device SEL]\n"
            "      exact attention on float32 .npy arrays: q [B,Hq,Nq,D], k and v [B,Hk,Nk,D]\n"
            "      (Hq a multiple of Hk), key lengths int32/int64 [B] in [0, Nk]; writes OUT\n"
            "      [B,Hq,Nq,D] and optionally the log-sum-exp LSE [B,Hq,Nq]. --scale defaults to\n"
            "      1/sqrt(D); --causal is bottom-right aligned when Nq != Nk\n"
            "  clattn bench softmax [--n 1024,2048,...] [--d 64] [--heads 8] [--batch 1]\n"
            "         [--causal] [--csv] [--reps 5] [--variants LIST] [--device SEL]\n"
            "      median wall time per variant: tiled (scheduler's choice), tiled-cpu,\n"
            "      tiled-gpu (register-tiled), tiled-gpu-rows (the previous GPU kernel, one\n"
            "      row per work-item), naive (CLBlast GEMMs + softmax), sgemm (CLBlast, M=N=K=%d),\n"
            "      peak (FMA throughput); default tiled,naive,sgemm,peak. Plan build time is\n"
            "      reported apart; the table's 'vs base' column is naive ms / variant ms.\n"
            "      --csv prints op,variant,batch,heads,nq,nk,d,causal,ms,gflops (sgemm rows:\n"
            "      nq,nk,d = M,N,K; peak rows: sizes and ms 0). Attention FLOPs are\n"
            "      4*B*H*Nq*Nk*D, halved with --causal\n",
            SGEMM_SIZE);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn run softmax                                                                             */
/* ---------------------------------------------------------------------------------------------- */

typedef struct run_args {
    const char *q, *k, *v, *out, *lse, *scale, *key_lengths, *algo, *device;
    int causal;
} run_args;

static int check_qkv_shapes(const run_args *ra, const npy_array *q, const npy_array *k,
                            const npy_array *v)
{
    char ks[160], vs[160];
    format_shape(ks, sizeof ks, 4, k->shape);
    format_shape(vs, sizeof vs, 4, v->shape);
    if (memcmp(k->shape, v->shape, 4 * sizeof k->shape[0]) != 0)
        return fail(EXIT_USAGE, "%s (--k) shape %s differs from %s (--v) shape %s", ra->k, ks,
                    ra->v, vs);
    if (q->shape[0] != k->shape[0])
        return fail(EXIT_USAGE, "batch of %s (%zu) differs from batch of %s (%zu)", ra->q,
                    q->shape[0], ra->k, k->shape[0]);
    if (q->shape[3] != k->shape[3])
        return fail(EXIT_USAGE, "head dim of %s (%zu) differs from head dim of %s (%zu)", ra->q,
                    q->shape[3], ra->k, k->shape[3]);
    if (q->shape[1] % k->shape[1] != 0)
        return fail(EXIT_USAGE, "heads of %s (%zu) are not a multiple of heads of %s (%zu)", ra->q,
                    q->shape[1], ra->k, k->shape[1]);
    if (q->shape[3] > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dim %zu exceeds the supported maximum %d", ra->q,
                    q->shape[3], MAX_HEAD_DIM);
    return 0;
}

/* Reads int32 or int64 key lengths [B], each in [0, nk], into a malloc'd int32 array. */
static int load_key_lengths(const char *path, size_t batch, size_t nk, int32_t **out)
{
    npy_array a;
    char err[512];
    *out = NULL;
    if (npy_read(path, &a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    int rc = 0;
    char shp[160];
    format_shape(shp, sizeof shp, a.ndim, a.shape);
    if (a.dtype != NPY_I32 && a.dtype != NPY_I64)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): dtype %s, expected int32 or int64", path,
                  dtype_name(a.dtype));
    else if (a.ndim != 1 || a.shape[0] != batch)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): shape %s, expected [%zu] (one per batch)", path,
                  shp, batch);
    int32_t *kl = rc ? NULL : malloc((batch ? batch : 1) * sizeof *kl);
    if (!rc && !kl)
        rc = fail(EXIT_RUNTIME, "out of memory");
    for (size_t b = 0; !rc && b < batch; b++) {
        int64_t x =
            a.dtype == NPY_I32 ? ((const int32_t *)a.data)[b] : ((const int64_t *)a.data)[b];
        if (x < 0 || (uint64_t)x > nk)
            rc = fail(EXIT_USAGE, "%s (--key-lengths): key_lengths[%zu] = %lld outside [0, %zu]",
                      path, b, (long long)x, nk);
        else
            kl[b] = (int32_t)x;
    }
    npy_free(&a);
    if (rc)
        free(kl);
    else
        *out = kl;
    return rc;
}

static int parse_algo(const char *s, clattn_softmax_algo *algo)
{
    static const struct {
        const char *name;
        clattn_softmax_algo algo;
    } names[] = {{"auto", CLATTN_SOFTMAX_AUTO},           {"cpu", CLATTN_SOFTMAX_TILED_CPU},
                 {"tiled-cpu", CLATTN_SOFTMAX_TILED_CPU}, {"gpu", CLATTN_SOFTMAX_TILED_GPU},
                 {"tiled-gpu", CLATTN_SOFTMAX_TILED_GPU}, {"naive", CLATTN_SOFTMAX_NAIVE},
                 {"gpu-rows", CLATTN_SOFTMAX_TILED_GPU_ROWS},
                 {"tiled-gpu-rows", CLATTN_SOFTMAX_TILED_GPU_ROWS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *algo = names[i].algo;
            return 0;
        }
    return -1;
}

/* Options that need no file: parsed before anything is read so that typos fail fast. */
static int run_check_options(const run_args *ra, clattn_softmax_desc *desc)
{
    const char *missing = !ra->q ? "--q" : !ra->k ? "--k" : !ra->v ? "--v" : !ra->out ? "-o" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "run softmax: missing required option %s (needs --q, --k, --v, -o)",
                    missing);
    if (ra->lse && strcmp(ra->lse, ra->out) == 0)
        return fail(EXIT_USAGE, "run softmax: --lse and -o name the same file '%s'", ra->out);
    clattn_softmax_desc_init(desc);
    desc->causal = ra->causal;
    int rc;
    if (ra->scale && (rc = float_option("run softmax", "--scale", ra->scale, -INFINITY, INFINITY,
                                        0, &desc->scale)))
        return rc;
    if (ra->algo && parse_algo(ra->algo, &desc->algorithm) != 0)
        return fail(EXIT_USAGE, "run softmax: --algo '%s' is not one of auto, cpu, gpu, naive",
                    ra->algo);
    return 0;
}

/* Uploads the inputs, bakes the plan, enqueues it and reads out (and lse) back: 0 or an exit code
 * after a message. */
static int run_on_device(clattn_context *ctx, clattn_softmax_desc *desc, const npy_array *q,
                         const npy_array *k, const npy_array *v, const int32_t *kl, float *out,
                         float *lse, clattn_plan **plan)
{
    cli_io io;
    cli_io_init(&io, ctx);
    const size_t rows = q->count / q->shape[3], lse_shape[4] = {q->shape[0], q->shape[1],
                                                                q->shape[2], 1};
    cl_mem bq = cli_io_in(&io, q->data, q->count * 4), bk = cli_io_in(&io, k->data, k->count * 4),
           bv = cli_io_in(&io, v->data, v->count * 4), bo = cli_io_out(&io, out, q->count * 4),
           bl = lse ? cli_io_out(&io, lse, rows * 4) : NULL;
    desc->key_lengths = kl ? cli_io_in(&io, kl, q->shape[0] * 4) : NULL;
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_softmax_plan_create(ctx, desc, q->shape, k->shape, v->shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor(bq, q->shape), tk = cli_tensor(bk, k->shape),
                  tv = cli_tensor(bv, v->shape), to = cli_tensor(bo, q->shape),
                  tl = cli_tensor(bl, lse_shape);
    cl_event done = NULL;
    st = clattn_softmax_plan_enqueue(*plan, &tq, &tk, &tv, &to, lse ? &tl : NULL, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "attention failed");
cleanup:
    cli_io_end(&io);
    desc->key_lengths = NULL;
    return rc;
}

static int run_softmax(const run_args *ra)
{
    clattn_softmax_desc desc;
    int rc = run_check_options(ra, &desc);
    if (rc)
        return rc;

    npy_array q, k, v;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    int32_t *kl = NULL;
    float *out = NULL, *lse = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;

    if ((rc = load_f32(ra->q, "--q", 4, &q)) || (rc = load_f32(ra->k, "--k", 4, &k)) ||
        (rc = load_f32(ra->v, "--v", 4, &v)) || (rc = check_qkv_shapes(ra, &q, &k, &v)))
        goto cleanup;
    if (ra->key_lengths && (rc = load_key_lengths(ra->key_lengths, q.shape[0], k.shape[2], &kl)))
        goto cleanup;

    out = malloc(q.count * sizeof *out);
    lse = ra->lse ? malloc(q.count / q.shape[3] * sizeof *lse) : NULL;
    if (!out || (ra->lse && !lse)) {
        rc = fail(EXIT_RUNTIME, "out of memory for the outputs");
        goto cleanup;
    }
    if ((rc = open_context(ra->device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &k, &v, kl, out, lse, &plan)))
        goto cleanup;
    if ((rc = write_f32(ra->out, out, 4, q.shape)))
        goto cleanup;
    if (ra->lse && (rc = write_f32(ra->lse, lse, 3, q.shape))) {
        remove(ra->out); /* no half-result left behind */
        goto cleanup;
    }
    cli_run_summary(ctx, "softmax", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    free(kl);
    free(out);
    free(lse);
    return rc;
}

int cli_run_softmax(int argc, char **argv)
{
    run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},
        {"--k", NULL, &ra.k, NULL},
        {"--v", NULL, &ra.v, NULL},
        {"--out", "-o", &ra.out, NULL},
        {"--lse", NULL, &ra.lse, NULL},
        {"--scale", NULL, &ra.scale, NULL},
        {"--key-lengths", NULL, &ra.key_lengths, NULL},
        {"--algo", NULL, &ra.algo, NULL},
        {"--device", NULL, &ra.device, NULL},
        {"--causal", NULL, NULL, &ra.causal},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "run softmax", specs, OPT_COUNT(specs), &help);
    if (rc)
        return rc;
    if (help) { /* the dispatcher answers --help first; kept for direct callers */
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_softmax, "run softmax");
        return 0;
    }
    return run_softmax(&ra);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn bench softmax                                                                           */
/* ---------------------------------------------------------------------------------------------- */

typedef enum variant_id {
    V_TILED,
    V_TILED_CPU,
    V_TILED_GPU,
    V_TILED_GPU_ROWS,
    V_NAIVE,
    V_SGEMM,
    V_PEAK,
    V_COUNT
} variant_id;

static const char *const VARIANT_NAMES[V_COUNT] = {"tiled", "tiled-cpu", "tiled-gpu",
                                                   "tiled-gpu-rows", "naive", "sgemm", "peak"};
static const clattn_softmax_algo VARIANT_ALGO[V_COUNT] = {
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_TILED_GPU,
    CLATTN_SOFTMAX_TILED_GPU_ROWS, CLATTN_SOFTMAX_NAIVE,
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO};
#define IS_ATTENTION(v) ((v) <= V_NAIVE)

typedef struct bench_config {
    size_t ns[MAX_SWEEP];
    size_t n_count;
    size_t d, heads, batch, reps;
    int causal, csv;
    int order[V_COUNT];
    int n_variants;
    const char *device;
} bench_config;

typedef struct plan_job {
    clattn_plan *plan;
    clattn_tensor t[4];
} plan_job;

/* The wall clock is used for every variant because the tiled CPU family runs a packing kernel
 * before the one whose event the plan returns. */
static clattn_status plan_enqueue(void *arg)
{
    plan_job *j = arg;
    return clattn_softmax_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], NULL, 0,
                                       NULL, NULL);
}

/* Bakes and times one attention variant at length n; 0 with *r filled, or -1 after a note. */
static int bench_attention(clattn_context *ctx, const bench_config *cfg, size_t n, variant_id var,
                           cl_mem bufs[4], const progress *prog, bench_row *r)
{
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = cfg->causal;
    desc.algorithm = VARIANT_ALGO[var];
    const size_t shape[4] = {cfg->batch, cfg->heads, n, cfg->d};
    plan_job job;
    memset(&job, 0, sizeof job);

    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, shape, shape, shape, &job.plan);
    r->build_ms = now_ms() - t0;
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s N=%zu skipped: %s", VARIANT_NAMES[var], n, lib_error(ctx, st));
        return -1;
    }
    clattn_plan_info pi;
    if (clattn_plan_get_info(job.plan, &pi) == CLATTN_SUCCESS)
        snprintf(r->kernel, sizeof r->kernel, "%s", pi.variant);
    for (int i = 0; i < 4; i++)
        job.t[i] = clattn_tensor_make(bufs[i], cfg->batch, cfg->heads, n, cfg->d);
    st = time_median(ctx, plan_enqueue, &job, cfg->reps, &r->ms);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s N=%zu failed: %s", VARIANT_NAMES[var], n, lib_error(ctx, st));
    clattn_plan_destroy(job.plan);
    if (st != CLATTN_SUCCESS)
        return -1;
    snprintf(r->op, sizeof r->op, "softmax");
    snprintf(r->variant, sizeof r->variant, "%s", VARIANT_NAMES[var]);
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = r->nk = n;
    r->d = cfg->d;
    r->causal = cfg->causal;
    double f =
        4.0 * (double)cfg->batch * (double)cfg->heads * (double)n * (double)n * (double)cfg->d;
    r->gflops = (cfg->causal ? f / 2 : f) / (r->ms * 1e6);
    return 0;
}

/* Every attention variant at one length, sharing one set of inputs. Returns rows added. */
static size_t bench_length(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, size_t n, progress *prog, bench_row *res)
{
    size_t nattn = 0, added = 0;
    for (int i = 0; i < cfg->n_variants; i++)
        nattn += IS_ATTENTION(cfg->order[i]);
    if (nattn == 0)
        return 0;
    size_t elems = cfg->batch * cfg->heads * n * cfg->d; /* bounded by the option ranges */
    cl_mem bufs[4];
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (elems * sizeof(float) <= info->max_alloc_size)
        err = make_buffers(ctx, bufs, 4, 3, elems);
    if (err != CL_SUCCESS) {
        note(prog,
             "N=%zu skipped: cannot allocate four %zu-byte tensors (max allocation %llu; "
             "OpenCL error %d)",
             n, elems * sizeof(float), (unsigned long long)info->max_alloc_size, (int)err);
        prog->step += nattn;
        return 0;
    }
    for (int i = 0; i < cfg->n_variants; i++) {
        variant_id v = (variant_id)cfg->order[i];
        if (!IS_ATTENTION(v))
            continue;
        progress_step(prog, "%s N=%zu", VARIANT_NAMES[v], n);
        bench_row *r = &res[added];
        memset(r, 0, sizeof *r);
        if (bench_attention(ctx, cfg, n, v, bufs, prog, r) == 0)
            added++;
    }
    release_buffers(bufs, 4);
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
{
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

static const bench_row *find_row(const bench_row *res, size_t n, const char *variant, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(res[i].variant, variant) == 0 && (len == 0 || res[i].nq == len))
            return &res[i];
    return NULL;
}

/* Runs the sweep; *res (malloc'd, caller frees) receives *count rows. Returns an exit code. */
static int bench_run(const bench_config *cfg, bench_row **res, size_t *count)
{
    *res = NULL;
    *count = 0;
    clattn_context *ctx = NULL;
    int rc = bench_open(cfg->device, &ctx);
    if (rc)
        return rc;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);

    size_t nattn = 0;
    int want_sgemm = 0, want_peak = 0;
    for (int i = 0; i < cfg->n_variants; i++) {
        nattn += IS_ATTENTION(cfg->order[i]);
        want_sgemm |= cfg->order[i] == V_SGEMM;
        want_peak |= cfg->order[i] == V_PEAK;
    }
    bench_row *r = calloc(cfg->n_count * nattn + 2, sizeof *r);
    if (!r) {
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    progress prog = {isatty(fileno(stderr)), 0,
                     cfg->n_count * nattn + (size_t)want_sgemm + (size_t)want_peak};
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_count; i++)
        n += bench_length(ctx, &info, cfg, cfg->ns[i], &prog, r + n);
    if (want_sgemm) {
        progress_step(&prog, "sgemm M=N=K=%d", SGEMM_SIZE);
        n += bench_sgemm(ctx, cfg, &prog, &r[n]) == 0;
    }
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        n += bench_peak_row(ctx, &prog, &r[n]) == 0;
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    *res = r;
    *count = n;
    if (n == 0)
        return fail(EXIT_RUNTIME, "bench: no measurement succeeded");
    return 0;
}

static void print_rows(const bench_config *cfg, const bench_row *res, size_t n)
{
    if (cfg->csv) {
        cli_print_csv(res, n);
        return;
    }
    const bench_row *peak = find_row(res, n, "peak", 0);
    cli_print_table(res, n, "naive", peak ? peak->gflops : 0);
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
    const variant_id def[] = {V_TILED, V_NAIVE, V_SGEMM, V_PEAK};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
        cfg->order[cfg->n_variants++] = def[i];
}

static int bench_parse(int argc, char **argv, bench_config *cfg, int *help)
{
    const char *cmd = "bench softmax";
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL, *vars = NULL;
    bench_defaults(cfg);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--device", NULL, &cfg->device, NULL},
        {"--causal", NULL, NULL, &cfg->causal},
        {"--csv", NULL, NULL, &cfg->csv},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, (size_t)1 << 24, cfg->ns, &cfg->n_count))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, MAX_HEAD_DIM, &cfg->d))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &cfg->batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &cfg->reps))) ||
        (vars &&
         (rc = parse_variant_list(cmd, vars, VARIANT_NAMES, V_COUNT, cfg->order, &cfg->n_variants))))
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
    bench_row *res = NULL;
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
    bench_row *res = NULL;
    size_t n = 0;
    int rc = bench_run(&cfg, &res, &n);
    if (n > 0) {
        print_rows(&cfg, res, n);
        printf("\ntiled speed-up over naive:");
        int any = 0;
        for (size_t i = 0; i < cfg.n_count; i++) {
            const bench_row *t = find_row(res, n, "tiled", cfg.ns[i]);
            const bench_row *nv = find_row(res, n, "naive", cfg.ns[i]);
            if (t && nv && t->ms > 0) {
                printf("%s N=%zu %.2fx", any ? "," : "", cfg.ns[i], nv->ms / t->ms);
                any = 1;
            }
        }
        printf("%s\n", any ? "" : " not measured");
    }
    free(res);
    return rc;
}
