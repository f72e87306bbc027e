/* `clattn run ssm` (diagonal and --s4), `clattn run gss` and their benches with half storage
 * (issue 15), PoCL: float16 u / x files read natively, bfloat16 ('<u2') with --dtype bf16
 * (refused without it, nothing written), a float32 file converted by --dtype f16, --out-dtype
 * f16 / bf16 written as '<f2' / '<u2', against the fp64 reference on the half-rounded inputs;
 * bench ssm / gss --dtype f32,f16 with the dtype column. Direct convolutions only (a cold PoCL
 * cache prints a warning while building clFFT's kernels; the S4 handle's generation needs them,
 * so runs are checked by exit code and output file, not by a one-line stderr). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clattn.h"
#include "cli_harness.h"
#include "npy.h"
#include "test_util.h"
#include "reference/ref_gss.h"
#include "reference/ref_ssm.h"
#include "reference/ref_ssm_s4.h"

enum { SB = 2, SH = 3, SN = 4, SL = 21 };

/* y = K * u + D u in fp64. */
static void conv_d(const float *u, const double *K, const float *Dv, size_t Bn, size_t Hn,
                   size_t Ln, double *y)
{
    for (size_t r = 0; r < Bn * Hn; r++) {
        size_t h = r % Hn;
        for (size_t l = 0; l < Ln; l++) {
            double s = Dv ? (double)Dv[h] * u[r * Ln + l] : 0.0;
            for (size_t j = 0; j <= l; j++)
                s += K[h * Ln + j] * u[r * Ln + l - j];
            y[r * Ln + l] = s;
        }
    }
}

/* Runs `args` and checks `file` (out type odt, npy dtype ont) against ref. */
static void check_run(const char *args, const char *file, const double *ref, size_t n,
                      clattn_dtype odt, npy_dtype ont)
{
    /* run_capture, not run: a cold PoCL cache may print a warning while the S4 handle builds
     * clFFT's kernels (its generation is an inverse FFT whatever the convolution's path). */
    char out_txt[1024], err_txt[4096], err[256];
    int rc = run_capture("", args, out_txt, sizeof out_txt, err_txt, sizeof err_txt);
    if (rc != 0)
        fail_msg("'%s': exit %d: %s", args, rc, err_txt);
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    npy_array out;
    assert_int_equal(npy_read(at(file), &out, err, sizeof err), 0);
    assert_int_equal(out.count, n);
    assert_int_equal((int)out.dtype, (int)ont);
    tu_check_typed(out.data, odt, ref, n, (tu_tol){1e-4 * scale, 0.0, 1e-5}, args);
    npy_free(&out);
    remove(at(file));
}

static void test_run_ssm_half(void **state)
{
    (void)state;
    size_t n = SB * SH * SL, us[3] = {SB, SH, SL}, ps[3] = {SH, SN, 2}, hs[1] = {SH};
    uint64_t seed = 5;
    float *u = tu_random(n, 1.0f, &seed), *C = tu_random(2 * SH * SN, 1.0f, &seed);
    float *Dv = tu_random(SH, 1.0f, &seed), A[2 * SH * SN], Ct[2 * SH * SN], dt[SH];
    for (size_t h = 0; h < SH; h++) {
        dt[h] = (float)log(0.01 + 0.03 * (double)h);
        for (size_t k = 0; k < SN; k++) {
            A[2 * (h * SN + k)] = -0.5f;
            A[2 * (h * SN + k) + 1] = 3.14159265f * (float)k;
        }
    }
    assert_int_equal(clattn_ssm_s4d_zoh(SH, SN, A, NULL, C, dt, 1, Ct), CLATTN_SUCCESS);
    write_typed("A.npy", A, CLATTN_F32, 3, ps, 2 * SH * SN);
    write_typed("Ct.npy", Ct, CLATTN_F32, 3, ps, 2 * SH * SN);
    write_typed("dt.npy", dt, CLATTN_F32, 1, hs, SH);
    write_typed("D.npy", Dv, CLATTN_F32, 1, hs, SH);
    double *K = malloc(SH * SL * sizeof(double)), *ref = malloc(n * sizeof(double));
    assert_true(K && ref);
    ref_ssm_kernel(A, Ct, dt, SH, SN, SL, K);
    const char *par = "--A A.npy --Ct Ct.npy --log-dt dt.npy --D D.npy --algo direct";
    char args[512];
    /* float16 file, f16 out; the same data as float32 converted by --dtype f16, f32 out */
    tu_round_to(u, n, CLATTN_F16);
    write_typed("u16.npy", u, CLATTN_F16, 3, us, n);
    write_typed("u32.npy", u, CLATTN_F32, 3, us, n);
    conv_d(u, K, Dv, SB, SH, SL, ref);
    snprintf(args, sizeof args, "run ssm --u u16.npy %s -o y.npy --out-dtype f16", par);
    check_run(args, "y.npy", ref, n, CLATTN_F16, NPY_F16);
    snprintf(args, sizeof args, "run ssm --u u32.npy %s -o y.npy --dtype f16", par);
    check_run(args, "y.npy", ref, n, CLATTN_F32, NPY_F32);
    /* bfloat16 ('<u2'): only with --dtype bf16 */
    tu_round_to(u, n, CLATTN_BF16);
    write_typed("ub.npy", u, CLATTN_BF16, 3, us, n);
    conv_d(u, K, Dv, SB, SH, SL, ref);
    snprintf(args, sizeof args, "run ssm --u ub.npy %s -o y.npy --dtype bf16 --out-dtype bf16",
             par);
    check_run(args, "y.npy", ref, n, CLATTN_BF16, NPY_U16);
    snprintf(args, sizeof args, "run ssm --u ub.npy %s -o bad_out.npy", par);
    expect_failure(args, "--dtype bf16");

    /* Full S4 (HiPPO-LegS), f16 u and y. */
    float lam[2 * SN], P[2 * SN], Bv[2 * SN], L3[2 * SH * SN], P3[2 * SH * SN], B3[2 * SH * SN];
    assert_int_equal(clattn_ssm_s4_hippo_legs(SN, lam, P, Bv), CLATTN_SUCCESS);
    for (size_t h = 0; h < SH; h++) {
        memcpy(L3 + 2 * h * SN, lam, sizeof lam);
        memcpy(P3 + 2 * h * SN, P, sizeof P);
        memcpy(B3 + 2 * h * SN, Bv, sizeof Bv);
    }
    write_typed("Lambda.npy", L3, CLATTN_F32, 3, ps, 2 * SH * SN);
    write_typed("P.npy", P3, CLATTN_F32, 3, ps, 2 * SH * SN);
    write_typed("B.npy", B3, CLATTN_F32, 3, ps, 2 * SH * SN);
    write_typed("C.npy", C, CLATTN_F32, 3, ps, 2 * SH * SN);
    ref_ssm_s4_kernel(L3, P3, NULL, B3, C, dt, SH, SN, SL, K);
    float *u16 = malloc(n * sizeof(float));
    assert_non_null(u16);
    seed = 9;
    float *ur = tu_random(n, 1.0f, &seed);
    memcpy(u16, ur, n * sizeof(float));
    tu_round_to(u16, n, CLATTN_F16);
    write_typed("us16.npy", u16, CLATTN_F16, 3, us, n);
    conv_d(u16, K, Dv, SB, SH, SL, ref);
    check_run("run ssm --s4 --Lambda Lambda.npy --P P.npy --B B.npy --C C.npy --log-dt dt.npy "
              "--D D.npy --u us16.npy -o y.npy --algo direct --out-dtype f16",
              "y.npy", ref, n, CLATTN_F16, NPY_F16);
    free(u16), free(ur), free(u), free(C), free(Dv), free(K), free(ref);
}

enum { GB = 1, GL = 11, GE = 8, GF = 6, GH = 3, GN = 4 };

static void test_run_gss_half(void **state)
{
    (void)state;
    size_t n = GB * GL * GE, xs[3] = {GB, GL, GE};
    uint64_t seed = 17;
    float *x = tu_random(n, 2.0f, &seed), *C = tu_random(2 * GH * GN, 1.0f, &seed);
    float *wv = tu_random(GE * GF, 0.35f, &seed), *wu = tu_random(GE * GH, 0.35f, &seed);
    float *wo1 = tu_random(GH * GF, 0.5f, &seed), *wo2 = tu_random(GF * GE, 0.4f, &seed);
    float A[2 * GH * GN], Ct[2 * GH * GN], dt[GH];
    for (size_t h = 0; h < GH; h++) {
        dt[h] = (float)log(0.02 + 0.02 * (double)h);
        for (size_t k = 0; k < GN; k++) {
            A[2 * (h * GN + k)] = -0.5f;
            A[2 * (h * GN + k) + 1] = 3.14159265f * (float)k;
        }
    }
    assert_int_equal(clattn_ssm_s4d_zoh(GH, GN, A, NULL, C, dt, 1, Ct), CLATTN_SUCCESS);
    assert_int_equal(mkdir(at("gw"), 0700), 0);
    size_t ps[3] = {GH, GN, 2}, hs[1] = {GH}, s_vf[2] = {GE, GF}, s_u[2] = {GE, GH},
           s_o1[2] = {GH, GF}, s_o2[2] = {GF, GE};
    write_typed("gw/A.npy", A, CLATTN_F32, 3, ps, 2 * GH * GN);
    write_typed("gw/Ct.npy", Ct, CLATTN_F32, 3, ps, 2 * GH * GN);
    write_typed("gw/log_dt.npy", dt, CLATTN_F32, 1, hs, GH);
    write_typed("gw/w_v.npy", wv, CLATTN_F32, 2, s_vf, GE * GF);
    write_typed("gw/w_u.npy", wu, CLATTN_F32, 2, s_u, GE * GH);
    write_typed("gw/w_o1.npy", wo1, CLATTN_F32, 2, s_o1, GH * GF);
    write_typed("gw/w_o2.npy", wo2, CLATTN_F32, 2, s_o2, GF * GE);
    tu_round_to(x, n, CLATTN_F16);
    write_typed("x16.npy", x, CLATTN_F16, 3, xs, n);
    float *rf = malloc(n * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    assert_true(rf && ref);
    ref_gss(x, GB, GL, GE, GF, GH, GN, NULL, NULL, 1e-5, wv, NULL, wu, NULL, wo1, NULL, wo2, NULL,
            A, Ct, dt, NULL, rf);
    for (size_t i = 0; i < n; i++)
        ref[i] = rf[i];
    check_run("run gss --x x16.npy --weights gw -o o.npy --algo direct --out-dtype f16", "o.npy",
              ref, n, CLATTN_F16, NPY_F16);
    check_run("run gss --x x16.npy --weights gw -o o.npy --algo direct", "o.npy", ref, n,
              CLATTN_F32, NPY_F32);
    expect_failure("run gss --x x16.npy --weights gw -o bad_out.npy --out-dtype f64", "f64");
    free(x), free(C), free(wv), free(wu), free(wo1), free(wo2), free(rf), free(ref);
}

/* bench ssm / gss --dtype f32,f16: one row per type, the dtype last in every CSV line. */
static void test_bench_dtype(void **state)
{
    (void)state;
    char out[8192], err[4096];
    int rc = run_capture("", "bench ssm --n 40 --heads 2 --state 4 --variants direct "
                             "--dtype f32,f16 --reps 1 --csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench ssm: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype\n"));
    assert_non_null(strstr(out, "\nssm,direct,1,2,40,40,4,1,"));
    const char *f32 = strstr(out, ",f32\n"), *f16 = strstr(out, ",f16\n");
    assert_non_null(f32);
    assert_non_null(f16);
    assert_true(f32 < f16);
    rc = run_capture("", "bench gss --n 16 --e 8 --heads 2 --state 4 --variants gss "
                         "--dtype bf16 --reps 1 --csv",
                     out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench gss: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "\ngss,gss,1,2,16,16,8,1,"));
    assert_non_null(strstr(out, ",bf16\n"));
    rc = run_capture("", "bench ssm --n 40 --dtype f16,f64", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "f64"));
}

static int setup(void **state)
{
    (void)state;
    return cli_dir_make();
}

static int teardown(void **state)
{
    (void)state;
    return cli_dir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_ssm_half),
        cmocka_unit_test(test_run_gss_half),
        cmocka_unit_test(test_bench_dtype),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
