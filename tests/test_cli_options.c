/* The `clattn` tool, what every command shares: a successful run prints one summary line (none
 * with --quiet), per-command help, --layout bnhd, a device selector that matches nothing (API and
 * tool), `tune --op/--nq`. Helpers in cli_harness.c; the tool's path comes from CMake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "cli_harness.h"
#include "npy.h"
#include "test_util.h"

/* A successful run prints exactly one line on stderr: device, plan (operator, algorithm, launch,
 * who chose it), time; --quiet prints nothing. */
static void test_summary_line_and_quiet(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);
    make_inputs(q, k, v);
    static char out[8192], err[8192];
    int rc = run_capture("", "run softmax --q q.npy --k k.npy --v v.npy -o s.npy --causal", out,
                         sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_int_equal(count_lines(err), 1);
    assert_int_equal(strncmp(err, "clattn: run softmax: device ", 28), 0);
    clattn_device_info info;
    clattn_context *ctx = tu_context();
    assert_int_equal(clattn_context_get_device_info(ctx, &info), CLATTN_SUCCESS);
    clattn_context_destroy(ctx);
    if (!strstr(err, info.name))
        fail_msg("summary '%s' does not name the device '%s'", err, info.name);
    assert_non_null(strstr(err, "; plan softmax tiled_")); /* operator and algorithm */
    assert_non_null(strstr(err, "rows=")); /* the launch */
    assert_non_null(strstr(err, "(scheduler)")); /* who chose it */
    assert_non_null(strstr(err, " ms\n"));
    assert_true(exists(at("s.npy")));

    rc = run_capture("", "run softmax --q q.npy --k k.npy --v v.npy -o s.npy --quiet", out,
                     sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    rc = run_capture("", "run linear --quiet --q q.npy --k k.npy --v v.npy -o s.npy", out,
                     sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    rc = run_capture("", "run linear --q q.npy --k k.npy --v v.npy -o s.npy", out, sizeof out,
                     err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(err), 1);
    assert_int_equal(strncmp(err, "clattn: run linear: device ", 27), 0);
    /* a failure: the error line only, no summary */
    rc = run_capture("", "run softmax --q q.npy --k k.npy --v missing.npy -o s2.npy", out,
                     sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_null(strstr(err, "device"));
    remove(at("s.npy"));
    free(q);
    free(k);
    free(v);
}

/* Every operator's run bakes its operator's plan and names it in the summary line: "; plan <op>
 * <algorithm> <launch> (<chosen by>); " with an algorithm of that operator, never "plan: none"
 * (the one-shot calls the runs once made). AUTO everywhere, so the scheduler chose each; at these
 * sizes RPE and SSM take their direct paths (no clFFT build, whose compiler warnings on a cold
 * PoCL cache would add stderr lines). */
static void test_every_run_names_its_plan(void **state)
{
    (void)state;
    enum { SB = 1, SH = 2, SN = 4, SL = 40 };
    size_t n = (size_t)B * H * N * D, nb = (size_t)H * (2 * N - 1);
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);
    make_inputs(q, k, v);
    uint64_t seed = 23;
    float *bias = tu_random(nb, 0.5f, &seed), *u = tu_random((size_t)SB * SH * SL, 1, &seed),
          *Ct = tu_random((size_t)SH * SN * 2, 0.5f, &seed), A[SH * SN * 2], dt[SH];
    for (size_t i = 0; i < (size_t)SH * SN; i++) {
        A[2 * i] = -0.5f;
        A[2 * i + 1] = 3.14159265f * (float)(i % SN);
    }
    for (size_t h = 0; h < SH; h++)
        dt[h] = -3.0f - (float)h;
    size_t bs[2] = {H, 2 * N - 1}, su[3] = {SB, SH, SL}, sa[3] = {SH, SN, 2}, sh[1] = {SH};
    write_f32("bias.npy", bias, 2, bs);
    write_f32("u.npy", u, 3, su);
    write_f32("A.npy", A, 3, sa);
    write_f32("Ct.npy", Ct, 3, sa);
    write_f32("dt.npy", dt, 1, sh);
    static const struct {
        const char *op, *args, *algos[3];
    } runs[] = {
        {"softmax", "--q q.npy --k k.npy --v v.npy -o p.npy --causal",
         {"tiled_cpu", "tiled_gpu", "naive"}},
        {"linear", "--q q.npy --k k.npy --v v.npy -o p.npy", {"fused", "gemm", NULL}},
        {"rpe", "--q q.npy --k k.npy --v v.npy --bias bias.npy -o p.npy", {"direct", "fft", NULL}},
        {"lsh", "--q q.npy --v v.npy -o p.npy --hashes 2 --buckets 4 --chunk 8 --seed 1",
         {"counting_sort", "radix_sort", NULL}},
        {"routing", "--q q.npy --k k.npy --v v.npy -o p.npy --clusters 3 --seed 2",
         {"balanced", NULL, NULL}},
        {"ssm", "--u u.npy --A A.npy --Ct Ct.npy --log-dt dt.npy -o p.npy",
         {"direct", "fft", NULL}},
    };
    static char out[4096], err[4096];
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        char args[512], want[64], lead[64];
        snprintf(args, sizeof args, "run %s %s", runs[r].op, runs[r].args);
        remove(at("p.npy"));
        int rc = run_capture("", args, out, sizeof out, err, sizeof err);
        if (rc != 0)
            fail_msg("'%s': exit %d: %s", args, rc, err);
        assert_true(exists(at("p.npy")));
        if (count_lines(err) != 1)
            fail_msg("'%s': stderr is not one line:\n%s", args, err);
        snprintf(lead, sizeof lead, "clattn: run %s: device ", runs[r].op);
        if (strncmp(err, lead, strlen(lead)) != 0 || strstr(err, "plan: none"))
            fail_msg("'%s': summary '%s'", args, err);
        int named = 0;
        for (int a = 0; a < 3 && runs[r].algos[a]; a++) {
            snprintf(want, sizeof want, "; plan %s %s ", runs[r].op, runs[r].algos[a]);
            named |= strstr(err, want) != NULL;
        }
        if (!named)
            fail_msg("'%s': the summary names no %s plan and algorithm: %s", args, runs[r].op,
                     err);
        if (!strstr(err, " (scheduler); "))
            fail_msg("'%s': AUTO's plan is not the scheduler's: %s", args, err);
    }
    remove(at("p.npy"));
    free(q);
    free(k);
    free(v);
    free(bias);
    free(u);
    free(Ct);
}

/* `clattn run softmax --help` prints that command's usage only; `run --help` and `bench --help`
 * list the operators; tune and devices have their own. All exit 0 on stdout. */
static void test_per_command_help(void **state)
{
    (void)state;
    static char out[65536], err[4096];
    assert_int_equal(run_capture("", "run softmax --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn run softmax --q"));
    assert_non_null(strstr(out, "--key-lengths"));
    assert_non_null(strstr(out, "--layout bhnd|bnhd")); /* the options every run shares */
    assert_non_null(strstr(out, "--quiet"));
    assert_null(strstr(out, "clattn bench"));
    assert_null(strstr(out, "clattn run linear"));
    assert_null(strstr(out, "clattn tune"));
    assert_string_equal(err, "");
    /* help wins over the other options, wherever it is */
    assert_int_equal(run_capture("", "run lsh --q q.npy -h", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn run lsh"));
    assert_null(strstr(out, "clattn bench lsh"));
    assert_null(strstr(out, "clattn run softmax"));

    assert_int_equal(run_capture("", "bench linear --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn bench linear"));
    assert_null(strstr(out, "clattn run linear"));
    assert_null(strstr(out, "--layout"));

    const char *ops[] = {"softmax", "linear", "lsh", "routing", "ssm", "rpe", "gss", "mgk"};
    assert_int_equal(run_capture("", "run --help", out, sizeof out, err, sizeof err), 0);
    for (int i = 0; i < 8; i++) {
        char want[64];
        snprintf(want, sizeof want, "clattn run %s ", ops[i]);
        if (!strstr(out, want))
            fail_msg("'run --help' lacks '%s':\n%s", want, out);
    }
    assert_null(strstr(out, "clattn bench"));
    assert_int_equal(run_capture("", "bench --help", out, sizeof out, err, sizeof err), 0);
    for (int i = 0; i < 8; i++) {
        char want[64];
        snprintf(want, sizeof want, "clattn bench %s ", ops[i]);
        if (!strstr(out, want))
            fail_msg("'bench --help' lacks '%s':\n%s", want, out);
    }
    assert_null(strstr(out, "clattn run"));

    assert_int_equal(run_capture("", "tune --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn tune [--op softmax|linear|lsh]"));
    assert_non_null(strstr(out, "--nq"));
    assert_non_null(strstr(out, "clattn tune --show"));
    assert_null(strstr(out, "clattn run"));
    assert_int_equal(run_capture("", "devices --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn devices"));
    assert_null(strstr(out, "clattn demo"));
    assert_null(strstr(out, "clattn run"));
    /* the full text still has everything */
    assert_int_equal(run_capture("", "help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn run softmax"));
    assert_non_null(strstr(out, "clattn bench rpe"));
    assert_non_null(strstr(out, "clattn run gss"));
    assert_non_null(strstr(out, "clattn tune"));
    assert_non_null(strstr(out, "clattn demo"));
}

/* --layout bnhd: token-major [B, N, H, D] files give the same result as their [B, H, N, D]
 * transposes, and the output is written token-major too (softmax with GQA and Nq != Nk, and
 * linear). A bad value is a usage error. */
static void test_layout_bnhd(void **state)
{
    (void)state;
    enum { HQ = 4, HK = 2, NQ = 9, NK = 21 };
    size_t nq = (size_t)B * HQ * NQ * D, nk = (size_t)B * HK * NK * D;
    uint64_t seed = 99;
    float *q = tu_random(nq, 1, &seed), *k = tu_random(nk, 1, &seed), *v = tu_random(nk, 1, &seed);
    size_t qs[4] = {B, HQ, NQ, D}, ks[4] = {B, HK, NK, D};
    write_f32("lq.npy", q, 4, qs);
    write_f32("lk.npy", k, 4, ks);
    write_f32("lv.npy", v, 4, ks);
    float *qt = tu_relayout(q, B, HQ, NQ, D, 1), *kt = tu_relayout(k, B, HK, NK, D, 1),
          *vt = tu_relayout(v, B, HK, NK, D, 1);
    size_t qts[4] = {B, NQ, HQ, D}, kts[4] = {B, NK, HK, D};
    write_f32("lqt.npy", qt, 4, qts);
    write_f32("lkt.npy", kt, 4, kts);
    write_f32("lvt.npy", vt, 4, kts);
    static char out[4096], err[4096];
    const char *runs[2][2] = {
        {"run softmax --q lq.npy --k lk.npy --v lv.npy -o lo.npy --causal --quiet",
         "run softmax --q lqt.npy --k lkt.npy --v lvt.npy -o lot.npy --causal --quiet "
         "--layout bnhd"},
        {"run linear --q lq.npy --k lk.npy --v lv.npy -o lo.npy --quiet --layout bhnd",
         "run linear --layout=bnhd --q lqt.npy --k lkt.npy --v lvt.npy -o lot.npy --quiet"},
    };
    for (int r = 0; r < 2; r++) {
        if (r == 1) { /* linear: heads of q, k and v agree */
            float *q2 = tu_random((size_t)B * HK * NQ * D, 1, &seed);
            size_t q2s[4] = {B, HK, NQ, D}, q2ts[4] = {B, NQ, HK, D};
            float *q2t = tu_relayout(q2, B, HK, NQ, D, 1);
            write_f32("lq.npy", q2, 4, q2s);
            write_f32("lqt.npy", q2t, 4, q2ts);
            free(q2);
            free(q2t);
        }
        size_t hq = r == 0 ? HQ : HK;
        for (int j = 0; j < 2; j++) {
            int rc = run_capture("", runs[r][j], out, sizeof out, err, sizeof err);
            if (rc != 0)
                fail_msg("'%s': exit %d: %s", runs[r][j], rc, err);
        }
        npy_array a, b;
        char e[256];
        assert_int_equal(npy_read(at("lo.npy"), &a, e, sizeof e), 0);
        assert_int_equal(npy_read(at("lot.npy"), &b, e, sizeof e), 0);
        assert_int_equal(a.ndim, 4);
        assert_int_equal(b.ndim, 4);
        size_t want_a[4] = {B, hq, NQ, D}, want_b[4] = {B, NQ, hq, D};
        assert_memory_equal(a.shape, want_a, sizeof want_a);
        assert_memory_equal(b.shape, want_b, sizeof want_b); /* written token-major */
        float *back = tu_relayout(b.data, B, hq, NQ, D, 0);
        tu_check_close(back, a.data, a.count, (tu_tol){1e-6, 1e-6, 0}, runs[r][1]);
        free(back);
        npy_free(&a);
        npy_free(&b);
    }
    expect_failure("run softmax --q lq.npy --k lk.npy --v lv.npy -o bad_out.npy --layout nhbd",
                   "--layout");
    expect_failure("run softmax --q lq.npy --k lk.npy --v lv.npy -o bad_out.npy --layout",
                   "--layout");
    free(q), free(k), free(v), free(qt), free(kt), free(vt);
}

/* A selector that matches no device: an error for context creation (API and every command that
 * opens a device), a warning in `clattn devices`, which still lists the devices. */
static void test_selector_matching_nothing(void **state)
{
    (void)state;
    clattn_context *ctx = (clattn_context *)1;
    assert_int_equal(clattn_context_create("nosuch", &ctx), CLATTN_NO_DEVICE);
    assert_null(ctx);
    assert_non_null(strstr(clattn_context_last_error(NULL), "'nosuch'"));
    assert_int_equal(clattn_context_create("9:9", &ctx), CLATTN_NO_DEVICE);
    assert_non_null(strstr(clattn_context_last_error(NULL), "9:9"));
    char *saved = getenv("CLATTN_DEVICE") ? strdup(getenv("CLATTN_DEVICE")) : NULL;
    setenv("CLATTN_DEVICE", "nosuch", 1);
    assert_int_equal(clattn_context_create(NULL, &ctx), CLATTN_NO_DEVICE);
    assert_non_null(strstr(clattn_context_last_error(NULL), "CLATTN_DEVICE 'nosuch'"));
    assert_int_equal(clattn_context_create("", &ctx), CLATTN_NO_DEVICE);
    if (saved) {
        setenv("CLATTN_DEVICE", saved, 1);
        free(saved);
    } else {
        unsetenv("CLATTN_DEVICE");
    }

    size_t n = (size_t)B * H * N * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);
    make_inputs(q, k, v);
    static char out[65536], err[4096];
    remove(at("bad_out.npy"));
    int rc = run_capture("CLATTN_DEVICE=nosuch",
                         "run softmax --q q.npy --k k.npy --v v.npy -o bad_out.npy", out,
                         sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "nosuch"));
    assert_false(exists(at("bad_out.npy")));
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --device nosuch",
                   "nosuch");
    rc = run_capture("CLATTN_DEVICE=nosuch", "devices", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(err, "clattn: warning: ", 17), 0);
    assert_non_null(strstr(err, "nosuch"));
    assert_non_null(strstr(out, "device 0:0")); /* still listed */
    assert_non_null(strstr(out, "default selection: none"));
    free(q);
    free(k);
    free(v);
}

/* tune: --op names a tunable operator (others are usage errors before any device work); --nq
 * tunes a decoding shape, recorded with its own query bucket; linear and LSH take their run
 * options. The database goes to a folder of this test's own. */
static void test_tune_op_and_nq(void **state)
{
    (void)state;
    static char out[16384], err[16384];
    assert_int_equal(run_capture("", "tune --op ssm", out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "not tunable yet (tunable: softmax, linear, lsh)"));
    /* each operator's options only with that operator; --nq only where queries are not keys */
    assert_int_equal(run_capture("", "tune --feature-map favor", out, sizeof out, err,
                                 sizeof err),
                     2);
    assert_non_null(strstr(err, "--feature-map applies to --op linear"));
    assert_int_equal(run_capture("", "tune --op linear --hashes 2", out, sizeof out, err,
                                 sizeof err),
                     2);
    assert_non_null(strstr(err, "--hashes applies to --op lsh"));
    assert_int_equal(run_capture("", "tune --op lsh --nq 1", out, sizeof out, err, sizeof err),
                     2);
    assert_non_null(strstr(err, "--nq does not apply to --op lsh"));
    assert_int_equal(run_capture("", "tune --op lsh --buckets 7", out, sizeof out, err,
                                 sizeof err),
                     2);
    assert_int_equal(run_capture("", "tune --op linear --features 32", out, sizeof out, err,
                                 sizeof err),
                     2);
    assert_non_null(strstr(err, "--features needs --feature-map favor"));
    assert_int_equal(run_capture("", "tune --op bogus", out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "unknown operator 'bogus'"));
    assert_int_equal(run_capture("", "tune --nq 0", out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--nq"));
    char env[300];
    snprintf(env, sizeof env, "CLATTN_CACHE_DIR=%s", at("tunedb"));
    int rc = run_capture(env,
                         "tune --op softmax --d 16 --n 64 --nq 1 --heads 1 --causal no "
                         "--budget 0.5",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("tune: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "softmax D=16 Nq=1 N=64 full"));
    rc = run_capture(env, "tune --show", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "1 entry"));
    /* op variant d dv nq<= nk<= causal */
    if (!strstr(out, "softmax  cpu        16   16       1      64     no") &&
        !strstr(out, "softmax  gpu        16   16       1      64     no"))
        fail_msg("tune --show:\n%s", out);

    /* linear: a decoding shape and a causal one that needs Nq = N (skipped); LSH with its
     * options. Each writes its entry under its own key. */
    rc = run_capture(env,
                     "tune --op linear --feature-map favor --features 32 --d 16 --n 64 --nq 1 "
                     "--heads 1 --budget 0.5",
                     out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("tune --op linear: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "linear D=16 Nq=1 N=64 full"));
    assert_non_null(strstr(out, "linear D=16 Nq=1 N=64 causal"));
    assert_non_null(strstr(out, "skipped (the causal form needs Nq = N)"));
    rc = run_capture(env,
                     "tune --op lsh --hashes 2 --buckets 8 --chunk 16 --d 16 --n 64 --heads 1 "
                     "--causal yes --budget 0.5",
                     out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("tune --op lsh: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "lsh D=16 N=64 causal"));
    rc = run_capture(env, "tune --show", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "3 entries"));
    if (!strstr(out, "linear   favor32-none-fused   16   16       1      64     no") ||
        !strstr(out, "lsh      h2-b8-c16            16   16      64      64    yes"))
        fail_msg("tune --show:\n%s", out);
}

static int setup(void **state)
{
    (void)state;
    return cli_dir_make();
}

static int teardown(void **state)
{
    (void)state;
    return cli_dir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_line_and_quiet),
        cmocka_unit_test(test_every_run_names_its_plan),
        cmocka_unit_test(test_per_command_help),
        cmocka_unit_test(test_layout_bnhd),
        cmocka_unit_test(test_selector_matching_nothing),
        cmocka_unit_test(test_tune_op_and_nq),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
