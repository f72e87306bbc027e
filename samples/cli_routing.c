/* clattn run routing / clattn bench routing: Routing Transformer attention from the command line
 * (see cli.h for the conventions every subcommand follows). */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, strtok_r */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_routing(FILE *f)
{
    fprintf(f,
            "  clattn run routing --q Q.npy --k K.npy --v V.npy -o OUT.npy --clusters C\n"
            "         [--window W] [--causal] (--centroids M.npy | --seed S) [--device SEL]\n"
            "         [--dtype T] [--out-dtype T]\n"
            "      Routing Transformer attention (balanced routing: each of the C clusters takes\n"
            "      the W queries and W keys closest to its centroid, default W = ceil(N / C)) on\n"
            "      .npy arrays q [B,Hq,N,D], k [B,Hk,N,D], v [B,Hk,N,Dv] (Hq a multiple\n"
            "      of Hk: grouped-query heads share a key head's routing); centroids [Hk,C,D], or\n"
            "      k-means++ from q and k with the seed (clattn_routing_centroids_draw). Writes\n"
            "      OUT [B,Hq,N,Dv] in --out-dtype (default f32); positions no cluster served are\n"
            "      zeros. q, k, v: float32, float16, or bfloat16 words with --dtype bf16, each\n"
            "      kept in its type on the device unless --dtype converts; centroids: float32\n"
            "  clattn bench routing [--n 4096,16384,65536] [--d 64] [--heads 1] [--batch 1]\n"
            "         [--clusters C] [--window W] [--causal] [--reps 3]\n"
            "         [--variants routing,tiled] [--dtype f32,f16,bf16] [--csv] [--device SEL]\n"
            "      median wall time of routing attention (a baked plan's enqueue; Dv = D;\n"
            "      C = ceil(sqrt(N)) unless given; centroids by k-means++ with seed 0, not timed)\n"
            "      and of exact tiled attention on the same shapes, measured in the same run;\n"
            "      the table's 'vs base' column is tiled ms / routing ms. Routing rows report no\n"
            "      GFLOP/s (0 in CSV). --dtype: the element type of q, k, v and out (a list times\n"
            "      each in the same run; default f32; centroids stay f32); the last column says\n"
            "      which. Tiled rows: f32\n");
}

/* ---- run ---- */

typedef struct routing_run_args {
    const char *q, *k, *v, *out, *centroids, *seed, *clusters, *window, *device;
    int causal;
} routing_run_args;

static int routing_desc_from(const routing_run_args *ra, clattn_routing_desc *d)
{
    const char *cmd = "run routing";
    clattn_routing_desc_init(d);
    d->causal = ra->causal;
    if (!ra->q || !ra->k || !ra->v || !ra->out)
        return fail(EXIT_USAGE, "%s: --q, --k, --v and -o are required", cmd);
    if (!ra->clusters)
        return fail(EXIT_USAGE, "%s: --clusters is required", cmd);
    if (size_option(cmd, "--clusters", ra->clusters, 1, (size_t)1 << 30, &d->clusters))
        return EXIT_USAGE;
    if (ra->window && size_option(cmd, "--window", ra->window, 1, (size_t)1 << 30, &d->window))
        return EXIT_USAGE;
    if (!ra->centroids == !ra->seed)
        return fail(EXIT_USAGE, "%s: give exactly one of --centroids and --seed", cmd);
    if (ra->seed && seed_option(cmd, "--seed", ra->seed, &d->seed))
        return EXIT_USAGE;
    return 0;
}

static int routing_check_shapes(const routing_run_args *ra, const clattn_routing_desc *d,
                                const npy_array *q, const npy_array *k, const npy_array *v,
                                const npy_array *m)
{
    const char *cmd = "run routing";
    char qs[160], ks[160], vs[160], ms[160];
    format_shape(qs, sizeof qs, q->ndim, q->shape);
    format_shape(ks, sizeof ks, k->ndim, k->shape);
    format_shape(vs, sizeof vs, v->ndim, v->shape);
    if (q->shape[3] > MAX_HEAD_DIM || v->shape[3] > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dims of %s %s and %s %s must be at most %d", cmd, ra->q,
                    qs, ra->v, vs, MAX_HEAD_DIM);
    if (q->shape[0] != k->shape[0] || q->shape[2] != k->shape[2] || q->shape[3] != k->shape[3] ||
        q->shape[1] % k->shape[1] != 0)
        return fail(EXIT_USAGE,
                    "%s: %s %s and %s %s differ (same B, N, D; query heads a multiple of key "
                    "heads)",
                    cmd, ra->q, qs, ra->k, ks);
    if (k->shape[0] != v->shape[0] || k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2])
        return fail(EXIT_USAGE, "%s: %s %s and %s %s differ in batch, heads or length", cmd,
                    ra->k, ks, ra->v, vs);
    if (d->clusters > q->shape[2])
        return fail(EXIT_USAGE, "%s: --clusters %zu exceeds the length N = %zu", cmd,
                    d->clusters, q->shape[2]);
    if (d->window != CLATTN_ROUTING_WINDOW_AUTO && d->window > q->shape[2])
        return fail(EXIT_USAGE, "%s: --window %zu exceeds the length N = %zu", cmd, d->window,
                    q->shape[2]);
    if (m->data) {
        format_shape(ms, sizeof ms, m->ndim, m->shape);
        if (m->shape[0] != k->shape[1] || m->shape[1] != d->clusters ||
            m->shape[2] != q->shape[3])
            return fail(EXIT_USAGE,
                        "%s: %s %s should be [%zu, %zu, %zu] (key heads, clusters, D)", cmd,
                        ra->centroids, ms, k->shape[1], d->clusters, q->shape[3]);
    }
    return 0;
}

/* Uploads q, k, v and the centroids [Hk, C, D] (NULL: k-means++ from q and k with desc->seed, on
 * the plan), bakes the plan, enqueues it and reads out [B, Hq, N, Dv] back: 0 or an exit code
 * after a message. */
static int run_on_device(clattn_context *ctx, const clattn_routing_desc *desc,
                         const npy_array *q, const npy_array *k, const npy_array *v,
                         const float *centroids, void *out, clattn_plan **plan)
{
    const size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]},
                 mshape[4] = {1, k->shape[1], desc->clusters, q->shape[3]};
    const size_t mbytes = mshape[1] * mshape[2] * mshape[3] * 4;
    cli_io io;
    cli_io_init(&io, ctx);
    cl_mem bq = cli_io_in(&io, q->data, q->count * clattn_dtype_size(desc->q_dtype)),
           bk = cli_io_in(&io, k->data, k->count * clattn_dtype_size(desc->k_dtype)),
           bv = cli_io_in(&io, v->data, v->count * clattn_dtype_size(desc->v_dtype)),
           bm = centroids ? cli_io_in(&io, centroids, mbytes) : cli_io_out(&io, NULL, mbytes),
           bo = cli_io_out(&io, out,
                           q->count / q->shape[3] * oshape[3] * clattn_dtype_size(desc->out_dtype));
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st =
        clattn_routing_plan_create(ctx, desc, q->shape, k->shape, v->shape, mshape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "routing attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tk = cli_tensor_typed(bk, k->shape, desc->k_dtype),
                  tv = cli_tensor_typed(bv, v->shape, desc->v_dtype), tm = cli_tensor(bm, mshape),
                  to = cli_tensor_typed(bo, oshape, desc->out_dtype);
    if (!centroids)
        st = clattn_routing_centroids_draw(*plan, &tq, &tk, desc->seed, &tm);
    cl_event done = NULL;
    if (st == CLATTN_SUCCESS)
        st = clattn_routing_plan_enqueue(*plan, &tq, &tk, &tv, &tm, &to, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "routing attention failed");
cleanup:
    cli_io_end(&io);
    return rc;
}

static int routing_run(const routing_run_args *ra)
{
    clattn_routing_desc desc;
    int rc = routing_desc_from(ra, &desc);
    if (rc)
        return rc;
    npy_array q, k, v, m;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    memset(&m, 0, sizeof m);
    void *out = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_tensor(ra->q, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(ra->k, "--k", 4, &k, &desc.k_dtype)) ||
        (rc = load_tensor(ra->v, "--v", 4, &v, &desc.v_dtype)) ||
        (ra->centroids && (rc = load_f32(ra->centroids, "--centroids", 3, &m))) ||
        (rc = routing_check_shapes(ra, &desc, &q, &k, &v, &m)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    size_t rows = q.count / q.shape[3];
    out = malloc(rows * v.shape[3] * clattn_dtype_size(desc.out_dtype));
    if (!out) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(ra->device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &k, &v, m.data, out, &plan)))
        goto cleanup;
    size_t oshape[4] = {q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
    rc = write_tensor(ra->out, out, desc.out_dtype, 4, oshape);
    if (rc == 0)
        cli_run_summary(ctx, "routing", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    npy_free(&m);
    free(out);
    return rc;
}

int cli_run_routing(int argc, char **argv)
{
    routing_run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},
        {"--k", NULL, &ra.k, NULL},
        {"--v", NULL, &ra.v, NULL},
        {"--out", "-o", &ra.out, NULL},
        {"--centroids", NULL, &ra.centroids, NULL},
        {"--seed", NULL, &ra.seed, NULL},
        {"--clusters", NULL, &ra.clusters, NULL},
        {"--window", NULL, &ra.window, NULL},
        {"--device", NULL, &ra.device, NULL},
        {"--causal", NULL, NULL, &ra.causal},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "run routing", specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_routing))
        return rc;
    return routing_run(&ra);
}

/* ---- bench ---- */

typedef struct routing_bench_cfg {
    size_t ns[MAX_SWEEP], n_count;
    size_t d, heads, batch, reps, clusters; /* clusters 0: ceil(sqrt(N)) */
    clattn_routing_desc desc; /* its dtypes: the type being timed */
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    int csv, do_routing, do_tiled;
    const char *device;
} routing_bench_cfg;


typedef struct routing_job {
    clattn_plan *plan;
    clattn_tensor q, k, v, mu, out;
} routing_job;

/* One timed call: the plan's enqueue (baked once, before timing). */
static clattn_status routing_enqueue(void *arg)
{
    routing_job *j = arg;
    return clattn_routing_plan_enqueue(j->plan, &j->q, &j->k, &j->v, &j->mu, &j->out, 0, NULL,
                                       NULL);
}

static size_t clusters_for(const routing_bench_cfg *cfg, size_t n)
{
    if (cfg->clusters)
        return cfg->clusters;
    size_t c = (size_t)ceil(sqrt((double)n));
    return c > n ? n : c;
}

static int bench_routing_row(clattn_context *ctx, const void *arg, size_t n, const progress *prog,
                             bench_row *r)
{
    const routing_bench_cfg *cfg = arg;
    cl_mem bufs[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t elems = cfg->batch * cfg->heads * n * cfg->d, c = clusters_for(cfg, n);
    memset(r, 0, sizeof *r);
    if (c > n) {
        note(prog, "routing N=%zu skipped: %zu clusters exceed the length", n, c);
        return -1;
    }
    clattn_dtype dt = cfg->desc.q_dtype;
    cl_int err = make_buffers_typed(ctx, bufs, 4, 3, elems, dt);
    if (err == CL_SUCCESS)
        err = make_buffers(ctx, bufs + 4, 1, 0, cfg->heads * c * cfg->d);
    if (err != CL_SUCCESS) {
        release_buffers(bufs, 5);
        note(prog, "routing N=%zu %s skipped: cannot allocate its tensors (OpenCL error %d)", n,
             clattn_dtype_name(dt), (int)err);
        return -1;
    }
    clattn_routing_desc desc = cfg->desc;
    desc.clusters = c;
    size_t B = cfg->batch, H = cfg->heads, D = cfg->d;
    routing_job job = {NULL,
                       clattn_tensor_make_typed(bufs[0], dt, B, H, n, D),
                       clattn_tensor_make_typed(bufs[1], dt, B, H, n, D),
                       clattn_tensor_make_typed(bufs[2], dt, B, H, n, D),
                       clattn_tensor_make(bufs[4], 1, H, c, D),
                       clattn_tensor_make_typed(bufs[3], dt, B, H, n, D)};
    clattn_status st = clattn_routing_plan_create(ctx, &desc, job.q.shape, job.k.shape,
                                                  job.v.shape, job.mu.shape, &job.plan);
    if (st == CLATTN_SUCCESS)
        st = clattn_routing_centroids_draw(job.plan, &job.q, &job.k, 0, &job.mu);
    if (st == CLATTN_SUCCESS)
        st = time_median(ctx, routing_enqueue, &job, cfg->reps, &r->ms);
    clattn_plan_destroy(job.plan);
    release_buffers(bufs, 5);
    if (st != CLATTN_SUCCESS) {
        note(prog, "routing N=%zu %s failed: %s", n, clattn_dtype_name(dt), lib_error(ctx, st));
        return -1;
    }
    size_t w = desc.window == CLATTN_ROUTING_WINDOW_AUTO ? (n + c - 1) / c : desc.window;
    snprintf(r->op, sizeof r->op, "routing");
    r->dtype = clattn_dtype_name(dt);
    snprintf(r->variant, sizeof r->variant, "routing");
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = r->nk = n;
    r->d = cfg->d;
    r->causal = cfg->desc.causal;
    r->gflops = 0; /* scoring, selection and scatter are not FLOP-bound: no fixed count */
    r->build_ms = NAN;
    snprintf(r->kernel, sizeof r->kernel, "clattn_routing C%zu w%zu", c, w);
    return 0;
}

static int routing_bench_parse(int argc, char **argv, routing_bench_cfg *cfg, int *help)
{
    const char *cmd = "bench routing";
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL,
               *clusters = NULL, *window = NULL, *variants = NULL, *dtypes = NULL;
    memset(cfg, 0, sizeof *cfg);
    clattn_routing_desc_init(&cfg->desc);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--clusters", NULL, &clusters, NULL},
        {"--window", NULL, &window, NULL},
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
        (clusters && size_option(cmd, "--clusters", clusters, 1, (size_t)1 << 28,
                                 &cfg->clusters)) ||
        (window && size_option(cmd, "--window", window, 1, (size_t)1 << 28, &cfg->desc.window)) ||
        cli_dtype_list(cmd, dtypes, cfg->dtypes, &cfg->n_dtypes))
        return EXIT_USAGE;
    static const char *const names[] = {"routing", "tiled"};
    int picked[2], npicked = 0;
    int rc2 = parse_variant_list(cmd, variants, names, 2, picked, &npicked);
    if (rc2)
        return rc2;
    cfg->do_routing = cfg->do_tiled = 0;
    for (int v = 0; v < npicked; v++)
        *(picked[v] == 0 ? &cfg->do_routing : &cfg->do_tiled) = 1;
    return 0;
}

int cli_bench_routing(int argc, char **argv)
{
    routing_bench_cfg cfg;
    int help = 0;
    int rc = routing_bench_parse(argc, argv, &cfg, &help);
    if (parse_done(&rc, help, cli_usage_routing))
        return rc;
    if (cfg.n_dtypes == 1 && cfg.dtypes[0] == CLATTN_F32) {
        bench_pair p = {.op = "routing", .device = cfg.device, .row = bench_routing_row,
                        .cfg = &cfg, .do_op = cfg.do_routing, .do_tiled = cfg.do_tiled,
                        .causal = cfg.desc.causal, .csv = cfg.csv, .ns = cfg.ns,
                        .n_count = cfg.n_count, .batch = cfg.batch, .heads = cfg.heads,
                        .d = cfg.d, .reps = cfg.reps};
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
                     cfg.n_count * (cfg.do_routing * cfg.n_dtypes + (size_t)cfg.do_tiled)};
    for (size_t i = 0; i < cfg.n_count; i++) {
        size_t n = cfg.ns[i];
        for (size_t t = 0; cfg.do_routing && t < cfg.n_dtypes; t++) {
            cfg.desc.q_dtype = cfg.desc.k_dtype = cfg.desc.v_dtype = cfg.desc.out_dtype =
                cfg.dtypes[t];
            progress_step(&prog, "routing N=%zu %s", n, clattn_dtype_name(cfg.dtypes[t]));
            if (bench_routing_row(ctx, &cfg, n, &prog, &rows[count]) == 0)
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
    rc = bench_report(rows, count, cfg.csv, cfg.do_tiled && cfg.do_routing ? "tiled" : NULL, 0);
    return count == 0 && failed > 0 ? EXIT_RUNTIME : rc;
}
