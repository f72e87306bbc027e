/* The `clattn` tool across MPI ranks (issue 18 section 2; samples/cli_ring.c), PoCL, under
 * `mpirun --oversubscribe --allow-run-as-root -np 2`:
 * - run softmax --distributed zigzag --causal (rank 0 reads the full files, writes OUT and LSE)
 *   equals the single-process run and the fp64 reference;
 * - run softmax --distributed ring --shard: each rank reads its own shard files (q_{rank}.npy ...);
 * - run linear --distributed ring --causal equals the single-process causal run;
 * - bench ring --csv: every rank's bytes sent equal the formula;
 * - failures: mismatched files (exit 2, one message, no output file), linear without --causal.
 * Shapes: the harness's q, k, v [1, 2, 33, 16]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_harness.h"
#include "npy.h"
#include "reference/ref_softmax.h"

/* CLATTN_MPIEXEC: the launcher with its flags (Open MPI: --oversubscribe --allow-run-as-root) */
#define MPIRUN "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " CLATTN_MPIEXEC " -np 2"

static float q[B * H * N * D], k[B * H * N * D], v[B * H * N * D];

static int setup(void **state)
{
    (void)state;
    if (cli_dir_make())
        return -1;
    make_inputs(q, k, v);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cli_dir_remove();
}

/* file `a` equals file `b` (or the float reference when b is NULL) within 1e-5 + 1e-5 |x|. */
static void same(const char *a, const char *b, const float *ref, size_t n, const char *what)
{
    npy_array x, y;
    char err[256];
    if (npy_read(at(a), &x, err, sizeof err) != 0)
        fail_msg("%s: %s", what, err);
    const float *r = ref;
    if (b) {
        if (npy_read(at(b), &y, err, sizeof err) != 0)
            fail_msg("%s: %s", what, err);
        assert_int_equal(y.count, x.count);
        assert_int_equal(y.ndim, x.ndim);
        r = y.data;
    }
    assert_int_equal(x.count, n);
    const float *g = x.data;
    for (size_t i = 0; i < n; i++) {
        if (isinf(r[i]) && g[i] == r[i])
            continue;
        if (!(fabs((double)g[i] - (double)r[i]) <= 1e-4 + 1e-4 * fabs((double)r[i])))
            fail_msg("%s: element %zu = %.7g, want %.7g", what, i, (double)g[i], (double)r[i]);
    }
    npy_free(&x);
    if (b)
        npy_free(&y);
}

static int mpi_run(const char *args, char *err, size_t elen)
{
    char out[4096];
    return run_capture(MPIRUN, args, out, sizeof out, err, elen);
}

static void test_softmax_distributed(void **state)
{
    (void)state;
    char err[4096], line[512];
    const size_t n = (size_t)B * H * N * D;
    int rc = run("run softmax --q q.npy --k k.npy --v v.npy -o single.npy --lse single_lse.npy "
                 "--causal --quiet",
                 line, sizeof line);
    assert_int_equal(rc, 0);
    rc = mpi_run("run softmax --distributed zigzag --q q.npy --k k.npy --v v.npy -o dist.npy "
                 "--lse dist_lse.npy --causal",
                 err, sizeof err);
    if (rc != 0)
        fail_msg("mpirun run softmax: exit %d: %s", rc, err);
    if (!strstr(err, "distributed zigzag over 2 ranks"))
        fail_msg("no summary line: %s", err);
    same("dist.npy", "single.npy", NULL, n, "softmax zigzag vs single");
    same("dist_lse.npy", "single_lse.npy", NULL, (size_t)B * H * N, "lse zigzag vs single");
    float *ref = malloc(n * sizeof *ref);
    ref_softmax(q, k, v, ref, NULL, B, H, H, N, N, D, 1.0 / sqrt((double)D), 1, NULL);
    same("dist.npy", NULL, ref, n, "softmax zigzag vs fp64");
    free(ref);

    /* --shard: rank r's rows (contiguous: 17 and 16) in q_r.npy, k_r.npy, v_r.npy */
    const float *src[3] = {q, k, v};
    const char *names[3] = {"q", "k", "v"};
    for (int r = 0; r < 2; r++) {
        size_t r0 = r ? 17 : 0, cnt = r ? 16 : 17, shape[4] = {B, H, cnt, D};
        float *part = malloc((size_t)B * H * cnt * D * sizeof *part);
        for (int t = 0; t < 3; t++) {
            for (size_t h = 0; h < (size_t)B * H; h++)
                memcpy(part + h * cnt * D, src[t] + (h * N + r0) * D, cnt * D * sizeof *part);
            char name[32];
            snprintf(name, sizeof name, "%s_%d.npy", names[t], r);
            write_f32(name, part, 4, shape);
        }
        free(part);
    }
    rc = mpi_run("run softmax --distributed ring --shard --q q_{rank}.npy --k k_{rank}.npy "
                 "--v v_{rank}.npy -o shard.npy --causal --quiet",
                 err, sizeof err);
    if (rc != 0)
        fail_msg("mpirun run softmax --shard: exit %d: %s", rc, err);
    same("shard.npy", "single.npy", NULL, n, "softmax --shard vs single");

    /* failures: k of another length than v (rank 0's check), no output written */
    size_t bad[4] = {B, H, N - 1, D};
    write_f32("k_short.npy", k, 4, bad);
    remove(at("bad_out.npy"));
    rc = mpi_run("run softmax --distributed ring --q q.npy --k k_short.npy --v v.npy "
                 "-o bad_out.npy",
                 err, sizeof err);
    assert_int_equal(rc, 2);
    if (!strstr(err, "clattn: ") || exists(at("bad_out.npy")))
        fail_msg("mismatched files: %s", err);
    rc = mpi_run("run linear --distributed ring --q q.npy --k k.npy --v v.npy -o bad_out.npy", err,
                 sizeof err);
    assert_int_equal(rc, 2);
    if (!strstr(err, "causal") || exists(at("bad_out.npy")))
        fail_msg("linear without --causal: %s", err);
}

static void test_linear_distributed(void **state)
{
    (void)state;
    char err[4096], line[512];
    int rc = run("run linear --q q.npy --k k.npy --v v.npy -o lin_single.npy --causal --quiet",
                 line, sizeof line);
    assert_int_equal(rc, 0);
    rc = mpi_run("run linear --distributed zigzag --causal --q q.npy --k k.npy --v v.npy "
                 "-o lin_dist.npy --quiet",
                 err, sizeof err);
    if (rc != 0)
        fail_msg("mpirun run linear: exit %d: %s", rc, err);
    same("lin_dist.npy", "lin_single.npy", NULL, (size_t)B * H * N * D, "linear vs single");
}

static void test_bench_ring(void **state)
{
    (void)state;
    char out[8192], err[4096];
    int rc = run_capture(MPIRUN, "bench ring --n 40 --d 16 --heads 2 --kv-heads 1 --reps 1 "
                                 "--causal --shards zigzag --csv",
                         out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("bench ring: exit %d: %s", rc, err);
    /* zigzag of 40 over 2 ranks: both hold 20 rows; each sends the other's... its own 20 rows
     * once: 20 * B * Hk * (D + Dv) * 4 = 20 * 1 * 1 * 32 * 4 */
    for (int r = 0; r < 2; r++) {
        char key[64];
        snprintf(key, sizeof key, "rank%d_sent_bytes,", r);
        const char *p = strstr(out, key);
        if (!p)
            fail_msg("bench ring: no %s in\n%s", key, out);
        if (strtol(p + strlen(key), NULL, 10) != 20 * 32 * 4)
            fail_msg("bench ring: %s %s", key, p + strlen(key));
        snprintf(key, sizeof key, "rank%d_formula_bytes,", r);
        p = strstr(out, key);
        if (!p || strtol(p + strlen(key), NULL, 10) != 20 * 32 * 4)
            fail_msg("bench ring: %s missing or wrong", key);
    }
    for (const char *k2 = "single_ms,"; k2; k2 = NULL)
        if (!strstr(out, k2) || !strstr(out, "ring_ms,") || !strstr(out, "overlap_hidden,"))
            fail_msg("bench ring: fields missing:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_distributed),
        cmocka_unit_test(test_linear_distributed),
        cmocka_unit_test(test_bench_ring),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
