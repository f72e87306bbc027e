/* test_sched_deq.c - device-free checks of the DEQ solvers' launch sizes (lib/sched/sched_deq.c)
 * on the made-up devices of test_devices.c: the partial-sum count is a power of two within
 * [1, CLATTN__DEQ_MAX_PARTS], at most len / CLATTN__DEQ_MIN_PER_PART (1 for short vectors) and
 * the largest such; work-group sizes fit the device and divide what they must (parts); SIMT /
 * loop-capped devices (llvmpipe) get single-item groups for the looping kernels, which keeps the
 * dots loop (len / parts iterations per item) within their cap for the lengths the cell uses; and
 * the -D option carries parts. */
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

static int pow2(size_t v) { return v != 0 && (v & (v - 1)) == 0; }

static void test_parts_and_groups(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    const size_t lens[] = {1, 8, 31, 32, 64, 1000, 4096, 8192, 65536, (size_t)1 << 26};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            const clattn_device_info *d = &devs[i];
            size_t len = lens[j];
            clattn__deq_launch L;
            clattn__schedule_deq(d, len, &L);
            assert_true(pow2(L.parts) && L.parts <= CLATTN__DEQ_MAX_PARTS);
            if (len < 2 * CLATTN__DEQ_MIN_PER_PART)
                assert_int_equal(L.parts, 1);
            else
                assert_true(L.parts * CLATTN__DEQ_MIN_PER_PART <= len);
            if (L.parts < CLATTN__DEQ_MAX_PARTS)
                assert_true(L.parts * 2 * CLATTN__DEQ_MIN_PER_PART > len);
            size_t locals[3] = {L.dots_local, L.comb_local, L.ln_local};
            for (int k = 0; k < 3; k++) {
                assert_true(pow2(locals[k]) && locals[k] <= CLATTN__DEQ_LOCAL);
                assert_true(locals[k] <= d->max_work_group_size);
                assert_true(locals[k] <= d->max_work_item_sizes[0]);
            }
            assert_int_equal(L.parts % L.dots_local, 0);
            if (d->simt_cpu || d->loop_iteration_cap) {
                assert_int_equal(L.dots_local, 1);
                assert_int_equal(L.ln_local, 1);
                /* the cell at N 16384, D 64 and any smaller: len / parts loop iterations */
                if (d->loop_iteration_cap && len <= (size_t)1 << 20)
                    assert_true(len / L.parts <= d->loop_iteration_cap);
            }
            char opt[48];
            snprintf(opt, sizeof opt, "-DDEQ_PARTS=%zu", L.parts);
            assert_string_equal(L.defines, opt);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_and_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
