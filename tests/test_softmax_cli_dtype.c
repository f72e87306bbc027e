/* `clattn run softmax` and `clattn bench softmax` with half storage (issue 15), end to end on the
 * default device: float16 files read natively, bfloat16 through --dtype bf16, --out-dtype, the
 * bench's --dtype list with its dtype / bytes / footprint columns. Outputs against the fp64
 * reference on the half-rounded inputs (tolerance 1e-4 plus one ulp of the output type). */
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
#include "reference/ref_softmax.h"

/* q, k, v rounded to dt, written as dt files (bf16 as '<u2'), and the reference on them. */
static void inputs(clattn_dtype dt, float *r)
{
    size_t n = (size_t)B * H * N * D, shape[4] = {B, H, N, D};
    float *x[3];
    uint16_t *h = malloc(n * 2);
    assert_non_null(h);
    uint64_t seed = 77;
    static const char *const names[3] = {"q16.npy", "k16.npy", "v16.npy"};
    char err[256];
    for (int i = 0; i < 3; i++) {
        x[i] = malloc(n * 4);
        assert_non_null(x[i]);
        ref_fill_uniform(x[i], n, 1, &seed);
        assert_int_equal(clattn_convert_host(x[i], CLATTN_F32, h, dt, n), CLATTN_SUCCESS);
        assert_int_equal(clattn_convert_host(h, dt, x[i], CLATTN_F32, n), CLATTN_SUCCESS);
        assert_int_equal(npy_write(at(names[i]), dt == CLATTN_F16 ? NPY_F16 : NPY_U16, h, 4,
                                   shape, err, sizeof err),
                         0);
    }
    ref_softmax(x[0], x[1], x[2], r, NULL, B, H, H, N, N, D, 1.0 / sqrt((double)D), 1, NULL);
    for (int i = 0; i < 3; i++)
        free(x[i]);
    free(h);
}

static void check_out(const char *file, npy_dtype want, clattn_dtype dt, const float *r)
{
    size_t n = (size_t)B * H * N * D;
    npy_array out;
    char err[256];
    assert_int_equal(npy_read(at(file), &out, err, sizeof err), 0);
    assert_int_equal(out.dtype, want);
    assert_int_equal(out.count, n);
    float *o = malloc(n * 4);
    assert_non_null(o);
    assert_int_equal(clattn_convert_host(out.data, dt, o, CLATTN_F32, n), CLATTN_SUCCESS);
    double mr = 0, e = ref_max_abs_diff(o, r, n, &mr);
    double ulp = dt == CLATTN_F16 ? 1.0 / 1024 : dt == CLATTN_BF16 ? 1.0 / 128 : 0;
    if (!(e <= (1e-4 + ulp) * fmax(1, mr)))
        fail_msg("%s: error %.3g (max |ref| %.3g)", file, e, mr);
    free(o);
    npy_free(&out);
    remove(at(file));
}

static void test_run_half(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D;
    float *r = malloc(n * 4);
    assert_non_null(r);
    char line[512];
    inputs(CLATTN_F16, r);
    int rc = run("run softmax --q q16.npy --k k16.npy --v v16.npy -o o.npy --causal "
                 "--out-dtype f16",
                 line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    assert_non_null(strstr(line, "dtype=hhhh")); /* the summary names the plan's types */
    check_out("o.npy", NPY_F16, CLATTN_F16, r);
    inputs(CLATTN_BF16, r);
    /* A bf16 ('<u2') file needs --dtype bf16: refused without, nothing written. */
    expect_failure("run softmax --q q16.npy --k k16.npy --v v16.npy -o bad_out.npy --causal",
                   "q16.npy");
    rc = run("run softmax --q q16.npy --k k16.npy --v v16.npy -o o.npy --causal --dtype bf16 "
             "--out-dtype f32",
             line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    check_out("o.npy", NPY_F32, CLATTN_F32, r);
    free(r);
}

static void test_bench_dtypes(void **state)
{
    (void)state;
    static char out[8192], err[4096];
    int rc = run_capture("", "bench softmax --n 32 --nq 1 --d 16 --heads 1 --reps 1 --variants "
                         "tiled --dtype f32,f16 --csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    const char *hdr = strstr(out, "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype,bytes,"
                                  "footprint_bytes\n");
    assert_non_null(hdr);
    /* f32: q, out 1x16x4, k, v 32x16x4, lse 4 bytes; f16 half of the tensors' bytes. */
    assert_non_null(strstr(out, "softmax,tiled,1,1,1,32,16,0,"));
    assert_non_null(strstr(out, ",f32,4228,"));
    assert_non_null(strstr(out, ",f16,2116,"));
    expect_failure("bench softmax --dtype f64", "f64");
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
        cmocka_unit_test(test_run_half),
        cmocka_unit_test(test_bench_dtypes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
