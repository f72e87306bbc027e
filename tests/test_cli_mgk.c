/* clattn run mgk end to end (PoCL): the softmax form with per-component sigmas, causal, and its
 * lse; the linear form, causal; pi as [R] (broadcast); against the fp64 references of
 * tests/reference/ref_mgk.c. Usage errors: a 4-D k, pi of the wrong shape, --lse with --linear,
 * too many sigmas, a missing --pi; help text. Shapes use D = 16 (the harness's) and R = 2. */
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
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_run_mgk)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
