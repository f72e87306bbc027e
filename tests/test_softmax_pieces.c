/* Pieces of a longer sequence (issue 18's groundwork): the desc's position_offset and
 * clattn_softmax_merge_enqueue, on every algorithm, against the fp64 reference.
 * - position_offset shifts every query's aligned position (causal, window, ALiBi): compared with
 *   ref_softmax_ex's position_offset, offsets that shift rows forward, backward and out of reach
 *   (rows that see no key: zeros, lse -inf).
 * - A problem cut into query blocks x key blocks (uneven sizes, N not a multiple of anything),
 *   each block run with its position_offset and lse, the key blocks merged in place by
 *   clattn_softmax_merge_enqueue: equals the unsplit reference (causal self-attention, cross
 *   attention Nq != Nk, GQA, key lengths). Also with half-precision outputs merged.
 * - The merge's refusals leave out and lse untouched.
 * Inputs are random (never zeros), outputs poisoned (NaN) before every run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "test_util.h"

static clattn_context *ctx;
enum { D = 16 };

static const clattn_softmax_algo algos[] = {CLATTN_SOFTMAX_NAIVE, CLATTN_SOFTMAX_TILED_CPU,
                                            CLATTN_SOFTMAX_TILED_GPU,
                                            CLATTN_SOFTMAX_TILED_GPU_ROWS};
static const char *const algo_names[] = {"naive", "tiled_cpu", "tiled_gpu", "tiled_gpu_rows"};

/* Runs one block on the device: q [B, Hq, nq, D], k/v [B, Hk, nk, D] (host), out/lse written
 * to host arrays (f32), or left on the device in *dev_out / *dev_lse when those are not NULL
 * (the caller releases them); out_dt is the device out's element type. */
static void run_block(const clattn_softmax_desc *desc, size_t B, size_t hq, size_t hk, size_t nq,
                      size_t nk, const float *q, const float *k, const float *v,
                      const int32_t *kl, clattn_dtype out_dt, float *out, float *lse,
                      cl_mem *dev_out, cl_mem *dev_lse)
{
    size_t no = B * hq * nq * D, nl = B * hq * nq, esz = out_dt == CLATTN_F32 ? 4 : 2;
    cl_mem bq = tu_buffer(ctx, no * 4, q);
    cl_mem bk = tu_buffer(ctx, B * hk * nk * D * 4, k);
    cl_mem bv = tu_buffer(ctx, B * hk * nk * D * 4, v);
    cl_mem bo = tu_buffer(ctx, no * esz, NULL), bl = tu_buffer(ctx, nl * 4, NULL);
    cl_mem bkl = kl ? tu_buffer(ctx, B * 4, kl) : NULL;
    tu_poison_buffer(ctx, bo, no * esz);
    tu_poison_buffer(ctx, bl, nl * 4);
    clattn_softmax_desc d = *desc;
    d.key_lengths = bkl;
    d.out_dtype = out_dt;
    clattn_tensor tq = clattn_tensor_make(bq, B, hq, nq, D);
    clattn_tensor tk = clattn_tensor_make(bk, B, hk, nk, D);
    clattn_tensor tv = clattn_tensor_make(bv, B, hk, nk, D);
    clattn_tensor to = clattn_tensor_make_typed(bo, out_dt, B, hq, nq, D);
    clattn_tensor tl = clattn_tensor_make(bl, B, hq, nq, 1);
    clattn_status st = clattn_softmax_enqueue(ctx, &d, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("softmax enqueue: %s", clattn_context_last_error(ctx));
    if (out)
        tu_read(ctx, bo, no * 4, out);
    if (lse)
        tu_read(ctx, bl, nl * 4, lse);
    if (dev_out) {
        *dev_out = bo;
        *dev_lse = bl;
    } else {
        clReleaseMemObject(bo);
        clReleaseMemObject(bl);
    }
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    if (bkl)
        clReleaseMemObject(bkl);
}

/* lse rows: equal (both -inf) or close. */
static void check_lse(const float *got, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) && ref[i] < 0) {
            if (!(isinf(got[i]) && got[i] < 0))
                fail_msg("%s: lse[%zu] = %g, want -inf", what, i, (double)got[i]);
            continue;
        }
        if (!(fabs((double)got[i] - (double)ref[i]) <= 1e-4 + 1e-5 * fabs((double)ref[i])))
            fail_msg("%s: lse[%zu] = %.7g, want %.7g", what, i, (double)got[i], (double)ref[i]);
    }
}

static void test_position_offset(void **state)
{
    (void)state;
    const size_t B = 2, hq = 4, hk = 2, nq = 7, nk = 23;
    uint64_t seed = 77;
    float *q = tu_random(B * hq * nq * D, 1.0f, &seed);
    float *k = tu_random(B * hk * nk * D, 1.0f, &seed);
    float *v = tu_random(B * hk * nk * D, 1.0f, &seed);
    float *out = malloc(B * hq * nq * D * 4), *lse = malloc(B * hq * nq * 4);
    float *rout = malloc(B * hq * nq * D * 4), *rlse = malloc(B * hq * nq * 4);
    const long long offs[] = {-5, 3, 17, -40, 0};
    /* form 0: causal; 1: causal + window 4 + ALiBi; 2: window both sides, not causal */
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++)
        for (int form = 0; form < 3; form++)
            for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
                clattn_softmax_desc d;
                clattn_softmax_desc_init(&d);
                d.algorithm = algos[a];
                d.causal = form < 2;
                d.alibi = form == 1;
                d.window_left = form >= 1 ? 4 : -1;
                d.window_right = form == 2 ? 2 : -1;
                d.position_offset = offs[o];
                ref_softmax_opts ro = {0};
                ro.causal = d.causal;
                float slopes[4];
                ref_alibi_slopes(hq, slopes);
                ro.alibi_slopes = d.alibi ? slopes : NULL;
                ro.window = form >= 1;
                ro.window_left = d.window_left;
                ro.window_right = d.window_right;
                ro.position_offset = offs[o];
                ref_softmax_ex(q, k, v, rout, rlse, B, hq, hk, nq, nk, D, &ro);
                run_block(&d, B, hq, hk, nq, nk, q, k, v, NULL, CLATTN_F32, out, lse, NULL, NULL);
                char what[96];
                snprintf(what, sizeof what, "%s form %d offset %lld", algo_names[a], form,
                         offs[o]);
                tu_check_close(out, rout, B * hq * nq * D, TU_TOL_FP32, what);
                check_lse(lse, rlse, B * hq * nq, what);
            }
    free(q), free(k), free(v), free(out), free(lse), free(rout), free(rlse);
}

/* Rows [r0, r0 + n) of x [B, H, N, W] as a dense [B, H, n, W] copy. */
static float *rows(const float *x, size_t B, size_t H, size_t N, size_t W, size_t r0, size_t n)
{
    size_t cnt = B * H * n * W;
    float *y = malloc((cnt ? cnt : 1) * sizeof *y);
    for (size_t bh = 0; bh < B * H; bh++)
        memcpy(y + bh * n * W, x + (bh * N + r0) * W, n * W * sizeof *y);
    return y;
}

/* The full problem (B 2, Hq 4, Hk 2) cut into query blocks qcut and key blocks kcut; each key
 * block's partial merged into the query block's accumulator on the device. */
static void split_case(clattn_softmax_algo algo, const char *aname, size_t nq, size_t nk,
                       int causal, int use_kl, const size_t *qcut, size_t nqc, const size_t *kcut,
                       size_t nkc, clattn_dtype out_dt)
{
    const size_t B = 2, hq = 4, hk = 2;
    uint64_t seed = 1000 + nq * 31 + nk + (size_t)causal;
    float *q = tu_random(B * hq * nq * D, 1.0f, &seed);
    float *k = tu_random(B * hk * nk * D, 1.0f, &seed);
    float *v = tu_random(B * hk * nk * D, 1.0f, &seed);
    for (size_t i = 0; i < B * hq * nq * D; i++)
        q[i] *= 3.0f; /* large logits: merges of very different maxima */
    int32_t kl_full[2] = {(int32_t)nk, (int32_t)(nk * 3 / 5)};
    float *rout = malloc(B * hq * nq * D * 4), *rlse = malloc(B * hq * nq * 4);
    ref_softmax_opts ro = {0};
    ro.causal = causal;
    ro.key_lengths = use_kl ? kl_full : NULL;
    ref_softmax_ex(q, k, v, rout, rlse, B, hq, hk, nq, nk, D, &ro);
    float *out = malloc(B * hq * nq * D * 4), *lse = malloc(B * hq * nq * 4);
    for (size_t i = 0; i < B * hq * nq * D; i++)
        out[i] = NAN;
    /* query row i of the full problem sits at position i + nk - nq, key j at j */
    for (size_t qb = 0; qb < nqc; qb++) {
        size_t qa = qb ? qcut[qb - 1] : 0, qn = qcut[qb] - qa;
        float *qs = rows(q, B, hq, nq, D, qa, qn);
        cl_mem acc = NULL, acc_l = NULL;
        for (size_t kb = 0; kb < nkc; kb++) {
            size_t ka = kb ? kcut[kb - 1] : 0, kn = kcut[kb] - ka;
            float *ks = rows(k, B, hk, nk, D, ka, kn), *vs = rows(v, B, hk, nk, D, ka, kn);
            int32_t kl[2];
            for (int b = 0; b < 2; b++) {
                long long l = (long long)kl_full[b] - (long long)ka;
                kl[b] = (int32_t)(l < 0 ? 0 : l > (long long)kn ? (long long)kn : l);
            }
            clattn_softmax_desc d;
            clattn_softmax_desc_init(&d);
            d.algorithm = algo;
            d.causal = causal;
            d.position_offset =
                ((long long)(qa + nk - nq) - (long long)ka) - ((long long)kn - (long long)qn);
            cl_mem po = NULL, pl = NULL;
            run_block(&d, B, hq, hk, qn, kn, qs, ks, vs, use_kl ? kl : NULL, out_dt, NULL, NULL,
                      &po, &pl);
            if (!acc) {
                acc = po, acc_l = pl;
            } else {
                clattn_tensor to = clattn_tensor_make_typed(acc, out_dt, B, hq, qn, D);
                clattn_tensor tl = clattn_tensor_make(acc_l, B, hq, qn, 1);
                clattn_tensor tp = clattn_tensor_make_typed(po, out_dt, B, hq, qn, D);
                clattn_tensor tpl = clattn_tensor_make(pl, B, hq, qn, 1);
                clattn_status st =
                    clattn_softmax_merge_enqueue(ctx, &to, &tl, &tp, &tpl, 0, NULL, NULL);
                if (st != CLATTN_SUCCESS)
                    fail_msg("merge: %s", clattn_context_last_error(ctx));
                clReleaseMemObject(po);
                clReleaseMemObject(pl);
            }
            free(ks), free(vs);
        }
        size_t esz = out_dt == CLATTN_F32 ? 4 : 2, n = B * hq * qn * D;
        void *raw = malloc(n * esz);
        float *lb = malloc(B * hq * qn * 4);
        tu_read(ctx, acc, n * esz, raw);
        tu_read(ctx, acc_l, B * hq * qn * 4, lb);
        float *ob = out_dt == CLATTN_F32 ? (float *)raw : tu_unpack(raw, n, out_dt);
        for (size_t bh = 0; bh < B * hq; bh++) {
            memcpy(out + (bh * nq + qa) * D, ob + bh * qn * D, qn * D * 4);
            memcpy(lse + bh * nq + qa, lb + bh * qn, qn * 4);
        }
        if (ob != raw)
            free(ob);
        free(raw), free(lb), free(qs);
        clReleaseMemObject(acc);
        clReleaseMemObject(acc_l);
    }
    char what[128];
    snprintf(what, sizeof what, "%s nq %zu nk %zu causal %d kl %d blocks %zux%zu %s", aname, nq,
             nk, causal, use_kl, nqc, nkc, clattn_dtype_name(out_dt));
    /* half outputs: each merge rounds to the type again (bf16: 8 significant bits) */
    tu_tol tol = out_dt == CLATTN_F32   ? TU_TOL_FP32
                 : out_dt == CLATTN_F16 ? (tu_tol){2e-3, 2e-3, 1e-3}
                                        : (tu_tol){1.5e-2, 1.5e-2, 8e-3};
    tu_check_close(out, rout, B * hq * nq * D, tol, what);
    check_lse(lse, rlse, B * hq * nq, what);
    free(q), free(k), free(v), free(rout), free(rlse), free(out), free(lse);
}

static void test_split_merge(void **state)
{
    (void)state;
    const size_t q1[] = {37}, q2[] = {9, 37}, k3[] = {10, 29, 37}, k1[] = {37};
    const size_t qc[] = {13}, kc4[] = {1, 16, 17, 37};
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        const char *an = algo_names[a];
        for (int causal = 0; causal < 2; causal++) {
            split_case(algos[a], an, 37, 37, causal, 0, q1, 1, k3, 3, CLATTN_F32);
            split_case(algos[a], an, 37, 37, causal, 1, q2, 2, k3, 3, CLATTN_F32);
            split_case(algos[a], an, 13, 37, causal, 1, qc, 1, kc4, 4, CLATTN_F32);
        }
        split_case(algos[a], an, 37, 37, 1, 0, q2, 2, k1, 1, CLATTN_F32); /* R = 1 */
    }
    split_case(CLATTN_SOFTMAX_AUTO, "auto", 37, 37, 1, 1, q2, 2, k3, 3, CLATTN_F16);
    split_case(CLATTN_SOFTMAX_AUTO, "auto", 13, 37, 1, 0, qc, 1, kc4, 4, CLATTN_BF16);
}

static void test_merge_invalid(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 5;
    uint64_t seed = 5;
    float *x = tu_random(B * H * N * D, 1.0f, &seed), *l = tu_random(B * H * N, 1.0f, &seed);
    cl_mem o = tu_buffer(ctx, sizeof(float) * B * H * N * D, x);
    cl_mem ls = tu_buffer(ctx, sizeof(float) * B * H * N, l);
    cl_mem p = tu_buffer(ctx, sizeof(float) * B * H * N * D, x);
    cl_mem pl = tu_buffer(ctx, sizeof(float) * B * H * N, l);
    clattn_tensor to = clattn_tensor_make(o, B, H, N, D), tl = clattn_tensor_make(ls, B, H, N, 1);
    clattn_tensor tp = clattn_tensor_make(p, B, H, N, D), tpl = clattn_tensor_make(pl, B, H, N, 1);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, o, sizeof(float) * B * H * N * D, "out");
    tu_watch_buffer(&w, ls, sizeof(float) * B * H * N, "lse");
    tu_expect_fresh_status(NULL, clattn_softmax_merge_enqueue(NULL, &to, &tl, &tp, &tpl, 0, NULL,
                                                              NULL),
                           CLATTN_NULL_POINTER, "merge ctx NULL");
    tu_expect_status(ctx, clattn_softmax_merge_enqueue(ctx, &to, NULL, &tp, &tpl, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "merge lse NULL");
    tu_expect_status(ctx, clattn_softmax_merge_enqueue(ctx, &to, &tl, &tp, &tpl, 1, NULL, NULL),
                     CLATTN_NULL_POINTER, "merge wait NULL");
    clattn_tensor bad = clattn_tensor_make(p, B, H, N - 1, D);
    tu_expect_status(ctx, clattn_softmax_merge_enqueue(ctx, &to, &tl, &bad, &tpl, 0, NULL, NULL),
                     CLATTN_SHAPE_MISMATCH, "merge part shape");
    clattn_tensor l16 = clattn_tensor_make_typed(pl, CLATTN_F16, B, H, N, 1);
    tu_expect_status(ctx, clattn_softmax_merge_enqueue(ctx, &to, &tl, &tp, &l16, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "merge f16 lse");
    tu_expect_status(ctx, clattn_softmax_merge_enqueue(ctx, &to, &tl, &to, &tpl, 0, NULL, NULL),
                     CLATTN_ALIASING, "merge part is out");
    clattn_tensor big = clattn_tensor_make(o, B, H, N + 4, D);
    clattn_tensor bigl = clattn_tensor_make(ls, B, H, N + 4, 1);
    clattn_status st = clattn_softmax_merge_enqueue(ctx, &big, &bigl, &tp, &tpl, 0, NULL, NULL);
    assert_int_not_equal(st, CLATTN_SUCCESS);
    tu_watch_check(&w, "refused merges");
    tu_watch_free(&w);
    /* position_offset beyond 2^30 */
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.position_offset = ((int64_t)1 << 30) + 1;
    clattn_plan *plan = NULL;
    const size_t qs[4] = {B, H, N, D};
    tu_expect_status(ctx, clattn_softmax_plan_create(ctx, &d, qs, qs, qs, &plan),
                     CLATTN_INVALID_ARGUMENT, "position_offset 2^30 + 1");
    assert_null(plan);
    /* a merge of a row with a -inf partner: the row as is */
    float minf[B * H * N];
    for (size_t i = 0; i < B * H * N; i++)
        minf[i] = -INFINITY;
    clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), pl, CL_TRUE, 0, sizeof minf, minf, 0,
                         NULL, NULL);
    tu_poison_buffer(ctx, p, sizeof(float) * B * H * N * D); /* NaN rows of weight 0 */
    assert_int_equal(clattn_softmax_merge_enqueue(ctx, &to, &tl, &tp, &tpl, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    float got[B * H * N * D], gl[B * H * N];
    tu_read(ctx, o, sizeof got, got);
    tu_read(ctx, ls, sizeof gl, gl);
    assert_memory_equal(got, x, sizeof got);
    assert_memory_equal(gl, l, sizeof gl);
    clReleaseMemObject(o), clReleaseMemObject(ls), clReleaseMemObject(p), clReleaseMemObject(pl);
    free(x), free(l);
}

static int setup(void **state)
{
    (void)state;
    ctx = tu_context();
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

/* "oclgrind": one tiny causal split (2 query x 3 key blocks, merged) on TILED_CPU and TILED_GPU,
 * outside cmocka, for tests/CMakeLists.txt's run under oclgrind --data-races (the blocks'
 * position offsets and the merge kernel's reads stay inside their tensors). */
static int run_oclgrind(void)
{
    ctx = tu_context();
    if (!ctx)
        return 1;
    const size_t q2[] = {4, 11}, k3[] = {3, 7, 11};
    split_case(CLATTN_SOFTMAX_TILED_CPU, "tiled_cpu", 11, 11, 1, 1, q2, 2, k3, 3, CLATTN_F32);
    split_case(CLATTN_SOFTMAX_TILED_GPU, "tiled_gpu", 11, 11, 1, 0, q2, 2, k3, 3, CLATTN_F16);
    clattn_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "oclgrind") == 0)
        return run_oclgrind();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_position_offset),
        cmocka_unit_test(test_split_merge),
        cmocka_unit_test(test_merge_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
