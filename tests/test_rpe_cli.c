/* `clattn run rpe` and `clattn bench rpe` with half storage (issue 15), PoCL: float16 files read
 * natively, bfloat16 ('<u2') files with --dtype bf16 (refused without it, nothing written), a
 * float32 file converted by --dtype f16, --out-dtype f16 / bf16 written as '<f2' / '<u2', against
 * the fp64 reference on the half-rounded inputs; bench rpe --dtype f32,f16 with its dtype column.
 * Direct path only (see test_cli.c's test_run_rpe: a cold PoCL cache prints a warning while
 * building clFFT's kernels). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "cli_harness.h"
#include "npy.h"
#include "test_util.h"
#include "reference/ref_rpe.h"

#define TOL ((tu_tol){1e-4, 1e-4, 1e-4})

/* Runs `args` and checks rpe.npy (of out type `odt`, npy dtype `ont`) against the reference
 * (causal or not). */
static void check_run(const char *args, const float *q, const float *k, const float *v,
                      const float *bias, clattn_dtype odt, npy_dtype ont, int causal)
{
    size_t no = (size_t)B * H * N * D;
    char line[512], err[256];
    int rc = run(args, line, sizeof line);
    if (rc != 0)
        fail_msg("'%s': exit %d: %s", args, rc, line);
    if (!strstr(line, " dtype=")) /* the summary names the plan's types (every case has a half) */
        fail_msg("'%s': summary without the types: %s", args, line);
    double *ref = malloc(no * sizeof *ref);
    assert_non_null(ref);
    ref_rpe_gqa_d(q, k, v, bias, ref, B, H, H, N, D, D, 0, NULL, 0, CLATTN_LINEAR_DEFAULT_EPS,
                  causal);
    npy_array out;
    assert_int_equal(npy_read(at("rpe.npy"), &out, err, sizeof err), 0);
    assert_int_equal(out.count, no);
    assert_int_equal((int)out.dtype, (int)ont);
    tu_check_typed(out.data, odt, ref, no, TOL, args);
    npy_free(&out);
    free(ref);
    remove(at("rpe.npy"));
}

static void test_run_rpe_half(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, nb = (size_t)H * (2 * N - 1);
    size_t qs[4] = {B, H, N, D}, bs[2] = {H, 2 * N - 1};
    uint64_t seed = 23;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed), *bias = tu_random(nb, 1.0f, &seed);
    float *x[4] = {q, k, v, bias};
    size_t cnt[4] = {n, n, n, nb};
    static const char *const names[4] = {"q", "k", "v", "bias"};
    /* float16 files, f16 out; then the same data as float32 files converted by --dtype f16 */
    for (int i = 0; i < 4; i++) {
        tu_round_to(x[i], cnt[i], CLATTN_F16);
        char f[32];
        snprintf(f, sizeof f, "%s16.npy", names[i]);
        write_typed(f, x[i], CLATTN_F16, i == 3 ? 2 : 4, i == 3 ? bs : qs, cnt[i]);
        snprintf(f, sizeof f, "%s32.npy", names[i]);
        write_typed(f, x[i], CLATTN_F32, i == 3 ? 2 : 4, i == 3 ? bs : qs, cnt[i]);
    }
    check_run("run rpe --q q16.npy --k k16.npy --v v16.npy --bias bias16.npy -o rpe.npy "
              "--algo direct --out-dtype f16",
              q, k, v, bias, CLATTN_F16, NPY_F16, 0);
    check_run("run rpe --q q32.npy --k k32.npy --v v32.npy --bias bias32.npy -o rpe.npy "
              "--algo direct --dtype f16",
              q, k, v, bias, CLATTN_F32, NPY_F32, 0);
    /* mixed: f16 q, f32 k and bias, bf16-rounded v as float32: --out-dtype bf16 */
    tu_round_to(v, n, CLATTN_BF16);
    write_typed("vb32.npy", v, CLATTN_F32, 4, qs, n);
    check_run("run rpe --q q16.npy --k k32.npy --v vb32.npy --bias bias32.npy -o rpe.npy "
              "--algo direct --out-dtype bf16",
              q, k, v, bias, CLATTN_BF16, NPY_U16, 0);
    /* bfloat16 files ('<u2'): only with --dtype bf16 */
    for (int i = 0; i < 4; i++) {
        tu_round_to(x[i], cnt[i], CLATTN_BF16);
        char f[32];
        snprintf(f, sizeof f, "%sb.npy", names[i]);
        write_typed(f, x[i], CLATTN_BF16, i == 3 ? 2 : 4, i == 3 ? bs : qs, cnt[i]);
    }
    check_run("run rpe --q qb.npy --k kb.npy --v vb.npy --bias biasb.npy -o rpe.npy "
              "--algo direct --dtype bf16 --out-dtype bf16 --causal",
              q, k, v, bias, CLATTN_BF16, NPY_U16, 1);
    expect_failure("run rpe --q qb.npy --k kb.npy --v vb.npy --bias biasb.npy -o bad_out.npy",
                   "--dtype bf16");
    expect_failure("run rpe --q q16.npy --k k16.npy --v v16.npy --bias bias16.npy -o bad_out.npy "
                   "--out-dtype f8",
                   "f8");
    for (int i = 0; i < 4; i++)
        free(x[i]);
}

/* bench rpe --dtype f32,f16: one row per type, the dtype last in every CSV line. */
static void test_bench_rpe_dtype(void **state)
{
    (void)state;
    char out[8192], err[4096];
    int rc = run_capture("", "bench rpe --n 20 --d 4 --variants direct --dtype f32,f16 --reps 1 "
                             "--csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype\n"));
    assert_non_null(strstr(out, "\nrpe,direct,1,1,20,20,4,0,"));
    const char *f32 = strstr(out, ",f32\n"), *f16 = strstr(out, ",f16\n");
    assert_non_null(f32);
    assert_non_null(f16);
    assert_true(f32 < f16);
    rc = run_capture("", "bench rpe --n 20 --d 4 --dtype f16,f64", out, sizeof out, err,
                     sizeof err);
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
        cmocka_unit_test(test_run_rpe_half),
        cmocka_unit_test(test_bench_rpe_dtype),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
