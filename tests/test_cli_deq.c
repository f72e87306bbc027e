/* `clattn run deq` / `clattn bench deq` end to end: x [B, N, D] and W.npz (written here as
 * np.savez does: stored members) solved by each solver, the written z* a fixed point of the fp64
 * cell (tests/reference/ref_deq.c); the iterations line; max-iter reached: exit 1 and no output;
 * --seed; a compressed W.npz refused with its reason; usage errors; --help; a tiny bench. */
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
#include "reference/ref_deq.h"
#include "reference/ref_softmax.h"

enum { XB = 2, XN = 6, XD = 8, XH = 2, XL = XB * XN * XD };

static void put(unsigned char **p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *(*p)++ = (unsigned char)(v >> (8 * i));
}

/* W.npz with members wq, wk, wv, wo.npy of [XD, XD] floats, stored (method 0) or labelled
 * deflate (method 8: only the label matters to the reader, which refuses it). */
static void write_npz(const char *name, float w[4][XD * XD], unsigned method)
{
    static const char *const names[4] = {"wq.npy", "wk.npy", "wv.npy", "wo.npy"};
    static unsigned char zip[65536];
    unsigned char *p = zip, *locals[4];
    size_t lens[4];
    const size_t shape[2] = {XD, XD};
    for (int i = 0; i < 4; i++) {
        write_f32("member.npy", w[i], 2, shape);
        FILE *f = fopen(at("member.npy"), "rb");
        assert_non_null(f);
        unsigned char buf[4096];
        lens[i] = fread(buf, 1, sizeof buf, f);
        fclose(f);
        locals[i] = p;
        put(&p, 0x04034b50u, 4);
        put(&p, 20, 2);
        put(&p, 0, 2);
        put(&p, method, 2);
        put(&p, 0, 8); /* time, date, crc (not checked) */
        put(&p, lens[i], 4);
        put(&p, lens[i], 4);
        put(&p, strlen(names[i]), 2);
        put(&p, 0, 2);
        memcpy(p, names[i], strlen(names[i]));
        p += strlen(names[i]);
        memcpy(p, buf, lens[i]);
        p += lens[i];
    }
    unsigned char *cd = p;
    for (int i = 0; i < 4; i++) {
        put(&p, 0x02014b50u, 4);
        put(&p, 20, 2);
        put(&p, 20, 2);
        put(&p, 0, 2);
        put(&p, method, 2);
        put(&p, 0, 8);
        put(&p, lens[i], 4);
        put(&p, lens[i], 4);
        put(&p, strlen(names[i]), 2);
        put(&p, 0, 6); /* extra, comment, disk */
        put(&p, 0, 6); /* attributes */
        put(&p, (uint64_t)(locals[i] - zip), 4);
        memcpy(p, names[i], strlen(names[i]));
        p += strlen(names[i]);
    }
    unsigned char *end = p;
    put(&p, 0x06054b50u, 4);
    put(&p, 0, 4);
    put(&p, 4, 2);
    put(&p, 4, 2);
    put(&p, (uint64_t)(end - cd), 4);
    put(&p, (uint64_t)(cd - zip), 4);
    put(&p, 0, 2);
    write_raw(name, zip, (size_t)(p - zip));
}

/* |f(z) - z| / |z| of the fp64 cell at the z in `file`. */
static double ref_residual(const char *file, float w[4][XD * XD], const float *x)
{
    npy_array z;
    char err[256];
    assert_int_equal(npy_read(at(file), &z, err, sizeof err), 0);
    assert_int_equal(z.ndim, 3);
    assert_int_equal(z.count, XL);
    double zd[XL], f[XL], r = 0.0, n = 0.0;
    for (size_t i = 0; i < XL; i++)
        zd[i] = ((const float *)z.data)[i];
    npy_free(&z);
    ref_deq_cell(XB, XN, XD, XH, 0, w[0], w[1], w[2], w[3], x, zd, f);
    for (size_t i = 0; i < XL; i++) {
        r += (f[i] - zd[i]) * (f[i] - zd[i]);
        n += zd[i] * zd[i];
    }
    return sqrt(r / n);
}

static void test_run_deq(void **state)
{
    (void)state;
    static float w[4][XD * XD], x[XL];
    uint64_t seed = 91;
    for (int i = 0; i < 4; i++)
        ref_fill_uniform(w[i], XD * XD, 0.35f, &seed);
    ref_fill_uniform(x, XL, 1, &seed);
    const size_t xs[3] = {XB, XN, XD};
    write_f32("x.npy", x, 3, xs);
    write_npz("W.npz", w, 0);
    static const char *const solvers[3] = {"anderson", "broyden", "iterate"};
    char out[4096], err[4096], args[256];
    for (int s = 0; s < 3; s++) {
        snprintf(args, sizeof args,
                 "run deq --x x.npy --weights W.npz --heads %d --solver %s -o z.npy", XH,
                 solvers[s]);
        int rc = run_capture("", args, out, sizeof out, err, sizeof err);
        if (rc != 0)
            fail_msg("%s: exit %d: %s", args, rc, err);
        assert_non_null(strstr(out, solvers[s]));
        assert_non_null(strstr(out, "iterations"));
        assert_non_null(strstr(out, "residual"));
        assert_non_null(strstr(err, "; plan deq "));
        double res = ref_residual("z.npy", w, x);
        if (!(res <= 1e-4)) /* tol 1e-5 on the device; fp32 against fp64 */
            fail_msg("%s: the fp64 cell's residual at z is %g", solvers[s], res);
    }
    /* not converged: exit 1, one line, no output */
    expect_failure("run deq --x x.npy --weights W.npz --heads 2 --max-iter 2 -o bad_out.npy",
                   "did not reach --tol");
    /* seeded weights */
    assert_int_equal(run_capture("", "run deq --x x.npy --seed 5 --heads 4 -o zs.npy --quiet", out,
                                 sizeof out, err, sizeof err),
                     0);
    /* refused inputs */
    write_npz("Wc.npz", w, 8);
    expect_failure("run deq --x x.npy --weights Wc.npz -o bad_out.npy", "np.savez_compressed");
    expect_failure("run deq --x x.npy --weights x.npy -o bad_out.npy", "not a .npz file");
    expect_failure("run deq --x x.npy -o bad_out.npy", "--weights or --seed");
    expect_failure("run deq --x x.npy --weights W.npz --seed 1 -o bad_out.npy", "not both");
    expect_failure("run deq --x x.npy --seed 1 --dtype f16 -o bad_out.npy", "only f32");
    expect_failure("run deq --x x.npy --seed 1 --out-dtype bf16 -o bad_out.npy", "only f32");
    expect_failure("run deq --x x.npy --weights W.npz --solver newton -o bad_out.npy",
                   "--solver");
    expect_failure("run deq --x x.npy --weights W.npz --heads 3 -o bad_out.npy", "--heads");
    expect_failure("run deq --x x.npy --weights W.npz --attention sparse -o bad_out.npy",
                   "--attention");
    /* help, and a tiny bench with every solver */
    assert_int_equal(run_capture("", "run deq --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn run deq"));
    assert_int_equal(run_capture("", "bench deq --help", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "clattn bench deq"));
    assert_int_equal(run_capture("", "bench deq --n 12 --d 8 --heads 2 --csv", out, sizeof out,
                                 err, sizeof err),
                     0);
    assert_non_null(strstr(out, "solver,batch,n,d,heads,causal,iterations,f_evals,residual"));
    for (int s = 0; s < 3; s++) {
        char row[32];
        snprintf(row, sizeof row, "\n%s,1,12,8,2,0,", solvers[s]);
        assert_non_null(strstr(out, row));
    }
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
        cmocka_unit_test(test_run_deq),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
