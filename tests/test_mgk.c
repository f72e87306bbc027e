/* Softmax MGK (include/clattn/mgk.h) against the fp64 reference (tests/reference/ref_mgk.c) on the
 * device chosen by CLATTN_DEVICE: both tiled families forced and the scheduler's choice, random
 * inputs (never zero), poisoned outputs, lengths that are not tile multiples, N = 1, per-component
 * sigmas, causal with Nq != Nk, key lengths, large logits, rows with no weight, broadcast pi, and
 * R = 1 against clattn's own softmax attention (keys of one norm: equal up to the scale 1/sigma^2,
 * and the lse up to log pi - (|q|^2 + |k|^2) / (2 sigma^2)). No kernel is created and no program
 * looked up across enqueues of a baked plan.
 * Tolerance: TU_TOL_FP32 (1e-4 + 1e-4 |ref| per element, normalised error 1e-5) unless a case
 * states otherwise. */
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
#include "test_util.h"
#include "reference/ref_mgk.h"

static clattn_context *ctx;

typedef struct mcase {
    size_t B, H, R, Nq, Nk, D;
    int causal;
    int key_lengths;  /* 1: per batch {0, Nk, random ...} */
    float amp;        /* q and k uniform in [-amp, amp] */
    float sigma[3];   /* 0: default */
    clattn_mgk_algo algo;
    int zero_pi_head; /* 1: pi of head H - 1 all zero (rows with no weight) */
    tu_tol tol;       /* {0}: TU_TOL_FP32 */
} mcase;

static void run_case(const mcase *c)
{
    uint64_t seed = 0x5eed0000ull + c->Nq * 131 + c->Nk * 17 + c->D * 7 + c->R;
    size_t nq = c->B * c->H * c->Nq * c->D, nk = c->B * c->H * c->R * c->Nk * c->D;
    size_t nv = c->B * c->H * c->Nk * c->D, np = c->H * c->R * c->Nk, nl = c->B * c->H * c->Nq;
    float amp = c->amp > 0 ? c->amp : 1.0f;
    float *q = tu_random(nq, amp, &seed), *k = tu_random(nk, amp, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *pi = tu_random(np, 0.5f, &seed);
    for (size_t i = 0; i < np; i++) /* in (0.5, 1], or 0 for the zero head */
        pi[i] = c->zero_pi_head && i >= (c->H - 1) * c->R * c->Nk ? 0.0f : 0.5f + fabsf(pi[i]);
    float *out = tu_poisoned(nq), *lse = tu_poisoned(nl);
    double *ref = malloc(nq * sizeof *ref), *ref_lse = malloc(nl * sizeof *ref_lse);
    int32_t *kl = calloc(c->B, sizeof *kl);
    assert_true(ref && ref_lse && kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b == 0 ? 0 : b == 1 ? c->Nk : (seed >> 11) % (c->Nk + 1));
    double sig2[3];
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    for (size_t r = 0; r < c->R; r++) {
        desc.sigma[r] = c->sigma[r];
        double s = c->sigma[r] > 0 ? c->sigma[r] : pow((double)c->D, 0.25);
        sig2[r] = s * s;
    }
    desc.causal = c->causal;
    desc.algorithm = c->algo;
    ref_mgk_softmax(q, k, v, pi, ref, ref_lse, c->B, c->H, c->R, c->Nq, c->Nk, c->D, sig2,
                    c->causal, c->key_lengths ? kl : NULL);

    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
    cl_mem bv = tu_buffer(ctx, nv * 4, v), bp = tu_buffer(ctx, np * 4, pi);
    cl_mem bo = tu_buffer(ctx, nq * 4, out), bl = tu_buffer(ctx, nl * 4, lse);
    cl_mem bkl = tu_buffer(ctx, c->B * sizeof(int32_t), kl);
    if (c->key_lengths)
        desc.key_lengths = bkl;
    size_t qs[4] = {c->B, c->H, c->Nq, c->D}, ks[4] = {c->B, c->H * c->R, c->Nk, c->D};
    clattn_plan *plan = NULL;
    clattn_status st = clattn_mgk_plan_create(ctx, &desc, qs, ks, &plan);
    if (st != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_tensor tq = clattn_tensor_make(bq, c->B, c->H, c->Nq, c->D);
    clattn_tensor tk = clattn_tensor_make(bk, c->B, c->H * c->R, c->Nk, c->D);
    clattn_tensor tv = clattn_tensor_make(bv, c->B, c->H, c->Nk, c->D);
    clattn_tensor tp = clattn_tensor_make(bp, 1, c->H, c->R, c->Nk);
    clattn_tensor to = clattn_tensor_make(bo, c->B, c->H, c->Nq, c->D);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->H, c->Nq, 1);
    clattn_context_stats s0, s1;
    for (int rep = 0; rep < 2; rep++) {
        if (rep == 1)
            assert_int_equal(clattn_context_get_stats(ctx, &s0), CLATTN_SUCCESS);
        tu_poison_buffer(ctx, bo, nq * 4);
        tu_poison_buffer(ctx, bl, nl * 4);
        st = clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, &tl, 0, NULL, NULL);
        if (st != CLATTN_SUCCESS)
            fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    }
    assert_int_equal(clattn_context_get_stats(ctx, &s1), CLATTN_SUCCESS);
    assert_int_equal(s1.kernels_created, s0.kernels_created);
    assert_int_equal(s1.program_lookups, s0.program_lookups);
    tu_read(ctx, bo, nq * 4, out);
    tu_read(ctx, bl, nl * 4, lse);
    tu_tol tol = c->tol.atol > 0 ? c->tol : TU_TOL_FP32;
    tu_check_close_d(out, ref, nq, tol, "mgk out");
    tu_check_close_d(lse, ref_lse, nl, tol, "mgk lse");
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    assert_int_equal(info.op, CLATTN_OP_MGK);
    if (c->algo != CLATTN_MGK_AUTO)
        assert_int_equal(info.algorithm, c->algo);
    clattn_plan_destroy(plan);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bp);
    clReleaseMemObject(bo);
    clReleaseMemObject(bl);
    clReleaseMemObject(bkl);
    free(q), free(k), free(v), free(pi), free(out), free(lse), free(ref), free(ref_lse), free(kl);
}

static const clattn_mgk_algo algos[] = {CLATTN_MGK_AUTO, CLATTN_MGK_TILED_CPU,
                                        CLATTN_MGK_TILED_GPU};

/* Every family for R = 2 (the paper's); other R with the scheduler's choice only, to keep the
 * number of program builds (one per family, D and R) small on a cold cache. */
static void run_all_algos(mcase c)
{
    for (size_t a = 0; a < (c.R == 2 ? 3u : 1u); a++) {
        c.algo = algos[a];
        run_case(&c);
    }
}

static void test_random_r2(void **st)
{
    (void)st;
    run_all_algos((mcase){.B = 2, .H = 2, .R = 2, .Nq = 37, .Nk = 37, .D = 20});
    run_all_algos((mcase){.B = 1, .H = 3, .R = 2, .Nq = 70, .Nk = 70, .D = 20, .causal = 1});
}

/* The authors' trained form: sigma_2^2 = sigma_1^2 / 3, so |q|^2 does not cancel. */
static void test_per_component_sigma(void **st)
{
    (void)st;
    float s1 = powf(20.0f, 0.25f);
    run_all_algos((mcase){.B = 2, .H = 2, .R = 2, .Nq = 20, .Nk = 45, .D = 20, .causal = 1,
                          .sigma = {s1, s1 / sqrtf(3.0f)}});
    run_all_algos((mcase){.B = 3, .H = 1, .R = 3, .Nq = 33, .Nk = 19, .D = 20, .key_lengths = 1,
                          .sigma = {0.9f, 1.7f, 2.5f}});
}

static void test_tiny_and_empty(void **st)
{
    (void)st;
    run_all_algos((mcase){.B = 1, .H = 1, .R = 2, .Nq = 1, .Nk = 1, .D = 20});
    run_all_algos((mcase){.B = 1, .H = 2, .R = 1, .Nq = 3, .Nk = 1, .D = 20, .causal = 1});
    /* head 1 has pi = 0 everywhere: out 0 and lse -inf on its rows */
    run_all_algos((mcase){.B = 2, .H = 2, .R = 2, .Nq = 18, .Nk = 18, .D = 20,
                          .zero_pi_head = 1});
}

/* Logits of order -100s: sharp weights, stable only with the running maximum over all terms. */
static void test_large_logits(void **st)
{
    (void)st;
    run_all_algos((mcase){.B = 1, .H = 2, .R = 2, .Nq = 29, .Nk = 41, .D = 20, .amp = 3.0f,
                          .sigma = {0.6f, 0.8f}, .tol = {2e-4, 2e-4, 2e-5}});
}

/* R = 1 with keys of one norm c and a constant pi: MGK = softmax attention at scale 1/sigma^2,
 * lse_mgk = lse_softmax + log pi - (|q|^2 + c^2) / (2 sigma^2). Compared with clattn's softmax. */
static void test_r1_is_softmax(void **st)
{
    (void)st;
    size_t B = 2, H = 2, N = 40, D = 20;
    uint64_t seed = 77;
    float sigma = 1.3f, c = 2.0f, p = 0.7f;
    size_t n = B * H * N * D, nl = B * H * N;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed), *pi = malloc(H * N * sizeof *pi);
    for (size_t j = 0; j < B * H * N; j++) {
        double nn = 0;
        for (size_t d = 0; d < D; d++)
            nn += (double)k[j * D + d] * k[j * D + d];
        for (size_t d = 0; d < D; d++)
            k[j * D + d] = (float)(k[j * D + d] * c / sqrt(nn));
    }
    for (size_t j = 0; j < H * N; j++)
        pi[j] = p;
    float *o1 = tu_poisoned(n), *l1 = tu_poisoned(nl), *o2 = tu_poisoned(n), *l2 = tu_poisoned(nl);
    for (int causal = 0; causal <= 1; causal++) {
        clattn_mgk_desc md;
        clattn_mgk_desc_init(&md);
        md.sigma[0] = sigma;
        md.causal = causal;
        size_t qs[4] = {B, H, N, D};
        assert_int_equal(clattn_mgk_host(ctx, &md, qs, qs, q, k, v, pi, o1, l1), CLATTN_SUCCESS);
        clattn_softmax_desc sd;
        clattn_softmax_desc_init(&sd);
        sd.scale = 1.0f / (sigma * sigma);
        sd.causal = causal;
        assert_int_equal(clattn_softmax_host(ctx, &sd, qs, qs, qs, q, k, v, NULL, o2, l2),
                         CLATTN_SUCCESS);
        tu_check_close(o1, o2, n, TU_TOL_FP32, "mgk R=1 vs softmax out");
        for (size_t i = 0; i < nl; i++) {
            double qq = 0;
            for (size_t d = 0; d < D; d++)
                qq += (double)q[i * D + d] * q[i * D + d];
            double want = l2[i] + log(p) - (qq + c * c) / (2.0 * sigma * sigma);
            if (fabs(l1[i] - want) > 1e-4 + 1e-4 * fabs(want))
                fail_msg("lse row %zu: %g, want %g", i, (double)l1[i], want);
        }
    }
    free(q), free(k), free(v), free(pi), free(o1), free(l1), free(o2), free(l2);
}

/* pi as one value per component, broadcast with zero strides over heads and positions (the
 * authors' LRA form), against the reference with pi expanded. */
static void test_broadcast_pi(void **st)
{
    (void)st;
    size_t B = 1, H = 2, R = 2, N = 23, D = 20;
    uint64_t seed = 99;
    size_t nq = B * H * N * D, nk = nq * R;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nq, 1.0f, &seed), *out = tu_poisoned(nq);
    float pr[2] = {0.3f, 0.9f}, *pe = malloc(H * R * N * sizeof *pe);
    for (size_t h = 0; h < H; h++)
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < N; j++)
                pe[(h * R + r) * N + j] = pr[r];
    double *ref = malloc(nq * sizeof *ref), sig2[2] = {sqrt((double)D), sqrt((double)D)};
    ref_mgk_softmax(q, k, v, pe, ref, NULL, B, H, R, N, N, D, sig2, 0, NULL);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
    cl_mem bv = tu_buffer(ctx, nq * 4, v), bp = tu_buffer(ctx, sizeof pr, pr);
    cl_mem bo = tu_buffer(ctx, nq * 4, out);
    clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D), tv = clattn_tensor_make(bv, B, H, N, D);
    clattn_tensor tk = clattn_tensor_make(bk, B, H * R, N, D), to = clattn_tensor_make(bo, B, H, N, D);
    clattn_tensor tp = clattn_tensor_make(bp, 1, H, R, N);
    tp.strides[0] = tp.strides[1] = tp.strides[3] = 0;
    tp.strides[2] = 1;
    assert_int_equal(clattn_mgk_enqueue(ctx, NULL, &tq, &tk, &tv, &tp, &to, NULL, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    tu_read(ctx, bo, nq * 4, out);
    tu_check_close_d(out, ref, nq, TU_TOL_FP32, "mgk broadcast pi");
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv);
    clReleaseMemObject(bp), clReleaseMemObject(bo);
    free(q), free(k), free(v), free(out), free(pe), free(ref);
}

static int setup(void **st)
{
    (void)st;
    ctx = tu_context();
    return ctx ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_r2),    cmocka_unit_test(test_per_component_sigma),
        cmocka_unit_test(test_tiny_and_empty), cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_r1_is_softmax), cmocka_unit_test(test_broadcast_pi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
