/* LSH attention's plan API on the device chosen by CLATTN_DEVICE: a baked plan enqueues without
 * program lookups or kernel creations, holds the rotations it was given (or drew) from the moment
 * it was made, both sorts give the same bits, every tuner candidate the same answer; every invalid
 * call of every entry point returns its status with a message and leaves the outputs
 * byte-identical; the blocking host call, desc NULL = defaults, out-of-order queues. Numerics
 * against the fp64 reference: test_lsh.c. */
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
#include "sched.h"
#include "test_util.h"
#include "reference/ref_softmax.h"
#include "reference/ref_lsh.h"

#define MARGIN 1e-4

static clattn_context *ctx;

/* Inputs and outputs of one shape, on the device. */
typedef struct io {
    size_t B, H, N, D, Dv, nh;
    size_t nq, nv, nl, nbk;
    float *q, *v;
    cl_mem bq, bv, bo, bl, bb;
    clattn_tensor tq, tv, to, tl, tb;
} io;

static void io_make(io *x, size_t B, size_t H, size_t N, size_t D, size_t Dv, size_t nh,
                    uint64_t seed)
{
    memset(x, 0, sizeof *x);
    x->B = B, x->H = H, x->N = N, x->D = D, x->Dv = Dv, x->nh = nh;
    x->nq = B * H * N * D;
    x->nv = B * H * N * Dv;
    x->nl = B * H * N;
    x->nbk = B * H * nh * N;
    x->q = tu_random(x->nq, 1.0f, &seed);
    x->v = tu_random(x->nv, 1.0f, &seed);
    x->bq = tu_buffer(ctx, x->nq * 4, x->q);
    x->bv = tu_buffer(ctx, x->nv * 4, x->v);
    x->bo = tu_buffer(ctx, x->nv * 4, NULL);
    x->bl = tu_buffer(ctx, x->nl * 4, NULL);
    x->bb = tu_buffer(ctx, x->nbk * 4, NULL);
    x->tq = clattn_tensor_make(x->bq, B, H, N, D);
    x->tv = clattn_tensor_make(x->bv, B, H, N, Dv);
    x->to = clattn_tensor_make(x->bo, B, H, N, Dv);
    x->tl = clattn_tensor_make(x->bl, B, H, N, 1);
    x->tb = clattn_tensor_make(x->bb, B, H, nh, N);
}

static void io_free(io *x)
{
    cl_mem all[] = {x->bq, x->bv, x->bo, x->bl, x->bb};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(x->q);
    free(x->v);
}

/* What one run wrote: out, lse and the buckets. */
typedef struct result {
    float *out, *lse;
    int32_t *bk;
} result;

static void result_free(result *r)
{
    free(r->out);
    free(r->lse);
    free(r->bk);
}

/* Poisons the outputs, enqueues the plan and reads everything back. */
static result run_plan(clattn_plan *plan, const io *x)
{
    result r = {tu_poisoned(x->nv), tu_poisoned(x->nl), malloc(x->nbk * 4 + 4)};
    assert_non_null(r.bk);
    tu_poison_buffer(ctx, x->bo, x->nv * 4);
    tu_poison_buffer(ctx, x->bl, x->nl * 4);
    tu_poison_buffer(ctx, x->bb, x->nbk * 4);
    cl_event ev = NULL;
    if (clattn_lsh_plan_enqueue(plan, &x->tq, &x->tv, &x->to, &x->tl, &x->tb, 0, NULL, &ev) !=
        CLATTN_SUCCESS)
        fail_msg("plan enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, x->bo, x->nv * 4, r.out);
    tu_read(ctx, x->bl, x->nl * 4, r.lse);
    tu_read(ctx, x->bb, x->nbk * 4, r.bk);
    return r;
}

static void expect_same(const result *a, const result *b, const io *x, const char *what)
{
    if (memcmp(a->out, b->out, x->nv * 4) != 0 || memcmp(a->lse, b->lse, x->nl * 4) != 0 ||
        memcmp(a->bk, b->bk, x->nbk * 4) != 0)
        fail_msg("%s: results differ", what);
}

/* The result against the fp64 reference computed from the device's buckets (which must match the
 * reference hash wherever it is clear-cut). */
static void check_reference(const result *r, const io *x, const float *rot,
                            const clattn_lsh_desc *d, const char *what)
{
    int32_t *want = malloc(x->nbk * sizeof *want);
    double *margin = malloc(x->nbk * sizeof *margin);
    float *ref = malloc(x->nv * 4), *rlse = malloc(x->nl * 4);
    assert_true(want && margin && ref && rlse);
    ref_lsh_hash(x->q, rot, want, margin, x->B, x->H, x->N, x->D, x->nh, d->n_buckets);
    for (size_t i = 0; i < x->nbk; i++)
        if (r->bk[i] != want[i] && margin[i] > MARGIN)
            fail_msg("%s: bucket %d, reference %d at %zu", what, r->bk[i], want[i], i);
    ref_lsh_attention(x->q, x->v, r->bk, ref, rlse, x->B, x->H, x->N, x->D, x->Dv, x->nh,
                      d->chunk_size, d->causal, d->attend_across_buckets);
    tu_check_close(r->out, ref, x->nv, TU_TOL_FP32, what);
    tu_check_close(r->lse, rlse, x->nl, TU_TOL_FP32, what);
    free(want);
    free(margin);
    free(ref);
    free(rlse);
}

static clattn_context_stats stats(void)
{
    clattn_context_stats s;
    assert_int_equal(clattn_context_get_stats(ctx, &s), CLATTN_SUCCESS);
    return s;
}

/* A baked plan enqueues many times with no program lookup and no kernel creation (counted by the
 * context), same bits every time, the same as the one-shot call; its info names what it made. */
static void test_plan_reuse(void **state)
{
    (void)state;
    io x;
    io_make(&x, 2, 2, 77, 16, 12, 3, 5);
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    d.n_hashes = 3;
    d.n_buckets = 8;
    d.chunk_size = 16;
    d.causal = 1;
    d.seed = 11;
    size_t qs[4] = {2, 2, 77, 16}, vs[4] = {2, 2, 77, 12};
    clattn_plan *plan = NULL;
    if (clattn_lsh_plan_create(ctx, &d, qs, vs, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_context_stats before = stats();
    result first = run_plan(plan, &x);
    /* Enqueues chained by events (each waits for the previous one): still nothing made. */
    cl_event prev = NULL;
    for (int i = 0; i < 8; i++) {
        cl_event ev = NULL;
        assert_int_equal(clattn_lsh_plan_enqueue(plan, &x.tq, &x.tv, &x.to, &x.tl, &x.tb,
                                                 prev ? 1 : 0, prev ? &prev : NULL, &ev),
                         CLATTN_SUCCESS);
        if (prev)
            clReleaseEvent(prev);
        prev = ev;
    }
    assert_int_equal(clWaitForEvents(1, &prev), CL_SUCCESS);
    clReleaseEvent(prev);
    result again = run_plan(plan, &x);
    clattn_context_stats after = stats();
    assert_int_equal(after.program_lookups, before.program_lookups);
    assert_int_equal(after.kernels_created, before.kernels_created);
    assert_int_equal(after.source_builds, before.source_builds);
    expect_same(&first, &again, &x, "the tenth enqueue of a plan");

    float *rot = malloc(3 * 16 * 4 * sizeof(float));
    assert_non_null(rot);
    assert_int_equal(clattn_lsh_rotations(3, 16, 8, 11, rot), CLATTN_SUCCESS);
    check_reference(&first, &x, rot, &d, "plan");

    /* The one-shot call is the same plan made, enqueued and released. */
    tu_poison_buffer(ctx, x.bo, x.nv * 4);
    assert_int_equal(clattn_lsh_enqueue(ctx, &d, &x.tq, &x.tv, &x.to, &x.tl, &x.tb, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    float *oneshot = malloc(x.nv * 4);
    assert_non_null(oneshot);
    tu_read(ctx, x.bo, x.nv * 4, oneshot);
    assert_memory_equal(oneshot, first.out, x.nv * 4);

    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    assert_int_equal(info.op, CLATTN_OP_LSH);
    assert_string_equal(info.algorithm_name, "counting_sort");
    /* The per-row attend, or the register-tiled one on GPU-like devices (rusticl). */
    assert_true(strcmp(info.variant, "clattn_lsh_attend") == 0 ||
                strcmp(info.variant, "clattn_lsh_attend_gpu") == 0);
    assert_non_null(strstr(info.build_options, "-DLSH_ROWS="));
    assert_non_null(strstr(info.launch, "sort=counting"));
    assert_int_equal(info.num_kernels, 8);
    assert_true(info.scratch_bytes > 0);
    for (unsigned i = 0; i < info.num_kernels; i++) {
        assert_string_equal(info.kernels[i].program, "lsh.cl");
        assert_string_equal(info.kernels[i].chosen_by, "scheduler");
        assert_non_null(strstr(info.kernels[i].name, "clattn_lsh_"));
        assert_true(info.kernels[i].local_size >= 1);
    }
    clattn_plan_destroy(plan);
    result_free(&first);
    result_free(&again);
    free(rot);
    free(oneshot);
    io_free(&x);
}

/* Rotations in the desc: given the values the seed draws, the same bits as drawing them; read
 * once, at plan creation (changing or freeing the array afterwards changes nothing); a struct
 * from before the field existed (shorter struct_size) draws from the seed. */
static void test_rotations_in_desc(void **state)
{
    (void)state;
    const size_t NH = 2, D = 12, NB = 10, N = 60;
    io x;
    io_make(&x, 1, 2, N, D, D, NH, 8);
    size_t qs[4] = {1, 2, N, D};
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    d.n_hashes = NH;
    d.n_buckets = NB;
    d.chunk_size = 8;
    d.seed = 77;
    clattn_plan *drawn = NULL, *given = NULL, *old = NULL;
    assert_int_equal(clattn_lsh_plan_create(ctx, &d, qs, qs, &drawn), CLATTN_SUCCESS);
    float *rot = malloc(NH * D * NB / 2 * sizeof(float));
    assert_non_null(rot);
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 77, rot), CLATTN_SUCCESS);
    clattn_lsh_desc dg = d;
    dg.seed = 12345; /* ignored when rotations are given */
    dg.rotations = rot;
    dg.rotations_shape[0] = NH;
    dg.rotations_shape[1] = D;
    dg.rotations_shape[2] = NB / 2;
    assert_int_equal(clattn_lsh_plan_create(ctx, &dg, qs, qs, &given), CLATTN_SUCCESS);
    clattn_lsh_desc dold = dg; /* an older caller's struct ends before `rotations` */
    dold.struct_size = offsetof(clattn_lsh_desc, rotations);
    dold.seed = 77;
    assert_int_equal(clattn_lsh_plan_create(ctx, &dold, qs, qs, &old), CLATTN_SUCCESS);
    for (size_t i = 0; i < NH * D * NB / 2; i++)
        rot[i] = -rot[i]; /* after plan creation: no effect on the plan */
    result a = run_plan(drawn, &x), b = run_plan(given, &x), c = run_plan(old, &x);
    expect_same(&a, &b, &x, "given rotations vs drawn");
    expect_same(&a, &c, &x, "short struct_size");
    for (size_t i = 0; i < NH * D * NB / 2; i++)
        rot[i] = -rot[i];
    check_reference(&b, &x, rot, &d, "given rotations");
    clattn_plan_destroy(drawn);
    clattn_plan_destroy(given);
    clattn_plan_destroy(old);
    result_free(&a);
    result_free(&b);
    result_free(&c);
    free(rot);
    io_free(&x);
}

/* The two sorts give the same stable order, so the same bits; every tuner candidate gives the
 * same buckets and the same answer within fp32 rounding. */
static void test_sorts_and_candidates(void **state)
{
    (void)state;
    const size_t N = 140, D = 20, NH = 2;
    io x;
    io_make(&x, 1, 3, N, D, D, NH, 21);
    size_t qs[4] = {1, 3, N, D};
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    d.n_hashes = NH;
    d.n_buckets = 12;
    d.chunk_size = 24;
    d.causal = 1;
    clattn_device_info dev;
    assert_int_equal(clattn_context_get_device_info(ctx, &dev), CLATTN_SUCCESS);
    clattn__lsh_problem p = {3, N, D, D, NH, 12, 24, 1, {0}};
    clattn__lsh_launch def, radix, cand[32];
    assert_int_equal(clattn__schedule_lsh(&dev, &p, &def, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(def.counting_sort, 1);
    assert_int_equal(
        clattn__lsh_launch_from(&dev, &p, def.rows, def.local_size, 0, &radix, NULL, 0),
        CLATTN_SUCCESS);
    clattn_plan *pd = NULL, *pr = NULL;
    assert_int_equal(clattn__lsh_plan_create_launch(ctx, &d, qs, qs, &def, &pd), CLATTN_SUCCESS);
    assert_int_equal(clattn__lsh_plan_create_launch(ctx, &d, qs, qs, &radix, &pr), CLATTN_SUCCESS);
    result a = run_plan(pd, &x), b = run_plan(pr, &x);
    expect_same(&a, &b, &x, "radix-sort block vs counting sort");
    float *rot = malloc(NH * D * 6 * sizeof(float));
    assert_non_null(rot);
    assert_int_equal(clattn_lsh_rotations(NH, D, 12, 0, rot), CLATTN_SUCCESS);
    check_reference(&a, &x, rot, &d, "forced default launch");
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(pr, &info), CLATTN_SUCCESS);
    assert_string_equal(info.algorithm_name, "radix_sort");
    assert_string_equal(info.kernels[0].chosen_by, "caller");
    int sort_kernels = 0;
    for (unsigned i = 0; i < info.num_kernels; i++)
        sort_kernels += strcmp(info.kernels[i].program, "sort.cl") == 0;
    assert_int_equal(sort_kernels, 3);

    size_t nc = clattn__lsh_candidates(&dev, &p, cand, 32);
    assert_true(nc >= 2);
    for (size_t i = 1; i < nc; i++) {
        clattn_plan *pc = NULL;
        if (clattn__lsh_plan_create_launch(ctx, &d, qs, qs, &cand[i], &pc) != CLATTN_SUCCESS)
            fail_msg("candidate %zu (rows %u wg %zu): %s", i, cand[i].rows, cand[i].local_size,
                     clattn_context_last_error(ctx));
        result c = run_plan(pc, &x);
        char what[96];
        snprintf(what, sizeof what, "candidate rows %u wg %zu", cand[i].rows, cand[i].local_size);
        assert_memory_equal(c.bk, a.bk, x.nbk * 4);
        tu_check_close(c.out, a.out, x.nv, (tu_tol){1e-6, 1e-5, 1e-6}, what);
        tu_check_close(c.lse, a.lse, x.nl, (tu_tol){1e-6, 1e-5, 1e-6}, what);
        result_free(&c);
        clattn_plan_destroy(pc);
    }
    /* A launch the device cannot take is refused. */
    clattn__lsh_launch bad = def;
    bad.rows = 3;
    clattn_plan *pb = NULL;
    tu_expect_status(ctx, clattn__lsh_plan_create_launch(ctx, &d, qs, qs, &bad, &pb),
                     CLATTN_UNSUPPORTED, "rows 3");
    assert_null(pb);
    tu_expect_status(ctx, clattn__lsh_plan_create_launch(ctx, &d, qs, qs, NULL, &pb),
                     CLATTN_NULL_POINTER, "launch NULL");
    clattn_plan_destroy(pd);
    clattn_plan_destroy(pr);
    result_free(&a);
    result_free(&b);
    free(rot);
    io_free(&x);
}

static void test_host(void **state)
{
    (void)state;
    const size_t B = 1, H = 1, N = 40, D = 12, Dv = 6, NH = 3, NB = 6;
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    size_t nq = B * H * N * D, nv = B * H * N * Dv, nl = B * H * N;
    float *q = malloc(nq * 4), *v = malloc(nv * 4), *rot = malloc(NH * D * NB / 2 * 4);
    float *out = tu_poisoned(nv), *lse = tu_poisoned(nl), *ref = malloc(nv * 4);
    float *rlse = malloc(nl * 4), *rot0 = malloc(4 * D * 32 * 4);
    int32_t *bk = malloc(B * H * NH * N * sizeof *bk), *bk0 = malloc(B * H * 4 * N * sizeof *bk0);
    double *margin = malloc(B * H * NH * N * sizeof *margin), *m0 = malloc(B * H * 4 * N * 8);
    assert_true(q && v && rot && ref && rlse && rot0 && bk && bk0 && margin && m0);
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 31, rot), CLATTN_SUCCESS);
    assert_int_equal(clattn_lsh_rotations(4, D, 64, 0, rot0), CLATTN_SUCCESS);
    /* The host path cannot return buckets, so the inputs are the first of a fixed series whose
     * hashes are all clear-cut under both rotation sets (no near-tie for fp32 to resolve
     * differently). */
    int clear = 0;
    for (uint64_t s0 = 5; s0 < 200 && !clear; s0++) {
        uint64_t seed = s0;
        ref_fill_uniform(q, nq, 1.0f, &seed);
        ref_fill_uniform(v, nv, 1.0f, &seed);
        ref_lsh_hash(q, rot, bk, margin, B, H, N, D, NH, NB);
        ref_lsh_hash(q, rot0, bk0, m0, B, H, N, D, 4, 64);
        clear = 1;
        for (size_t i = 0; i < B * H * NH * N; i++)
            clear &= margin[i] > MARGIN;
        for (size_t i = 0; i < B * H * 4 * N; i++)
            clear &= m0[i] > MARGIN;
    }
    assert_true(clear);
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    d.n_hashes = NH;
    d.n_buckets = NB;
    d.chunk_size = 20;
    d.causal = 1;
    d.seed = 31;
    ref_lsh_attention(q, v, bk, ref, rlse, B, H, N, D, Dv, NH, 20, 1, 0);
    /* Drawn from the seed, then the same rotations given in the desc. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nv; i++)
            out[i] = NAN;
        for (size_t i = 0; i < nl; i++)
            lse[i] = NAN;
        if (pass) {
            d.rotations = rot;
            d.rotations_shape[0] = NH;
            d.rotations_shape[1] = D;
            d.rotations_shape[2] = NB / 2;
        }
        if (clattn_lsh_host(ctx, &d, qs, vs, q, v, out, lse) != CLATTN_SUCCESS)
            fail_msg("host: %s", clattn_context_last_error(ctx));
        tu_check_close(out, ref, nv, TU_TOL_FP32, pass ? "host, rotations given" : "host, seeded");
        tu_check_close(lse, rlse, nl, TU_TOL_FP32, "host lse");
    }
    /* desc NULL: the defaults (4 hashes, 64 buckets, chunk 64, seed 0); lse not wanted. */
    ref_lsh_attention(q, v, bk0, ref, NULL, B, H, N, D, Dv, 4, 64, 0, 0);
    assert_int_equal(clattn_lsh_host(ctx, NULL, qs, vs, q, v, out, NULL), CLATTN_SUCCESS);
    tu_check_close(out, ref, nv, TU_TOL_FP32, "host defaults");

    /* On an out-of-order queue the host call reads back after the attention's event. */
    cl_command_queue oq = tu_try_out_of_order_queue(ctx);
    if (oq) {
        clattn_context *octx = NULL;
        assert_int_equal(clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                                       clattn_context_get_cl_device(ctx), oq,
                                                       &octx),
                         CLATTN_SUCCESS);
        for (int i = 0; i < 5; i++) {
            for (size_t j = 0; j < nv; j++)
                out[j] = NAN;
            if (clattn_lsh_host(octx, NULL, qs, vs, q, v, out, NULL) != CLATTN_SUCCESS)
                fail_msg("out-of-order host: %s", clattn_context_last_error(octx));
            tu_check_close(out, ref, nv, TU_TOL_FP32, "host, out-of-order queue");
        }
        clattn_context_destroy(octx);
        clReleaseCommandQueue(oq);
    } else {
        fprintf(stderr, "note: the device has no out-of-order queues: that part skipped\n");
    }
    free(q);
    free(v);
    free(rot);
    free(out);
    free(lse);
    free(ref);
    free(rlse);
    free(bk);
    free(margin);
    free(rot0);
    free(bk0);
    free(m0);
}

/* ---- invalid calls: the status with a message, and every output byte-identical ---- */

static void test_invalid_plan_create(void **state)
{
    (void)state;
    enum { N = 8, D = 4, DV = 6, NH = 2, NB = 4 };
    size_t qs[4] = {1, 2, N, D}, vs[4] = {1, 2, N, DV};
    float rot[NH * D * NB / 2];
    for (size_t i = 0; i < NH * D * NB / 2; i++)
        rot[i] = 0.25f;
    clattn_lsh_desc d, dd;
    clattn_lsh_desc_init(&d);
    d.n_hashes = NH;
    d.n_buckets = NB;
    d.chunk_size = 4;
    clattn_plan *plan = (clattn_plan *)&d; /* must come back NULL */
    clattn_context_stats before = stats();
#define CREATE(desc_, q_, v_) clattn_lsh_plan_create(ctx, (desc_), (q_), (v_), &plan)
#define REFUSED(call, want, what)                                                                  \
    do {                                                                                           \
        plan = (clattn_plan *)&d;                                                                  \
        tu_expect_status(ctx, (call), (want), (what));                                             \
        assert_null(plan);                                                                         \
    } while (0)
    tu_expect_status(NULL, clattn_lsh_plan_create(NULL, &d, qs, vs, &plan), CLATTN_NULL_POINTER,
                     "ctx NULL");
    tu_expect_status(ctx, clattn_lsh_plan_create(ctx, &d, qs, vs, NULL), CLATTN_NULL_POINTER,
                     "plan NULL");
    REFUSED(CREATE(&d, NULL, vs), CLATTN_NULL_POINTER, "q_shape NULL");
    REFUSED(CREATE(&d, qs, NULL), CLATTN_NULL_POINTER, "v_shape NULL");
    dd = d;
    dd.struct_size = 0;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_INVALID_ARGUMENT, "struct_size 0");
    dd.struct_size = 5000;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_INVALID_ARGUMENT, "struct_size 5000");
    static const struct {
        size_t nh, nb, chunk;
        int causal, across;
        const char *what;
    } bad[] = {
        {NH, 5, 4, 0, 0, "odd n_buckets"},
        {NH, 0, 4, 0, 0, "n_buckets 0"},
        {NH, CLATTN_LSH_MAX_BUCKETS + 2, 4, 0, 0, "n_buckets too big"},
        {0, NB, 4, 0, 0, "n_hashes 0"},
        {CLATTN_LSH_MAX_HASHES + 1, NB, 4, 0, 0, "n_hashes too big"},
        {NH, NB, 0, 0, 0, "chunk 0"},
        {NH, NB, 4, 2, 0, "causal 2"},
        {NH, NB, 4, -1, 0, "causal -1"},
        {NH, NB, 4, 0, 2, "attend_across_buckets 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dd = d;
        dd.n_hashes = bad[i].nh;
        dd.n_buckets = bad[i].nb;
        dd.chunk_size = bad[i].chunk;
        dd.causal = bad[i].causal;
        dd.attend_across_buckets = bad[i].across;
        REFUSED(CREATE(&dd, qs, vs), CLATTN_INVALID_ARGUMENT, bad[i].what);
    }
    size_t t[4];
    memcpy(t, qs, sizeof t);
    t[2] = 0;
    REFUSED(CREATE(&d, t, vs), CLATTN_INVALID_SHAPE, "zero length");
    memcpy(t, qs, sizeof t);
    t[3] = 257;
    REFUSED(CREATE(&d, t, vs), CLATTN_INVALID_SHAPE, "D 257");
    memcpy(t, vs, sizeof t);
    t[3] = 257;
    REFUSED(CREATE(&d, qs, t), CLATTN_INVALID_SHAPE, "Dv 257");
    memcpy(t, vs, sizeof t);
    t[2] = N - 1;
    REFUSED(CREATE(&d, qs, t), CLATTN_SHAPE_MISMATCH, "v length");
    memcpy(t, vs, sizeof t);
    t[1] = 1;
    REFUSED(CREATE(&d, qs, t), CLATTN_SHAPE_MISMATCH, "v heads");
    memcpy(t, qs, sizeof t);
    t[0] = (size_t)1 << 20;
    t[1] = (size_t)1 << 12;
    size_t tv[4] = {t[0], t[1], N, DV};
    REFUSED(CREATE(&d, t, tv), CLATTN_INVALID_SHAPE, "B x H beyond 2^31");
    dd = d;
    dd.rotations = rot;
    dd.rotations_shape[0] = NH;
    dd.rotations_shape[1] = D;
    dd.rotations_shape[2] = NB / 2 + 1;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_SHAPE_MISMATCH, "rotations columns");
    dd.rotations_shape[2] = NB / 2;
    dd.rotations_shape[1] = D + 1;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_SHAPE_MISMATCH, "rotations D");
    dd.rotations_shape[1] = D;
    dd.rotations_shape[0] = NH - 1;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_SHAPE_MISMATCH, "rotations hashes");
    dd.rotations_shape[0] = NH;
    rot[5] = INFINITY;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_INVALID_ARGUMENT, "rotation not finite");
    rot[5] = NAN;
    REFUSED(CREATE(&dd, qs, vs), CLATTN_INVALID_ARGUMENT, "rotation NaN");
#undef CREATE
#undef REFUSED
    /* Refused before any build: nothing fetched or created. */
    clattn_context_stats after = stats();
    assert_int_equal(after.kernels_created, before.kernels_created);
    assert_int_equal(after.program_lookups, before.program_lookups);
}

/* Every refusal of plan_enqueue and of the one-shot enqueue: outputs byte-identical, no event. */
static void test_invalid_enqueue(void **state)
{
    (void)state;
    enum { N = 8, D = 4, DV = 6, NH = 2, NB = 4, NO = 2 * N * DV };
    float ones[2 * N * DV], sev[NO];
    for (size_t i = 0; i < 2 * N * DV; i++)
        ones[i] = 0.5f;
    for (size_t i = 0; i < NO; i++)
        sev[i] = 7.0f;
    cl_mem bq = tu_buffer(ctx, sizeof ones, ones), bv = tu_buffer(ctx, sizeof ones, ones);
    cl_mem bo = tu_buffer(ctx, sizeof sev, sev), bl = tu_buffer(ctx, sizeof sev, sev);
    cl_mem bb = tu_buffer(ctx, sizeof sev, sev);
    clattn_tensor q = clattn_tensor_make(bq, 1, 2, N, D), v = clattn_tensor_make(bv, 1, 2, N, DV);
    clattn_tensor o = clattn_tensor_make(bo, 1, 2, N, DV), l = clattn_tensor_make(bl, 1, 2, N, 1);
    clattn_tensor b = clattn_tensor_make(bb, 1, 2, NH, N);
    size_t qs[4] = {1, 2, N, D}, vs[4] = {1, 2, N, DV};
    clattn_lsh_desc d, dd;
    clattn_lsh_desc_init(&d);
    d.n_hashes = NH;
    d.n_buckets = NB;
    d.chunk_size = 4;
    clattn_plan *plan = NULL, *other = NULL;
    assert_int_equal(clattn_lsh_plan_create(ctx, &d, qs, vs, &plan), CLATTN_SUCCESS);
    size_t sq[4] = {1, 2, N, D};
    assert_int_equal(clattn_softmax_plan_create(ctx, NULL, sq, sq, sq, &other), CLATTN_SUCCESS);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bo, sizeof sev, "out");
    tu_watch_buffer(&w, bl, sizeof sev, "lse");
    tu_watch_buffer(&w, bb, sizeof sev, "buckets");
    tu_watch_buffer(&w, bq, sizeof ones, "q");
    tu_watch_buffer(&w, bv, sizeof ones, "v");
    clattn_tensor t;
    cl_event ev = NULL;
#define RUN(q_, v_, o_, l_, b_)                                                                    \
    clattn_lsh_plan_enqueue(plan, (q_), (v_), (o_), (l_), (b_), 0, NULL, &ev)
#define REFUSED(call, want, what)                                                                  \
    do {                                                                                           \
        tu_expect_status(ctx, (call), (want), (what));                                             \
        assert_null(ev);                                                                           \
        tu_watch_check(&w, (what));                                                                \
    } while (0)
    tu_expect_status(NULL, clattn_lsh_plan_enqueue(NULL, &q, &v, &o, &l, &b, 0, NULL, &ev),
                     CLATTN_NULL_POINTER, "plan NULL");
    REFUSED(clattn_lsh_plan_enqueue(other, &q, &v, &o, &l, &b, 0, NULL, &ev),
            CLATTN_INVALID_ARGUMENT, "a softmax plan");
    REFUSED(RUN(NULL, &v, &o, &l, &b), CLATTN_NULL_POINTER, "q NULL");
    REFUSED(RUN(&q, NULL, &o, &l, &b), CLATTN_NULL_POINTER, "v NULL");
    REFUSED(RUN(&q, &v, NULL, &l, &b), CLATTN_NULL_POINTER, "out NULL");
    REFUSED(clattn_lsh_plan_enqueue(plan, &q, &v, &o, &l, &b, 1, NULL, &ev), CLATTN_NULL_POINTER,
            "wait NULL");
    t = q;
    t.buffer = NULL;
    REFUSED(RUN(&t, &v, &o, &l, &b), CLATTN_NULL_POINTER, "q buffer NULL");
    t = b;
    t.buffer = NULL;
    REFUSED(RUN(&q, &v, &o, &l, &t), CLATTN_NULL_POINTER, "buckets buffer NULL");
    t = q;
    t.shape[2] = N - 1;
    REFUSED(RUN(&t, &v, &o, &l, &b), CLATTN_SHAPE_MISMATCH, "q not the plan's shape");
    t = v;
    t.shape[3] = DV - 1;
    REFUSED(RUN(&q, &t, &o, &l, &b), CLATTN_SHAPE_MISMATCH, "v not the plan's shape");
    t = o;
    t.shape[3] = DV - 1;
    REFUSED(RUN(&q, &v, &t, &l, &b), CLATTN_SHAPE_MISMATCH, "out Dv");
    t = l;
    t.shape[3] = 2;
    REFUSED(RUN(&q, &v, &o, &t, &b), CLATTN_SHAPE_MISMATCH, "lse shape");
    t = b;
    t.shape[2] = NH + 1;
    REFUSED(RUN(&q, &v, &o, &l, &t), CLATTN_SHAPE_MISMATCH, "buckets shape");
    t = v;
    t.offset = 1000;
    REFUSED(RUN(&q, &t, &o, &l, &b), CLATTN_BUFFER_TOO_SMALL, "v beyond its buffer");
    t = o;
    t.offset = 1;
    REFUSED(RUN(&q, &v, &t, &l, &b), CLATTN_BUFFER_TOO_SMALL, "out beyond its buffer");
    t = o;
    t.strides[2] = 0;
    REFUSED(RUN(&q, &v, &t, &l, &b), CLATTN_ALIASING, "out zero stride");
    t = clattn_tensor_make(bv, 1, 2, N, DV);
    REFUSED(RUN(&q, &v, &t, &l, &b), CLATTN_ALIASING, "out aliases v");
    t = clattn_tensor_make(bo, 1, 2, N, 1);
    REFUSED(RUN(&q, &v, &o, &t, &b), CLATTN_ALIASING, "lse aliases out");
    t = clattn_tensor_make(bq, 1, 2, NH, N);
    REFUSED(RUN(&q, &v, &o, &l, &t), CLATTN_ALIASING, "buckets alias q");
    t = clattn_tensor_make(bl, 1, 2, NH, N);
    REFUSED(RUN(&q, &v, &o, &l, &t), CLATTN_ALIASING, "buckets alias lse");
#undef RUN
    /* The one-shot call: its own refusals, then the plan's. */
    tu_expect_status(NULL, clattn_lsh_enqueue(NULL, &d, &q, &v, &o, &l, &b, 0, NULL, &ev),
                     CLATTN_NULL_POINTER, "one-shot ctx NULL");
    REFUSED(clattn_lsh_enqueue(ctx, &d, NULL, &v, &o, &l, &b, 0, NULL, &ev), CLATTN_NULL_POINTER,
            "one-shot q NULL");
    REFUSED(clattn_lsh_enqueue(ctx, &d, &q, &v, &o, &l, &b, 2, NULL, &ev), CLATTN_NULL_POINTER,
            "one-shot wait NULL");
    dd = d;
    dd.causal = 2;
    REFUSED(clattn_lsh_enqueue(ctx, &dd, &q, &v, &o, &l, &b, 0, NULL, &ev),
            CLATTN_INVALID_ARGUMENT, "one-shot causal 2");
    dd = d;
    dd.attend_across_buckets = 2;
    REFUSED(clattn_lsh_enqueue(ctx, &dd, &q, &v, &o, &l, &b, 0, NULL, &ev),
            CLATTN_INVALID_ARGUMENT, "one-shot attend_across_buckets 2");
    dd = d;
    dd.n_buckets = 7;
    REFUSED(clattn_lsh_enqueue(ctx, &dd, &q, &v, &o, &l, &b, 0, NULL, &ev),
            CLATTN_INVALID_ARGUMENT, "one-shot odd buckets");
    t = o;
    t.shape[2] = N + 1;
    REFUSED(clattn_lsh_enqueue(ctx, &d, &q, &v, &t, &l, &b, 0, NULL, &ev),
            CLATTN_SHAPE_MISMATCH, "one-shot out length");
    t = clattn_tensor_make(bq, 1, 2, N, DV);
    REFUSED(clattn_lsh_enqueue(ctx, &d, &q, &v, &t, &l, &b, 0, NULL, &ev), CLATTN_ALIASING,
            "one-shot out aliases q");
#undef REFUSED
    tu_watch_free(&w);

    /* A NULL desc means the defaults: the same bits as an initialised desc. */
    clattn_lsh_desc def;
    clattn_lsh_desc_init(&def);
    float a[NO], c[NO];
    assert_int_equal(clattn_lsh_enqueue(ctx, NULL, &q, &v, &o, NULL, NULL, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    tu_read(ctx, bo, sizeof a, a);
    tu_poison_buffer(ctx, bo, sizeof a);
    assert_int_equal(clattn_lsh_enqueue(ctx, &def, &q, &v, &o, NULL, NULL, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    tu_read(ctx, bo, sizeof c, c);
    assert_memory_equal(a, c, sizeof a);

    clattn_plan_destroy(plan);
    clattn_plan_destroy(other);
    cl_mem all[] = {bq, bv, bo, bl, bb};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
}

/* The host call's refusals leave the caller's arrays untouched. */
static void test_invalid_host(void **state)
{
    (void)state;
    enum { N = 8, D = 4, DV = 6, NO = 2 * N * DV };
    float ones[2 * N * DV], out[NO], lse[2 * N];
    for (size_t i = 0; i < 2 * N * DV; i++)
        ones[i] = 0.5f;
    for (size_t i = 0; i < NO; i++)
        out[i] = 7.0f;
    for (size_t i = 0; i < 2 * N; i++)
        lse[i] = 7.0f;
    size_t qs[4] = {1, 2, N, D}, vs[4] = {1, 2, N, DV}, bad[4] = {1, 2, N + 1, DV};
    clattn_lsh_desc d, dd;
    clattn_lsh_desc_init(&d);
    d.n_hashes = 2;
    d.n_buckets = 4;
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_host(&w, out, sizeof out, "out");
    tu_watch_host(&w, lse, sizeof lse, "lse");
#define REFUSED(call, want, what)                                                                  \
    do {                                                                                           \
        tu_expect_status(ctx, (call), (want), (what));                                             \
        tu_watch_check(&w, (what));                                                                \
    } while (0)
    tu_expect_status(NULL, clattn_lsh_host(NULL, &d, qs, vs, ones, ones, out, lse),
                     CLATTN_NULL_POINTER, "host ctx NULL");
    tu_watch_check(&w, "host ctx NULL");
    REFUSED(clattn_lsh_host(ctx, &d, NULL, vs, ones, ones, out, lse), CLATTN_NULL_POINTER,
            "host q_shape NULL");
    REFUSED(clattn_lsh_host(ctx, &d, qs, vs, ones, NULL, out, lse), CLATTN_NULL_POINTER,
            "host v NULL");
    REFUSED(clattn_lsh_host(ctx, &d, qs, vs, ones, ones, NULL, lse), CLATTN_NULL_POINTER,
            "host out NULL");
    REFUSED(clattn_lsh_host(ctx, &d, qs, bad, ones, ones, out, lse), CLATTN_SHAPE_MISMATCH,
            "host shapes");
    dd = d;
    dd.n_buckets = 3;
    REFUSED(clattn_lsh_host(ctx, &dd, qs, vs, ones, ones, out, lse), CLATTN_INVALID_ARGUMENT,
            "host odd buckets");
    dd = d;
    dd.causal = 2;
    REFUSED(clattn_lsh_host(ctx, &dd, qs, vs, ones, ones, out, lse), CLATTN_INVALID_ARGUMENT,
            "host causal 2");
    dd = d;
    dd.attend_across_buckets = 2;
    REFUSED(clattn_lsh_host(ctx, &dd, qs, vs, ones, ones, out, lse), CLATTN_INVALID_ARGUMENT,
            "host attend_across_buckets 2");
    dd = d;
    dd.rotations = ones;
    dd.rotations_shape[0] = 2;
    dd.rotations_shape[1] = D;
    dd.rotations_shape[2] = 3;
    REFUSED(clattn_lsh_host(ctx, &dd, qs, vs, ones, ones, out, lse), CLATTN_SHAPE_MISMATCH,
            "host rotations shape");
#undef REFUSED
    tu_watch_free(&w);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
        return -1;
    }
    return 0;
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
        cmocka_unit_test(test_plan_reuse),
        cmocka_unit_test(test_rotations_in_desc),
        cmocka_unit_test(test_sorts_and_candidates),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_invalid_plan_create),
        cmocka_unit_test(test_invalid_enqueue),
        cmocka_unit_test(test_invalid_host),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
