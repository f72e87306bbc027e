/* Momentum linear attention (fixed heavy-ball and adaptive mu) against the fp64 reference, which
 * is itself checked first against hand-computed values and the closed form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear_fixture.h"
#include "reference/ref_linear.h"
#include "reference/ref_softmax.h"

/* The reference against itself and against hand-computed values, before any device result is
 * compared with it. */
static void test_ref_general(void **state)
{
    (void)state;
    /* Hand-computed: identity map, D = Dv = 1, q = 1, k = (1, 2, 1), v = (1, 1, 2).
     * Fixed mu = eta = 0.5: P = -0.5, -1.25, -1.625; S = 0.5, 1.75, 3.375; z = 1, 3, 4.
     * Adaptive eta = 1: P_1 = -U_1 = -1, S_1 = 1; mu_2 = (1 - sqrt(|2 - 1| / |1 - 0|))^2 = 0,
     * P_2 = -2, S_2 = 3; mu_3 = (1 - sqrt(|2 - 2| / |3 - 1|))^2 = 1 -> 0.9999,
     * P_3 = -1.9998 - 2, S_3 = 6.9998. */
    const float hq[3] = {1, 1, 1}, hk[3] = {1, 2, 1}, hv[3] = {1, 1, 2};
    const double fixed[3] = {0.5 / 1, 1.75 / 3, 3.375 / 4},
                 adapt[3] = {1.0 / 1, 3.0 / 3, 6.9998 / 4};
    double o[3], oc[3];
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 1, 0.5, 0.5);
    ref_linear_closed_form(hq, hk, hv, oc, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 0.5, 0.5);
    for (int i = 0; i < 3; i++) {
        assert_true(fabs(o[i] - fixed[i]) < 1e-14);
        assert_true(fabs(oc[i] - fixed[i]) < 1e-14);
    }
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 2, 0.0, 1.0);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(o[i] - adapt[i]) < 1e-14);
    /* Non-causal: every query reads the state after the last key. */
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 2, 3, 1, 1, 2, NULL, 0, 0.0, 0, 2, 0.0, 1.0);
    assert_true(fabs(o[0] - adapt[2]) < 1e-14 && fabs(o[1] - adapt[2]) < 1e-14);

    /* FAVOR with one feature and D = 1: phi(x) = exp(w x - x^2 / 2); one key, so out = v
     * whatever the stabilisers, up to eps. */
    const float w1[1] = {0.7f};
    float one[1] = {3.0f}, key[1] = {-2.0f}, val[1] = {0.25f};
    ref_linear_general_d(one, key, val, o, 1, 1, 1, 1, 1, 1, 3, w1, 1, 0.0, 1, 0, 0.0, 1.0);
    assert_true(fabs(o[0] - 0.25) < 1e-14);

    /* The element-wise maps agree with the original reference. */
    size_t B = 1, H = 2, N = 70, D = 8, Dv = 6, M = 24, no = B * H * N * Dv;
    uint64_t seed = 11;
    float *q = inputs(B * H * N * D, 1, &seed), *k = inputs(B * H * N * D, 1, &seed);
    float *v = inputs(B * H * N * Dv, 0, &seed), *a = malloc(no * 4), *b = malloc(no * 4);
    for (int f = 0; f < 3; f++)
        for (int causal = 0; causal < 2; causal++) {
            ref_linear_attention(q, k, v, a, B, H, N, N, D, Dv, f, 1e-6, causal);
            ref_linear_general(q, k, v, b, B, H, N, N, D, Dv, f, NULL, 0, 1e-6, causal, 0, 0, 1);
            double mr, e = ref_max_abs_diff(b, a, no, &mr);
            assert_true(e <= 1e-6 * fmax(1.0, mr));
        }
    /* Recurrence (running rescaling) against the closed form (none), in double, for fixed
     * momentum and for plain attention (mu 0, eta 1), with keys whose log-scales jump by
     * hundreds (so the running maximum rescales the state many times). */
    float *w = malloc(M * D * 4);
    ref_fill_uniform(w, M * D, 1.7f, &seed);
    for (size_t j = 0; j < N; j += 9)
        for (size_t d = 0; d < D; d++)
            k[j * D + d] *= (float)(1 + j % 5) * 10.0f;
    double *r1 = malloc(no * sizeof(double)), *r2 = malloc(no * sizeof(double));
    static const double mus[][2] = {{0.0, 1.0}, {0.9, 0.5}, {0.3, 2.0}};
    for (int f = 0; f < 4; f += 3)
        for (int causal = 0; causal < 2; causal++)
            for (int m = 0; m < 3; m++) {
                ref_linear_general_d(q, k, v, r1, B, H, N, N, D, Dv, f, w, M, 1e-6, causal,
                                     mus[m][0] == 0.0 && mus[m][1] == 1.0 ? 0 : 1, mus[m][0],
                                     mus[m][1]);
                ref_linear_closed_form(q, k, v, r2, B, H, N, N, D, Dv, f, w, M, 1e-6, causal,
                                       mus[m][0], mus[m][1]);
                double e = 0, mr = 0;
                for (size_t x = 0; x < no; x++) {
                    e = fmax(e, fabs(r1[x] - r2[x]));
                    mr = fmax(mr, fabs(r2[x]));
                }
                if (!(e <= 1e-10 * fmax(1.0, mr)))
                    fail_msg("closed form fmap %d causal %d mu %g: %.3e", f, causal, mus[m][0], e);
            }
    /* Momentum with mu = 0 and eta = 1 is plain linear attention. */
    ref_linear_general_d(q, k, v, r1, B, H, N, N, D, Dv, 3, w, M, 1e-6, 1, 1, 0.0, 1.0);
    ref_linear_general_d(q, k, v, r2, B, H, N, N, D, Dv, 3, w, M, 1e-6, 1, 0, 0.0, 1.0);
    for (size_t x = 0; x < no; x++)
        assert_true(fabs(r1[x] - r2[x]) <= 1e-12 * fmax(1.0, fabs(r2[x])));
    free(q);
    free(k);
    free(v);
    free(a);
    free(b);
    free(w);
    free(r1);
    free(r2);
}

/* Fixed momentum against the recurrence at every position (N = 200: three full 64-position
 * chunks and a partial one), non-causal, and the reference's recurrence against its closed form. */
static void test_momentum_fixed(void **state)
{
    (void)state;
    static const clattn_linear_feature_map maps[] = {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_FEATURE_RELU,
                                              CLATTN_LINEAR_FEATURE_IDENTITY, CLATTN_LINEAR_FEATURE_FAVOR};
    static const float mus[][2] = {{0.9f, 0.5f}, {0.5f, 1.0f}, {0.99f, 0.1f}};
    for (size_t f = 0; f < 4; f++)
        for (size_t m = 0; !light_skip(maps[f]) && m < (f == 0 || f == 3 ? 3 : 2); m++)
            for (int causal = 0; causal < 2; causal++) {
                float *w;
                clattn_linear_desc d = make_desc(maps[f], 32, m == 1, 21 + m, 16,
                                                 CLATTN_LINEAR_MOMENTUM_FIXED, mus[m][0], mus[m][1], &w);
                d.causal = causal;
                check_desc(&d, 1, 2, 200, 200, 16, 12, 1.0f, LIN_TOL, "fixed momentum");
                if (m == 0)
                    check_desc(&d, 2, 1, 1, 1, 16, 12, 1.0f, LIN_TOL, "fixed momentum N 1");
                if (!causal && m == 0)
                    check_desc(&d, 2, 1, 37, 150, 16, 12, 1.0f, LIN_TOL, "fixed momentum cross");
                free(w);
            }
}

/* mu = 0 and eta = 1 is plain linear attention (device against device); step size 0 means 1. */
static void test_momentum_limits(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 150, D = 16, Dv = 8, no = B * H * N * Dv;
    uint64_t seed = 31;
    float *q = inputs(B * H * N * D, 0, &seed), *k = inputs(B * H * N * D, 0, &seed);
    float *v = inputs(B * H * N * Dv, 0, &seed);
    static const clattn_linear_feature_map maps[] = {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_FEATURE_FAVOR};
    for (int f = llvmpipe ? 1 : 0; f < 2; f++)
        for (int causal = 0; causal < 2; causal++) {
            float *w;
            clattn_linear_desc plain =
                make_desc(maps[f], 64, 0, 5, D, CLATTN_LINEAR_MOMENTUM_NONE, 0, 0, &w);
            clattn_linear_desc mom = plain;
            plain.causal = mom.causal = causal;
            mom.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
            mom.mu = 0.0f;
            mom.step_size = 1.0f;
            float *a = device_linear(&plain, B, H, N, N, D, Dv, q, k, v);
            float *b = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
            tu_check_close(b, a, no, LIN_TOL, "mu 0 eta 1 vs plain");
            for (int adaptive = 0; causal && adaptive < 2; adaptive++) {
                mom.momentum = adaptive ? CLATTN_LINEAR_MOMENTUM_ADAPTIVE : CLATTN_LINEAR_MOMENTUM_FIXED;
                mom.mu = 0.7f;
                mom.step_size = 1.0f;
                float *c1 = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
                mom.step_size = 0.0f;
                float *c0 = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
                assert_memory_equal(c0, c1, no * 4);
                free(c0);
                free(c1);
            }
            free(a);
            free(b);
        }
    free(q);
    free(k);
    free(v);
}

/* Adaptive momentum (sequential scan) against the reference, causal and non-causal. */
static void test_momentum_adaptive(void **state)
{
    (void)state;
    static const clattn_linear_feature_map maps[] = {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_FEATURE_RELU,
                                              CLATTN_LINEAR_FEATURE_IDENTITY, CLATTN_LINEAR_FEATURE_FAVOR};
    static const float etas[] = {1.0f, 0.3f};
    for (size_t f = 0; f < 4; f++)
        for (size_t e = 0; !light_skip(maps[f]) && e < 2; e++)
            for (int causal = 0; causal < 2; causal++) {
                float *w;
                clattn_linear_desc d =
                    make_desc(maps[f], 32, e, 40 + e, 16, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 0, etas[e], &w);
                d.causal = causal;
                check_desc(&d, 2, 2, 200, 200, 16, 8, 1.0f, LIN_TOL, "adaptive momentum");
                if (e == 0)
                    check_desc(&d, 2, 1, 1, 1, 16, 8, 1.0f, LIN_TOL, "adaptive momentum N 1");
                if (!causal)
                    check_desc(&d, 1, 1, 20, 90, 16, 8, 1.0f, LIN_TOL, "adaptive momentum cross");
                free(w);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_general),
        cmocka_unit_test(test_momentum_fixed),
        cmocka_unit_test(test_momentum_limits),
        cmocka_unit_test(test_momentum_adaptive),
    };
    return lin_run("test_linear_momentum", tests, sizeof tests / sizeof tests[0]);
}
