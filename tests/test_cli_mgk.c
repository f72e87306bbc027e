/* clattn run mgk end to end (PoCL): the softmax form with per-component sigmas, causal, and its
 * lse; the linear form, causal; pi as [R] (broadcast); against the fp64 references of
 * tests/reference/ref_mgk.c. Usage errors: a 4-D k, pi of the wrong shape, --lse with --linear,
 * too many sigmas, a missing --pi; help text. Shapes use D = 16 (the harness's) and R = 2.
 * Half storage: float16 files in, --out-dtype f16 out (softmax, lse float32); float32 files with
 * --dtype bf16 and --out-dtype bf16 (linear); a bf16 file without --dtype bf16 refused; bench
 * mgk --dtype f32,f16,bf16 with its dtype column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_harness.h"
#include "npy.h"
#include "test_util.h"
#include "reference/ref_mgk.h"
#include "reference/ref_softmax.h"

enum { R = 2 };

static void check(const char *file, const double *ref, size_t n, const char *what)
{
    npy_array a;
    char err[256];
    assert_int_equal(npy_read(at(file), &a, err, sizeof err), 0);
    assert_int_equal(a.count, n);
    double worst = 0, mr = 0;
    const float *x = a.data;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(ref[i]))
            mr = fmax(mr, fabs(ref[i]));
        double e = isinf(ref[i]) && x[i] == ref[i] ? 0 : fabs(x[i] - ref[i]);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    if (!(worst <= 1e-4 * fmax(1, mr)))
        fail_msg("%s: error %.3e", what, worst);
    npy_free(&a);
}

static void test_run_mgk(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, nk = n * R, np = (size_t)H * R * N;
    float *q = malloc(n * 4), *k = malloc(nk * 4), *v = malloc(n * 4), *pi = malloc(np * 4);
    float *k2 = malloc(n * 4);
    double *ref = malloc(n * sizeof *ref), *rl = malloc((size_t)B * H * N * sizeof *rl);
    make_inputs(q, k2, v);
    uint64_t seed = 23;
    ref_fill_uniform(k, nk, 1, &seed);
    ref_fill_uniform(pi, np, 1, &seed);
    for (size_t i = 0; i < np; i++)
        pi[i] = fabsf(pi[i]);
    size_t ks[5] = {B, H, R, N, D}, ps[3] = {H, R, N}, pr[1] = {R};
    write_f32("mk.npy", k, 5, ks);
    write_f32("pi.npy", pi, 3, ps);
    char line[512];

    /* softmax form, sigma per component, causal, with lse */
    int rc = run("run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy --sigma 1.5,0.9 --causal "
                 "-o mo.npy --lse ml.npy",
                 line, sizeof line);
    if (rc != 0)
        fail_msg("run mgk: exit %d: %s", rc, line);
    if (!strstr(line, "; plan mgk tiled_"))
        fail_msg("run mgk summary: %s", line);
    double sig2[R] = {1.5 * 1.5, 0.9 * 0.9};
    ref_mgk_softmax(q, k, v, pi, ref, rl, B, H, R, N, N, D, sig2, 1, NULL);
    check("mo.npy", ref, n, "mgk out");
    check("ml.npy", rl, (size_t)B * H * N, "mgk lse");

    /* linear form, causal */
    rc = run("run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy --linear --causal -o lo.npy",
             line, sizeof line);
    if (rc != 0)
        fail_msg("run mgk --linear: exit %d: %s", rc, line);
    ref_mgk_linear(q, k, v, pi, ref, B, H, R, N, N, D, 1e-5, 1);
    check("lo.npy", ref, n, "linear mgk out");

    /* pi as [R], default sigma */
    float prv[R] = {0.25f, 0.75f};
    write_f32("pr.npy", prv, 1, pr);
    rc = run("run mgk --q q.npy --k mk.npy --v v.npy --pi pr.npy -o bo.npy", line, sizeof line);
    if (rc != 0)
        fail_msg("run mgk --pi [R]: exit %d: %s", rc, line);
    for (size_t h = 0; h < H; h++)
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < N; j++)
                pi[(h * R + r) * N + j] = prv[r];
    double s2 = sqrt((double)D), sd[R] = {s2, s2};
    ref_mgk_softmax(q, k, v, pi, ref, NULL, B, H, R, N, N, D, sd, 0, NULL);
    check("bo.npy", ref, n, "mgk broadcast pi");

    /* usage errors */
    expect_failure("run mgk --q q.npy --k k.npy --v v.npy --pi pi.npy -o bad_out.npy",
                   "expected 5");
    expect_failure("run mgk --q q.npy --k mk.npy --v v.npy --pi v.npy -o bad_out.npy", "--pi");
    expect_failure("run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy --linear --lse l.npy "
                   "-o bad_out.npy",
                   "--lse");
    expect_failure("run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy --sigma 1,2,3 "
                   "-o bad_out.npy",
                   "--sigma");
    expect_failure("run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy --sigma -1 -o bad_out.npy",
                   "--sigma");
    expect_failure("run mgk --q q.npy --k mk.npy --v v.npy -o bad_out.npy", "--pi");
    char o[8192], e[512];
    assert_int_equal(run_capture("", "run mgk --help", o, sizeof o, e, sizeof e), 0);
    assert_non_null(strstr(o, "clattn run mgk"));
    assert_null(strstr(o, "clattn bench mgk"));
    assert_int_equal(run_capture("", "bench mgk --help", o, sizeof o, e, sizeof e), 0);
    assert_non_null(strstr(o, "clattn bench mgk"));
    free(q), free(k), free(k2), free(v), free(pi), free(ref), free(rl);
}

/* An output file of type dt against the fp64 reference (the contract's check). */
static void check_typed(const char *file, clattn_dtype dt, const double *ref, size_t n,
                        const char *what)
{
    npy_array a;
    char err[256];
    assert_int_equal(npy_read(at(file), &a, err, sizeof err), 0);
    assert_int_equal(a.count, n);
    assert_int_equal(a.dtype, dt == CLATTN_F16 ? NPY_F16 : NPY_U16);
    tu_check_typed(a.data, dt, ref, n, TU_TOL_FP32, what);
    npy_free(&a);
}

static void test_run_mgk_half(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, nk = n * R, np = (size_t)H * R * N, nl = (size_t)B * H * N;
    float *q = malloc(n * 4), *k = malloc(nk * 4), *v = malloc(n * 4), *pi = malloc(np * 4);
    double *ref = malloc(n * sizeof *ref), *rl = malloc(nl * sizeof *rl);
    assert_true(q && k && v && pi && ref && rl);
    uint64_t seed = 61;
    ref_fill_uniform(q, n, 1, &seed);
    ref_fill_uniform(k, nk, 1, &seed);
    ref_fill_uniform(v, n, 1, &seed);
    ref_fill_uniform(pi, np, 1, &seed);
    for (size_t i = 0; i < np; i++)
        pi[i] = 0.25f + fabsf(pi[i]);
    size_t qs[4] = {B, H, N, D}, ks[5] = {B, H, R, N, D}, ps[3] = {H, R, N};
    tu_round_to(q, n, CLATTN_F16); /* the reference sees the stored values */
    write_typed("hq.npy", q, CLATTN_F16, 4, qs, n);
    tu_round_to(k, nk, CLATTN_F16);
    write_typed("hk.npy", k, CLATTN_F16, 5, ks, nk);
    tu_round_to(v, n, CLATTN_F16);
    write_typed("hv.npy", v, CLATTN_F16, 4, qs, n);
    tu_round_to(pi, np, CLATTN_F16);
    write_typed("hp.npy", pi, CLATTN_F16, 3, ps, np);
    char line[512];
    int rc = run("run mgk --q hq.npy --k hk.npy --v hv.npy --pi hp.npy --causal --out-dtype f16 "
                 "-o ho.npy --lse hl.npy",
                 line, sizeof line);
    if (rc != 0)
        fail_msg("run mgk f16: exit %d: %s", rc, line);
    if (!strstr(line, "dtype=hhhhh"))
        fail_msg("run mgk f16 summary lacks dtype=hhhhh: %s", line);
    double s2 = sqrt((double)D), sd[R] = {s2, s2};
    ref_mgk_softmax(q, k, v, pi, ref, rl, B, H, R, N, N, D, sd, 1, NULL);
    check_typed("ho.npy", CLATTN_F16, ref, n, "mgk f16 out");
    check("hl.npy", rl, nl, "mgk f16 lse");

    /* float32 files converted to bf16 on load, bf16 out, the linear form */
    write_typed("fq.npy", q, CLATTN_F32, 4, qs, n);
    write_typed("fk.npy", k, CLATTN_F32, 5, ks, nk);
    write_typed("fv.npy", v, CLATTN_F32, 4, qs, n);
    write_typed("fp.npy", pi, CLATTN_F32, 3, ps, np);
    rc = run("run mgk --q fq.npy --k fk.npy --v fv.npy --pi fp.npy --linear --dtype bf16 "
             "--out-dtype bf16 -o bo16.npy",
             line, sizeof line);
    if (rc != 0)
        fail_msg("run mgk bf16: exit %d: %s", rc, line);
    tu_round_to(q, n, CLATTN_BF16);
    tu_round_to(k, nk, CLATTN_BF16);
    tu_round_to(v, n, CLATTN_BF16);
    tu_round_to(pi, np, CLATTN_BF16);
    ref_mgk_linear(q, k, v, pi, ref, B, H, R, N, N, D, 1e-5, 0);
    check_typed("bo16.npy", CLATTN_BF16, ref, n, "linear mgk bf16 out");

    /* a bf16 ('<u2') file without --dtype bf16 */
    tu_round_to(k, nk, CLATTN_BF16);
    write_typed("bk.npy", k, CLATTN_BF16, 5, ks, nk);
    expect_failure("run mgk --q hq.npy --k bk.npy --v hv.npy --pi hp.npy -o bad_out.npy",
                   "--dtype bf16");

    /* bench: one row per type and length, the dtype column last in the CSV */
    char o[8192], e[1024];
    rc = run_capture("", "bench mgk --n 16 --d 16 --heads 1 --reps 1 --dtype f32,f16,bf16 --csv",
                     o, sizeof o, e, sizeof e);
    if (rc != 0)
        fail_msg("bench mgk --dtype: exit %d: %s", rc, e);
    assert_non_null(strstr(o, ",dtype\n"));
    assert_non_null(strstr(o, "mgk,mgk,1,1,16,16,16,0,"));
    for (int t = 0; t < 3; t++) {
        static const char *const nm[3] = {",f32\n", ",f16\n", ",bf16\n"};
        if (!strstr(o, nm[t]))
            fail_msg("bench mgk --dtype: no %s row in\n%s", nm[t] + 1, o);
    }
    rc = run_capture("", "bench mgk --n 16 --dtype f8", o, sizeof o, e, sizeof e);
    assert_int_equal(rc, 2);
    free(q), free(k), free(v), free(pi), free(ref), free(rl);
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
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_run_mgk),
                                       cmocka_unit_test(test_run_mgk_half)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
