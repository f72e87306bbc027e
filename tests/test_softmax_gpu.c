/* TILED_GPU's register-tiled kernel (kernels_cl/softmax_gpu.cl) over its candidate space
 * (lib/sched: clattn__softmax_candidates), against the fp64 reference: GQA, causal with Nq > Nk
 * (rows that see no key: zeros, lse -inf), key lengths, D not a multiple of the tiles, large
 * logits, N = 1.
 *
 * Without arguments: the cmocka suite. It runs the default, the one-row-per-item kernel, and a
 * greedy cover of the space (every value of TX, TY, RM, RN and of the K/V buffer layout that the
 * device's space holds, at least once: 3 or 4 launches);
 * CLATTN_TEST_ALL_CANDIDATES=1 runs every candidate the device accepts instead (each is a program
 * build: minutes on PoCL).
 * With arguments, for oclgrind (tests/CMakeLists.txt):
 *   races   one small launch per barrier structure (separate K/V buffers, shared buffer, rows);
 *   counts  N = 128 at D = 64 and 128, the default then the row kernel, for tests/inst_counts.sh
 *           (counts-new: the default only, as the ctest gate runs it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "sched.h"
#include "test_util.h"
#include "../lib/tune/tune.h"

static clattn_context *ctx;

typedef struct gcase {
    size_t B, Hq, Hk, nq, nk, d;
    int causal, key_lengths;
    float amp;
} gcase;

/* Runs launch L on case c; returns the worst normalised error of out and lse (cmocka-free, so the
 * oclgrind modes can use it); -1 when the plan or the enqueue fails. */
static double run_launch(const clattn__softmax_launch *L, const gcase *c)
{
    size_t sq[4] = {c->B, c->Hq, c->nq, c->d}, sk[4] = {c->B, c->Hk, c->nk, c->d};
    size_t nq = c->B * c->Hq * c->nq * c->d, nk = c->B * c->Hk * c->nk * c->d;
    size_t nl = c->B * c->Hq * c->nq;
    uint64_t seed = 29 + c->d;
    float *q = tu_random(nq, c->amp, &seed), *k = tu_random(nk, c->amp, &seed),
          *v = tu_random(nk, 1.0f, &seed);
    float *ref = malloc(nq * 4), *rl = malloc(nl * 4), *o = tu_poisoned(nq), *l = tu_poisoned(nl);
    int32_t *kl = malloc(c->B * sizeof *kl);
    for (size_t b = 0; b < c->B; b++) /* the last batch sees every key, the others fewer */
        kl[b] = (int32_t)(b + 1 == c->B ? c->nk : (c->nk * (b + 1)) / (c->B + 1));
    ref_softmax(q, k, v, ref, rl, c->B, c->Hq, c->Hk, c->nq, c->nk, c->d,
                1.0 / sqrt((double)c->d), c->causal, c->key_lengths ? kl : NULL);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k),
           bv = tu_buffer(ctx, nk * 4, v), bo = tu_buffer(ctx, nq * 4, o),
           bl = tu_buffer(ctx, nl * 4, l), bkl = tu_buffer(ctx, c->B * 4, kl);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = c->causal;
    desc.key_lengths = c->key_lengths ? bkl : NULL;
    clattn_plan *plan = NULL;
    double err = -1;
    if (clattn__softmax_plan_create_launch(ctx, &desc, sq, sk, L, &plan) == CLATTN_SUCCESS) {
        clattn_tensor tq = clattn_tensor_make(bq, sq[0], sq[1], sq[2], sq[3]);
        clattn_tensor tk = clattn_tensor_make(bk, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor tv = clattn_tensor_make(bv, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor to = clattn_tensor_make(bo, sq[0], sq[1], sq[2], sq[3]);
        clattn_tensor tl = clattn_tensor_make(bl, sq[0], sq[1], sq[2], 1);
        if (clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL) ==
            CLATTN_SUCCESS) {
            tu_read(ctx, bo, nq * 4, o);
            tu_read(ctx, bl, nl * 4, l);
            err = tu_norm_inf_err(o, ref, nq);
            for (size_t i = 0; i < nl; i++) { /* -inf must match -inf exactly */
                if (isinf(rl[i]) || isinf(l[i])) {
                    if (!(isinf(rl[i]) && isinf(l[i]) && rl[i] == l[i]))
                        err = INFINITY;
                } else if (fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i])) > err) {
                    err = fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i]));
                }
            }
            for (size_t i = 0; i < nq; i++)
                if (isnan(o[i]))
                    err = INFINITY;
        }
        clattn_plan_destroy(plan);
    }
    if (err < 0)
        fprintf(stderr, "launch '%s' failed: %s\n", L->defines, clattn_context_last_error(ctx));
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bo);
    clReleaseMemObject(bl);
    clReleaseMemObject(bkl);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(rl);
    free(o);
    free(l);
    free(kl);
    return err;
}

/* The cases every tested launch runs, all at D = 40 (one program build per launch; 40 is off
 * every TX): GQA with key lengths and a causal offset that leaves rows with no key (Nq > Nk),
 * large logits, a single query and key. */
static const gcase cases[] = {
    {2, 4, 2, 37, 29, 40, 1, 1, 1.0f}, /* Nq > Nk causal: 8 rows see no key */
    {1, 2, 1, 70, 90, 40, 0, 1, 10.0f}, /* logits up to ~600 */
    {1, 1, 1, 1, 1, 40, 1, 0, 1.0f},
};

static int check_all_cases(const clattn__softmax_launch *L, const char *what)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clattn__softmax_problem p = {cases[i].d, cases[i].nq, cases[i].nk, cases[i].causal, 0};
        clattn__softmax_launch M = *L;
        /* the same parameters at this case's D (they may not fit it: then skipped) */
        if (L->gpu_tx) {
            if (clattn__softmax_launch_gpu_rt(&ctx->info, &p, L->gpu_tx, L->gpu_ty, L->gpu_rm,
                                              L->gpu_rn, L->gpu_kv_shared, &M, NULL,
                                              0) != CLATTN_SUCCESS)
                continue;
        } else if (clattn__softmax_launch_from(&ctx->info, &p, L->algo, 1, L->local_size,
                                               L->tile_kv, &M, NULL, 0) != CLATTN_SUCCESS) {
            continue;
        }
        double e = run_launch(&M, &cases[i]);
        /* 2e-5: the fp32 house tolerance's normalised error scale; lse of large logits is
         * compared relative to its magnitude */
        if (!(e >= 0 && e <= 2e-5)) {
            fprintf(stderr, "%s [%s] case %zu: error %g\n", what, M.defines, i, e);
            bad = 1;
        }
    }
    return bad;
}

/* The candidates of head dimension d on this device (the default first, the row kernel second). */
static size_t space(size_t d, clattn__softmax_launch *c, size_t cap)
{
    clattn__softmax_problem p = {d, 37, 29, 1, 0};
    return clattn__softmax_candidates(&ctx->info, &p, CLATTN_SOFTMAX_TILED_GPU, c, cap);
}

static void test_candidates(void **state)
{
    (void)state;
    clattn__softmax_launch c[CLATTN__TUNE_MAX_CANDIDATES];
    size_t n = space(40, c, CLATTN__TUNE_MAX_CANDIDATES);
    assert_true(n >= 1);
    const char *all = getenv("CLATTN_TEST_ALL_CANDIDATES");
    int every = all && strcmp(all, "1") == 0;
    /* A greedy cover: the default and the row kernel, then, while some parameter value of the
     * space has not run, the candidate that brings the most values not run yet. */
    char run[CLATTN__TUNE_MAX_CANDIDATES] = {0};
    unsigned seen[5] = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++)
        run[i] = (char)(every || i < 2);
    for (;;) {
        size_t best = n;
        int best_new = 0;
        for (size_t i = 0; i < n; i++) {
            const clattn__softmax_launch *L = &c[i];
            if (!L->gpu_tx)
                continue;
            unsigned v[5] = {L->gpu_tx, L->gpu_ty, L->gpu_rm, L->gpu_rn, 1u << L->gpu_kv_shared};
            int fresh = 0;
            for (int k = 0; k < 5; k++)
                fresh += !(seen[k] & v[k]);
            if (run[i] || fresh > best_new) {
                if (run[i]) { /* already chosen: its values count as seen */
                    for (int k = 0; k < 5; k++)
                        seen[k] |= v[k];
                    continue;
                }
                best = i;
                best_new = fresh;
            }
        }
        if (best == n)
            break;
        run[best] = 1;
    }
    size_t ran = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!run[i])
            continue;
        bad |= check_all_cases(&c[i], c[i].gpu_tx ? "register-tiled" : "row kernel");
        ran++;
    }
    printf("%s: ran %zu of %zu TILED_GPU candidates (D = 40)\n", ctx->info.name, ran, n);
    assert_int_equal(bad, 0);
}

/* The default at head dimensions test_softmax.c's test_head_dims (1, 16, 40, 64, 80, 128, 256
 * through the public API, where TILED_GPU is this kernel) leaves out: 48 and 96 (6 and 12 x 8). */
static void test_default_head_dims(void **state)
{
    (void)state;
    static const size_t dims[] = {48, 96};
    int bad = 0;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        gcase g = {2, 2, 1, 33, 47, dims[i], (int)(i & 1), 1, 1.0f};
        clattn__softmax_problem p = {g.d, g.nq, g.nk, g.causal, 0};
        clattn__softmax_launch L;
        if (clattn__schedule_softmax(&ctx->info, &p, CLATTN_SOFTMAX_TILED_GPU, &L, NULL, 0) !=
            CLATTN_SUCCESS)
            continue;
        double e = run_launch(&L, &g);
        if (!(e >= 0 && e <= 2e-5)) {
            fprintf(stderr, "default D=%zu [%s]: error %g\n", g.d, L.defines, e);
            bad = 1;
        }
    }
    assert_int_equal(bad, 0);
}

/* oclgrind: one launch of each barrier structure, small. */
static int mode_races(void)
{
    clattn__softmax_launch c[CLATTN__TUNE_MAX_CANDIDATES];
    gcase g = {2, 2, 1, 20, 40, 20, 1, 1, 1.0f}; /* two key tiles or more, D off the tiles */
    size_t n = space(g.d, c, CLATTN__TUNE_MAX_CANDIDATES);
    int have[3] = {0, 0, 0}, rc = 0;
    for (size_t i = 0; i < n; i++) {
        int kind = c[i].gpu_tx ? (int)c[i].gpu_kv_shared : 2;
        if (have[kind])
            continue;
        have[kind] = 1;
        double e = run_launch(&c[i], &g);
        printf("races [%s]: error %.2e\n", c[i].defines, e);
        rc |= !(e >= 0 && e <= 2e-5);
    }
    return rc;
}

/* oclgrind --inst-counts: the default, then (with_old) the row kernel, at N = 128, D = 64 and
 * 128. */
static int mode_counts(int with_old)
{
    int rc = 0;
    for (size_t d = 64; d <= 128; d *= 2) {
        gcase g = {1, 1, 1, 128, 128, d, 0, 0, 1.0f};
        clattn__softmax_problem p = {d, 128, 128, 0, 0};
        clattn__softmax_launch c[CLATTN__TUNE_MAX_CANDIDATES];
        size_t n = clattn__softmax_candidates(&ctx->info, &p, CLATTN_SOFTMAX_TILED_GPU, c,
                                              CLATTN__TUNE_MAX_CANDIDATES);
        for (size_t i = 0; i < (with_old ? 2u : 1u) && i < n; i++) {
            printf("counts D=%zu %s [%s]\n", d, c[i].gpu_tx ? "new" : "old", c[i].defines);
            fflush(stdout);
            double e = run_launch(&c[i], &g);
            rc |= !(e >= 0 && e <= 2e-5);
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
            fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
            return 1;
        }
        int rc = strcmp(argv[1], "counts") == 0       ? mode_counts(1)
                 : strcmp(argv[1], "counts-new") == 0 ? mode_counts(0)
                                                      : mode_races();
        clattn_context_destroy(ctx);
        return rc;
    }
    ctx = tu_context();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_default_head_dims),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    clattn_context_destroy(ctx);
    return rc;
}
