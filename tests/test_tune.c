/* test_tune.c - the autotuner on a real device, kept small (N = 256, D = 16/32, budgets of a few
 * seconds) with a fresh CLATTN_CACHE_DIR:
 *   - the launch the tuner chose is not slower than the default, by an independent re-timing
 *     outside the tuner (alternating pairs, its own noise estimate), not the tuner's bookkeeping;
 *   - the entry it writes is what the next AUTO plan uses, and that plan matches the fp64
 *     reference; decoding shapes (Nq = 1) are tuned and used the same way;
 *   - the budget bounds the wall time of a tune call (builds included), with a stated slack;
 *   - CLATTN_TUNING=off ignores the database; bad arguments and untunable operators fail cleanly;
 *   - two processes tuning at once leave a valid file with both entries.
 *
 * The concurrent writers are this executable re-run (fork + exec) with --child, not bare forks: a
 * forked child of a process whose OpenCL runtime has started its threads is not safe to use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/tune/tune.h"
#include "reference/ref_softmax.h"
#include "test_util.h"
#include "tune_fixture.h"

#define N 256
#define H 2
#define BUDGET 4.0
#define CHILD_ENTRIES 20
#define PAIRS 15

static char dir[256];
static clattn_context *ctx;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/clattn-tune-XXXXXX");
    return tune_fixture_setup(dir, &ctx);
}

static int teardown(void **state)
{
    (void)state;
    return tune_fixture_teardown(dir, ctx);
}

typedef struct io {
    cl_mem mem[4];
    clattn_tensor t[4];
} io;

static void io_make(io *x, size_t nq, size_t d)
{
    uint64_t seed = 7;
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)H * (i == 0 || i == 3 ? nq : N) * d;
        float *host = i < 3 ? tu_random(n, 1.0f, &seed) : NULL;
        x->mem[i] = tu_buffer(ctx, n * sizeof(float), host);
        x->t[i] = clattn_tensor_make(x->mem[i], 1, H, i == 0 || i == 3 ? nq : N, d);
        free(host);
    }
}

static void io_free(io *x)
{
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(x->mem[i]);
}

/* One enqueue + finish, in milliseconds (the wall clock, as the tuner and `bench` measure). */
static double time_once(clattn_plan *p, io *x)
{
    double t0 = clattn__tune_now_s();
    assert_int_equal(clattn_softmax_plan_enqueue(p, &x->t[0], &x->t[1], &x->t[2], &x->t[3], NULL,
                                                 0, NULL, NULL),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    return (clattn__tune_now_s() - t0) * 1e3;
}

static void tune(size_t nq, size_t d, int causal, double budget, clattn_tune_report *r)
{
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = causal;
    size_t q[4] = {1, H, nq, d}, k[4] = {1, H, N, d};
    clattn_status st = clattn_tune(ctx, CLATTN_OP_SOFTMAX, &desc, q, k, NULL, budget, r);
    if (st != CLATTN_SUCCESS)
        fail_msg("tune failed: %s: %s", clattn_status_string(st), clattn_context_last_error(ctx));
    if (r->notes[0])
        print_message("tuner notes:\n%s", r->notes);
}

/* The tuned plan (AUTO, from the database) against the scheduler's default (forced), re-timed
 * here in PAIRS alternating pairs (ABBA order, so a drift in machine load hits both). Noise is
 * measured here too: the interquartile spread of the default's re-timings, at least 5% of its
 * median (timer and thread wake-up granularity on a shared two-vCPU machine). The chosen launch
 * must not be slower than the default beyond that noise: the median of the paired differences
 * (tuned - default) is at most the noise. */
static void check_not_slower(size_t nq, size_t d, int causal)
{
    size_t q[4] = {1, H, nq, d}, k[4] = {1, H, N, d};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = causal;
    clattn__softmax_problem prob = {d, nq, N, causal, 0};
    clattn__softmax_launch def;
    assert_int_equal(
        clattn__schedule_softmax(&ctx->info, &prob, CLATTN_SOFTMAX_AUTO, &def, NULL, 0),
        CLATTN_SUCCESS);
    clattn_plan *pd = NULL, *pt = NULL;
    clattn_plan_info info;
    assert_int_equal(clattn__softmax_plan_create_launch(ctx, &desc, q, k, &def, &pd),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_softmax_plan_create(ctx, &desc, q, k, k, &pt), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(pt, &info), CLATTN_SUCCESS);
    assert_int_equal(info.from_tuning_db, 1);
    io x;
    io_make(&x, nq, d);
    time_once(pd, &x); /* warm-up: first launches compile work-group specialisations */
    time_once(pt, &x);
    double a[PAIRS], b[PAIRS], diff[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        if (i % 2 == 0) {
            a[i] = time_once(pd, &x);
            b[i] = time_once(pt, &x);
        } else {
            b[i] = time_once(pt, &x);
            a[i] = time_once(pd, &x);
        }
        diff[i] = b[i] - a[i];
    }
    double med_a = tune_quantile(a, PAIRS, 0.5), med_b = tune_quantile(b, PAIRS, 0.5);
    double noise =
        fmax(tune_quantile(a, PAIRS, 0.75) - tune_quantile(a, PAIRS, 0.25), 0.05 * med_a);
    double med_diff = tune_quantile(diff, PAIRS, 0.5);
    print_message("re-timed (%s): default %.3f ms, tuned %.3f ms, paired diff %.3f, noise %.3f\n",
                  info.launch, med_a, med_b, med_diff, noise);
    if (!(med_diff <= noise))
        fail_msg("the tuned launch (%s) is slower than the default by %.3f ms > noise %.3f ms",
                 info.launch, med_diff, noise);
    clattn_plan_destroy(pd);
    clattn_plan_destroy(pt);
    io_free(&x);
}

static void test_tuner_no_slower_than_default(void **state)
{
    (void)state;
    clattn_tune_report r;
    tune(N, 16, 0, BUDGET, &r);
    print_message("D=16: default %s %.3f ms, tuned %s %.3f ms, noise %.3f, %u/%u tried, %.1f s\n",
                  r.default_plan, r.default_ms, r.tuned_plan, r.tuned_ms, r.noise_ms, r.tried,
                  r.candidates, r.seconds);
    assert_true(r.tried >= 1 && r.tried <= r.candidates);
    assert_true(r.db_written);
    check_not_slower(N, 16, 0);
}

/* A plan from a fresh context (the database read from disk) uses the entry and stays correct. */
static void test_tuned_entry_used_and_correct(void **state)
{
    (void)state;
    clattn_tune_report r;
    tune(N, 32, 1, BUDGET, &r);
    clattn_context *c2 = NULL;
    assert_int_equal(clattn_context_create(NULL, &c2), CLATTN_SUCCESS);
    clattn_tuning_entry e[8];
    size_t count = 0;
    assert_int_equal(clattn_tuning_db_list(c2, e, 8, &count), CLATTN_SUCCESS);
    assert_int_equal(count, 2); /* D=16 full from the first test, D=32 causal */
    const clattn_tuning_entry *mine = e[0].head_dim == 32 ? &e[0] : &e[1];
    assert_string_equal(mine->op, "softmax");
    assert_string_equal(mine->variant,
                        clattn__softmax_family(&c2->info) == CLATTN_SOFTMAX_TILED_CPU ? "cpu"
                                                                                       : "gpu");
    assert_int_equal(mine->head_dim, 32);
    assert_int_equal(mine->head_dim_v, 32);
    assert_int_equal(mine->causal, 1);
    assert_int_equal(mine->nq_bucket, N);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = 1;
    size_t s[4] = {1, H, N - 3, 32}; /* N - 3 is in the same bucket */
    clattn_plan *p = NULL;
    clattn_plan_info info;
    assert_int_equal(clattn_softmax_plan_create(c2, &desc, s, s, s, &p), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(p, &info), CLATTN_SUCCESS);
    assert_int_equal(info.from_tuning_db, 1);
    assert_string_equal(info.kernels[info.num_kernels - 1].chosen_by, "tuning-db");
    assert_int_equal(info.rows_per_item, clattn__tune_param(mine, "rows", -1));
    assert_int_equal(info.local_size, clattn__tune_param(mine, "local", -1));
    assert_int_equal(info.tile_kv, clattn__tune_param(mine, "tile_kv", -1));
    clattn_plan_destroy(p);

    size_t n = (size_t)H * (N - 3) * 32;
    uint64_t seed = 11;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed),
          *v = tu_random(n, 1.0f, &seed), *o = tu_poisoned(n), *ref = malloc(n * 4);
    assert_non_null(ref);
    assert_int_equal(clattn_softmax_host(c2, &desc, s, s, s, q, k, v, NULL, o, NULL),
                     CLATTN_SUCCESS);
    ref_softmax(q, k, v, ref, NULL, 1, H, H, N - 3, N - 3, 32, 1.0 / sqrt(32.0), 1, NULL);
    tu_check_close(o, ref, n, TU_TOL_FP32, "tuned plan vs reference");
    free(q), free(k), free(v), free(o), free(ref);
    clattn_context_destroy(c2);
}

/* A decoding shape (one query over N keys) is a shape class of its own: tuned, recorded with
 * nq = 1, used by the next plan of that shape, and not slower than the default. */
static void test_decoding_shape(void **state)
{
    (void)state;
    clattn_tune_report r;
    tune(1, 32, 0, BUDGET, &r);
    assert_true(r.db_written);
    clattn_tuning_entry key, found;
    clattn__tune_key(&key, CLATTN_OP_SOFTMAX,
                     clattn__softmax_family(&ctx->info) == CLATTN_SOFTMAX_TILED_CPU ? "cpu"
                                                                                      : "gpu",
                     32, 32, 1, N, 0);
    assert_true(clattn__tune_find(ctx, &key, &found));
    assert_int_equal(found.nq_bucket, 1);
    assert_int_equal(found.nk_bucket, N);
    check_not_slower(1, 32, 0);
}

/* The budget bounds the wall time of the call, builds included. A fresh shape class (D = 48, not
 * built by any other test) so the candidates' set-ups are real. Stated slack: the tuner predicts a
 * candidate's set-up (build + first launch, where PoCL compiles the kernel) from the dearest one
 * it has seen, at least 1 s, so it may overrun by one set-up it could not foresee: at most about
 * a cold set-up of the same kernel, which the test measures first on this machine as loaded now
 * (t_cold: the default launch with a unique extra -D, so that no program or PoCL cache can serve
 * it), x1.5 for load changes; plus 0.5 s for the minimum confirmation and the timer (runs take
 * milliseconds here). */
static double cold_setup_s(size_t d, int causal)
{
    size_t q[4] = {1, H, N, d};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = causal;
    clattn__softmax_problem prob = {d, N, N, causal, 0};
    clattn__softmax_launch L;
    assert_int_equal(clattn__schedule_softmax(&ctx->info, &prob, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    size_t len = strlen(L.defines);
    snprintf(L.defines + len, sizeof L.defines - len, " -DCLATTN_TEST_NONCE=%ld%d",
             (long)getpid(), (int)(clattn__tune_now_s() * 1e3) % 1000000);
    clattn_plan *p = NULL;
    io x;
    io_make(&x, N, d);
    double t0 = clattn__tune_now_s();
    assert_int_equal(clattn__softmax_plan_create_launch(ctx, &desc, q, q, &L, &p), CLATTN_SUCCESS);
    time_once(p, &x);
    double t = clattn__tune_now_s() - t0;
    clattn_plan_destroy(p);
    io_free(&x);
    return t;
}

static void test_budget_bounds_wall_time(void **state)
{
    (void)state;
    const double budget = 2.0;
    double t_cold = cold_setup_s(48, 0), slack = 1.5 * t_cold + 0.5;
    clattn_tune_report r;
    double t0 = clattn__tune_now_s();
    tune(N, 48, 0, budget, &r);
    double wall = clattn__tune_now_s() - t0;
    print_message("budget %.1f s: wall %.2f s (report %.2f s), %u/%u tried, exhausted %d, "
                  "cold set-up %.2f s\n",
                  budget, wall, r.seconds, r.tried, r.candidates, r.budget_exhausted, t_cold);
    assert_true(r.seconds <= wall);
    if (wall > budget + slack)
        fail_msg("tune with budget %.1f s took %.2f s (slack %.2f s)", budget, wall, slack);
}

static void test_tuning_off_and_reset(void **state)
{
    (void)state;
    size_t s[4] = {1, H, N, 32};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = 1;
    clattn_plan *p = NULL;
    clattn_plan_info info;
    setenv("CLATTN_TUNING", "off", 1);
    clattn_context *c2 = NULL;
    assert_int_equal(clattn_context_create(NULL, &c2), CLATTN_SUCCESS);
    assert_int_equal(clattn_softmax_plan_create(c2, &desc, s, s, s, &p), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(p, &info), CLATTN_SUCCESS);
    assert_int_equal(info.from_tuning_db, 0);
    clattn_plan_destroy(p);
    unsetenv("CLATTN_TUNING");
    /* An explicit family is the caller's choice: the database is not consulted. */
    desc.algorithm = clattn__softmax_family(&c2->info);
    assert_int_equal(clattn_softmax_plan_create(c2, &desc, s, s, s, &p), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(p, &info), CLATTN_SUCCESS);
    assert_int_equal(info.from_tuning_db, 0);
    clattn_plan_destroy(p);
    clattn_context_destroy(c2);

    /* A corrupt database: plans still work, the warning is retrievable. */
    char path[1200], warn[512];
    assert_int_equal(clattn_tuning_db_path(ctx, path, sizeof path), CLATTN_SUCCESS);
    char save[1300];
    snprintf(save, sizeof save, "%s.saved", path);
    assert_int_equal(rename(path, save), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a database\n", f);
    fclose(f);
    assert_int_equal(clattn_context_create(NULL, &c2), CLATTN_SUCCESS);
    desc.algorithm = CLATTN_SOFTMAX_AUTO;
    assert_int_equal(clattn_softmax_plan_create(c2, &desc, s, s, s, &p), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(p, &info), CLATTN_SUCCESS);
    assert_int_equal(info.from_tuning_db, 0);
    clattn_tuning_db_warning(c2, warn, sizeof warn);
    assert_non_null(strstr(warn, "ignored"));
    clattn_plan_destroy(p);
    assert_int_equal(clattn_tuning_db_reset(c2), CLATTN_SUCCESS);
    assert_int_equal(access(path, F_OK), -1);
    clattn_context_destroy(c2);
    assert_int_equal(rename(save, path), 0);
}

static void test_budget_and_bad_arguments(void **state)
{
    (void)state;
    size_t s[4] = {1, H, N, 16}, bad[4] = {1, H, N, 513}, other[4] = {1, H, N + 1, 16};
    clattn_tune_report r;
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    assert_int_equal(clattn_tune_softmax(ctx, NULL, s, s, 1e-3, &r), CLATTN_SUCCESS);
    assert_int_equal(r.tried, 1); /* the default only */
    assert_int_equal(r.budget_exhausted, r.candidates > 1);
    assert_true(r.kept_default);
    tu_expect_status(ctx, clattn_tune_softmax(ctx, NULL, s, s, 1.0, NULL), CLATTN_NULL_POINTER,
                     "no report");
    tu_expect_status(ctx, clattn_tune_softmax(ctx, NULL, s, s, 0.0, &r), CLATTN_INVALID_ARGUMENT,
                     "zero budget");
    tu_expect_status(ctx, clattn_tune_softmax(ctx, NULL, s, s, NAN, &r), CLATTN_INVALID_ARGUMENT,
                     "NaN budget");
    tu_expect_status(ctx, clattn_tune_softmax(ctx, NULL, bad, bad, 1.0, &r), CLATTN_INVALID_SHAPE,
                     "D 513");
    tu_expect_status(ctx, clattn_tune(ctx, CLATTN_OP_SOFTMAX, NULL, s, NULL, NULL, 1.0, &r),
                     CLATTN_NULL_POINTER, "no k shape");
    tu_expect_status(ctx, clattn_tune(ctx, CLATTN_OP_SOFTMAX, NULL, s, s, other, 1.0, &r),
                     CLATTN_SHAPE_MISMATCH, "v differs from k");
    assert_int_equal(clattn_tune_softmax(NULL, NULL, s, s, 1.0, &r), CLATTN_NULL_POINTER);
    desc.algorithm = CLATTN_SOFTMAX_NAIVE;
    tu_expect_status(ctx, clattn_tune_softmax(ctx, &desc, s, s, 1.0, &r), CLATTN_UNSUPPORTED,
                     "naive");
    /* An operator without a tuner: refused with a message naming the tunable ones. */
    tu_expect_status(ctx, clattn_tune(ctx, CLATTN_OP_SSM, NULL, s, s, s, 1.0, &r),
                     CLATTN_UNSUPPORTED, "ssm");
    assert_non_null(strstr(clattn_context_last_error(ctx), "tunable: softmax"));
}

/* Child: tunes D = d, then merges CHILD_ENTRIES made-up entries one by one, racing the other. */
static int child_main(const char *d_arg)
{
    clattn_context *c = NULL;
    unsigned d = (unsigned)atoi(d_arg);
    if (clattn_context_create(NULL, &c) != CLATTN_SUCCESS)
        return 2;
    clattn_tune_report r;
    size_t s[4] = {1, H, N, d};
    int rc = clattn_tune_softmax(c, NULL, s, s, 1.5, &r) == CLATTN_SUCCESS && r.db_written ? 0
                                                                                           : 3;
    char path[1200], warn[400];
    clattn_tuning_db_path(c, path, sizeof path);
    for (unsigned i = 0; i < CHILD_ENTRIES && rc == 0; i++) {
        clattn_tuning_entry e;
        /* distinct per child */
        clattn__tune_key(&e, CLATTN_OP_SOFTMAX, "cpu", 200 + d, 200 + d, (size_t)1 << i,
                         (size_t)1 << i, 0);
        clattn__tune_param_set(&e, "rows", 1);
        clattn__tune_param_set(&e, "local", 1);
        clattn__tune_param_set(&e, "tile_kv", 16);
        if (clattn__tune_db_store(path, clattn__tune_device_hash(&c->info), &e, 1, warn,
                                  sizeof warn) != CLATTN_SUCCESS)
            rc = 4;
    }
    clattn_context_destroy(c);
    return rc;
}

static void test_two_processes_tuning(void **state)
{
    (void)state;
    assert_int_equal(clattn_tuning_db_reset(ctx), CLATTN_SUCCESS);
    const char *ds[2] = {"16", "32"};
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            execl("/proc/self/exe", "test_tune", "--child", ds[i], (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < 2; i++) {
        int ws = 0;
        assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
        assert_true(WIFEXITED(ws));
        assert_int_equal(WEXITSTATUS(ws), 0);
    }
    clattn_tuning_entry e[64];
    size_t count = 0;
    char warn[512];
    assert_int_equal(clattn_tuning_db_list(ctx, e, 64, &count), CLATTN_SUCCESS);
    clattn_tuning_db_warning(ctx, warn, sizeof warn);
    assert_string_equal(warn, "");
    assert_int_equal(count, 2 + 2 * CHILD_ENTRIES);
    int tuned16 = 0, tuned32 = 0;
    for (size_t i = 0; i < count; i++) {
        tuned16 += e[i].head_dim == 16 && e[i].nq_bucket == N;
        tuned32 += e[i].head_dim == 32 && e[i].nq_bucket == N;
    }
    assert_int_equal(tuned16, 1);
    assert_int_equal(tuned32, 1);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tuner_no_slower_than_default),
        cmocka_unit_test(test_tuned_entry_used_and_correct),
        cmocka_unit_test(test_decoding_shape),
        cmocka_unit_test(test_budget_bounds_wall_time),
        cmocka_unit_test(test_tuning_off_and_reset),
        cmocka_unit_test(test_budget_and_bad_arguments),
        cmocka_unit_test(test_two_processes_tuning),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
