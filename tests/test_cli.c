/* The `clattn` tool end to end: `run softmax` on .npy files gives the reference's answer, and bad
 * inputs give one "clattn: ..." line on stderr, a non-zero exit, and no output file. The tool's
 * path comes from CMake (CLATTN_CLI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"
#include "reference/ref_attention.h"

static char dir[64];

static const char *at(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs the tool with `args`; returns its exit code and the first line of its stderr. */
static int run(const char *args, char *err_line, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>%s/stderr.txt >/dev/null", dir, CLATTN_CLI, args,
             dir);
    int rc = system(cmd);
    err_line[0] = '\0';
    FILE *f = fopen(at("stderr.txt"), "r");
    if (f) {
        if (!fgets(err_line, (int)len, f))
            err_line[0] = '\0';
        char extra[256];
        /* a one-line error: nothing may follow */
        assert_null(fgets(extra, sizeof extra, f));
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_f32(const char *name, const float *x, int ndim, const size_t *shape)
{
    char err[256];
    assert_int_equal(npy_write_f32(at(name), x, ndim, shape, err, sizeof err), 0);
}

static void write_raw(const char *name, const void *bytes, size_t n)
{
    FILE *f = fopen(at(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

enum { B = 1, H = 2, N = 33, D = 16 };

static void make_inputs(float *q, float *k, float *v)
{
    uint64_t seed = 5;
    size_t n = (size_t)B * H * N * D, shape[4] = {B, H, N, D};
    ref_fill_uniform(q, n, 1, &seed);
    ref_fill_uniform(k, n, 1, &seed);
    ref_fill_uniform(v, n, 1, &seed);
    write_f32("q.npy", q, 4, shape);
    write_f32("k.npy", k, 4, shape);
    write_f32("v.npy", v, 4, shape);
}

static void test_run_matches_reference(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *r = malloc(n * 4),
          *rl = malloc((size_t)B * H * N * 4);
    make_inputs(q, k, v);
    char line[512];
    int rc = run("run softmax --q q.npy --k k.npy --v v.npy -o out.npy --lse lse.npy --causal", line,
                 sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    ref_attention(q, k, v, r, rl, B, H, H, N, N, D, 1.0 / sqrt((double)D), 1, NULL);
    npy_array out, lse;
    char err[256];
    assert_int_equal(npy_read(at("out.npy"), &out, err, sizeof err), 0);
    assert_int_equal(npy_read(at("lse.npy"), &lse, err, sizeof err), 0);
    assert_int_equal(out.ndim, 4);
    assert_int_equal(out.count, n);
    assert_int_equal(lse.ndim, 3);
    double mr = 0, e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    double ml = 0, el = ref_max_abs_diff(lse.data, rl, (size_t)B * H * N, &ml);
    assert_true(el <= 1e-4 * fmax(1, ml));
    npy_free(&out);
    npy_free(&lse);
    remove(at("out.npy"));
    remove(at("lse.npy"));
    free(q);
    free(k);
    free(v);
    free(r);
    free(rl);
}

/* Each bad input: exit 1 or 2, one "clattn: " line naming the problem, no output file. */
static void expect_failure(const char *args, const char *needle)
{
    char line[512];
    remove(at("bad_out.npy"));
    int rc = run(args, line, sizeof line);
    if (rc != 1 && rc != 2)
        fail_msg("'%s': exit %d, want 1 or 2", args, rc);
    if (strncmp(line, "clattn: ", 8) != 0 || !strstr(line, needle))
        fail_msg("'%s': stderr '%s' lacks '%s'", args, line, needle);
    assert_false(exists(at("bad_out.npy")));
}

static void test_bad_inputs(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);
    make_inputs(q, k, v);
    /* wrong rank */
    size_t s3[3] = {H, N, D};
    write_f32("rank3.npy", q, 3, s3);
    expect_failure("run softmax --q rank3.npy --k k.npy --v v.npy -o bad_out.npy", "rank3.npy");
    /* mismatched shapes: D differs */
    size_t sd[4] = {B, H, N * 2, D / 2};
    write_f32("d8.npy", q, 4, sd);
    expect_failure("run softmax --q q.npy --k d8.npy --v d8.npy -o bad_out.npy", "d8.npy");
    /* wrong dtype: a float64 header */
    const char f8[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, "
                      "'shape': (1, 1, 1, 1), }";
    char hdr[128 + 8];
    memset(hdr, ' ', sizeof hdr);
    memcpy(hdr, f8, sizeof f8 - 1);
    hdr[127] = '\n';
    memset(hdr + 128, 0, 8);
    write_raw("f64.npy", hdr, sizeof hdr);
    expect_failure("run softmax --q f64.npy --k k.npy --v v.npy -o bad_out.npy", "f8");
    /* truncated and corrupt files */
    FILE *f = fopen(at("q.npy"), "rb");
    char buf[300];
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_raw("trunc.npy", buf, got);
    expect_failure("run softmax --q trunc.npy --k k.npy --v v.npy -o bad_out.npy", "trunc.npy");
    write_raw("junk.npy", "not a numpy file at all", 23);
    expect_failure("run softmax --q junk.npy --k k.npy --v v.npy -o bad_out.npy", "junk.npy");
    expect_failure("run softmax --q missing.npy --k k.npy --v v.npy -o bad_out.npy",
                   "missing.npy");
    /* options */
    expect_failure("run softmax --q q.npy --k k.npy --v v.npy -o bad_out.npy --scale abc",
                   "scale");
    expect_failure("run softmax --q q.npy --k k.npy --v v.npy", "-o");
    /* key lengths out of range */
    const char i4[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<i4', 'fortran_order': False, "
                      "'shape': (1,), }";
    char kl[128 + 4];
    memset(kl, ' ', sizeof kl);
    memcpy(kl, i4, sizeof i4 - 1);
    kl[127] = '\n';
    int32_t big = N + 1;
    memcpy(kl + 128, &big, 4);
    write_raw("kl.npy", kl, sizeof kl);
    expect_failure("run softmax --q q.npy --k k.npy --v v.npy -o bad_out.npy --key-lengths kl.npy",
                   "kl.npy");
    free(q);
    free(k);
    free(v);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/clattn-cli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_matches_reference),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
