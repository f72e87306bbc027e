/* clattn run ssm --s4 / clattn bench ssm --s4: full S4 (diagonal plus low rank), reached from
 * cli_ssm.c when --s4 is among the options. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime */

#include "cli.h"

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void cli_usage_ssm_s4(FILE *f)
{
    fprintf(f,
            "  clattn run ssm --s4 --Lambda L.npy --P P.npy [--Q Q.npy] --B B.npy --C C.npy\n"
            "         --log-dt DT.npy [--D D.npy] --u U.npy -o Y.npy [--algo auto|fft|direct]\n"
            "         [--device SEL]\n"
            "      full S4: A = Lambda - P Q^* (Q = P when omitted), bilinear discretisation,\n"
            "      kernel by the Cauchy/Woodbury generating function and an inverse FFT.\n"
            "      Lambda, P, Q, B, C [H, N, 2] (complex as re, im), log_dt [H], D [H],\n"
            "      u [B, H, L] (f32, f16, or bf16 with --dtype bf16; the parameters float32);\n"
            "      writes y [B, H, L] (--out-dtype). The N states stand for N conjugate pairs\n"
            "      (the 2N-state system with the conjugates of Lambda, P, Q, B, C): the output\n"
            "      is y = 2 Re(C x) + D u of the half system; pass C itself (no factor 2\n"
            "      folded in, unlike --Ct of the S4D path)\n"
            "  clattn bench ssm --s4 [--n 1024,4096,16384,65536] [--heads 1] [--state 64]\n"
            "         [--max-dense 65536] [--reps 3] [--csv] [--device SEL]\n"
            "      S4 kernel generation (clattn_ssm_kernel_enqueue on a HiPPO-LegS handle\n"
            "      made for each length; variant s4-cauchy) against the dense-power fp64\n"
            "      host reference (A_bar^l B_bar step by step, O(N^2 L); variant\n"
            "      dense-power, one run, skipped above --max-dense); prints t(64k)/t(16k)\n");
}

/* ---------------------------------------------------------------------------------------------- */
/* run                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

enum { S4_LAMBDA, S4_P, S4_Q, S4_B, S4_C, S4_DT, S4_D, S4_U, S4_FILES };

int cli_run_ssm_s4(int argc, char **argv)
{
    const char *cmd = "run ssm --s4";
    const char *path[S4_FILES] = {NULL}, *op = NULL, *algo = NULL, *device = NULL;
    static const char *const names[S4_FILES] = {"--Lambda", "--P", "--Q", "--B",
                                                "--C",      "--log-dt", "--D", "--u"};
    int help = 0, s4 = 0;
    const opt_spec specs[] = {
        {"--Lambda", NULL, &path[S4_LAMBDA], NULL}, {"--P", NULL, &path[S4_P], NULL},
        {"--Q", NULL, &path[S4_Q], NULL},           {"--B", NULL, &path[S4_B], NULL},
        {"--C", NULL, &path[S4_C], NULL},           {"--log-dt", NULL, &path[S4_DT], NULL},
        {"--D", NULL, &path[S4_D], NULL},           {"--u", NULL, &path[S4_U], NULL},
        {"--out", "-o", &op, NULL},                 {"--algo", NULL, &algo, NULL},
        {"--device", NULL, &device, NULL},          {"--s4", NULL, NULL, &s4},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_ssm_s4))
        return rc;
    for (int i = 0; i < S4_FILES; i++)
        if (!path[i] && i != S4_Q && i != S4_D)
            return fail(EXIT_USAGE,
                        "%s: missing required option %s (needs --Lambda, --P, --B, --C, "
                        "--log-dt, --u, -o)",
                        cmd, names[i]);
    if (!op)
        return fail(EXIT_USAGE, "%s: missing required option -o", cmd);
    clattn_ssm_desc desc;
    clattn_ssm_desc_init(&desc);
    if (algo && strcmp(algo, "auto") != 0) {
        if (strcmp(algo, "fft") == 0)
            desc.algorithm = CLATTN_SSM_FFT;
        else if (strcmp(algo, "direct") == 0)
            desc.algorithm = CLATTN_SSM_DIRECT;
        else
            return fail(EXIT_USAGE, "%s: --algo '%s' is not auto, fft or direct", cmd, algo);
    }
    npy_array a[S4_FILES];
    memset(a, 0, sizeof a);
    void *y = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    clattn_ssm *ssm = NULL;
    for (int i = 0; i < S4_FILES; i++) {
        int nd = i == S4_U ? 3 : i == S4_DT || i == S4_D ? 1 : 3;
        if (path[i] && (rc = i == S4_U ? load_tensor(path[i], names[i], nd, &a[i], &desc.u_dtype)
                                       : load_f32(path[i], names[i], nd, &a[i])))
            goto cleanup;
    }
    desc.y_dtype = cli_get_out_dtype();
    size_t H = a[S4_U].shape[1], N = a[S4_LAMBDA].shape[1], L = a[S4_U].shape[2];
    for (int i = 0; i <= S4_C; i++)
        if (path[i] && (a[i].shape[0] != H || a[i].shape[1] != N || a[i].shape[2] != 2)) {
            rc = fail(EXIT_USAGE, "%s (%s): shape [%zu, %zu, %zu], expected [%zu, %zu, 2]",
                      path[i], names[i], a[i].shape[0], a[i].shape[1], a[i].shape[2], H, N);
            goto cleanup;
        }
    if (a[S4_DT].shape[0] != H || (path[S4_D] && a[S4_D].shape[0] != H)) {
        rc = fail(EXIT_USAGE, "%s: --log-dt and --D must hold H = %zu values", cmd, H);
        goto cleanup;
    }
    y = malloc(a[S4_U].count * clattn_dtype_size(desc.y_dtype));
    if (!y) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(device, &ctx)))
        goto cleanup;
    {
        const size_t shape[4] = {a[S4_U].shape[0], H, L, 1};
        cli_io io;
        cli_io_init(&io, ctx);
        cl_mem bu = cli_io_in(&io, a[S4_U].data, a[S4_U].count * clattn_dtype_size(desc.u_dtype));
        cl_mem by = cli_io_out(&io, y, a[S4_U].count * clattn_dtype_size(desc.y_dtype));
        rc = cli_io_check(&io);
        if (rc == 0) {
            clattn_status st = clattn_ssm_s4_create(
                ctx, H, N, L, a[S4_LAMBDA].data, a[S4_P].data,
                path[S4_Q] ? a[S4_Q].data : NULL, a[S4_B].data, a[S4_C].data, a[S4_DT].data,
                path[S4_D] ? a[S4_D].data : NULL, &ssm);
            if (st == CLATTN_SUCCESS)
                st = clattn_ssm_plan_create(ctx, &desc, ssm, shape, &plan);
            if (st != CLATTN_SUCCESS) {
                rc = fail_status(ctx, st, "ssm s4 failed");
            } else {
                clattn_tensor tu = cli_tensor_typed(bu, shape, desc.u_dtype);
                clattn_tensor ty = cli_tensor_typed(by, shape, desc.y_dtype);
                cl_event done = NULL;
                st = clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, &done);
                rc = cli_io_read(&io, st, done, "ssm s4 failed");
            }
        }
        cli_io_end(&io);
    }
    if (rc)
        goto cleanup;
    rc = write_tensor(op, y, desc.y_dtype, 3, a[S4_U].shape);
    if (rc == 0)
        cli_run_summary(ctx, "ssm", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_ssm_destroy(ssm);
    clattn_context_destroy(ctx);
    for (int i = 0; i < S4_FILES; i++)
        npy_free(&a[i]);
    free(y);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

typedef double complex cplx;

/* The dense-power reference of one channel in fp64 (as tests/reference/ref_ssm_s4.c): the
 * 2N-state conjugate-pair system, A_bar and B_bar by Gauss-Jordan elimination, then
 * K[l] = C A_bar^l B_bar by L matrix-vector products. 0, or -1 when out of memory. */
static int dense_power(size_t N, size_t L, const float *lam, const float *P, const float *B,
                       const float *C, double dt, double *K)
{
    size_t M = 2 * N, W = M + 1;
    cplx *m = calloc(M * M, sizeof(cplx)), *r = calloc(M * W, sizeof(cplx));
    cplx *pf = malloc(M * sizeof(cplx)), *x = malloc(M * sizeof(cplx)), *t = malloc(M * sizeof(cplx));
    cplx *cf = malloc(M * sizeof(cplx));
    int rc = -1;
    if (!m || !r || !pf || !x || !t || !cf)
        goto out;
    for (size_t n = 0; n < N; n++) {
        pf[n] = CMPLX(P[2 * n], P[2 * n + 1]), pf[N + n] = conj(pf[n]);
        cf[n] = CMPLX(C[2 * n], C[2 * n + 1]), cf[N + n] = conj(cf[n]);
        x[n] = CMPLX(B[2 * n], B[2 * n + 1]), x[N + n] = conj(x[n]);
    }
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < M; j++) {
            cplx l = i != j ? 0 : i < N ? CMPLX(lam[2 * i], lam[2 * i + 1])
                                        : CMPLX(lam[2 * (i - N)], -lam[2 * (i - N) + 1]);
            cplx a = l - pf[i] * conj(pf[j]);
            m[i * M + j] = (i == j) - dt / 2 * a;
            r[i * W + j] = (i == j) + dt / 2 * a;
        }
        r[i * W + M] = dt * x[i];
    }
    for (size_t c = 0; c < M; c++) { /* Gauss-Jordan with partial pivoting */
        size_t p = c;
        for (size_t i = c + 1; i < M; i++)
            if (cabs(m[i * M + c]) > cabs(m[p * M + c]))
                p = i;
        for (size_t j = 0; j < M && p != c; j++) {
            cplx s = m[c * M + j];
            m[c * M + j] = m[p * M + j], m[p * M + j] = s;
        }
        for (size_t j = 0; j < W && p != c; j++) {
            cplx s = r[c * W + j];
            r[c * W + j] = r[p * W + j], r[p * W + j] = s;
        }
        cplx piv = m[c * M + c];
        for (size_t j = 0; j < M; j++)
            m[c * M + j] /= piv;
        for (size_t j = 0; j < W; j++)
            r[c * W + j] /= piv;
        for (size_t i = 0; i < M; i++) {
            if (i == c)
                continue;
            cplx f = m[i * M + c];
            for (size_t j = 0; j < M; j++)
                m[i * M + j] -= f * m[c * M + j];
            for (size_t j = 0; j < W; j++)
                r[i * W + j] -= f * r[c * W + j];
        }
    }
    for (size_t i = 0; i < M; i++)
        x[i] = r[i * W + M];
    for (size_t l = 0; l < L; l++) {
        cplx acc = 0;
        for (size_t i = 0; i < M; i++)
            acc += cf[i] * x[i];
        K[l] = creal(acc);
        for (size_t i = 0; i < M; i++) {
            cplx s = 0;
            for (size_t j = 0; j < M; j++)
                s += r[i * W + j] * x[j];
            t[i] = s;
        }
        memcpy(x, t, M * sizeof(cplx));
    }
    rc = 0;
out:
    free(m), free(r), free(pf), free(x), free(t), free(cf);
    return rc;
}

typedef struct s4_job {
    clattn_ssm *ssm;
    clattn_tensor k;
} s4_job;

static clattn_status s4_gen(void *arg)
{
    s4_job *j = arg;
    return clattn_ssm_kernel_enqueue(j->ssm, &j->k, 0, NULL, NULL);
}

static void s4_row(bench_row *r, const char *variant, size_t H, size_t n, size_t N)
{
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "ssm-s4");
    snprintf(r->variant, sizeof r->variant, "%s", variant);
    r->batch = 1;
    r->heads = H;
    r->nq = r->nk = n;
    r->d = N;
    r->causal = 1;
    r->build_ms = NAN;
    snprintf(r->kernel, sizeof r->kernel, "s4 kernel %s N=%zu", variant, N);
}

int cli_bench_ssm_s4(int argc, char **argv)
{
    const char *cmd = "bench ssm --s4";
    const char *n = NULL, *heads = NULL, *state = NULL, *reps = NULL, *maxd = NULL,
               *device = NULL;
    int help = 0, csv = 0, s4 = 0;
    size_t ns[MAX_SWEEP], n_count = 0, H = 1, N = 64, R = 3, max_dense = 65536;
    const size_t def[] = {1024, 4096, 16384, 65536};
    for (size_t i = 0; i < 4; i++)
        ns[n_count++] = def[i];
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},          {"--heads", NULL, &heads, NULL},
        {"--state", NULL, &state, NULL},  {"--reps", NULL, &reps, NULL},
        {"--max-dense", NULL, &maxd, NULL}, {"--device", NULL, &device, NULL},
        {"--csv", NULL, NULL, &csv},      {"--s4", NULL, NULL, &s4},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_ssm_s4))
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, ((size_t)1 << 24) - 1, ns, &n_count))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &H))) ||
        (state && (rc = size_option(cmd, "--state", state, 1, 512, &N))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &R))) ||
        (maxd && (rc = size_option(cmd, "--max-dense", maxd, 0, (size_t)1 << 24, &max_dense))))
        return rc;
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    if ((rc = bench_start(device, 1, 2 * n_count + 1, &ctx, &rows)))
        return rc;
    float *lam = malloc(2 * N * H * sizeof(float)), *P = malloc(2 * N * H * sizeof(float));
    float *B = malloc(2 * N * H * sizeof(float)), *C = malloc(2 * N * H * sizeof(float));
    float *dt = malloc(H * sizeof(float));
    double t16 = NAN, t64 = NAN;
    size_t nrows = 0;
    if (!lam || !P || !B || !C || !dt) {
        rc = fail(EXIT_RUNTIME, "out of memory");
        goto out;
    }
    if (clattn_ssm_s4_hippo_legs(N, lam, P, B) != CLATTN_SUCCESS) {
        rc = fail(EXIT_RUNTIME, "HiPPO-LegS initialisation failed");
        goto out;
    }
    for (size_t h = 1; h < H; h++) {
        memcpy(lam + 2 * N * h, lam, 2 * N * sizeof(float));
        memcpy(P + 2 * N * h, P, 2 * N * sizeof(float));
        memcpy(B + 2 * N * h, B, 2 * N * sizeof(float));
    }
    fill_random(C, 2 * N * H, 7);
    for (size_t h = 0; h < H; h++)
        dt[h] = (float)(log(0.001) + (H > 1 ? (double)h / (double)(H - 1) : 0.5) *
                                         (log(0.1) - log(0.001)));
    progress prog = {isatty(fileno(stderr)), 0, 2 * n_count};
    for (size_t i = 0; i < n_count; i++) {
        size_t L = ns[i];
        progress_step(&prog, "s4-cauchy N=%zu", L);
        s4_job j = {NULL, {0}};
        cl_mem bk = NULL;
        double t0 = now_ms();
        clattn_status st = clattn_ssm_s4_create(ctx, H, N, L, lam, P, NULL, B, C, dt, NULL, &j.ssm);
        double create_ms = now_ms() - t0;
        if (st == CLATTN_SUCCESS && make_buffers(ctx, &bk, 1, 0, H * L) != CL_SUCCESS)
            st = (clattn_status)CL_MEM_OBJECT_ALLOCATION_FAILURE;
        if (st == CLATTN_SUCCESS) {
            bench_row *r = &rows[nrows];
            s4_row(r, "s4-cauchy", H, L, N);
            j.k = clattn_tensor_make(bk, 1, H, L, 1);
            st = time_median(ctx, s4_gen, &j, R, &r->ms);
            r->build_ms = create_ms; /* the handle: C tilde on the host, kernels, clFFT plan */
            /* Cauchy sums: about 20 flops per (bin, state), L/2 bins, per channel. */
            r->gflops = 10.0 * (double)(H * N) * (double)L / (r->ms * 1e6);
            if (st == CLATTN_SUCCESS) {
                nrows++;
                if (L == 16384)
                    t16 = r->ms;
                if (L == 65536)
                    t64 = r->ms;
            }
        }
        if (st != CLATTN_SUCCESS)
            note(&prog, "s4-cauchy N=%zu failed: %s", L, lib_error(ctx, st));
        if (bk)
            release_buffers(&bk, 1);
        clattn_ssm_destroy(j.ssm);
        progress_step(&prog, "dense-power N=%zu", L);
        if (L > max_dense) {
            note(&prog, "dense-power N=%zu skipped (above --max-dense %zu)", L, max_dense);
            continue;
        }
        double *K = malloc(L * sizeof(double));
        bench_row *r = &rows[nrows];
        s4_row(r, "dense-power", H, L, N);
        t0 = now_ms();
        int ok = K != NULL;
        for (size_t h = 0; h < H && ok; h++)
            ok = dense_power(N, L, lam + 2 * N * h, P + 2 * N * h, B + 2 * N * h, C + 2 * N * h,
                             exp((double)dt[h]), K) == 0;
        r->ms = now_ms() - t0;
        r->gflops = 8.0 * 4.0 * (double)(H * N * N) * (double)L / (r->ms * 1e6);
        free(K);
        if (ok)
            nrows++;
        else
            note(&prog, "dense-power N=%zu: out of memory", L);
    }
    progress_clear(&prog);
    if (!isnan(t16) && !isnan(t64))
        fprintf(stderr, "clattn: s4-cauchy growth t(65536)/t(16384) = %.2f (4.0 is linear)\n",
                t64 / t16);
out:
    free(lam), free(P), free(B), free(C), free(dt);
    clattn_context_destroy(ctx);
    return rc ? (free(rows), rc) : bench_report(rows, nrows, csv, "dense-power", 0);
}
