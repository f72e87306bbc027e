/* `clattn bench decode` (issue 17 section 5) end to end, tiny shapes: the CSV header, one row per
 * (variant, batch[, context][, page]) with numbers for every variant (split and paged included:
 * paged at --page 16, K/V in shuffled page pools, with its vs_contiguous ratio; page 128 over a
 * 48-key context: a partial page through key lengths), every KV row's of_bandwidth against the
 * bandwidth row of the same run, --page 0 leaving out the paged rows, and clear usage errors
 * (unknown variant, heads not a multiple of kv-heads, a bad page size). */
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

/* The CSV row starting with `prefix` (after a newline): `count` fields after the first `skip`
 * ones following the prefix must be finite non-negative numbers (GB/s prints 0.00 on a slow
 * device). */
static void expect_numbers(const char *out, const char *prefix, int skip, int count)
{
    char want[128];
    snprintf(want, sizeof want, "\n%s", prefix);
    const char *p = strstr(out, want);
    if (!p)
        fail_msg("no row '%s' in:\n%s", prefix, out);
    p += strlen(want);
    for (int f = 0; f < skip; f++) {
        p = strchr(p, ',');
        assert_non_null(p);
        p++;
    }
    for (int f = 0; f < count; f++) {
        char *end = NULL;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || !(x >= 0) || (*end != ',' && *end != '\n'))
            fail_msg("row '%s': field %d is not a finite number >= 0: '%.20s'", prefix,
                     skip + f, p);
        p = end + 1;
    }
}

static void test_bench_decode(void **state)
{
    (void)state;
    char out[8192], err[4096];
    int rc = run_capture("",
                         "bench decode --context 48 --heads 4 --kv-heads 2 --d 16 --batch 1,3 "
                         "--reps 1 --page 16,128 "
                         "--variants bandwidth,unsplit,split,paged,linear-step,ssm-step --csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench decode: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "op,variant,batch,heads,kv_heads,context,d,page,dtype,"
                                "ms_per_step,tokens_per_s,kv_bytes,kv_gbps,of_bandwidth,"
                                "vs_contiguous,note\n"));
    /* K+V bytes: B * Hk * context * D * 2 * 4. */
    assert_non_null(strstr(out, "\ndecode,bandwidth,1,4,2,48,16,,f32,"));
    assert_non_null(strstr(out, ",12288,"));
    assert_non_null(strstr(out, ",1.000,,\n"));
    assert_non_null(strstr(out, "\ndecode,unsplit,3,4,2,48,16,,f32,"));
    expect_numbers(out, "decode,split,1,4,2,48,16,,f32,", 0, 5);
    /* ms, tokens/s, kv bytes, GB/s, of_bandwidth, vs_contiguous: all measured */
    expect_numbers(out, "decode,paged,1,4,2,48,16,16,f32,", 0, 6);
    expect_numbers(out, "decode,paged,3,4,2,48,16,16,f32,", 0, 6);
    expect_numbers(out, "decode,paged,3,4,2,48,16,128,f32,", 0, 6);
    assert_non_null(strstr(out, "\ndecode,paged,1,4,2,48,16,16,f32,"));
    assert_non_null(strstr(out, ",36864,")); /* batch 3: the same bytes paged or not */
    assert_null(strstr(out, "not available yet"));
    assert_non_null(strstr(out, "\ndecode,linear-step,1,4,2,,16,,f32,"));
    assert_non_null(strstr(out, "\ndecode,ssm-step,3,4,2,,16,,f32,"));
    assert_int_equal(count_lines(out), 1 + 2 * 7);

    /* --page 0: contiguous only (paged listed but not run); split still runs (the shapes of the
     * run above: no new kernel builds) */
    rc = run_capture("",
                     "bench decode --context 48 --heads 4 --kv-heads 2 --d 16 --batch 3 --reps 1 "
                     "--page 0 --variants split,paged --csv",
                     out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench decode --page 0: exit %d: %s", rc, err);
    assert_null(strstr(out, "\ndecode,paged,"));
    expect_numbers(out, "decode,split,3,4,2,48,16,,f32,", 0, 5);
    assert_int_equal(count_lines(out), 2);

    rc = run_capture("", "bench decode --variants bandwidth,flash", out, sizeof out, err,
                     sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "unknown variant 'flash'"));
    rc = run_capture("", "bench decode --heads 6 --kv-heads 4", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "multiple"));
    rc = run_capture("", "bench decode --page 24", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--page 24 is not 0 (contiguous only), 16, 32, 64, 128 or 256"));
    rc = run_capture("", "bench decode --page 16,512", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--page"));
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
