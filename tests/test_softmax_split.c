/* Split-KV attention for few queries (issue 17 section 1) on TILED_CPU: the split kernel (S forced
 * by CLATTN_SOFTMAX_CPU_SPLITS, odd counts, ranges left empty by short keys and key lengths) and
 * the unsplit one (S = 1) against the fp64 reference ref_softmax_ex, through test_softmax_opts.c's
 * run_case: Nk 1 to 1500, Nq 1, 4, 16 with causal, GQA 8/2 and MQA, key lengths (0 included), a
 * window, a block mask with fully masked blocks, sinks with fully masked rows (lse = the sink),
 * bias, f16 K/V, every option at once; plus the scheduler's choice (splits for one query over a
 * long cache, none for prefill). D 64 throughout (a 128-key block): three kernel builds split
 * (plain, options, f16) and one unsplit (plain). */
#define TEST_SOFTMAX_OPTS_NO_MAIN
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the opts suite's tests, not run here */
#endif
#include "test_softmax_opts.c"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "sched.h"

static ocase split_case(size_t nq, size_t nk)
{
    ocase c = base_case();
    c.d = 64;
    c.nq = nq;
    c.nk = nk;
    return c;
}

/* Runs c with S splits and, when `unsplit`, with S = 1 (the unsplit kernel); each must match the
 * reference. The unsplit runs are kept to one kernel build (plain f32 options-off). */
static void check_split(const ocase *c, unsigned s, int unsplit, const char *what)
{
    const unsigned counts[2] = {s, 1};
    for (int i = 0; i < 1 + (unsplit != 0); i++) {
        char v[16];
        snprintf(v, sizeof v, "%u", counts[i]);
        setenv("CLATTN_SOFTMAX_CPU_SPLITS", v, 1);
        double err = run_case(c, CLATTN_SOFTMAX_TILED_CPU);
        unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
        if (!(err >= 0 && err <= 1e-4))
            print_error("%s, S = %u: error %g\n", what, counts[i], err);
        assert_true(err >= 0 && err <= 1e-4);
    }
}

static void test_split_shapes(void **state)
{
    (void)state;
    ocase c = split_case(1, 1);
    check_split(&c, 3, 1, "nq 1 nk 1");
    c = split_case(1, 700); /* GQA 8/2, key lengths 233 and 700 (batch 0 leaves splits empty) */
    c.B = 2, c.Hq = 8, c.Hk = 2, c.key_lengths = 1;
    check_split(&c, 5, 1, "nq 1 nk 700 gqa 8/2 key lengths");
    c = split_case(4, 517); /* MQA, causal */
    c.Hq = 3, c.Hk = 1, c.causal = 1;
    check_split(&c, 3, 1, "nq 4 nk 517 mqa causal");
    c = split_case(16, 600); /* causal, key lengths with batch 0 at 0 */
    c.B = 2, c.Hq = 1, c.causal = 1, c.key_lengths = 1, c.kl_zero = 1;
    check_split(&c, 7, 0, "nq 16 nk 600 causal key lengths 0");
    c = split_case(1, 650); /* f16 q/k/v (half panels) */
    c.qkv_dt = CLATTN_F16;
    check_split(&c, 5, 0, "nq 1 nk 650 f16");
}

static void test_split_options(void **state)
{
    (void)state;
    ocase c = split_case(4, 700); /* a window of 100 keys: most splits see nothing */
    c.Hq = 1, c.wl = 100, c.wr = 0;
    check_split(&c, 5, 0, "window");
    c = split_case(16, 500); /* block mask with a dead block row and column */
    c.Hq = 1, c.bq = 16, c.bk = 16, c.bm_layout = 2;
    check_split(&c, 3, 0, "block mask");
    c = split_case(4, 400); /* sinks; batch 0 sees no key: zeros, lse = the sink */
    c.B = 2, c.Hq = 1, c.sinks = 1, c.key_lengths = 1, c.kl_zero = 1;
    check_split(&c, 3, 0, "sinks");
    c = split_case(4, 400);
    c.Hq = 1, c.bias = 1;
    check_split(&c, 3, 0, "bias");
    c = split_case(16, 600); /* everything at once */
    c.B = 2, c.Hq = 4, c.Hk = 2, c.causal = 1, c.key_lengths = 1, c.bias = 3, c.mask = 2;
    c.alibi = 1, c.wl = 500, c.wr = -1, c.softcap = 20.0f, c.sinks = 1, c.bq = 16, c.bk = 32;
    c.dead_rows = 1;
    check_split(&c, 5, 0, "all options");
}

/* The scheduler: one query over a long cache splits on a TILED_CPU device, prefill does not. */
static void test_split_schedule(void **state)
{
    (void)state;
    clattn_device_info dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.name, sizeof dev.name, "PoCL-like");
    dev.device_class = CLATTN_DEVICE_CPU;
    dev.local_mem_emulated = 1;
    dev.compute_units = 2;
    dev.native_vector_width_float = 16;
    dev.max_work_group_size = 4096;
    dev.max_work_item_sizes[0] = 4096;
    dev.local_mem_size = 1024 * 1024;
    clattn__softmax_problem p = {128, 1, 65536, 0, 0};
    clattn__softmax_launch L;
    assert_int_equal(clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    unsigned s1 = clattn__softmax_cpu_splits(&dev, &p, &L, 1 * 8);
    assert_true(s1 >= 2);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    clattn_plan_info info;
    const size_t q[4] = {1, 8, 1, 128}, k[4] = {1, 8, 65536, 128};
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q, k, &info), CLATTN_SUCCESS);
    char want[32];
    snprintf(want, sizeof want, " splits=%u", s1);
    assert_non_null(strstr(info.launch, want));
    assert_non_null(strstr(info.build_options, "-DSOFTMAX_SPLIT=1"));
    /* Prefill-sized Nq, or a short cache: unsplit. */
    p.nq = 4096;
    assert_int_equal(clattn__softmax_cpu_splits(&dev, &p, &L, 8), 1);
    p.nq = 1, p.nk = 256;
    assert_int_equal(clattn__softmax_cpu_splits(&dev, &p, &L, 8), 1);
}

/* "oclgrind": two small split cases (D 8: a 512-key block, three ranges, the last partial;
 * five ranges, four empty) outside cmocka, for tests/CMakeLists.txt's oclgrind runs (races,
 * out-of-bounds and uninitialised reads of the partials). */
static int run_split_oclgrind(void)
{
    ctx = tu_context();
    if (!ctx)
        return 1;
    ocase cs[2];
    ocase c = base_case();
    c.d = 8, c.nq = 3, c.nk = 1100, c.B = 2, c.key_lengths = 1, c.sinks = 1, c.wl = 600;
    cs[0] = c;
    c = base_case();
    c.d = 8, c.nq = 1, c.nk = 300;
    cs[1] = c;
    const unsigned splits[2] = {3, 5};
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        char v[16];
        snprintf(v, sizeof v, "%u", splits[i]);
        setenv("CLATTN_SOFTMAX_CPU_SPLITS", v, 1);
        double err = run_case(&cs[i], CLATTN_SOFTMAX_TILED_CPU);
        unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
        if (!(err >= 0 && err <= 1e-4)) {
            fprintf(stderr, "split oclgrind case %d: error %g\n", i, err);
            bad = 1;
        }
    }
    clattn_context_destroy(ctx);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "oclgrind") == 0)
        return run_split_oclgrind();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_schedule),
        cmocka_unit_test(test_split_shapes),
        cmocka_unit_test(test_split_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
