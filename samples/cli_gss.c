/* clattn run gss / clattn bench gss: the gated state-space layer (Mehta et al. 2022) on its DSS. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, access */

#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_gss(FILE *f)
{
    fprintf(f,
            "  clattn run gss --x X.npy --weights DIR -o OUT.npy [--ffn F] [--ln-eps 1e-5]\n"
            "         [--algo auto|fft|direct] [--device SEL]\n"
            "      the GSS layer (LayerNorm, gelu gates, DSS, dense layers, residual) on\n"
            "      x [B, L, E] (or [L, E]; f32, f16, or bf16 with --dtype bf16); writes out\n"
            "      of x's shape (--out-dtype). DIR holds one float32\n"
            "      .npy per parameter, named after clattn_gss_weights and clattn_ssm_create:\n"
            "        A.npy, Ct.npy [H, N, 2] (complex as re, im), log_dt.npy [H]\n"
            "        w_v.npy [E, F], w_u.npy [E, H], w_o1.npy [H, F], w_o2.npy [F, E]\n"
            "        optional: D [H], b_v [F], b_u [H], b_o1 [F], b_o2 [E], ln_gamma, ln_beta [E]\n"
            "      dense weights are [in, out]: a PyTorch nn.Linear's weight.T, e.g.\n"
            "      np.save('w_v.npy', layer.to_v.weight.detach().T.numpy()); a missing\n"
            "      optional file is 0 (ln_gamma 1). F comes from w_v (--ffn checks it)\n"
            "  clattn bench gss [--n 1024,4096,16384] [--e 256] [--ffn 3E] [--heads 64]\n"
            "         [--state 64] [--batch 1] [--variants gss,ssm,peak] [--reps 3] [--csv]\n"
            "         [--dtype f32,f16,bf16] [--device SEL]\n"
            "      a baked GSS plan's enqueue (gss; GFLOP/s counts its four dense layers,\n"
            "      2 T (2EF + EH + HF) for T = B L tokens), the DSS convolution alone on\n"
            "      u [B, H, L] (ssm, once per length; the AUTO algorithm, FLOPs as in bench\n"
            "      ssm) and the FMA peak, on random S4D-Lin parameters and weights; --e and\n"
            "      --n are lists, F is 3E unless --ffn; --dtype: x/out (gss) and u/y (ssm)\n"
            "      element types, each listed one timed in the same run\n");
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

/* The files of --weights DIR: the DSS parameters first, then the fields of clattn_gss_weights.
 * Shapes are in the symbols below (0 ends a shape); 2 is the literal (re, im) pair. */
enum { S_END, S_E, S_F, S_H, S_N, S_2 };
enum { P_A, P_CT, P_LOG_DT, P_D, P_COUNT_DSS = 4 };
static const struct {
    const char *name;
    int required;
    int shape[3];
    size_t field; /* offset into clattn_gss_weights (the dense parameters) */
} PARAMS[] = {
    {"A", 1, {S_H, S_N, S_2}, 0},
    {"Ct", 1, {S_H, S_N, S_2}, 0},
    {"log_dt", 1, {S_H}, 0},
    {"D", 0, {S_H}, 0},
    {"ln_gamma", 0, {S_E}, offsetof(clattn_gss_weights, ln_gamma)},
    {"ln_beta", 0, {S_E}, offsetof(clattn_gss_weights, ln_beta)},
    {"w_v", 1, {S_E, S_F}, offsetof(clattn_gss_weights, w_v)},
    {"b_v", 0, {S_F}, offsetof(clattn_gss_weights, b_v)},
    {"w_u", 1, {S_E, S_H}, offsetof(clattn_gss_weights, w_u)},
    {"b_u", 0, {S_H}, offsetof(clattn_gss_weights, b_u)},
    {"w_o1", 1, {S_H, S_F}, offsetof(clattn_gss_weights, w_o1)},
    {"b_o1", 0, {S_F}, offsetof(clattn_gss_weights, b_o1)},
    {"w_o2", 1, {S_F, S_E}, offsetof(clattn_gss_weights, w_o2)},
    {"b_o2", 0, {S_E}, offsetof(clattn_gss_weights, b_o2)},
};
#define N_PARAMS (sizeof PARAMS / sizeof PARAMS[0])

typedef struct gss_files {
    npy_array x, p[N_PARAMS];
    int have[N_PARAMS];
    size_t B, L, E, F, H, N;
} gss_files;

static void files_free(gss_files *g)
{
    npy_free(&g->x);
    for (size_t i = 0; i < N_PARAMS; i++)
        npy_free(&g->p[i]);
}

static int param_ndim(size_t i)
{
    int n = 0;
    while (n < 3 && PARAMS[i].shape[n] != S_END)
        n++;
    return n;
}

/* Loads x and DIR's parameters, takes H and N from A, F from w_v (checked against --ffn when
 * given) and checks every shape: 0 or EXIT_USAGE after a message naming the file. */
static int load_files(const char *cmd, const char *xp, const char *dir, size_t ffn, gss_files *g,
                      clattn_dtype *x_dt)
{
    int rc = load_tensor(xp, "--x", 0, &g->x, x_dt);
    if (rc)
        return rc;
    if (g->x.ndim != 2 && g->x.ndim != 3)
        return fail(EXIT_USAGE, "%s (--x): %d dimensions, expected [B, L, E] or [L, E]", xp,
                    g->x.ndim);
    g->B = g->x.ndim == 3 ? g->x.shape[0] : 1;
    g->L = g->x.shape[g->x.ndim - 2];
    g->E = g->x.shape[g->x.ndim - 1];
    char path[4096];
    for (size_t i = 0; i < N_PARAMS; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, PARAMS[i].name);
        if (!PARAMS[i].required && access(path, F_OK) != 0)
            continue;
        if ((rc = load_f32(path, "--weights", param_ndim(i), &g->p[i])))
            return rc;
        g->have[i] = 1;
    }
    g->H = g->p[P_A].shape[0];
    g->N = g->p[P_A].shape[1];
    for (size_t i = 0; i < N_PARAMS; i++)
        if (strcmp(PARAMS[i].name, "w_v") == 0)
            g->F = g->p[i].shape[1];
    if (ffn && ffn != g->F)
        return fail(EXIT_USAGE, "%s: --ffn %zu but %s/w_v.npy holds F = %zu", cmd, ffn, dir,
                    g->F);
    for (size_t i = 0; i < N_PARAMS; i++) {
        if (!g->have[i])
            continue;
        const size_t value[] = {0, g->E, g->F, g->H, g->N, 2};
        size_t want[3];
        int nd = param_ndim(i), ok = 1;
        for (int d = 0; d < nd; d++) {
            want[d] = value[PARAMS[i].shape[d]];
            ok &= g->p[i].shape[d] == want[d];
        }
        if (!ok) {
            char got[96], exp[96];
            format_shape(got, sizeof got, nd, g->p[i].shape);
            format_shape(exp, sizeof exp, nd, want);
            return fail(EXIT_USAGE,
                        "%s/%s.npy (--weights): shape %s, expected %s (E %zu from --x, H and N "
                        "from A, F from w_v)",
                        dir, PARAMS[i].name, got, exp, g->E);
        }
    }
    return 0;
}

/* Makes the DSS handle, uploads x and the dense parameters, bakes the GSS plan (the DSS's K
 * generated once), enqueues it and reads out back: 0 or an exit code after a message. */
static int run_on_device(clattn_context *ctx, const clattn_gss_desc *desc, const gss_files *g,
                         void *out, clattn_plan **plan)
{
    const size_t shape[4] = {g->B, 1, g->L, g->E};
    const size_t xbytes = g->x.count * clattn_dtype_size(desc->x_dtype);
    const size_t obytes = g->x.count * clattn_dtype_size(desc->out_dtype);
    clattn_ssm *dss = NULL;
    clattn_gss_weights w;
    memset(&w, 0, sizeof w);
    /* cli_io holds CLI_IO_MAX buffers: x and out in the first, the ten dense parameters after. */
    cli_io io[3];
    for (int i = 0; i < 3; i++)
        cli_io_init(&io[i], ctx);
    cl_mem bx = cli_io_in(&io[0], g->x.data, xbytes), bo = cli_io_out(&io[0], out, obytes);
    for (size_t i = P_COUNT_DSS, k = 0; i < N_PARAMS; i++)
        if (g->have[i]) {
            cl_mem m = cli_io_in(&io[1 + k / CLI_IO_MAX], g->p[i].data, g->p[i].count * 4);
            memcpy((char *)&w + PARAMS[i].field, &m, sizeof m);
            k++;
        }
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = cli_io_check(&io[i]);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_ssm_create(ctx, g->H, g->N, g->p[P_A].data, g->p[P_CT].data,
                                         g->p[P_LOG_DT].data, g->have[P_D] ? g->p[P_D].data : NULL,
                                         &dss);
    if (st == CLATTN_SUCCESS)
        st = clattn_gss_plan_create(ctx, desc, dss, g->F, shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "gss failed");
        goto cleanup;
    }
    clattn_tensor tx = cli_tensor_typed(bx, shape, desc->x_dtype);
    clattn_tensor to = cli_tensor_typed(bo, shape, desc->out_dtype);
    cl_event done = NULL;
    st = clattn_gss_plan_enqueue(*plan, &w, &tx, &to, 0, NULL, &done);
    rc = cli_io_read(&io[0], st, done, "gss failed");
cleanup:
    for (int i = 0; i < 3; i++)
        cli_io_end(&io[i]);
    clattn_ssm_destroy(dss); /* the plan keeps what it needs */
    return rc;
}

int cli_run_gss(int argc, char **argv)
{
    const char *cmd = "run gss";
    const char *xp = NULL, *dir = NULL, *op = NULL, *ffn = NULL, *eps = NULL, *algo = NULL,
               *device = NULL;
    int help = 0;
    const opt_spec specs[] = {
        {"--x", NULL, &xp, NULL},       {"--weights", NULL, &dir, NULL},
        {"--out", "-o", &op, NULL},     {"--ffn", NULL, &ffn, NULL},
        {"--ln-eps", NULL, &eps, NULL}, {"--algo", NULL, &algo, NULL},
        {"--device", NULL, &device, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (rc)
        return rc;
    if (help) {
        cli_usage_gss(stdout);
        return 0;
    }
    const char *missing = !xp ? "--x" : !dir ? "--weights" : !op ? "-o" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "%s: missing required option %s (needs --x, --weights, -o)", cmd,
                    missing);
    clattn_gss_desc desc;
    clattn_gss_desc_init(&desc);
    size_t f = 0;
    if ((rc = algo_option(cmd, algo, &desc.algorithm)) ||
        (ffn && (rc = size_option(cmd, "--ffn", ffn, 1, ((size_t)1 << 24) - 1, &f))) ||
        (eps && (rc = float_option(cmd, "--ln-eps", eps, 0.0f, INFINITY, 1, &desc.ln_eps))))
        return rc;

    gss_files g;
    memset(&g, 0, sizeof g);
    void *out = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_files(cmd, xp, dir, f, &g, &desc.x_dtype)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    out = malloc(g.x.count * clattn_dtype_size(desc.out_dtype));
    if (!out) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(device, &ctx)) || (rc = run_on_device(ctx, &desc, &g, out, &plan)))
        goto cleanup;
    rc = write_tensor(op, out, desc.out_dtype, g.x.ndim, g.x.shape);
    if (rc == 0)
        cli_run_summary(ctx, "gss", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    files_free(&g);
    free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

enum { GV_GSS, GV_SSM, GV_PEAK, GV_COUNT };
static const char *const GV_NAMES[GV_COUNT] = {"gss", "ssm", "peak"};

typedef struct gss_bench {
    size_t ns[MAX_SWEEP], n_count, es[MAX_SWEEP], e_count, ffn, heads, batch, state, reps;
    int variants[GV_COUNT], n_variants, csv;
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    const char *device;
} gss_bench;

typedef struct gss_job {
    clattn_plan *plan;
    clattn_gss_weights w;
    clattn_tensor x, out;
} gss_job;

/* The GSS plan when its weights are set, else the DSS's SSM plan on u and y. */
static clattn_status gss_enqueue(void *arg)
{
    gss_job *j = arg;
    return j->w.w_v ? clattn_gss_plan_enqueue(j->plan, &j->w, &j->x, &j->out, 0, NULL, NULL)
                    : clattn_ssm_plan_enqueue(j->plan, &j->x, &j->out, 0, NULL, NULL);
}

/* One row: the GSS layer (var GV_GSS) or the DSS alone (GV_SSM) at length n and width e, on a
 * plan baked outside the timing: 0, or -1 after a note. */
static int bench_one(clattn_context *ctx, const gss_bench *b, clattn_ssm *dss, size_t n, size_t e,
                     int var, clattn_dtype dt, const progress *prog, bench_row *r)
{
    const size_t T = b->batch * n, F = b->ffn ? b->ffn : 3 * e, H = b->heads;
    size_t dense = e * F > e * H ? e * F : e * H;
    dense = dense > H * F ? dense : H * F;
    cl_mem io[2] = {NULL, NULL}, w[4] = {NULL, NULL, NULL, NULL};
    const size_t width = var == GV_GSS ? e : H;
    cl_int err = make_buffers(ctx, io, 2, 1, T * width);
    if (err == CL_SUCCESS && var == GV_GSS)
        err = make_buffers(ctx, w, 4, 4, dense);
    if (err != CL_SUCCESS) {
        note(prog, "%s N=%zu E=%zu skipped: cannot allocate its tensors (OpenCL error %d)",
             GV_NAMES[var], n, e, (int)err);
        release_buffers(io, 2);
        return -1;
    }
    gss_job j;
    memset(&j, 0, sizeof j);
    clattn_status st;
    if (var == GV_GSS) {
        j.w.w_v = w[0];
        j.w.w_u = w[1];
        j.w.w_o1 = w[2];
        j.w.w_o2 = w[3];
        /* float32-sized buffers hold any type */
        j.x = clattn_tensor_make_typed(io[0], dt, b->batch, 1, n, e);
        j.out = clattn_tensor_make_typed(io[1], dt, b->batch, 1, n, e);
        clattn_gss_desc gd;
        clattn_gss_desc_init(&gd);
        gd.x_dtype = gd.out_dtype = dt;
        st = clattn_gss_plan_create(ctx, &gd, dss, F, j.x.shape, &j.plan);
    } else {
        j.x = clattn_tensor_make_typed(io[0], dt, b->batch, H, n, 1);
        j.out = clattn_tensor_make_typed(io[1], dt, b->batch, H, n, 1);
        clattn_ssm_desc sd;
        clattn_ssm_desc_init(&sd);
        sd.u_dtype = sd.y_dtype = dt;
        st = clattn_ssm_plan_create(ctx, &sd, dss, j.x.shape, &j.plan);
    }
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s N=%zu E=%zu skipped: %s", GV_NAMES[var], n, e, lib_error(ctx, st));
        release_buffers(io, 2);
        release_buffers(w, 4);
        return -1;
    }
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "gss");
    snprintf(r->variant, sizeof r->variant, "%s", GV_NAMES[var]);
    r->batch = b->batch;
    r->heads = H;
    r->nq = r->nk = n;
    r->d = var == GV_GSS ? e : b->state;
    r->causal = 1;
    r->build_ms = NAN;
    r->dtype = clattn_dtype_name(dt);
    clattn_plan_info info;
    memset(&info, 0, sizeof info);
    const char *algo =
        clattn_plan_get_info(j.plan, &info) == CLATTN_SUCCESS ? info.algorithm_name : "?";
    if (var == GV_GSS)
        snprintf(r->kernel, sizeof r->kernel, "gss %s F=%zu N=%zu", algo, F, b->state);
    else
        snprintf(r->kernel, sizeof r->kernel, "ssm %s N=%zu", algo, b->state);
    st = time_median(ctx, gss_enqueue, &j, b->reps, &r->ms);
    double flops = var == GV_GSS ? 2.0 * (double)T * (double)(2 * e * F + e * H + H * F)
                                 : (double)(b->batch * H) * (double)n * (double)n;
    r->gflops = flops / (r->ms * 1e6);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s N=%zu E=%zu failed: %s", GV_NAMES[var], n, e, lib_error(ctx, st));
    clattn_plan_destroy(j.plan);
    release_buffers(io, 2);
    release_buffers(w, 4);
    return st == CLATTN_SUCCESS ? 0 : -1;
}

static int bench_parse_gss(int argc, char **argv, gss_bench *b, int *help)
{
    const char *cmd = "bench gss";
    const char *n = NULL, *e = NULL, *ffn = NULL, *heads = NULL, *batch = NULL, *state = NULL,
               *reps = NULL, *vars = NULL, *dts = NULL;
    memset(b, 0, sizeof *b);
    const size_t ns[] = {1024, 4096, 16384};
    for (size_t i = 0; i < 3; i++)
        b->ns[b->n_count++] = ns[i];
    b->es[b->e_count++] = 256;
    b->heads = 64;
    b->batch = 1;
    b->state = 64;
    b->reps = 3;
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},           {"--e", NULL, &e, NULL},
        {"--ffn", NULL, &ffn, NULL},       {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},   {"--state", NULL, &state, NULL},
        {"--reps", NULL, &reps, NULL},     {"--variants", NULL, &vars, NULL},
        {"--device", NULL, &b->device, NULL}, {"--csv", NULL, NULL, &b->csv},
        {"--dtype", NULL, &dts, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = cli_dtype_list(cmd, dts, b->dtypes, &b->n_dtypes)))
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, ((size_t)1 << 24) - 1, b->ns, &b->n_count))) ||
        (e && (rc = parse_list(cmd, "--e", e, 1, ((size_t)1 << 24) - 1, b->es, &b->e_count))) ||
        (ffn && (rc = size_option(cmd, "--ffn", ffn, 1, ((size_t)1 << 24) - 1, &b->ffn))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 65536, &b->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &b->batch))) ||
        (state && (rc = size_option(cmd, "--state", state, 1, 4096, &b->state))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))))
        return rc;
    return parse_variant_list(cmd, vars, GV_NAMES, GV_COUNT, b->variants, &b->n_variants);
}

int cli_bench_gss(int argc, char **argv)
{
    gss_bench b;
    int help = 0;
    int rc = bench_parse_gss(argc, argv, &b, &help);
    if (rc)
        return rc;
    if (help) {
        cli_usage_gss(stdout);
        return 0;
    }
    clattn_context *ctx = NULL;
    if ((rc = bench_open(b.device, &ctx)))
        return rc;
    clattn_ssm *dss = NULL;
    clattn_status st = cli_make_s4d_lin(ctx, b.heads, b.state, &dss);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "gss: DSS parameters");
        clattn_context_destroy(ctx);
        return rc;
    }
    bench_row *rows = calloc(b.n_count * b.e_count * GV_COUNT * b.n_dtypes + 1, sizeof *rows);
    if (!rows) {
        clattn_ssm_destroy(dss);
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    int want_peak = 0, want_gss = 0, want_ssm = 0;
    for (int i = 0; i < b.n_variants; i++) {
        want_peak |= b.variants[i] == GV_PEAK;
        want_gss |= b.variants[i] == GV_GSS;
        want_ssm |= b.variants[i] == GV_SSM;
    }
    size_t nrows = 0;
    progress prog = {isatty(fileno(stderr)), 0,
                     b.n_count * (b.e_count * (size_t)want_gss + (size_t)want_ssm) * b.n_dtypes +
                         (size_t)want_peak};
    for (size_t i = 0; i < b.n_count; i++)
        for (size_t k = 0; k < b.e_count; k++)
            for (int vi = 0; vi < b.n_variants; vi++) {
                int v = b.variants[vi];
                if (v == GV_PEAK || (v == GV_SSM && k > 0)) /* the DSS alone has no E */
                    continue;
                for (size_t di = 0; di < b.n_dtypes; di++) {
                    clattn_dtype dt = b.dtypes[di];
                    progress_step(&prog, "%s N=%zu E=%zu %s", GV_NAMES[v], b.ns[i], b.es[k],
                                  clattn_dtype_name(dt));
                    nrows += bench_one(ctx, &b, dss, b.ns[i], b.es[k], v, dt, &prog,
                                       &rows[nrows]) == 0;
                }
            }
    double peak = 0;
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        if (bench_peak_row(ctx, &prog, &rows[nrows]) == 0)
            peak = rows[nrows++].gflops;
    }
    progress_clear(&prog);
    clattn_ssm_destroy(dss);
    clattn_context_destroy(ctx);
    if (nrows && b.csv)
        cli_print_csv(rows, nrows);
    else if (nrows)
        cli_print_table(rows, nrows, NULL, peak);
    free(rows);
    return nrows ? 0 : fail(EXIT_RUNTIME, "bench: no measurement succeeded");
}
