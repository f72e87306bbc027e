/* Device-free checks of the sort / top-k / gather blocks' launch rules (lib/sched/sched_blocks.c)
 * on the made-up devices of test_devices.c: the digit width divides 32 and reaches the kernels as
 * -DSORT_BITS, work-groups fit the device, blocks stay within their bounds, a whole work-group's
 * blocks stay below a driver's loop-iteration cap (llvmpipe's 65535), and the block length
 * follows the work-item target. */
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

static void check_launch(const clattn_device_info *dev, const clattn__blocks_launch *L)
{
    assert_true(L->bits >= 1 && L->bits <= 16 && 32 % L->bits == 0);
    char want[32];
    snprintf(want, sizeof want, "-DSORT_BITS=%u", L->bits);
    assert_string_equal(L->defines, want);
    assert_true(L->local_size >= 1);
    assert_true(dev->max_work_group_size == 0 || L->local_size <= dev->max_work_group_size);
    assert_true(dev->max_work_item_sizes[0] == 0 || L->local_size <= dev->max_work_item_sizes[0]);
    assert_true((L->local_size & (L->local_size - 1)) == 0); /* a power of two */
    assert_true(L->min_block >= 1 && L->min_block <= L->max_block);
    assert_true(L->items >= 1);
    if (dev->loop_iteration_cap)
        assert_true((uint64_t)L->max_block * L->local_size <= dev->loop_iteration_cap);
}

static void test_every_device(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    for (size_t i = 0; i < n; i++) {
        clattn__blocks_launch L;
        memset(&L, 0xa5, sizeof L);
        clattn__schedule_blocks(&devs[i], &L);
        check_launch(&devs[i], &L);
        /* Block lengths over a range of problems: within the bounds, and segments that need
         * fewer work-items than the target get the minimum block. */
        static const size_t lens[] = {1, 7, 1000, 4097, 100003, (size_t)1 << 24};
        static const size_t segs[] = {1, 3, 64, 4096};
        for (size_t a = 0; a < sizeof lens / sizeof lens[0]; a++)
            for (size_t b = 0; b < sizeof segs / sizeof segs[0]; b++) {
                size_t blk = clattn__sort_block(&L, segs[b], lens[a]);
                assert_true(blk >= L.min_block && blk <= L.max_block);
                if (segs[b] * lens[a] <= L.items * L.min_block)
                    assert_int_equal(blk, L.min_block);
            }
    }
}

/* The measured figures on PoCL (and any device without quirks): 8-bit digits, blocks of 1024 to
 * 16384 elements for about 8192 work-items, work-groups of 8. */
static void test_pocl_figures(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    const clattn_device_info *pocl = NULL;
    for (size_t i = 0; i < n; i++)
        if (strstr(devs[i].name, "PoCL"))
            pocl = &devs[i];
    assert_non_null(pocl);
    clattn__blocks_launch L;
    clattn__schedule_blocks(pocl, &L);
    assert_int_equal(L.bits, 8);
    assert_int_equal(L.min_block, 1024);
    assert_int_equal(L.max_block, 16384);
    assert_int_equal(L.items, 8192);
    assert_int_equal(L.local_size, 8);
    assert_int_equal(clattn__sort_block(&L, 1, 8192 * 2000), 2000);
    assert_int_equal(clattn__sort_block(&L, 1, (size_t)8192 * 20000), 16384);
    assert_int_equal(clattn__sort_block(&L, 10, 100), 1024);
}

/* llvmpipe counts loop iterations over a work-group: its blocks shrink so that a work-group's
 * blocks stay below the cap; a tighter made-up cap shrinks the work-group too. */
static void test_loop_cap(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    const clattn_device_info *lp = NULL;
    for (size_t i = 0; i < n; i++)
        if (devs[i].loop_iteration_cap)
            lp = &devs[i];
    assert_non_null(lp);
    clattn__blocks_launch L;
    clattn__schedule_blocks(lp, &L);
    assert_true(L.max_block < 16384);
    assert_true(L.max_block * L.local_size <= 65535);
    clattn_device_info tight = *lp;
    tight.loop_iteration_cap = 2048;
    clattn__schedule_blocks(&tight, &L);
    check_launch(&tight, &L);
    assert_true(L.local_size <= 2);
    tight.loop_iteration_cap = 100; /* below the minimum block: one item, short blocks */
    clattn__schedule_blocks(&tight, &L);
    check_launch(&tight, &L);
    assert_int_equal(L.local_size, 1);
    assert_int_equal(L.max_block, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_device),
        cmocka_unit_test(test_pocl_figures),
        cmocka_unit_test(test_loop_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
