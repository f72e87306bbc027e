/* clattn run ssm / clattn bench ssm: the diagonal state-space long convolution (S4D / DSS). */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_ssm(FILE *f)
{
    fprintf(f,
            "  clattn run ssm --u U.npy --A A.npy --Ct C.npy --log-dt DT.npy [--D D.npy]\n"
            "         -o Y.npy [--algo auto|fft|direct] [--device SEL]\n"
            "      diagonal state-space model (S4D/DSS) on .npy arrays: u [B,H,L] (f32, f16,\n"
            "      or bf16 with --dtype bf16), A and Ct [H,N,2] (complex as re, im), log_dt\n"
            "      [H], D [H] (float32); writes y [B,H,L] = K * u + D u (--out-dtype) with\n"
            "      K[h,l] = Re(sum_n Ct exp(exp(log_dt) A l))\n"
            "  clattn bench ssm [--n 1024,4096,16384,65536] [--heads 4] [--batch 1]\n"
            "         [--state 64] [--variants fft,direct] [--max-direct 65536] [--reps 3]\n"
            "         [--dtype f32,f16,bf16] [--csv] [--device SEL]\n"
            "      FFT and direct convolution in one run, each on a plan baked outside the\n"
            "      timing (K generated once per length); direct is skipped above --max-direct.\n"
            "      --dtype: u and y element types, each listed one timed in the same run\n"
            "      GFLOP/s counts the direct sum's B*H*N^2 multiply-adds for both\n");
    cli_usage_ssm_s4(f);
}

/* --s4 anywhere among the options: the full S4 commands of cli_ssm_s4.c. */
static int has_s4(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--s4") == 0)
            return 1;
    return 0;
}

static int algo_option(const char *cmd, const char *s, clattn_ssm_algo *a)
{
    if (!s || strcmp(s, "auto") == 0)
        *a = CLATTN_SSM_AUTO;
    else if (strcmp(s, "fft") == 0)
        *a = CLATTN_SSM_FFT;
    else if (strcmp(s, "direct") == 0)
        *a = CLATTN_SSM_DIRECT;
    else
        return fail(EXIT_USAGE, "%s: --algo '%s' is not auto, fft or direct", cmd, s);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* run                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

/* Makes the SSM handle from A, Ct, log_dt and D (NULL: no skip term), uploads u [B, H, L], bakes
 * the handle's plan (K generated once), enqueues it and reads y [B, H, L] back: 0 or an exit code
 * after a message. */
static int run_on_device(clattn_context *ctx, const clattn_ssm_desc *desc, const npy_array *u,
                         const npy_array *a, const npy_array *c, const npy_array *dt,
                         const npy_array *d, void *y, clattn_plan **plan)
{
    const size_t shape[4] = {u->shape[0], u->shape[1], u->shape[2], 1};
    clattn_ssm *ssm = NULL;
    cli_io io;
    cli_io_init(&io, ctx);
    cl_mem bu = cli_io_in(&io, u->data, u->count * clattn_dtype_size(desc->u_dtype));
    cl_mem by = cli_io_out(&io, y, u->count * clattn_dtype_size(desc->y_dtype));
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_ssm_create(ctx, shape[1], a->shape[1], a->data, c->data, dt->data,
                                         d ? d->data : NULL, &ssm);
    if (st == CLATTN_SUCCESS)
        st = clattn_ssm_plan_create(ctx, desc, ssm, shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "ssm failed");
        goto cleanup;
    }
    clattn_tensor tu = cli_tensor_typed(bu, shape, desc->u_dtype);
    clattn_tensor ty = cli_tensor_typed(by, shape, desc->y_dtype);
    cl_event done = NULL;
    st = clattn_ssm_plan_enqueue(*plan, &tu, &ty, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "ssm failed");
cleanup:
    cli_io_end(&io);
    clattn_ssm_destroy(ssm); /* the plan keeps what it needs */
    return rc;
}

int cli_run_ssm(int argc, char **argv)
{
    if (has_s4(argc, argv))
        return cli_run_ssm_s4(argc, argv);
    const char *cmd = "run ssm";
    const char *up = NULL, *ap = NULL, *cp = NULL, *dtp = NULL, *dp = NULL, *op = NULL,
               *algo = NULL, *device = NULL;
    int help = 0;
    const opt_spec specs[] = {
        {"--u", NULL, &up, NULL},         {"--A", NULL, &ap, NULL},
        {"--Ct", NULL, &cp, NULL},        {"--log-dt", NULL, &dtp, NULL},
        {"--D", NULL, &dp, NULL},         {"--out", "-o", &op, NULL},
        {"--algo", NULL, &algo, NULL},    {"--device", NULL, &device, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_ssm))
        return rc;
    const char *missing = !up    ? "--u"
                          : !ap  ? "--A"
                          : !cp  ? "--Ct"
                          : !dtp ? "--log-dt"
                          : !op  ? "-o"
                                 : NULL;
    if (missing)
        return fail(EXIT_USAGE,
                    "%s: missing required option %s (needs --u, --A, --Ct, --log-dt, -o)", cmd,
                    missing);
    clattn_ssm_desc desc;
    clattn_ssm_desc_init(&desc);
    if ((rc = algo_option(cmd, algo, &desc.algorithm)))
        return rc;

    npy_array u, a, c, dt, d;
    memset(&u, 0, sizeof u);
    memset(&a, 0, sizeof a);
    memset(&c, 0, sizeof c);
    memset(&dt, 0, sizeof dt);
    memset(&d, 0, sizeof d);
    void *y = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_tensor(up, "--u", 3, &u, &desc.u_dtype)) || (rc = load_f32(ap, "--A", 3, &a)) ||
        (rc = load_f32(cp, "--Ct", 3, &c)) || (rc = load_f32(dtp, "--log-dt", 1, &dt)) ||
        (dp && (rc = load_f32(dp, "--D", 1, &d))))
        goto cleanup;
    size_t H = u.shape[1], N = a.shape[1];
    if (a.shape[0] != H || a.shape[2] != 2) {
        rc = fail(EXIT_USAGE, "%s (--A): shape [%zu, %zu, %zu], expected [%zu, N, 2]", ap,
                  a.shape[0], a.shape[1], a.shape[2], H);
        goto cleanup;
    }
    if (c.shape[0] != H || c.shape[1] != N || c.shape[2] != 2) {
        rc = fail(EXIT_USAGE, "%s (--Ct): shape [%zu, %zu, %zu], expected [%zu, %zu, 2]", cp,
                  c.shape[0], c.shape[1], c.shape[2], H, N);
        goto cleanup;
    }
    if (dt.shape[0] != H || (dp && d.shape[0] != H)) {
        rc = fail(EXIT_USAGE, "%s: --log-dt and --D must hold H = %zu values", cmd, H);
        goto cleanup;
    }
    desc.y_dtype = cli_get_out_dtype();
    y = malloc(u.count * clattn_dtype_size(desc.y_dtype));
    if (!y) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &u, &a, &c, &dt, dp ? &d : NULL, y, &plan)))
        goto cleanup;
    rc = write_tensor(op, y, desc.y_dtype, 3, u.shape);
    if (rc == 0)
        cli_run_summary(ctx, "ssm", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&u);
    npy_free(&a);
    npy_free(&c);
    npy_free(&dt);
    npy_free(&d);
    free(y);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

enum { SV_FFT, SV_DIRECT, SV_COUNT };
static const char *const SV_NAMES[SV_COUNT] = {"fft", "direct"};

typedef struct ssm_bench {
    size_t ns[MAX_SWEEP], n_count, heads, batch, state, reps, max_direct;
    int variants[SV_COUNT], n_variants, csv;
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    const char *device;
} ssm_bench;

typedef struct ssm_job {
    clattn_plan *plan;
    clattn_tensor u, y;
} ssm_job;

static clattn_status ssm_enqueue(void *arg)
{
    ssm_job *j = arg;
    return clattn_ssm_plan_enqueue(j->plan, &j->u, &j->y, 0, NULL, NULL);
}

clattn_status cli_make_s4d_lin(clattn_context *ctx, size_t H, size_t N, clattn_ssm **s)
{
    float *A = malloc(2 * H * N * sizeof(float)), *C = malloc(2 * H * N * sizeof(float));
    float *dt = malloc(H * sizeof(float));
    clattn_status st = CLATTN_OUT_OF_HOST_MEMORY;
    if (A && C && dt) {
        fill_random(C, 2 * H * N, 7);
        for (size_t h = 0; h < H; h++) {
            dt[h] = (float)(log(0.001) + (H > 1 ? (double)h / (double)(H - 1) : 0.5) *
                                             (log(0.1) - log(0.001)));
            for (size_t n = 0; n < N; n++) {
                A[2 * (h * N + n)] = -0.5f;
                A[2 * (h * N + n) + 1] = (float)(3.14159265358979 * (double)n);
            }
        }
        st = clattn_ssm_create(ctx, H, N, A, C, dt, NULL, s);
    }
    free(A);
    free(C);
    free(dt);
    return st;
}

static int bench_one(clattn_context *ctx, const ssm_bench *b, clattn_ssm *ssm, size_t n, int var,
                     clattn_dtype dt, const progress *prog, bench_row *r)
{
    cl_mem bufs[2] = {NULL, NULL};
    cl_int err = make_buffers(ctx, bufs, 2, 1, b->batch * b->heads * n);
    if (err != CL_SUCCESS) {
        note(prog, "%s N=%zu skipped: cannot allocate its tensors (OpenCL error %d)",
             SV_NAMES[var], n, (int)err);
        return -1;
    }
    ssm_job j;
    memset(&j, 0, sizeof j);
    clattn_ssm_desc desc;
    clattn_ssm_desc_init(&desc);
    desc.algorithm = var == SV_FFT ? CLATTN_SSM_FFT : CLATTN_SSM_DIRECT;
    desc.u_dtype = desc.y_dtype = dt; /* float32-sized buffers hold any type */
    j.u = clattn_tensor_make_typed(bufs[0], dt, b->batch, b->heads, n, 1);
    j.y = clattn_tensor_make_typed(bufs[1], dt, b->batch, b->heads, n, 1);
    /* The plan (K and its spectrum, the clFFT plans) is baked outside the timing. */
    clattn_status st = clattn_ssm_plan_create(ctx, &desc, ssm, j.u.shape, &j.plan);
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s N=%zu skipped: %s", SV_NAMES[var], n, lib_error(ctx, st));
        release_buffers(bufs, 2);
        return -1;
    }
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "ssm");
    snprintf(r->variant, sizeof r->variant, "%s", SV_NAMES[var]);
    r->batch = b->batch;
    r->heads = b->heads;
    r->nq = r->nk = n;
    r->d = b->state;
    r->causal = 1;
    r->build_ms = NAN;
    r->dtype = clattn_dtype_name(dt);
    snprintf(r->kernel, sizeof r->kernel, "ssm %s N=%zu", SV_NAMES[var], b->state);
    /* The direct sum is O(N^2): one repetition beyond 8k keeps the sweep short. */
    size_t reps = var == SV_DIRECT && n > 8192 ? 1 : b->reps;
    st = time_median(ctx, ssm_enqueue, &j, reps, &r->ms);
    r->gflops = 2.0 * (double)(b->batch * b->heads) * (double)n * (double)n / 2.0 / (r->ms * 1e6);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s N=%zu failed: %s", SV_NAMES[var], n, lib_error(ctx, st));
    clattn_plan_destroy(j.plan);
    release_buffers(bufs, 2);
    return st == CLATTN_SUCCESS ? 0 : -1;
}

static int bench_parse_ssm(int argc, char **argv, ssm_bench *b, int *help)
{
    const char *cmd = "bench ssm";
    const char *n = NULL, *heads = NULL, *batch = NULL, *state = NULL, *reps = NULL,
               *vars = NULL, *maxd = NULL, *dts = NULL;
    memset(b, 0, sizeof *b);
    const size_t ns[] = {1024, 4096, 16384, 65536};
    for (size_t i = 0; i < 4; i++)
        b->ns[b->n_count++] = ns[i];
    b->heads = 4;
    b->batch = 1;
    b->state = 64;
    b->reps = 3;
    b->max_direct = 65536;
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},          {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},  {"--state", NULL, &state, NULL},
        {"--reps", NULL, &reps, NULL},    {"--variants", NULL, &vars, NULL},
        {"--max-direct", NULL, &maxd, NULL}, {"--device", NULL, &b->device, NULL},
        {"--csv", NULL, NULL, &b->csv},   {"--dtype", NULL, &dts, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = cli_dtype_list(cmd, dts, b->dtypes, &b->n_dtypes)))
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, ((size_t)1 << 24) - 1, b->ns, &b->n_count))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 65536, &b->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &b->batch))) ||
        (state && (rc = size_option(cmd, "--state", state, 1, 4096, &b->state))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))) ||
        (maxd && (rc = size_option(cmd, "--max-direct", maxd, 0, (size_t)1 << 24,
                                   &b->max_direct))))
        return rc;
    return parse_variant_list(cmd, vars, SV_NAMES, SV_COUNT, b->variants, &b->n_variants);
}

int cli_bench_ssm(int argc, char **argv)
{
    if (has_s4(argc, argv))
        return cli_bench_ssm_s4(argc, argv);
    ssm_bench b;
    int help = 0;
    int rc = bench_parse_ssm(argc, argv, &b, &help);
    if (parse_done(&rc, help, cli_usage_ssm))
        return rc;
    clattn_context *ctx = NULL;
    if ((rc = bench_open(b.device, &ctx)))
        return rc;
    clattn_ssm *ssm = NULL;
    clattn_status st = cli_make_s4d_lin(ctx, b.heads, b.state, &ssm);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "ssm parameters");
        clattn_context_destroy(ctx);
        return rc;
    }
    bench_row *rows = calloc(b.n_count * SV_COUNT * b.n_dtypes + 1, sizeof *rows);
    if (!rows) {
        clattn_ssm_destroy(ssm);
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    size_t nrows = 0;
    progress prog = {isatty(fileno(stderr)), 0, b.n_count * (size_t)b.n_variants * b.n_dtypes};
    for (size_t i = 0; i < b.n_count; i++)
        for (int vi = 0; vi < b.n_variants; vi++)
            for (size_t di = 0; di < b.n_dtypes; di++) {
                int v = b.variants[vi];
                size_t n = b.ns[i];
                clattn_dtype dt = b.dtypes[di];
                progress_step(&prog, "%s N=%zu %s", SV_NAMES[v], n, clattn_dtype_name(dt));
                if (v == SV_DIRECT && n > b.max_direct) {
                    note(&prog, "direct N=%zu skipped (above --max-direct %zu)", n,
                         b.max_direct);
                    continue;
                }
                nrows += bench_one(ctx, &b, ssm, n, v, dt, &prog, &rows[nrows]) == 0;
            }
    progress_clear(&prog);
    clattn_ssm_destroy(ssm);
    clattn_context_destroy(ctx);
    return bench_report(rows, nrows, b.csv, "direct", 0);
}
