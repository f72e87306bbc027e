/* `clattn bench decode` (issue 17 section 5) end to end, tiny shapes: the CSV header, one row per
 * (variant, batch[, context]) with numbers for the measured variants (split included, issue 17
 * section 1) and "not available yet" (no numbers) for paged, every KV row's of_bandwidth against the bandwidth row of the same
 * run, and clear usage errors (unknown variant, heads not a multiple of kv-heads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli_harness.h"

static void test_bench_decode(void **state)
{
    (void)state;
    char out[8192], err[4096];
    int rc = run_capture("",
                         "bench decode --context 48 --heads 4 --kv-heads 2 --d 16 --batch 1,3 "
                         "--reps 1 --variants bandwidth,unsplit,split,paged,linear-step,ssm-step "
                         "--csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench decode: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "op,variant,batch,heads,kv_heads,context,d,dtype,ms_per_step,"
                                "tokens_per_s,kv_bytes,kv_gbps,of_bandwidth,note\n"));
    /* K+V bytes: B * Hk * context * D * 2 * 4. */
    assert_non_null(strstr(out, "\ndecode,bandwidth,1,4,2,48,16,f32,"));
    assert_non_null(strstr(out, ",12288,"));
    assert_non_null(strstr(out, ",1.000,\n"));
    assert_non_null(strstr(out, "\ndecode,unsplit,3,4,2,48,16,f32,"));
    assert_non_null(strstr(out, "\ndecode,split,1,4,2,48,16,f32,"));
    assert_null(strstr(out, "\ndecode,split,1,4,2,48,16,f32,,"));
    assert_non_null(strstr(out, "\ndecode,paged,1,4,2,48,16,f32,,,12288,,,not available yet\n"));
    assert_non_null(strstr(out, "\ndecode,linear-step,1,4,2,,16,f32,"));
    assert_non_null(strstr(out, "\ndecode,ssm-step,3,4,2,,16,f32,"));
    assert_int_equal(count_lines(out), 1 + 2 * 6);
    rc = run_capture("", "bench decode --variants bandwidth,flash", out, sizeof out, err,
                     sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "unknown variant 'flash'"));
    rc = run_capture("", "bench decode --heads 6 --kv-heads 4", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "multiple"));
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
        cmocka_unit_test(test_bench_decode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
