/* The recurrent decoding state: prefill + steps equal causal attention over the whole sequence in
 * every form, read/write, copy, reset, exact save/load, grouped-query steps, and a plan baked at
 * creation (100 steps create no kernel and look up no program). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear_fixture.h"
#include "reference/ref_linear.h"
#include "reference/ref_softmax.h"

/* prefill(prompt) then steps over the rest == causal attention over the whole sequence; the
 * prompt prefilled in two pieces (5 + 65 positions, across a chunk boundary) is the same. */
static void test_state_prefill_step(void **state)
{
    (void)state;
    for (size_t f = 0; f < 3; f++) {
        seqdata s;
        seq_make(&s, 2, 2, 150, 16, 8, fmaps[f]);
        clattn_linear_state *st = state_new(&s, fmaps[f]);
        prefill(st, &s, 0, 5, 1);
        prefill(st, &s, 5, 65, 1);
        for (size_t n = 70; n < s.N; n++)
            step(st, &s, n, s.bo);
        check_outputs(&s, fmaps[f] == CLATTN_LINEAR_FEATURE_ELU    ? "prefill+step elu"
                          : fmaps[f] == CLATTN_LINEAR_FEATURE_RELU ? "prefill+step relu"
                                                            : "prefill+step identity");
        /* The state now holds the sums over the whole sequence. */
        size_t ns = s.B * s.H * s.D * s.Dv, nz = s.B * s.H * s.D;
        float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *rs = malloc(ns * 4),
              *rz = malloc(nz * 4);
        assert_int_equal(clattn_linear_state_read(st, gs, gz), CLATTN_SUCCESS);
        ref_linear_state(s.k, s.v, rs, rz, s.B, s.H, s.N, s.D, s.Dv, (int)fmaps[f]);
        tu_check_close(gs, rs, ns, LIN_TOL, "state S");
        tu_check_close(gz, rz, nz, LIN_TOL, "state z");
        free(gs);
        free(gz);
        free(rs);
        free(rz);
        clattn_linear_state_destroy(st);
        seq_free(&s);
    }
}

/* Steps from an empty state alone are causal attention; a prefill without output only fills the
 * state. */
static void test_state_steps_only(void **state)
{
    (void)state;
    seqdata s;
    seq_make(&s, 1, 3, 40, 5, 7, CLATTN_LINEAR_FEATURE_ELU);
    clattn_linear_state *st = state_new(&s, CLATTN_LINEAR_FEATURE_ELU);
    for (size_t n = 0; n < s.N; n++)
        step(st, &s, n, s.bo);
    check_outputs(&s, "steps only");
    /* Outputs of positions >= 30 again, from a state prefilled silently with the first 30. */
    assert_int_equal(clattn_linear_state_reset(st, 0, NULL, NULL), CLATTN_SUCCESS);
    float *p = tu_poisoned(s.B * s.H * s.N * s.Dv);
    assert_int_equal(clEnqueueWriteBuffer(queue(), s.bo, CL_TRUE, 0, s.B * s.H * s.N * s.Dv * 4, p,
                                          0, NULL, NULL),
                     CL_SUCCESS);
    prefill(st, &s, 0, 30, 0);
    prefill(st, &s, 30, 10, 1);
    float *out = malloc(s.B * s.H * s.N * s.Dv * 4);
    tu_read(ctx, s.bo, s.B * s.H * s.N * s.Dv * 4, out);
    for (size_t bh = 0; bh < s.B * s.H; bh++)
        for (size_t n = 0; n < s.N; n++)
            for (size_t e = 0; e < s.Dv; e++) {
                size_t i = (bh * s.N + n) * s.Dv + e;
                if (n < 30)
                    assert_true(isnan(out[i])); /* no output asked for */
                else
                    assert_true(fabs(out[i] - s.ref[i]) <=
                                LIN_ATOL * fmax(1.0, fabs(s.ref[i])) * 10);
            }
    free(p);
    free(out);
    clattn_linear_state_destroy(st);
    seq_free(&s);
}

/* Save and restore: a state written from host arrays continues exactly like the one read. */
static void test_state_read_write(void **state)
{
    (void)state;
    seqdata s;
    seq_make(&s, 2, 1, 80, 6, 9, CLATTN_LINEAR_FEATURE_RELU);
    clattn_linear_state *a = state_new(&s, CLATTN_LINEAR_FEATURE_RELU);
    clattn_linear_state *b = state_new(&s, CLATTN_LINEAR_FEATURE_RELU);
    size_t shape[4];
    assert_int_equal(clattn_linear_state_get_shape(a, shape), CLATTN_SUCCESS);
    assert_true(shape[0] == 2 && shape[1] == 1 && shape[2] == 6 && shape[3] == 9);
    size_t ns = s.B * s.H * s.D * s.Dv, nz = s.B * s.H * s.D;
    float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *hs = malloc(ns * 4), *hz = malloc(nz * 4);
    /* A fresh state is zero. */
    assert_int_equal(clattn_linear_state_read(a, gs, gz), CLATTN_SUCCESS);
    for (size_t i = 0; i < ns; i++)
        assert_true(gs[i] == 0.0f);
    for (size_t i = 0; i < nz; i++)
        assert_true(gz[i] == 0.0f);
    /* Round trip of arbitrary values, bit for bit. */
    uint64_t seed = 3;
    ref_fill_uniform(hs, ns, 10.0f, &seed);
    ref_fill_uniform(hz, nz, 10.0f, &seed);
    assert_int_equal(clattn_linear_state_write(a, hs, hz), CLATTN_SUCCESS);
    assert_int_equal(clattn_linear_state_read(a, gs, gz), CLATTN_SUCCESS);
    assert_memory_equal(gs, hs, ns * 4);
    assert_memory_equal(gz, hz, nz * 4);
    assert_int_equal(clattn_linear_state_read(a, NULL, gz), CLATTN_SUCCESS);
    /* Non-finite values are refused and leave the state as it was. */
    float keep = hz[1];
    hz[1] = NAN;
    lin_expect(clattn_linear_state_write(a, hs, hz), CLATTN_INVALID_ARGUMENT, "NaN z");
    hz[1] = keep;
    assert_int_equal(clattn_linear_state_read(a, gs, gz), CLATTN_SUCCESS);
    assert_memory_equal(gz, hz, nz * 4);
    lin_expect(clattn_linear_state_write(a, NULL, hz), CLATTN_NULL_POINTER, "write NULL");
    /* Prefill 50 positions on b, save, restore into a, continue with steps on a. */
    prefill(b, &s, 0, 50, 1);
    assert_int_equal(clattn_linear_state_read(b, gs, gz), CLATTN_SUCCESS);
    assert_int_equal(clattn_linear_state_write(a, gs, gz), CLATTN_SUCCESS);
    for (size_t n = 50; n < s.N; n++)
        step(a, &s, n, s.bo);
    check_outputs(&s, "restored state");
    free(gs);
    free(gz);
    free(hs);
    free(hz);
    clattn_linear_state_destroy(a);
    clattn_linear_state_destroy(b);
    seq_free(&s);
}

/* A copy continues exactly like its source; a reset state starts a new sequence. */
static void test_state_copy_reset(void **state)
{
    (void)state;
    seqdata s;
    seq_make(&s, 1, 2, 70, 8, 8, CLATTN_LINEAR_FEATURE_ELU);
    clattn_linear_state *a = state_new(&s, CLATTN_LINEAR_FEATURE_ELU);
    clattn_linear_state *b = state_new(&s, CLATTN_LINEAR_FEATURE_ELU);
    size_t nv = s.B * s.H * s.N * s.Dv;
    float *p = tu_poisoned(nv), *oa = malloc(nv * 4), *ob = malloc(nv * 4);
    cl_mem bo2 = tu_buffer(ctx, nv * 4, p);
    prefill(a, &s, 0, 66, 1);
    assert_int_equal(clattn_linear_state_copy(b, a, 0, NULL, NULL), CLATTN_SUCCESS);
    assert_int_equal(clattn_linear_state_copy(a, a, 0, NULL, NULL), CLATTN_SUCCESS);
    for (size_t n = 66; n < s.N; n++) {
        step(a, &s, n, s.bo);
        step(b, &s, n, bo2);
    }
    check_outputs(&s, "source after copy");
    tu_read(ctx, s.bo, nv * 4, oa);
    tu_read(ctx, bo2, nv * 4, ob);
    for (size_t bh = 0; bh < s.B * s.H; bh++)
        assert_memory_equal(oa + (bh * s.N + 66) * s.Dv, ob + (bh * s.N + 66) * s.Dv,
                            (s.N - 66) * s.Dv * 4);
    /* Reset: zero state, and the next step is position 0 of a new sequence. */
    assert_int_equal(clattn_linear_state_reset(a, 0, NULL, NULL), CLATTN_SUCCESS);
    size_t nz = s.B * s.H * s.D;
    float *z = malloc(nz * 4);
    assert_int_equal(clattn_linear_state_read(a, NULL, z), CLATTN_SUCCESS);
    for (size_t i = 0; i < nz; i++)
        assert_true(z[i] == 0.0f);
    step(a, &s, 0, bo2);
    tu_read(ctx, bo2, nv * 4, ob);
    for (size_t bh = 0; bh < s.B * s.H; bh++)
        tu_check_close(ob + bh * s.N * s.Dv, s.ref + bh * s.N * s.Dv, s.Dv, LIN_TOL,
                       "step after reset");
    free(z);
    free(p);
    free(oa);
    free(ob);
    clReleaseMemObject(bo2);
    clattn_linear_state_destroy(a);
    clattn_linear_state_destroy(b);
    seq_free(&s);
}

/* prefill (5 + 65 positions) then steps == causal attention over the whole sequence, and the
 * state read back is the reference's S and z after it. (Few steps: each is several launches,
 * ~13 ms apiece on rusticl.) */
static void test_state_forms(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if (light_skip(forms[f].fmap) || (llvmpipe && forms[f].supplied && !forms[f].mom))
            continue;
        float *w;
        clattn_linear_desc d = form_desc(&forms[f], 16, &w);
        char what[96];
        snprintf(what, sizeof what, "prefill+step %s %s%s", fmap_name(forms[f].fmap),
                 mom_name(forms[f].mom), forms[f].supplied ? " (W supplied)" : "");
        seqdata s;
        seq_make_desc(&s, 2, 1, 90, 16, 8, &d);
        clattn_linear_state *st = state_of_desc(&s, &d);
        prefill(st, &s, 0, 5, 1);
        prefill(st, &s, 5, 65, 1);
        for (size_t n = 70; n < s.N; n++)
            step(st, &s, n, s.bo);
        check_outputs(&s, what);
        /* Steps alone from a reset state, over a shorter prefix. */
        assert_int_equal(clattn_linear_state_reset(st, 0, NULL, NULL), CLATTN_SUCCESS);
        size_t nv = s.B * s.H * s.N * s.Dv;
        float *p = tu_poisoned(nv), *out = malloc(nv * 4);
        cl_mem bo2 = tu_buffer(ctx, nv * 4, p);
        for (size_t n = 0; n < 10; n++)
            step(st, &s, n, bo2);
        tu_read(ctx, bo2, nv * 4, out);
        for (size_t bh = 0; bh < s.B * s.H; bh++)
            tu_check_close(out + bh * s.N * s.Dv, s.ref + bh * s.N * s.Dv, 10 * s.Dv, LIN_TOL,
                           what);
        /* The state after the whole sequence. */
        prefill(st, &s, 10, s.N - 10, 0);
        size_t M = clattn_linear_feature_count(&d, s.D);
        size_t ns = s.B * s.H * M * s.Dv, nz = s.B * s.H * M;
        float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *rs = malloc(ns * 4),
              *rz = malloc(nz * 4);
        float *wd = desc_w(&d, s.D);
        assert_int_equal(clattn_linear_state_read(st, gs, gz), CLATTN_SUCCESS);
        ref_linear_general_state(s.k, s.v, rs, rz, s.B, s.H, s.N, s.D, s.Dv, (int)d.feature_map, wd,
                                 M, (int)d.momentum, (double)d.mu, desc_eta(&d));
        tu_check_close(gs, rs, ns, LIN_TOL, "state S");
        tu_check_close(gz, rz, nz, LIN_TOL, "state z");
        free(gs);
        free(gz);
        free(rs);
        free(rz);
        free(wd);
        free(p);
        free(out);
        free(w);
        clReleaseMemObject(bo2);
        clattn_linear_state_destroy(st);
        seq_free(&s);
    }
}

/* Exact save and restore in every form: a restored state continues bit for bit like its source;
 * truncated, corrupt or foreign snapshots are refused and leave the state as it was. */
static void test_state_save_load(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if (light_skip(forms[f].fmap) || (llvmpipe && forms[f].supplied && !forms[f].mom))
            continue;
        float *w;
        clattn_linear_desc d = form_desc(&forms[f], 8, &w);
        seqdata s;
        seq_make_desc(&s, 1, 2, 90, 8, 6, &d);
        clattn_linear_state *a = state_of_desc(&s, &d), *b = state_of_desc(&s, &d);
        prefill(a, &s, 0, 50, 1);
        size_t bytes = 0;
        assert_int_equal(clattn_linear_state_save_size(a, &bytes), CLATTN_SUCCESS);
        assert_true(bytes > 0);
        unsigned char *snap = malloc(bytes + 16), *bad = malloc(bytes + 16);
        assert_non_null(bad);
        lin_expect(clattn_linear_state_save(a, snap, bytes - 1), CLATTN_BUFFER_TOO_SMALL,
                   "save short");
        assert_int_equal(clattn_linear_state_save(a, snap, bytes), CLATTN_SUCCESS);
        assert_int_equal(clattn_linear_state_load(b, snap, bytes), CLATTN_SUCCESS);
        size_t nv = s.B * s.H * s.N * s.Dv;
        float *p = tu_poisoned(nv), *oa = malloc(nv * 4), *ob = malloc(nv * 4);
        cl_mem bo2 = tu_buffer(ctx, nv * 4, p);
        /* Both continue: a few steps, then a prefill with outputs over the rest. */
        seqdata s2 = s;
        s2.bo = bo2;
        for (size_t n = 50; n < 54; n++) {
            step(a, &s, n, s.bo);
            step(b, &s, n, bo2);
        }
        prefill(a, &s, 54, s.N - 54, 1);
        prefill(b, &s2, 54, s.N - 54, 1);
        char what[96];
        snprintf(what, sizeof what, "save/load %s %s", fmap_name(forms[f].fmap),
                 mom_name(forms[f].mom));
        check_outputs(&s, what);
        tu_read(ctx, s.bo, nv * 4, oa);
        tu_read(ctx, bo2, nv * 4, ob);
        for (size_t bh = 0; bh < s.B * s.H; bh++)
            assert_memory_equal(oa + (bh * s.N + 50) * s.Dv, ob + (bh * s.N + 50) * s.Dv,
                                (s.N - 50) * s.Dv * 4);

        /* Refused snapshots: b keeps what it has (now the state after all 90 positions). */
        size_t M = clattn_linear_feature_count(&d, s.D), ns = s.B * s.H * M * s.Dv;
        float *s0 = malloc(ns * 4), *s1 = malloc(ns * 4);
        assert_int_equal(clattn_linear_state_read(b, s0, NULL), CLATTN_SUCCESS);
        clattn_status st = clattn_linear_state_load(b, snap, bytes - 1);
        if (st != CLATTN_BUFFER_TOO_SMALL && st != CLATTN_INVALID_ARGUMENT)
            fail_msg("truncated snapshot: %s", clattn_status_string(st));
        st = clattn_linear_state_load(b, snap, 8);
        if (st != CLATTN_BUFFER_TOO_SMALL && st != CLATTN_INVALID_ARGUMENT)
            fail_msg("snapshot of 8 bytes: %s", clattn_status_string(st));
        for (size_t x = 0; x < bytes; x += bytes / 7 + 1) {
            memcpy(bad, snap, bytes);
            bad[x] ^= 0x10;
            lin_expect(clattn_linear_state_load(b, bad, bytes), CLATTN_INVALID_ARGUMENT, "corrupt");
        }
        memset(bad, 0, bytes);
        lin_expect(clattn_linear_state_load(b, bad, bytes), CLATTN_INVALID_ARGUMENT, "zeros");
        lin_expect(clattn_linear_state_load(b, NULL, bytes), CLATTN_NULL_POINTER, "load NULL");
        lin_expect(clattn_linear_state_save(b, NULL, bytes), CLATTN_NULL_POINTER, "save NULL");
        lin_expect(clattn_linear_state_save_size(b, NULL), CLATTN_NULL_POINTER, "save_size NULL");
        assert_int_equal(clattn_linear_state_read(b, s1, NULL), CLATTN_SUCCESS);
        assert_memory_equal(s0, s1, ns * 4);

        /* A snapshot of another shape or desc. */
        clattn_linear_state *c = NULL;
        assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 3, 8, 6, &c), CLATTN_SUCCESS);
        lin_expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT,
                   "other heads");
        clattn_linear_state_destroy(c);
        clattn_linear_desc d2 = d;
        if (d.momentum == CLATTN_LINEAR_MOMENTUM_FIXED)
            d2.mu = 0.5f;
        else if (d.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE)
            d2.step_size = 0.25f;
        else if (d.projection == NULL)
            d2.seed = d.seed + 1;
        else
            d2.eps = 1e-3f;
        assert_int_equal(clattn_linear_state_create(ctx, &d2, 1, 2, 8, 6, &c), CLATTN_SUCCESS);
        lin_expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT, "other desc");
        lin_expect(clattn_linear_state_copy(c, a, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
                   "copy across descs");
        clattn_linear_state_destroy(c);
        d2 = d;
        d2.momentum =
            d.momentum == CLATTN_LINEAR_MOMENTUM_NONE ? CLATTN_LINEAR_MOMENTUM_FIXED : CLATTN_LINEAR_MOMENTUM_NONE;
        assert_int_equal(clattn_linear_state_create(ctx, &d2, 1, 2, 8, 6, &c), CLATTN_SUCCESS);
        lin_expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT,
                   "other momentum");
        lin_expect(clattn_linear_state_copy(c, a, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
                   "copy across momentum forms");
        clattn_linear_state_destroy(c);

        /* A copy of a momentum / FAVOR state continues like its source too. */
        assert_int_equal(clattn_linear_state_reset(a, 0, NULL, NULL), CLATTN_SUCCESS);
        prefill(a, &s, 0, 30, 0);
        assert_int_equal(clattn_linear_state_copy(b, a, 0, NULL, NULL), CLATTN_SUCCESS);
        for (size_t n = 30; n < 33; n++) {
            step(a, &s, n, s.bo);
            step(b, &s, n, bo2);
        }
        prefill(a, &s, 33, 17, 1);
        prefill(b, &s2, 33, 17, 1);
        tu_read(ctx, s.bo, nv * 4, oa);
        tu_read(ctx, bo2, nv * 4, ob);
        for (size_t bh = 0; bh < s.B * s.H; bh++) {
            assert_memory_equal(oa + (bh * s.N + 30) * s.Dv, ob + (bh * s.N + 30) * s.Dv,
                                20 * s.Dv * 4);
            tu_check_close(oa + (bh * s.N + 30) * s.Dv, s.ref + (bh * s.N + 30) * s.Dv, 20 * s.Dv,
                           LIN_TOL, "copied state");
        }
        free(s0);
        free(s1);
        free(snap);
        free(bad);
        free(p);
        free(oa);
        free(ob);
        free(w);
        clReleaseMemObject(bo2);
        clattn_linear_state_destroy(a);
        clattn_linear_state_destroy(b);
        seq_free(&s);
    }
}

/* state_write: refused for momentum states (S and z do not determine them), accepted for FAVOR
 * (true sums in, as state_read gives them). */
static void test_state_write_forms(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if (light_skip(forms[f].fmap) || (llvmpipe && forms[f].supplied && !forms[f].mom))
            continue;
        float *w;
        clattn_linear_desc d = form_desc(&forms[f], 8, &w);
        seqdata s;
        seq_make_desc(&s, 1, 2, 80, 8, 6, &d);
        clattn_linear_state *a = state_of_desc(&s, &d), *b = state_of_desc(&s, &d);
        size_t M = clattn_linear_feature_count(&d, s.D);
        size_t ns = s.B * s.H * M * s.Dv, nz = s.B * s.H * M;
        float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *g2 = malloc(ns * 4);
        prefill(a, &s, 0, 40, 1);
        assert_int_equal(clattn_linear_state_read(a, gs, gz), CLATTN_SUCCESS);
        if (d.momentum != CLATTN_LINEAR_MOMENTUM_NONE) {
            lin_expect(clattn_linear_state_write(b, gs, gz), CLATTN_UNSUPPORTED, "write momentum");
            assert_int_equal(clattn_linear_state_read(b, g2, NULL), CLATTN_SUCCESS);
            for (size_t x = 0; x < ns; x++)
                assert_true(g2[x] == 0.0f);
        } else {
            assert_int_equal(clattn_linear_state_write(b, gs, gz), CLATTN_SUCCESS);
            for (size_t n = 40; n < 44; n++)
                step(b, &s, n, s.bo);
            prefill(b, &s, 44, s.N - 44, 1);
            check_outputs(&s, "favor state written from its read-back");
        }
        free(gs);
        free(gz);
        free(g2);
        free(w);
        clattn_linear_state_destroy(a);
        clattn_linear_state_destroy(b);
        seq_free(&s);
    }
}

/* A decoding state bakes its plan at creation; 100 steps (after a prefill) then create no kernel
 * and look up no program, and still match causal attention over the whole sequence. Every form:
 * plain ELU, FAVOR+ with fixed momentum, adaptive momentum. */
static void test_state_steps_baked(void **state)
{
    (void)state;
    static const form fs[] = {{CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_NONE, 0},
                              {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED, 0},
                              {CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 0}};
    for (size_t f = 0; f < sizeof fs / sizeof fs[0]; f++) {
        float *w;
        clattn_linear_desc d = form_desc(&fs[f], 16, &w);
        seqdata s;
        seq_make_desc(&s, 1, 2, 120, 16, 8, &d);
        clattn_linear_state *st = state_of_desc(&s, &d);
        prefill(st, &s, 0, 20, 1);
        clattn_context_stats before = stats_now();
        for (size_t n = 20; n < s.N; n++)
            step(st, &s, n, s.bo);
        clattn_context_stats after = stats_now();
        char what[96];
        snprintf(what, sizeof what, "100 steps %s %s", fmap_name(fs[f].fmap), mom_name(fs[f].mom));
        expect_same_stats(&before, &after, what);
        check_outputs(&s, what);
        clattn_linear_state_destroy(st);
        seq_free(&s);
        free(w);
    }
}

/* A decoding state holds its key heads (Hk); prefills and steps take Hq = group * Hk query heads
 * and give causal GQA over the whole sequence. */
static void test_gqa_state(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if (light_skip(forms[f].fmap) || forms[f].supplied)
            continue;
        size_t B = 1, Hq = 4, Hk = 2, group = 2, N = 80, D = 8, Dv = 6;
        float *w;
        clattn_linear_desc d = form_desc(&forms[f], D, &w);
        uint64_t seed = 4242 + f;
        size_t nq = B * Hq * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv, no = B * Hq * N * Dv;
        float *q = inputs_amp(nq, d.feature_map, 1.0f, &seed);
        float *k = inputs_amp(nk, d.feature_map, 1.0f, &seed);
        float *v = inputs_amp(nv, CLATTN_LINEAR_FEATURE_ELU, 1.0f, &seed);
        float *ke = expand_heads(k, B, Hk, N, D, group), *ve = expand_heads(v, B, Hk, N, Dv, group);
        float *wd = desc_w(&d, D), *ref = malloc(no * 4), *out = malloc(no * 4);
        ref_of_desc(&d, wd, q, ke, ve, ref, B, Hq, N, N, D, Dv, 1);
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
        cl_mem bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, no * 4, NULL);
        tu_poison_buffer(ctx, bo, no * 4);
        clattn_linear_state *st = NULL;
        assert_int_equal(clattn_linear_state_create(ctx, &d, B, Hk, D, Dv, &st), CLATTN_SUCCESS);
        size_t cut = 70;
        for (size_t n0 = 0; n0 < N; n0 = n0 < cut ? cut : n0 + 1) {
            size_t len = n0 < cut ? cut : 1;
            clattn_tensor tq = clattn_tensor_make(bq, B, Hq, N, D);
            clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, D);
            clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, Dv);
            clattn_tensor to = clattn_tensor_make(bo, B, Hq, N, Dv);
            clattn_tensor *ts[] = {&tq, &tk, &tv, &to};
            for (int i = 0; i < 4; i++) {
                ts[i]->shape[2] = len;
                ts[i]->offset = n0 * ts[i]->strides[2];
            }
            clattn_status stt = len > 1
                                    ? clattn_linear_prefill(st, &tq, &tk, &tv, &to, 0, NULL, NULL)
                                    : clattn_linear_step(st, &tq, &tk, &tv, &to, 0, NULL, NULL);
            if (stt != CLATTN_SUCCESS)
                fail_msg("GQA state: %s", clattn_context_last_error(ctx));
        }
        tu_read(ctx, bo, no * 4, out);
        char what[96];
        snprintf(what, sizeof what, "GQA state %s %s", fmap_name(forms[f].fmap),
                 mom_name(forms[f].mom));
        tu_check_close(out, ref, no, TU_TOL_FP32, what);
        clattn_linear_state_destroy(st);
        cl_mem all[] = {bq, bk, bv, bo};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(k);
        free(v);
        free(ke);
        free(ve);
        free(wd);
        free(ref);
        free(out);
        free(w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_prefill_step), cmocka_unit_test(test_state_steps_only),
        cmocka_unit_test(test_state_read_write),   cmocka_unit_test(test_state_copy_reset),
        cmocka_unit_test(test_state_forms),        cmocka_unit_test(test_state_save_load),
        cmocka_unit_test(test_state_write_forms),  cmocka_unit_test(test_state_steps_baked),
        cmocka_unit_test(test_gqa_state),
    };
    return lin_run("test_linear_state", tests, sizeof tests / sizeof tests[0]);
}
