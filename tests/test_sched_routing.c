/* Device-free checks of routing attention's launch rules (lib/sched/sched_routing.c) on the
 * made-up devices of test_devices.c: -D options ROUTING_-prefixed and carrying the lanes and the
 * private row length, work-group sizes that divide their global sizes and fit the device, and
 * the refused problems. */
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

/* Every -D option of `defines` starts with `prefix`. */
static int all_prefixed(const char *defines, const char *prefix)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", defines);
    int count = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        if (strncmp(tok, "-D", 2) != 0 || strncmp(tok + 2, prefix, strlen(prefix)) != 0)
            return 0;
        count++;
    }
    return count > 0;
}

static int fits(const clattn_device_info *dev, size_t local, size_t global)
{
    return local >= 1 && global % local == 0 && (local & (local - 1)) == 0 &&
           (!dev->max_work_group_size || local <= dev->max_work_group_size) &&
           (!dev->max_work_item_sizes[0] || local <= dev->max_work_item_sizes[0]);
}

static void test_every_device(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    static const size_t ns[] = {1, 7, 64, 257, 4096, 65536};
    static const size_t ds[] = {1, 2, 16, 64, 256};
    for (size_t i = 0; i < ndev; i++)
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++) {
                size_t n = ns[a], c = n < 16 ? 1 : n / 16, w = (n + c - 1) / c;
                clattn__routing_problem p = {2, 8, 2, n, ds[b], ds[b], c, w, (int)(a % 2), 0, {0}};
                clattn__routing_launch L;
                char why[160];
                memset(&L, 0xa5, sizeof L);
                assert_int_equal(clattn__schedule_routing(&devs[i], &p, &L, why, sizeof why),
                                 CLATTN_SUCCESS);
                assert_int_equal(L.lanes, 16);
                assert_int_equal(L.max_d, CLATTN__ROUTING_MAX_D);
                assert_true(all_prefixed(L.defines, "ROUTING_"));
                char want[64];
                snprintf(want, sizeof want, "-DROUTING_LANES=%u", L.lanes);
                assert_non_null(strstr(L.defines, want));
                snprintf(want, sizeof want, "-DROUTING_MAX_D=%u", L.max_d);
                assert_non_null(strstr(L.defines, want));
                assert_true(fits(&devs[i], L.rows_local, n));
                /* Kernels with private rows: small groups (CPU drivers keep a group's private
                 * memory on one stack). */
                assert_true(L.rows_local <= 16);
                if (!L.attend_tiled) {
                    assert_true(fits(&devs[i], L.attend_local, w));
                    assert_true(L.attend_local <= 16);
                    continue;
                }
                /* The tiled attend: a TX x TY group within the device, its tiles within the
                 * local memory, BR slots per group, its own -D options (the tile and dims). */
                assert_int_equal(L.attend_local, (size_t)L.gpu_tx * L.gpu_ty);
                assert_true(fits(&devs[i], L.attend_local, L.attend_local));
                assert_true(L.attend_local_bytes <= devs[i].local_mem_size);
                assert_int_equal(L.attend_rows, (size_t)L.gpu_ty * L.gpu_rm);
                assert_true(L.gpu_vc % L.gpu_tx == 0 && L.gpu_qc >= 1 && L.gpu_qc <= ds[b]);
                assert_non_null(strstr(L.attend_defines, "-DROUTING_GPU=1"));
                snprintf(want, sizeof want, "-DRG_D=%zu -DRG_DV=%zu", ds[b], ds[b]);
                assert_non_null(strstr(L.attend_defines, want));
            }
}

/* The largest power of two <= 16 dividing the global size. */
static void test_work_groups(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    make_devices(devs);
    clattn__routing_problem p = {1, 1, 1, 4096, 64, 64, 64, 64, 0, CLATTN__ROUTING_ATTEND_ROWS,
                                 {0}};
    clattn__routing_launch L;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.rows_local, 16);
    assert_int_equal(L.attend_local, 16);
    p.n = 4100; /* 4 divides it, 8 does not */
    p.window = 20;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.rows_local, 4);
    assert_int_equal(L.attend_local, 4);
    p.n = 4097;
    p.window = 17;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.rows_local, 1);
    assert_int_equal(L.attend_local, 1);
    clattn_device_info tiny = devs[0];
    tiny.max_work_group_size = 4;
    p.n = 4096;
    p.window = 64;
    assert_int_equal(clattn__schedule_routing(&tiny, &p, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.rows_local, 4);
    assert_int_equal(L.attend_local, 4);
}

static void test_refused(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    make_devices(devs);
    clattn__routing_launch L;
    char why[160];
    clattn__routing_problem ok = {1, 4, 2, 100, 64, 32, 10, 10, 1, 0, {0}};
    assert_int_equal(clattn__schedule_routing(&devs[0], &ok, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    clattn__routing_problem p = ok;
    p.d = 257;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    assert_true(why[0] != '\0');
    p = ok;
    p.dv = 300;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p = ok;
    p.heads_q = 3;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p = ok;
    p.window = 0;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, NULL, 0), CLATTN_INVALID_SHAPE);
}

/* The tiled attend (clattn_routing_attend_gpu): on GPU-like devices by default (rusticl's
 * llvmpipe included), never on PoCL unless asked; the per-slot kernel where no tile fits; a
 * requested tile that does not fit is refused. */
static void test_tiled(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t ndev = make_devices(devs);
    clattn__routing_launch L;
    char why[160];
    clattn__routing_problem p = {1, 4, 2, 1000, 64, 64, 8, 125, 1, 0, {0}};
    for (size_t i = 0; i < ndev; i++) {
        assert_int_equal(clattn__schedule_routing(&devs[i], &p, &L, why, sizeof why),
                         CLATTN_SUCCESS);
        int pocl = strstr(devs[i].name, "PoCL") || strstr(devs[i].name, "AVX2");
        int tiny = devs[i].local_mem_size < 8 * 1024;
        assert_int_equal(L.attend_tiled, !pocl && !tiny);
    }
    /* NVIDIA-like, Dv 64: 8 x 8 work-items, 4 x 8 micro-tiles, whole D in local memory. */
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.gpu_tx == 8 && L.gpu_ty == 8 && L.gpu_rm == 4 && L.gpu_rn == 8);
    assert_int_equal(L.gpu_qc, 64);
    /* Dv 256: the 4 x 8 tile's 128 accumulators are over the budget: 16 x 8, 4 x 4. */
    p.d = p.dv = 256;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.gpu_tx == 16 && L.gpu_rm == 4 && L.gpu_rn == 4 && L.gpu_vc == 64);
    /* llvmpipe's loop cap: a window of 60000 keys would pass it in one work-item: the per-slot
     * kernel; on a GPU without the cap, tiled. */
    clattn__routing_problem big = p;
    big.n = 120000, big.clusters = 2, big.window = 60000;
    assert_int_equal(clattn__schedule_routing(&devs[6], &big, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 0);
    assert_int_equal(clattn__schedule_routing(&devs[0], &big, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 1);
    /* Forced on PoCL, and a forced tile. */
    p.d = p.dv = 64;
    p.attend_kernel = CLATTN__ROUTING_ATTEND_TILED;
    assert_int_equal(clattn__schedule_routing(&devs[3], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.attend_tiled, 1);
    p.gpu_tile[0] = 16, p.gpu_tile[1] = 4, p.gpu_tile[2] = 2, p.gpu_tile[3] = 4;
    assert_int_equal(clattn__schedule_routing(&devs[3], &p, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.gpu_tx == 16 && L.gpu_ty == 4 && L.attend_rows == 8 && L.attend_local == 64);
    p.gpu_tile[1] = 128; /* a 2048-item group */
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_true(why[0] != '\0');
    p.gpu_tile[1] = 3; /* not a power of two */
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    p.attend_kernel = 7;
    assert_int_equal(clattn__schedule_routing(&devs[0], &p, &L, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_device),
        cmocka_unit_test(test_work_groups),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_tiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
