/* clattn run mgk / clattn bench mgk: Transformer-MGK (include/clattn/mgk.h), softmax and linear
 * forms, through the plan API. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_mgk(FILE *f)
{
    fprintf(f,
            "  clattn run mgk --q Q.npy --k K.npy --v V.npy --pi PI.npy -o OUT.npy\n"
            "         [--sigma S[,S2,...]] [--linear] [--causal] [--eps E] [--lse LSE.npy]\n"
            "         [--algo auto|cpu|gpu] [--device SEL]\n"
            "      attention with a mixture of Gaussian keys (Transformer-MGK) on float32 .npy\n"
            "      arrays: q [B,H,Nq,D], k [B,H,R,Nk,D] (R keys per position, R <= 8), v\n"
            "      [B,H,Nk,D], pi [H,R,Nk] (mixing weights) or [R] (one per component); writes\n"
            "      OUT [B,H,Nq,D]. Softmax form (default): weights sum_r pi exp(-|q-k_r|^2 /\n"
            "      (2 sigma_r^2)) normalised over the keys; --sigma gives sigma (standard\n"
            "      deviation) for every component or one per component, default D^(1/4);\n"
            "      --lse writes log sum_j w_ij [B,H,Nq]. --linear: the kernelised form (elu+1\n"
            "      features normalised to sum 1, keys' features mixed by pi; --eps, default\n"
            "      1e-5). --causal is bottom-right aligned (linear: needs Nq = Nk). q, k, v, pi\n"
            "      may be float32, float16 or bfloat16 files (--dtype, --out-dtype; lse is\n"
            "      float32)\n"
            "  clattn bench mgk [--n 1024,4096] [--d 64] [--heads 8] [--batch 1] [--r 2]\n"
            "         [--linear] [--causal] [--dtype f32[,f16,bf16]] [--csv] [--reps 5]\n"
            "         [--device SEL]\n"
            "      median wall time of MGK against its baseline at each length, one run:\n"
            "      softmax MGK (variant mgk) against tiled softmax attention (tiled), or with\n"
            "      --linear linear MGK (mgk-linear) against linear attention with elu+1\n"
            "      features (linear). The table's 'vs base' column is base ms / variant ms.\n"
            "      --dtype: MGK's q, k, v, pi and out in each listed type (a row per type and\n"
            "      length, the dtype column; the baseline stays float32)\n");
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn run mgk                                                                                 */
/* ---------------------------------------------------------------------------------------------- */

typedef struct run_args {
    const char *q, *k, *v, *pi, *out, *lse, *sigma, *eps, *algo, *device;
    int linear, causal;
} run_args;

static int parse_sigmas(const char *s, float *sig, size_t *count)
{
    *count = 0;
    const char *p = s;
    while (*p && *count < CLATTN_MGK_MAX_COMPONENTS) {
        char *end;
        float x = strtof(p, &end);
        if (end == p || !isfinite(x) || x <= 0.0f || (*end != ',' && *end != '\0'))
            return fail(EXIT_USAGE, "run mgk: --sigma '%s' is not a list of positive numbers", s);
        sig[(*count)++] = x;
        p = *end == ',' ? end + 1 : end;
    }
    if (*p)
        return fail(EXIT_USAGE, "run mgk: --sigma has more than %d values",
                    CLATTN_MGK_MAX_COMPONENTS);
    return *count ? 0 : fail(EXIT_USAGE, "run mgk: --sigma is empty");
}

static int run_check_options(const run_args *ra, clattn_mgk_desc *desc, float *sig, size_t *nsig)
{
    const char *missing = !ra->q    ? "--q"
                          : !ra->k  ? "--k"
                          : !ra->v  ? "--v"
                          : !ra->pi ? "--pi"
                          : !ra->out ? "-o"
                                     : NULL;
    if (missing)
        return fail(EXIT_USAGE,
                    "run mgk: missing required option %s (needs --q, --k, --v, --pi, -o)",
                    missing);
    if (ra->lse && ra->linear)
        return fail(EXIT_USAGE, "run mgk: --lse is for the softmax form (not with --linear)");
    if (ra->lse && strcmp(ra->lse, ra->out) == 0)
        return fail(EXIT_USAGE, "run mgk: --lse and -o name the same file '%s'", ra->out);
    clattn_mgk_desc_init(desc);
    desc->form = ra->linear ? CLATTN_MGK_LINEAR : CLATTN_MGK_SOFTMAX;
    desc->causal = ra->causal;
    int rc;
    *nsig = 0;
    if (ra->sigma && (rc = parse_sigmas(ra->sigma, sig, nsig)))
        return rc;
    if (ra->eps && (rc = float_option("run mgk", "--eps", ra->eps, 0.0f, INFINITY, 0, &desc->eps)))
        return rc;
    if (ra->algo) {
        if (strcmp(ra->algo, "auto") == 0)
            desc->algorithm = CLATTN_MGK_AUTO;
        else if (strcmp(ra->algo, "cpu") == 0 && !ra->linear)
            desc->algorithm = CLATTN_MGK_TILED_CPU;
        else if (strcmp(ra->algo, "gpu") == 0 && !ra->linear)
            desc->algorithm = CLATTN_MGK_TILED_GPU;
        else
            return fail(EXIT_USAGE, "run mgk: --algo '%s' is not one of auto, cpu, gpu%s",
                        ra->algo, ra->linear ? " (the linear form has auto only)" : "");
    }
    return 0;
}

static int check_shapes(const run_args *ra, const npy_array *q, const npy_array *k,
                        const npy_array *v, const npy_array *pi, size_t nsig)
{
    size_t B = q->shape[0], H = q->shape[1], D = q->shape[3];
    size_t R = k->shape[2], Nk = k->shape[3];
    char ks[160], vs[160], ps[160];
    format_shape(ks, sizeof ks, 5, k->shape);
    format_shape(vs, sizeof vs, 4, v->shape);
    format_shape(ps, sizeof ps, pi->ndim, pi->shape);
    if (k->shape[0] != B || k->shape[1] != H || k->shape[4] != D)
        return fail(EXIT_USAGE, "%s (--k) shape %s: expected [%zu, %zu, R, Nk, %zu]", ra->k, ks, B,
                    H, D);
    if (R > CLATTN_MGK_MAX_COMPONENTS)
        return fail(EXIT_USAGE, "%s (--k): R = %zu keys per position, at most %d", ra->k, R,
                    CLATTN_MGK_MAX_COMPONENTS);
    if (v->shape[0] != B || v->shape[1] != H || v->shape[2] != Nk || v->shape[3] != D)
        return fail(EXIT_USAGE, "%s (--v) shape %s: expected [%zu, %zu, %zu, %zu]", ra->v, vs, B,
                    H, Nk, D);
    int full = pi->ndim == 3 && pi->shape[0] == H && pi->shape[1] == R && pi->shape[2] == Nk;
    int per_r = pi->ndim == 1 && pi->shape[0] == R;
    if (!full && !per_r)
        return fail(EXIT_USAGE, "%s (--pi) shape %s: expected [%zu, %zu, %zu] or [%zu]", ra->pi,
                    ps, H, R, Nk, R);
    if (D > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dim %zu exceeds the supported maximum %d", ra->q, D,
                    MAX_HEAD_DIM);
    if (nsig > 1 && nsig != R)
        return fail(EXIT_USAGE, "run mgk: --sigma has %zu values for R = %zu components", nsig, R);
    return 0;
}

/* The element types of q, k, v, pi (as loaded) and out (--out-dtype) are in desc. */
static int run_on_device(clattn_context *ctx, clattn_mgk_desc *desc, const npy_array *q,
                         const npy_array *k, const npy_array *v, const npy_array *pi, void *out,
                         float *lse, clattn_plan **plan)
{
    cli_io io;
    cli_io_init(&io, ctx);
    size_t B = q->shape[0], H = q->shape[1], D = q->shape[3], R = k->shape[2], Nk = k->shape[3];
    const size_t lse_shape[4] = {B, H, q->shape[2], 1}, ks[4] = {B, H * R, Nk, D};
    const size_t vshape[4] = {B, H, Nk, D};
    size_t eq = clattn_dtype_size(desc->q_dtype), ek = clattn_dtype_size(desc->k_dtype);
    size_t ev = clattn_dtype_size(desc->v_dtype), ep = clattn_dtype_size(desc->pi_dtype);
    size_t eo = clattn_dtype_size(desc->out_dtype);
    cl_mem bq = cli_io_in(&io, q->data, q->count * eq),
           bk = cli_io_in(&io, k->data, k->count * ek),
           bv = cli_io_in(&io, v->data, v->count * ev),
           bp = cli_io_in(&io, pi->data, pi->count * ep),
           bo = cli_io_out(&io, out, q->count * eo),
           bl = lse ? cli_io_out(&io, lse, q->count / D * 4) : NULL;
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_mgk_plan_create(ctx, desc, q->shape, ks, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "mgk attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tk = cli_tensor_typed(bk, ks, desc->k_dtype),
                  tv = cli_tensor_typed(bv, vshape, desc->v_dtype),
                  to = cli_tensor_typed(bo, q->shape, desc->out_dtype),
                  tl = cli_tensor(bl, lse_shape);
    clattn_tensor tp = clattn_tensor_make_typed(bp, desc->pi_dtype, 1, H, R, Nk);
    if (pi->ndim == 1) { /* one weight per component, broadcast */
        tp.strides[0] = tp.strides[1] = tp.strides[3] = 0;
        tp.strides[2] = 1;
    }
    cl_event done = NULL;
    st = clattn_mgk_plan_enqueue(*plan, &tq, &tk, &tv, &tp, &to, lse ? &tl : NULL, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "mgk attention failed");
cleanup:
    cli_io_end(&io);
    return rc;
}

static int run_mgk(const run_args *ra)
{
    clattn_mgk_desc desc;
    float sig[CLATTN_MGK_MAX_COMPONENTS];
    size_t nsig = 0;
    int rc = run_check_options(ra, &desc, sig, &nsig);
    if (rc)
        return rc;
    npy_array q, k, v, pi;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    memset(&pi, 0, sizeof pi);
    void *out = NULL;
    float *lse = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_tensor(ra->q, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(ra->k, "--k", 5, &k, &desc.k_dtype)) ||
        (rc = load_tensor(ra->v, "--v", 4, &v, &desc.v_dtype)) ||
        (rc = load_tensor(ra->pi, "--pi", 0, &pi, &desc.pi_dtype)) ||
        (rc = check_shapes(ra, &q, &k, &v, &pi, nsig)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    for (size_t r = 0; r < k.shape[2]; r++)
        desc.sigma[r] = nsig == 0 ? 0.0f : nsig == 1 ? sig[0] : sig[r];
    out = malloc(q.count * clattn_dtype_size(desc.out_dtype));
    lse = ra->lse ? malloc(q.count / q.shape[3] * sizeof *lse) : NULL;
    if (!out || (ra->lse && !lse)) {
        rc = fail(EXIT_RUNTIME, "out of memory for the outputs");
        goto cleanup;
    }
    if ((rc = open_context(ra->device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &k, &v, &pi, out, lse, &plan)))
        goto cleanup;
    if ((rc = write_tensor(ra->out, out, desc.out_dtype, 4, q.shape)))
        goto cleanup;
    if (ra->lse && (rc = write_f32(ra->lse, lse, 3, q.shape))) {
        remove(ra->out);
        goto cleanup;
    }
    cli_run_summary(ctx, "mgk", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    npy_free(&pi);
    free(out);
    free(lse);
    return rc;
}

int cli_run_mgk(int argc, char **argv)
{
    run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},           {"--k", NULL, &ra.k, NULL},
        {"--v", NULL, &ra.v, NULL},           {"--pi", NULL, &ra.pi, NULL},
        {"--out", "-o", &ra.out, NULL},       {"--lse", NULL, &ra.lse, NULL},
        {"--sigma", NULL, &ra.sigma, NULL},   {"--eps", NULL, &ra.eps, NULL},
        {"--algo", NULL, &ra.algo, NULL},     {"--device", NULL, &ra.device, NULL},
        {"--linear", NULL, NULL, &ra.linear}, {"--causal", NULL, NULL, &ra.causal},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "run mgk", specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_mgk))
        return rc;
    return run_mgk(&ra);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn bench mgk                                                                               */
/* ---------------------------------------------------------------------------------------------- */

typedef struct bench_cfg {
    size_t ns[MAX_SWEEP], n_count, d, heads, batch, r, reps;
    clattn_dtype dts[3]; /* --dtype: MGK's tensors in each (the baseline stays float32) */
    size_t dt_count;
    int linear, causal, csv;
    const char *device;
} bench_cfg;

typedef struct job {
    clattn_plan *plan;
    int mgk;
    clattn_tensor q, k, v, p, o;
} job;

static clattn_status job_enqueue(void *arg)
{
    job *j = arg;
    if (j->mgk)
        return clattn_mgk_plan_enqueue(j->plan, &j->q, &j->k, &j->v, &j->p, &j->o, NULL, 0, NULL,
                                       NULL);
    return clattn_linear_plan_enqueue(j->plan, &j->q, &j->k, &j->v, &j->o, 0, NULL, NULL);
}

/* Overwrites the first `count` of bufs with `elems` values in [-1, 1) stored as dt (the f32
 * buffers' random words would read as arbitrary, also NaN, 16-bit values). */
static cl_int fill_typed(clattn_context *ctx, cl_mem *bufs, size_t count, size_t elems,
                         clattn_dtype dt)
{
    float *host = malloc(elems * sizeof *host);
    void *typed = malloc(elems * clattn_dtype_size(dt));
    cl_int err = host && typed ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; i < count && err == CL_SUCCESS; i++) {
        fill_random(host, elems, i + 1);
        clattn_convert_host(host, CLATTN_F32, typed, dt, elems);
        err = clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bufs[i], CL_TRUE, 0,
                                   elems * clattn_dtype_size(dt), typed, 0, NULL, NULL);
    }
    free(host);
    free(typed);
    return err;
}

/* One row: MGK (mgk = 1, tensors of type dt) or linear attention (mgk = 0, --linear only, f32)
 * at length n. */
static int bench_one(clattn_context *ctx, const bench_cfg *c, size_t n, int mgk, clattn_dtype dt,
                     const progress *prog, bench_row *row)
{
    size_t B = c->batch, H = c->heads, D = c->d, R = mgk ? c->r : 1;
    size_t qs[4] = {B, H, n, D}, ks[4] = {B, H * R, n, D};
    cl_mem bufs[5];
    size_t el = B * H * n * D;
    cl_int err = make_buffers(ctx, bufs, 5, 5, el * R);
    if (err == CL_SUCCESS && dt != CLATTN_F32 && (err = fill_typed(ctx, bufs, 4, el * R, dt)))
        release_buffers(bufs, 5);
    if (err != CL_SUCCESS) {
        note(prog, "N=%zu skipped: cannot allocate the tensors (OpenCL error %d)", n, (int)err);
        return -1;
    }
    job j;
    memset(&j, 0, sizeof j);
    j.mgk = mgk;
    clattn_status st;
    double t0 = now_ms();
    if (mgk) {
        clattn_mgk_desc d;
        clattn_mgk_desc_init(&d);
        d.form = c->linear ? CLATTN_MGK_LINEAR : CLATTN_MGK_SOFTMAX;
        d.causal = c->causal;
        d.q_dtype = d.k_dtype = d.v_dtype = d.pi_dtype = d.out_dtype = dt;
        st = clattn_mgk_plan_create(ctx, &d, qs, ks, &j.plan);
    } else {
        clattn_linear_desc d;
        clattn_linear_desc_init(&d);
        d.causal = c->causal;
        st = clattn_linear_plan_create(ctx, &d, qs, qs, qs, &j.plan);
    }
    row->build_ms = now_ms() - t0;
    const char *name = mgk ? (c->linear ? "mgk-linear" : "mgk") : "linear";
    if (st == CLATTN_SUCCESS) {
        j.q = clattn_tensor_make_typed(bufs[0], dt, B, H, n, D);
        j.k = clattn_tensor_make_typed(bufs[1], dt, B, H * R, n, D);
        j.v = clattn_tensor_make_typed(bufs[2], dt, B, H, n, D);
        j.p = clattn_tensor_make_typed(bufs[3], dt, 1, H, R, n);
        j.o = clattn_tensor_make_typed(bufs[4], dt, B, H, n, D);
        clattn_plan_info info;
        if (clattn_plan_get_info(j.plan, &info) == CLATTN_SUCCESS)
            snprintf(row->kernel, sizeof row->kernel, "%s", info.variant);
        st = time_median(ctx, job_enqueue, &j, c->reps, &row->ms);
    }
    if (st != CLATTN_SUCCESS)
        note(prog, "%s %s N=%zu failed: %s", name, clattn_dtype_name(dt), n, lib_error(ctx, st));
    clattn_plan_destroy(j.plan);
    release_buffers(bufs, 5);
    if (st != CLATTN_SUCCESS)
        return -1;
    snprintf(row->op, sizeof row->op, "mgk");
    snprintf(row->variant, sizeof row->variant, "%s", name);
    row->batch = B;
    row->heads = H;
    row->nq = row->nk = n;
    row->d = D;
    row->causal = c->causal;
    row->dtype = clattn_dtype_name(dt);
    /* softmax MGK: R score products and one P.V product per (i, j); linear forms: no count */
    double f = 2.0 * (double)B * (double)H * (double)n * (double)n * (double)D * (double)(R + 1);
    row->gflops = c->linear || !mgk ? 0.0 : (c->causal ? f / 2 : f) / (row->ms * 1e6);
    return 0;
}

int cli_bench_mgk(int argc, char **argv)
{
    bench_cfg c;
    memset(&c, 0, sizeof c);
    const char *ns = NULL, *d = NULL, *heads = NULL, *batch = NULL, *r = NULL, *reps = NULL;
    const char *dtypes = NULL;
    const opt_spec specs[] = {
        {"--n", NULL, &ns, NULL},         {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},  {"--batch", NULL, &batch, NULL},
        {"--r", NULL, &r, NULL},          {"--reps", NULL, &reps, NULL},
        {"--device", NULL, &c.device, NULL}, {"--linear", NULL, NULL, &c.linear},
        {"--causal", NULL, NULL, &c.causal}, {"--csv", NULL, NULL, &c.csv},
        {"--dtype", NULL, &dtypes, NULL},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "bench mgk", specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_mgk))
        return rc;
    c.ns[0] = 1024, c.ns[1] = 4096, c.n_count = 2;
    c.d = 64, c.heads = 8, c.batch = 1, c.r = 2, c.reps = 5;
    if ((ns && (rc = parse_list("bench mgk", "--n", ns, 1, (size_t)1 << 20, c.ns, &c.n_count))) ||
        (d && (rc = size_option("bench mgk", "--d", d, 1, MAX_HEAD_DIM, &c.d))) ||
        (heads && (rc = size_option("bench mgk", "--heads", heads, 1, 256, &c.heads))) ||
        (batch && (rc = size_option("bench mgk", "--batch", batch, 1, 256, &c.batch))) ||
        (r && (rc = size_option("bench mgk", "--r", r, 1, CLATTN_MGK_MAX_COMPONENTS, &c.r))) ||
        (reps && (rc = size_option("bench mgk", "--reps", reps, 1, 1000, &c.reps))) ||
        (rc = cli_dtype_list("bench mgk", dtypes, c.dts, &c.dt_count)))
        return rc;
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    size_t per_n = c.dt_count + 1;
    if ((rc = bench_start(c.device, 1, per_n * c.n_count, &ctx, &rows)))
        return rc;
    progress prog = {isatty(fileno(stderr)), 0, per_n * c.n_count};
    size_t count = 0;
    for (size_t i = 0; i < c.n_count; i++) {
        size_t n = c.ns[i];
        for (size_t t = 0; t < c.dt_count; t++) {
            progress_step(&prog, "%s %s N=%zu", c.linear ? "mgk-linear" : "mgk",
                          clattn_dtype_name(c.dts[t]), n);
            if (bench_one(ctx, &c, n, 1, c.dts[t], &prog, &rows[count]) == 0)
                count++;
        }
        progress_step(&prog, "%s N=%zu", c.linear ? "linear" : "tiled", n);
        if (c.linear ? bench_one(ctx, &c, n, 0, CLATTN_F32, &prog, &rows[count]) == 0
                     : bench_tiled_row(ctx, c.batch, c.heads, n, n, c.d, c.causal, c.reps, &prog,
                                       &rows[count]) == 0)
            count++;
    }
    progress_clear(&prog);
    rc = bench_report(rows, count, c.csv, c.linear ? "linear" : "tiled", 0);
    clattn_context_destroy(ctx);
    return rc;
}
