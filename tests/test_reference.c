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

/* ---- ref_softmax_ex (issue 16): each option against an independent formulation ---- */

#define EX_TOL 1e-5
#define EX_B 2
#define EX_HQ 4
#define EX_HK 2
#define EX_NQ 4
#define EX_NK 6
#define EX_D 3
#define EX_ROWS (EX_B * EX_HQ * EX_NQ)
#define EX_ALL (EX_ROWS * EX_NK) /* a dense [B][Hq][Nq][Nk] tensor */

static const size_t ex_dense_stride[4] = {EX_HQ * EX_NQ * EX_NK, EX_NQ * EX_NK, EX_NK, 1};

typedef struct {
    float q[EX_ROWS * EX_D], k[EX_B * EX_HK * EX_NK * EX_D], v[EX_B * EX_HK * EX_NK * EX_D];
    float out[2][EX_ROWS * EX_D], lse[2][EX_ROWS];
} ex_case;

static void ex_init(ex_case *c, uint64_t seed)
{
    ref_fill_uniform(c->q, sizeof c->q / sizeof c->q[0], 1.5f, &seed);
    ref_fill_uniform(c->k, sizeof c->k / sizeof c->k[0], 1.5f, &seed);
    ref_fill_uniform(c->v, sizeof c->v / sizeof c->v[0], 2.0f, &seed);
}

/* Runs opts a into slot 0 and opts b into slot 1, and requires equal out and lse. */
static void ex_compare(ex_case *c, const ref_softmax_opts *a, const ref_softmax_opts *b,
                       const char *what)
{
    double e1, e2;
    ref_softmax_ex(c->q, c->k, c->v, c->out[0], c->lse[0], EX_B, EX_HQ, EX_HK, EX_NQ, EX_NK,
                   EX_D, a);
    ref_softmax_ex(c->q, c->k, c->v, c->out[1], c->lse[1], EX_B, EX_HQ, EX_HK, EX_NQ, EX_NK,
                   EX_D, b);
    e1 = ref_max_abs_diff(c->out[0], c->out[1], EX_ROWS * EX_D, NULL);
    e2 = ref_max_abs_diff(c->lse[0], c->lse[1], EX_ROWS, NULL);
    if (!(e1 <= EX_TOL && e2 <= EX_TOL))
        fail_msg("%s: out differs by %g, lse by %g", what, e1, e2);
}

/* Zero options equal ref_softmax (scale 0 meaning 1/sqrt(D)); causal and key lengths map over. */
static void test_ex_plain_equals_ref_softmax(void **state)
{
    static ex_case c;
    const int32_t kl[EX_B] = {6, 3};
    ref_softmax_opts o = {0};
    (void)state;
    ex_init(&c, 11);
    for (int causal = 0; causal < 2; causal++) {
        o.causal = causal;
        o.key_lengths = causal ? kl : NULL;
        ref_softmax(c.q, c.k, c.v, c.out[1], c.lse[1], EX_B, EX_HQ, EX_HK, EX_NQ, EX_NK, EX_D,
                    1.0 / sqrt((double)EX_D), causal, o.key_lengths);
        ref_softmax_ex(c.q, c.k, c.v, c.out[0], c.lse[0], EX_B, EX_HQ, EX_HK, EX_NQ, EX_NK, EX_D,
                       causal ? &o : NULL);
        assert_true(ref_max_abs_diff(c.out[0], c.out[1], EX_ROWS * EX_D, NULL) <= EX_TOL);
        assert_true(ref_max_abs_diff(c.lse[0], c.lse[1], EX_ROWS, NULL) <= EX_TOL);
    }
}

/* Slopes from the reference code's get_slopes, worked by hand; ALiBi equals its explicit bias. */
static void test_ex_alibi(void **state)
{
    static ex_case c;
    static float bias[EX_ALL];
    float s8[8], s6[6], s4[EX_HQ];
    const double w6[6] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
    ref_softmax_opts a = {0}, b = {0};
    (void)state;
    ref_alibi_slopes(8, s8);
    for (int h = 0; h < 8; h++)
        assert_true(s8[h] == (float)ldexp(1.0, -(h + 1)));
    ref_alibi_slopes(6, s6);
    for (int h = 0; h < 6; h++)
        assert_true(s6[h] == (float)w6[h]);
    ref_alibi_slopes(1, s4);
    assert_true(s4[0] == 1.0f / 256.0f);
    ref_alibi_slopes(EX_HQ, s4);
    for (int x = 0; x < EX_ALL; x++) {
        int j = x % EX_NK, i = x / EX_NK % EX_NQ, h = x / (EX_NK * EX_NQ) % EX_HQ;
        int ip = i + EX_NK - EX_NQ; /* bottom-right aligned position */
        bias[x] = -s4[h] * (float)abs(ip - j) * 4.0f; /* slopes x4 so the bias matters */
    }
    for (int h = 0; h < EX_HQ; h++)
        s4[h] *= 4.0f;
    ex_init(&c, 12);
    a.alibi_slopes = s4;
    b.bias = bias;
    memcpy(b.bias_stride, ex_dense_stride, sizeof b.bias_stride);
    ex_compare(&c, &a, &b, "alibi vs bias");
    a.causal = b.causal = 1;
    ex_compare(&c, &a, &b, "alibi vs bias, causal");
}

/* A window equals the dense mask it implies, edges included (0, 1, unbounded, beyond N). */
static void test_ex_window_equals_mask(void **state)
{
    static ex_case c;
    static uint8_t mask[EX_NQ * EX_NK];
    const long win[][2] = {{0, 0}, {1, 0}, {0, 1}, {2, -1},
                           {-1, 1}, {-1, -1}, {EX_NK, EX_NK}, {0, -1}};
    (void)state;
    ex_init(&c, 13);
    for (size_t w = 0; w < sizeof win / sizeof win[0]; w++)
        for (int causal = 0; causal < 2; causal++) {
            ref_softmax_opts a = {0}, b = {0};
            for (int i = 0; i < EX_NQ; i++)
                for (int j = 0; j < EX_NK; j++) {
                    int ip = i + EX_NK - EX_NQ;
                    mask[i * EX_NK + j] = (win[w][0] < 0 || j >= ip - win[w][0]) &&
                                          (win[w][1] < 0 || j <= ip + win[w][1]);
                }
            a.window = 1;
            a.window_left = win[w][0];
            a.window_right = win[w][1];
            b.mask = mask;
            b.mask_stride[2] = EX_NK; /* one [Nq, Nk] mask for every batch and head */
            b.mask_stride[3] = 1;
            a.causal = b.causal = causal;
            ex_compare(&c, &a, &b, "window vs mask");
        }
}

/* Block mask with ragged last blocks: expansion checked by hand, then equal to its dense mask. */
static void test_ex_block_mask(void **state)
{
    static ex_case c;
    static uint8_t dense[EX_ALL];
    /* [Hq=4][ceil(4/3)=2][ceil(6/4)=2], broadcast over batch */
    const uint8_t bm[EX_HQ * 2 * 2] = {1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0};
    const size_t st[4] = {0, 4, 2, 1};
    ref_softmax_opts a = {0}, b = {0};
    (void)state;
    ref_expand_block_mask(bm, st, EX_B, EX_HQ, EX_NQ, EX_NK, 3, 4, dense);
    /* head 0, batch 1: rows 0..2 see keys 0..3 only; row 3 sees keys 4..5 only */
    for (int i = 0; i < EX_NQ; i++)
        for (int j = 0; j < EX_NK; j++)
            assert_int_equal(dense[ex_dense_stride[0] + (size_t)i * EX_NK + (size_t)j],
                             i < 3 ? j < 4 : j >= 4);
    for (int x = 0; x < EX_NQ * EX_NK; x++) {
        assert_int_equal(dense[2 * EX_NQ * EX_NK + x], 0);     /* head 2: every block zero */
        assert_int_equal(dense[1 * EX_NQ * EX_NK + x], 1);     /* head 1: every block one */
    }
    ex_init(&c, 14);
    a.block_mask = bm;
    memcpy(a.block_mask_stride, st, sizeof st);
    a.block_q = 3;
    a.block_k = 4;
    b.mask = dense;
    memcpy(b.mask_stride, ex_dense_stride, sizeof b.mask_stride);
    ex_compare(&c, &a, &b, "block mask vs dense");
    a.causal = b.causal = 1;
    ex_compare(&c, &a, &b, "block mask vs dense, causal");
    /* head 2 is fully masked: zeros and -inf */
    assert_true(c.lse[0][2 * EX_NQ] == -INFINITY && c.out[0][2 * EX_NQ * EX_D] == 0.0f);
}

/* -inf bias entries equal mask 0; a bias broadcast by stride 0 equals the materialised tensor. */
static void test_ex_bias_mask_broadcast(void **state)
{
    static ex_case c;
    static float hb[EX_HQ * EX_NQ * EX_NK], full[EX_ALL], finite[EX_ALL];
    static uint8_t m[EX_ALL];
    uint64_t seed = 99;
    ref_softmax_opts a = {0}, b = {0};
    (void)state;
    ex_init(&c, 15);
    ref_fill_uniform(hb, EX_HQ * EX_NQ * EX_NK, 2.0f, &seed);
    for (int x = 0; x < EX_ALL; x++)
        full[x] = hb[x % (EX_HQ * EX_NQ * EX_NK)];
    /* per head bias, broadcast over batch */
    a.bias = hb;
    a.bias_stride[1] = EX_NQ * EX_NK;
    a.bias_stride[2] = EX_NK;
    a.bias_stride[3] = 1;
    b.bias = full;
    memcpy(b.bias_stride, ex_dense_stride, sizeof b.bias_stride);
    ex_compare(&c, &a, &b, "broadcast bias vs materialised");
    /* -inf entries (a whole row too) vs mask 0 */
    for (int x = 0; x < EX_ALL; x++) {
        int dead = x % 5 == 2 || (x / EX_NK) == 5;
        full[x] = dead ? -INFINITY : hb[x % (EX_HQ * EX_NQ * EX_NK)];
        finite[x] = dead ? 0.0f : full[x];
        m[x] = !dead;
    }
    a = b;
    a.bias = full;
    b.bias = finite;
    b.mask = m;
    memcpy(b.mask_stride, ex_dense_stride, sizeof b.mask_stride);
    ex_compare(&c, &a, &b, "-inf bias vs mask");
    assert_true(c.lse[0][5] == -INFINITY);
    for (int d = 0; d < EX_D; d++)
        assert_true(c.out[0][5 * EX_D + d] == 0.0f);
}

/* Sinks equal an extra key with zero value and logit = sink (one more dimension carries it). */
static void test_ex_sinks(void **state)
{
    enum { H = 2, NQ = 2, NK = 3, D = 2 };
    const float sinks[H] = {0.7f, -1.3f};
    float q[H * NQ * D], k[H * NK * D], v[H * NK * D];
    float q2[H * NQ * (D + 1)], k2[H * (NK + 1) * (D + 1)], v2[H * (NK + 1) * (D + 1)];
    float out[H * NQ * D], lse[H * NQ], out2[H * NQ * (D + 1)], lse2[H * NQ];
    const int32_t none = 0;
    uint64_t seed = 5;
    ref_softmax_opts o = {0};
    (void)state;
    ref_fill_uniform(q, H * NQ * D, 1.0f, &seed);
    ref_fill_uniform(k, H * NK * D, 1.0f, &seed);
    ref_fill_uniform(v, H * NK * D, 1.0f, &seed);
    memset(k2, 0, sizeof k2);
    memset(v2, 0, sizeof v2);
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < NQ; i++) {
            for (int d = 0; d < D; d++)
                q2[(h * NQ + i) * (D + 1) + d] = q[(h * NQ + i) * D + d];
            q2[(h * NQ + i) * (D + 1) + D] = 1.0f;
        }
        for (int j = 0; j < NK; j++)
            for (int d = 0; d < D; d++) {
                k2[(h * (NK + 1) + j) * (D + 1) + d] = k[(h * NK + j) * D + d];
                v2[(h * (NK + 1) + j) * (D + 1) + d] = v[(h * NK + j) * D + d];
            }
        k2[(h * (NK + 1) + NK) * (D + 1) + D] = sinks[h]; /* q.k = sink, value 0 */
    }
    o.scale = 1.0;
    o.sinks = sinks;
    ref_softmax_ex(q, k, v, out, lse, 1, H, H, NQ, NK, D, &o);
    ref_softmax(q2, k2, v2, out2, lse2, 1, H, H, NQ, NK + 1, D + 1, 1.0, 0, NULL);
    for (int r = 0; r < H * NQ; r++) {
        assert_close(lse[r], lse2[r], EX_TOL);
        for (int d = 0; d < D; d++)
            assert_close(out[r * D + d], out2[r * (D + 1) + d], EX_TOL);
    }
    /* every key masked: the sink alone, out zeros, lse = sink */
    o.key_lengths = &none;
    ref_softmax_ex(q, k, v, out, lse, 1, H, H, NQ, NK, D, &o);
    for (int r = 0; r < H * NQ; r++) {
        assert_true(lse[r] == sinks[r / NQ]);
        for (int d = 0; d < D; d++)
            assert_true(out[r * D + d] == 0.0f);
    }
}

/* Softcap: huge c changes nothing; c = 1 on Nk = 2 gives the closed form, applied before bias. */
static void test_ex_softcap(void **state)
{
    static ex_case c;
    const float q[1] = {1.0f}, k[2] = {100.0f, -100.0f}, v[2] = {1.0f, 0.0f};
    const float bias[2] = {0.5f, 0.0f};
    float out[1], lse[1];
    ref_softmax_opts a = {0}, b = {0};
    double t;
    (void)state;
    ex_init(&c, 16);
    a.softcap = 1e9;
    ex_compare(&c, &a, &b, "huge softcap vs none");
    a.softcap = 1.0;
    a.scale = 1.0;
    ref_softmax_ex(q, k, v, out, lse, 1, 1, 1, 1, 2, 1, &a);
    t = tanh(100.0); /* logits capped to +-tanh(100) ~ +-1 */
    assert_close(out[0], 1.0 / (1.0 + exp(-2.0 * t)), TOL);
    assert_close(lse[0], log(exp(t) + exp(-t)), TOL);
    assert_true(lse[0] <= 1.0f + (float)log(2.0));
    a.bias = bias;
    a.bias_stride[3] = 1;
    ref_softmax_ex(q, k, v, out, lse, 1, 1, 1, 1, 2, 1, &a);
    assert_close(out[0], 1.0 / (1.0 + exp(-2.0 * t - 0.5)), TOL); /* bias not capped */
}

/* Dv != D against a direct computation written out here. */
static void test_ex_dv(void **state)
{
    enum { NK = 3, D = 2, DV = 5 };
    const float q[D] = {0.5f, -1.0f}, k[NK * D] = {1.0f, 0.0f, -2.0f, 1.0f, 0.5f, 0.5f};
    float v[NK * DV], out[DV], lse[1];
    double l[NK], p[NK], sum = 0.0;
    uint64_t seed = 8;
    ref_softmax_opts o = {0};
    (void)state;
    ref_fill_uniform(v, NK * DV, 3.0f, &seed);
    o.Dv = DV;
    o.scale = 0.75;
    ref_softmax_ex(q, k, v, out, lse, 1, 1, 1, 1, NK, D, &o);
    for (int j = 0; j < NK; j++) {
        l[j] = 0.75 * ((double)q[0] * k[j * D] + (double)q[1] * k[j * D + 1]);
        sum += exp(l[j]);
    }
    for (int j = 0; j < NK; j++)
        p[j] = exp(l[j]) / sum;
    for (int d = 0; d < DV; d++)
        assert_close(out[d], p[0] * v[d] + p[1] * v[DV + d] + p[2] * v[2 * DV + d], TOL);
    assert_close(lse[0], log(sum), TOL);
}

/* Every option at once with logits and bias near +-1e4: all finite, rows still normalised. */
static void test_ex_large_logits(void **state)
{
    static ex_case c;
    static float bias[EX_ALL];
    float slopes[EX_HQ], sinks[EX_HQ] = {1e4f, -1e4f, 0.0f, 9990.0f};
    const uint8_t bm[1] = {1};
    ref_softmax_opts o = {0};
    (void)state;
    ex_init(&c, 17);
    for (int x = 0; x < EX_ALL; x++)
        bias[x] = x % 2 ? 1e4f : -1e4f;
    for (int x = 0; x < EX_ROWS * EX_D; x++)
        c.q[x] *= 3000.0f;
    ref_alibi_slopes(EX_HQ, slopes);
    o.bias = bias;
    memcpy(o.bias_stride, ex_dense_stride, sizeof o.bias_stride);
    o.alibi_slopes = slopes;
    o.sinks = sinks;
    o.window = 1;
    o.window_left = 3;
    o.window_right = -1;
    o.causal = 1;
    o.block_mask = bm;
    o.block_q = o.block_k = 64;
    ref_softmax_ex(c.q, c.k, c.v, c.out[0], c.lse[0], EX_B, EX_HQ, EX_HK, EX_NQ, EX_NK, EX_D, &o);
    for (int x = 0; x < EX_ROWS * EX_D; x++)
        assert_true(isfinite(c.out[0][x]) && fabsf(c.out[0][x]) <= 2.0f);
    for (int x = 0; x < EX_ROWS; x++)
        assert_true(isfinite(c.lse[0][x]) && fabsf(c.lse[0][x]) > 1000.0f);
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
        cmocka_unit_test(test_ex_plain_equals_ref_softmax),
        cmocka_unit_test(test_ex_alibi),
        cmocka_unit_test(test_ex_window_equals_mask),
        cmocka_unit_test(test_ex_block_mask),
        cmocka_unit_test(test_ex_bias_mask_broadcast),
        cmocka_unit_test(test_ex_sinks),
        cmocka_unit_test(test_ex_softcap),
        cmocka_unit_test(test_ex_dv),
        cmocka_unit_test(test_ex_large_logits),
        cmocka_unit_test(test_fill_uniform),
        cmocka_unit_test(test_max_abs_diff),
        cmocka_unit_test(test_harness_fails_when_it_should),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
