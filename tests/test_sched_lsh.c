/* Device-free checks of LSH attention's launch decisions (lib/sched/sched_lsh.c) on the made-up
 * devices of test_devices.c: the rows-per-work-item rule, work-groups within every device's
 * limits, the sort crossover in buckets and the loop-cap rule, LSH_-prefixed -D options only, the
 * validation of explicit launches, and the tuner's candidate list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"
#include "sched.h"

#include "test_devices.h"

static size_t pad16(size_t x) { return (x + 15) / 16 * 16; }

static size_t wg_limit(const clattn_device_info *dev)
{
    size_t lim = dev->max_work_group_size;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    return lim;
}

static clattn__lsh_problem prob(size_t n, size_t d, size_t dv, size_t nb)
{
    clattn__lsh_problem p = {2, n, d, dv, 4, nb, 64, 0, {0}};
    return p;
}

/* Every option is an LSH_ one, and the head dims, rows and panel are there. */
static void check_defines(const clattn__lsh_launch *L, const clattn__lsh_problem *p,
                          const char *dev)
{
    char want[64];
    const char *s = L->defines;
    while ((s = strstr(s, "-D")) != NULL) {
        if (strncmp(s, "-DLSH_", 6) != 0)
            fail_msg("%s: option without the LSH_ prefix in '%s'", dev, L->defines);
        s += 2;
    }
    snprintf(want, sizeof want, "-DLSH_DP=%zu ", pad16(p->d));
    assert_non_null(strstr(L->defines, want));
    snprintf(want, sizeof want, "-DLSH_DVP=%zu ", pad16(p->dv));
    assert_non_null(strstr(L->defines, want));
    snprintf(want, sizeof want, "-DLSH_ROWS=%u ", L->rows);
    assert_non_null(strstr(L->defines, want));
    snprintf(want, sizeof want, "-DLSH_PANEL=%d", CLATTN__LSH_PANEL);
    assert_non_null(strstr(L->defines, want));
}

/* Rows by the larger padded head dim (4 up to 64, 2 up to 128, else 1); the attend group covers
 * one 16-slot panel; every group within the device; the hash group times rows is the row group. */
static void test_rows_and_groups(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    static const size_t dims[][2] = {{1, 1},     {16, 16},  {64, 64},   {64, 65},
                                     {65, 16},   {100, 72}, {128, 128}, {129, 8},
                                     {250, 241}, {256, 256}};
    for (size_t i = 0; i < nd; i++)
        for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++) {
            clattn__lsh_problem p = prob(4096, dims[j][0], dims[j][1], 64);
            clattn__lsh_launch L, L2;
            char why[160] = "";
            assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &L, why, sizeof why),
                             CLATTN_SUCCESS);
            assert_true(why[0] != '\0');
            size_t m = pad16(dims[j][0]) > pad16(dims[j][1]) ? pad16(dims[j][0])
                                                               : pad16(dims[j][1]);
            unsigned rows = m <= 64 ? 4 : m <= 128 ? 2 : 1;
            assert_int_equal(L.rows, rows);
            size_t lim = wg_limit(&devs[i]);
            assert_true(L.local_size >= 1 && L.local_size <= lim);
            assert_true(L.row_local >= 1 && L.row_local <= lim);
            assert_true(L.hash_local >= 1 && L.hash_local <= lim);
            assert_true(CLATTN__LSH_PANEL % (L.rows * L.local_size) == 0);
            if (lim >= 16) {
                assert_int_equal(L.rows * L.local_size, 16);
                assert_int_equal(L.row_local, 16);
                assert_int_equal(L.hash_local * L.rows, L.row_local);
            }
            check_defines(&L, &p, devs[i].name);
            /* Pure: the same answer twice, and the same as the explicit form. */
            assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &L2, NULL, 0), CLATTN_SUCCESS);
            assert_memory_equal(&L, &L2, sizeof L);
            assert_int_equal(clattn__lsh_launch_from(&devs[i], &p, L.rows, L.local_size,
                                                     L.counting_sort, &L2, NULL, 0),
                             CLATTN_SUCCESS);
            assert_memory_equal(&L, &L2, sizeof L);
        }
}

/* The counting sort up to CLATTN__LSH_COUNTING_MAX_BUCKETS buckets, the radix-sort block above;
 * its tile is max(buckets, 256) positions, the radix key as many bits as the largest bucket. */
static void test_sort_crossover(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    static const struct {
        size_t nb;
        unsigned tile, bits;
    } cases[] = {{2, 256, 1},     {4, 256, 2},       {64, 256, 6},      {256, 256, 8},
                 {258, 258, 9},   {1024, 1024, 10},  {1026, 1026, 11},  {4096, 4096, 12},
                 {65536, 65536, 16}};
    for (size_t i = 0; i < nd; i++) {
        if (devs[i].loop_iteration_cap)
            continue; /* test_loop_cap */
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
            clattn__lsh_problem p = prob(2048, 64, 64, cases[j].nb);
            clattn__lsh_launch L;
            assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &L, NULL, 0), CLATTN_SUCCESS);
            assert_int_equal(L.counting_sort, cases[j].nb <= CLATTN__LSH_COUNTING_MAX_BUCKETS);
            assert_int_equal(L.sort_tile, cases[j].tile);
            assert_int_equal(L.key_bits, cases[j].bits);
        }
    }
    assert_int_equal(CLATTN__LSH_COUNTING_MAX_BUCKETS, 1024);
}

/* llvmpipe ends loops at 65535 iterations: where the counting sort's scan (buckets x tiles) or
 * histogram (buckets + tile) would pass it, the radix-sort block sorts there, and only there. */
static void test_loop_cap(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs), capped = 0;
    static const struct {
        size_t n, nb;
    } cases[] = {{4096, 64}, {261888, 64}, {261889, 64}, {1000, 512},
                 {130000, 512}, {64512, 1024}, {64513, 1024}};
    for (size_t i = 0; i < nd; i++) {
        if (!devs[i].loop_iteration_cap)
            continue;
        capped++;
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
            clattn__lsh_problem p = prob(cases[j].n, 32, 32, cases[j].nb);
            size_t tile = cases[j].nb > 256 ? cases[j].nb : 256;
            size_t tiles = (cases[j].n + tile - 1) / tile;
            int fits = cases[j].nb * tiles <= devs[i].loop_iteration_cap &&
                       cases[j].nb + tile <= devs[i].loop_iteration_cap;
            clattn__lsh_launch L, F;
            assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &L, NULL, 0), CLATTN_SUCCESS);
            assert_int_equal(L.counting_sort, fits);
            /* An explicit counting sort is refused where it does not fit. */
            assert_int_equal(clattn__lsh_launch_from(&devs[i], &p, L.rows, L.local_size, 1, &F,
                                                     NULL, 0),
                             fits ? CLATTN_SUCCESS : CLATTN_UNSUPPORTED);
            assert_int_equal(clattn__lsh_launch_from(&devs[i], &p, L.rows, L.local_size, 0, &F,
                                                     NULL, 0),
                             CLATTN_SUCCESS);
        }
        /* Concretely: 64 buckets (tiles of 256) count up to N = 1023 x 256 = 261888, 1024
         * buckets (tiles of 1024) up to 63 x 1024 = 64512. */
        clattn__lsh_problem a = prob(261888, 32, 32, 64), b = prob(261889, 32, 32, 64);
        clattn__lsh_problem c = prob(64512, 32, 32, 1024), e = prob(64513, 32, 32, 1024);
        clattn__lsh_launch L;
        assert_int_equal(clattn__schedule_lsh(&devs[i], &a, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(L.counting_sort, 1);
        assert_int_equal(clattn__schedule_lsh(&devs[i], &b, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(L.counting_sort, 0);
        assert_int_equal(clattn__schedule_lsh(&devs[i], &c, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(L.counting_sort, 1);
        assert_int_equal(clattn__schedule_lsh(&devs[i], &e, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(L.counting_sort, 0);
    }
    assert_true(capped >= 1);
    /* The hash and attend kernels' loops: fewer rows per work-item where that makes them fit,
     * UNSUPPORTED where even one row does not (bounds in sched_lsh.c, measured on llvmpipe). */
    clattn_device_info pipe = devs[6];
    assert_int_equal(pipe.loop_iteration_cap, 65535);
    clattn__lsh_problem h = {1, 4096, 64, 64, 1, 8192, 64, 0, {0}}; /* hash fits with 1 row only */
    clattn__lsh_problem big = {1, 4096, 8, 8, 2, 65536, 64, 0, {0}};
    clattn__lsh_problem win = {1, 16384, 8, 8, 1, 2, 8192, 0, {0}};  /* two windows of 512 panels */
    clattn__lsh_launch H;
    char why[200] = "";
    assert_int_equal(clattn__schedule_lsh(&pipe, &h, &H, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(H.rows, 1);
    assert_int_equal(H.local_size, 16);
    assert_int_equal(clattn__lsh_launch_from(&pipe, &h, 2, 8, 1, &H, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_non_null(strstr(why, "65535"));
    assert_int_equal(clattn__schedule_lsh(&pipe, &big, &H, why, sizeof why), CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__schedule_lsh(&pipe, &win, &H, why, sizeof why), CLATTN_UNSUPPORTED);
    clattn__lsh_launch cand[8];
    assert_int_equal(clattn__lsh_candidates(&pipe, &big, cand, 8), 0);
    /* Elsewhere they keep the rule's rows. */
    assert_int_equal(clattn__schedule_lsh(&devs[3], &h, &H, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(H.rows, 4);
    assert_int_equal(clattn__schedule_lsh(&devs[3], &big, &H, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(clattn__schedule_lsh(&devs[0], &win, &H, NULL, 0), CLATTN_SUCCESS);
    /* The same problems count on a device without a cap. */
    clattn_device_info pocl = devs[3];
    assert_int_equal(pocl.loop_iteration_cap, 0);
    clattn__lsh_problem e = prob(65536, 32, 32, 1024);
    clattn__lsh_launch L;
    assert_int_equal(clattn__schedule_lsh(&pocl, &e, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.counting_sort, 1);
}

static void test_invalid_problems(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    make_devices(devs);
    static const struct {
        size_t bh, n, d, dv, nh, nb, chunk;
        clattn_status want;
    } cases[] = {
        {0, 8, 16, 16, 4, 64, 64, CLATTN_INVALID_SHAPE},
        {1, 0, 16, 16, 4, 64, 64, CLATTN_INVALID_SHAPE},
        {1, 8, 0, 16, 4, 64, 64, CLATTN_INVALID_SHAPE},
        {1, 8, 257, 16, 4, 64, 64, CLATTN_INVALID_SHAPE},
        {1, 8, 16, 257, 4, 64, 64, CLATTN_INVALID_SHAPE},
        {1, 8, 16, 16, 0, 64, 64, CLATTN_INVALID_ARGUMENT},
        {1, 8, 16, 16, CLATTN_LSH_MAX_HASHES + 1, 64, 64, CLATTN_INVALID_ARGUMENT},
        {1, 8, 16, 16, 4, 0, 64, CLATTN_INVALID_ARGUMENT},
        {1, 8, 16, 16, 4, 63, 64, CLATTN_INVALID_ARGUMENT},
        {1, 8, 16, 16, 4, CLATTN_LSH_MAX_BUCKETS + 2, 64, CLATTN_INVALID_ARGUMENT},
        {1, 8, 16, 16, 4, 64, 0, CLATTN_INVALID_ARGUMENT},
    };
    for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
        clattn__lsh_problem p = {cases[j].bh, cases[j].n,  cases[j].d,     cases[j].dv,
                                 cases[j].nh, cases[j].nb, cases[j].chunk, 0, {0}};
        clattn__lsh_launch L, cand[4];
        char why[160] = "";
        assert_int_equal(clattn__schedule_lsh(&devs[0], &p, &L, why, sizeof why), cases[j].want);
        assert_true(why[0] != '\0');
        assert_int_equal(clattn__lsh_launch_from(&devs[0], &p, 4, 4, 1, &L, NULL, 0),
                         cases[j].want);
        assert_int_equal(clattn__lsh_candidates(&devs[0], &p, cand, 4), 0);
    }
}

/* Explicit launches: rows 1, 2, 4 or 8 within twice the default's private floats; a power-of-two
 * attend group with rows x group within one panel and the device; a 0/1 sort flag. */
static void test_launch_from(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    clattn__lsh_problem p64 = prob(1000, 64, 64, 64), p128 = prob(1000, 128, 100, 64);
    clattn__lsh_launch L;
    for (size_t i = 0; i < nd; i++) {
        const clattn_device_info *d = &devs[i];
        char why[160] = "";
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 3, 1, 1, &L, why, sizeof why),
                         CLATTN_UNSUPPORTED);
        assert_true(why[0] != '\0');
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 16, 1, 1, &L, NULL, 0),
                         CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 8, 1, 1, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(clattn__lsh_launch_from(d, &p128, 8, 1, 1, &L, NULL, 0),
                         CLATTN_UNSUPPORTED); /* 8 x 128 floats */
        assert_int_equal(clattn__lsh_launch_from(d, &p128, 4, 1, 1, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 1, 3, 1, &L, NULL, 0),
                         CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 1, 32, 1, &L, NULL, 0),
                         CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 4, 8, 1, &L, NULL, 0),
                         CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 1, 16, 1, &L, NULL, 0),
                         wg_limit(d) >= 16 ? CLATTN_SUCCESS : CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 4, 4, 2, &L, NULL, 0),
                         CLATTN_UNSUPPORTED);
        assert_int_equal(clattn__lsh_launch_from(d, &p64, 2, 2, 0, &L, NULL, 0), CLATTN_SUCCESS);
        assert_int_equal(L.counting_sort, 0);
        assert_int_equal(L.rows, 2);
        assert_int_equal(L.local_size, 2);
    }
    /* A device whose work-groups hold 4 items at most. */
    clattn_device_info tiny = make_dev("max WG 4", CLATTN_DEVICE_GPU, 32 * 1024, 0, 4, 4);
    assert_int_equal(clattn__lsh_launch_from(&tiny, &p64, 1, 8, 1, &L, NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__schedule_lsh(&tiny, &p64, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.local_size, 4);
    assert_int_equal(L.row_local, 4);
    assert_int_equal(L.hash_local, 1);
}

/* The tuner's list: the default first, then distinct valid launches with the default's sort,
 * never further from the default than a later one; `cap` respected. */
static void test_candidates(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    static const size_t dims[] = {16, 64, 100, 256};
    for (size_t i = 0; i < nd; i++)
        for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++) {
            clattn__lsh_problem p = prob(5000, dims[j], dims[j], j == 3 ? 2048 : 64);
            clattn__lsh_launch def, c[64], chk;
            if (devs[i].loop_iteration_cap && j == 3) { /* D 256, 2048 buckets: past the cap */
                assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &def, NULL, 0),
                                 CLATTN_UNSUPPORTED);
                assert_int_equal(clattn__lsh_candidates(&devs[i], &p, c, 64), 0);
                continue;
            }
            assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &def, NULL, 0), CLATTN_SUCCESS);
            size_t n = clattn__lsh_candidates(&devs[i], &p, c, 64);
            assert_true(n >= 2);
            assert_memory_equal(&c[0], &def, sizeof def);
            unsigned prev = 0;
            for (size_t a = 0; a < n; a++) {
                assert_int_equal(clattn__lsh_launch_from(&devs[i], &p, c[a].rows, c[a].local_size,
                                                         c[a].counting_sort, &chk, NULL, 0),
                                 CLATTN_SUCCESS);
                assert_memory_equal(&chk, &c[a], sizeof chk);
                assert_int_equal(c[a].counting_sort, def.counting_sort);
                for (size_t b = 0; b < a; b++)
                    assert_false(c[a].rows == c[b].rows && c[a].local_size == c[b].local_size);
                unsigned dist = 0;
                for (size_t r = c[a].rows; r < def.rows; r *= 2)
                    dist += 2;
                for (size_t r = def.rows; r < c[a].rows; r *= 2)
                    dist += 2;
                for (size_t l = c[a].local_size; l < def.local_size; l *= 2)
                    dist++;
                for (size_t l = def.local_size; l < c[a].local_size; l *= 2)
                    dist++;
                if (a > 0) {
                    assert_true(dist >= prev);
                    prev = dist;
                }
            }
            assert_int_equal(clattn__lsh_candidates(&devs[i], &p, c, 1), 1);
            assert_int_equal(clattn__lsh_candidates(&devs[i], &p, c, 0), 0);
            assert_int_equal(clattn__lsh_candidates(&devs[i], &p, c, 3), 3);
        }
}

/* The tiled attend (clattn_lsh_attend_gpu): by default on GPU-like devices (rusticl's llvmpipe
 * included) where a tile fits, never on PoCL unless asked; 32-slot tiles first for small chunks;
 * a requested tile that does not fit, or an unknown kernel, refused. */
static void test_attend_tiled(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    clattn__lsh_problem p = {2, 1000, 64, 64, 2, 16, 64, 1, {0}};
    clattn__lsh_launch L;
    char why[160];
    for (size_t i = 0; i < ndev; i++) {
        assert_int_equal(clattn__schedule_lsh(&devs[i], &p, &L, why, sizeof why), CLATTN_SUCCESS);
        int cpu = strstr(devs[i].name, "PoCL") || strstr(devs[i].name, "AVX2");
        int tiny = devs[i].local_mem_size < 8 * 1024;
        assert_int_equal(L.attend_tiled, !cpu && !tiny);
        if (!L.attend_tiled)
            continue;
        assert_int_equal(L.attend_local, (size_t)L.gpu_tx * L.gpu_ty);
        assert_true(L.attend_local <= devs[i].max_work_group_size);
        assert_true(L.attend_local_bytes <= devs[i].local_mem_size);
        assert_int_equal(L.attend_rows, (size_t)L.gpu_ty * L.gpu_rm);
        char gdef[384];
        clattn__lsh_attend_defines(&L, gdef, sizeof gdef);
        assert_non_null(strstr(gdef, L.defines));
        assert_non_null(strstr(gdef, "-DLSH_GPU=1"));
    }
    assert_int_equal(clattn__schedule_lsh(&devs[0], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.gpu_tx == 8 && L.gpu_ty == 8 && L.gpu_rm == 4 && L.gpu_rn == 8);
    p.chunk_size = 24; /* 32 slots: 32-key tiles */
    assert_int_equal(clattn__schedule_lsh(&devs[0], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.gpu_tx == 8 && L.gpu_rn == 4);
    p.dv = 250; /* Dvp 256 with small chunks: the 16-wide tile (the budget) */
    assert_int_equal(clattn__schedule_lsh(&devs[0], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.attend_tiled && L.gpu_tx == 16);
    p.dv = 64;
    /* Forced on PoCL; a tile that does not fit; an unknown kernel. */
    assert_int_equal(clattn__schedule_lsh(&devs[3], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 0);
    assert_int_equal(clattn__lsh_attend_kernel(&devs[3], &p, CLATTN__LSH_ATTEND_TILED, NULL, &L,
                                               why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 1);
    const unsigned big[4] = {64, 64, 4, 4}, odd[4] = {8, 3, 4, 4};
    assert_int_equal(clattn__lsh_attend_kernel(&devs[0], &p, CLATTN__LSH_ATTEND_TILED, big, &L,
                                               why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_true(why[0] != '\0');
    assert_int_equal(clattn__lsh_attend_kernel(&devs[0], &p, CLATTN__LSH_ATTEND_TILED, odd, &L,
                                               why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__lsh_attend_kernel(&devs[0], &p, 9, NULL, &L, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn__lsh_attend_kernel(&devs[0], &p, CLATTN__LSH_ATTEND_ROWS, NULL, &L,
                                               why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_groups), cmocka_unit_test(test_sort_crossover),
        cmocka_unit_test(test_loop_cap),        cmocka_unit_test(test_invalid_problems),
        cmocka_unit_test(test_launch_from),     cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_attend_tiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
