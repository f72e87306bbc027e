/* test_sched_rpe.c - device-free checks of RPE attention's launch decisions
 * (lib/sched/sched_rpe.c) on the made-up devices of test_devices.c: AUTO's FFT/direct crossover
 * against the cost model written out here, the requested algorithm honoured, the causal head
 * rows, the FFT groups within their scratch budget (and the device's max allocation), shared
 * spectra for grouped query heads, the feature kernels' work-group sizes from the quirk fields,
 * the RPE_-prefixed -D options, and the refusals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"
#include "sched.h"

#include "test_devices.h"

static clattn_device_info devs[MAX_DEVS];
static size_t ndev;

/* The smallest 2^a 3^b 5^c 7^d >= n (what lib/blocks/fft.c's good length gives), at least 2. */
static size_t smooth_len(size_t n)
{
    for (size_t m = n < 2 ? 2 : n;; m++) {
        size_t r = m;
        for (size_t p = 2; p <= 7; p++)
            while (r % p == 0)
                r /= p;
        if (r == 1)
            return m;
    }
}

static clattn__rpe_problem problem(size_t hq, size_t hk, size_t n, size_t m, size_t dv,
                                   int causal)
{
    clattn__rpe_problem p = {1, hq, hk, n, m, dv, causal, smooth_len(2 * n - 1), 0, 0};
    return p;
}

static clattn__rpe_launch schedule(const clattn_device_info *dev, const clattn__rpe_problem *p,
                                   clattn_rpe_algo algo)
{
    clattn__rpe_launch L;
    char why[160];
    clattn_status st = clattn__schedule_rpe(dev, p, algo, &L, why, sizeof why);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: N %zu M %zu Dv %zu: %s (%s)", dev->name, p->n, p->m, p->dv,
                 clattn_status_string(st), why);
    return L;
}

/* The documented cost model: FFT when N (M + Dv) (1/2 causal) >= 24 M (Dv + 1) log2(2N). */
static int model_fft(size_t n, size_t m, size_t dv, int causal)
{
    double direct = (double)n * (double)(m + dv) * (causal ? 0.5 : 1.0);
    return direct >= 24.0 * (double)m * (double)(dv + 1) * log2(2.0 * (double)n);
}

/* AUTO on both sides of the measured crossovers (M = Dv = 16 near N = 3000, M = Dv = 64 near
 * N = 9000, causal M = Dv = 16 between 4k and 16k), the same on every device, and equal to the
 * model over a sweep. */
static void test_auto_crossover(void **state)
{
    (void)state;
    static const struct {
        size_t n, m;
        int causal, fft;
    } pts[] = {{2000, 16, 0, 0}, {3000, 16, 0, 1},  {8000, 64, 0, 0},
               {12000, 64, 0, 1}, {4096, 16, 1, 0}, {16384, 16, 1, 1}};
    for (size_t d = 0; d < ndev; d++) {
        for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
            clattn__rpe_problem p = problem(1, 1, pts[i].n, pts[i].m, pts[i].m, pts[i].causal);
            clattn__rpe_launch L = schedule(&devs[d], &p, CLATTN_RPE_AUTO);
            if (L.algo != (pts[i].fft ? CLATTN_RPE_FFT : CLATTN_RPE_DIRECT))
                fail_msg("%s: N %zu M %zu causal %d: algo %d", devs[d].name, pts[i].n, pts[i].m,
                         pts[i].causal, L.algo);
        }
        for (size_t n = 2; n <= 70000; n = n * 3 / 2 + 1)
            for (int causal = 0; causal < 2; causal++) {
                clattn__rpe_problem p = problem(2, 1, n, 32, 8, causal);
                clattn__rpe_launch L = schedule(&devs[d], &p, CLATTN_RPE_AUTO);
                int head_all = causal && (n + 63) / 64 >= n;
                int want = !head_all && model_fft(n, 32, 8, causal);
                assert_int_equal(L.algo, want ? CLATTN_RPE_FFT : CLATTN_RPE_DIRECT);
            }
    }
}

/* A requested algorithm is kept, except FFT where the causal head rows are every row (N = 1). */
static void test_requested(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        clattn__rpe_problem p = problem(1, 1, 20, 4, 4, 0);
        assert_int_equal(schedule(&devs[d], &p, CLATTN_RPE_FFT).algo, CLATTN_RPE_FFT);
        p = problem(1, 1, 100000, 4, 4, 0);
        assert_int_equal(schedule(&devs[d], &p, CLATTN_RPE_DIRECT).algo, CLATTN_RPE_DIRECT);
        p = problem(1, 1, 1, 4, 4, 1);
        assert_int_equal(schedule(&devs[d], &p, CLATTN_RPE_FFT).algo, CLATTN_RPE_DIRECT);
        p = problem(1, 1, 1, 4, 4, 0);
        assert_int_equal(schedule(&devs[d], &p, CLATTN_RPE_FFT).algo, CLATTN_RPE_FFT);
    }
}

/* The causal FFT path sums its first ceil(N / 64) rows directly; never more than N - 1. */
static void test_head_rows(void **state)
{
    (void)state;
    static const size_t ns[] = {2, 7, 64, 65, 1500, 4097};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        clattn__rpe_problem p = problem(1, 1, ns[i], 8, 8, 1);
        clattn__rpe_launch L = schedule(&devs[0], &p, CLATTN_RPE_FFT);
        assert_int_equal(L.algo, CLATTN_RPE_FFT);
        assert_int_equal(L.head_rows, (ns[i] + 63) / 64);
        assert_true(L.head_rows < ns[i]);
        p.causal = 0;
        assert_int_equal(schedule(&devs[0], &p, CLATTN_RPE_FFT).head_rows, 0);
        assert_int_equal(schedule(&devs[0], &p, CLATTN_RPE_DIRECT).head_rows, 0);
    }
}

/* Bytes of one group's FFT scratch: signals' real rows and spectra (and products when shared). */
static size_t group_bytes(const clattn__rpe_launch *L)
{
    size_t spectra = L->spectra_shared ? 2 : 1;
    return L->signals * (L->fft_len * 4 + spectra * L->fft_bins * 8);
}

static void check_groups(const clattn_device_info *dev, const clattn__rpe_problem *p,
                         const clattn__rpe_launch *L, size_t budget)
{
    size_t total = p->batch * p->hk * p->m;
    assert_int_equal(L->fft_len, p->fft_len);
    assert_int_equal(L->fft_bins, p->fft_len / 2 + 1);
    assert_int_equal(L->signals, L->per_group * (p->dv + 1));
    assert_true(L->groups >= 1 && L->per_group >= 1);
    assert_true(L->groups * L->per_group >= total);       /* every triple in a group */
    assert_true((L->groups - 1) * L->per_group < total);  /* no empty group */
    if (L->per_group > 1 && group_bytes(L) > budget)
        fail_msg("%s: group of %zu bytes over the budget %zu", dev->name, group_bytes(L),
                 budget);
}

/* The groups fit the default budget (128 MiB), a caller's budget, and half the device's max
 * allocation; one group when everything fits. */
static void test_fft_groups(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        clattn__rpe_problem p = problem(2, 2, 45, 7, 4, 0);
        p.batch = 2;
        clattn__rpe_launch L = schedule(&devs[d], &p, CLATTN_RPE_FFT);
        assert_int_equal(L.groups, 1);
        check_groups(&devs[d], &p, &L, (size_t)128 << 20);
        p.fft_scratch = 60000; /* test_rpe's small budget: several groups */
        L = schedule(&devs[d], &p, CLATTN_RPE_FFT);
        assert_true(L.groups > 1);
        check_groups(&devs[d], &p, &L, 60000);
        p.fft_scratch = 1; /* below one triple: one triple per group */
        L = schedule(&devs[d], &p, CLATTN_RPE_FFT);
        assert_int_equal(L.per_group, 1);
        assert_int_equal(L.groups, p.batch * p.hk * p.m);
        p = problem(8, 8, 65536, 64, 64, 0);
        L = schedule(&devs[d], &p, CLATTN_RPE_FFT);
        check_groups(&devs[d], &p, &L, (size_t)128 << 20);
        assert_true(L.groups > 1);
    }
    clattn_device_info small = devs[0];
    small.max_alloc_size = (uint64_t)1 << 20;
    clattn__rpe_problem p = problem(4, 4, 256, 16, 16, 0);
    clattn__rpe_launch L = schedule(&small, &p, CLATTN_RPE_FFT);
    assert_true(L.groups > 1 && L.per_group > 1);
    check_groups(&small, &p, &L, (size_t)1 << 19);
}

/* Grouped query heads: groups run over the key heads' triples, the spectra are kept for each
 * query head's product (so a group holds fewer triples for the same budget); not for Hq = Hk. */
static void test_gqa(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        clattn__rpe_problem mha = problem(8, 8, 4096, 16, 16, 0);
        clattn__rpe_problem gqa = problem(8, 2, 4096, 16, 16, 0);
        mha.fft_scratch = gqa.fft_scratch = (size_t)8 << 20;
        clattn__rpe_launch a = schedule(&devs[d], &mha, CLATTN_RPE_FFT);
        clattn__rpe_launch b = schedule(&devs[d], &gqa, CLATTN_RPE_FFT);
        assert_false(a.spectra_shared);
        assert_true(b.spectra_shared);
        assert_true(b.per_group < a.per_group);
        check_groups(&devs[d], &mha, &a, mha.fft_scratch);
        check_groups(&devs[d], &gqa, &b, gqa.fft_scratch);
        /* the choice between the paths does not depend on the head grouping */
        for (size_t n = 100; n < 40000; n *= 2) {
            clattn__rpe_problem x = problem(8, 8, n, 16, 16, 1), y = problem(8, 1, n, 16, 16, 1);
            assert_int_equal(schedule(&devs[d], &x, CLATTN_RPE_AUTO).algo,
                             schedule(&devs[d], &y, CLATTN_RPE_AUTO).algo);
        }
    }
}

/* The feature kernels run one item per work-group on CPU-style devices and where the driver caps
 * loop iterations over a work-group (llvmpipe's quirk fields); FAVOR's projection and rescale
 * kernels only on the latter. Never a name match: a renamed device with the same fields gets the
 * same sizes. */
static void test_local_sizes(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        const clattn_device_info *dev = &devs[d];
        clattn__rpe_problem p = problem(1, 1, 100, 8, 8, 0);
        clattn__rpe_launch L = schedule(dev, &p, CLATTN_RPE_AUTO);
        int capped = dev->loop_iteration_cap != 0 || dev->simt_cpu;
        int cpu = (dev->device_class == CLATTN_DEVICE_CPU || dev->local_mem_emulated) &&
                  dev->native_vector_width_float >= 4;
        assert_int_equal(L.features_local, capped || cpu ? 1 : 0);
        assert_int_equal(L.favor_local, capped ? 1 : 0);
        clattn_device_info renamed = *dev;
        snprintf(renamed.name, sizeof renamed.name, "llvmpipe");
        clattn__rpe_launch R = schedule(&renamed, &p, CLATTN_RPE_AUTO);
        assert_int_equal(R.features_local, L.features_local);
        assert_int_equal(R.favor_local, L.favor_local);
    }
}

/* The -D options: RPE_-prefixed, the kernels' accumulator limit and the parts count the host
 * launches with. */
static void test_defines(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        clattn__rpe_problem p = problem(1, 1, 300, 8, 8, 1);
        clattn__rpe_launch L = schedule(&devs[d], &p, CLATTN_RPE_FFT);
        char want[64];
        snprintf(want, sizeof want, "-DRPE_MAX_DV=%d -DRPE_PARTS=%zu", CLATTN__RPE_MAX_DV,
                 L.parts);
        assert_true(strncmp(L.defines, want, strlen(want)) == 0); /* + the tiled kernel's */
        assert_true(L.parts >= 1);
        for (const char *s = strstr(L.defines, "-D"); s; s = strstr(s + 2, "-D"))
            assert_true(strncmp(s, "-DRPE_", 6) == 0);
    }
}

/* The direct sums' kernel: tiled (RPE_TX x RPE_TY work-items, __local tiles) on GPU-like devices
 * whose local memory and work-group size take it, per row on CPUs; either when forced (tiled only
 * where it fits); none when the FFT path needs no direct rows. */
static void test_direct_kernel(void **state)
{
    (void)state;
    for (size_t d = 0; d < ndev; d++) {
        const clattn_device_info *dev = &devs[d];
        for (size_t dv = 1; dv <= 200; dv += 71) {
            clattn__rpe_problem p = problem(2, 1, 100, 16, dv, 0);
            clattn__rpe_launch L = schedule(dev, &p, CLATTN_RPE_DIRECT);
            bool gpu = clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU;
            if (L.direct_tiled) {
                assert_true(L.tile_local_bytes <= dev->local_mem_size);
                assert_true(L.tile_local <= dev->max_work_group_size);
                assert_true(L.tile_rows >= 1 && L.tile_dv_groups >= 1);
                /* The column groups cover Dv, RPE_RD columns per item at most 8. */
                const char *rd = strstr(L.defines, "-DRPE_RD=");
                assert_non_null(rd);
                size_t r = (size_t)atoi(rd + 9);
                assert_true(r >= 1 && r <= 8);
                assert_true(L.tile_dv_groups * r * 8 >= dv);
                assert_true((L.tile_dv_groups - 1) * r * 8 < dv);
            } else {
                assert_int_equal(L.tile_local, 0);
                assert_null(strstr(L.defines, "-DRPE_RD="));
            }
            p.direct_kernel = CLATTN__RPE_DIRECT_TILED;
            clattn__rpe_launch F = schedule(dev, &p, CLATTN_RPE_DIRECT);
            bool fits = F.direct_tiled;
            assert_int_equal(L.direct_tiled, gpu && fits);
            if (fits)
                assert_true(F.tile_local_bytes <= dev->local_mem_size);
            p.direct_kernel = CLATTN__RPE_DIRECT_ROWS;
            assert_int_equal(schedule(dev, &p, CLATTN_RPE_DIRECT).direct_tiled, 0);
            /* Non-causal FFT: no direct rows, no direct kernel. */
            p.direct_kernel = CLATTN__RPE_DIRECT_TILED;
            assert_int_equal(schedule(dev, &p, CLATTN_RPE_FFT).direct_tiled, 0);
        }
    }
    /* The GPU-like made-up devices take the tile: NVIDIA-, AMD-, Intel-like and llvmpipe. */
    size_t tiled = 0;
    for (size_t d = 0; d < ndev; d++) {
        clattn__rpe_problem p = problem(1, 1, 64, 64, 64, 1);
        tiled += (size_t)schedule(&devs[d], &p, CLATTN_RPE_DIRECT).direct_tiled;
    }
    assert_true(tiled >= 3);
    /* A 16 KiB GPU cannot hold the 8-column tile (16.5 KiB) but does the 1-column one. */
    clattn_device_info small = make_dev("small", CLATTN_DEVICE_GPU, 16384, 0, 256, 256);
    clattn__rpe_problem p = problem(1, 1, 64, 64, 64, 0);
    assert_int_equal(schedule(&small, &p, CLATTN_RPE_DIRECT).direct_tiled, 0);
    p.dv = 8;
    assert_int_equal(schedule(&small, &p, CLATTN_RPE_DIRECT).direct_tiled, 1);
    /* Unknown kernel choice. */
    p.direct_kernel = 9;
    clattn__rpe_launch L;
    assert_int_equal(clattn__schedule_rpe(&small, &p, CLATTN_RPE_DIRECT, &L, NULL, 0),
                     CLATTN_INVALID_ARGUMENT);
}

static void test_invalid(void **state)
{
    (void)state;
    clattn__rpe_launch L;
    clattn__rpe_problem p = problem(4, 2, 50, 8, 8, 0);
    assert_int_equal(clattn__schedule_rpe(NULL, &p, CLATTN_RPE_AUTO, &L, NULL, 0),
                     CLATTN_NULL_POINTER);
    assert_int_equal(clattn__schedule_rpe(&devs[0], NULL, CLATTN_RPE_AUTO, &L, NULL, 0),
                     CLATTN_NULL_POINTER);
    clattn__rpe_problem q = p;
    q.hq = 3;
    assert_int_equal(clattn__schedule_rpe(&devs[0], &q, CLATTN_RPE_AUTO, &L, NULL, 0),
                     CLATTN_INVALID_ARGUMENT);
    q = p;
    q.dv = CLATTN__RPE_MAX_DV + 1;
    assert_int_equal(clattn__schedule_rpe(&devs[0], &q, CLATTN_RPE_AUTO, &L, NULL, 0),
                     CLATTN_INVALID_SHAPE);
    q = p;
    q.n = 0;
    assert_int_equal(clattn__schedule_rpe(&devs[0], &q, CLATTN_RPE_AUTO, &L, NULL, 0),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__schedule_rpe(&devs[0], &p, (clattn_rpe_algo)7, &L, NULL, 0),
                     CLATTN_INVALID_ARGUMENT);
    q = p;
    q.fft_len = 2 * q.n - 2;
    char why[160] = "";
    assert_int_equal(clattn__schedule_rpe(&devs[0], &q, CLATTN_RPE_FFT, &L, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
    assert_true(why[0] != '\0');
}

int main(void)
{
    ndev = make_devices(devs);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_crossover), cmocka_unit_test(test_requested),
        cmocka_unit_test(test_head_rows),      cmocka_unit_test(test_fft_groups),
        cmocka_unit_test(test_gqa),            cmocka_unit_test(test_local_sizes),
        cmocka_unit_test(test_defines),        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_direct_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
