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
    int opts; /* issue 16: a window (6, 2), softcap 5, sinks and a 16 x 16 block mask with holes */
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
    /* options: the block mask [B, Hq, ceil(Nq/16), ceil(Nk/16)] keeps 2 blocks of 3 */
    size_t nbq = (c->nq + 15) / 16, nbk = (c->nk + 15) / 16, nbm = c->B * c->Hq * nbq * nbk;
    uint8_t *bm = malloc(nbm);
    float *sinks = tu_random(c->Hq, 2.0f, &seed);
    for (size_t i = 0; i < nbm; i++)
        bm[i] = (uint8_t)(i % 3 != 1);
    ref_softmax_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.causal = c->causal;
    ro.key_lengths = c->key_lengths ? kl : NULL;
    if (c->opts) {
        ro.window = 1;
        ro.window_left = 6;
        ro.window_right = 2;
        ro.softcap = 5.0;
        ro.sinks = sinks;
        ro.block_mask = bm;
        ro.block_q = ro.block_k = 16;
        ro.block_mask_stride[3] = 1;
        ro.block_mask_stride[2] = nbk;
        ro.block_mask_stride[1] = nbq * nbk;
        ro.block_mask_stride[0] = c->Hq * nbq * nbk;
    }
    ref_softmax_ex(q, k, v, ref, rl, c->B, c->Hq, c->Hk, c->nq, c->nk, c->d, &ro);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k),
           bv = tu_buffer(ctx, nk * 4, v), bo = tu_buffer(ctx, nq * 4, o),
           bl = tu_buffer(ctx, nl * 4, l), bkl = tu_buffer(ctx, c->B * 4, kl),
           bbm = tu_buffer(ctx, nbm, bm), bsk = tu_buffer(ctx, c->Hq * 4, sinks);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = c->causal;
    desc.key_lengths = c->key_lengths ? bkl : NULL;
    if (c->opts) {
        desc.window_left = 6;
        desc.window_right = 2;
        desc.softcap = 5.0f;
        desc.sinks = bsk;
        desc.block_mask = clattn_tensor_make_typed(bbm, CLATTN_U8, c->B, c->Hq, nbq, nbk);
        desc.block_q = desc.block_k = 16;
    }
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
    clReleaseMemObject(bbm);
    clReleaseMemObject(bsk);
    free(bm);
    free(sinks);
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
    {2, 4, 2, 37, 29, 40, 1, 1, 1.0f, 0}, /* Nq > Nk causal: 8 rows see no key */
    {1, 2, 1, 70, 90, 40, 0, 1, 10.0f, 0}, /* logits up to ~600 */
    {1, 1, 1, 1, 1, 40, 1, 0, 1.0f, 0},
};

static int check_all_cases(const clattn__softmax_launch *L, const char *what)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clattn__softmax_problem p = {cases[i].d, cases[i].nq, cases[i].nk, cases[i].causal, 0};
        clattn__softmax_launch M = *L;
        /* the same parameters at this case's D (they may not fit it: then skipped) */
        if (L->gpu_tx) {
            if (clattn__softmax_launch_gpu_rt_dc(&ctx->info, &p, L->gpu_tx, L->gpu_ty, L->gpu_rm,
                                                 L->gpu_rn, L->gpu_kv_shared, L->gpu_dchunk, &M,
                                                 NULL, 0) != CLATTN_SUCCESS)
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
        gcase g = {2, 2, 1, 33, 47, dims[i], (int)(i & 1), 1, 1.0f, 0};
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

/* The head-dim-chunked register-tiled kernel (issue 16: the scheduler's variant where whole head
 * dims do not fit, D or Dv above 256), forced at D = 40 with chunks of 16 (a ragged last chunk):
 * the cases above, then the options. */
static void test_chunked(void **state)
{
    (void)state;
    clattn__softmax_problem p = {40, 37, 29, 1, 0};
    clattn__softmax_launch L;
    assert_int_equal(clattn__softmax_launch_gpu_rt_dc(&ctx->info, &p, 8, 4, 2, 4, 0, 16, &L, NULL,
                                                      0),
                     CLATTN_SUCCESS);
    assert_true(L.gpu_dchunk == 16 && strstr(L.defines, "-DSOFTMAX_GPU_DCHUNK=16"));
    int bad = check_all_cases(&L, "chunked");
    gcase g = {2, 2, 1, 35, 50, 40, 1, 1, 1.0f, 1};
    double e = run_launch(&L, &g);
    if (!(e >= 0 && e <= 2e-5)) {
        fprintf(stderr, "chunked with options [%s]: error %g\n", L.defines, e);
        bad = 1;
    }
    assert_int_equal(bad, 0);
}

static clattn_device_info made_up(const char *name, unsigned vendor_id, const char *vendor,
                                  clattn_device_class cls, uint64_t local_kib, int emulated,
                                  size_t max_wg, unsigned vec)
{
    clattn_device_info d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.vendor, sizeof d.vendor, "%s", vendor);
    d.vendor_id = vendor_id;
    d.device_class = cls;
    d.global_mem_size = (uint64_t)8 << 30;
    d.max_alloc_size = (uint64_t)2 << 30;
    d.local_mem_size = local_kib * 1024;
    d.local_mem_emulated = emulated;
    d.max_work_group_size = max_wg;
    d.max_work_item_sizes[0] = d.max_work_item_sizes[1] = max_wg;
    d.max_work_item_sizes[2] = 64;
    d.compute_units = 16;
    d.max_clock_mhz = 1500;
    d.preferred_vector_width_float = d.native_vector_width_float = vec;
    return d;
}

/* Which TILED_GPU variant the scheduler picks per D on made-up devices (issue 16's closing table):
 * every D schedules, within the device; D = 512 (and D = 320 with Dv = 512) on the 48 / 64 KiB
 * GPUs is the head-dim-chunked register-tiled kernel, and the launch string says "dchunk=". */
static void test_schedule_head_dims(void **state)
{
    (void)state;
    clattn_device_info devs[] = {
        made_up("NVIDIA 48 KiB", 0x10DE, "NVIDIA Corporation", CLATTN_DEVICE_GPU, 48, 0, 1024, 1),
        made_up("AMD 64 KiB", 0x1002, "Advanced Micro Devices, Inc.", CLATTN_DEVICE_GPU, 64, 0,
                256, 1),
        made_up("Intel 64 KiB", 0x8086, "Intel(R) Corporation", CLATTN_DEVICE_GPU, 64, 0, 512, 1),
        made_up("PoCL (1 MiB emulated)", 0, "pocl", CLATTN_DEVICE_CPU, 1024, 1, 4096, 16),
        made_up("rusticl 32 KiB", 0, "Mesa", CLATTN_DEVICE_CPU, 32, 1, 1024, 1),
    };
    static const size_t dims[][2] = {{64, 64}, {128, 128}, {256, 256}, {512, 512}, {320, 512}};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
        for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++) {
            clattn__softmax_problem p = {dims[j][0], 4096, 4096, 0, dims[j][1]};
            clattn__softmax_launch L;
            assert_int_equal(
                clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_TILED_GPU, &L, NULL, 0),
                CLATTN_SUCCESS);
            assert_true(L.local_mem_bytes <= devs[i].local_mem_size);
            assert_true(L.local_size <= devs[i].max_work_group_size);
            printf("%-22s D=%3zu Dv=%3zu: %-12s tx=%u ty=%u rm=%u rn=%u kv_shared=%u dchunk=%u "
                   "wg=%zu local=%zu B\n",
                   devs[i].name, dims[j][0], dims[j][1],
                   L.gpu_tx ? (L.gpu_dchunk ? "rt-dchunk" : "rt") : "rows", L.gpu_tx, L.gpu_ty,
                   L.gpu_rm, L.gpu_rn, L.gpu_kv_shared, L.gpu_dchunk, L.local_size,
                   L.local_mem_bytes);
            if (L.gpu_tx) {
                clattn__softmax_launch M;
                assert_int_equal(clattn__softmax_launch_gpu_rt_dc(
                                     &devs[i], &p, L.gpu_tx, L.gpu_ty, L.gpu_rm, L.gpu_rn,
                                     L.gpu_kv_shared, L.gpu_dchunk, &M, NULL, 0),
                                 CLATTN_SUCCESS);
                assert_int_equal(M.local_mem_bytes, L.local_mem_bytes);
                assert_true(clattn__softmax_gpu_rt_regs_dv(dims[j][1], L.gpu_tx, L.gpu_rm,
                                                           L.gpu_rn, L.gpu_dchunk) <= 160);
            }
            /* the 48 / 64 KiB GPUs: whole head dims up to 256, chunks beyond */
            if (i < 3) {
                assert_true(L.gpu_tx != 0);
                assert_int_equal(L.gpu_dchunk != 0, dims[j][0] > 256 || dims[j][1] > 256);
            }
        }
        /* the public schedule says so */
        clattn_softmax_desc desc;
        clattn_softmax_desc_init(&desc);
        desc.algorithm = CLATTN_SOFTMAX_TILED_GPU;
        size_t q[4] = {1, 8, 4096, 512}, k[4] = {1, 8, 4096, 512};
        clattn_plan_info info;
        assert_int_equal(clattn_softmax_schedule(&devs[i], &desc, q, k, &info), CLATTN_SUCCESS);
        if (i < 3)
            assert_non_null(strstr(info.launch, "dchunk="));
        printf("%-22s D=512 launch: %s\n", devs[i].name, info.launch);
    }
}

/* oclgrind: one launch of each barrier structure, small. */
static int mode_races(void)
{
    clattn__softmax_launch c[CLATTN__TUNE_MAX_CANDIDATES];
    gcase g = {2, 2, 1, 20, 40, 20, 1, 1, 1.0f, 0}; /* two key tiles or more, D off the tiles */
    size_t n = space(g.d, c, CLATTN__TUNE_MAX_CANDIDATES);
    int have[3] = {0, 0, 0}, rc = 0;
    /* Each structure plain, then with the options (issue 16: a window that moves the first key
     * tile, block-sparse tiles skipped before the barriers, sinks); last the head-dim-chunked
     * kernel (chunks of 8 over D = 20: a ragged last chunk), options on. */
    gcase go = g;
    go.nq = 36;
    go.nk = 80; /* causal offset 44: the first group's window starts past the first key tile */
    go.opts = 1;
    for (size_t i = 0; i < n; i++) {
        int kind = c[i].gpu_tx ? (int)c[i].gpu_kv_shared : 2;
        if (have[kind])
            continue;
        have[kind] = 1;
        double e = run_launch(&c[i], &g), eo = run_launch(&c[i], &go);
        printf("races [%s]: error %.2e, with options %.2e\n", c[i].defines, e, eo);
        rc |= !(e >= 0 && e <= 2e-5) || !(eo >= 0 && eo <= 2e-5);
    }
    clattn__softmax_problem p = {g.d, go.nq, go.nk, g.causal, 0};
    clattn__softmax_launch L;
    if (clattn__softmax_launch_gpu_rt_dc(&ctx->info, &p, 8, 4, 2, 2, 0, 8, &L, NULL, 0) !=
        CLATTN_SUCCESS)
        return 1;
    double e = run_launch(&L, &go);
    printf("races [%s]: with options %.2e\n", L.defines, e);
    rc |= !(e >= 0 && e <= 2e-5);
    return rc;
}

/* oclgrind --inst-counts: the default, then (with_old) the row kernel, at N = 128, D = 64 and
 * 128. */
static int mode_counts(int with_old)
{
    int rc = 0;
    for (size_t d = 64; d <= 128; d *= 2) {
        gcase g = {1, 1, 1, 128, 128, d, 0, 0, 1.0f, 0};
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
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_schedule_head_dims),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    clattn_context_destroy(ctx);
    return rc;
}
