/* The `clattn` tool end to end: `run OP` on .npy files gives the reference's answer, and bad
 * inputs give one "clattn: ..." line on stderr, a non-zero exit, and no output file. What every
 * command shares (summary line, help, --layout, selectors, tune) is in test_cli_options.c; the
 * helpers in cli_harness.c. The tool's path comes from CMake (CLATTN_CLI). */
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
#include "reference/ref_softmax.h"
#include "reference/ref_linear.h"
#include "reference/ref_routing.h"
#include "reference/ref_lsh.h"
#include "reference/ref_ssm.h"
#include "reference/ref_rpe.h"
#include "reference/ref_gss.h"
#include "clattn.h"
#include "cli_harness.h"

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
    ref_softmax(q, k, v, r, rl, B, H, H, N, N, D, 1.0 / sqrt((double)D), 1, NULL);
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

/* `run routing` with k-means++ centroids from a seed matches the fp64 reference given the
 * reference's own k-means++ centroids; bad options fail cleanly with no output. */
static void test_run_linear(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, M = 32;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *r = malloc(n * 4),
          *w = malloc(M * D * 4);
    make_inputs(q, k, v);
    char line[512], err[256];
    npy_array out;
    double mr = 0, e;
    /* FAVOR+ drawn from a seed, causal, fixed momentum: the reference draws the same W. */
    int rc = run("run linear --q q.npy --k k.npy --v v.npy -o lin.npy --causal --feature-map favor "
                 "--features 32 --seed 7 --momentum 0.5 --step-size 0.75",
                 line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    assert_int_equal(clattn_linear_favor_draw(M, D, 7, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w), CLATTN_SUCCESS);
    ref_linear_general(q, k, v, r, B, H, N, N, D, D, 3, w, M, 1e-6, 1, 1, 0.5, 0.75);
    assert_int_equal(npy_read(at("lin.npy"), &out, err, sizeof err), 0);
    assert_int_equal(out.count, n);
    e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    /* The same W from a file. */
    size_t ws[2] = {M, D};
    write_f32("w.npy", w, 2, ws);
    rc = run("run linear --q q.npy --k k.npy --v v.npy -o lin.npy --causal --feature-map favor "
             "--projection w.npy --momentum 0.5 --step-size 0.75",
             line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    assert_int_equal(npy_read(at("lin.npy"), &out, err, sizeof err), 0);
    e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    /* elu, non-causal, adaptive momentum. */
    rc = run("run linear --q q.npy --k k.npy --v v.npy -o lin.npy --momentum adaptive", line,
             sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    ref_linear_general(q, k, v, r, B, H, N, N, D, D, 0, NULL, D, 1e-6, 0, 2, 0, 1);
    assert_int_equal(npy_read(at("lin.npy"), &out, err, sizeof err), 0);
    e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    remove(at("lin.npy"));
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --momentum 1.5",
                   "--momentum");
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --features 8",
                   "favor");
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --feature-map favor "
                   "--projection q.npy",
                   "q.npy");
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --feature-map tanh",
                   "--feature-map");
    expect_failure("run linear --q q.npy --k k.npy --v v.npy -o bad_out.npy --momentum 0.5 "
                   "--step-size 0",
                   "--step-size");
    free(q);
    free(k);
    free(v);
    free(r);
    free(w);
}

static void test_run_routing(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, C = 4;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *r = malloc(n * 4),
          *mu = malloc(H * C * D * 4);
    make_inputs(q, k, v);
    char line[512];
    int rc = run("run routing --q q.npy --k k.npy --v v.npy -o rout.npy --clusters 4 --seed 9 "
                 "--causal",
                 line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    ref_routing_kmeanspp(q, k, B, H, N, D, C, 9, mu);
    double gap;
    ref_routing_attention(q, k, v, mu, r, B, H, N, D, D, C, (N + C - 1) / C,
                          1.0 / sqrt((double)D), 1, &gap);
    assert_true(gap >= 1e-5);
    npy_array out;
    char err[256];
    assert_int_equal(npy_read(at("rout.npy"), &out, err, sizeof err), 0);
    assert_int_equal(out.count, n);
    double mr = 0, e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    /* The centroids as a file give the same answer. */
    size_t ms[3] = {H, C, D};
    write_f32("mu.npy", mu, 3, ms);
    rc = run("run routing --q q.npy --k k.npy --v v.npy -o rout.npy --clusters 4 --centroids "
             "mu.npy --causal",
             line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    assert_int_equal(npy_read(at("rout.npy"), &out, err, sizeof err), 0);
    e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    remove(at("rout.npy"));
    expect_failure("run routing --q q.npy --k k.npy --v v.npy -o bad_out.npy --clusters 34 "
                   "--seed 1",
                   "exceeds");
    expect_failure("run routing --q q.npy --k k.npy --v v.npy -o bad_out.npy --clusters 4",
                   "--centroids");
    expect_failure("run routing --q q.npy --k k.npy --v v.npy -o bad_out.npy --clusters 3 "
                   "--centroids mu.npy",
                   "mu.npy");
    expect_failure("run routing --q q.npy --k k.npy --v v.npy -o bad_out.npy --clusters 4 "
                   "--seed 1 --window 0",
                   "--window");
    free(q);
    free(k);
    free(v);
    free(r);
    free(mu);
}

/* `run lsh` with rotations drawn from a seed matches the fp64 reference given the documented
 * generator's rotations (clattn_lsh_rotations); the same rotations as a file give the same
 * answer; bad options fail cleanly with no output. */
static void test_run_lsh(void **state)
{
    (void)state;
    enum { NH = 3, NB = 4, CH = 8 };
    size_t n = (size_t)B * H * N * D, nl = (size_t)B * H * N, nbk = (size_t)B * H * NH * N;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *r = malloc(n * 4),
          *rl = malloc(nl * 4), *rot = malloc(NH * D * NB / 2 * 4);
    int32_t *bk = malloc(nbk * 4);
    double *margin = malloc(nbk * sizeof *margin);
    make_inputs(q, k, v);
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 9, rot), CLATTN_SUCCESS);
    ref_lsh_hash(q, rot, bk, margin, B, H, N, D, NH, NB);
    for (size_t i = 0; i < nbk; i++) /* the tool cannot return buckets: no near-ties here */
        assert_true(margin[i] > 1e-4);
    ref_lsh_attention(q, v, bk, r, rl, B, H, N, D, D, NH, CH, 1, 0);
    char line[512];
    const char *common = "run lsh --q q.npy --v v.npy -o lout.npy --hashes 3 --buckets 4 "
                         "--chunk 8 --causal";
    char args[512];
    snprintf(args, sizeof args, "%s --lse llse.npy --seed 9", common);
    int rc = run(args, line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    npy_array out, lse;
    char err[256];
    assert_int_equal(npy_read(at("lout.npy"), &out, err, sizeof err), 0);
    assert_int_equal(npy_read(at("llse.npy"), &lse, err, sizeof err), 0);
    assert_int_equal(out.count, n);
    assert_int_equal(lse.ndim, 3);
    double mr = 0, e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    double ml = 0, el = ref_max_abs_diff(lse.data, rl, nl, &ml);
    assert_true(el <= 1e-4 * fmax(1, ml));
    npy_free(&out);
    npy_free(&lse);
    size_t rs[3] = {NH, D, NB / 2};
    write_f32("rot.npy", rot, 3, rs);
    snprintf(args, sizeof args, "%s --rotations rot.npy", common);
    rc = run(args, line, sizeof line);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, line);
    assert_int_equal(npy_read(at("lout.npy"), &out, err, sizeof err), 0);
    e = ref_max_abs_diff(out.data, r, n, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);
    remove(at("lout.npy"));
    remove(at("llse.npy"));
    expect_failure("run lsh --q q.npy --v v.npy -o bad_out.npy --buckets 5 --seed 1", "even");
    expect_failure("run lsh --q q.npy --v v.npy -o bad_out.npy --chunk 0 --seed 1", "--chunk");
    expect_failure("run lsh --q q.npy --v v.npy -o bad_out.npy --seed 1 --rotations rot.npy",
                   "exactly one");
    expect_failure("run lsh --q q.npy --v v.npy -o bad_out.npy --hashes 2 --buckets 4 "
                   "--rotations rot.npy",
                   "rot.npy");
    free(q);
    free(k);
    free(v);
    free(r);
    free(rl);
    free(rot);
    free(bk);
    free(margin);
}

/* run ssm: both algorithms against the fp64 reference, and bad parameters. */
static void test_run_ssm(void **state)
{
    (void)state;
    enum { SB = 2, SH = 3, SN = 4, SL = 40 };
    size_t nu = (size_t)SB * SH * SL;
    float u[SB * SH * SL], A[SH * SN * 2], C[SH * SN * 2], Ct[SH * SN * 2], dt[SH], Dv[SH],
        r[SB * SH * SL];
    uint64_t seed = 41;
    ref_fill_uniform(u, nu, 1, &seed);
    ref_fill_uniform(C, SH * SN * 2, 1, &seed);
    ref_fill_uniform(Dv, SH, 1, &seed);
    for (size_t i = 0; i < SH * SN; i++) {
        A[2 * i] = -0.5f;
        A[2 * i + 1] = 3.14159265f * (float)(i % SN);
    }
    for (size_t h = 0; h < SH; h++)
        dt[h] = -3.0f - (float)h;
    ref_ssm_s4d_zoh(A, NULL, C, dt, SH, SN, 1, Ct);
    ref_ssm_forward(u, A, Ct, dt, Dv, SB, SH, SN, SL, r);
    size_t su[3] = {SB, SH, SL}, sa[3] = {SH, SN, 2}, sh[1] = {SH};
    write_f32("u.npy", u, 3, su);
    write_f32("A.npy", A, 3, sa);
    write_f32("Ct.npy", Ct, 3, sa);
    write_f32("dt.npy", dt, 1, sh);
    write_f32("D.npy", Dv, 1, sh);
    /* PoCL prints clang's warning count ("1 warning generated.") while it builds clFFT's kernels
     * on a cold cache; build them here first so the tool's stderr holds only its own lines. */
    clattn_context *ctx = NULL;
    assert_int_equal(clattn_context_create(NULL, &ctx), CLATTN_SUCCESS);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = CLATTN_SSM_FFT;
    float y[SB * SH * SL];
    assert_int_equal(clattn_ssm_host(ctx, &d, SB, SH, SN, SL, A, Ct, dt, Dv, u, y),
                     CLATTN_SUCCESS);
    clattn_context_destroy(ctx);
    const char *algos[] = {"", " --algo fft", " --algo direct"};
    for (int i = 0; i < 3; i++) {
        char args[512], line[512];
        snprintf(args, sizeof args,
                 "run ssm --u u.npy --A A.npy --Ct Ct.npy --log-dt dt.npy --D D.npy -o y.npy%s",
                 algos[i]);
        int rc = run(args, line, sizeof line);
        if (rc != 0)
            fail_msg("exit %d: %s", rc, line);
        npy_array out;
        char err[256];
        assert_int_equal(npy_read(at("y.npy"), &out, err, sizeof err), 0);
        assert_int_equal(out.ndim, 3);
        assert_int_equal(out.count, nu);
        double mr = 0, e = ref_max_abs_diff(out.data, r, nu, &mr);
        assert_true(e <= 1e-4 * fmax(1, mr));
        npy_free(&out);
        remove(at("y.npy"));
    }
    expect_failure("run ssm --u u.npy --A A.npy --log-dt dt.npy -o bad_out.npy", "--Ct");
    expect_failure("run ssm --u u.npy --A Ct.npy --Ct u.npy --log-dt dt.npy -o bad_out.npy",
                   "u.npy");
    expect_failure("run ssm --u u.npy --A A.npy --Ct Ct.npy --log-dt dt.npy -o bad_out.npy "
                   "--algo fast",
                   "--algo");
    dt[1] = NAN;
    write_f32("dt_bad.npy", dt, 1, sh);
    expect_failure("run ssm --u u.npy --A A.npy --Ct Ct.npy --log-dt dt_bad.npy -o bad_out.npy",
                   "dt");
}

/* run rpe: causal and not, relu and FAVOR+ from a projection file, against the fp64 reference;
 * bad bias files. Only the direct path (AUTO picks it at this N): on a cold PoCL cache, PoCL
 * prints "1 warning generated." while building clFFT's generated kernels, which the one-line
 * stderr check refuses. test_rpe covers the FFT path. */
static void test_run_rpe(void **state)
{
    (void)state;
    size_t n = (size_t)B * H * N * D, nb = (size_t)H * (2 * N - 1), M = 12;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *r = malloc(n * 4),
          *bias = malloc(nb * 4), *w = malloc(M * D * 4);
    make_inputs(q, k, v);
    uint64_t seed = 17;
    ref_fill_uniform(bias, nb, 1, &seed);
    size_t bs[2] = {H, 2 * N - 1}, ws[2] = {M, D};
    write_f32("bias.npy", bias, 2, bs);
    assert_int_equal(clattn_linear_favor_draw(M, D, 3, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w), CLATTN_SUCCESS);
    write_f32("w.npy", w, 2, ws);
    static const char *const runs[] = {
        "--algo direct --causal", "--algo direct --feature-map relu",
        "--feature-map favor --projection w.npy"};
    static const int fmaps[] = {0, 1, 3}, causal[] = {1, 0, 0};
    char cmd[512], line[512], err[256];
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd,
                 "run rpe --q q.npy --k k.npy --v v.npy --bias bias.npy -o rpe.npy %s", runs[i]);
        int rc = run(cmd, line, sizeof line);
        if (rc != 0)
            fail_msg("'%s': exit %d: %s", cmd, rc, line);
        ref_rpe_general(q, k, v, bias, r, B, H, N, D, D, fmaps[i], w, M, 1e-6, causal[i]);
        npy_array out;
        assert_int_equal(npy_read(at("rpe.npy"), &out, err, sizeof err), 0);
        assert_int_equal(out.count, n);
        double mr = 0, e = ref_max_abs_diff(out.data, r, n, &mr);
        if (!(e <= 1e-4 * fmax(1, mr)))
            fail_msg("'%s': error %.3e", cmd, e);
        npy_free(&out);
    }
    remove(at("rpe.npy"));
    /* bias of the wrong length, and a non-finite bias */
    size_t bad[2] = {H, 2 * N};
    float *b2 = calloc((size_t)H * 2 * N, 4);
    write_f32("bias_long.npy", b2, 2, bad);
    bias[3] = NAN;
    write_f32("bias_nan.npy", bias, 2, bs);
    expect_failure("run rpe --q q.npy --k k.npy --v v.npy --bias bias_long.npy -o bad_out.npy",
                   "2N - 1");
    expect_failure("run rpe --q q.npy --k k.npy --v v.npy --bias bias_nan.npy -o bad_out.npy",
                   "not finite");
    expect_failure("run rpe --q q.npy --k k.npy --v v.npy -o bad_out.npy", "--bias");
    expect_failure("run rpe --q q.npy --k k.npy --v v.npy --bias bias.npy -o bad_out.npy "
                   "--feature-map identity",
                   "--feature-map");
    free(b2);
    free(q);
    free(k);
    free(v);
    free(r);
    free(bias);
    free(w);
}

/* run gss: x [B, L, E] and a weights folder against the fp64 reference, with and without the
 * optional files (biases, D, ln_gamma/ln_beta); x as [L, E]; --help; usage errors (a missing
 * option, --ffn that disagrees with w_v, a missing required weight file, a wrong shape). Direct
 * DSS only (AUTO at this L), for the clFFT build message reason given in test_run_rpe. */
static void test_run_gss(void **state)
{
    (void)state;
    enum { GB = 2, GL = 12, GE = 8, GF = 12, GH = 3, GN = 4, GT = GB * GL };
    static float x[GT * GE], A[GH * GN * 2], C[GH * GN * 2], Ct[GH * GN * 2], dt[GH], Dv[GH],
        g[GE], be[GE], wv[GE * GF], bv[GF], wu[GE * GH], bu[GH], wo1[GH * GF], bo1[GF],
        wo2[GF * GE], bo2[GE], r[GT * GE];
    uint64_t seed = 77;
    ref_fill_uniform(x, GT * GE, 2, &seed);
    ref_fill_uniform(C, GH * GN * 2, 1, &seed);
    ref_fill_uniform(Dv, GH, 1, &seed);
    ref_fill_uniform(g, GE, 1, &seed);
    ref_fill_uniform(be, GE, 0.5f, &seed);
    ref_fill_uniform(wv, GE * GF, 0.35f, &seed);
    ref_fill_uniform(bv, GF, 0.2f, &seed);
    ref_fill_uniform(wu, GE * GH, 0.35f, &seed);
    ref_fill_uniform(bu, GH, 0.2f, &seed);
    ref_fill_uniform(wo1, GH * GF, 0.6f, &seed);
    ref_fill_uniform(bo1, GF, 0.2f, &seed);
    ref_fill_uniform(wo2, GF * GE, 0.3f, &seed);
    ref_fill_uniform(bo2, GE, 0.2f, &seed);
    for (size_t i = 0; i < GH * GN; i++) {
        A[2 * i] = -0.5f;
        A[2 * i + 1] = 3.14159265f * (float)(i % GN);
    }
    for (size_t h = 0; h < GH; h++)
        dt[h] = -2.0f - (float)h;
    ref_ssm_s4d_zoh(A, NULL, C, dt, GH, GN, 1, Ct);
    assert_int_equal(mkdir(at("gw"), 0755), 0);
    const size_t sx[3] = {GB, GL, GE}, sa[3] = {GH, GN, 2}, sh[1] = {GH}, se[1] = {GE},
                 sf[1] = {GF}, sev[2] = {GE, GF}, seu[2] = {GE, GH}, so1[2] = {GH, GF},
                 so2[2] = {GF, GE};
    write_f32("x.npy", x, 3, sx);
    write_f32("gw/A.npy", A, 3, sa);
    write_f32("gw/Ct.npy", Ct, 3, sa);
    write_f32("gw/log_dt.npy", dt, 1, sh);
    write_f32("gw/w_v.npy", wv, 2, sev);
    write_f32("gw/w_u.npy", wu, 2, seu);
    write_f32("gw/w_o1.npy", wo1, 2, so1);
    write_f32("gw/w_o2.npy", wo2, 2, so2);
    for (int full = 0; full < 2; full++) {
        if (full) { /* the optional files */
            write_f32("gw/D.npy", Dv, 1, sh);
            write_f32("gw/ln_gamma.npy", g, 1, se);
            write_f32("gw/ln_beta.npy", be, 1, se);
            write_f32("gw/b_v.npy", bv, 1, sf);
            write_f32("gw/b_u.npy", bu, 1, sh);
            write_f32("gw/b_o1.npy", bo1, 1, sf);
            write_f32("gw/b_o2.npy", bo2, 1, se);
        }
        ref_gss(x, GB, GL, GE, GF, GH, GN, full ? g : NULL, full ? be : NULL, 1e-3,
                wv, full ? bv : NULL, wu, full ? bu : NULL, wo1, full ? bo1 : NULL, wo2,
                full ? bo2 : NULL, A, Ct, dt, full ? Dv : NULL, r);
        const char *extra[] = {" --ffn 12 --algo direct", " --layout bnhd --quiet"};
        for (int k = 0; k < 2; k++) {
            char args[512], line[512];
            snprintf(args, sizeof args, "run gss --x x.npy --weights gw -o y.npy --ln-eps 1e-3%s",
                     extra[k]);
            int rc = run(args, line, sizeof line);
            if (rc != 0)
                fail_msg("'%s': exit %d: %s", args, rc, line);
            npy_array out;
            char err[256];
            assert_int_equal(npy_read(at("y.npy"), &out, err, sizeof err), 0);
            assert_int_equal(out.ndim, 3);
            assert_int_equal(out.count, (size_t)GT * GE);
            double mr = 0, e = ref_max_abs_diff(out.data, r, (size_t)GT * GE, &mr);
            if (!(e <= 1e-4 * fmax(1, mr)))
                fail_msg("'%s' (optional files %d): max error %g (max |ref| %g)", args, full, e,
                         mr);
            npy_free(&out);
            remove(at("y.npy"));
        }
    }
    /* [L, E]: one sequence, the first of the batch. */
    const size_t s1[2] = {GL, GE};
    write_f32("x1.npy", x, 2, s1);
    char line[512];
    int rc = run("run gss --x x1.npy --weights gw -o y1.npy --ln-eps 1e-3 --quiet", line,
                 sizeof line);
    if (rc != 0)
        fail_msg("[L, E] input: exit %d: %s", rc, line);
    npy_array out;
    char err[256];
    assert_int_equal(npy_read(at("y1.npy"), &out, err, sizeof err), 0);
    assert_int_equal(out.ndim, 2);
    double mr = 0, e = ref_max_abs_diff(out.data, r, (size_t)GL * GE, &mr);
    assert_true(e <= 1e-4 * fmax(1, mr));
    npy_free(&out);

    static char o[8192], se2[4096];
    /* the summary names the GSS plan the scheduler baked */
    assert_int_equal(run_capture("", "run gss --x x.npy --weights gw -o y1.npy", o, sizeof o, se2,
                                 sizeof se2),
                     0);
    if (count_lines(se2) != 1 || !strstr(se2, "clattn: run gss: device ") ||
        !strstr(se2, "; plan gss direct ") || !strstr(se2, " (scheduler); "))
        fail_msg("run gss summary: %s", se2);
    assert_int_equal(run_capture("", "run gss --help", o, sizeof o, se2, sizeof se2), 0);
    assert_non_null(strstr(o, "clattn run gss"));
    assert_non_null(strstr(o, "w_o2.npy"));
    assert_null(strstr(o, "clattn bench gss"));
    assert_int_equal(run_capture("", "bench gss --help", o, sizeof o, se2, sizeof se2), 0);
    assert_non_null(strstr(o, "clattn bench gss"));

    expect_failure("run gss --x x.npy -o bad_out.npy", "--weights");
    expect_failure("run gss --x x.npy --weights gw -o bad_out.npy --ffn 7", "--ffn");
    expect_failure("run gss --x x.npy --weights gw -o bad_out.npy --algo fast", "--algo");
    expect_failure("run gss --x x.npy --weights gw -o bad_out.npy --ln-eps 0", "--ln-eps");
    expect_failure("run gss --x x.npy --weights nosuch -o bad_out.npy", "nosuch/A.npy");
    remove(at("gw/w_o1.npy"));
    expect_failure("run gss --x x.npy --weights gw -o bad_out.npy", "w_o1.npy");
    write_f32("gw/w_o1.npy", wo1, 2, sev); /* [E, F] where [H, F] belongs */
    expect_failure("run gss --x x.npy --weights gw -o bad_out.npy", "w_o1.npy");
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
        cmocka_unit_test(test_run_matches_reference),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_run_linear),
        cmocka_unit_test(test_run_routing),
        cmocka_unit_test(test_run_lsh),
        cmocka_unit_test(test_run_ssm),
        cmocka_unit_test(test_run_rpe),
        cmocka_unit_test(test_run_gss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
