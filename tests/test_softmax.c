/* Tiled exact attention against the fp64 host reference (tests/reference/ref_softmax.c), on the
 * device chosen by CLATTN_DEVICE (default selection otherwise): both kernel families forced, the
 * scheduler's own choice, and the naive baseline.
 *
 * Inputs are random (never zero); outputs are poisoned with NaN before each run so an unwritten
 * element fails. Tolerance (tests/test_util.h's tu_check_close): every element within
 * 1e-4 + 1e-4 |ref| and a normalised error of at most 1e-5 (TU_TOL_FP32), the same for the
 * log-sum-exp (whose -inf rows must be -inf exactly). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clattn.h"
#include "test_util.h"
#include "reference/ref_softmax.h"

static clattn_context *ctx;
/* llvmpipe (rusticl) silently stops any loop after 65535 iterations per work-item (gallivm's loop
 * limiter; a plain OpenCL summation loop shows it too; clattn_device_info.loop_iteration_cap), so
 * on such a device the cases whose kernels loop more than that are skipped with a note -- the
 * kernels are not at fault there. */
static uint64_t loop_cap;

typedef struct tcase {
    size_t B, Hq, Hk, Nq, Nk, D;
    int causal;
    int key_lengths;    /* 0: none; 1: per batch {0, random, Nk, ...} */
    float amp;          /* inputs uniform in [-amp, amp] */
    float scale;        /* 0: default 1/sqrt(D) */
    clattn_softmax_algo algo;
    int bnhd;           /* store tensors as [B, N, H, D] (strided views) */
    int with_lse;
} tcase;

/* 1 (test_v_in_place, test_k_in_place): K and V rows at or past each batch's key length are NaN
 * (never to be read; or, for K read in place, read only into lanes of keys that are masked). */
static int nan_tail;

/* 0 or 1 (test_k_in_place): the plan must (not) read K in place ("k_direct=1" in its launch);
 * -1: not checked. */
static int want_k_direct = -1;

/* > 0 (test_cpu_blocks): q = |q| and key j's K row + ramp * j / Nk, so scores (and each row's
 * running maximum) grow along the keys, block after block. */
static float ramp;

/* Runs one case through the plan API and checks out (and lse) against the reference. */
static void run_case(const tcase *c)
{
    if (loop_cap && c->Nk * c->D > loop_cap / 2) {
        fprintf(stderr, "note: skipping Nk %zu D %zu (the device's loop-iteration cap %llu)\n",
                c->Nk, c->D, (unsigned long long)loop_cap);
        return;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (c->Nq * 131 + c->Nk * 17 + c->D * 7 + c->Hq);
    size_t nq = c->B * c->Hq * c->Nq * c->D, nk = c->B * c->Hk * c->Nk * c->D;
    size_t nl = c->B * c->Hq * c->Nq;
    float amp = c->amp > 0 ? c->amp : 1.0f;
    float *q = tu_random(nq, amp, &seed), *k = tu_random(nk, amp, &seed);
    float *v = tu_random(nk, 1.0f, &seed);
    if (ramp > 0) {
        for (size_t i = 0; i < nq; i++)
            q[i] = fabsf(q[i]);
        for (size_t i = 0; i < nk; i++)
            k[i] += ramp * (float)((i / c->D) % c->Nk) / (float)c->Nk;
    }
    float *out = tu_poisoned(nq), *ref = malloc(nq * 4), *lse = tu_poisoned(nl),
          *ref_lse = malloc(nl * 4);
    int32_t *kl = calloc(c->B, sizeof(int32_t));
    assert_true(ref && ref_lse && kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b == 0 ? 0 : b == 1 ? c->Nk : (seed >> 11) % (c->Nk + 1));
    const int32_t *klp = c->key_lengths ? kl : NULL;
    if (nan_tail && klp)
        for (size_t b = 0; b < c->B; b++)
            for (size_t h = 0; h < c->Hk; h++)
                for (size_t j = (size_t)kl[b]; j < c->Nk; j++)
                    for (size_t d = 0; d < c->D; d++)
                        v[((b * c->Hk + h) * c->Nk + j) * c->D + d] =
                            k[((b * c->Hk + h) * c->Nk + j) * c->D + d] = NAN;

    double scale = c->scale != 0.0f ? c->scale : 1.0 / sqrt((double)c->D);
    ref_softmax(q, k, v, ref, ref_lse, c->B, c->Hq, c->Hk, c->Nq, c->Nk, c->D, scale, c->causal,
                  klp);

    float *hq = c->bnhd ? tu_relayout(q, c->B, c->Hq, c->Nq, c->D, 1) : q;
    float *hk = c->bnhd ? tu_relayout(k, c->B, c->Hk, c->Nk, c->D, 1) : k;
    float *hv = c->bnhd ? tu_relayout(v, c->B, c->Hk, c->Nk, c->D, 1) : v;
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nk * 4, hk), bv = tu_buffer(ctx, nk * 4, hv);
    cl_mem bo = tu_buffer(ctx, nq * 4, out), bl = tu_buffer(ctx, nl * 4, lse);
    cl_mem bkl = tu_buffer(ctx, c->B * sizeof(int32_t), kl);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = c->causal;
    desc.scale = c->scale;
    desc.algorithm = c->algo;
    if (klp)
        desc.key_lengths = bkl;
    size_t qs[4] = {c->B, c->Hq, c->Nq, c->D}, ks[4] = {c->B, c->Hk, c->Nk, c->D};
    clattn_plan *plan = NULL;
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, qs, ks, ks, &plan);
    if (st != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_tensor tq = tu_view(bq, c->B, c->Hq, c->Nq, c->D, c->bnhd);
    clattn_tensor tk = tu_view(bk, c->B, c->Hk, c->Nk, c->D, c->bnhd);
    clattn_tensor tv = tu_view(bv, c->B, c->Hk, c->Nk, c->D, c->bnhd);
    clattn_tensor to = tu_view(bo, c->B, c->Hq, c->Nq, c->D, c->bnhd);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->Hq, c->Nq, 1);
    cl_event ev = NULL;
    st = clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, c->with_lse ? &tl : NULL, 0,
                                       NULL, &ev);
    if (st != CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bo, nq * 4, out);
    tu_read(ctx, bl, nl * 4, lse);
    float *got = c->bnhd ? tu_relayout(out, c->B, c->Hq, c->Nq, c->D, 0) : out;

    clattn_plan_info info;
    clattn_plan_get_info(plan, &info);
    char what[200];
    snprintf(what, sizeof what,
             "%s B%zu Hq%zu Hk%zu Nq%zu Nk%zu D%zu causal%d kl%d bnhd%d scale %g",
             info.variant, c->B, c->Hq, c->Hk, c->Nq, c->Nk, c->D, c->causal, c->key_lengths,
             c->bnhd, (double)c->scale);
    if (want_k_direct >= 0)
        assert_int_equal(strstr(info.launch, "k_direct=1") != NULL, want_k_direct);
    tu_check_close(got, ref, nq, TU_TOL_FP32, what);
    if (c->with_lse) {
        /* rows that see no key must say so exactly: -inf in the reference is matched exactly */
        tu_check_close(lse, ref_lse, nl, TU_TOL_FP32, what);
    } else {
        for (size_t i = 0; i < nl; i++)
            assert_true(isnan(lse[i])); /* lse untouched when not asked for */
    }

    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bk, bv, bo, bl, bkl};
    for (size_t i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
    if (c->bnhd) {
        free(hq);
        free(hk);
        free(hv);
        free(got);
    }
    free(q);
    free(k);
    free(v);
    free(out);
    free(ref);
    free(lse);
    free(ref_lse);
    free(kl);
}

static const clattn_softmax_algo tiled_algos[] = {CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_TILED_GPU};

static void test_head_dims(void **state)
{
    (void)state;
    static const size_t dims[] = {1, 16, 40, 64, 80, 128, 256};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
            tcase c = {1, 2, 2, 65, 70, dims[i], (int)(i % 2), 0, 1, 0, tiled_algos[a], 0, 1};
            run_case(&c);
        }
}

/* N around the tiles of both families (key tiles of 64 and 32, query blocks of 32 and 64 rows). */
static void test_lengths(void **state)
{
    (void)state;
    static const size_t ns[] = {1, 7, 31, 33, 63, 65, 127, 129, 1000};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (int causal = 0; causal < 2; causal++) {
                if (ns[i] == 1000 && causal == 0 && a == 1)
                    continue; /* one big non-causal case per family is enough */
                tcase c = {1, 1, 1, ns[i], ns[i], 64, causal, 0, 1, 0, tiled_algos[a], 0, 1};
                run_case(&c);
            }
}

/* Nq != Nk both ways; causal is bottom-right aligned (Perceiver AR when Nq < Nk; the first
 * Nq - Nk rows see no key when Nq > Nk). */
static void test_cross(void **state)
{
    (void)state;
    static const size_t pairs[][2] = {{1, 200}, {5, 70}, {70, 5}, {100, 33}, {33, 100}, {129, 1}};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
            for (int causal = 0; causal < 2; causal++) {
                tcase c = {2, 2, 1, pairs[i][0], pairs[i][1], 40, causal, 0, 1, 0, tiled_algos[a],
                           0, 1};
                run_case(&c);
            }
}

static void test_gqa_mqa(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        tcase gqa = {2, 8, 2, 37, 45, 16, 0, 0, 1, 0, tiled_algos[a], 0, 1};
        tcase mqa = {1, 4, 1, 50, 50, 64, 1, 0, 1, 0, tiled_algos[a], 0, 1};
        run_case(&gqa);
        run_case(&mqa);
    }
}

/* Per-batch key lengths, including 0 (rows see nothing: zeros and lse = -inf) and Nk. */
static void test_key_lengths(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            tcase c = {4, 2, 2, 40, 77, 64, causal, 1, 1, 0, tiled_algos[a], 0, 1};
            run_case(&c);
        }
}

/* Logits of magnitude ~1000 must neither overflow nor lose the winner. */
static void test_large_logits(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        tcase c = {1, 2, 2, 70, 90, 16, 0, 0, 1, 400.0f, tiled_algos[a], 0, 1};
        run_case(&c);
        c.causal = 1;
        c.scale = -400.0f;
        run_case(&c);
    }
}

/* The CPU family's query blocks (32 register groups of 4 rows from 2048 query rows on up to D 128,
 * 16 from 256 query rows on, 8 below: 128, 64 or 32 rows) and key blocks (64 keys at D 64, 32 at D 128, 256 at D 16): lengths
 * that are not multiples of either, several
 * key blocks whose scores grow along the keys (each block raises the running maximum, so the lazy
 * rescale runs late as well as first), causal with Nq != Nk both ways, one query row, GQA, and
 * large growing logits. */
static void test_cpu_blocks(void **state)
{
    (void)state;
    const clattn_softmax_algo cpu = CLATTN_SOFTMAX_TILED_CPU;
    ramp = 6.0f;
    for (int causal = 0; causal < 2; causal++) {
        tcase a = {1, 2, 1, 77, 300, 64, causal, 0, 1, 0, cpu, 0, 1};
        run_case(&a);
    }
    tcase b = {1, 1, 1, 45, 333, 128, 1, 0, 1, 0, cpu, 0, 1};
    tcase d = {1, 1, 1, 1, 700, 64, 0, 0, 1, 0, cpu, 0, 1};
    tcase f = {3, 1, 1, 50, 290, 64, 1, 1, 1, 0, cpu, 0, 1};
    run_case(&b);
    run_case(&d);
    run_case(&f);
    ramp = 4.0f;
    tcase e = {1, 1, 1, 70, 260, 40, 1, 0, 1, 30.0f, cpu, 0, 1};
    run_case(&e);
    ramp = 0.0f;
    tcase c = {1, 1, 1, 300, 77, 16, 1, 0, 1, 0, cpu, 0, 1};
    run_case(&c);
    /* D 128 with 16 groups (P.V in passes, 32-key blocks), GQA, Nq > Nk and Nq < Nk */
    tcase g = {1, 2, 1, 290, 261, 128, 1, 0, 1, 0, cpu, 0, 1};
    tcase h = {1, 1, 1, 257, 301, 128, 0, 0, 1, 0, cpu, 0, 1};
    run_case(&g);
    run_case(&h);
    /* 32 groups (from 2048 query rows up to D 128): a partial last block, causal Nq > Nk */
    tcase w = {1, 1, 1, 2049, 333, 64, 1, 0, 1, 0, cpu, 0, 1};
    run_case(&w);
    /* an odd D above 64: the score's two FMA chains (even and odd d) plus the last d */
    tcase o = {1, 1, 1, 70, 90, 99, 1, 0, 1, 0, cpu, 0, 1};
    run_case(&o);
}

/* TILED_CPU reads V's rows in place where they look packed (f32, unit stride over D, D a multiple
 * of 16; lib/ops/softmax_enqueue.c v_in_place), else packs them (CLATTN_SOFTMAX_V_DIRECT=0 forces
 * the pack): both, with key lengths whose V rows past each length are NaN (no row at or past a
 * group's last key may be read: 0 x NaN would poison the row), lengths that are no multiple of a
 * step, causal, GQA, D 64 and 128 (P.V in registers and in passes), and [B, N, H, D] rows (a row
 * stride of H x D). */
static void test_v_in_place(void **state)
{
    (void)state;
    const clattn_softmax_algo cpu = CLATTN_SOFTMAX_TILED_CPU;
    for (int packed = 0; packed < 2; packed++) {
        if (packed)
            setenv("CLATTN_SOFTMAX_V_DIRECT", "0", 1);
        for (int causal = 0; causal < 2; causal++) {
            tcase a = {4, 2, 1, 37, 83, 64, causal, 1, 1, 0, cpu, 0, 1};
            tcase b = {3, 2, 2, 29, 101, 128, causal, 1, 1, 0, cpu, 1, 1};
            tcase c = {1, 3, 3, 65, 70, 32, causal, 0, 1, 0, cpu, 1, 1};
            nan_tail = 1;
            run_case(&a);
            run_case(&b);
            nan_tail = 0;
            run_case(&c);
        }
        unsetenv("CLATTN_SOFTMAX_V_DIRECT");
    }
}

/* TILED_CPU reads K's rows in place in plans where each KV head's keys meet one query block
 * (decoding: G x Nq folded rows, or Nq, within a work-item's block; D a multiple of 16; the launch
 * says k_direct=1), and packs them otherwise or with CLATTN_SOFTMAX_K_DIRECT=0 when the plan is
 * made. Both, with K and V rows past each key length NaN (16 keys' partial sums are added into
 * the lanes of one score vector: a masked key's NaN in any other lane would fail the row), key
 * counts that are no multiple of 16 or of a step, causal (bottom-right) with several queries,
 * GQA folded, split-KV (B 4, Hk 2 over 1000 keys), D 16, 64 and 128, [B, N, H, D] rows; and a
 * prefill-sized plan, which keeps the panels. */
static void test_k_in_place(void **state)
{
    (void)state;
    const clattn_softmax_algo cpu = CLATTN_SOFTMAX_TILED_CPU;
    for (int packed = 0; packed < 2; packed++) {
        if (packed)
            setenv("CLATTN_SOFTMAX_K_DIRECT", "0", 1);
        want_k_direct = !packed;
        for (int causal = 0; causal < 2; causal++) {
            tcase a = {4, 8, 2, 1, 1000, 128, causal, 1, 1, 0, cpu, 0, 1};
            tcase b = {3, 2, 2, 4, 77, 64, causal, 1, 1, 0, cpu, 0, 1};
            tcase c = {3, 4, 1, 3, 300, 16, causal, 1, 1, 0, cpu, 1, 1};
            nan_tail = 1;
            run_case(&a);
            run_case(&b);
            run_case(&c);
            nan_tail = 0;
        }
        unsetenv("CLATTN_SOFTMAX_K_DIRECT");
    }
    want_k_direct = 0;
    tcase d = {1, 2, 2, 70, 90, 64, 1, 0, 1, 0, cpu, 0, 1};
    run_case(&d);
    want_k_direct = -1;
}

/* A plan that reads K in place holds no K panels; a call whose K must be packed after all (every
 * other float of a buffer: d-stride 2) allocates them once, and both give the reference. */
static void test_k_scratch_on_demand(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, NQ = 1, N = 70, D = 64, n = B * H * N * D, nqe = B * H * NQ * D;
    uint64_t seed = 78;
    float *q = tu_random(nqe, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed), *ref = malloc(nqe * 4), *ref_lse = malloc(B * H * 4);
    float *o1 = tu_poisoned(nqe), *o2 = tu_poisoned(nqe), *k2 = tu_poisoned(2 * n);
    assert_true(ref && ref_lse && k2);
    ref_softmax(q, k, v, ref, ref_lse, B, H, H, NQ, N, D, 1.0 / sqrt((double)D), 0, NULL);
    for (size_t i = 0; i < n; i++)
        k2[2 * i] = k[i];
    cl_mem bq = tu_buffer(ctx, nqe * 4, q), bk = tu_buffer(ctx, n * 4, k);
    cl_mem bk2 = tu_buffer(ctx, 2 * n * 4, k2), bv = tu_buffer(ctx, n * 4, v);
    cl_mem bo[2] = {tu_buffer(ctx, nqe * 4, o1), tu_buffer(ctx, nqe * 4, o2)};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = CLATTN_SOFTMAX_TILED_CPU;
    size_t qsh[4] = {B, H, NQ, D}, sh[4] = {B, H, N, D};
    clattn_plan *plan = NULL, *packed = NULL;
    if (clattn_softmax_plan_create(ctx, &desc, qsh, sh, sh, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    setenv("CLATTN_SOFTMAX_K_DIRECT", "0", 1);
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, qsh, sh, sh, &packed);
    unsetenv("CLATTN_SOFTMAX_K_DIRECT");
    if (st != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_plan_info i0, ip, after[3];
    clattn_plan_get_info(plan, &i0);
    clattn_plan_get_info(packed, &ip);
    assert_non_null(strstr(i0.launch, "k_direct=1"));
    assert_null(strstr(ip.launch, "k_direct=1"));
    assert_true(ip.scratch_bytes >= i0.scratch_bytes + B * H * N * D * 4);
    clattn_tensor tq = tu_view(bq, B, H, NQ, D, 0), tv = tu_view(bv, B, H, N, D, 0);
    clattn_tensor tk[2] = {tu_view(bk, B, H, N, D, 0), tu_view(bk2, B, H, N, D, 0)};
    for (int i = 0; i < 4; i++)
        tk[1].strides[i] *= 2;
    float *outs[2] = {o1, o2};
    /* calls: in place, packed (strided K), packed again (nothing more allocated) */
    for (int call = 0; call < 3; call++) {
        clattn_tensor to = tu_view(bo[call > 0], B, H, NQ, D, 0);
        assert_int_equal(
            clattn_softmax_plan_enqueue(plan, &tq, &tk[call > 0], &tv, &to, NULL, 0, NULL, NULL),
            CLATTN_SUCCESS);
        if (call < 2)
            tu_read(ctx, bo[call], nqe * 4, outs[call]);
        clattn_plan_get_info(plan, &after[call]);
    }
    assert_int_equal(after[0].scratch_bytes, i0.scratch_bytes);
    assert_true(after[1].scratch_bytes >= i0.scratch_bytes + B * H * N * D * 4);
    assert_int_equal(after[2].scratch_bytes, after[1].scratch_bytes);
    tu_check_close(o1, ref, nqe, TU_TOL_FP32, "K in place");
    tu_check_close(o2, ref, nqe, TU_TOL_FP32, "K packed by a K-direct plan");
    clattn_plan_destroy(plan);
    clattn_plan_destroy(packed);
    cl_mem all[] = {bq, bk, bk2, bv, bo[0], bo[1]};
    for (size_t i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(k2);
    free(v);
    free(ref);
    free(ref_lse);
    free(o1);
    free(o2);
}

/* The packed V rows' scratch is allocated by the first enqueue that packs V: a plan whose calls
 * read V in place never holds it; a later call whose V must be packed (here every other float of
 * a buffer: d-stride 2) allocates it once and gets the same bits. */
static void test_v_scratch_on_demand(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 70, D = 64, n = B * H * N * D;
    uint64_t seed = 77;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed), *ref = malloc(n * 4), *ref_lse = malloc(B * H * N * 4);
    float *o1 = tu_poisoned(n), *o2 = tu_poisoned(n);
    assert_true(ref && ref_lse);
    ref_softmax(q, k, v, ref, ref_lse, B, H, H, N, N, D, 1.0 / sqrt((double)D), 1, NULL);
    float *v2 = tu_poisoned(2 * n); /* v's elements at the even places, NaN between */
    assert_non_null(v2);
    for (size_t i = 0; i < n; i++)
        v2[2 * i] = v[i];
    cl_mem bq = tu_buffer(ctx, n * 4, q), bk = tu_buffer(ctx, n * 4, k), bv = tu_buffer(ctx, n * 4, v);
    cl_mem bv2 = tu_buffer(ctx, 2 * n * 4, v2);
    cl_mem bo[2] = {tu_buffer(ctx, n * 4, o1), tu_buffer(ctx, n * 4, o2)};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = 1;
    desc.algorithm = CLATTN_SOFTMAX_TILED_CPU;
    size_t sh[4] = {B, H, N, D};
    clattn_plan *plan = NULL;
    if (clattn_softmax_plan_create(ctx, &desc, sh, sh, sh, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_tensor tq = tu_view(bq, B, H, N, D, 0), tk = tu_view(bk, B, H, N, D, 0);
    clattn_tensor tv[2] = {tu_view(bv, B, H, N, D, 0), tu_view(bv2, B, H, N, D, 0)};
    for (int i = 0; i < 4; i++)
        tv[1].strides[i] *= 2;
    clattn_plan_info i0, after[3];
    clattn_plan_get_info(plan, &i0);
    float *outs[2] = {o1, o2};
    /* calls: in place, packed (strided V), packed again (nothing more allocated) */
    for (int call = 0; call < 3; call++) {
        clattn_tensor to = tu_view(bo[call > 0], B, H, N, D, 0);
        const clattn_tensor *tvc = &tv[call > 0];
        assert_int_equal(clattn_softmax_plan_enqueue(plan, &tq, &tk, tvc, &to, NULL, 0, NULL, NULL),
                         CLATTN_SUCCESS);
        if (call < 2)
            tu_read(ctx, bo[call], n * 4, outs[call]);
        clattn_plan_get_info(plan, &after[call]);
    }
    assert_int_equal(after[0].scratch_bytes, i0.scratch_bytes);
    assert_true(after[1].scratch_bytes >= i0.scratch_bytes + B * H * N * D * 4);
    assert_int_equal(after[2].scratch_bytes, after[1].scratch_bytes);
    tu_check_close(o1, ref, n, TU_TOL_FP32, "V in place");
    assert_memory_equal(o1, o2, n * 4);
    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bk, bv, bv2, bo[0], bo[1]};
    for (size_t i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(v2);
    free(ref);
    free(ref_lse);
    free(o1);
    free(o2);
}

/* Callers' [B, N, H, D] layouts through strides, no copies. */
static void test_strided_layout(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        tcase c = {2, 4, 2, 33, 66, 40, 1, 1, 1, 0, tiled_algos[a], 1, 1};
        run_case(&c);
    }
}

static void test_without_lse(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++) {
        tcase c = {1, 2, 1, 20, 30, 16, 1, 0, 1, 0, tiled_algos[a], 0, 0};
        run_case(&c);
    }
}

static void test_naive(void **state)
{
    (void)state;
    tcase cs[] = {
        {1, 2, 2, 65, 70, 64, 0, 0, 1, 0, CLATTN_SOFTMAX_NAIVE, 0, 1},
        {2, 4, 2, 33, 50, 40, 1, 1, 1, 0, CLATTN_SOFTMAX_NAIVE, 0, 1},
        {1, 1, 1, 1, 1, 1, 0, 0, 1, 0, CLATTN_SOFTMAX_NAIVE, 0, 1},
        {1, 2, 1, 70, 5, 16, 1, 0, 1, 0, CLATTN_SOFTMAX_NAIVE, 1, 1},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        run_case(&cs[i]);
}

/* The scheduler's choice runs, and is the family the device class calls for. */
static void test_auto(void **state)
{
    (void)state;
    tcase c = {1, 2, 2, 100, 100, 64, 1, 0, 1, 0, CLATTN_SOFTMAX_AUTO, 0, 1};
    run_case(&c);
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    size_t s[4] = {1, 2, 100, 64};
    clattn_plan *plan = NULL;
    assert_int_equal(clattn_softmax_plan_create(ctx, &d, s, s, s, &plan), CLATTN_SUCCESS);
    clattn_plan_info pi;
    assert_int_equal(clattn_plan_get_info(plan, &pi), CLATTN_SUCCESS);
    /* lib/sched/sched_softmax.c's rule: CPU-like devices with wide explicit vectors (PoCL) get the
     * register-blocked family, SIMT-style ones (llvmpipe, GPUs) the local-memory tiles. */
    if ((info.device_class == CLATTN_DEVICE_CPU || info.local_mem_emulated) &&
        info.native_vector_width_float >= 4)
        assert_int_equal(pi.algorithm, CLATTN_SOFTMAX_TILED_CPU);
    else
        assert_int_equal(pi.algorithm, CLATTN_SOFTMAX_TILED_GPU);
    clattn_plan_destroy(plan);
}

/* Two runs of the same inputs must agree bit for bit: a moving result means a race. */
static void test_repeatable(void **state)
{
    (void)state;
    size_t s[4] = {1, 2, 90, 40};
    size_t n = 2 * 90 * 40;
    uint64_t seed = 7;
    float *x = tu_random(n, 1.0f, &seed), *a = tu_poisoned(n), *b = tu_poisoned(n);
    for (size_t al = 0; al < 2; al++) {
        clattn_softmax_desc d;
        clattn_softmax_desc_init(&d);
        d.algorithm = tiled_algos[al];
        d.causal = 1;
        assert_int_equal(clattn_softmax_host(ctx, &d, s, s, s, x, x, x, NULL, a, NULL),
                         CLATTN_SUCCESS);
        assert_int_equal(clattn_softmax_host(ctx, &d, s, s, s, x, x, x, NULL, b, NULL),
                         CLATTN_SUCCESS);
        assert_memory_equal(a, b, n * 4);
    }
    free(x);
    free(a);
    free(b);
}

/* NaN in, NaN out, in both tiled families: a NaN in row 5 of q (head 0) makes that row's output
 * NaN; a NaN in key 10 of k (head 1) makes the rows of head 1 that see it (causal: rows >= 10)
 * NaN; every other row stays finite. (The CPU
 * family's exp2 once mapped a NaN weight to 0 and returned a finite, wrong row.) */
static void test_nan_propagates(void **state)
{
    (void)state;
    const size_t H = 2, N = 90, D = 40;
    size_t s[4] = {1, H, N, D};
    size_t n = H * N * D;
    uint64_t seed = 11;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed), *out = tu_poisoned(n);
    q[(0 * N + 5) * D + 3] = NAN;
    k[(1 * N + 10) * D + 0] = NAN;
    for (size_t al = 0; al < 2; al++) {
        clattn_softmax_desc d;
        clattn_softmax_desc_init(&d);
        d.algorithm = tiled_algos[al];
        d.causal = 1;
        assert_int_equal(clattn_softmax_host(ctx, &d, s, s, s, q, k, v, NULL, out, NULL),
                         CLATTN_SUCCESS);
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < N; i++) {
                int want_nan = (h == 0 && i == 5) || (h == 1 && i >= 10);
                for (size_t e = 0; e < D; e++) {
                    float x = out[(h * N + i) * D + e];
                    if (want_nan != (int)isnan(x))
                        fail_msg("algo %d head %zu row %zu col %zu: %g, want %s", (int)d.algorithm,
                                 h, i, e, (double)x, want_nan ? "NaN" : "a number");
                }
            }
    }
    free(q);
    free(k);
    free(v);
    free(out);
}

/* The kernels wait for the caller's events: nothing completes before a user event does. */
static void test_wait_list(void **state)
{
    (void)state;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    if (strncmp(info.name, "basic", 5) == 0) {
        /* PoCL 3.1's serial "basic" device deadlocks inside clSetUserEventStatus when a command
         * waits on a user event (seen in gdb: pocl_update_event_running), whoever enqueued it. */
        fprintf(stderr, "note: user-event gating skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    size_t n = 20 * 16;
    uint64_t seed = 3;
    float *x = tu_random(n, 1.0f, &seed), *o = tu_poisoned(n), *ref = malloc(n * 4);
    assert_non_null(ref);
    ref_softmax(x, x, x, ref, NULL, 1, 1, 1, 20, 20, 16, 0.25, 0, NULL);
    cl_int err;
    cl_event user = clCreateUserEvent(clattn_context_get_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    /* Buffers first: a blocking write would wait behind the gated queue. */
    cl_mem bx = tu_buffer(ctx, n * 4, x), bo[3] = {tu_buffer(ctx, n * 4, o), tu_buffer(ctx, n * 4, o),
                                              tu_buffer(ctx, n * 4, o)};
    clattn_tensor tx = clattn_tensor_make(bx, 1, 1, 20, 16);
    cl_event done[3];
    const clattn_softmax_algo algos[3] = {CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_TILED_GPU,
                                            CLATTN_SOFTMAX_NAIVE};
    for (size_t al = 0; al < 3; al++) {
        clattn_tensor to = clattn_tensor_make(bo[al], 1, 1, 20, 16);
        clattn_softmax_desc d;
        clattn_softmax_desc_init(&d);
        d.algorithm = algos[al];
        done[al] = NULL;
        if (clattn_softmax_enqueue(ctx, &d, &tx, &tx, &tx, &to, NULL, 1, &user, &done[al]) !=
            CLATTN_SUCCESS)
            fail_msg("enqueue: %s", clattn_context_last_error(ctx));
        assert_non_null(done[al]);
    }
    clFlush(clattn_context_get_cl_queue(ctx));
    for (size_t al = 0; al < 3; al++) {
        cl_int es = 0;
        clGetEventInfo(done[al], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
        assert_true(es != CL_COMPLETE);
    }
    clSetUserEventStatus(user, CL_COMPLETE);
    assert_int_equal(clWaitForEvents(3, done), CL_SUCCESS);
    for (size_t al = 0; al < 3; al++) {
        assert_int_equal(clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), bo[al], CL_TRUE, 0,
                                             n * 4, o, 0, NULL, NULL),
                         CL_SUCCESS);
        tu_check_close(o, ref, n, TU_TOL_FP32, "behind a user event");
        clReleaseEvent(done[al]);
        clReleaseMemObject(bo[al]);
    }
    clReleaseEvent(user);
    clReleaseMemObject(bx);
    free(x);
    free(o);
    free(ref);
}

/* A kernel that fails to build is reported with BUILD_FAILED and the compiler's log in the
 * context's message; nothing is cached, and the embedded sources work again afterwards. */
static void test_build_failure_reported(void **state)
{
    (void)state;
    char dir[] = "/tmp/clattn-badkernel-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/common.clh", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/softmax.cl", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("__kernel void clattn_softmax_fwd_cpu(__global float *x) { x[0] = undeclared_name; }\n", f);
    fclose(f);
    /* GPU-like devices build TILED_GPU's register-tiled kernel from its own file. */
    char gpath[128];
    snprintf(gpath, sizeof gpath, "%s/softmax_gpu.cl", dir);
    f = fopen(gpath, "w");
    assert_non_null(f);
    fputs("__kernel void clattn_softmax_fwd_gpu_rt(__global float *x) { x[0] = undeclared_name; }\n", f);
    fclose(f);
    setenv("CLATTN_KERNEL_DIR", dir, 1);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    size_t s[4] = {1, 1, 8, 8};
    clattn_plan *plan = NULL;
    clattn_status st = clattn_softmax_plan_create(ctx, &d, s, s, s, &plan);
    unsetenv("CLATTN_KERNEL_DIR");
    assert_int_equal(st, CLATTN_BUILD_FAILED);
    assert_null(plan);
    const char *msg = clattn_context_last_error(ctx);
    assert_non_null(strstr(msg, "CLATTN_BUILD_FAILED"));
    assert_non_null(strstr(msg, "undeclared_name")); /* the compiler's own words */
    remove(path);
    remove(gpath);
    snprintf(path, sizeof path, "%s/common.clh", dir);
    remove(path);
    rmdir(dir);
    assert_int_equal(clattn_softmax_plan_create(ctx, &d, s, s, s, &plan), CLATTN_SUCCESS);
    clattn_plan_destroy(plan);
}

/* One context shared by several threads: plans baked and run concurrently (different D, so the
 * program cache builds several programs at once) must all match the reference. */
typedef struct thread_job {
    size_t d;
    int ok;
    double err; /* the worst normalised error of its runs (cmocka asserts are not thread-safe) */
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    size_t s[4] = {1, 2, 45, job->d}, n = 2 * 45 * job->d;
    uint64_t seed = 99 + job->d;
    float *q = tu_random(n, 1.0f, &seed), *o = tu_poisoned(n), *r = malloc(n * 4);
    ref_softmax(q, q, q, r, NULL, 1, 2, 2, 45, 45, job->d, 1.0 / sqrt((double)job->d), 1, NULL);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.causal = 1;
    job->ok = 1;
    for (int rep = 0; rep < 3 && job->ok; rep++) {
        if (clattn_softmax_host(ctx, &d, s, s, s, q, q, q, NULL, o, NULL) != CLATTN_SUCCESS) {
            job->ok = 0;
            break;
        }
        job->err = fmax(job->err, tu_norm_inf_err(o, r, n));
        job->ok = job->err <= 1e-4; /* DESIGN.md section 4 */
    }
    free(q);
    free(o);
    free(r);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    if (strncmp(info.name, "basic", 5) == 0) {
        /* PoCL 3.1's serial "basic" device runs commands inside the enqueuing thread and
         * deadlocks between POclReleaseEvent and pocl_update_event_running when two threads
         * enqueue at once (seen in gdb); it is not a thread-safe OpenCL implementation. */
        fprintf(stderr, "note: concurrent enqueue skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    enum { T = 4 };
    pthread_t th[T];
    thread_job jobs[T] = {{8, 0, 0}, {24, 0, 0}, {8, 0, 0}, {48, 0, 0}};
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++)
        if (!jobs[i].ok)
            fail_msg("thread %d (D=%zu) failed: error %.3e; last message: %s", i, jobs[i].d,
                     jobs[i].err, clattn_context_last_error(ctx));
}

/* The blocking host call on a context wrapping an out-of-order queue: its read-back must wait for
 * the attention (it once read out before the kernels ran there: 13 of 20 causal calls returned
 * CLATTN_SUCCESS with rows of zeros or unwritten). 20 causal calls, each on NaN-poisoned outputs,
 * all equal the reference. Skipped where the device has no out-of-order queues (rusticl). */
static void test_host_out_of_order_queue(void **state)
{
    (void)state;
    cl_device_id dev = clattn_context_get_cl_device(ctx);
    cl_command_queue oq = tu_out_of_order_queue(ctx);
    clattn_context *octx = NULL;
    tu_expect_status(NULL,
                     clattn_context_create_from_cl(clattn_context_get_cl_context(ctx), dev, oq,
                                                   &octx),
                     CLATTN_SUCCESS, "context on an out-of-order queue");
    enum { OB = 1, OHQ = 4, OHK = 2, ON = 512, OD = 64 };
    size_t qs[4] = {OB, OHQ, ON, OD}, ks[4] = {OB, OHK, ON, OD};
    size_t nq = (size_t)OB * OHQ * ON * OD, nk = (size_t)OB * OHK * ON * OD;
    size_t nl = (size_t)OB * OHQ * ON;
    uint64_t seed = 2024;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nk, 1.0f, &seed);
    float *ref = malloc(nq * 4), *ref_lse = malloc(nl * 4);
    assert_true(ref && ref_lse);
    ref_softmax(q, k, v, ref, ref_lse, OB, OHQ, OHK, ON, ON, OD, 1.0 / sqrt((double)OD), 1, NULL);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.causal = 1;
    for (int call = 0; call < 20; call++) {
        float *out = tu_poisoned(nq), *lse = tu_poisoned(nl);
        char what[64];
        snprintf(what, sizeof what, "out-of-order queue, host call %d", call);
        tu_expect_status(octx,
                         clattn_softmax_host(octx, &d, qs, ks, ks, q, k, v, NULL, out, lse),
                         CLATTN_SUCCESS, what);
        tu_check_close(out, ref, nq, TU_TOL_FP32, what);
        tu_check_close(lse, ref_lse, nl, TU_TOL_FP32, what);
        free(out);
        free(lse);
    }
    clattn_context_destroy(octx);
    clReleaseCommandQueue(oq);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(ref_lse);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_context_last_error(NULL));
        return -1; /* a missing device is a failure, never a skip */
    }
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    fprintf(stderr, "device: %s / %s\n", info.platform_name, info.name);
    loop_cap = info.loop_iteration_cap;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_dims),   cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_cross),       cmocka_unit_test(test_gqa_mqa),
        cmocka_unit_test(test_key_lengths), cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_strided_layout), cmocka_unit_test(test_v_in_place),
        cmocka_unit_test(test_v_scratch_on_demand), cmocka_unit_test(test_k_in_place),
        cmocka_unit_test(test_k_scratch_on_demand), cmocka_unit_test(test_without_lse),
        cmocka_unit_test(test_naive),       cmocka_unit_test(test_auto),
        cmocka_unit_test(test_repeatable),  cmocka_unit_test(test_wait_list),
        cmocka_unit_test(test_threads),     cmocka_unit_test(test_build_failure_reported),
        cmocka_unit_test(test_host_out_of_order_queue), cmocka_unit_test(test_cpu_blocks),
        cmocka_unit_test(test_nan_propagates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
