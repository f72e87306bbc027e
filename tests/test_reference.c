/* test_reference.c - checks the double-precision attention reference on tiny
 * cases whose answers can be worked out by hand, before anything is compared
 * against it. Tolerance: 1e-6 absolute unless stated (results are float32
 * roundings of exact values of order 1). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "reference/ref_softmax.h"

#define TOL 1e-6

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.9g, want %.9g (tol %g)", got, want, tol);
}

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
    assert_close(ref_max_abs_diff(a, ref, 3, &m), 0.5, 0.0);
    assert_close(m, 3.0, 0.0);
    a[1] = NAN;
    assert_true(isinf(ref_max_abs_diff(a, ref, 3, NULL)));
    a[1] = -3.0f;
    a[2] = 0.0f;
    assert_true(isinf(ref_max_abs_diff(a, ref, 3, NULL)));
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
