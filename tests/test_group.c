/* Device groups (issue 18 section 1, include/clattn/group.h) against the fp64 references, on the
 * devices this machine has: CLATTN_GROUP_DEVICES lists device selectors separated by commas (the
 * ctest entries: PoCL's pthread and basic devices; PoCL pthread, rusticl's llvmpipe and PoCL
 * basic). Groups of every size from 1 to all of them, plus a group whose second context shares
 * the first one's cl_context (the merge then reads its buffers without a host copy).
 * - softmax: non-causal, causal, GQA, key lengths, Nq != Nk, Nq = 1, N not divisible by the
 *   device count, window + ALiBi + softcap + sinks + position_offset, both splits; very uneven
 *   weights (a device with 0 or 1 key); lse against the reference too.
 * - linear: causal (exclusive scan of states) and non-causal (summed states + query pass) KEYS,
 *   HEADS, against the reference and the single-device causal form.
 * - refusals (UNSUPPORTED options, bad key lengths, bad weights) and an injected device failure
 *   return an error naming the device and leave the outputs untouched.
 * Tolerance: TU_TOL_FP32 (1e-4 per element, 1e-5 normalised): fp32 blocks merged by lse. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clattn.h"
#include "../lib/group/group_internal.h"
#include "../lib/tune/tune.h"
#include "reference/ref_linear.h"
#include "reference/ref_softmax.h"
#include "test_util.h"

#define MAXDEV 4
static clattn_context *ctxs[MAXDEV];
static size_t ndev;
static clattn_context *shared2; /* a second context on ctxs[0]'s cl_context */
enum { D = 16 };

static clattn_group *make_group(clattn_context *const *c, size_t n)
{
    clattn_group_options o;
    clattn_group_options_init(&o);
    o.weights = CLATTN_GROUP_WEIGHTS_EQUAL;
    clattn_group *g = NULL;
    clattn_status st = clattn_group_create(c, n, &o, &g);
    if (st != CLATTN_SUCCESS)
        fail_msg("group create: %s", clattn_context_last_error(NULL));
    return g;
}

typedef struct sm_case {
    const char *name;
    size_t B, Hq, Hk, Nq, Nk, Dv;
    int causal;
    int lengths; /* key lengths: 1 = some short, 2 = one zero */
    clattn_group_split split;
    int opts; /* window + alibi + softcap + sinks + position_offset */
    long po;  /* position_offset (without opts) */
} sm_case;

/* One softmax case on group g, compared with ref_softmax_ex (out and lse). */
static void run_sm(clattn_group *g, const sm_case *c, const double *weights)
{
    size_t nq = c->B * c->Hq * c->Nq * D, nk = c->B * c->Hk * c->Nk * D;
    size_t Dv = c->Dv ? c->Dv : D, nv = c->B * c->Hk * c->Nk * Dv;
    size_t no = c->B * c->Hq * c->Nq * Dv, nl = c->B * c->Hq * c->Nq;
    uint64_t seed = 1234 + c->Nq * 7 + c->Nk;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed);
    float *out = tu_poisoned(no), *lse = tu_poisoned(nl);
    float *ro = malloc(no * sizeof *ro), *rl = malloc(nl * sizeof *rl);
    int32_t kl[8];
    for (size_t b = 0; b < c->B; b++)
        kl[b] = c->lengths == 0 ? (int32_t)c->Nk
                                : (int32_t)((c->Nk * (b + 1)) / (c->B + 1) + (c->lengths == 2 && b == 0 ? 0 : 1));
    if (c->lengths == 2)
        kl[0] = 0;
    float sinks[16], slopes[16];
    for (size_t h = 0; h < c->Hq; h++)
        sinks[h] = 0.3f * (float)h - 0.5f;
    ref_alibi_slopes(c->Hq, slopes);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.causal = c->causal;
    ref_softmax_opts o;
    memset(&o, 0, sizeof o);
    o.causal = c->causal;
    o.key_lengths = c->lengths ? kl : NULL;
    o.Dv = Dv;
    cl_mem bs = NULL;
    if (c->opts) {
        d.window_left = 9;
        d.window_right = 3;
        d.alibi = 1;
        d.softcap = 2.5f;
        d.position_offset = -2;
        d.scale = 0.3f;
        bs = tu_buffer(ctxs[0], c->Hq * 4, sinks);
        d.sinks = bs;
        o.window = 1;
        o.window_left = 9;
        o.window_right = 3;
        o.alibi_slopes = slopes;
        o.softcap = 2.5;
        o.position_offset = -2;
        o.scale = 0.3;
        o.sinks = sinks;
    }
    if (c->po) {
        d.position_offset = c->po;
        o.position_offset = c->po;
    }
    ref_softmax_ex(q, k, v, ro, rl, c->B, c->Hq, c->Hk, c->Nq, c->Nk, D, &o);
    if (weights)
        assert_int_equal(clattn_group_set_weights(g, weights, clattn_group_size(g)),
                         CLATTN_SUCCESS);
    size_t qs[4] = {c->B, c->Hq, c->Nq, D}, ks[4] = {c->B, c->Hk, c->Nk, D};
    size_t vs[4] = {c->B, c->Hk, c->Nk, Dv};
    int no_lse = c->split == CLATTN_GROUP_SPLIT_AUTO; /* lse NULL in the "auto" case */
    clattn_status st = clattn_group_softmax_host(g, &d, c->split, qs, ks, vs, q, k, v,
                                                 c->lengths ? kl : NULL, out, no_lse ? NULL : lse);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", c->name, clattn_group_last_error(g));
    char what[160];
    clattn_group_run_info info;
    assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
    if (c->split != CLATTN_GROUP_SPLIT_AUTO)
        assert_int_equal(info.split, c->split);
    snprintf(what, sizeof what, "%s out (%zu devices, %zu parts)", c->name,
             clattn_group_size(g), info.parts);
    tu_check_close(out, ro, no, TU_TOL_FP32, what);
    /* lse: -inf rows must match exactly; untouched (NaN) when not asked for */
    for (size_t i = 0; i < nl && no_lse; i++)
        assert_true(isnan(lse[i]));
    for (size_t i = 0; i < nl && !no_lse; i++)
        if (isinf(rl[i]) || isinf(lse[i]))
            assert_true(lse[i] == rl[i]);
        else
            assert_true(fabs(lse[i] - rl[i]) <= 1e-4 + 1e-4 * fabs(rl[i]));
    if (bs)
        clReleaseMemObject(bs);
    free(q), free(k), free(v), free(out), free(lse), free(ro), free(rl);
}

static const sm_case sm_cases[] = {
    {"non-causal keys", 1, 2, 2, 37, 53, 0, 0, 0, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
    {"causal gqa keys", 1, 4, 2, 45, 45, 0, 1, 0, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
    {"causal cross lengths keys", 2, 2, 1, 20, 50, 0, 1, 1, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
    {"decode N=1 keys", 2, 2, 2, 1, 41, 0, 1, 2, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
    {"options keys", 1, 3, 1, 29, 47, 0, 1, 1, CLATTN_GROUP_SPLIT_KEYS, 1, 0},
    {"causal heads", 2, 4, 2, 30, 40, 0, 1, 1, CLATTN_GROUP_SPLIT_HEADS, 0, 0},
    {"options heads (Hk 1)", 3, 2, 1, 17, 33, 0, 1, 0, CLATTN_GROUP_SPLIT_HEADS, 1, 0},
    {"auto", 2, 4, 4, 9, 12, 0, 0, 0, CLATTN_GROUP_SPLIT_AUTO, 0, 0},
    {"causal Nq > Nk", 1, 2, 2, 30, 20, 0, 1, 0, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
    {"no key visible", 1, 2, 2, 8, 16, 0, 1, 0, CLATTN_GROUP_SPLIT_KEYS, 0, -40},
    {"shifted causal", 1, 2, 2, 13, 26, 0, 1, 0, CLATTN_GROUP_SPLIT_KEYS, 0, -9},
    {"one key", 2, 2, 1, 5, 1, 0, 0, 0, CLATTN_GROUP_SPLIT_KEYS, 0, 0},
};

static void test_softmax_groups(void **state)
{
    (void)state;
    for (size_t n = 1; n <= ndev; n++) {
        clattn_group *g = make_group(ctxs, n);
        for (size_t i = 0; i < sizeof sm_cases / sizeof sm_cases[0]; i++)
            run_sm(g, &sm_cases[i], NULL);
        clattn_group_destroy(g);
    }
}

/* Two contexts on one cl_context (no host staging), then the device list after them. */
static void test_softmax_shared_context(void **state)
{
    (void)state;
    clattn_context *c[MAXDEV + 1] = {ctxs[0], shared2};
    for (size_t r = 1; r < ndev; r++)
        c[r + 1] = ctxs[r];
    assert_true(clattn__group_same_cl(c[0], c[1]));
    clattn_group *g = make_group(c, ndev + 1);
    run_sm(g, &sm_cases[1], NULL);
    run_sm(g, &sm_cases[4], NULL);
    clattn_group_destroy(g);
}

/* Very uneven weights: a device gets no key, or a single one; causal balance. */
static void test_softmax_uneven(void **state)
{
    (void)state;
    if (ndev < 2)
        skip();
    clattn_group *g = make_group(ctxs, ndev);
    double w0[MAXDEV] = {0.0, 1.0, 1.0, 1.0};
    run_sm(g, &sm_cases[1], w0);
    clattn_group_run_info info;
    assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
    assert_int_equal(info.share[0], 0);
    /* About 1/45 of the pairs for device 1 (causal: one of the last keys, seen by few rows, or
     * one of the first keys, seen by all). */
    double w1[MAXDEV] = {1000.0, 0.02, 1000.0, 1000.0};
    run_sm(g, &sm_cases[0], w1);
    assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
    assert_true(info.share[1] <= 1);
    /* Causal: equal weights give early (much seen) slices fewer keys than late ones. */
    double we[MAXDEV] = {1.0, 1.0, 1.0, 1.0};
    run_sm(g, &sm_cases[1], we);
    assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
    assert_true(info.share[0] < info.share[ndev - 1]);
    /* Keys no query sees (shifted causal: rows see keys <= i + 4, so 17 of 26) are not run. */
    run_sm(g, &sm_cases[10], we);
    assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
    size_t keys = 0;
    for (size_t r = 0; r < ndev; r++) {
        keys += info.share[r];
        assert_true(info.share[r] == 0 || info.share_start[r] + info.share[r] <= 17);
    }
    assert_int_equal(keys, 17);
    clattn_group_destroy(g);
}

static void lin_expand(const float *x, float *y, size_t B, size_t Hk, size_t G, size_t N, size_t W)
{
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < Hk * G; h++)
            memcpy(y + ((b * Hk * G + h) * N) * W, x + ((b * Hk + h / G) * N) * W,
                   N * W * sizeof *y);
}

static void run_lin(clattn_group *g, int fmap, int causal, size_t B, size_t Hq, size_t Hk,
                    size_t Nq, size_t Nk, clattn_group_split split)
{
    size_t Dv = 12, G = Hq / Hk;
    uint64_t seed = 99 + Nq;
    float *q = tu_random(B * Hq * Nq * D, 1.0f, &seed), *k = tu_random(B * Hk * Nk * D, 1.0f, &seed);
    float *v = tu_random(B * Hk * Nk * Dv, 1.0f, &seed);
    float *ke = malloc(B * Hq * Nk * D * 4), *ve = malloc(B * Hq * Nk * Dv * 4);
    lin_expand(k, ke, B, Hk, G, Nk, D);
    lin_expand(v, ve, B, Hk, G, Nk, Dv);
    size_t no = B * Hq * Nq * Dv;
    float *out = tu_poisoned(no), *ro = malloc(no * 4);
    ref_linear_attention(q, ke, ve, ro, B, Hq, Nq, Nk, D, Dv, fmap, 1e-6, causal);
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = (clattn_linear_feature_map)fmap;
    d.causal = causal;
    size_t qs[4] = {B, Hq, Nq, D}, ks[4] = {B, Hk, Nk, D}, vs[4] = {B, Hk, Nk, Dv};
    clattn_status st = clattn_group_linear_host(g, &d, split, qs, ks, vs, q, k, v, out);
    if (st != CLATTN_SUCCESS)
        fail_msg("linear: %s", clattn_group_last_error(g));
    char what[128];
    snprintf(what, sizeof what, "linear fmap %d causal %d split %d (%zu devices)", fmap, causal,
             (int)split, clattn_group_size(g));
    tu_check_close(out, ro, no, TU_TOL_FP32, what);
    if (causal) { /* the single-device causal form */
        float *one = tu_poisoned(no);
        assert_int_equal(clattn_linear_host(ctxs[0], &d, qs, ks, vs, q, k, v, one),
                         CLATTN_SUCCESS);
        tu_check_close(out, one, no, TU_TOL_FP32, "linear vs single device");
        free(one);
    }
    free(q), free(k), free(v), free(ke), free(ve), free(out), free(ro);
}

static void test_linear_groups(void **state)
{
    (void)state;
    for (size_t n = 1; n <= ndev; n++) {
        clattn_group *g = make_group(ctxs, n);
        run_lin(g, 0, 1, 1, 4, 2, 43, 43, CLATTN_GROUP_SPLIT_KEYS);
        run_lin(g, 1, 0, 2, 2, 2, 19, 31, CLATTN_GROUP_SPLIT_KEYS);
        run_lin(g, 0, 0, 1, 2, 1, 23, 23, CLATTN_GROUP_SPLIT_KEYS);
        run_lin(g, 0, 1, 2, 2, 2, 21, 21, CLATTN_GROUP_SPLIT_HEADS);
        clattn_group_destroy(g);
    }
    if (ndev >= 2) {
        /* Momentum (states that do not add): AUTO takes HEADS, equal to one device's result. */
        clattn_group *g = make_group(ctxs, 2);
        size_t B = 2, H = 2, N = 19, Dv = 12;
        uint64_t seed = 31;
        float *q = tu_random(B * H * N * D, 1.0f, &seed), *k = tu_random(B * H * N * D, 1.0f, &seed);
        float *v = tu_random(B * H * N * Dv, 1.0f, &seed);
        float *out = tu_poisoned(B * H * N * Dv), *one = tu_poisoned(B * H * N * Dv);
        clattn_linear_desc d;
        clattn_linear_desc_init(&d);
        d.causal = 1;
        d.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
        d.mu = 0.6f;
        d.step_size = 0.8f;
        size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
        if (clattn_group_linear_host(g, &d, CLATTN_GROUP_SPLIT_AUTO, qs, qs, vs, q, k, v, out) !=
            CLATTN_SUCCESS)
            fail_msg("momentum: %s", clattn_group_last_error(g));
        clattn_group_run_info info;
        assert_int_equal(clattn_group_get_run_info(g, &info), CLATTN_SUCCESS);
        assert_int_equal(info.split, CLATTN_GROUP_SPLIT_HEADS);
        assert_int_equal(clattn_linear_host(ctxs[0], &d, qs, qs, vs, q, k, v, one), CLATTN_SUCCESS);
        tu_check_close(out, one, B * H * N * Dv, TU_TOL_FP32, "momentum group vs one device");
        free(q), free(k), free(v), free(out), free(one);
        clattn_group_destroy(g);
    }
    if (ndev >= 2) { /* a device with no work and one with a single position */
        clattn_group *g = make_group(ctxs, ndev);
        double w[MAXDEV] = {1.0, 0.0, 1.0, 1.0};
        assert_int_equal(clattn_group_set_weights(g, w, ndev), CLATTN_SUCCESS);
        run_lin(g, 0, 1, 1, 2, 2, 17, 17, CLATTN_GROUP_SPLIT_KEYS);
        double w1[MAXDEV] = {1.0, 1000.0, 0.0, 0.0};
        assert_int_equal(clattn_group_set_weights(g, w1, ndev), CLATTN_SUCCESS);
        run_lin(g, 1, 0, 1, 2, 2, 17, 17, CLATTN_GROUP_SPLIT_KEYS);
        clattn_group_destroy(g);
    }
}

/* Refusals and device failures: a status, a message, outputs untouched. */
static void test_group_errors(void **state)
{
    (void)state;
    clattn_group *g = make_group(ctxs, ndev);
    size_t qs[4] = {1, 2, 9, D}, ks[4] = {1, 2, 11, D};
    uint64_t seed = 5;
    float *q = tu_random(2 * 9 * D, 1.0f, &seed), *k = tu_random(2 * 11 * D, 1.0f, &seed);
    float *v = tu_random(2 * 11 * D, 1.0f, &seed);
    float *out = tu_poisoned(2 * 9 * D), *lse = tu_poisoned(2 * 9);
    tu_watch w;
    tu_watch_init(&w, NULL);
    tu_watch_host(&w, out, 2 * 9 * D * 4, "out");
    tu_watch_host(&w, lse, 2 * 9 * 4, "lse");
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    /* a per-(i, j) tensor of one context */
    cl_mem bias = tu_buffer(ctxs[0], 9 * 11 * 4, NULL);
    d.bias = clattn_tensor_make(bias, 1, 1, 9, 11);
    assert_int_equal(clattn_group_softmax_host(g, &d, CLATTN_GROUP_SPLIT_AUTO, qs, ks, ks, q, k, v,
                                               NULL, out, lse),
                     CLATTN_UNSUPPORTED);
    assert_non_null(strstr(clattn_group_last_error(g), "bias"));
    clReleaseMemObject(bias);
    clattn_softmax_desc_init(&d);
    int32_t kl[1] = {12};
    assert_int_equal(clattn_group_softmax_host(g, &d, CLATTN_GROUP_SPLIT_AUTO, qs, ks, ks, q, k, v,
                                               kl, out, lse),
                     CLATTN_INVALID_ARGUMENT);
    d.alibi = 1;
    assert_int_equal(clattn_group_softmax_host(g, &d, CLATTN_GROUP_SPLIT_HEADS, qs, ks, ks, q, k,
                                               v, NULL, out, lse),
                     CLATTN_UNSUPPORTED);
    d.alibi = 0;
    size_t huge[4] = {SIZE_MAX / 8, 2, 11, D};
    assert_int_equal(clattn_group_softmax_host(g, &d, CLATTN_GROUP_SPLIT_AUTO, huge, huge, huge, q,
                                               k, v, NULL, out, lse),
                     CLATTN_SIZE_OVERFLOW);
    size_t bad[4] = {1, 2, 11, D + 1};
    assert_int_equal(clattn_group_softmax_host(g, &d, CLATTN_GROUP_SPLIT_AUTO, qs, bad, bad, q, k,
                                               v, NULL, out, lse),
                     CLATTN_SHAPE_MISMATCH);
    /* an injected failure on the last device, after its work was enqueued, in both splits */
    for (int s = 1; s <= 2; s++) {
        clattn__group_inject_failure(g, ndev - 1, CLATTN_OUT_OF_HOST_MEMORY);
        clattn_status st = clattn_group_softmax_host(g, &d, (clattn_group_split)s, qs, ks, ks, q,
                                                     k, v, NULL, out, lse);
        assert_int_equal(st, CLATTN_OUT_OF_HOST_MEMORY);
        char want[32];
        snprintf(want, sizeof want, "device %zu (", ndev - 1);
        assert_non_null(strstr(clattn_group_last_error(g), want));
    }
    clattn_linear_desc ld;
    clattn_linear_desc_init(&ld);
    ld.causal = 1;
    ld.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
    ld.mu = 0.5f;
    size_t lq[4] = {1, 2, 9, D};
    assert_int_equal(clattn_group_linear_host(g, &ld, CLATTN_GROUP_SPLIT_KEYS, lq, lq, lq, q, k, v,
                                              out),
                     CLATTN_UNSUPPORTED);
    ld.momentum = CLATTN_LINEAR_MOMENTUM_NONE;
    clattn__group_inject_failure(g, ndev - 1, CLATTN_OUT_OF_HOST_MEMORY);
    assert_int_equal(clattn_group_linear_host(g, &ld, CLATTN_GROUP_SPLIT_KEYS, lq, lq, lq, q, k, v,
                                              out),
                     CLATTN_OUT_OF_HOST_MEMORY);
    tu_watch_check(&w, "refused group calls");
    tu_watch_free(&w);
    /* weights */
    double wbad[MAXDEV] = {-1.0, 1.0, 1.0, 1.0}, wz[MAXDEV] = {0};
    assert_int_equal(clattn_group_set_weights(g, wbad, ndev), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_set_weights(g, wz, ndev), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_set_weights(g, wz, ndev + 1), CLATTN_INVALID_ARGUMENT);
    clattn_group_destroy(g);
    clattn_group *g2 = NULL;
    clattn_context *rep[2] = {ctxs[0], ctxs[0]};
    assert_int_equal(clattn_group_create(rep, 2, NULL, &g2), CLATTN_INVALID_ARGUMENT);
    assert_null(g2);
    assert_int_equal(clattn_group_create(ctxs, 0, NULL, &g2), CLATTN_INVALID_ARGUMENT);
    free(q), free(k), free(v), free(out), free(lse);
}

/* Weights from the tuning databases: contexts made with a private CLATTN_CACHE_DIR, whose
 * databases get one softmax entry each for the same shape class (tuned 1 ms and 3 ms): weights
 * 0.75 / 0.25 from the database, no calibration. No kernel runs. */
static void test_group_weights_db(void **state)
{
    (void)state;
    if (ndev < 2)
        skip();
    char dir[] = "/tmp/clattn_group_dbXXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *old = getenv("CLATTN_CACHE_DIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("CLATTN_CACHE_DIR", dir, 1);
    clattn_context *c[2] = {NULL, NULL};
    char path[2][512];
    for (int i = 0; i < 2; i++) {
        clattn_device_info info;
        assert_int_equal(clattn_context_get_device_info(ctxs[i], &info), CLATTN_SUCCESS);
        char sel[32];
        snprintf(sel, sizeof sel, "%u:%u", info.platform_index, info.device_index);
        assert_int_equal(clattn_context_create(sel, &c[i]), CLATTN_SUCCESS);
        assert_int_equal(clattn_tuning_db_path(c[i], path[i], sizeof path[i]), CLATTN_SUCCESS);
        clattn_tuning_entry e;
        clattn__tune_key(&e, CLATTN_OP_SOFTMAX, "cpu", 64, 64, 1024, 1024, 0);
        e.default_ms = e.tuned_ms = i == 0 ? 1.0 : 3.0;
        assert_true(clattn__tune_param_set(&e, "rows", 4)); /* entries carry a launch */
        char warn[256];
        assert_int_equal(clattn__tune_db_store(path[i], clattn__tune_device_hash(&info), &e, 1,
                                               warn, sizeof warn),
                         CLATTN_SUCCESS);
    }
    if (saved) {
        setenv("CLATTN_CACHE_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("CLATTN_CACHE_DIR");
    }
    clattn_group *g = NULL;
    assert_int_equal(clattn_group_create(c, 2, NULL, &g), CLATTN_SUCCESS);
    double w[2];
    clattn_group_weights src;
    assert_int_equal(clattn_group_get_weights(g, w, 2, &src), CLATTN_SUCCESS);
    assert_int_equal(src, CLATTN_GROUP_WEIGHTS_TUNING_DB);
    assert_true(fabs(w[0] - 0.75) < 1e-12 && fabs(w[1] - 0.25) < 1e-12);
    clattn_group_destroy(g);
    for (int i = 0; i < 2; i++) {
        clattn_context_destroy(c[i]);
        remove(path[i]);
        char lock[1100];
        snprintf(lock, sizeof lock, "%s.lock", path[i]);
        remove(lock);
    }
    rmdir(dir);
}

/* Device tensors on the first context (offset views), against the reference; refusals leave
 * out untouched. */
static void test_softmax_tensors(void **state)
{
    (void)state;
    const size_t B = 1, Hq = 2, Hk = 1, Nq = 21, Nk = 34, off = 5;
    size_t nq = B * Hq * Nq * D, nk = B * Hk * Nk * D, nl = B * Hq * Nq;
    uint64_t seed = 77;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nk, 1.0f, &seed);
    float *ro = malloc(nq * 4), *rl = malloc(nl * 4), *out = malloc(nq * 4), *lse = malloc(nl * 4);
    ref_softmax(q, k, v, ro, rl, B, Hq, Hk, Nq, Nk, D, 1.0 / sqrt((double)D), 1, NULL);
    float *pad = tu_poisoned(off + nq + nk);
    memcpy(pad + off, q, nq * 4);
    cl_mem bq = tu_buffer(ctxs[0], (off + nq) * 4, pad);
    memcpy(pad + off, k, nk * 4);
    cl_mem bk = tu_buffer(ctxs[0], (off + nk) * 4, pad);
    memcpy(pad + off, v, nk * 4);
    cl_mem bv = tu_buffer(ctxs[0], (off + nk) * 4, pad);
    cl_mem bo = tu_buffer(ctxs[0], (off + nq) * 4, NULL), bl = tu_buffer(ctxs[0], nl * 4, NULL);
    tu_poison_buffer(ctxs[0], bo, (off + nq) * 4);
    tu_poison_buffer(ctxs[0], bl, nl * 4);
    clattn_tensor tq = clattn_tensor_make(bq, B, Hq, Nq, D), tk = clattn_tensor_make(bk, B, Hk, Nk, D);
    clattn_tensor tv = clattn_tensor_make(bv, B, Hk, Nk, D), to = clattn_tensor_make(bo, B, Hq, Nq, D);
    clattn_tensor tl = clattn_tensor_make(bl, B, Hq, Nq, 1);
    tq.offset = tk.offset = tv.offset = to.offset = off;
    clattn_group *g = make_group(ctxs, ndev);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.causal = 1;
    clattn_status st = clattn_group_softmax_tensors(g, &d, CLATTN_GROUP_SPLIT_KEYS, &tq, &tk, &tv,
                                                    NULL, &to, &tl);
    if (st != CLATTN_SUCCESS)
        fail_msg("tensors: %s", clattn_group_last_error(g));
    float *got = malloc((off + nq) * 4);
    tu_read(ctxs[0], bo, (off + nq) * 4, got);
    tu_check_close(got + off, ro, nq, TU_TOL_FP32, "group tensors out");
    for (size_t i = 0; i < off; i++)
        assert_true(isnan(got[i])); /* nothing before the view */
    tu_read(ctxs[0], bl, nl * 4, lse);
    tu_check_close(lse, rl, nl, TU_TOL_FP32, "group tensors lse");
    /* refusals: out aliasing q; out of another context */
    tu_watch w;
    tu_watch_init(&w, ctxs[0]);
    tu_watch_buffer(&w, bo, (off + nq) * 4, "out");
    clattn_tensor alias = tq;
    assert_int_equal(clattn_group_softmax_tensors(g, &d, CLATTN_GROUP_SPLIT_AUTO, &tq, &tk, &tv,
                                                  NULL, &alias, NULL),
                     CLATTN_ALIASING);
    if (ndev > 1 && !clattn__group_same_cl(ctxs[0], ctxs[1])) {
        cl_mem other = tu_buffer(ctxs[1], nq * 4, NULL);
        clattn_tensor tother = clattn_tensor_make(other, B, Hq, Nq, D);
        assert_int_equal(clattn_group_softmax_tensors(g, &d, CLATTN_GROUP_SPLIT_AUTO, &tq, &tk,
                                                      &tv, NULL, &tother, NULL),
                         CLATTN_INVALID_CONTEXT);
        clReleaseMemObject(other);
    }
    tu_watch_check(&w, "refused tensor calls");
    tu_watch_free(&w);
    clattn_group_destroy(g);
    cl_mem ms[5] = {bq, bk, bv, bo, bl};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(ms[i]);
    free(q), free(k), free(v), free(ro), free(rl), free(out), free(lse), free(pad), free(got);
}

/* Calibration: positive weights summing to 1, source CALIBRATE. On the first and last devices
 * (PoCL's pthread and basic in both ctest entries: llvmpipe's calibration block alone takes
 * seconds on a loaded machine). */
static void test_group_calibrate(void **state)
{
    (void)state;
    clattn_group_options o;
    clattn_group_options_init(&o);
    o.weights = CLATTN_GROUP_WEIGHTS_CALIBRATE;
    clattn_group *g = NULL;
    clattn_context *two[2] = {ctxs[0], ctxs[ndev - 1]};
    size_t n = ndev > 1 ? 2 : 1;
    assert_int_equal(clattn_group_create(two, n, &o, &g), CLATTN_SUCCESS);
    double w[MAXDEV];
    clattn_group_weights src;
    assert_int_equal(clattn_group_get_weights(g, w, MAXDEV, &src), CLATTN_SUCCESS);
    double sum = 0.0;
    for (size_t r = 0; r < n; r++) {
        assert_true(w[r] > 0.0);
        sum += w[r];
    }
    assert_true(fabs(sum - 1.0) < 1e-12);
    assert_int_equal(src, n > 1 ? CLATTN_GROUP_WEIGHTS_CALIBRATE : CLATTN_GROUP_WEIGHTS_EQUAL);
    clattn_group_destroy(g);
}

int main(void)
{
    const char *list = getenv("CLATTN_GROUP_DEVICES");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list && *list ? list : "");
    for (char *tok = strtok(buf, ","); tok && ndev < MAXDEV; tok = strtok(NULL, ",")) {
        if (clattn_context_create(tok, &ctxs[ndev]) != CLATTN_SUCCESS) {
            fprintf(stderr, "test_group: no device '%s': %s\n", tok,
                    clattn_context_last_error(NULL));
            return 1;
        }
        ndev++;
    }
    if (ndev == 0 && clattn_context_create(NULL, &ctxs[ndev++]) != CLATTN_SUCCESS) {
        fprintf(stderr, "test_group: no device\n");
        return 1;
    }
    cl_int err;
    cl_command_queue q2 = clCreateCommandQueue(clattn_context_get_cl_context(ctxs[0]),
                                               clattn_context_get_cl_device(ctxs[0]), 0, &err);
    if (err != CL_SUCCESS ||
        clattn_context_create_from_cl(clattn_context_get_cl_context(ctxs[0]),
                                      clattn_context_get_cl_device(ctxs[0]), q2,
                                      &shared2) != CLATTN_SUCCESS) {
        fprintf(stderr, "test_group: no shared context\n");
        return 1;
    }
    clReleaseCommandQueue(q2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_groups),     cmocka_unit_test(test_softmax_shared_context),
        cmocka_unit_test(test_softmax_uneven),     cmocka_unit_test(test_linear_groups),
        cmocka_unit_test(test_group_errors),       cmocka_unit_test(test_group_calibrate),
        cmocka_unit_test(test_softmax_tensors),    cmocka_unit_test(test_group_weights_db),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (size_t r = 0; r < ndev; r++) { /* the programs each device built or loaded */
        clattn_context_stats cs;
        if (clattn_context_get_stats(ctxs[r], &cs) == CLATTN_SUCCESS)
            printf("device %zu: %u programs built, %u loaded from the cache\n", r,
                   cs.source_builds, cs.disk_loads);
    }
    clattn_context_destroy(shared2);
    for (size_t r = 0; r < ndev; r++)
        clattn_context_destroy(ctxs[r]);
    return rc;
}
