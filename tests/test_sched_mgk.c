/* test_sched_mgk.c - device-free checks of the Transformer-MGK scheduler (lib/sched/sched_mgk.c)
 * on the made-up devices of test_devices.c: the softmax form's family follows softmax attention's
 * rule, every launch fits its device (work-group, local memory, live vector budget), the linear
 * form always gets LINEAR_SCAN, and bad inputs are refused with a reason. */
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

static const size_t dims[] = {1, 7, 16, 24, 32, 64, 100, 128, 200, 256};
static const size_t comps[] = {1, 2, 3, 4, 8};

static int has_token(const char *defines, const char *opt)
{
    size_t len = strlen(opt);
    for (const char *p = strstr(defines, opt); p; p = strstr(p + 1, opt))
        if ((p == defines || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return 1;
    return 0;
}

static void check_fits(const clattn_device_info *dev, const clattn__mgk_problem *p,
                       const clattn__mgk_launch *L)
{
    char opt[64];
    snprintf(opt, sizeof opt, "-DMGK_HEAD_DIM=%zu", p->head_dim);
    assert_true(has_token(L->defines, opt));
    snprintf(opt, sizeof opt, "-DMGK_R=%zu", p->components);
    assert_true(has_token(L->defines, opt));
    assert_true(strncmp(L->defines, "-DMGK_", 6) == 0);
    if (L->algo == CLATTN_MGK_LINEAR_SCAN)
        return;
    size_t item0 = dev->max_work_item_sizes[0];
    if (L->local_size < 1 || L->local_size > dev->max_work_group_size ||
        (item0 && L->local_size > item0))
        fail_msg("%s D=%zu R=%zu: local size %zu", dev->name, p->head_dim, p->components,
                 L->local_size);
    if (L->local_mem_bytes > dev->local_mem_size)
        fail_msg("%s D=%zu R=%zu: local memory %zu", dev->name, p->head_dim, p->components,
                 L->local_mem_bytes);
    if (L->algo == CLATTN_MGK_TILED_CPU) {
        size_t dvec = (p->head_dim + 15) / 16;
        assert_true(L->rows_per_item >= 1);
        /* one row is always allowed; more only within the live-vector budget */
        if (L->rows_per_item > 1)
            assert_true(L->rows_per_item * (dvec + p->components * L->step_blocks) <=
                        CLATTN__MGK_MAX_LIVE_VECTORS);
        assert_int_equal(L->step_blocks, p->head_dim <= 64 && p->components == 1 ? 2 : 1);
        snprintf(opt, sizeof opt, "-DMGK_ROWS=%u", L->rows_per_item);
        assert_true(has_token(L->defines, opt));
    } else {
        assert_int_equal(L->algo, CLATTN_MGK_TILED_GPU);
        assert_true(L->tile_kv >= 1 && L->tile_kv * p->components <= 64);
        assert_true((L->tile_kv & (L->tile_kv - 1)) == 0);
        snprintf(opt, sizeof opt, "-DMGK_WG_SIZE=%zu", L->local_size);
        assert_true(has_token(L->defines, opt));
    }
}

/* AUTO follows softmax attention's family rule, falling back to TILED_CPU only where the GPU
 * tiles cannot fit; every launch fits the device. */
static void test_family_and_fit(void **st)
{
    (void)st;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++)
            for (size_t c = 0; c < sizeof comps / sizeof comps[0]; c++) {
                clattn__mgk_problem p = {dims[a], comps[c], 300, 300, 0, 0};
                clattn__mgk_launch L;
                char why[160] = "";
                assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, why,
                                                      sizeof why),
                                 CLATTN_SUCCESS);
                assert_true(why[0] != '\0');
                int gpu_fits = ((comps[c] + 1) * dims[a] + comps[c]) * sizeof(float) <=
                               devs[i].local_mem_size;
                clattn_mgk_algo want =
                    clattn__softmax_family(&devs[i]) == CLATTN_SOFTMAX_TILED_GPU && gpu_fits
                        ? CLATTN_MGK_TILED_GPU
                        : CLATTN_MGK_TILED_CPU;
                if (L.algo != want)
                    fail_msg("%s D=%zu R=%zu: algo %d, want %d", devs[i].name, dims[a], comps[c],
                             (int)L.algo, (int)want);
                check_fits(&devs[i], &p, &L);
                /* forcing the CPU family works everywhere */
                assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_TILED_CPU, &L,
                                                      NULL, 0),
                                 CLATTN_SUCCESS);
                check_fits(&devs[i], &p, &L);
                clattn_status gs = clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_TILED_GPU, &L,
                                                        why, sizeof why);
                assert_int_equal(gs, gpu_fits ? CLATTN_SUCCESS : CLATTN_UNSUPPORTED);
                if (gs == CLATTN_SUCCESS)
                    check_fits(&devs[i], &p, &L);
            }
}

/* R = 2 at D = 64 on PoCL keeps softmax's 4 rows per work-item (the 2.2x target's shape). */
static void test_pocl_r2_rows(void **st)
{
    (void)st;
    clattn_device_info pocl = make_dev("pocl", CLATTN_DEVICE_CPU, 1 << 20, 1, 4096, 4096);
    pocl.native_vector_width_float = 16;
    clattn__mgk_problem p = {64, 2, 4096, 4096, 0, 0};
    clattn__mgk_launch L;
    assert_int_equal(clattn__schedule_mgk(&pocl, &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.algo, CLATTN_MGK_TILED_CPU);
    assert_int_equal(L.rows_per_item, 4);
    assert_int_equal(L.step_blocks, 1);
    assert_int_equal(L.local_size, 1);
    p.components = 8; /* 4 x (4 + 8) > 32 live vectors: halved */
    assert_int_equal(clattn__schedule_mgk(&pocl, &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.rows_per_item, 2);
}

static void test_linear_and_invalid(void **st)
{
    (void)st;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    char why[160];
    for (size_t i = 0; i < n; i++) {
        clattn__mgk_problem p = {32, 2, 100, 100, 1, 1};
        clattn__mgk_launch L;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                         CLATTN_SUCCESS);
        assert_int_equal(L.algo, CLATTN_MGK_LINEAR_SCAN);
        check_fits(&devs[i], &p, &L);
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_LINEAR_SCAN, &L, NULL, 0),
                         CLATTN_SUCCESS);
        why[0] = '\0';
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_TILED_CPU, &L, why,
                                              sizeof why),
                         CLATTN_INVALID_ARGUMENT);
        assert_true(why[0] != '\0');
        p.linear = 0;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_LINEAR_SCAN, &L, NULL, 0),
                         CLATTN_INVALID_ARGUMENT);
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, (clattn_mgk_algo)17, &L, NULL, 0),
                         CLATTN_INVALID_ARGUMENT);
        p.head_dim = 0;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                         CLATTN_INVALID_SHAPE);
        p.head_dim = 257;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                         CLATTN_INVALID_SHAPE);
        p.head_dim = 16;
        p.components = 0;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                         CLATTN_INVALID_SHAPE);
        p.components = CLATTN_MGK_MAX_COMPONENTS + 1;
        assert_int_equal(clattn__schedule_mgk(&devs[i], &p, CLATTN_MGK_AUTO, &L, NULL, 0),
                         CLATTN_INVALID_SHAPE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_fit),
        cmocka_unit_test(test_pocl_r2_rows),
        cmocka_unit_test(test_linear_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
