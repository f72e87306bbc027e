/* clattn run rpe / clattn bench rpe: kernelized attention with relative positional encoding
 * (Luo et al. 2021), by FFT or by the direct sums. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* bench: a direct run predicted (from the previous length, N^2) to take longer is skipped. */
#define DIRECT_LIMIT_MS 30000.0

void cli_usage_rpe(FILE *f)
{
    fprintf(f,
            "  clattn run rpe --q Q.npy --k K.npy --v V.npy --bias B.npy -o OUT.npy [--causal]\n"
            "         [--feature-map elu|relu|favor] [--features M] [--seed S]\n"
            "         [--projection W.npy] [--eps E] [--algo auto|fft|direct] [--device SEL]\n"
            "      kernelized attention with a relative positional bias: q, k [B,H,N,D],\n"
            "      v [B,H,N,Dv], bias [H, 2N-1] (element r + N - 1 holds b_r for offset\n"
            "      r = j - i); weights phi(q_i).phi(k_j) exp(b_(j-i)); writes OUT [B,H,N,Dv].\n"
            "      k and v may have fewer heads Hk dividing H (grouped queries); the bias is\n"
            "      per query head. FAVOR+ uses W [M,D] from --projection or draws it from --seed;\n"
            "      --eps E is added to sum_j w_ij in the formula's scale (0: none).\n"
            "      q, k, v and the bias may be float32, float16 or bfloat16 files (each kept\n"
            "      in its type, or all converted to --dtype); OUT is written in --out-dtype\n"
            "  clattn bench rpe [--n 1024,4096,16384,65536] [--d 16] [--dv D] [--heads 1]\n"
            "         [--batch 1] [--feature-map elu|relu|favor] [--features M] [--causal]\n"
            "         [--variants fft,direct] [--dtype f32,f16,bf16] [--reps 3] [--csv]\n"
            "         [--device SEL]\n"
            "      the FFT path against the direct O(N^2) sums in one run, each on a plan\n"
            "      baked first (bake time not included); a direct run predicted to exceed\n"
            "      30 s is skipped. FLOPs: direct 2*B*H*N^2*(M+Dv) (halved when causal);\n"
            "      none counted for fft. --dtype: the element type of q, k, v, bias and out\n"
            "      (default f32); a list times each type in this run (a dtype column)\n");
}

/* ---------------------------------------------------------------------------------------------- */
/* Options shared by run and bench                                                                */
/* ---------------------------------------------------------------------------------------------- */

typedef struct rpe_opts {
    const char *fmap, *features, *seed, *eps, *algo;
} rpe_opts;

/* Fills desc from the options (no file needed); 0 or EXIT_USAGE. */
static int rpe_desc(const char *cmd, const rpe_opts *o, clattn_rpe_desc *desc)
{
    clattn_rpe_desc_init(desc);
    clattn_linear_desc *f = &desc->linear;
    int rc = 0;
    if (o->fmap) {
        if (strcmp(o->fmap, "elu") == 0)
            f->feature_map = CLATTN_LINEAR_FEATURE_ELU;
        else if (strcmp(o->fmap, "relu") == 0)
            f->feature_map = CLATTN_LINEAR_FEATURE_RELU;
        else if (strcmp(o->fmap, "favor") == 0)
            f->feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
        else
            return fail(EXIT_USAGE, "%s: --feature-map '%s' is not one of elu, relu, favor", cmd,
                        o->fmap);
    }
    if (o->features && (rc = size_option(cmd, "--features", o->features, 1, 4096, &f->features)))
        return rc;
    if (o->seed && (rc = seed_option(cmd, "--seed", o->seed, &f->seed)))
        return rc;
    if ((o->features || o->seed) && f->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(EXIT_USAGE, "%s: --features and --seed need --feature-map favor", cmd);
    if (o->eps && (rc = float_option(cmd, "--eps", o->eps, 0.0f, INFINITY, 0, &f->eps)))
        return rc;
    if (o->algo) {
        if (strcmp(o->algo, "auto") == 0)
            desc->algorithm = CLATTN_RPE_AUTO;
        else if (strcmp(o->algo, "fft") == 0)
            desc->algorithm = CLATTN_RPE_FFT;
        else if (strcmp(o->algo, "direct") == 0)
            desc->algorithm = CLATTN_RPE_DIRECT;
        else
            return fail(EXIT_USAGE, "%s: --algo '%s' is not auto, fft or direct", cmd, o->algo);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* run                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

/* Shapes of the loaded arrays against each other, and a finite bias (of element type bdt): 0 or
 * EXIT_USAGE. */
static int check_inputs(const char *cmd, const npy_array *q, const npy_array *k,
                        const npy_array *v, const npy_array *b, clattn_dtype bdt, const char *bp)
{
    if (q->shape[0] != k->shape[0] || q->shape[2] != k->shape[2] || q->shape[3] != k->shape[3] ||
        q->shape[1] % k->shape[1] != 0)
        return fail(EXIT_USAGE,
                    "%s: --k must be [B, Hk, N, D] with --q's B, N and D and Hk dividing its H",
                    cmd);
    if (k->shape[0] != v->shape[0] || k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2])
        return fail(EXIT_USAGE, "%s: --v must be [B, Hk, N, Dv] with --k's B, Hk and N", cmd);
    if (q->shape[3] > MAX_HEAD_DIM || v->shape[3] > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dims above %d are not supported", cmd, MAX_HEAD_DIM);
    size_t n = q->shape[2];
    if (b->shape[0] != q->shape[1] || b->shape[1] != 2 * n - 1)
        return fail(EXIT_USAGE, "%s (--bias): shape [%zu, %zu], expected [H, 2N - 1] = [%zu, %zu]",
                    bp, b->shape[0], b->shape[1], q->shape[1], 2 * n - 1);
    size_t nb = b->shape[0] * b->shape[1], es = clattn_dtype_size(bdt);
    for (size_t x = 0; x < nb; x++) {
        float f = 0.0f;
        clattn_convert_host((const unsigned char *)b->data + x * es, bdt, &f, CLATTN_F32, 1);
        if (!isfinite(f))
            return fail(EXIT_USAGE, "%s (--bias): element [%zu, %zu] is not finite", bp,
                        x / b->shape[1], x % b->shape[1]);
    }
    return 0;
}

/* Uploads q, k, v and the bias [H, 2N - 1] (in the desc's element types, those of the loaded
 * arrays), bakes the plan, enqueues it and reads out [B, H, N, Dv] (of desc->out_dtype) back: 0
 * or an exit code after a message. */
static int run_on_device(clattn_context *ctx, const clattn_rpe_desc *desc, const npy_array *q,
                         const npy_array *k, const npy_array *v, const npy_array *bias,
                         void *out, clattn_plan **plan)
{
    const size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]},
                 bshape[4] = {1, bias->shape[0], 1, bias->shape[1]};
    cli_io io;
    cli_io_init(&io, ctx);
    cl_mem bq = cli_io_in(&io, q->data, q->count * clattn_dtype_size(desc->q_dtype)),
           bk = cli_io_in(&io, k->data, k->count * clattn_dtype_size(desc->k_dtype)),
           bv = cli_io_in(&io, v->data, v->count * clattn_dtype_size(desc->v_dtype)),
           bb = cli_io_in(&io, bias->data, bias->count * clattn_dtype_size(desc->bias_dtype)),
           bo = cli_io_out(&io, out,
                           q->count / q->shape[3] * oshape[3] * clattn_dtype_size(desc->out_dtype));
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_rpe_plan_create(ctx, desc, q->shape, k->shape, v->shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "rpe attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tk = cli_tensor_typed(bk, k->shape, desc->k_dtype),
                  tv = cli_tensor_typed(bv, v->shape, desc->v_dtype),
                  tb = cli_tensor_typed(bb, bshape, desc->bias_dtype),
                  to = cli_tensor_typed(bo, oshape, desc->out_dtype);
    cl_event done = NULL;
    st = clattn_rpe_plan_enqueue(*plan, &tq, &tk, &tv, &tb, &to, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "rpe attention failed");
cleanup:
    cli_io_end(&io);
    return rc;
}

int cli_run_rpe(int argc, char **argv)
{
    const char *cmd = "run rpe";
    const char *qp = NULL, *kp = NULL, *vp = NULL, *bp = NULL, *op = NULL, *wp = NULL,
               *device = NULL;
    int causal = 0, help = 0;
    rpe_opts o;
    memset(&o, 0, sizeof o);
    const opt_spec specs[] = {
        {"--q", NULL, &qp, NULL},
        {"--k", NULL, &kp, NULL},
        {"--v", NULL, &vp, NULL},
        {"--bias", NULL, &bp, NULL},
        {"--out", "-o", &op, NULL},
        {"--feature-map", NULL, &o.fmap, NULL},
        {"--features", NULL, &o.features, NULL},
        {"--seed", NULL, &o.seed, NULL},
        {"--projection", NULL, &wp, NULL},
        {"--eps", NULL, &o.eps, NULL},
        {"--algo", NULL, &o.algo, NULL},
        {"--device", NULL, &device, NULL},
        {"--causal", NULL, NULL, &causal},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_rpe))
        return rc;
    const char *missing = !qp   ? "--q"
                          : !kp ? "--k"
                          : !vp ? "--v"
                          : !bp ? "--bias"
                          : !op ? "-o"
                                : NULL;
    if (missing)
        return fail(EXIT_USAGE, "%s: missing required option %s (needs --q, --k, --v, --bias, -o)",
                    cmd, missing);
    clattn_rpe_desc desc;
    if ((rc = rpe_desc(cmd, &o, &desc)))
        return rc;
    desc.causal = causal;
    if (wp && desc.linear.feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(EXIT_USAGE, "%s: --projection needs --feature-map favor", cmd);
    if (wp && o.seed)
        return fail(EXIT_USAGE, "%s: --projection excludes --seed", cmd);

    npy_array q, k, v, b, w;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    memset(&b, 0, sizeof b);
    memset(&w, 0, sizeof w);
    void *out = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    /* q, k, v and the bias keep their files' element types (or take --dtype's); out is written
     * in --out-dtype; FAVOR's projection stays float32 */
    if ((rc = load_tensor(qp, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(kp, "--k", 4, &k, &desc.k_dtype)) ||
        (rc = load_tensor(vp, "--v", 4, &v, &desc.v_dtype)) ||
        (rc = load_tensor(bp, "--bias", 2, &b, &desc.bias_dtype)) ||
        (rc = check_inputs(cmd, &q, &k, &v, &b, desc.bias_dtype, bp)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    if (wp) {
        if ((rc = load_f32(wp, "--projection", 2, &w)))
            goto cleanup;
        if (w.shape[1] != q.shape[3] || w.shape[0] > 4096) {
            rc = fail(EXIT_USAGE, "%s (--projection): shape [%zu, %zu], expected [M, %zu] with M "
                                  "<= 4096",
                      wp, w.shape[0], w.shape[1], q.shape[3]);
            goto cleanup;
        }
        if (o.features && w.shape[0] != desc.linear.features) {
            rc = fail(EXIT_USAGE, "%s: --features %zu differs from the %zu rows of %s", cmd,
                      desc.linear.features, w.shape[0], wp);
            goto cleanup;
        }
        desc.linear.features = w.shape[0];
        desc.linear.projection = w.data;
        desc.linear.projection_shape[0] = w.shape[0];
        desc.linear.projection_shape[1] = w.shape[1];
    }
    size_t oshape[4] = {q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
    out = malloc(oshape[0] * oshape[1] * oshape[2] * oshape[3] * clattn_dtype_size(desc.out_dtype));
    if (!out) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &k, &v, &b, out, &plan)))
        goto cleanup;
    rc = write_tensor(op, out, desc.out_dtype, 4, oshape);
    if (rc == 0)
        cli_run_summary(ctx, "rpe", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    npy_free(&b);
    npy_free(&w);
    free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

enum { RV_FFT, RV_DIRECT, RV_COUNT };
static const char *const RV_NAMES[RV_COUNT] = {"fft", "direct"};

typedef struct rpe_bench {
    size_t ns[MAX_SWEEP], n_count, d, dv, heads, batch, reps;
    int variants[RV_COUNT], n_variants, csv, causal;
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    clattn_rpe_desc desc;
    const char *device;
} rpe_bench;

typedef struct rpe_job {
    clattn_plan *plan;
    clattn_tensor t[5]; /* q, k, v, bias, out */
} rpe_job;

static clattn_status rpe_enqueue(void *arg)
{
    rpe_job *j = arg;
    return clattn_rpe_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], &j->t[4], 0,
                                   NULL, NULL);
}

/* One row: variant `var` at length n with every tensor of type dt. */
static int bench_one(clattn_context *ctx, const rpe_bench *b, size_t n, int var, clattn_dtype dt,
                     const progress *prog, bench_row *r)
{
    clattn_rpe_desc desc = b->desc;
    desc.causal = b->causal;
    desc.algorithm = var == RV_FFT ? CLATTN_RPE_FFT : CLATTN_RPE_DIRECT;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.bias_dtype = desc.out_dtype = dt;
    size_t m = clattn_linear_feature_count(&desc.linear, b->d);
    cl_mem bufs[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t big = b->batch * b->heads * n * (b->d > b->dv ? b->d : b->dv);
    if (big < b->heads * (2 * n - 1))
        big = b->heads * (2 * n - 1);
    cl_int err = make_buffers_typed(ctx, bufs, 5, 4, big, dt);
    if (err != CL_SUCCESS) {
        note(prog, "%s %s N=%zu skipped: cannot allocate its tensors (OpenCL error %d)",
             RV_NAMES[var], clattn_dtype_name(dt), n, (int)err);
        return -1;
    }
    rpe_job j = {NULL, {{0}}};
    j.t[0] = clattn_tensor_make_typed(bufs[0], dt, b->batch, b->heads, n, b->d);
    j.t[1] = clattn_tensor_make_typed(bufs[1], dt, b->batch, b->heads, n, b->d);
    j.t[2] = clattn_tensor_make_typed(bufs[2], dt, b->batch, b->heads, n, b->dv);
    j.t[3] = clattn_tensor_make_typed(bufs[3], dt, 1, b->heads, 1, 2 * n - 1); /* in [-1, 1) */
    j.t[4] = clattn_tensor_make_typed(bufs[4], dt, b->batch, b->heads, n, b->dv);
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "rpe");
    snprintf(r->variant, sizeof r->variant, "%s", RV_NAMES[var]);
    snprintf(r->kernel, sizeof r->kernel, "rpe %s M=%zu Dv=%zu", RV_NAMES[var], m, b->dv);
    r->dtype = clattn_dtype_name(dt);
    r->batch = b->batch;
    r->heads = b->heads;
    r->nq = r->nk = n;
    r->d = b->d;
    r->causal = b->causal;
    double t0 = now_ms();
    clattn_status st =
        clattn_rpe_plan_create(ctx, &desc, j.t[0].shape, j.t[1].shape, j.t[2].shape, &j.plan);
    r->build_ms = now_ms() - t0;
    if (st == CLATTN_SUCCESS)
        st = time_median(ctx, rpe_enqueue, &j, b->reps, &r->ms);
    if (var == RV_DIRECT)
        r->gflops = 2.0 * (double)(b->batch * b->heads) * (double)n * (double)n *
                    (double)(m + b->dv) / (b->causal ? 2.0 : 1.0) / (r->ms * 1e6);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s %s N=%zu failed: %s", RV_NAMES[var], clattn_dtype_name(dt), n,
             lib_error(ctx, st));
    clattn_plan_destroy(j.plan);
    release_buffers(bufs, 5);
    return st == CLATTN_SUCCESS ? 0 : -1;
}

static int bench_parse_rpe(int argc, char **argv, rpe_bench *b, int *help)
{
    const char *cmd = "bench rpe";
    const char *n = NULL, *d = NULL, *dv = NULL, *heads = NULL, *batch = NULL, *reps = NULL,
               *vars = NULL, *dtypes = NULL;
    rpe_opts o;
    memset(&o, 0, sizeof o);
    memset(b, 0, sizeof *b);
    const size_t ns[] = {1024, 4096, 16384, 65536};
    for (size_t i = 0; i < 4; i++)
        b->ns[b->n_count++] = ns[i];
    b->d = 16;
    b->heads = 1;
    b->batch = 1;
    b->reps = 3;
    b->dtypes[0] = CLATTN_F32;
    b->n_dtypes = 1;
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--dv", NULL, &dv, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--dtype", NULL, &dtypes, NULL},
        {"--feature-map", NULL, &o.fmap, NULL},
        {"--features", NULL, &o.features, NULL},
        {"--seed", NULL, &o.seed, NULL},
        {"--device", NULL, &b->device, NULL},
        {"--causal", NULL, NULL, &b->causal},
        {"--csv", NULL, NULL, &b->csv},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = rpe_desc(cmd, &o, &b->desc)))
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, (size_t)1 << 24, b->ns, &b->n_count))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, MAX_HEAD_DIM, &b->d))) ||
        (dv && (rc = size_option(cmd, "--dv", dv, 1, MAX_HEAD_DIM, &b->dv))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &b->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &b->batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))))
        return rc;
    if (!dv)
        b->dv = b->d;
    if (dtypes && (rc = cli_dtype_list(cmd, dtypes, b->dtypes, &b->n_dtypes)))
        return rc;
    return parse_variant_list(cmd, vars, RV_NAMES, RV_COUNT, b->variants, &b->n_variants);
}

int cli_bench_rpe(int argc, char **argv)
{
    rpe_bench b;
    int help = 0;
    int rc = bench_parse_rpe(argc, argv, &b, &help);
    if (parse_done(&rc, help, cli_usage_rpe))
        return rc;
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    if ((rc = bench_start(b.device, 1, b.n_count * RV_COUNT * b.n_dtypes + 1, &ctx,
                          &rows)))
        return rc;
    size_t nrows = 0;
    double last_direct_ms[3] = {0, 0, 0}; /* per element type */
    size_t last_direct_n[3] = {0, 0, 0};
    progress prog = {isatty(fileno(stderr)), 0,
                     b.n_count * (size_t)b.n_variants * b.n_dtypes};
    for (size_t i = 0; i < b.n_count; i++) {
        size_t n = b.ns[i];
        for (int vi = 0; vi < b.n_variants; vi++)
            for (size_t ti = 0; ti < b.n_dtypes; ti++) {
                int v = b.variants[vi];
                clattn_dtype dt = b.dtypes[ti];
                progress_step(&prog, "%s %s N=%zu", RV_NAMES[v], clattn_dtype_name(dt), n);
                if (v == RV_DIRECT && last_direct_n[dt]) {
                    /* warm-up + reps runs, each scaling as N^2 from the last measured length */
                    double ratio = (double)n / (double)last_direct_n[dt];
                    double predicted = last_direct_ms[dt] * ratio * ratio * (double)(b.reps + 1);
                    if (predicted > DIRECT_LIMIT_MS) {
                        note(&prog, "direct %s N=%zu skipped: predicted %.0f s (> %.0f s)",
                             clattn_dtype_name(dt), n, predicted / 1000.0,
                             DIRECT_LIMIT_MS / 1000.0);
                        continue;
                    }
                }
                bench_row *r = &rows[nrows];
                if (bench_one(ctx, &b, n, v, dt, &prog, r) == 0) {
                    nrows++;
                    if (v == RV_DIRECT) {
                        last_direct_ms[dt] = r->ms;
                        last_direct_n[dt] = n;
                    }
                }
            }
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    return bench_report(rows, nrows, b.csv, "direct", 0);
}
