/* test_reference.c - checks the double-precision attention reference on tiny
 * cases whose answers can be worked out by hand, before anything is compared
 * against it, and the shared harness's comparisons and watches (tests/test_util.h):
 * each must fail on what it exists to catch. Tolerance: 1e-6 absolute unless
 * stated (results are float32 roundings of exact values of order 1). */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "test_util.h"
#include "reference/ref_softmax.h"

#define TOL 1e-6

/* One float result against its exact value, through the harness (absolute tolerance only). */
#define assert_close(got, want, tol)                                                               \
    do {                                                                                           \
        float g_ = (float)(got);                                                                   \
        double w_ = (want);                                                                        \
        tu_check_close_d(&g_, &w_, 1, (tu_tol){(tol), 0, 0}, #got);                                \
    } while (0)

/* One key: softmax weight is exactly 1, so out is that key's value row. */
static void test_single_key_returns_v(void **state)
{
    const float q[4] = { 0.5f, -1.0f, 2.0f, 0.25f };
    const float k[4] = { 1.0f, 2.0f, -0.5f, 4.0f };
    const float v[4] = { 3.0f, -7.0f, 0.125f, 9.5f };
    float out[4], lse[1];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 1, 1, 4, 0.5, 0, NULL);
    for (int d = 0; d < 4; d++)
        assert_true(out[d] == v[d]);
    /* q.k = 0.5 - 2 - 1 + 1 = -1.5, scaled by 0.5 */
    assert_close(lse[0], -0.75, TOL);
}

/* Identical keys give equal logits: out is the mean of v, lse = l + ln 2. */
static void test_equal_logits_give_mean(void **state)
{
    const float q[2] = { 1.0f, 2.0f };
    const float k[4] = { 0.5f, 0.5f, 0.5f, 0.5f };
    const float v[4] = { 1.0f, 10.0f, 3.0f, -4.0f };
    float out[2], lse[1];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 1, 2, 2, 1.0, 0, NULL);
    assert_close(out[0], 2.0, TOL);
    assert_close(out[1], 3.0, TOL);
    assert_close(lse[0], 1.5 + log(2.0), TOL);
}

/* logits 0 and ln 3: weights 1/4 and 3/4, lse = ln 4. */
static void test_unequal_weights(void **state)
{
    const float q[1] = { 1.0f };
    const float k[2] = { 0.0f, (float)log(3.0) };
    const float v[2] = { 0.0f, 4.0f };
    float out[1], lse[1];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 1, 2, 1, 1.0, 0, NULL);
    assert_close(out[0], 3.0, 1e-6);
    assert_close(lse[0], log(4.0), 1e-6);
}

/* key_lengths 0 masks every key: zeros and -inf, not NaN. */
static void test_masked_row(void **state)
{
    const float q[2] = { 1.0f, 1.0f }, k[2] = { 1.0f, 1.0f }, v[2] = { 5.0f, 6.0f };
    const int32_t kl[1] = { 0 };
    float out[2] = { 99.0f, 99.0f }, lse[1] = { 99.0f };
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 1, 1, 2, 1.0, 0, kl);
    assert_true(out[0] == 0.0f && out[1] == 0.0f);
    assert_true(isinf(lse[0]) && lse[0] < 0);
}

/* Nq=2, Nk=3, bottom-right aligned: query 0 sees keys 0..1, query 1 sees 0..2.
 * q = 0 makes every logit 0, so each row is the mean of the values it sees. */
static void test_causal_bottom_right(void **state)
{
    const float q[2] = { 0.0f, 0.0f };
    const float k[3] = { 1.0f, 2.0f, 3.0f };
    const float v[3] = { 1.0f, 2.0f, 6.0f };
    float out[2], lse[2];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 2, 3, 1, 1.0, 1, NULL);
    assert_close(out[0], 1.5, TOL);
    assert_close(out[1], 3.0, TOL);
    assert_close(lse[0], log(2.0), TOL);
    assert_close(lse[1], log(3.0), TOL);
}

/* Nq=3 > Nk=1: query i sees key 0 iff 0 <= i - 2, so rows 0 and 1 are masked.
 * Catches unsigned wrap-around in i + Nk - Nq. */
static void test_causal_more_queries_than_keys(void **state)
{
    const float q[3] = { 1.0f, 1.0f, 1.0f }, k[1] = { 1.0f }, v[1] = { 7.0f };
    float out[3], lse[3];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 3, 1, 1, 1.0, 1, NULL);
    assert_true(out[0] == 0.0f && isinf(lse[0]) && lse[0] < 0);
    assert_true(out[1] == 0.0f && isinf(lse[1]) && lse[1] < 0);
    assert_close(out[2], 7.0, TOL);
    assert_close(lse[2], 1.0, TOL);
}

/* Hq=4, Hk=2: heads 0,1 read kv head 0; heads 2,3 read kv head 1. */
static void test_gqa_head_mapping(void **state)
{
    const float q[4] = { 1.0f, 1.0f, 1.0f, 1.0f };
    const float k[2] = { 1.0f, 1.0f };
    const float v[2] = { 10.0f, 20.0f };
    float out[4];
    (void)state;
    ref_softmax(q, k, v, out, NULL, 1, 4, 2, 1, 1, 1, 1.0, 0, NULL);
    assert_true(out[0] == 10.0f && out[1] == 10.0f);
    assert_true(out[2] == 20.0f && out[3] == 20.0f);
}

/* MQA (Hk=1) with two batches: batch 1 must read batch 1's kv. */
static void test_mqa_batches(void **state)
{
    const float q[4] = { 1.0f, 1.0f, 1.0f, 1.0f };
    const float k[2] = { 1.0f, 1.0f };
    const float v[2] = { 10.0f, 20.0f };
    float out[4];
    (void)state;
    ref_softmax(q, k, v, out, NULL, 2, 2, 1, 1, 1, 1, 1.0, 0, NULL);
    assert_true(out[0] == 10.0f && out[1] == 10.0f);
    assert_true(out[2] == 20.0f && out[3] == 20.0f);
}

/* Logits of +-1e4 overflow exp() without the max-subtraction trick. */
static void test_large_logits_stay_finite(void **state)
{
    const float q[2] = { 100.0f, -100.0f };
    const float k[2] = { 100.0f, 99.0f }; /* logits 1e4, 9900 and -1e4, -9900 */
    const float v[2] = { 1.0f, -1.0f };
    float out[2], lse[2];
    (void)state;
    ref_softmax(q, k, v, out, lse, 1, 1, 1, 2, 2, 1, 1.0, 0, NULL);
    assert_true(isfinite(out[0]) && isfinite(out[1]));
    assert_true(isfinite(lse[0]) && isfinite(lse[1]));
    assert_close(out[0], 1.0, TOL);   /* exp(-100) weight on the second key */
    assert_close(out[1], -1.0, TOL);
    assert_close(lse[0], 1e4, 1e-3);  /* float spacing at 1e4 is ~1e-3 */
    assert_close(lse[1], -9900.0, 1e-3);
}

/* Per-batch key lengths: 0 masks, 1 keeps key 0 only, over-long and negative clamp. */
static void test_key_lengths(void **state)
{
    const float q[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    const float k[8] = { 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f };
    const float v[8] = { 2.0f, 4.0f, 2.0f, 4.0f, 2.0f, 4.0f, 2.0f, 4.0f };
    const int32_t kl[4] = { 0, 1, 100, -5 };
    float out[4], lse[4];
    (void)state;
    ref_softmax(q, k, v, out, lse, 4, 1, 1, 1, 2, 1, 1.0, 0, kl);
    assert_true(out[0] == 0.0f && isinf(lse[0]) && lse[0] < 0);
    assert_close(out[1], 2.0, TOL);
    assert_close(lse[1], 0.0, TOL);
    assert_close(out[2], 3.0, TOL);
    assert_close(lse[2], log(2.0), TOL);
    assert_true(out[3] == 0.0f && isinf(lse[3]) && lse[3] < 0);
}

static void test_fill_uniform(void **state)
{
    float a[4096], b[4096];
    uint64_t s1 = 42, s2 = 42;
    double lo = 0.0, hi = 0.0;
    (void)state;
    ref_fill_uniform(a, 4096, 0.5f, &s1);
    ref_fill_uniform(b, 4096, 0.5f, &s2);
    for (int i = 0; i < 4096; i++) {
        assert_true(a[i] != 0.0f && a[i] >= -0.5f && a[i] <= 0.5f);
        assert_true(a[i] == b[i]); /* same seed, same stream */
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    assert_true(lo < -0.45 && hi > 0.45); /* spans the range, not stuck */
    ref_fill_uniform(b, 4096, 0.5f, &s2);
    assert_true(a[0] != b[0] || a[1] != b[1]); /* the state advanced */
}

static void test_max_abs_diff(void **state)
{
    const float ref[3] = { 1.0f, -3.0f, -INFINITY };
    float a[3] = { 1.5f, -3.0f, -INFINITY };
    double m = 0.0;
    (void)state;
    assert_true(ref_max_abs_diff(a, ref, 3, &m) == 0.5);
    assert_true(m == 3.0);
    a[1] = NAN;
    assert_true(isinf(ref_max_abs_diff(a, ref, 3, NULL)));
    a[1] = -3.0f;
    a[2] = 0.0f;
    assert_true(isinf(ref_max_abs_diff(a, ref, 3, NULL)));
}

/* ---- the harness can fail ---------------------------------------------------------------- */

/* True when fn, run as the only test of a cmocka run in a child process, fails it: the child has
 * CMOCKA_TEST_ABORT=1, so the first failed assertion aborts it (its output goes to /dev/null),
 * and a child that returns from fn exits 0. */
static int harness_fails(void (*fn)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        signal(SIGABRT, SIG_DFL);
        setenv("CMOCKA_TEST_ABORT", "1", 1);
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
        return 1;
    fail_msg("the child ended neither cleanly nor by a failed assertion (status 0x%x)", status);
    return 0;
}

static const float ref3[3] = {1.0f, -2.0f, -INFINITY};

static void close_equal(void) { tu_check_close(ref3, ref3, 3, TU_TOL_FP32, "equal"); }
static void close_within(void)
{
    const float got[3] = {1.0f + 1.5e-4f, -2.0f, -INFINITY}; /* within 1e-4 + 1e-4 * 1 */
    tu_check_close(got, ref3, 3, (tu_tol){1e-4, 1e-4, 0}, "within");
}
static void close_beyond(void)
{
    const float got[3] = {1.0f + 3e-4f, -2.0f, -INFINITY};
    tu_check_close(got, ref3, 3, (tu_tol){1e-4, 1e-4, 0}, "beyond");
}
static void close_nan(void)
{
    const float got[3] = {NAN, -2.0f, -INFINITY}; /* poison left behind */
    tu_check_close(got, ref3, 3, (tu_tol){1.0, 1.0, 0}, "nan");
}
static void close_inf_missed(void)
{
    const float got[3] = {1.0f, -2.0f, -1e30f}; /* a row that sees no key must say -inf */
    tu_check_close(got, ref3, 3, (tu_tol){1.0, 1.0, 0}, "inf");
}
static void close_nerr(void)
{
    const float got[3] = {1.0f + 1.5e-4f, -2.0f - 1.5e-4f, -INFINITY}; /* per element fine */
    tu_check_close(got, ref3, 3, (tu_tol){1e-4, 1e-4, 1e-5}, "nerr");
}
static void close_d_beyond(void)
{
    const float got[1] = {0.5f};
    const double want[1] = {0.5 + 1e-3};
    tu_check_close_d(got, want, 1, (tu_tol){1e-4, 0, 0}, "double reference");
}
static void watch_changed(void)
{
    float x[4] = {1, 2, 3, 4};
    tu_watch w;
    tu_watch_init(&w, NULL);
    tu_watch_host(&w, x, sizeof x, "x");
    tu_watch_check(&w, "unchanged");
    x[2] = 3.5f;
    tu_watch_check(&w, "changed");
}
static void watch_unchanged(void)
{
    float x[4] = {1, 2, 3, 4};
    tu_watch w;
    tu_watch_init(&w, NULL);
    tu_watch_host(&w, x, sizeof x, "x");
    tu_watch_check(&w, "unchanged");
    tu_watch_free(&w);
}
static void status_wrong(void)
{
    tu_expect_status(NULL, CLATTN_SUCCESS, CLATTN_INVALID_ARGUMENT, "wrong status");
}
static void status_stale_message(void)
{
    /* the status is right but the message is the one left before the "call" */
    tu_stale_messages(NULL);
    tu_expect_fresh_status(NULL, CLATTN_NULL_POINTER, CLATTN_NULL_POINTER, "stale message");
}
static void status_fresh_message(void)
{
    tu_stale_messages(NULL);
    tu_expect_fresh_status(NULL, clattn_context_finish(NULL), CLATTN_NULL_POINTER, "fresh");
}

static void test_harness_fails_when_it_should(void **state)
{
    (void)state;
    static const struct {
        void (*fn)(void);
        int fails;
        const char *name;
    } cases[] = {
        {close_equal, 0, "equal arrays"},
        {close_within, 0, "within atol + rtol |r|"},
        {close_beyond, 1, "beyond atol + rtol |r|"},
        {close_nan, 1, "NaN where the reference is finite"},
        {close_inf_missed, 1, "finite where the reference is -inf"},
        {close_nerr, 1, "normalised error above nerr"},
        {close_d_beyond, 1, "beyond, double reference"},
        {watch_unchanged, 0, "watched array unchanged"},
        {watch_changed, 1, "watched array changed"},
        {status_wrong, 1, "wrong status"},
        {status_stale_message, 1, "stale message"},
        {status_fresh_message, 0, "fresh message"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int failed = harness_fails(cases[i].fn);
        if (failed != cases[i].fails)
            fail_msg("harness case '%s': %s, expected it to %s", cases[i].name,
                     failed ? "failed" : "passed", cases[i].fails ? "fail" : "pass");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_key_returns_v),
        cmocka_unit_test(test_equal_logits_give_mean),
        cmocka_unit_test(test_unequal_weights),
        cmocka_unit_test(test_masked_row),
        cmocka_unit_test(test_causal_bottom_right),
        cmocka_unit_test(test_causal_more_queries_than_keys),
        cmocka_unit_test(test_gqa_head_mapping),
        cmocka_unit_test(test_mqa_batches),
        cmocka_unit_test(test_large_logits_stay_finite),
        cmocka_unit_test(test_key_lengths),
        cmocka_unit_test(test_fill_uniform),
        cmocka_unit_test(test_max_abs_diff),
        cmocka_unit_test(test_harness_fails_when_it_should),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
