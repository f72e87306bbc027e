/* Batched decoding states (issue 17 section 4), on the device chosen by CLATTN_DEVICE: a linear
 * state of B sequences stepped with masks and index lists (one launch per step) equals B batch-1
 * states stepped only when their sequence is active; unselected sequences keep their state bit
 * for bit and their output rows untouched; positions count the tokens each sequence took; reset of
 * a subset (host list, device list) leaves the others bit-identical; copy_seq / save_seq /
 * load_seq round trips are exact; bad indices and selections are refused with nothing written.
 * The same for the SSM state (no positions). With the clfault shim preloaded: a step of either
 * state, all sequences or a selection, is one kernel launch (and no other command). Small shapes:
 * a few kernel builds per device. */
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
#include "shim/clfault.h"
#include "test_ssm_fixture.h"
#include "test_util.h"

static clattn_context *ctx;

#define OK(call)                                                                                   \
    do {                                                                                           \
        clattn_status st_ = (call);                                                                \
        if (st_ != CLATTN_SUCCESS)                                                                 \
            fail_msg("%s: %s", #call, clattn_context_last_error(ctx));                             \
    } while (0)

enum { B = 4, T = 7 };

/* Which sequences tick t advances (1 = active), and how it is passed: 0 all (NULL), 1 uint8
 * mask, 2 int32 mask, 3 int32 index list. */
static const int active[T][B] = {{1, 1, 1, 1}, {1, 0, 1, 0}, {0, 1, 0, 0}, {1, 1, 0, 1},
                                 {0, 0, 0, 0}, {1, 0, 1, 1}, {0, 1, 1, 0}};
static const int how[T] = {0, 1, 2, 3, 3, 1, 3};

/* The selection of tick t in `buf` (room for B int32). */
static clattn_seq_select select_of(int t, cl_mem buf)
{
    clattn_seq_select s = {CLATTN_SEQ_ALL, NULL, 0, 0};
    if (how[t] == 0)
        return s;
    unsigned char u8[B];
    int32_t i32[B];
    size_t n = 0;
    for (int b = 0; b < B; b++) {
        u8[b] = (unsigned char)(active[t][b] ? 7 : 0);
        i32[b] = active[t][b] * -3; /* an int32 mask: any nonzero value */
    }
    if (how[t] == 3) /* an index list, in reverse order (lists need not be sorted) */
        for (int b = B - 1; b >= 0; b--)
            if (active[t][b])
                i32[n++] = b;
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    const void *src = how[t] == 1 ? (const void *)u8 : (const void *)i32;
    size_t bytes = how[t] == 1 ? sizeof u8 : sizeof i32;
    assert_int_equal(clEnqueueWriteBuffer(q, buf, CL_TRUE, 0, bytes, src, 0, NULL, NULL),
                     CL_SUCCESS);
    s.kind = how[t] == 1 ? CLATTN_SEQ_MASK_U8
             : how[t] == 2 ? CLATTN_SEQ_MASK_I32
                           : CLATTN_SEQ_LIST_I32;
    s.buffer = buf;
    s.count = n;
    return s;
}

static void write_buf(cl_mem m, size_t bytes, const void *src)
{
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, bytes,
                                          src, 0, NULL, NULL),
                     CL_SUCCESS);
}

static int is_poison(float x)
{
    return isnan(x);
}

/* ---- linear ---- */

static unsigned char *lin_snap(clattn_linear_state *st, size_t seq, size_t *bytes)
{
    OK(clattn_linear_state_seq_save_size(st, bytes));
    unsigned char *p = malloc(*bytes);
    assert_non_null(p);
    OK(clattn_linear_state_save_seq(st, seq, p, *bytes));
    return p;
}

static void lin_same_seq(clattn_linear_state *a, size_t sa, clattn_linear_state *b, size_t sb,
                         const char *what)
{
    size_t na = 0, nb = 0;
    unsigned char *x = lin_snap(a, sa, &na), *y = lin_snap(b, sb, &nb);
    if (na != nb || memcmp(x, y, na) != 0)
        fail_msg("%s: sequence snapshots differ", what);
    free(x);
    free(y);
}

typedef struct form {
    clattn_linear_feature_map fmap;
    clattn_linear_momentum mom;
    size_t group;
} form;

static void run_linear_form(const form *f)
{
    size_t H = 2, D = 8, Dv = 6, Hq = H * f->group;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = f->fmap;
    d.momentum = f->mom;
    d.mu = f->mom == CLATTN_LINEAR_MOMENTUM_FIXED ? 0.8f : 0.0f;
    d.step_size = f->mom == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? 0.6f : 0.5f;
    if (f->fmap == CLATTN_LINEAR_FEATURE_FAVOR) {
        d.features = 16;
        d.seed = 5;
    }
    clattn_linear_state *st = NULL, *one[B];
    OK(clattn_linear_state_create(ctx, &d, B, H, D, Dv, &st));
    for (int b = 0; b < B; b++)
        OK(clattn_linear_state_create(ctx, &d, 1, H, D, Dv, &one[b]));
    uint64_t seed = 11 + (uint64_t)f->fmap;
    size_t nq = B * Hq * D, nk = B * H * D, nv = B * H * Dv, no = B * Hq * Dv;
    cl_mem bq = tu_buffer(ctx, nq * 4, NULL), bk = tu_buffer(ctx, nk * 4, NULL);
    cl_mem bv = tu_buffer(ctx, nv * 4, NULL), bo = tu_buffer(ctx, no * 4, NULL);
    cl_mem sq = tu_buffer(ctx, nq / B * 4, NULL), sk = tu_buffer(ctx, nk / B * 4, NULL);
    cl_mem sv = tu_buffer(ctx, nv / B * 4, NULL), so = tu_buffer(ctx, no / B * 4, NULL);
    cl_mem sel = tu_buffer(ctx, B * 4, NULL);
    clattn_tensor tq = clattn_tensor_make(bq, B, Hq, 1, D), tk = clattn_tensor_make(bk, B, H, 1, D);
    clattn_tensor tv = clattn_tensor_make(bv, B, H, 1, Dv), to = clattn_tensor_make(bo, B, Hq, 1, Dv);
    clattn_tensor uq = clattn_tensor_make(sq, 1, Hq, 1, D), uk = clattn_tensor_make(sk, 1, H, 1, D);
    clattn_tensor uv = clattn_tensor_make(sv, 1, H, 1, Dv), uo = clattn_tensor_make(so, 1, Hq, 1, Dv);
    float *out = malloc(no * 4), *o1 = malloc(no / B * 4);
    assert_true(out && o1);
    uint32_t pos[B], want_pos[B] = {0, 0, 0, 0};
    for (int t = 0; t < T; t++) {
        float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
        float *v = tu_random(nv, 1.0f, &seed);
        write_buf(bq, nq * 4, q);
        write_buf(bk, nk * 4, k);
        write_buf(bv, nv * 4, v);
        tu_poison_buffer(ctx, bo, no * 4);
        /* The inactive sequences' snapshots before the step. */
        size_t sn = 0;
        unsigned char *before[B];
        for (int b = 0; b < B; b++)
            before[b] = active[t][b] ? NULL : lin_snap(st, (size_t)b, &sn);
        clattn_seq_select s = select_of(t, sel);
        OK(clattn_linear_step_select(st, &tq, &tk, &tv, &to, how[t] ? &s : NULL, 0, NULL, NULL));
        tu_read(ctx, bo, no * 4, out);
        for (int b = 0; b < B; b++) {
            float *orow = out + (size_t)b * Hq * Dv;
            if (!active[t][b]) {
                for (size_t i = 0; i < Hq * Dv; i++)
                    if (!is_poison(orow[i]))
                        fail_msg("tick %d: inactive sequence %d's out was written", t, b);
                size_t n2 = 0;
                unsigned char *after = lin_snap(st, (size_t)b, &n2);
                if (n2 != sn || memcmp(after, before[b], sn) != 0)
                    fail_msg("tick %d: inactive sequence %d's state changed", t, b);
                free(after);
                free(before[b]);
                continue;
            }
            want_pos[b]++;
            write_buf(sq, nq / B * 4, q + (size_t)b * Hq * D);
            write_buf(sk, nk / B * 4, k + (size_t)b * H * D);
            write_buf(sv, nv / B * 4, v + (size_t)b * H * Dv);
            OK(clattn_linear_step(one[b], &uq, &uk, &uv, &uo, 0, NULL, NULL));
            tu_read(ctx, so, no / B * 4, o1);
            tu_check_close(orow, o1, Hq * Dv, TU_TOL_FP32, "batched vs per-sequence step");
        }
        free(q);
        free(k);
        free(v);
    }
    OK(clattn_linear_state_positions(st, pos));
    for (int b = 0; b < B; b++)
        if (pos[b] != want_pos[b])
            fail_msg("position of sequence %d: %u, want %u (form %d)", b, (unsigned)pos[b], (unsigned)want_pos[b], (int)f->mom);
    /* The batched state's sequences equal the per-sequence states. */
    size_t M = f->fmap == CLATTN_LINEAR_FEATURE_FAVOR ? 16 : D;
    size_t ns = H * M * Dv, nz = H * M;
    float *s1 = malloc(ns * 4), *z1 = malloc(nz * 4), *s2 = malloc(ns * 4), *z2 = malloc(nz * 4);
    float *sall = malloc(B * ns * 4);
    assert_true(s1 && z1 && s2 && z2 && sall);
    OK(clattn_linear_state_read(st, sall, NULL));
    for (int b = 0; b < B; b++) {
        OK(clattn_linear_state_read_seq(st, (size_t)b, s1, z1));
        OK(clattn_linear_state_read(one[b], s2, z2));
        tu_check_close(s1, s2, ns, TU_TOL_FP32, "sequence S vs per-sequence state");
        tu_check_close(z1, z2, nz, TU_TOL_FP32, "sequence z vs per-sequence state");
        assert_memory_equal(s1, sall + (size_t)b * ns, ns * 4);
    }
    /* A sequence snapshot loads into a batch-1 state and back, exactly. */
    size_t n1 = 0, nfull = 0;
    unsigned char *snap = lin_snap(st, 2, &n1);
    OK(clattn_linear_state_save_size(one[0], &nfull));
    assert_int_equal(n1, nfull);
    OK(clattn_linear_state_load(one[0], snap, n1));
    lin_same_seq(one[0], 0, st, 2, "load of a sequence snapshot into a batch-1 state");
    /* load_seq into another sequence, copy_seq within and across states. */
    OK(clattn_linear_state_load_seq(st, 0, snap, n1));
    lin_same_seq(st, 0, st, 2, "load_seq");
    OK(clattn_linear_state_copy_seq(st, 3, st, 1, 0, NULL, NULL));
    lin_same_seq(st, 3, st, 1, "copy_seq within a state");
    OK(clattn_linear_state_copy_seq(one[1], 0, st, 3, 0, NULL, NULL));
    lin_same_seq(one[1], 0, st, 1, "copy_seq across states");
    free(snap);
    /* Reset of a subset: host list {1, 3} (repeated), then a device list {2}. */
    unsigned char *keep0 = lin_snap(st, 0, &n1), *keep2 = lin_snap(st, 2, &n1);
    size_t seqs[3] = {3, 1, 3};
    OK(clattn_linear_state_reset_seqs(st, seqs, 3, 0, NULL, NULL));
    clattn_linear_state *fresh = NULL;
    OK(clattn_linear_state_create(ctx, &d, 1, H, D, Dv, &fresh));
    lin_same_seq(st, 1, fresh, 0, "reset sequence 1");
    lin_same_seq(st, 3, fresh, 0, "reset sequence 3");
    unsigned char *now = lin_snap(st, 0, &n1);
    assert_memory_equal(now, keep0, n1);
    free(now);
    int32_t two = 2;
    write_buf(sel, 4, &two);
    clattn_seq_select ls = {CLATTN_SEQ_LIST_I32, sel, 0, 1};
    OK(clattn_linear_state_reset_select(st, &ls, 0, NULL, NULL));
    lin_same_seq(st, 2, fresh, 0, "reset sequence 2 by a device list");
    now = lin_snap(st, 0, &n1);
    assert_memory_equal(now, keep0, n1);
    free(now);
    OK(clattn_linear_state_positions(st, pos));
    assert_int_equal(pos[0], want_pos[2]); /* sequence 0 holds 2's snapshot */
    assert_int_equal(pos[1] + pos[2] + pos[3], 0);
    /* Refusals leave everything as it was. */
    unsigned char *whole_before = NULL;
    OK(clattn_linear_state_save_size(st, &nfull));
    whole_before = malloc(nfull);
    unsigned char *whole_after = malloc(nfull);
    assert_true(whole_before && whole_after);
    OK(clattn_linear_state_save(st, whole_before, nfull));
    size_t bad[2] = {0, B};
    tu_expect_status(ctx, clattn_linear_state_reset_seqs(st, bad, 2, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "reset_seqs out of range");
    tu_expect_status(ctx, clattn_linear_state_copy_seq(st, B, st, 0, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "copy_seq dst out of range");
    tu_expect_status(ctx, clattn_linear_state_copy_seq(st, 0, one[0], 1, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "copy_seq src out of range");
    tu_expect_status(ctx, clattn_linear_state_load_seq(st, B, keep2, n1), CLATTN_INVALID_ARGUMENT,
                     "load_seq out of range");
    keep2[n1 - 1] ^= 1;
    tu_expect_status(ctx, clattn_linear_state_load_seq(st, 1, keep2, n1), CLATTN_INVALID_ARGUMENT,
                     "load_seq corrupt");
    tu_expect_status(ctx, clattn_linear_state_load_seq(st, 1, whole_before, nfull),
                     CLATTN_INVALID_ARGUMENT, "load_seq of a whole-batch snapshot");
    tu_expect_status(ctx, clattn_linear_state_read_seq(st, B, s1, z1), CLATTN_INVALID_ARGUMENT,
                     "read_seq out of range");
    clattn_seq_select big = {CLATTN_SEQ_LIST_I32, sel, 0, B + 1};
    tu_expect_status(ctx, clattn_linear_step_select(st, &tq, &tk, &tv, &to, &big, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "list longer than the batch");
    clattn_seq_select off = {CLATTN_SEQ_MASK_I32, sel, 1, 0};
    tu_expect_status(ctx, clattn_linear_step_select(st, &tq, &tk, &tv, &to, &off, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "mask past its buffer");
    clattn_seq_select kind = {(clattn_seq_kind)9, sel, 0, 0};
    tu_expect_status(ctx, clattn_linear_state_reset_select(st, &kind, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
                     "unknown kind");
    OK(clattn_linear_state_save(st, whole_after, nfull));
    assert_memory_equal(whole_before, whole_after, nfull);
    /* A prefill of 3 tokens adds 3 to every position. */
    cl_mem pq = tu_buffer(ctx, B * Hq * 3 * D * 4, NULL), pk = tu_buffer(ctx, B * H * 3 * D * 4, NULL);
    cl_mem pv = tu_buffer(ctx, B * H * 3 * Dv * 4, NULL);
    float *zeros = calloc(B * Hq * 3 * D, 4);
    write_buf(pq, B * Hq * 3 * D * 4, zeros);
    write_buf(pk, B * H * 3 * D * 4, zeros);
    write_buf(pv, B * H * 3 * Dv * 4, zeros);
    clattn_tensor pqt = clattn_tensor_make(pq, B, Hq, 3, D), pkt = clattn_tensor_make(pk, B, H, 3, D);
    clattn_tensor pvt = clattn_tensor_make(pv, B, H, 3, Dv);
    OK(clattn_linear_prefill(st, &pqt, &pkt, &pvt, NULL, 0, NULL, NULL));
    OK(clattn_linear_state_positions(st, pos));
    assert_int_equal(pos[0], want_pos[2] + 3);
    assert_int_equal(pos[1], 3);
    free(zeros);
    clReleaseMemObject(pq);
    clReleaseMemObject(pk);
    clReleaseMemObject(pv);
    free(whole_before);
    free(whole_after);
    free(keep0);
    free(keep2);
    clattn_linear_state_destroy(fresh);
    free(s1);
    free(z1);
    free(s2);
    free(z2);
    free(sall);
    free(out);
    free(o1);
    cl_mem all[] = {bq, bk, bv, bo, sq, sk, sv, so, sel};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clReleaseMemObject(all[i]);
    for (int b = 0; b < B; b++)
        clattn_linear_state_destroy(one[b]);
    clattn_linear_state_destroy(st);
}

static void test_linear_batched(void **state)
{
    (void)state;
    static const form forms[] = {
        {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_NONE, 2},
        {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED, 1},
        {CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 1},
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        run_linear_form(&forms[i]);
}

/* ---- SSM ---- */

static void test_ssm_batched(void **state)
{
    (void)state;
    size_t H = 3, N = 8, per = H * N * 2;
    ssm_params p;
    ssm_params_make(&p, H, N, 4);
    clattn_ssm *h = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_state *st = NULL, *one[B];
    OK(clattn_ssm_state_create(h, B, &st));
    for (int b = 0; b < B; b++)
        OK(clattn_ssm_state_create(h, 1, &one[b]));
    cl_mem bu = tu_buffer(ctx, B * H * 4, NULL), by = tu_buffer(ctx, B * H * 4, NULL);
    cl_mem su = tu_buffer(ctx, H * 4, NULL), sy = tu_buffer(ctx, H * 4, NULL);
    cl_mem sel = tu_buffer(ctx, B * 4, NULL);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, 1, 1), ty = clattn_tensor_make(by, B, H, 1, 1);
    clattn_tensor uu = clattn_tensor_make(su, 1, H, 1, 1), uy = clattn_tensor_make(sy, 1, H, 1, 1);
    float *x = malloc(B * per * 4), *x1 = malloc(per * 4), *xb = malloc(B * per * 4);
    float y[B * 3], y1[3];
    assert_true(x && x1 && xb);
    uint64_t seed = 21;
    for (int t = 0; t < T; t++) {
        float *u = tu_random(B * H, 1.0f, &seed);
        write_buf(bu, B * H * 4, u);
        tu_poison_buffer(ctx, by, B * H * 4);
        OK(clattn_ssm_state_read(st, xb));
        clattn_seq_select s = select_of(t, sel);
        OK(clattn_ssm_step_select(st, &tu, &ty, how[t] ? &s : NULL, 0, NULL, NULL));
        tu_read(ctx, by, sizeof y, y);
        OK(clattn_ssm_state_read(st, x));
        for (int b = 0; b < B; b++) {
            if (!active[t][b]) {
                for (size_t i = 0; i < H; i++)
                    if (!is_poison(y[(size_t)b * H + i]))
                        fail_msg("ssm tick %d: inactive sequence %d's y was written", t, b);
                assert_memory_equal(x + (size_t)b * per, xb + (size_t)b * per, per * 4);
                continue;
            }
            write_buf(su, H * 4, u + (size_t)b * H);
            OK(clattn_ssm_step(one[b], &uu, &uy, 0, NULL, NULL));
            tu_read(ctx, sy, sizeof y1, y1);
            tu_check_close(y + (size_t)b * H, y1, H, TU_TOL_FP32, "ssm batched vs per-sequence");
        }
        free(u);
    }
    for (int b = 0; b < B; b++) {
        OK(clattn_ssm_state_read_seq(st, (size_t)b, x1));
        assert_memory_equal(x1, x + (size_t)b * per, per * 4);
        OK(clattn_ssm_state_read(one[b], xb));
        tu_check_close(x1, xb, per, TU_TOL_FP32, "ssm sequence state vs per-sequence state");
    }
    /* Reset subsets (host list, device u8 mask), copy_seq, write_seq; the others bit-identical. */
    size_t seqs[1] = {1};
    OK(clattn_ssm_state_reset_seqs(st, seqs, 1, 0, NULL, NULL));
    unsigned char m8[B] = {0, 0, 0, 1};
    write_buf(sel, B, m8);
    clattn_seq_select ms = {CLATTN_SEQ_MASK_U8, sel, 0, 0};
    OK(clattn_ssm_state_reset_select(st, &ms, 0, NULL, NULL));
    OK(clattn_ssm_state_read(st, xb));
    for (size_t i = 0; i < per; i++)
        assert_true(xb[per + i] == 0.0f && xb[3 * per + i] == 0.0f);
    assert_memory_equal(xb, x, per * 4);
    assert_memory_equal(xb + 2 * per, x + 2 * per, per * 4);
    OK(clattn_ssm_state_copy_seq(st, 1, st, 2, 0, NULL, NULL));
    OK(clattn_ssm_state_copy_seq(one[0], 0, st, 0, 0, NULL, NULL));
    OK(clattn_ssm_state_read_seq(st, 1, x1));
    assert_memory_equal(x1, x + 2 * per, per * 4);
    OK(clattn_ssm_state_read_seq(one[0], 0, x1));
    assert_memory_equal(x1, x, per * 4);
    OK(clattn_ssm_state_write_seq(st, 3, x));
    OK(clattn_ssm_state_read_seq(st, 3, x1));
    assert_memory_equal(x1, x, per * 4);
    /* Refusals: nothing written. */
    OK(clattn_ssm_state_read(st, xb));
    size_t bad[1] = {B};
    tu_expect_status(ctx, clattn_ssm_state_reset_seqs(st, bad, 1, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "ssm reset_seqs out of range");
    tu_expect_status(ctx, clattn_ssm_state_copy_seq(st, 0, st, B, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "ssm copy_seq out of range");
    x1[0] = NAN;
    tu_expect_status(ctx, clattn_ssm_state_write_seq(st, 0, x1), CLATTN_INVALID_ARGUMENT,
                     "ssm write_seq not finite");
    tu_expect_status(ctx, clattn_ssm_state_read_seq(st, B, x1), CLATTN_INVALID_ARGUMENT,
                     "ssm read_seq out of range");
    clattn_seq_select big = {CLATTN_SEQ_LIST_I32, sel, 0, B + 1};
    tu_expect_status(ctx, clattn_ssm_step_select(st, &tu, &ty, &big, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "ssm list longer than the batch");
    OK(clattn_ssm_state_read(st, x));
    assert_memory_equal(x, xb, B * per * 4);
    free(x);
    free(x1);
    free(xb);
    cl_mem all[] = {bu, by, su, sy, sel};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clReleaseMemObject(all[i]);
    for (int b = 0; b < B; b++)
        clattn_ssm_state_destroy(one[b]);
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(h);
    ssm_params_free(&p);
}

/* ---- one launch per step (clfault shim) ---- */

/* Commands enqueued so far (every clEnqueue* the shim wraps). */
static unsigned long enqueues(void)
{
    static const char *const fns[] = {
        "clEnqueueBarrierWithWaitList", "clEnqueueCopyBuffer",   "clEnqueueCopyBufferRect",
        "clEnqueueFillBuffer",          "clEnqueueMarkerWithWaitList", "clEnqueueNDRangeKernel",
        "clEnqueueReadBuffer",          "clEnqueueReadBufferRect", "clEnqueueWriteBuffer",
        "clEnqueueWriteBufferRect"};
    unsigned long n = 0;
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        n += shim_calls(fns[i]);
    return n;
}

static void test_one_launch(void **state)
{
    (void)state;
    if (!shim_loaded()) {
        fprintf(stderr, "note: the clfault shim is not preloaded; skipped\n");
        skip();
    }
    size_t H = 2, D = 8;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = CLATTN_LINEAR_FEATURE_FAVOR; /* features of q and k, momentum: 8 launches */
    d.features = 16;
    d.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
    d.mu = 0.8f;
    clattn_linear_state *st = NULL;
    OK(clattn_linear_state_create(ctx, &d, B, H, D, D, &st));
    cl_mem bq = tu_buffer(ctx, B * H * D * 4, NULL), bo = tu_buffer(ctx, B * H * D * 4, NULL);
    cl_mem sel = tu_buffer(ctx, B, NULL);
    unsigned char m8[B] = {1, 0, 1, 0};
    write_buf(sel, B, m8);
    float *zeros = calloc(B * H * D, 4);
    assert_non_null(zeros);
    write_buf(bq, B * H * D * 4, zeros);
    clattn_tensor tq = clattn_tensor_make(bq, B, H, 1, D), to = clattn_tensor_make(bo, B, H, 1, D);
    clattn_seq_select ms = {CLATTN_SEQ_MASK_U8, sel, 0, 0};
    OK(clattn_context_finish(ctx));
    unsigned long k0 = shim_calls("clEnqueueNDRangeKernel"), a0 = enqueues();
    OK(clattn_linear_step(st, &tq, &tq, &tq, &to, 0, NULL, NULL));
    unsigned long k1 = shim_calls("clEnqueueNDRangeKernel"), a1 = enqueues();
    OK(clattn_linear_step_select(st, &tq, &tq, &tq, &to, &ms, 0, NULL, NULL));
    unsigned long k2 = shim_calls("clEnqueueNDRangeKernel"), a2 = enqueues();
    assert_int_equal(k1 - k0, 1);
    assert_int_equal(a1 - a0, 1);
    assert_int_equal(k2 - k1, 1);
    assert_int_equal(a2 - a1, 1);
    OK(clattn_context_finish(ctx));
    ssm_params p;
    ssm_params_make(&p, 3, 8, 4);
    clattn_ssm *h = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_state *ss = NULL;
    OK(clattn_ssm_state_create(h, B, &ss));
    clattn_tensor tu = clattn_tensor_make(bq, B, 3, 1, 1), ty = clattn_tensor_make(bo, B, 3, 1, 1);
    OK(clattn_context_finish(ctx));
    k0 = shim_calls("clEnqueueNDRangeKernel");
    OK(clattn_ssm_step_select(ss, &tu, &ty, &ms, 0, NULL, NULL));
    assert_int_equal(shim_calls("clEnqueueNDRangeKernel") - k0, 1);
    OK(clattn_context_finish(ctx));
    clattn_ssm_state_destroy(ss);
    clattn_ssm_destroy(h);
    ssm_params_free(&p);
    free(zeros);
    clReleaseMemObject(bq);
    clReleaseMemObject(bo);
    clReleaseMemObject(sel);
    clattn_linear_state_destroy(st);
}

static int setup(void **state)
{
    (void)state;
    return ssm_open(&ctx);
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_batched),
        cmocka_unit_test(test_ssm_batched),
        cmocka_unit_test(test_one_launch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
