/* `clattn run softmax` with the options of real models (issue 16 section 2): --bias, --mask,
 * --alibi / --alibi-slopes, --window, --softcap, --sinks, --block-mask with --block, and Dv from
 * the V file, each end to end against ref_softmax_ex on small files written here; broadcasting
 * files (rank 2 [Nq, Nk], rank 4 [B, 1, 1, Nk], rank 1), numpy bool masks, a float16 bias; every
 * bad input -> a non-zero exit and ONE line on stderr. One shape (B 2, Hq 2, Hk 1, Nq 20, Nk 33,
 * D 16, Dv 8) and --algo naive throughout (the device-side oracle: the tiled families may not
 * implement the options on this branch), so the suite causes few kernel builds. */
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
#include "reference/ref_softmax.h"

enum { SB = 2, SHQ = 2, SHK = 1, SNQ = 20, SNK = 33, SD = 16, SDV = 8 };
#define NOUT ((size_t)SB * SHQ * SNQ * SDV)
#define NROWS ((size_t)SB * SHQ * SNQ)

static float q[SB * SHQ * SNQ * SD], k[SB * SHK * SNK * SD], v[SB * SHK * SNK * SDV];

static void write_u8(const char *name, npy_dtype dt, const uint8_t *x, int ndim,
                     const size_t *shape)
{
    char err[256];
    if (npy_write(at(name), dt, x, ndim, shape, err, sizeof err) != 0)
        fail_msg("%s: %s", name, err);
}

/* Runs `run softmax` on q, k, v (naive) with `extra` options and --lse, then compares out and
 * lse with ref_softmax_ex(o): 1e-4 normalised. The summary line must name `summary` (may be
 * NULL). */
static void check_run(const char *extra, const ref_softmax_opts *o, const char *summary)
{
    char args[1024], line[1024], err[256];
    snprintf(args, sizeof args,
             "run softmax --q q.npy --k k.npy --v v.npy -o o.npy --lse l.npy --algo naive %s",
             extra);
    int rc = run(args, line, sizeof line);
    if (rc != 0)
        fail_msg("'%s': exit %d: %s", extra, rc, line);
    if (summary && !strstr(line, summary))
        fail_msg("'%s': summary '%s' lacks '%s'", extra, line, summary);
    static float ro[NOUT], rl[NROWS];
    ref_softmax_ex(q, k, v, ro, rl, SB, SHQ, SHK, SNQ, SNK, SD, o);
    npy_array out, lse;
    assert_int_equal(npy_read(at("o.npy"), &out, err, sizeof err), 0);
    assert_int_equal(npy_read(at("l.npy"), &lse, err, sizeof err), 0);
    assert_int_equal(out.dtype, NPY_F32);
    assert_int_equal(out.ndim, 4);
    const size_t oshape[4] = {SB, SHQ, SNQ, SDV}; /* Dv from the V file */
    assert_memory_equal(out.shape, oshape, sizeof oshape);
    assert_int_equal(lse.count, NROWS);
    double mr = 0, e = ref_max_abs_diff(out.data, ro, NOUT, &mr);
    if (!(e <= 1e-4 * fmax(1, mr)))
        fail_msg("'%s': out error %.3g (max |ref| %.3g)", extra, e, mr);
    e = ref_max_abs_diff(lse.data, rl, NROWS, &mr);
    if (!(e <= 1e-4 * fmax(1, mr)))
        fail_msg("'%s': lse error %.3g (max |ref| %.3g)", extra, e, mr);
    npy_free(&out);
    npy_free(&lse);
    remove(at("o.npy"));
    remove(at("l.npy"));
}

static ref_softmax_opts base_opts(void)
{
    ref_softmax_opts o;
    memset(&o, 0, sizeof o);
    o.Dv = SDV;
    return o;
}

/* Additive bias: rank 2 [Nq, Nk] float32 with -inf entries (a fully masked row included) with
 * --causal; rank 4 [B, 1, 1, Nk] float16 (kept in its type) with --key-lengths. */
static void test_bias(void **state)
{
    (void)state;
    static float bias[SNQ * SNK];
    uint64_t seed = 11;
    ref_fill_uniform(bias, SNQ * SNK, 2, &seed);
    for (int j = 0; j < SNK; j++)
        bias[3 * SNK + j] = -INFINITY; /* row 3: every key masked */
    bias[10 * SNK + 5] = -INFINITY;
    const size_t s2[2] = {SNQ, SNK};
    write_f32("bias2.npy", bias, 2, s2);
    ref_softmax_opts o = base_opts();
    o.causal = 1;
    o.bias = bias;
    o.bias_stride[2] = SNK;
    o.bias_stride[3] = 1;
    check_run("--causal --bias bias2.npy", &o, "options bias bias2.npy [1,1,20,33] f32");

    static float bk[SB * SNK];
    ref_fill_uniform(bk, SB * SNK, 3, &seed);
    uint16_t h[SB * SNK];
    assert_int_equal(clattn_convert_host(bk, CLATTN_F32, h, CLATTN_F16, SB * SNK), CLATTN_SUCCESS);
    assert_int_equal(clattn_convert_host(h, CLATTN_F16, bk, CLATTN_F32, SB * SNK), CLATTN_SUCCESS);
    const size_t s4[4] = {SB, 1, 1, SNK};
    write_typed("bias4.npy", bk, CLATTN_F16, 4, s4, SB * SNK);
    const int32_t kl[SB] = {17, 33};
    const size_t ks[1] = {SB};
    char e[256];
    assert_int_equal(npy_write(at("kl.npy"), NPY_I32, kl, 1, ks, e, sizeof e), 0);
    o = base_opts();
    o.bias = bk;
    o.bias_stride[0] = SNK;
    o.bias_stride[3] = 1;
    o.key_lengths = kl;
    check_run("--bias bias4.npy --key-lengths kl.npy", &o, "bias bias4.npy [2,1,1,33] f16");
}

/* Masks: numpy bool '|b1' [B, 1, Nq, Nk] and uint8 '|u1' rank 1 [Nk] (a key-padding mask). */
static void test_mask(void **state)
{
    (void)state;
    static uint8_t m[SB * SNQ * SNK];
    uint64_t seed = 3;
    for (size_t i = 0; i < sizeof m; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        m[i] = (seed >> 20) % 3 != 0;
    }
    memset(m + 7 * SNK, 0, SNK); /* batch 0, row 7: nothing attended */
    const size_t s4[4] = {SB, 1, SNQ, SNK};
    write_u8("mask.npy", NPY_B1, m, 4, s4);
    ref_softmax_opts o = base_opts();
    o.mask = m;
    o.mask_stride[0] = SNQ * SNK;
    o.mask_stride[2] = SNK;
    o.mask_stride[3] = 1;
    check_run("--mask mask.npy", &o, "options mask mask.npy [2,1,20,33]");

    uint8_t pad[SNK];
    for (int j = 0; j < SNK; j++)
        pad[j] = (uint8_t)(j % 5 != 0 ? 7 : 0); /* any nonzero attends */
    const size_t s1[1] = {SNK};
    write_u8("pad.npy", NPY_U8, pad, 1, s1);
    o = base_opts();
    o.causal = 1;
    o.mask = pad;
    o.mask_stride[3] = 1;
    check_run("--mask pad.npy --causal", &o, "mask pad.npy [1,1,1,33]");
}

/* ALiBi (the standard slopes, then slopes from a file) with a window, the softcap, sinks. */
static void test_alibi_window_softcap_sinks(void **state)
{
    (void)state;
    float slopes[SHQ], sinks[SHQ] = {0.5f, -1.25f};
    ref_alibi_slopes(SHQ, slopes);
    ref_softmax_opts o = base_opts();
    o.alibi_slopes = slopes;
    o.window = 1;
    o.window_left = 4;
    o.window_right = -1;
    check_run("--alibi --window 4,-1", &o, "options alibi (standard slopes), window 4,-1");

    const float own[SHQ] = {0.3f, 0.07f};
    const size_t s2[2] = {1, SHQ};
    write_f32("slopes.npy", own, 2, s2);
    o = base_opts();
    o.alibi_slopes = own;
    o.softcap = 2.5;
    o.window = 1;
    o.window_left = -1;
    o.window_right = 0; /* window_right 0 on Nq < Nk: causal-like */
    check_run("--alibi-slopes slopes.npy --softcap 2.5 --window -1,0", &o,
              "alibi slopes.npy, window -1,0, softcap 2.5");

    const size_t s1[1] = {SHQ};
    write_f32("sinks.npy", sinks, 1, s1);
    o = base_opts();
    o.sinks = sinks;
    o.window = 1;
    o.window_left = 0;
    o.window_right = 0; /* one key per row; rows before key 0 see none: lse = sink */
    check_run("--sinks sinks.npy --window 0,0 --causal", &o, "sinks sinks.npy");
}

/* Block-sparse layout: [ceil(Nq/16), ceil(Nk/16)] = [2, 3] (ragged last blocks) broadcast over
 * batch and heads, with causal; then every option at once. */
static void test_block_mask_and_all(void **state)
{
    (void)state;
    const uint8_t bm[6] = {1, 0, 1, 0, 1, 1};
    const size_t s2[2] = {2, 3};
    write_u8("bm.npy", NPY_B1, bm, 2, s2);
    ref_softmax_opts o = base_opts();
    o.causal = 1;
    o.block_mask = bm;
    o.block_mask_stride[2] = 3;
    o.block_mask_stride[3] = 1;
    o.block_q = o.block_k = 16;
    check_run("--block-mask bm.npy --block 16,16 --causal", &o,
              "block-mask bm.npy [1,1,2,3] block 16,16");

    /* all together: bias [Nq, Nk], key-padding mask, file slopes, window, softcap, sinks, block
     * mask, scale, key lengths */
    static float bias[SNQ * SNK];
    uint64_t seed = 99;
    ref_fill_uniform(bias, SNQ * SNK, 1, &seed);
    const size_t bs[2] = {SNQ, SNK};
    write_f32("ball.npy", bias, 2, bs);
    uint8_t pad[SNK];
    for (int j = 0; j < SNK; j++)
        pad[j] = j != 30;
    const size_t ps[4] = {1, 1, 1, SNK};
    write_u8("pall.npy", NPY_U8, pad, 4, ps);
    const float slopes[SHQ] = {0.25f, 0.125f}, sinks[SHQ] = {1.0f, 0.0f};
    const size_t hs[1] = {SHQ};
    write_f32("sl.npy", slopes, 1, hs);
    write_f32("sk.npy", sinks, 1, hs);
    const int32_t kl[SB] = {33, 29};
    const size_t ks[1] = {SB};
    char e[256];
    assert_int_equal(npy_write(at("kl2.npy"), NPY_I32, kl, 1, ks, e, sizeof e), 0);
    o.bias = bias;
    o.bias_stride[2] = SNK;
    o.bias_stride[3] = 1;
    o.mask = pad;
    o.mask_stride[3] = 1;
    o.alibi_slopes = slopes;
    o.window = 1;
    o.window_left = 9;
    o.window_right = 2;
    o.softcap = 1.5;
    o.sinks = sinks;
    o.scale = 0.3;
    o.key_lengths = kl;
    check_run("--causal --bias ball.npy --mask pall.npy --alibi-slopes sl.npy --window 9,2 "
              "--softcap 1.5 --sinks sk.npy --block-mask bm.npy --block 16,16 --scale 0.3 "
              "--key-lengths kl2.npy",
              &o, "options bias ball.npy");
}

/* Bad inputs: a non-zero exit, one "clattn: " line naming the problem, no output. */
static void test_bad_inputs(void **state)
{
    (void)state;
    static float f[SNQ * (SNK + 1)];
    const size_t wrong[2] = {SNQ, SNK + 1}, three[1] = {3}, s4[4] = {SB, SHQ, SNQ, SNK};
    write_f32("wrong.npy", f, 2, wrong);
    write_f32("three.npy", f, 1, three);
    write_f32("fmask.npy", f, 4, s4);
    const uint8_t bm[6] = {1, 1, 1, 1, 1, 1};
    const size_t b2[2] = {2, 3};
    write_u8("bm2.npy", NPY_U8, bm, 2, b2);
    static const struct {
        const char *opts, *needle;
    } bad[] = {
        {"--bias missing.npy", "missing.npy"},
        {"--bias wrong.npy", "wrong.npy (--bias): shape [20, 34] does not broadcast to [2, 2, 20, "
                             "33]"},
        {"--mask wrong.npy", "expected uint8"},
        {"--mask fmask.npy", "fmask.npy (--mask): dtype float32"},
        {"--mask bm2.npy", "bm2.npy (--mask): shape [2, 3] does not broadcast"},
        {"--block 16,16", "--block needs --block-mask"},
        {"--block-mask bm2.npy", "--block-mask needs --block"},
        {"--block-mask bm2.npy --block 12,16", "--block '12,16'"},
        {"--block-mask bm2.npy --block 16", "--block '16'"},
        {"--block-mask bm2.npy --block 32,16", "bm2.npy (--block-mask): shape [2, 3] does not "
                                               "broadcast to [2, 2, 1, 3]"},
        {"--window x", "--window 'x'"},
        {"--window 1,", "--window '1,'"},
        {"--window -2,0", "--window '-2,0'"},
        {"--window 1,2,3", "--window '1,2,3'"},
        {"--softcap -1", "--softcap '-1'"},
        {"--softcap nan", "--softcap 'nan'"},
        {"--alibi --alibi-slopes three.npy", "three.npy (--alibi-slopes): shape [3] holds 3 "
                                             "values, expected 2"},
        {"--sinks three.npy", "three.npy (--sinks)"},
    };
    char args[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args,
                 "run softmax --q q.npy --k k.npy --v v.npy -o bad_out.npy --algo naive %s",
                 bad[i].opts);
        expect_failure(args, bad[i].needle);
    }
}

static int setup(void **state)
{
    (void)state;
    if (cli_dir_make() != 0)
        return -1;
    uint64_t seed = 21;
    ref_fill_uniform(q, sizeof q / sizeof q[0], 1, &seed);
    ref_fill_uniform(k, sizeof k / sizeof k[0], 1, &seed);
    ref_fill_uniform(v, sizeof v / sizeof v[0], 1, &seed);
    const size_t qs[4] = {SB, SHQ, SNQ, SD}, ks[4] = {SB, SHK, SNK, SD},
                 vs[4] = {SB, SHK, SNK, SDV};
    char err[256];
    if (npy_write_f32(at("q.npy"), q, 4, qs, err, sizeof err) != 0 ||
        npy_write_f32(at("k.npy"), k, 4, ks, err, sizeof err) != 0 ||
        npy_write_f32(at("v.npy"), v, 4, vs, err, sizeof err) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return getenv("CLATTN_TEST_KEEP") ? 0 : cli_dir_remove(); /* set: keep the files */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bias),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_alibi_window_softcap_sinks),
        cmocka_unit_test(test_block_mask_and_all),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
