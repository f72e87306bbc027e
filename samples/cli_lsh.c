/* clattn run lsh / clattn bench lsh: Reformer LSH attention from the command line (see cli.h for
 * the conventions every subcommand follows). */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, strtok_r */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_lsh(FILE *f)
{
    fprintf(f,
            "  clattn run lsh --q Q.npy --v V.npy -o OUT.npy [--hashes 4] [--buckets 64]\n"
            "         [--chunk 64] [--causal] [--across-buckets] (--rotations R.npy | --seed S)\n"
            "         [--lse LSE.npy] [--device SEL] [--dtype T] [--out-dtype T]\n"
            "      Reformer LSH attention (shared QK: the keys are the L2-normalised queries) on\n"
            "      .npy arrays q [B,H,N,D], v [B,H,N,Dv] (float32, float16, or bfloat16 words\n"
            "      with --dtype bf16; each kept in its type on the device unless --dtype\n"
            "      converts);\n"
            "      rotations [hashes,D,buckets/2] (float32) or drawn from the seed\n"
            "      (clattn_lsh_rotations); --buckets even. Writes OUT [B,H,N,Dv] in --out-dtype\n"
            "      (default f32) and optionally the log-sum-exp LSE [B,H,N] (float32)\n"
            "  clattn bench lsh [--n 4096,16384,65536] [--d 64] [--heads 1] [--batch 1]\n"
            "         [--hashes 4] [--buckets 64] [--chunk 64] [--causal] [--reps 3]\n"
            "         [--variants lsh,tiled] [--dtype f32,f16,bf16] [--csv] [--device SEL]\n"
            "      median wall time of an LSH plan's enqueue (Dv = D, rotations from seed 0;\n"
            "      the plan is made once per length, its time in the build column) and of\n"
            "      exact tiled attention on the same shapes, measured in the same run; the\n"
            "      table's 'vs base' column is tiled ms / lsh ms. LSH rows report no GFLOP/s\n"
            "      (0 in CSV). --dtype: the element type of q, v and out (a list times each in\n"
            "      the same run; default f32); the last column says which. Tiled rows: f32\n");
}

/* ---- run ---- */

typedef struct lsh_run_args {
    const char *q, *v, *out, *lse, *rot, *seed, *hashes, *buckets, *chunk, *device;
    int causal, across;
} lsh_run_args;

static int lsh_desc_from(const lsh_run_args *ra, clattn_lsh_desc *d)
{
    const char *cmd = "run lsh";
    clattn_lsh_desc_init(d);
    d->causal = ra->causal;
    d->attend_across_buckets = ra->across;
    if (ra->hashes && size_option(cmd, "--hashes", ra->hashes, 1, CLATTN_LSH_MAX_HASHES,
                                  &d->n_hashes))
        return EXIT_USAGE;
    if (ra->buckets && size_option(cmd, "--buckets", ra->buckets, 2, CLATTN_LSH_MAX_BUCKETS,
                                   &d->n_buckets))
        return EXIT_USAGE;
    if (d->n_buckets % 2 != 0)
        return fail(EXIT_USAGE, "%s: --buckets %zu must be even", cmd, d->n_buckets);
    if (ra->chunk && size_option(cmd, "--chunk", ra->chunk, 1, (size_t)1 << 30, &d->chunk_size))
        return EXIT_USAGE;
    if (!ra->q || !ra->v || !ra->out)
        return fail(EXIT_USAGE, "%s: --q, --v and -o are required", cmd);
    if (!ra->rot == !ra->seed)
        return fail(EXIT_USAGE, "%s: give exactly one of --rotations and --seed", cmd);
    if (ra->seed && seed_option(cmd, "--seed", ra->seed, &d->seed))
        return EXIT_USAGE;
    return 0;
}

static int lsh_check_shapes(const lsh_run_args *ra, const clattn_lsh_desc *d, const npy_array *q,
                            const npy_array *v, const npy_array *r)
{
    char qs[160], vs[160], rs[160];
    format_shape(qs, sizeof qs, q->ndim, q->shape);
    format_shape(vs, sizeof vs, v->ndim, v->shape);
    if (q->shape[3] > MAX_HEAD_DIM || v->shape[3] > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "run lsh: head dims of %s %s and %s %s must be at most %d", ra->q,
                    qs, ra->v, vs, MAX_HEAD_DIM);
    if (q->shape[0] != v->shape[0] || q->shape[1] != v->shape[1] || q->shape[2] != v->shape[2])
        return fail(EXIT_USAGE, "run lsh: %s %s and %s %s differ in batch, heads or length", ra->q,
                    qs, ra->v, vs);
    if (r->data) {
        format_shape(rs, sizeof rs, r->ndim, r->shape);
        if (r->shape[0] != d->n_hashes || r->shape[1] != q->shape[3] ||
            r->shape[2] != d->n_buckets / 2)
            return fail(EXIT_USAGE,
                        "run lsh: %s %s should be [%zu, %zu, %zu] (hashes, D, buckets/2)",
                        ra->rot, rs, d->n_hashes, q->shape[3], d->n_buckets / 2);
    }
    return 0;
}

/* Uploads q and v, bakes the plan (it uploads the rotations), enqueues it and reads out
 * [B, H, N, Dv] (and lse [B, H, N] when asked) back: 0 or an exit code after a message. */
static int run_on_device(clattn_context *ctx, const clattn_lsh_desc *desc, const npy_array *q,
                         const npy_array *v, void *out, float *lse, clattn_plan **plan)
{
    const size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]},
                 lshape[4] = {q->shape[0], q->shape[1], q->shape[2], 1},
                 rows = q->count / q->shape[3];
    cli_io io;
    cli_io_init(&io, ctx);
    cl_mem bq = cli_io_in(&io, q->data, q->count * clattn_dtype_size(desc->q_dtype)),
           bv = cli_io_in(&io, v->data, v->count * clattn_dtype_size(desc->v_dtype)),
           bo = cli_io_out(&io, out, rows * oshape[3] * clattn_dtype_size(desc->out_dtype)),
           bl = lse ? cli_io_out(&io, lse, rows * 4) : NULL;
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_lsh_plan_create(ctx, desc, q->shape, v->shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "lsh attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tv = cli_tensor_typed(bv, v->shape, desc->v_dtype),
                  to = cli_tensor_typed(bo, oshape, desc->out_dtype), tl = cli_tensor(bl, lshape);
    cl_event done = NULL;
    st = clattn_lsh_plan_enqueue(*plan, &tq, &tv, &to, lse ? &tl : NULL, NULL, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "lsh attention failed");
cleanup:
    cli_io_end(&io);
    return rc;
}

static int lsh_run(const lsh_run_args *ra)
{
    clattn_lsh_desc desc;
    int rc = lsh_desc_from(ra, &desc);
    if (rc)
        return rc;
    npy_array q, v, r;
    memset(&q, 0, sizeof q);
    memset(&v, 0, sizeof v);
    memset(&r, 0, sizeof r);
    void *out = NULL;
    float *lse = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_tensor(ra->q, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(ra->v, "--v", 4, &v, &desc.v_dtype)) ||
        (ra->rot && (rc = load_f32(ra->rot, "--rotations", 3, &r))) ||
        (rc = lsh_check_shapes(ra, &desc, &q, &v, &r)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    size_t rows = q.count / q.shape[3];
    out = malloc(rows * v.shape[3] * clattn_dtype_size(desc.out_dtype));
    lse = ra->lse ? malloc(rows * sizeof *lse) : NULL;
    if (!out || (ra->lse && !lse)) {
        rc = fail(EXIT_RUNTIME, "out of memory for the outputs");
        goto cleanup;
    }
    if (r.data) { /* trained rotations go through the desc; the plan uploads them once */
        desc.rotations = r.data;
        memcpy(desc.rotations_shape, r.shape, sizeof desc.rotations_shape);
    }
    if ((rc = open_context(ra->device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &v, out, lse, &plan)))
        goto cleanup;
    size_t oshape[4] = {q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
    if ((rc = write_tensor(ra->out, out, desc.out_dtype, 4, oshape)))
        goto cleanup;
    if (ra->lse && (rc = write_f32(ra->lse, lse, 3, oshape)) != 0)
        remove(ra->out); /* no half-result left behind */
    if (rc == 0)
        cli_run_summary(ctx, "lsh", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&v);
    npy_free(&r);
    free(out);
    free(lse);
    return rc;
}

int cli_run_lsh(int argc, char **argv)
{
    lsh_run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},
        {"--v", NULL, &ra.v, NULL},
        {"--out", "-o", &ra.out, NULL},
        {"--lse", NULL, &ra.lse, NULL},
        {"--rotations", NULL, &ra.rot, NULL},
        {"--seed", NULL, &ra.seed, NULL},
        {"--hashes", NULL, &ra.hashes, NULL},
        {"--buckets", NULL, &ra.buckets, NULL},
        {"--chunk", NULL, &ra.chunk, NULL},
        {"--device", NULL, &ra.device, NULL},
        {"--causal", NULL, NULL, &ra.causal},
        {"--across-buckets", NULL, NULL, &ra.across},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "run lsh", specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_lsh))
        return rc;
    return lsh_run(&ra);
}

/* ---- bench ---- */

typedef struct lsh_bench_cfg {
    size_t ns[MAX_SWEEP], n_count;
    size_t d, heads, batch, reps;
    clattn_lsh_desc desc; /* its dtypes: the type being timed */
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    int csv, do_lsh, do_tiled;
    const char *device;
} lsh_bench_cfg;

typedef struct lsh_job {
    clattn_plan *plan;
    clattn_tensor q, v, out;
} lsh_job;

static clattn_status lsh_enqueue(void *arg)
{
    lsh_job *j = arg;
    return clattn_lsh_plan_enqueue(j->plan, &j->q, &j->v, &j->out, NULL, NULL, 0, NULL, NULL);
}

static int bench_lsh_row(clattn_context *ctx, const void *arg, size_t n, const progress *prog,
                         bench_row *r)
{
    const lsh_bench_cfg *cfg = arg;
    cl_mem bufs[3] = {NULL, NULL, NULL};
    size_t elems = cfg->batch * cfg->heads * n * cfg->d;
    memset(r, 0, sizeof *r);
    clattn_dtype dt = cfg->desc.q_dtype;
    cl_int err = make_buffers_typed(ctx, bufs, 3, 2, elems, dt);
    if (err != CL_SUCCESS) {
        note(prog, "lsh N=%zu %s skipped: cannot allocate its tensors (OpenCL error %d)", n,
             clattn_dtype_name(dt), (int)err);
        return -1;
    }
    lsh_job job = {NULL, clattn_tensor_make_typed(bufs[0], dt, cfg->batch, cfg->heads, n, cfg->d),
                   clattn_tensor_make_typed(bufs[1], dt, cfg->batch, cfg->heads, n, cfg->d),
                   clattn_tensor_make_typed(bufs[2], dt, cfg->batch, cfg->heads, n, cfg->d)};
    double t0 = now_ms();
    clattn_status st = clattn_lsh_plan_create(ctx, &cfg->desc, job.q.shape, job.v.shape, &job.plan);
    double build_ms = now_ms() - t0;
    clattn_plan_info pi;
    memset(&pi, 0, sizeof pi);
    if (st == CLATTN_SUCCESS)
        st = clattn_plan_get_info(job.plan, &pi);
    if (st == CLATTN_SUCCESS)
        st = time_median(ctx, lsh_enqueue, &job, cfg->reps, &r->ms);
    clattn_plan_destroy(job.plan);
    release_buffers(bufs, 3);
    if (st != CLATTN_SUCCESS) {
        note(prog, "lsh N=%zu %s failed: %s", n, clattn_dtype_name(dt), lib_error(ctx, st));
        return -1;
    }
    snprintf(r->op, sizeof r->op, "lsh");
    r->dtype = clattn_dtype_name(dt);
    snprintf(r->variant, sizeof r->variant, "lsh");
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = r->nk = n;
    r->d = cfg->d;
    r->causal = cfg->desc.causal;
    r->gflops = 0; /* the work depends on the buckets: no fixed FLOP count */
    r->build_ms = build_ms;
    snprintf(r->kernel, sizeof r->kernel, "clattn_lsh h%zu b%zu c%zu %s", cfg->desc.n_hashes,
             cfg->desc.n_buckets, cfg->desc.chunk_size, pi.algorithm_name);
    return 0;
}

static int lsh_bench_parse(int argc, char **argv, lsh_bench_cfg *cfg, int *help)
{
    const char *cmd = "bench lsh";
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL, *hashes = NULL,
               *buckets = NULL, *chunk = NULL, *variants = NULL, *dtypes = NULL;
    memset(cfg, 0, sizeof *cfg);
    clattn_lsh_desc_init(&cfg->desc);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--hashes", NULL, &hashes, NULL},
        {"--buckets", NULL, &buckets, NULL},
        {"--chunk", NULL, &chunk, NULL},
        {"--variants", NULL, &variants, NULL},
        {"--dtype", NULL, &dtypes, NULL},
        {"--device", NULL, &cfg->device, NULL},
        {"--causal", NULL, NULL, &cfg->desc.causal},
        {"--csv", NULL, NULL, &cfg->csv},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    static const size_t def_ns[] = {4096, 16384, 65536};
    cfg->n_count = 3;
    memcpy(cfg->ns, def_ns, sizeof def_ns);
    cfg->d = 64;
    cfg->heads = cfg->batch = 1;
    cfg->reps = 3;
    if ((n && parse_list(cmd, "--n", n, 1, (size_t)1 << 28, cfg->ns, &cfg->n_count)) ||
        (d && size_option(cmd, "--d", d, 1, MAX_HEAD_DIM, &cfg->d)) ||
        (heads && size_option(cmd, "--heads", heads, 1, 4096, &cfg->heads)) ||
        (batch && size_option(cmd, "--batch", batch, 1, 4096, &cfg->batch)) ||
        (reps && size_option(cmd, "--reps", reps, 1, 1000, &cfg->reps)) ||
        (hashes && size_option(cmd, "--hashes", hashes, 1, CLATTN_LSH_MAX_HASHES,
                               &cfg->desc.n_hashes)) ||
        (buckets && size_option(cmd, "--buckets", buckets, 2, CLATTN_LSH_MAX_BUCKETS,
                                &cfg->desc.n_buckets)) ||
        (chunk && size_option(cmd, "--chunk", chunk, 1, (size_t)1 << 30, &cfg->desc.chunk_size)))
        return EXIT_USAGE;
    if (cfg->desc.n_buckets % 2 != 0)
        return fail(EXIT_USAGE, "%s: --buckets %zu must be even", cmd, cfg->desc.n_buckets);
    if (cli_dtype_list(cmd, dtypes, cfg->dtypes, &cfg->n_dtypes))
        return EXIT_USAGE;
    static const char *const names[] = {"lsh", "tiled"};
    int picked[2], npicked = 0;
    int rc2 = parse_variant_list(cmd, variants, names, 2, picked, &npicked);
    if (rc2)
        return rc2;
    cfg->do_lsh = cfg->do_tiled = 0;
    for (int v = 0; v < npicked; v++)
        *(picked[v] == 0 ? &cfg->do_lsh : &cfg->do_tiled) = 1;
    return 0;
}

int cli_bench_lsh(int argc, char **argv)
{
    lsh_bench_cfg cfg;
    int help = 0;
    int rc = lsh_bench_parse(argc, argv, &cfg, &help);
    if (parse_done(&rc, help, cli_usage_lsh))
        return rc;
    if (cfg.n_dtypes == 1 && cfg.dtypes[0] == CLATTN_F32) {
        bench_pair p = {.op = "lsh", .device = cfg.device, .row = bench_lsh_row, .cfg = &cfg,
                        .do_op = cfg.do_lsh, .do_tiled = cfg.do_tiled, .causal = cfg.desc.causal,
                        .csv = cfg.csv, .ns = cfg.ns, .n_count = cfg.n_count, .batch = cfg.batch,
                        .heads = cfg.heads, .d = cfg.d, .reps = cfg.reps};
        return bench_pair_sweep(&p);
    }
    /* Every type at every length (and the tiled baseline once per length), in one run. */
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    rc = bench_start(cfg.device, 0, (cfg.n_dtypes + 1) * cfg.n_count, &ctx, &rows);
    if (rc)
        return rc;
    size_t count = 0, failed = 0;
    progress prog = {isatty(fileno(stderr)), 0,
                     cfg.n_count * (cfg.do_lsh * cfg.n_dtypes + (size_t)cfg.do_tiled)};
    for (size_t i = 0; i < cfg.n_count; i++) {
        size_t n = cfg.ns[i];
        for (size_t t = 0; cfg.do_lsh && t < cfg.n_dtypes; t++) {
            cfg.desc.q_dtype = cfg.desc.v_dtype = cfg.desc.out_dtype = cfg.dtypes[t];
            progress_step(&prog, "lsh N=%zu %s", n, clattn_dtype_name(cfg.dtypes[t]));
            if (bench_lsh_row(ctx, &cfg, n, &prog, &rows[count]) == 0)
                count++;
            else
                failed++;
        }
        if (cfg.do_tiled) {
            progress_step(&prog, "tiled N=%zu", n);
            if (bench_tiled_row(ctx, cfg.batch, cfg.heads, n, n, cfg.d, cfg.desc.causal, cfg.reps,
                                &prog, &rows[count]) == 0)
                count++;
            else
                failed++;
        }
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    rc = bench_report(rows, count, cfg.csv, cfg.do_tiled && cfg.do_lsh ? "tiled" : NULL, 0);
    return count == 0 && failed > 0 ? EXIT_RUNTIME : rc;
}
