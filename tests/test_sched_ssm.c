/* test_sched_ssm.c - device-free checks of the SSM scheduler (lib/sched/sched_ssm.c) on the
 * made-up devices of test_devices.c: AUTO's FFT/direct crossover by device class, forced
 * algorithms kept, the FFT length (>= 2L, only factors 2, 3, 5, 7, the smallest such), the
 * scratch sizes and the max-allocation refusal, the direct sum's inner loop within a device's
 * loop-iteration cap, and every size reaching ssm.cl as an SSM_-prefixed -D option. */
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

/* True when `defines` holds the option `opt` as a whole space-separated token. */
static int has_token(const char *defines, const char *opt)
{
    size_t len = strlen(opt);
    for (const char *p = strstr(defines, opt); p; p = strstr(p + 1, opt))
        if ((p == defines || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return 1;
    return 0;
}

static int smooth7(size_t m)
{
    static const size_t primes[] = {2, 3, 5, 7};
    for (size_t i = 0; i < 4; i++)
        while (m % primes[i] == 0)
            m /= primes[i];
    return m == 1;
}

static clattn__ssm_launch schedule_ok(const clattn_device_info *dev, size_t rows, size_t H,
                                      size_t L, clattn_ssm_algo algo)
{
    clattn__ssm_problem prob = {rows, H, L};
    clattn__ssm_launch out;
    char why[160];
    clattn_status st = clattn__schedule_ssm(dev, &prob, algo, &out, why, sizeof why);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s rows %zu L %zu algo %d: %s (%s)", dev->name, rows, L, (int)algo,
                 clattn_status_string(st), why);
    return out;
}

/* Every launch: its options are the launch's sizes, SSM_-prefixed, and the loop cap holds. */
static void check_launch(const clattn_device_info *dev, const clattn__ssm_launch *L)
{
    char opt[64];
    snprintf(opt, sizeof opt, "-DSSM_CHUNK=%u", L->chunk);
    assert_true(has_token(L->defines, opt));
    snprintf(opt, sizeof opt, "-DSSM_DIRECT_ROWS=%u", L->direct_rows);
    assert_true(has_token(L->defines, opt));
    snprintf(opt, sizeof opt, "-DSSM_DIRECT_BLOCK=%u", L->direct_block);
    assert_true(has_token(L->defines, opt));
    for (const char *p = strstr(L->defines, "-D"); p; p = strstr(p + 1, "-D"))
        if (strncmp(p, "-DSSM_", 6) != 0)
            fail_msg("%s: option without the SSM_ prefix in '%s'", dev->name, L->defines);
    assert_true(L->chunk >= 1 && L->direct_rows >= 1 && L->direct_block >= 1);
    if (dev->loop_iteration_cap)
        assert_true(L->direct_block <= dev->loop_iteration_cap);
}

static void test_auto_crossover(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    static const size_t Ls[] = {1, 255, 256, 257, 1000, 2048, 2049, 65536, ((size_t)1 << 24) - 1};
    for (size_t i = 0; i < n; i++) {
        const clattn_device_info *dev = &devs[i];
        size_t max = dev->device_class == CLATTN_DEVICE_GPU ? CLATTN__SSM_DIRECT_MAX_L_GPU
                                                            : CLATTN__SSM_DIRECT_MAX_L;
        for (size_t j = 0; j < sizeof Ls / sizeof Ls[0]; j++) {
            clattn__ssm_launch L = schedule_ok(dev, 4, 4, Ls[j], CLATTN_SSM_AUTO);
            assert_int_equal(L.algo, Ls[j] <= max ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT);
            check_launch(dev, &L);
        }
    }
    /* The measured crossovers themselves. */
    assert_int_equal(CLATTN__SSM_DIRECT_MAX_L, 256);
    assert_int_equal(CLATTN__SSM_DIRECT_MAX_L_GPU, 2048);
}

static void test_forced_and_fft_length(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    static const size_t Ls[] = {1, 2, 3, 500, 1000, 4097, 65536, 100003};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sizeof Ls / sizeof Ls[0]; j++) {
            size_t len = Ls[j], rows = 6;
            clattn__ssm_launch d = schedule_ok(&devs[i], rows, 3, len, CLATTN_SSM_DIRECT);
            assert_int_equal(d.algo, CLATTN_SSM_DIRECT);
            assert_int_equal(d.fft_len, 0);
            check_launch(&devs[i], &d);
            clattn__ssm_launch f = schedule_ok(&devs[i], rows, 3, len, CLATTN_SSM_FFT);
            assert_int_equal(f.algo, CLATTN_SSM_FFT);
            check_launch(&devs[i], &f);
            size_t M = f.fft_len;
            assert_true(M >= 2 * len && smooth7(M));
            for (size_t m = 2 * len; m < M; m++) /* the smallest such length */
                assert_false(smooth7(m));
            assert_int_equal(f.fft_real_bytes, rows * M * sizeof(float));
            assert_int_equal(f.fft_cplx_bytes, rows * (M / 2 + 1) * 2 * sizeof(float));
            /* The options do not depend on the algorithm or the length: one program. */
            assert_string_equal(d.defines, f.defines);
        }
}

static void test_refusals(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    make_devices(devs);
    const clattn_device_info *dev = &devs[0];
    clattn__ssm_launch out;
    char why[160];
    clattn__ssm_problem ok = {4, 4, 100}, p;
    p = ok;
    p.L = 0;
    assert_int_equal(clattn__schedule_ssm(dev, &p, CLATTN_SSM_AUTO, &out, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    assert_true(why[0] != '\0');
    p.L = (size_t)1 << 24;
    assert_int_equal(clattn__schedule_ssm(dev, &p, CLATTN_SSM_AUTO, &out, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p = ok;
    p.rows = 0;
    assert_int_equal(clattn__schedule_ssm(dev, &p, CLATTN_SSM_AUTO, &out, NULL, 0),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__schedule_ssm(dev, &ok, (clattn_ssm_algo)5, &out, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn__schedule_ssm(NULL, &ok, CLATTN_SSM_AUTO, &out, why, sizeof why),
                     CLATTN_NULL_POINTER);
    /* FFT scratch beyond the max allocation: refused for FFT, direct still fine. */
    clattn_device_info small = *dev;
    small.max_alloc_size = 1 << 20;
    clattn__ssm_problem big = {64, 4, 4096};
    assert_int_equal(clattn__schedule_ssm(&small, &big, CLATTN_SSM_FFT, &out, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_non_null(strstr(why, "max allocation"));
    assert_int_equal(clattn__schedule_ssm(&small, &big, CLATTN_SSM_DIRECT, &out, why, sizeof why),
                     CLATTN_SUCCESS);
    /* A small loop cap bounds the direct sum's inner loop. */
    small = *dev;
    small.loop_iteration_cap = 1000;
    out = schedule_ok(&small, 1, 1, 10, CLATTN_SSM_DIRECT);
    assert_int_equal(out.direct_block, 1000);
}

/* Full S4's generation: Lg the smallest 2-3-5-7-smooth length >= max_length, its bins and
 * scratch sizes, and the refusals (zero sizes, 2^24, scratch beyond the max allocation). */
static void test_s4_launch(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t n = make_devices(devs);
    const size_t lens[] = {1, 7, 11, 1000, 1023, 16384, 65537};
    for (size_t d = 0; d < n; d++)
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            clattn__ssm_s4_launch o;
            char why[160];
            assert_int_equal(clattn__schedule_ssm_s4(&devs[d], 3, lens[i], &o, why, sizeof why),
                             CLATTN_SUCCESS);
            assert_true(o.gen_len >= lens[i] && smooth7(o.gen_len));
            for (size_t m = lens[i]; m < o.gen_len; m++)
                assert_false(smooth7(m));
            assert_int_equal(o.bins, o.gen_len / 2 + 1);
            assert_int_equal(o.spec_bytes, 3 * o.bins * 8);
            assert_int_equal(o.kernel_bytes, 3 * o.gen_len * 4);
        }
    clattn__ssm_s4_launch o;
    char why[160];
    assert_int_equal(clattn__schedule_ssm_s4(&devs[0], 0, 10, &o, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__schedule_ssm_s4(&devs[0], 1, 0, &o, NULL, 0), CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__schedule_ssm_s4(&devs[0], 1, (size_t)1 << 24, &o, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__schedule_ssm_s4(NULL, 1, 10, &o, why, sizeof why),
                     CLATTN_NULL_POINTER);
    clattn_device_info small = devs[0];
    small.max_alloc_size = 1 << 20;
    assert_int_equal(clattn__schedule_ssm_s4(&small, 8, 65536, &o, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_non_null(strstr(why, "max allocation"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_crossover),
        cmocka_unit_test(test_forced_and_fft_length),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_s4_launch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
