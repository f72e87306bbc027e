/* `clattn bench softmax --variants window,blocksparse,bias,d512` (issue 16): each option variant
 * at a tiny size (--n 64 --reps 1) on the naive algorithm, which implements every option (the
 * tiled families' plans with options are another stream's work): the CSV rows and columns, the
 * table, the summary of ratios, and the refusals of bad --variants, --block and --algo. Formats
 * only: nothing is timed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli_harness.h"

static char out[16384], err[8192];

static void expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("missing '%s' in:\n%s", needle, hay);
}

static void test_csv(void **state)
{
    (void)state;
    int rc = run_capture("", "bench softmax --variants window,blocksparse,bias,d512 --n 64 "
                             "--reps 1 --heads 1 --d 16 --algo naive --block 32,64 --csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    expect_in(out, "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype,bytes,footprint_bytes\n");
    /* q, k, v, out 64x16 float32 and lse 64: 16640 bytes; the bias adds 64x64x4, the 2x1
     * layout 2. */
    expect_in(out, "\nsoftmax,window,1,1,64,64,16,1,");
    expect_in(out, "\nsoftmax,window-dense,1,1,64,64,16,1,");
    static const char *const dens[] = {"10", "25", "50", "100"};
    for (int i = 0; i < 4; i++) {
        char row[64];
        snprintf(row, sizeof row, "\nsoftmax,blocksparse-%s%%,1,1,64,64,16,0,", dens[i]);
        expect_in(out, row);
    }
    expect_in(out, ",f32,16642,");
    expect_in(out, "\nsoftmax,bias-none,1,1,64,64,16,0,");
    expect_in(out, "\nsoftmax,bias-1x1xNxN,1,1,64,64,16,0,");
    expect_in(out, ",f32,33024,");
    expect_in(out, "\nsoftmax,d512,1,1,64,64,128,0,");
    expect_in(out, "\nsoftmax,d512,1,1,64,64,256,0,");
    expect_in(out, "\nsoftmax,d512,1,1,64,64,512,0,");
    expect_in(out, "\npeak,peak,"); /* d512 brings the peak row */
    /* 11 attention rows + peak + the header; the summary went to stderr. */
    assert_int_equal(count_lines(out), 13);
    expect_in(err, "window f32: N=64 ");
    expect_in(err, "time/N vs N=64 1.00");
    expect_in(err, "window f32: dense causal at N=64 ");
    expect_in(err, "blocksparse f32: N=64 block 32x64 10% speed-up over 100% ");
    expect_in(err, "(target >= 5x)");
    expect_in(err, "bias f32: N=64 [1,1,N,N] bias overhead ");
    expect_in(err, "d512 f32: N=64 D=Dv=512 ");
    expect_in(err, "% of peak)");
}

static void test_table(void **state)
{
    (void)state;
    int rc = run_capture("", "bench softmax --variants window --n 64,128 --reps 1 --heads 1 --d 16 "
                             "--algo naive --dtype f32,f16",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    expect_in(out, "variant          dtype");
    expect_in(out, "\nsoftmax  window           f16 ");
    /* Per type: the summary normalises time/N to the first length. */
    expect_in(out, "\nwindow f32: N=128 ");
    expect_in(out, "\nwindow f16: N=128 ");
    expect_in(out, "time/N vs N=64 ");
    /* Header, 2 lengths x 2 types + 2 dense rows, blank, per type 2 window lines + 1 dense. */
    assert_int_equal(count_lines(out), 14);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_failure("bench softmax --variants window,sliding", "unknown variant 'sliding'");
    expect_failure("bench softmax --variants blocksparse --block 48,64", "--block");
    expect_failure("bench softmax --variants blocksparse --block 16,32,64", "--block");
    expect_failure("bench softmax --variants bias --algo fastest", "--algo");
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
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
