/* test_sched_softmax.c - device-free checks of the softmax scheduler (lib/sched/sched_softmax.c)
 * on made-up device descriptions: every head dimension on every kind of device gets a launch that fits the device,
 * the kernel family follows the local-memory rule, tiles grow (never shrink) with local memory,
 * and the public clattn_softmax_schedule() agrees with the internal function. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"
#include "sched.h"

/* The CPU family's register groups per work-item (CPU_QUERY_GROUPS* in lib/sched/sched_softmax.c:
 * 32 from 2048 query rows on up to D 128, else 16 from 256 query rows on, 8 below). */
#define CPU_QUERY_GROUPS 16
#define CPU_QUERY_GROUPS_SHORT 8
#define CPU_QUERY_GROUPS_WIDE 32

#include "test_devices.h"
#include "test_util.h"

#define KIB ((uint64_t)1024)


/* True when `defines` contains the option `opt` as a whole space-separated token. */
static int has_token(const char *defines, const char *opt)
{
    size_t len = strlen(opt);
    for (const char *p = strstr(defines, opt); p; p = strstr(p + 1, opt))
        if ((p == defines || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return 1;
    return 0;
}

/* The documented rule (lib/sched/sched_softmax.c): CPU-like devices with wide explicit vectors get the
 * register-blocked family; SIMT-style implementations (vector width 1) get local-memory tiles. */
static int cpu_family_device(const clattn_device_info *dev)
{
    return (dev->device_class == CLATTN_DEVICE_CPU || dev->local_mem_emulated) &&
           dev->native_vector_width_float >= 4;
}

static clattn_softmax_algo expected_family(const clattn_device_info *dev, size_t d)
{
    if (cpu_family_device(dev))
        return CLATTN_SOFTMAX_TILED_CPU;
    /* a real-local-memory device needs room for one key row of K and one of V */
    return 2 * d * sizeof(float) <= dev->local_mem_size ? CLATTN_SOFTMAX_TILED_GPU
                                                        : CLATTN_SOFTMAX_TILED_CPU;
}

/* TILED_GPU's register-tiled kernel: work-group TX x TY, BR = TY * RM rows, BC = TX * RN keys,
 * local memory and micro-tile state within the device and the register budget (160 floats), the
 * work-group a multiple of the vendor's SIMD width when some launch of that kind fits. */
static void check_gpu_rt(const clattn_device_info *dev, size_t d, const clattn__softmax_launch *L)
{
    char opt[64];
    if (L->local_size != (size_t)L->gpu_tx * L->gpu_ty || L->tile_q != L->gpu_ty * L->gpu_rm ||
        L->tile_kv != L->gpu_tx * L->gpu_rn || L->rows_per_item != L->gpu_rm)
        fail_msg("%s D=%zu: inconsistent register-tiled launch", dev->name, d);
    if (L->local_mem_bytes != clattn__softmax_gpu_rt_local_bytes(d, L->gpu_tx, L->gpu_ty,
                                                                  L->gpu_rm, L->gpu_rn,
                                                                  L->gpu_kv_shared) ||
        L->local_mem_bytes > dev->local_mem_size)
        fail_msg("%s D=%zu: local memory %zu", dev->name, d, L->local_mem_bytes);
    if (clattn__softmax_gpu_rt_regs(d, L->gpu_tx, L->gpu_rm, L->gpu_rn) > 160)
        fail_msg("%s D=%zu: micro-tiles beyond the register budget", dev->name, d);
    size_t item0 = dev->max_work_item_sizes[0];
    if (L->local_size > dev->max_work_group_size || (item0 && L->local_size > item0))
        fail_msg("%s D=%zu: work-group %zu beyond the device", dev->name, d, L->local_size);
    static const char *const names[] = {"TX", "TY", "RM", "RN", "KV_SHARED"};
    unsigned vals[] = {L->gpu_tx, L->gpu_ty, L->gpu_rm, L->gpu_rn, L->gpu_kv_shared};
    snprintf(opt, sizeof opt, "-DSOFTMAX_HEAD_DIM=%zu", d);
    if (!has_token(L->defines, opt))
        fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
    for (int i = 0; i < 5; i++) {
        snprintf(opt, sizeof opt, "-DSOFTMAX_GPU_%s=%u", names[i], vals[i]);
        if (!has_token(L->defines, opt))
            fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
    }
    unsigned simd = clattn__gpu_simd_width(dev);
    if (simd && L->local_size % simd != 0 && L->local_size * 2 <= dev->max_work_group_size)
        fail_msg("%s D=%zu: work-group %zu not a multiple of the SIMD width %u", dev->name, d,
                 L->local_size, simd);
}

static void check_launch_fits(const clattn_device_info *dev, size_t d,
                              const clattn__softmax_launch *L)
{
    char opt[64];
    size_t item0 = dev->max_work_item_sizes[0];
    if (L->local_size < 1 || L->local_size > dev->max_work_group_size ||
        (item0 && L->local_size > item0))
        fail_msg("%s D=%zu: local_size %zu outside [1, min(%zu, %zu)]", dev->name, d,
                 L->local_size, dev->max_work_group_size, item0);
    if (L->local_mem_bytes > dev->local_mem_size)
        fail_msg("%s D=%zu: local_mem_bytes %zu > %llu", dev->name, d, L->local_mem_bytes,
                 (unsigned long long)dev->local_mem_size);
    if (L->algo == CLATTN_SOFTMAX_TILED_GPU && L->gpu_tx) {
        check_gpu_rt(dev, d, L);
        return;
    }
    /* The CPU family's work-item owns several register groups of rows_per_item rows. */
    bool own = L->algo == CLATTN_SOFTMAX_TILED_CPU &&
               clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU;
    size_t groups = own ? CPU_QUERY_GROUPS : 1;
    if (own && L->rows_per_item >= 1 &&
        L->tile_q == L->rows_per_item * CPU_QUERY_GROUPS_SHORT * L->local_size)
        groups = CPU_QUERY_GROUPS_SHORT;
    if (own && L->rows_per_item >= 1 && d <= 128 &&
        L->tile_q == L->rows_per_item * CPU_QUERY_GROUPS_WIDE * L->local_size)
        groups = CPU_QUERY_GROUPS_WIDE;
    if (L->rows_per_item < 1 || L->tile_q != L->rows_per_item * groups * L->local_size)
        fail_msg("%s D=%zu: tile_q %u != rows_per_item %u * %zu groups * local_size %zu",
                 dev->name, d, L->tile_q, L->rows_per_item, groups, L->local_size);
    snprintf(opt, sizeof opt, "-DSOFTMAX_HEAD_DIM=%zu", d);
    if (!has_token(L->defines, opt))
        fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
    if (L->tile_kv < 1)
        fail_msg("%s D=%zu: tile_kv is 0", dev->name, d);
    if (L->algo == CLATTN_SOFTMAX_TILED_GPU) {
        if (L->rows_per_item != 1)
            fail_msg("%s D=%zu: GPU family with %u rows per item", dev->name, d,
                     L->rows_per_item);
        if (L->local_mem_bytes != 2 * (size_t)L->tile_kv * d * sizeof(float))
            fail_msg("%s D=%zu: local_mem_bytes %zu != K+V tiles of %u keys", dev->name, d,
                     L->local_mem_bytes, L->tile_kv);
        snprintf(opt, sizeof opt, "-DSOFTMAX_WG_SIZE=%zu", L->local_size);
        if (!has_token(L->defines, opt))
            fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
    } else if (L->algo == CLATTN_SOFTMAX_TILED_CPU) {
        if (L->local_mem_bytes != 0)
            fail_msg("%s D=%zu: CPU family uses %zu bytes of local memory", dev->name, d,
                     L->local_mem_bytes);
        /* The key block: a power of two, whole 32-key steps up to D = 64 (16 above), at most
         * 512 keys, its K panels and V rows within 64 KiB unless it is one step. */
        unsigned step = d <= 64 ? 32 : 16;
        size_t bytes = (size_t)L->tile_kv * (d + (d + 15) / 16 * 16) * sizeof(float);
        if ((L->tile_kv & (L->tile_kv - 1)) || L->tile_kv % step || L->tile_kv > 512 ||
            (bytes > 64 * KIB && L->tile_kv != step))
            fail_msg("%s D=%zu: CPU key block %u", dev->name, d, L->tile_kv);
        snprintf(opt, sizeof opt, "-DSOFTMAX_QGROUPS=%zu", groups);
        if (!has_token(L->defines, opt))
            fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
    }
    snprintf(opt, sizeof opt, "-DSOFTMAX_TILE_KV=%u", L->tile_kv);
    if (L->algo != CLATTN_SOFTMAX_NAIVE && !has_token(L->defines, opt))
        fail_msg("%s D=%zu: defines '%s' lack %s", dev->name, d, L->defines, opt);
}

static void test_auto_on_every_device_and_head_dim(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    static const size_t lens[][2] = {{1, 1}, {1000, 1000}, {7, 4096}};
    for (size_t i = 0; i < ndev; i++)
        for (size_t d = 1; d <= CLATTN__MAX_HEAD_DIM; d++)
            for (int causal = 0; causal <= 1; causal++)
                for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                    clattn__softmax_problem p = {d, lens[l][0], lens[l][1], causal, 0};
                    clattn__softmax_launch L;
                    char why[160] = "";
                    clattn_status st = clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_AUTO,
                                                                  &L, why, sizeof why);
                    if (st != CLATTN_SUCCESS)
                        fail_msg("%s D=%zu causal=%d: %s (%s)", devs[i].name, d, causal,
                                 clattn_status_string(st), why);
                    assert_true(why[0] != '\0');
                    clattn_softmax_algo want = expected_family(&devs[i], d);
                    if (L.algo != want)
                        fail_msg("%s D=%zu: family %d, want %d", devs[i].name, d, (int)L.algo,
                                 (int)want);
                    assert_int_equal(clattn__softmax_family(&devs[i]),
                                     cpu_family_device(&devs[i]) ? CLATTN_SOFTMAX_TILED_CPU
                                                                 : CLATTN_SOFTMAX_TILED_GPU);
                    check_launch_fits(&devs[i], d, &L);
                }
}

/* Forcing each family: CPU and NAIVE run anywhere; GPU wherever one K and V row fits. */
static void test_forced_families(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    for (size_t i = 0; i < ndev; i++)
        for (size_t d = 1; d <= CLATTN__MAX_HEAD_DIM; d++) {
            clattn__softmax_problem p = {d, 100, 100, d & 1, 0};
            clattn__softmax_launch L;
            clattn_status st;

            st = clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_TILED_CPU, &L, NULL, 0);
            assert_int_equal(st, CLATTN_SUCCESS);
            assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_CPU);
            check_launch_fits(&devs[i], d, &L);

            st = clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_NAIVE, &L, NULL, 0);
            assert_int_equal(st, CLATTN_SUCCESS);
            assert_int_equal(L.algo, CLATTN_SOFTMAX_NAIVE);
            assert_true(L.local_size >= 1 && L.local_size <= devs[i].max_work_group_size &&
                        L.local_size <= devs[i].max_work_item_sizes[0]);
            assert_true(L.local_mem_bytes <= devs[i].local_mem_size);

            /* the previous GPU kernel, on request only: TILED_GPU with gpu_tx = 0 */
            st = clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_TILED_GPU_ROWS, &L, NULL,
                                          0);
            if (2 * d * sizeof(float) <= devs[i].local_mem_size) {
                assert_int_equal(st, CLATTN_SUCCESS);
                assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_GPU);
                assert_int_equal(L.gpu_tx, 0);
                check_launch_fits(&devs[i], d, &L);
            } else {
                assert_int_equal(st, CLATTN_UNSUPPORTED);
            }

            char why[160] = "";
            st = clattn__schedule_softmax(&devs[i], &p, CLATTN_SOFTMAX_TILED_GPU, &L, why,
                                            sizeof why);
            if (2 * d * sizeof(float) <= devs[i].local_mem_size) {
                if (st != CLATTN_SUCCESS)
                    fail_msg("%s D=%zu forced GPU: %s (%s)", devs[i].name, d,
                             clattn_status_string(st), why);
                assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_GPU);
                check_launch_fits(&devs[i], d, &L);
            } else {
                assert_int_equal(st, CLATTN_UNSUPPORTED);
                assert_true(why[0] != '\0');
            }
        }
}

/* The CPU family's blocks on a PoCL-like device: 4 rows up to D 256 (P.V in passes of 4 vectors
 * above Dv 64: 2 at 128, 4 at 200 and 256), 32 groups from 2048 query rows on up to D 128, else
 * 16 from 256 query rows on (8 below), and key
 * blocks whose K and V take at most 32 KiB (256 keys at D 16, 128 at 32, 64 at 64, 32 from 65 on:
 * never under one step); an explicit key block must be a power of two of whole steps, at most
 * 512 keys. */
static void test_cpu_blocks_rule(void **state)
{
    (void)state;
    clattn_device_info cpu = make_dev("PoCL-like", CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 4096);
    cpu.native_vector_width_float = cpu.preferred_vector_width_float = 16;
    static const size_t ds[] = {1, 16, 32, 64, 65, 128, 200, 256};
    static const unsigned rows[] = {4, 4, 4, 4, 4, 4, 4, 4}, kv[] = {256, 256, 128, 64, 32, 32, 32, 32};
    static const unsigned passes[] = {1, 1, 1, 1, 2, 2, 4, 4};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        clattn__softmax_problem p = {ds[i], 4096, 4096, 0, 0};
        clattn__softmax_launch L;
        assert_int_equal(clattn__schedule_softmax(&cpu, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                         CLATTN_SUCCESS);
        assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_CPU);
        if (L.rows_per_item != rows[i] || L.tile_kv != kv[i] || L.local_size != 1 ||
            L.tile_q != rows[i] * (ds[i] <= 128 ? CPU_QUERY_GROUPS_WIDE : CPU_QUERY_GROUPS))
            fail_msg("D=%zu: rows %u kv %u wg %zu tile_q %u", ds[i], L.rows_per_item, L.tile_kv,
                     L.local_size, L.tile_q);
        const char *pp = strstr(L.defines, "-DSOFTMAX_PV_PASSES=");
        if ((pp ? (unsigned)atoi(pp + strlen("-DSOFTMAX_PV_PASSES=")) : 1u) != passes[i])
            fail_msg("D=%zu: defines '%s', expected %u P.V passes", ds[i], L.defines, passes[i]);
        check_launch_fits(&cpu, ds[i], &L);
    }
    clattn__softmax_problem p64 = {64, 100, 100, 1, 0}, p128 = {128, 100, 100, 1, 0};
    clattn__softmax_launch L;
    /* Short queries (under 256 rows: decoding, chunked prefill) keep 8 groups; 256 take 16. */
    clattn__softmax_problem p255 = {64, 255, 4096, 0, 0}, p256 = {64, 256, 4096, 0, 0};
    assert_int_equal(clattn__schedule_softmax(&cpu, &p255, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_q, 4 * CPU_QUERY_GROUPS_SHORT);
    assert_true(has_token(L.defines, "-DSOFTMAX_QGROUPS=8"));
    assert_int_equal(clattn__schedule_softmax(&cpu, &p256, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_q, 4 * CPU_QUERY_GROUPS);
    assert_true(has_token(L.defines, "-DSOFTMAX_QGROUPS=16"));
    clattn__softmax_problem p2047 = {128, 2047, 4096, 0, 0}, p2048 = {128, 2048, 4096, 0, 0},
                            p2048d = {129, 2048, 4096, 0, 0};
    assert_int_equal(clattn__schedule_softmax(&cpu, &p2047, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_q, 4 * CPU_QUERY_GROUPS);
    assert_int_equal(clattn__schedule_softmax(&cpu, &p2048, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_q, 4 * CPU_QUERY_GROUPS_WIDE);
    assert_true(has_token(L.defines, "-DSOFTMAX_QGROUPS=32"));
    assert_int_equal(clattn__schedule_softmax(&cpu, &p2048d, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS); /* past D 128: 16 */
    assert_int_equal(L.tile_q, 4 * CPU_QUERY_GROUPS);
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p64, CLATTN_SOFTMAX_TILED_CPU, 4, 1, 16,
                                                   &L, NULL, 0),
                     CLATTN_UNSUPPORTED); /* half a 32-key step */
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p128, CLATTN_SOFTMAX_TILED_CPU, 2, 1, 16,
                                                   &L, NULL, 0),
                     CLATTN_UNSUPPORTED); /* 32-key steps at every D */
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p128, CLATTN_SOFTMAX_TILED_CPU, 2, 1, 32,
                                                   &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p64, CLATTN_SOFTMAX_TILED_CPU, 4, 1, 96,
                                                   &L, NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p64, CLATTN_SOFTMAX_TILED_CPU, 4, 1, 1024,
                                                   &L, NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p64, CLATTN_SOFTMAX_TILED_CPU, 4, 1, 512,
                                                   &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_kv, 512);
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p64, CLATTN_SOFTMAX_TILED_CPU, 4, 1, 0,
                                                   &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_kv, 64); /* 0: the default */
}

static void test_forced_gpu_without_room_is_unsupported(void **state)
{
    (void)state;
    clattn__softmax_launch L;
    char why[160] = "";
    /* 1 KiB holds one K and one V row up to D = 128 (2 * 128 * 4 bytes), not beyond. */
    clattn_device_info tiny = make_dev("GPU 1 KiB local", CLATTN_DEVICE_GPU, 1 * KIB, 0, 256, 256);
    clattn__softmax_problem ok = {128, 64, 64, 0, 0}, big = {129, 64, 64, 0, 0};
    assert_int_equal(clattn__schedule_softmax(&tiny, &ok, CLATTN_SOFTMAX_TILED_GPU, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.tile_kv, 1);
    assert_int_equal(clattn__schedule_softmax(&tiny, &big, CLATTN_SOFTMAX_TILED_GPU, &L, why,
                                                sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_true(why[0] != '\0');
    /* AUTO falls back to the CPU family, which needs no local memory. */
    assert_int_equal(clattn__schedule_softmax(&tiny, &big, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_CPU);

    /* No local memory at all. */
    clattn_device_info none = make_dev("GPU no local", CLATTN_DEVICE_GPU, 0, 0, 256, 256);
    clattn__softmax_problem d1 = {1, 8, 8, 1, 0};
    assert_int_equal(clattn__schedule_softmax(&none, &d1, CLATTN_SOFTMAX_TILED_GPU, &L, NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__schedule_softmax(&none, &d1, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_CPU);
}

/* For the same D, more local memory never makes the default worse: the one-row-per-item kernel's
 * key tile never shrinks, once the register-tiled kernel fits it stays the default, and its
 * modelled score never drops (more launches fit, none loses its room). */
static void test_tile_kv_monotone_in_local_memory(void **state)
{
    (void)state;
    static const unsigned kib[] = {1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 256};
    const size_t n = sizeof kib / sizeof kib[0];
    for (size_t d = 1; d <= CLATTN__MAX_HEAD_DIM; d++) {
        unsigned prev_rows = 0;
        int supported = 0, rt = 0;
        double prev_score = 0;
        for (size_t i = 0; i < n; i++) {
            clattn_device_info dev =
                make_dev("series", CLATTN_DEVICE_GPU, kib[i] * KIB, 0, 1024, 1024);
            clattn__softmax_problem p = {d, 512, 512, 0, 0};
            clattn__softmax_launch L;
            if (clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_TILED_GPU, &L, NULL, 0) ==
                CLATTN_SUCCESS) {
                supported = 1;
                if (L.gpu_tx) {
                    rt = 1;
                    double sc = clattn__softmax_gpu_rt_score(&dev, d, &L);
                    if (sc < prev_score)
                        fail_msg("D=%zu: %u KiB gives score %g < %g with less memory", d, kib[i],
                                 sc, prev_score);
                    prev_score = sc;
                } else {
                    if (rt)
                        fail_msg("D=%zu: %u KiB falls back to the row kernel", d, kib[i]);
                    if (L.tile_kv < prev_rows)
                        fail_msg("D=%zu: %u KiB gives tile_kv %u < %u with less memory", d,
                                 kib[i], L.tile_kv, prev_rows);
                    prev_rows = L.tile_kv;
                }
            } else {
                assert_int_equal(supported, 0); /* once supported, stays supported */
            }
            assert_int_equal(clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                             CLATTN_SUCCESS);
            if (L.algo != CLATTN_SOFTMAX_TILED_GPU)
                assert_int_equal(supported, 0); /* no GPU -> CPU fallback with more memory */
        }
    }
}

static void test_invalid_head_dim_and_algorithm(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    static const clattn_softmax_algo algos[] = {CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU,
                                                  CLATTN_SOFTMAX_TILED_GPU, CLATTN_SOFTMAX_NAIVE};
    for (size_t i = 0; i < ndev; i++) {
        clattn__softmax_launch L;
        for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
            clattn__softmax_problem p0 = {0, 8, 8, 0, 0}, p257 = {513, 8, 8, 0, 0};
            char why[160] = "";
            assert_int_equal(clattn__schedule_softmax(&devs[i], &p0, algos[a], &L, why,
                                                        sizeof why),
                             CLATTN_INVALID_SHAPE);
            assert_true(why[0] != '\0');
            assert_int_equal(clattn__schedule_softmax(&devs[i], &p257, algos[a], &L, NULL, 0),
                             CLATTN_INVALID_SHAPE);
        }
        clattn__softmax_problem p = {64, 8, 8, 0, 0};
        char why[160] = "";
        assert_int_equal(clattn__schedule_softmax(&devs[i], &p, (clattn_softmax_algo)5, &L,
                                                    why, sizeof why),
                         CLATTN_INVALID_ARGUMENT);
        assert_true(why[0] != '\0');
        assert_int_equal(clattn__schedule_softmax(&devs[i], &p, (clattn_softmax_algo)-1, &L,
                                                    NULL, 0),
                         CLATTN_INVALID_ARGUMENT);
        assert_int_equal(clattn__schedule_softmax(&devs[i], &p, (clattn_softmax_algo)99, &L,
                                                    NULL, 0),
                         CLATTN_INVALID_ARGUMENT);
    }
}

/* The public function runs the same validation and the same scheduler. */
static void test_public_schedule_agrees(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    static const clattn_softmax_algo algos[] = {CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU,
                                                  CLATTN_SOFTMAX_TILED_GPU, CLATTN_SOFTMAX_NAIVE};
    for (size_t i = 0; i < ndev; i++)
        for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++)
            for (size_t d = 1; d <= CLATTN__MAX_HEAD_DIM; d += (d < 8 ? 1 : 7)) {
                clattn_softmax_desc desc;
                clattn_softmax_desc_init(&desc);
                desc.algorithm = algos[a];
                desc.causal = (int)(d & 1);
                size_t qs[4] = {2, 4, 33, d}, ks[4] = {2, 2, 70, d};
                clattn_plan_info info;
                memset(&info, 0x5a, sizeof info);
                clattn_status pub = clattn_softmax_schedule(&devs[i], &desc, qs, ks, &info);

                clattn__softmax_problem p = {d, 33, 70, desc.causal, 0};
                clattn__softmax_launch L;
                clattn_status in =
                    clattn__schedule_softmax(&devs[i], &p, algos[a], &L, NULL, 0);
                if (pub != in)
                    fail_msg("%s D=%zu algo %d: public %s, internal %s", devs[i].name, d,
                             (int)algos[a], clattn_status_string(pub), clattn_status_string(in));
                if (in != CLATTN_SUCCESS)
                    continue;
                assert_int_equal(info.algorithm, L.algo);
                assert_int_not_equal(info.algorithm, CLATTN_SOFTMAX_AUTO);
                assert_int_equal(info.tile_q, L.tile_q);
                assert_int_equal(info.tile_kv, L.tile_kv);
                assert_int_equal(info.rows_per_item, L.rows_per_item);
                assert_int_equal(info.local_size, L.local_size);
                assert_int_equal(info.local_mem_bytes, L.local_mem_bytes);
                assert_int_equal(info.scratch_bytes, 0);
                assert_string_equal(info.build_options, L.defines);
                assert_true(info.variant[0] != '\0');
            }
}

/* A refused clattn_softmax_schedule: the status, its own message on the thread (there is no
 * context), and *info untouched. */
static void expect_refused(clattn_status got, clattn_status want, const clattn_plan_info *info,
                           const char *what)
{
    clattn_plan_info untouched;
    memset(&untouched, 0x5a, sizeof untouched);
    tu_expect_fresh_status(NULL, got, want, what);
    if (memcmp(info, &untouched, sizeof untouched) != 0)
        fail_msg("%s: refused, but *info changed", what);
}

#define EXPECT_REFUSED(want, dev, desc, q, k)                                                      \
    do {                                                                                           \
        clattn_plan_info info_;                                                                    \
        memset(&info_, 0x5a, sizeof info_);                                                        \
        tu_stale_messages(NULL);                                                                   \
        expect_refused(clattn_softmax_schedule((dev), (desc), (q), (k), &info_), (want), &info_,   \
                       #want " <- " #desc " " #q " " #k);                                          \
    } while (0)

static void test_public_schedule_validation(void **state)
{
    (void)state;
    clattn_device_info dev = make_dev("GPU", CLATTN_DEVICE_GPU, 64 * KIB, 0, 1024, 1024);
    clattn_softmax_desc desc;
    clattn_plan_info info, dflt;
    size_t qs[4] = {1, 4, 16, 64}, ks[4] = {1, 2, 16, 64};

    /* NULL desc means defaults */
    assert_int_equal(clattn_softmax_schedule(&dev, NULL, qs, ks, &info), CLATTN_SUCCESS);
    assert_int_equal(info.algorithm, CLATTN_SOFTMAX_TILED_GPU);
    clattn_softmax_desc_init(&desc);
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, qs, ks, &dflt), CLATTN_SUCCESS);
    assert_memory_equal(&info, &dflt, sizeof info);

    tu_stale_messages(NULL);
    tu_expect_fresh_status(NULL, clattn_softmax_schedule(&dev, NULL, qs, ks, NULL),
                           CLATTN_NULL_POINTER, "info NULL");
    EXPECT_REFUSED(CLATTN_NULL_POINTER, NULL, NULL, qs, ks);
    EXPECT_REFUSED(CLATTN_NULL_POINTER, &dev, NULL, NULL, ks);
    EXPECT_REFUSED(CLATTN_NULL_POINTER, &dev, NULL, qs, NULL);

    size_t q257[4] = {1, 4, 16, 513}, k257[4] = {1, 2, 16, 513};
    EXPECT_REFUSED(CLATTN_INVALID_SHAPE, &dev, NULL, q257, k257);
    size_t q0[4] = {1, 4, 0, 64};
    EXPECT_REFUSED(CLATTN_INVALID_SHAPE, &dev, NULL, q0, ks);
    size_t q3[4] = {1, 3, 16, 64};
    EXPECT_REFUSED(CLATTN_SHAPE_MISMATCH, &dev, NULL, q3, ks);
    size_t qb[4] = {2, 4, 16, 64};
    EXPECT_REFUSED(CLATTN_SHAPE_MISMATCH, &dev, NULL, qb, ks);

#if SIZE_MAX > 0xffffffffu
    /* B * Hq beyond the kernels' 32-bit indices, also when the product wraps around size_t */
    size_t qbig[4] = {(size_t)1 << 20, (size_t)1 << 12, 16, 64};
    size_t kbig[4] = {(size_t)1 << 20, 1, 16, 64};
    EXPECT_REFUSED(CLATTN_INVALID_SHAPE, &dev, NULL, qbig, kbig);
    size_t qwrap[4] = {(size_t)1 << 32, (size_t)1 << 32, 16, 64};
    size_t kwrap[4] = {(size_t)1 << 32, (size_t)1 << 32, 16, 64};
    EXPECT_REFUSED(CLATTN_INVALID_SHAPE, &dev, NULL, qwrap, kwrap);
#endif

    /* every out-of-range descriptor field */
    const size_t sizes[] = {0, offsetof(clattn_softmax_desc, scale) + sizeof(float) - 1, 4097};
    const int flags[] = {2, -1, 1000}, algos[] = {5, -1, 1000};
    const float scales[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        clattn_softmax_desc_init(&desc);
        desc.struct_size = sizes[i];
        EXPECT_REFUSED(CLATTN_INVALID_ARGUMENT, &dev, &desc, qs, ks);
        clattn_softmax_desc_init(&desc);
        desc.causal = flags[i];
        EXPECT_REFUSED(CLATTN_INVALID_ARGUMENT, &dev, &desc, qs, ks);
        clattn_softmax_desc_init(&desc);
        desc.algorithm = (clattn_softmax_algo)algos[i];
        EXPECT_REFUSED(CLATTN_INVALID_ARGUMENT, &dev, &desc, qs, ks);
        clattn_softmax_desc_init(&desc);
        desc.scale = scales[i];
        EXPECT_REFUSED(CLATTN_INVALID_ARGUMENT, &dev, &desc, qs, ks);
    }
    /* an older caller's shorter desc: fields beyond its struct_size are never read */
    clattn_softmax_desc_init(&desc);
    desc.struct_size = offsetof(clattn_softmax_desc, scale) + sizeof(float);
    desc.causal = 2;
    desc.algorithm = (clattn_softmax_algo)99;
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, qs, ks, &info), CLATTN_SUCCESS);
    assert_memory_equal(&info, &dflt, sizeof info);

    /* the scheduler's own refusal, with its reason */
    clattn_device_info tiny = make_dev("GPU 1 KiB", CLATTN_DEVICE_GPU, 1 * KIB, 0, 256, 256);
    size_t q200[4] = {1, 4, 16, 200}, k200[4] = {1, 2, 16, 200};
    clattn_softmax_desc_init(&desc);
    desc.algorithm = CLATTN_SOFTMAX_TILED_GPU;
    EXPECT_REFUSED(CLATTN_UNSUPPORTED, &tiny, &desc, q200, k200);
    assert_non_null(strstr(clattn_context_last_error(NULL), "GPU 1 KiB"));
}

/* The shipped per-vendor defaults (lib/tune/defaults.c) reach the GPU plans, within device
 * limits; vendors are recognised by id or by name. */
static void test_vendor_defaults(void **state)
{
    (void)state;
    struct {
        unsigned id;
        const char *vendor;
        size_t max_wg;
        const char *family;
        size_t wg64, wg128;
    } rows[] = {
        {0x10DE, "NVIDIA Corporation", 1024, "NVIDIA", 128, 128},
        {0x1002, "Advanced Micro Devices, Inc.", 1024, "AMD", 256, 128},
        {0, "AMD", 256, "AMD", 256, 128},
        {0x8086, "Intel(R) Corporation", 512, "Intel", 64, 64},
        {0, "Apple", 1024, "Apple/ARM", 64, 64},
        {0, "Some GPU vendor", 1024, "other GPU", 128, 128},
        {0x1002, "AMD", 128, "AMD", 128, 128}, /* capped by the device's maximum */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        clattn_device_info dev = make_dev("gpu", CLATTN_DEVICE_GPU, 64 * KIB, 0, rows[i].max_wg,
                                          rows[i].max_wg);
        dev.vendor_id = rows[i].id;
        snprintf(dev.vendor, sizeof dev.vendor, "%s", rows[i].vendor);
        assert_string_equal(clattn__vendor_family(&dev), rows[i].family);
        size_t want[2] = {rows[i].wg64, rows[i].wg128};
        size_t dims[2] = {64, 128};
        for (int j = 0; j < 2; j++) {
            clattn__softmax_problem p = {dims[j], 4096, 4096, 0, 0};
            clattn__softmax_launch L;
            assert_int_equal(clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                             CLATTN_SUCCESS);
            assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_GPU);
            check_launch_fits(&dev, dims[j], &L);
            /* The default is register-tiled; the vendor table's work-group is the one-row-per-item
             * kernel's, the tuner's second candidate. */
            assert_true(L.gpu_tx != 0);
            clattn__softmax_launch c[64];
            size_t nc = clattn__softmax_candidates(&dev, &p, CLATTN_SOFTMAX_AUTO, c, 64);
            assert_true(nc >= 2);
            assert_memory_equal(&c[0], &L, sizeof L);
            assert_int_equal(c[1].gpu_tx, 0);
            if (c[1].local_size != want[j])
                fail_msg("%s D=%zu: work-group %zu, want %zu", rows[i].vendor, dims[j],
                         c[1].local_size, want[j]);
            check_launch_fits(&dev, dims[j], &c[1]);
        }
    }
}

/* Linear attention's chunks: causal ones are the kernels' fixed 64; non-causal ones cover every
 * key with at least 64 keys and at most 256 chunks per sequence, and more compute units never get
 * fewer chunks. */
static void test_linear_chunks(void **state)
{
    (void)state;
    clattn_device_info dev;
    memset(&dev, 0, sizeof dev);
    const size_t nks[] = {1, 63, 64, 65, 1000, 4096, 65536, 1u << 22};
    const size_t bhs[] = {1, 3, 8, 64, 4096};
    const unsigned cus[] = {1, 2, 16, 132};
    for (size_t a = 0; a < sizeof nks / sizeof nks[0]; a++)
        for (size_t b = 0; b < sizeof bhs / sizeof bhs[0]; b++) {
            size_t prev_chunks = 0;
            for (size_t c = 0; c < sizeof cus / sizeof cus[0]; c++) {
                dev.compute_units = cus[c];
                assert_int_equal(clattn__linear_chunk(&dev, nks[a], bhs[b], 1), 64);
                size_t ch = clattn__linear_chunk(&dev, nks[a], bhs[b], 0);
                size_t nch = (nks[a] + ch - 1) / ch;
                assert_true(ch >= 64);
                assert_true(nch >= 1 && nch <= 256);
                assert_true(nch >= prev_chunks);
                prev_chunks = nch;
            }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_on_every_device_and_head_dim),
        cmocka_unit_test(test_forced_families),
        cmocka_unit_test(test_forced_gpu_without_room_is_unsupported),
        cmocka_unit_test(test_tile_kv_monotone_in_local_memory),
        cmocka_unit_test(test_cpu_blocks_rule),
        cmocka_unit_test(test_invalid_head_dim_and_algorithm),
        cmocka_unit_test(test_public_schedule_agrees),
        cmocka_unit_test(test_public_schedule_validation),
        cmocka_unit_test(test_vendor_defaults),
        cmocka_unit_test(test_linear_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
