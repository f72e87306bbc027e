/* test_softmax_validation.c - every invalid path of softmax attention's entry points
 * (clattn_softmax_plan_create, _plan_enqueue, _enqueue, _host) on a real device: the
 * documented status comes back, the message (the context's, or the thread's where there is no
 * context) is the call's own, and no output has been touched (tests/test_util.h's tu_watch: every
 * buffer and host array compared byte for byte). desc NULL means the defaults everywhere.
 * clattn_softmax_schedule's invalid paths are checked device-free in test_sched_softmax.c.
 *
 * The device comes from CLATTN_DEVICE (or the default order). A missing device is a failure. */
#include <limits.h>
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
#include "test_util.h"
#include "reference/ref_softmax.h"

/* Base problem: grouped-query attention, two query heads per key head. */
enum { B = 2, HQ = 4, HK = 2, NQ = 8, NK = 12, D = 16 };
#define Q_ELEMS ((size_t)B * HQ * NQ * D)
#define K_ELEMS ((size_t)B * HK * NK * D)
#define L_ELEMS ((size_t)B * HQ * NQ)
/* fp32 kernels against the fp64 reference on values of order 1 (DESIGN.md section 4). */
#define TOL ((tu_tol){1e-5, 1e-4, 1e-5})

typedef struct fixture {
    clattn_context *ctx;
    cl_mem q, k, v, out, lse;
    float *hq, *hk, *hv;
    float *ro, *rl;    /* reference out and lse of the default desc (non-causal, 1/sqrt(D)) */
    clattn_plan *plan; /* AUTO plan for the base shapes */
    size_t qs[4], ks[4];
    tu_watch w; /* q, k, v, out, lse, then any buffer a test adds */
} fixture;

/* Runs `call` (stale messages set first), expecting `want`, a fresh message on the context
 * (on_ctx) or the thread, and every watched buffer unchanged. */
static void expect(fixture *f, clattn_status got, clattn_status want, int on_ctx,
                   const char *call, int line)
{
    char what[400];
    snprintf(what, sizeof what, "line %d: %.360s", line, call);
    tu_expect_fresh_status(on_ctx ? f->ctx : NULL, got, want, what);
    tu_watch_check(&f->w, what);
}

#define EXPECT(f, want, on_ctx, call)                                                              \
    do {                                                                                           \
        tu_stale_messages((f)->ctx);                                                               \
        clattn_status st_ = (call);                                                                \
        expect((f), st_, (want), (on_ctx), #call, __LINE__);                                       \
    } while (0)

/* A refused plan_create: the status and message as EXPECT, and *plan set to NULL. */
#define EXPECT_PLAN(f, want, on_ctx, ctx_, desc_, q_, k_, v_)                                      \
    do {                                                                                           \
        clattn_plan *p_ = (clattn_plan *)(uintptr_t)1;                                             \
        EXPECT(f, want, on_ctx,                                                                    \
               clattn_softmax_plan_create((ctx_), (desc_), (q_), (k_), (v_), &p_));                \
        assert_null(p_);                                                                           \
    } while (0)

typedef struct views {
    clattn_tensor q, k, v, out, lse;
} views;

static views base_views(const fixture *f)
{
    views w;
    w.q = clattn_tensor_make(f->q, B, HQ, NQ, D);
    w.k = clattn_tensor_make(f->k, B, HK, NK, D);
    w.v = clattn_tensor_make(f->v, B, HK, NK, D);
    w.out = clattn_tensor_make(f->out, B, HQ, NQ, D);
    w.lse = clattn_tensor_make(f->lse, B, HQ, NQ, 1);
    return w;
}

/* The plan and one-shot calls on views w (no wait list, no event). */
#define PLAN_ENQ(p, w)                                                                             \
    clattn_softmax_plan_enqueue((p), &(w).q, &(w).k, &(w).v, &(w).out, &(w).lse, 0, NULL, NULL)
#define ONE_SHOT(f, d, w)                                                                          \
    clattn_softmax_enqueue((f)->ctx, (d), &(w).q, &(w).k, &(w).v, &(w).out, &(w).lse, 0, NULL,    \
                           NULL)

/* Checks both the plan path and the one-shot path on the same views. */
#define EXPECT_ENQ(f, want, w)                                                                     \
    do {                                                                                           \
        EXPECT(f, want, 1, PLAN_ENQ((f)->plan, w));                                                \
        EXPECT(f, want, 1, ONE_SHOT(f, NULL, w));                                                  \
    } while (0)

static void write_at(fixture *f, cl_mem m, size_t offset_bytes, const void *src, size_t bytes)
{
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(f->ctx), m, CL_TRUE,
                                          offset_bytes, bytes, src, 0, NULL, NULL),
                     CL_SUCCESS);
}

/* out (at element out_off of buffer out) and lse (likewise) hold the default desc's result. */
static void check_result(fixture *f, cl_mem out, size_t out_off, cl_mem lse, size_t lse_off,
                         const char *what)
{
    float *got = malloc((out_off + Q_ELEMS) * sizeof(float));
    float *gl = malloc((lse_off + L_ELEMS) * sizeof(float));
    assert_true(got && gl);
    tu_read(f->ctx, out, (out_off + Q_ELEMS) * sizeof(float), got);
    tu_read(f->ctx, lse, (lse_off + L_ELEMS) * sizeof(float), gl);
    tu_check_close(got + out_off, f->ro, Q_ELEMS, TOL, what);
    tu_check_close(gl + lse_off, f->rl, L_ELEMS, TOL, what);
    free(got);
    free(gl);
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    clattn_status st = clattn_context_create(NULL, &f->ctx);
    if (st != CLATTN_SUCCESS) {
        print_error("no device: clattn_context_create(NULL) = %s: %s (CLATTN_DEVICE=%s)\n",
                    clattn_status_string(st), clattn_context_last_error(NULL),
                    getenv("CLATTN_DEVICE") ? getenv("CLATTN_DEVICE") : "(unset)");
        free(f);
        return -1;
    }
    clattn_device_info info;
    clattn_context_get_device_info(f->ctx, &info);
    print_message("device: %s / %s\n", info.platform_name, info.name);

    size_t qs[4] = {B, HQ, NQ, D}, ks[4] = {B, HK, NK, D};
    memcpy(f->qs, qs, sizeof qs);
    memcpy(f->ks, ks, sizeof ks);
    uint64_t seed = 12345;
    f->hq = tu_random(Q_ELEMS, 1.0f, &seed);
    f->hk = tu_random(K_ELEMS, 1.0f, &seed);
    f->hv = tu_random(K_ELEMS, 1.0f, &seed);
    f->ro = malloc(Q_ELEMS * sizeof(float));
    f->rl = malloc(L_ELEMS * sizeof(float));
    if (!f->ro || !f->rl)
        return -1;
    ref_softmax(f->hq, f->hk, f->hv, f->ro, f->rl, B, HQ, HK, NQ, NK, D, 1.0 / sqrt((double)D),
                0, NULL);
    *state = f;
    f->q = tu_buffer(f->ctx, Q_ELEMS * sizeof(float), f->hq);
    f->k = tu_buffer(f->ctx, K_ELEMS * sizeof(float), f->hk);
    f->v = tu_buffer(f->ctx, K_ELEMS * sizeof(float), f->hv);
    f->out = tu_buffer(f->ctx, Q_ELEMS * sizeof(float), NULL);
    f->lse = tu_buffer(f->ctx, L_ELEMS * sizeof(float), NULL);
    st = clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, f->ks, &f->plan);
    if (st != CLATTN_SUCCESS) {
        print_error("base plan: %s\n", clattn_context_last_error(f->ctx));
        return -1;
    }
    tu_watch_init(&f->w, f->ctx);
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    if (!f)
        return 0;
    tu_watch_free(&f->w);
    clattn_plan_destroy(f->plan);
    cl_mem all[] = {f->q, f->k, f->v, f->out, f->lse};
    for (size_t i = 0; i < 5; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clattn_context_destroy(f->ctx);
    free(f->hq);
    free(f->hk);
    free(f->hv);
    free(f->ro);
    free(f->rl);
    free(f);
    return 0;
}

/* Before each test: NaNs in out and lse, all five buffers watched. */
static int setup(void **state)
{
    fixture *f = *state;
    tu_watch_free(&f->w);
    tu_watch_init(&f->w, f->ctx);
    tu_poison_buffer(f->ctx, f->out, Q_ELEMS * sizeof(float));
    tu_poison_buffer(f->ctx, f->lse, L_ELEMS * sizeof(float));
    tu_watch_buffer(&f->w, f->q, Q_ELEMS * sizeof(float), "q");
    tu_watch_buffer(&f->w, f->k, K_ELEMS * sizeof(float), "k");
    tu_watch_buffer(&f->w, f->v, K_ELEMS * sizeof(float), "v");
    tu_watch_buffer(&f->w, f->out, Q_ELEMS * sizeof(float), "out");
    tu_watch_buffer(&f->w, f->lse, L_ELEMS * sizeof(float), "lse");
    return 0;
}

/* ---- plan creation ---------------------------------------------------------------------- */

static void test_plan_create_null_pointers(void **state)
{
    fixture *f = *state;
    EXPECT_PLAN(f, CLATTN_NULL_POINTER, 0, NULL, NULL, f->qs, f->ks, f->ks);
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, f->ks, NULL));
    EXPECT_PLAN(f, CLATTN_NULL_POINTER, 1, f->ctx, NULL, NULL, f->ks, f->ks);
    EXPECT_PLAN(f, CLATTN_NULL_POINTER, 1, f->ctx, NULL, f->qs, NULL, f->ks);
    EXPECT_PLAN(f, CLATTN_NULL_POINTER, 1, f->ctx, NULL, f->qs, f->ks, NULL);
}

static void test_plan_create_bad_shapes(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        size_t q[4], k[4], v[4];
        for (int which = 0; which < 3; which++) {
            memcpy(q, f->qs, sizeof q);
            memcpy(k, f->ks, sizeof k);
            memcpy(v, f->ks, sizeof v);
            (which == 0 ? q : which == 1 ? k : v)[i] = 0;
            EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, q, k, v);
        }
    }
    size_t q257[4] = {B, HQ, NQ, 513}, k257[4] = {B, HK, NK, 513};
    EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, q257, k257, k257);
    size_t q3[4] = {B, 3, NQ, D};
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, q3, f->ks, f->ks);
    size_t k3[4] = {B, 3, NK, D};
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, f->qs, k3, k3);
    size_t qb[4] = {B + 1, HQ, NQ, D};
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, qb, f->ks, f->ks);
    /* v may differ from k in its head dim only (Dv != D: issue 16), up to 512 */
    size_t vn[4] = {B, HK, NK + 1, D}, vd[4] = {B, HK, NK, 513}, vh[4] = {B, 1, NK, D};
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, f->qs, f->ks, vn);
    EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, f->qs, f->ks, vd);
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, f->qs, f->ks, vh);
    size_t qd[4] = {B, HQ, NQ, D + 1};
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, qd, f->ks, f->ks);
#if SIZE_MAX > 0xffffffffu
    /* B * Hq = 2^64 wraps to 0 in size_t: must still be rejected, not allocated */
    size_t qw[4] = {(size_t)1 << 32, (size_t)1 << 32, NQ, D};
    size_t kw[4] = {(size_t)1 << 32, (size_t)1 << 32, NK, D};
    EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, qw, kw, kw);
#endif
}

/* Every out-of-range descriptor field, on the plan, the one-shot and the host paths. */
static const int bad_algos[] = {5, -1, 1000};
static const int bad_flags[] = {2, -1, INT_MAX};

static void bad_descs(clattn_softmax_desc *out, size_t *n)
{
    const float bad_scales[] = {NAN, INFINITY, -INFINITY};
    size_t k = 0;
    for (size_t i = 0; i < 3; i++) {
        clattn_softmax_desc_init(&out[k]);
        out[k++].scale = bad_scales[i];
        clattn_softmax_desc_init(&out[k]);
        out[k++].algorithm = (clattn_softmax_algo)bad_algos[i];
        clattn_softmax_desc_init(&out[k]);
        out[k++].causal = bad_flags[i];
    }
    /* struct_size: not set, one byte short of the smallest accepted, beyond any version */
    const size_t sizes[] = {0, offsetof(clattn_softmax_desc, scale) + sizeof(float) - 1, 4097};
    for (size_t i = 0; i < 3; i++) {
        clattn_softmax_desc_init(&out[k]);
        out[k++].struct_size = sizes[i];
    }
    *n = k;
}
#define NBAD 12

static void test_plan_create_bad_desc(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d[NBAD];
    size_t n;
    bad_descs(d, &n);
    assert_int_equal(n, NBAD);
    for (size_t i = 0; i < n; i++)
        EXPECT_PLAN(f, CLATTN_INVALID_ARGUMENT, 1, f->ctx, &d[i], f->qs, f->ks, f->ks);
}

/* An older caller's shorter desc: the fields beyond its struct_size are not read (defaults). */
static void test_plan_create_short_desc(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.struct_size = offsetof(clattn_softmax_desc, scale) + sizeof(float);
    d.causal = 2; /* beyond struct_size: never read */
    d.algorithm = (clattn_softmax_algo)99;
    clattn_plan *p = NULL;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS, "plan with the smallest struct_size");
    views w = base_views(f);
    tu_expect_status(f->ctx, PLAN_ENQ(p, w), CLATTN_SUCCESS, "enqueue of that plan");
    check_result(f, f->out, 0, f->lse, 0, "short desc: the defaults (non-causal)");
    clattn_plan_destroy(p);
}

static void test_plan_create_key_lengths_too_small(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    cl_mem kl = tu_buffer(f->ctx, (B - 1) * sizeof(int32_t), NULL); /* one short */
    clattn_softmax_desc_init(&d);
    d.key_lengths = kl;
    EXPECT_PLAN(f, CLATTN_BUFFER_TOO_SMALL, 1, f->ctx, &d, f->qs, f->ks, f->ks);
    clReleaseMemObject(kl);

    kl = tu_buffer(f->ctx, B * sizeof(int32_t), NULL); /* right size, offset pushes past the end */
    d.key_lengths = kl;
    d.key_lengths_offset = 1;
    EXPECT_PLAN(f, CLATTN_BUFFER_TOO_SMALL, 1, f->ctx, &d, f->qs, f->ks, f->ks);
    /* the one-shot path checks it too, before touching out */
    views w = base_views(f);
    EXPECT(f, CLATTN_BUFFER_TOO_SMALL, 1, ONE_SHOT(f, &d, w));
    d.key_lengths_offset = SIZE_MAX - 1; /* offset + B wraps */
    EXPECT_PLAN(f, CLATTN_BUFFER_TOO_SMALL, 1, f->ctx, &d, f->qs, f->ks, f->ks);
    clReleaseMemObject(kl);
}

/* A desc refused for another field (causal = 2) while it carries key_lengths: the refused plan
 * must not release the caller's buffer (it never retained it); once crashed in plan_destroy. */
static void test_refused_desc_keeps_key_lengths(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    cl_mem kl = tu_buffer(f->ctx, B * sizeof(int32_t), NULL);
    cl_uint before = 0, after = 0;
    assert_int_equal(clGetMemObjectInfo(kl, CL_MEM_REFERENCE_COUNT, sizeof before, &before, NULL),
                     CL_SUCCESS);
    clattn_softmax_desc_init(&d);
    d.key_lengths = kl;
    d.causal = 2;
    EXPECT_PLAN(f, CLATTN_INVALID_ARGUMENT, 1, f->ctx, &d, f->qs, f->ks, f->ks);
    d.causal = 0;
    d.algorithm = (clattn_softmax_algo)99;
    EXPECT_PLAN(f, CLATTN_INVALID_ARGUMENT, 1, f->ctx, &d, f->qs, f->ks, f->ks);
    assert_int_equal(clGetMemObjectInfo(kl, CL_MEM_REFERENCE_COUNT, sizeof after, &after, NULL),
                     CL_SUCCESS);
    assert_int_equal(after, before);
    clReleaseMemObject(kl);
}

/* ---- desc NULL means the defaults, on every entry point --------------------------------- */

static void test_desc_null_is_defaults(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    clattn_plan *p = NULL;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS, "plan with desc_init's defaults");
    clattn_plan_info a, b;
    assert_int_equal(clattn_plan_get_info(f->plan, &a), CLATTN_SUCCESS);
    assert_int_equal(clattn_plan_get_info(p, &b), CLATTN_SUCCESS);
    assert_int_equal(a.op, CLATTN_OP_SOFTMAX);
    assert_int_equal(a.algorithm, b.algorithm);
    assert_string_equal(a.launch, b.launch);
    assert_string_equal(a.build_options, b.build_options);
    clattn_plan_destroy(p);

    clattn_device_info dev;
    clattn_context_get_device_info(f->ctx, &dev);
    assert_int_equal(clattn_softmax_schedule(&dev, NULL, f->qs, f->ks, &a), CLATTN_SUCCESS);
    assert_int_equal(clattn_softmax_schedule(&dev, &d, f->qs, f->ks, &b), CLATTN_SUCCESS);
    assert_int_equal(a.algorithm, b.algorithm);
    assert_string_equal(a.build_options, b.build_options);

    views w = base_views(f);
    tu_expect_status(f->ctx, ONE_SHOT(f, NULL, w), CLATTN_SUCCESS, "one-shot, desc NULL");
    check_result(f, f->out, 0, f->lse, 0, "one-shot, desc NULL");

    float *out = tu_poisoned(Q_ELEMS), *lse = tu_poisoned(L_ELEMS);
    tu_expect_status(f->ctx,
                     clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv,
                                         NULL, out, lse),
                     CLATTN_SUCCESS, "host, desc NULL");
    tu_check_close(out, f->ro, Q_ELEMS, TOL, "host, desc NULL: out");
    tu_check_close(lse, f->rl, L_ELEMS, TOL, "host, desc NULL: lse");
    free(out);
    free(lse);
}

/* ---- enqueue: pointers, descriptors, shapes, extents ------------------------------------ */

static void test_enqueue_null_pointers(void **state)
{
    fixture *f = *state;
    views w = base_views(f);
    EXPECT(f, CLATTN_NULL_POINTER, 0,
           clattn_softmax_plan_enqueue(NULL, &w.q, &w.k, &w.v, &w.out, NULL, 0, NULL, NULL));
    EXPECT(f, CLATTN_NULL_POINTER, 0,
           clattn_softmax_enqueue(NULL, NULL, &w.q, &w.k, &w.v, &w.out, NULL, 0, NULL, NULL));
    const clattn_tensor *ts[4] = {&w.q, &w.k, &w.v, &w.out};
    for (int i = 0; i < 4; i++) {
        const clattn_tensor *a[4] = {ts[0], ts[1], ts[2], ts[3]};
        a[i] = NULL;
        EXPECT(f, CLATTN_NULL_POINTER, 1,
               clattn_softmax_plan_enqueue(f->plan, a[0], a[1], a[2], a[3], &w.lse, 0, NULL,
                                           NULL));
        EXPECT(f, CLATTN_NULL_POINTER, 1,
               clattn_softmax_enqueue(f->ctx, NULL, a[0], a[1], a[2], a[3], &w.lse, 0, NULL,
                                      NULL));
    }
    /* a NULL cl_mem inside a descriptor */
    for (int i = 0; i < 5; i++) {
        views x = base_views(f);
        clattn_tensor *t[5] = {&x.q, &x.k, &x.v, &x.out, &x.lse};
        t[i]->buffer = NULL;
        EXPECT_ENQ(f, CLATTN_NULL_POINTER, x);
    }
    /* a wait list promised but missing */
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse, 1, NULL,
                                       NULL));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_enqueue(f->ctx, NULL, &w.q, &w.k, &w.v, &w.out, &w.lse, 2, NULL,
                                  NULL));
}

static void test_enqueue_bad_desc(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d[NBAD];
    size_t n;
    bad_descs(d, &n);
    views w = base_views(f);
    for (size_t i = 0; i < n; i++)
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1, ONE_SHOT(f, &d[i], w));
}

/* A plan of another operator is refused by softmax's enqueue, which names what it got. */
static void test_enqueue_other_operators_plan(void **state)
{
    fixture *f = *state;
    size_t s[4] = {1, 1, NQ, D};
    clattn_plan *lin = NULL;
    tu_expect_status(f->ctx, clattn_linear_plan_create(f->ctx, NULL, s, s, s, &lin),
                     CLATTN_SUCCESS, "a linear-attention plan");
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(lin, &info), CLATTN_SUCCESS);
    assert_int_equal(info.op, CLATTN_OP_LINEAR);
    views w = base_views(f);
    EXPECT(f, CLATTN_INVALID_ARGUMENT, 1, PLAN_ENQ(lin, w));
    if (!strstr(clattn_context_last_error(f->ctx), "linear"))
        fail_msg("the message does not name the plan's operator: %s",
                 clattn_context_last_error(f->ctx));
    clattn_plan_destroy(lin);
}

static void test_enqueue_zero_shapes(void **state)
{
    fixture *f = *state;
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 4; i++) {
            views w = base_views(f);
            clattn_tensor *ts[5] = {&w.q, &w.k, &w.v, &w.out, &w.lse};
            ts[t]->shape[i] = 0;
            EXPECT_ENQ(f, CLATTN_INVALID_SHAPE, w);
        }
}

static void test_enqueue_shape_mismatch(void **state)
{
    fixture *f = *state;
    views w;
    /* q / out against the plan (and, one-shot, out against q) */
    w = base_views(f), w.q.shape[2] = NQ - 1;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    w = base_views(f), w.out.shape[2] = NQ - 1;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    w = base_views(f), w.out.shape[3] = D / 2;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    w = base_views(f), w.out.shape[1] = HQ / 2;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    /* batch */
    w = base_views(f), w.q.shape[0] = 1, w.out.shape[0] = 1, w.lse.shape[0] = 1;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    /* k / v */
    w = base_views(f), w.k.shape[2] = NK - 1;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    w = base_views(f), w.v.shape[3] = D / 2;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    /* heads not a multiple */
    w = base_views(f), w.k.shape[1] = 3, w.v.shape[1] = 3;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    /* lse must be [B, Hq, Nq, 1] */
    w = base_views(f), w.lse.shape[3] = 2;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    w = base_views(f), w.lse.shape[2] = NQ - 1;
    EXPECT_ENQ(f, CLATTN_SHAPE_MISMATCH, w);
    /* D = 513 everywhere: beyond the limit for the one-shot call, not the plan's shape for it */
    w = base_views(f);
    w.q.shape[3] = w.k.shape[3] = w.v.shape[3] = w.out.shape[3] = 513;
    EXPECT(f, CLATTN_INVALID_SHAPE, 1, ONE_SHOT(f, NULL, w));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1, PLAN_ENQ(f->plan, w));
}

static void test_enqueue_buffer_too_small(void **state)
{
    fixture *f = *state;
    for (int t = 0; t < 5; t++) {
        views w = base_views(f);
        clattn_tensor *ts[5] = {&w.q, &w.k, &w.v, &w.out, &w.lse};
        ts[t]->offset = 1; /* every buffer is exactly the dense size */
        EXPECT_ENQ(f, CLATTN_BUFFER_TOO_SMALL, w);

        w = base_views(f);
        ts[t]->strides[2] += 1; /* rows further apart than the buffer allows */
        EXPECT_ENQ(f, CLATTN_BUFFER_TOO_SMALL, w);

        w = base_views(f);
        ts[t]->strides[0] *= 2;
        EXPECT_ENQ(f, CLATTN_BUFFER_TOO_SMALL, w);
    }
}

static void test_enqueue_size_overflow(void **state)
{
    fixture *f = *state;
    for (int t = 0; t < 5; t++) {
        views w = base_views(f);
        clattn_tensor *ts[5] = {&w.q, &w.k, &w.v, &w.out, &w.lse};
        ts[t]->strides[1] = SIZE_MAX; /* (shape - 1) * stride overflows */
        EXPECT_ENQ(f, CLATTN_SIZE_OVERFLOW, w);

        w = base_views(f);
        ts[t]->strides[0] = SIZE_MAX / 2 + 1; /* fits, but offset + steps then overflow */
        ts[t]->strides[1] = SIZE_MAX / 4;
        EXPECT_ENQ(f, CLATTN_SIZE_OVERFLOW, w);

        w = base_views(f);
        ts[t]->offset = SIZE_MAX - 2;
        EXPECT_ENQ(f, CLATTN_SIZE_OVERFLOW, w);

        w = base_views(f);
        ts[t]->strides[0] = SIZE_MAX / 4; /* elements fit in size_t, bytes (x4) do not */
        EXPECT_ENQ(f, CLATTN_SIZE_OVERFLOW, w);
    }
}

/* ---- aliasing ---------------------------------------------------------------------------- */

static void test_enqueue_aliasing_same_buffer(void **state)
{
    fixture *f = *state;
    views w;
    w = base_views(f), w.out.buffer = f->q; /* out is q */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.buffer = f->out; /* lse inside out */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.buffer = f->out, w.lse.offset = Q_ELEMS - L_ELEMS; /* its tail */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.buffer = f->k; /* lse inside k */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.buffer = f->v, w.lse.offset = K_ELEMS - L_ELEMS;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.buffer = f->q, w.lse.offset = 100;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    /* out overlapping k: give k a view inside out's buffer */
    w = base_views(f), w.k.buffer = f->out;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    /* zero strides in outputs */
    for (int i = 0; i < 4; i++) {
        w = base_views(f), w.out.strides[i] = 0;
        EXPECT_ENQ(f, CLATTN_ALIASING, w);
    }
    for (int i = 0; i < 3; i++) {
        w = base_views(f), w.lse.strides[i] = 0;
        EXPECT_ENQ(f, CLATTN_ALIASING, w);
    }
    /* an output overlapping itself with non-zero strides: rows closer than D, heads closer than
     * their rows, lse rows of one head sharing elements */
    w = base_views(f), w.out.strides[2] = D / 2;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.out.strides[1] = (NQ - 1) * D;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w = base_views(f), w.lse.strides[1] = NQ - 1;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
}

static size_t base_align_bytes(fixture *f)
{
    cl_uint bits = 0;
    clGetDeviceInfo(clattn_context_get_cl_device(f->ctx), CL_DEVICE_MEM_BASE_ADDR_ALIGN,
                    sizeof bits, &bits, NULL);
    size_t a = bits / 8;
    return a < 4 ? 4 : a;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static cl_mem sub_buffer(cl_mem parent, size_t origin, size_t size)
{
    cl_buffer_region r = {origin, size};
    cl_int err;
    cl_mem m = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
    if (err != CL_SUCCESS)
        fail_msg("clCreateSubBuffer(%zu, %zu): %d", origin, size, (int)err);
    return m;
}

/* One buffer holding q and out (and lse) at disjoint ranges is fine; overlapping ones are not,
 * also when out is a sub-buffer of q's buffer. */
static void test_aliasing_ranges_and_sub_buffers(void **state)
{
    fixture *f = *state;
    size_t align = base_align_bytes(f) / sizeof(float); /* in elements */
    /* [ pad | q | pad | out | pad | lse ], each start aligned for sub-buffers, the first pad at
     * least as long as q so that a view can end inside q from before it */
    size_t q_at = round_up(Q_ELEMS, align), out_at = round_up(q_at + Q_ELEMS, align);
    size_t lse_at = round_up(out_at + Q_ELEMS, align);
    size_t total = lse_at + round_up(L_ELEMS, align);
    cl_mem big = tu_buffer(f->ctx, total * sizeof(float), NULL);
    tu_poison_buffer(f->ctx, big, total * sizeof(float));
    write_at(f, big, q_at * sizeof(float), f->hq, Q_ELEMS * sizeof(float));
    tu_watch_buffer(&f->w, big, total * sizeof(float), "big");

    views w = base_views(f);
    w.q.buffer = big, w.q.offset = q_at;
    /* overlapping views of the same buffer */
    w.out.buffer = big, w.out.offset = q_at + Q_ELEMS - 1; /* last element of q */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    w.out.offset = q_at - Q_ELEMS + 1; /* its last element is q's first */
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    /* out a sub-buffer of big overlapping q's range */
    cl_mem sub_q_overlap = sub_buffer(big, q_at * sizeof(float), Q_ELEMS * sizeof(float));
    w.out.buffer = sub_q_overlap, w.out.offset = 0;
    EXPECT_ENQ(f, CLATTN_ALIASING, w);
    /* and the other way round: q is the sub-buffer, out a view of the parent */
    views w2 = base_views(f);
    w2.q.buffer = sub_q_overlap;
    w2.out.buffer = big, w2.out.offset = q_at;
    EXPECT_ENQ(f, CLATTN_ALIASING, w2);
    /* lse a sub-buffer inside q's range */
    cl_mem sub_l = sub_buffer(big, q_at * sizeof(float), round_up(L_ELEMS, align) *
                                                             sizeof(float));
    views w3 = base_views(f);
    w3.q.buffer = big, w3.q.offset = q_at;
    w3.lse.buffer = sub_l;
    EXPECT_ENQ(f, CLATTN_ALIASING, w3);

    /* disjoint ranges: accepted, and the result is right */
    views ok = base_views(f);
    ok.q.buffer = big, ok.q.offset = q_at;
    ok.out.buffer = big, ok.out.offset = out_at;
    ok.lse.buffer = big, ok.lse.offset = lse_at;
    tu_expect_status(f->ctx, PLAN_ENQ(f->plan, ok), CLATTN_SUCCESS, "disjoint views");
    check_result(f, big, out_at, big, lse_at, "disjoint views of one buffer");
    /* disjoint sub-buffers of one parent: accepted too */
    cl_mem sub_o = sub_buffer(big, out_at * sizeof(float), Q_ELEMS * sizeof(float));
    tu_poison_buffer(f->ctx, big, total * sizeof(float));
    write_at(f, big, q_at * sizeof(float), f->hq, Q_ELEMS * sizeof(float));
    ok.q.buffer = sub_q_overlap, ok.q.offset = 0;
    ok.out.buffer = sub_o, ok.out.offset = 0;
    tu_expect_status(f->ctx, ONE_SHOT(f, NULL, ok), CLATTN_SUCCESS, "disjoint sub-buffers");
    check_result(f, sub_o, 0, big, lse_at, "disjoint sub-buffers");

    clReleaseMemObject(sub_o);
    clReleaseMemObject(sub_l);
    clReleaseMemObject(sub_q_overlap);
    clReleaseMemObject(big);
}

static void test_aliasing_key_lengths(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_plan *p = NULL;
    cl_mem kl = tu_buffer(f->ctx, Q_ELEMS * sizeof(float), NULL);
    int32_t lens[B] = {NK, NK / 2};
    write_at(f, kl, 0, lens, sizeof lens);
    tu_watch_buffer(&f->w, kl, Q_ELEMS * sizeof(float), "key_lengths");
    clattn_softmax_desc_init(&d);
    d.key_lengths = kl;
    assert_int_equal(clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS);
    views w = base_views(f);
    w.out.buffer = kl; /* out over the key lengths */
    EXPECT(f, CLATTN_ALIASING, 1, PLAN_ENQ(p, w));
    w = base_views(f);
    w.lse.buffer = kl;
    EXPECT(f, CLATTN_ALIASING, 1, PLAN_ENQ(p, w));
    clattn_plan_destroy(p);
    clReleaseMemObject(kl);
}

/* ---- algorithm-specific ------------------------------------------------------------------ */

static void test_naive_needs_unit_strides(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_plan *p = NULL;
    clattn_softmax_desc_init(&d);
    d.algorithm = CLATTN_SOFTMAX_NAIVE;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS, "naive plan");
    cl_mem wide = tu_buffer(f->ctx, 2 * Q_ELEMS * sizeof(float), NULL);
    tu_poison_buffer(f->ctx, wide, 2 * Q_ELEMS * sizeof(float));
    tu_watch_buffer(&f->w, wide, 2 * Q_ELEMS * sizeof(float), "wide");
    /* every other element along D, each tensor in turn */
    for (int t = 0; t < 4; t++) {
        views w = base_views(f);
        clattn_tensor *ts[4] = {&w.q, &w.k, &w.v, &w.out};
        clattn_tensor *x = ts[t];
        x->buffer = wide;
        for (int i = 0; i < 4; i++)
            x->strides[i] *= 2;
        EXPECT(f, CLATTN_UNSUPPORTED, 1, PLAN_ENQ(p, w));
        EXPECT(f, CLATTN_UNSUPPORTED, 1, ONE_SHOT(f, &d, w));
    }
    /* lse rows every other element */
    views w = base_views(f);
    w.lse.buffer = wide;
    for (int i = 0; i < 3; i++)
        w.lse.strides[i] *= 2;
    EXPECT(f, CLATTN_UNSUPPORTED, 1, PLAN_ENQ(p, w));
    EXPECT(f, CLATTN_UNSUPPORTED, 1, ONE_SHOT(f, &d, w));
    clattn_plan_destroy(p);
    clReleaseMemObject(wide);
}

/* ---- the blocking host call -------------------------------------------------------------- */

static void test_host_invalid(void **state)
{
    fixture *f = *state;
    float *out = tu_poisoned(Q_ELEMS), *lse = tu_poisoned(L_ELEMS);
    tu_watch_host(&f->w, out, Q_ELEMS * sizeof(float), "host out");
    tu_watch_host(&f->w, lse, L_ELEMS * sizeof(float), "host lse");
    const int32_t bad[][B] = {{-1, NK}, {NK, NK + 1}, {INT32_MIN, 0}, {0, INT32_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
               clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv,
                                   bad[i], out, lse));
    /* NULL pointers */
    EXPECT(f, CLATTN_NULL_POINTER, 0,
           clattn_softmax_host(NULL, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    const size_t *shapes[3] = {f->qs, f->ks, f->ks};
    for (int i = 0; i < 3; i++) {
        const size_t *s[3] = {shapes[0], shapes[1], shapes[2]};
        s[i] = NULL;
        EXPECT(f, CLATTN_NULL_POINTER, 1,
               clattn_softmax_host(f->ctx, NULL, s[0], s[1], s[2], f->hq, f->hk, f->hv, NULL,
                                   out, lse));
    }
    const float *ins[3] = {f->hq, f->hk, f->hv};
    for (int i = 0; i < 3; i++) {
        const float *x[3] = {ins[0], ins[1], ins[2]};
        x[i] = NULL;
        EXPECT(f, CLATTN_NULL_POINTER, 1,
               clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, x[0], x[1], x[2], NULL,
                                   out, lse));
    }
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL,
                               NULL, lse));
    /* shapes */
    size_t q257[4] = {B, HQ, NQ, 513}, k257[4] = {B, HK, NK, 513}, q0[4] = {B, HQ, 0, D};
    size_t q3[4] = {B, 3, NQ, D};
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_host(f->ctx, NULL, q257, k257, k257, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_host(f->ctx, NULL, q0, f->ks, f->ks, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_host(f->ctx, NULL, q3, f->ks, f->ks, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    /* descriptors */
    clattn_softmax_desc d[NBAD];
    size_t n;
    bad_descs(d, &n);
    for (size_t i = 0; i < n; i++)
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
               clattn_softmax_host(f->ctx, &d[i], f->qs, f->ks, f->ks, f->hq, f->hk, f->hv,
                                   NULL, out, lse));
    free(out);
    free(lse);
}

/* The fixture itself is sound: the valid call succeeds and writes the right values, so the
 * "untouched" checks above are not vacuous. */
static void test_valid_call_writes_output(void **state)
{
    fixture *f = *state;
    views w = base_views(f);
    tu_expect_status(f->ctx, PLAN_ENQ(f->plan, w), CLATTN_SUCCESS, "valid enqueue");
    check_result(f, f->out, 0, f->lse, 0, "valid enqueue");
    /* with a wait list (the event of a non-blocking write of NaNs) and an event out.
     * Not a user event: PoCL's "basic" device deadlocks in clSetUserEventStatus here. */
    float *junk = tu_poisoned(Q_ELEMS);
    cl_event written = NULL, done = NULL;
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(f->ctx), f->out, CL_FALSE,
                                          0, Q_ELEMS * sizeof(float), junk, 0, NULL, &written),
                     CL_SUCCESS);
    tu_expect_status(f->ctx,
                     clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse, 1,
                                                 &written, &done),
                     CLATTN_SUCCESS, "enqueue behind a write");
    assert_non_null(done);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    clReleaseEvent(done);
    clReleaseEvent(written);
    free(junk);
    check_result(f, f->out, 0, f->lse, 0, "enqueue behind a write");
}

/* ---- issue 16: the desc's options ------------------------------------------------------- */

/* The message of the last refused call (the context's, or the thread's) names `field`. */
static void expect_names(fixture *f, int on_ctx, const char *field, int line)
{
    const char *msg = clattn_context_last_error(on_ctx ? f->ctx : NULL);
    if (!msg || !strstr(msg, field))
        fail_msg("line %d: the message does not name %s: %s", line, field, msg ? msg : "(null)");
}

/* A refused desc on every entry point: plan_create, the one-shot enqueue, the host call and
 * clattn_softmax_schedule (which leaves *info untouched); each message names `field`. */
static void expect_desc_everywhere(fixture *f, const clattn_softmax_desc *d, clattn_status want,
                                   const char *field, int line)
{
    EXPECT_PLAN(f, want, 1, f->ctx, d, f->qs, f->ks, f->ks);
    expect_names(f, 1, field, line);
    views w = base_views(f);
    EXPECT(f, want, 1, ONE_SHOT(f, d, w));
    expect_names(f, 1, field, line);
    float *out = tu_poisoned(Q_ELEMS), *lse = tu_poisoned(L_ELEMS);
    tu_watch hw;
    tu_watch_init(&hw, f->ctx);
    tu_watch_host(&hw, out, Q_ELEMS * sizeof(float), "host out");
    tu_watch_host(&hw, lse, L_ELEMS * sizeof(float), "host lse");
    EXPECT(f, want, 1,
           clattn_softmax_host(f->ctx, d, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    expect_names(f, 1, field, line);
    tu_watch_check(&hw, field);
    tu_watch_free(&hw);
    free(out);
    free(lse);
}
#define EXPECT_DESC(f, d, want, field) expect_desc_everywhere((f), (d), (want), (field), __LINE__)

/* Fields refused by the desc checks alone (also by clattn_softmax_schedule: no buffers needed). */
static void test_options_bad_fields(void **state)
{
    fixture *f = *state;
    clattn_device_info dev;
    clattn_context_get_device_info(f->ctx, &dev);
    cl_mem any = tu_buffer(f->ctx, 64 * sizeof(float), NULL);
    tu_watch_buffer(&f->w, any, 64 * sizeof(float), "option buffer");
    clattn_softmax_desc d[32];
    const char *field[32];
    size_t n = 0;
    const int bad_windows[] = {-2, INT_MIN};
    for (int i = 0; i < 2; i++) {
        clattn_softmax_desc_init(&d[n]), d[n].window_left = bad_windows[i], field[n++] = "window";
        clattn_softmax_desc_init(&d[n]), d[n].window_right = bad_windows[i], field[n++] = "window";
    }
    const float bad_caps[] = {-1.0f, NAN, INFINITY, -INFINITY, -0.5f};
    for (int i = 0; i < 5; i++)
        clattn_softmax_desc_init(&d[n]), d[n].softcap = bad_caps[i], field[n++] = "softcap";
    const int bad_alibi[] = {2, -1};
    for (int i = 0; i < 2; i++)
        clattn_softmax_desc_init(&d[n]), d[n].alibi = bad_alibi[i], field[n++] = "alibi";
    clattn_softmax_desc_init(&d[n]), d[n].alibi_slopes = any, field[n++] = "alibi_slopes";
    const unsigned bad_blocks[] = {0, 8, 48, 512, 17};
    for (int i = 0; i < 5; i++)
        for (int side = 0; side < 2; side++) {
            clattn_softmax_desc_init(&d[n]);
            d[n].block_mask = clattn_tensor_make_typed(any, CLATTN_U8, 1, 1, 1, 1);
            d[n].block_q = side ? 16 : bad_blocks[i];
            d[n].block_k = side ? bad_blocks[i] : 16;
            field[n++] = "block_q";
        }
    for (size_t i = 0; i < n; i++) {
        EXPECT_DESC(f, &d[i], CLATTN_INVALID_ARGUMENT, field[i]);
        clattn_plan_info info, before;
        memset(&info, 0x5a, sizeof info);
        before = info;
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 0,
               clattn_softmax_schedule(&dev, &d[i], f->qs, f->ks, &info));
        expect_names(f, 0, field[i], __LINE__);
        assert_memory_equal(&info, &before, sizeof info);
    }
    /* Block sizes are ignored without a block mask; window -1 and softcap 0 are "off". */
    clattn_softmax_desc ok;
    clattn_softmax_desc_init(&ok);
    ok.block_q = 8, ok.block_k = 0, ok.window_left = -1, ok.softcap = 0.0f;
    clattn_plan_info info;
    assert_int_equal(clattn_softmax_schedule(&dev, &ok, f->qs, f->ks, &info), CLATTN_SUCCESS);
    clattn_plan *p = NULL;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &ok, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS, "block sizes without a block mask");
    clattn_plan_destroy(p);
    clReleaseMemObject(any);
}

/* Element types, broadcast shapes and views beyond their buffers. */
static void test_options_bad_tensors(void **state)
{
    fixture *f = *state;
    const size_t nqk = (size_t)NQ * NK;
    cl_mem fb = tu_buffer(f->ctx, nqk * sizeof(float), NULL); /* exactly one [NQ, NK] float */
    cl_mem ub = tu_buffer(f->ctx, nqk, NULL);                 /* exactly one [NQ, NK] u8 */
    cl_mem vb = tu_buffer(f->ctx, HQ * sizeof(float), NULL);  /* exactly HQ floats */
    cl_mem small = tu_buffer(f->ctx, (HQ - 1) * sizeof(float), NULL);
    tu_watch_buffer(&f->w, fb, nqk * sizeof(float), "bias buffer");
    tu_watch_buffer(&f->w, ub, nqk, "mask buffer");
    tu_watch_buffer(&f->w, vb, HQ * sizeof(float), "vector buffer");
    clattn_softmax_desc d;
    /* element types */
    clattn_softmax_desc_init(&d);
    d.bias = clattn_tensor_make_typed(ub, CLATTN_U8, 1, 1, NQ, NK);
    EXPECT_DESC(f, &d, CLATTN_DTYPE_MISMATCH, "bias");
    clattn_softmax_desc_init(&d);
    d.mask = clattn_tensor_make(fb, 1, 1, NQ, NK); /* f32 */
    EXPECT_DESC(f, &d, CLATTN_DTYPE_MISMATCH, "mask");
    d.mask = clattn_tensor_make_typed(fb, CLATTN_F16, 1, 1, NQ, NK);
    EXPECT_DESC(f, &d, CLATTN_DTYPE_MISMATCH, "mask");
    clattn_softmax_desc_init(&d);
    d.block_mask = clattn_tensor_make(fb, 1, 1, 1, 1), d.block_q = d.block_k = 16;
    EXPECT_DESC(f, &d, CLATTN_DTYPE_MISMATCH, "block_mask");
    /* shapes that do not broadcast to [B, HQ, NQ, NK] (blocks: [B, HQ, 1, 1] at 16 x 16) */
    const size_t bad_shapes[][4] = {{1, 1, NQ, NK + 1}, {1, 1, NQ - 1, NK}, {1, 2, NQ, NK},
                                    {B + 1, 1, 1, NK},  {1, 1, 2 * NQ, NK}, {1, 1, NQ, 2}};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof bad_shapes[0]; i++) {
        const size_t *s = bad_shapes[i];
        cl_mem big = tu_buffer(f->ctx, 4 * B * HQ * NQ * NK * sizeof(float), NULL);
        clattn_softmax_desc_init(&d);
        d.bias = clattn_tensor_make(big, s[0], s[1], s[2], s[3]);
        EXPECT_DESC(f, &d, CLATTN_SHAPE_MISMATCH, "bias");
        clattn_softmax_desc_init(&d);
        d.mask = clattn_tensor_make_typed(big, CLATTN_U8, s[0], s[1], s[2], s[3]);
        EXPECT_DESC(f, &d, CLATTN_SHAPE_MISMATCH, "mask");
        clReleaseMemObject(big);
    }
    clattn_softmax_desc_init(&d);
    d.block_mask = clattn_tensor_make_typed(ub, CLATTN_U8, 1, 1, 2, 1), d.block_q = 16;
    d.block_k = 16; /* NQ 8 at 16 rows a block: one block row, not two */
    EXPECT_DESC(f, &d, CLATTN_SHAPE_MISMATCH, "block_mask");
    d.block_mask = clattn_tensor_make_typed(ub, CLATTN_U8, 1, 1, 1, 1), d.block_k = 32;
    d.block_mask.shape[3] = 2;
    EXPECT_DESC(f, &d, CLATTN_SHAPE_MISMATCH, "block_mask");
    /* views beyond their buffers: an offset, padded rows, a larger shape, a half bias */
    clattn_softmax_desc_init(&d);
    d.bias = clattn_tensor_make(fb, 1, 1, NQ, NK), d.bias.offset = 1;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "bias");
    d.bias.offset = 0, d.bias.strides[2] = NK + 1;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "bias");
    d.bias = clattn_tensor_make(fb, 1, HQ, NQ, NK);
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "bias");
    d.bias = clattn_tensor_make_typed(fb, CLATTN_BF16, B, 1, NQ, NK), d.bias.offset = 1;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "bias");
    clattn_softmax_desc_init(&d);
    d.mask = clattn_tensor_make_typed(ub, CLATTN_U8, B, 1, NQ, NK);
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "mask");
    d.mask = clattn_tensor_make_typed(ub, CLATTN_U8, 1, 1, NQ, NK), d.mask.offset = nqk;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "mask");
    clattn_softmax_desc_init(&d);
    d.block_mask = clattn_tensor_make_typed(ub, CLATTN_U8, 1, 1, 1, 1), d.block_q = 16;
    d.block_k = 16, d.block_mask.offset = nqk;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "block_mask");
    /* slopes and sinks: HQ floats from their offsets */
    clattn_softmax_desc_init(&d);
    d.alibi = 1, d.alibi_slopes = small;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "alibi_slopes");
    d.alibi_slopes = vb, d.alibi_slopes_offset = 1;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "alibi_slopes");
    d.alibi_slopes_offset = SIZE_MAX - 1;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "alibi_slopes");
    clattn_softmax_desc_init(&d);
    d.sinks = small;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "sinks");
    d.sinks = vb, d.sinks_offset = 2;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "sinks");
    d.sinks_offset = SIZE_MAX / 2;
    EXPECT_DESC(f, &d, CLATTN_BUFFER_TOO_SMALL, "sinks");
    cl_mem all[] = {fb, ub, vb, small};
    for (size_t i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
}

/* An option buffer overlapping out or lse: ALIASING on the plan's enqueue and the one-shot call
 * (NAIVE plans: every algorithm validates the same way before anything is enqueued). */
static void test_options_aliasing(void **state)
{
    fixture *f = *state;
    cl_mem x = tu_buffer(f->ctx, Q_ELEMS * sizeof(float), NULL); /* as large as out */
    tu_poison_buffer(f->ctx, x, Q_ELEMS * sizeof(float));
    tu_watch_buffer(&f->w, x, Q_ELEMS * sizeof(float), "shared buffer");
    static const char *const names[5] = {"bias", "mask", "block_mask", "alibi_slopes", "sinks"};
    for (int opt = 0; opt < 5; opt++)
        for (int to_lse = 0; to_lse < 2; to_lse++) {
            clattn_softmax_desc d;
            clattn_softmax_desc_init(&d);
            d.algorithm = CLATTN_SOFTMAX_NAIVE;
            /* the option at the end of x, so that it meets lse's range too */
            size_t tail = to_lse ? L_ELEMS - 4 : Q_ELEMS - 4;
            if (opt == 0)
                d.bias = clattn_tensor_make(x, 1, 1, 1, 1), d.bias.offset = tail;
            if (opt == 1)
                d.mask = clattn_tensor_make_typed(x, CLATTN_U8, 1, 1, 1, 1), d.mask.offset = tail * 4;
            if (opt == 2) {
                d.block_mask = clattn_tensor_make_typed(x, CLATTN_U8, 1, 1, 1, 1);
                d.block_mask.offset = tail * 4, d.block_q = d.block_k = 16;
            }
            if (opt == 3)
                d.alibi = 1, d.alibi_slopes = x, d.alibi_slopes_offset = tail;
            if (opt == 4)
                d.sinks = x, d.sinks_offset = tail;
            clattn_plan *p = NULL;
            tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                             CLATTN_SUCCESS, names[opt]);
            views w = base_views(f);
            if (to_lse)
                w.lse.buffer = x;
            else
                w.out.buffer = x;
            EXPECT(f, CLATTN_ALIASING, 1, PLAN_ENQ(p, w));
            expect_names(f, 1, names[opt], __LINE__);
            EXPECT(f, CLATTN_ALIASING, 1, ONE_SHOT(f, &d, w));
            expect_names(f, 1, names[opt], __LINE__);
            clattn_plan_destroy(p);
        }
    clReleaseMemObject(x);
}

/* Head dims: D and Dv up to 512 accepted (scheduled), 513 refused; k and v must agree in batch. */
static void test_options_head_dims(void **state)
{
    fixture *f = *state;
    clattn_device_info dev;
    clattn_context_get_device_info(f->ctx, &dev);
    clattn_plan_info info;
    size_t q512[4] = {B, HQ, NQ, 512}, k512[4] = {B, HK, NK, 512};
    assert_int_equal(clattn_softmax_schedule(&dev, NULL, q512, k512, &info), CLATTN_SUCCESS);
    size_t q513[4] = {B, HQ, NQ, 513}, k513[4] = {B, HK, NK, 513};
    EXPECT(f, CLATTN_INVALID_SHAPE, 0, clattn_softmax_schedule(&dev, NULL, q513, k513, &info));
    size_t v513[4] = {B, HK, NK, 513}, vb[4] = {B - 1, HK, NK, D}, v1[4] = {B, HK, NK, 1};
    EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, f->qs, f->ks, v513);
    EXPECT_PLAN(f, CLATTN_INVALID_SHAPE, 1, f->ctx, NULL, q513, k513, v1);
    EXPECT_PLAN(f, CLATTN_SHAPE_MISMATCH, 1, f->ctx, NULL, f->qs, f->ks, vb);
    float *out = tu_poisoned(Q_ELEMS * 40), *lse = tu_poisoned(L_ELEMS);
    tu_watch hw;
    tu_watch_init(&hw, f->ctx);
    tu_watch_host(&hw, out, Q_ELEMS * 40 * sizeof(float), "host out");
    tu_watch_host(&hw, lse, L_ELEMS * sizeof(float), "host lse");
    float *big = tu_poisoned(K_ELEMS * 40);
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, v513, f->hq, f->hk, big, NULL, out,
                               lse));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, vb, f->hq, f->hk, f->hv, NULL, out,
                               lse));
    /* a Dv plan's enqueue: v and out with D instead of Dv */
    size_t v40[4] = {B, HK, NK, 40}; /* test_softmax_opts's Dv: the same NAIVE kernel */
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.algorithm = CLATTN_SOFTMAX_NAIVE;
    clattn_plan *p = NULL;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, v40, &p),
                     CLATTN_SUCCESS, "Dv 40 plan");
    views w = base_views(f);
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1, PLAN_ENQ(p, w));
    clattn_plan_destroy(p);
    tu_watch_check(&hw, "host calls with bad head dims");
    tu_watch_free(&hw);
    free(out);
    free(lse);
    free(big);
}

/* clattn_softmax_schedule with every option given (valid): a plan for the device, as without. */
static void test_options_schedule(void **state)
{
    fixture *f = *state;
    clattn_device_info dev;
    clattn_context_get_device_info(f->ctx, &dev);
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.bias = clattn_tensor_make(f->q, 1, 1, NQ, NK);
    d.mask = clattn_tensor_make_typed(f->k, CLATTN_U8, B, 1, 1, NK);
    d.block_mask = clattn_tensor_make_typed(f->v, CLATTN_U8, 1, 1, 1, 1);
    d.block_q = 16, d.block_k = 256;
    d.alibi = 1, d.alibi_slopes = f->q;
    d.window_left = 3, d.window_right = 0, d.causal = 1;
    d.softcap = 30.0f, d.sinks = f->k;
    for (int a = 0; a <= 3; a++) {
        d.algorithm = (clattn_softmax_algo)a;
        clattn_plan_info info;
        memset(&info, 0, sizeof info);
        tu_expect_status(NULL, clattn_softmax_schedule(&dev, &d, f->qs, f->ks, &info),
                         CLATTN_SUCCESS, "schedule with every option");
        assert_int_equal(info.op, CLATTN_OP_SOFTMAX);
        if (a != 0)
            assert_int_equal(info.algorithm, a);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, setup)
    const struct CMUnitTest tests[] = {
        T(test_plan_create_null_pointers),
        T(test_plan_create_bad_shapes),
        T(test_plan_create_bad_desc),
        T(test_plan_create_short_desc),
        T(test_plan_create_key_lengths_too_small),
        T(test_refused_desc_keeps_key_lengths),
        T(test_desc_null_is_defaults),
        T(test_enqueue_null_pointers),
        T(test_enqueue_bad_desc),
        T(test_enqueue_other_operators_plan),
        T(test_enqueue_zero_shapes),
        T(test_enqueue_shape_mismatch),
        T(test_enqueue_buffer_too_small),
        T(test_enqueue_size_overflow),
        T(test_enqueue_aliasing_same_buffer),
        T(test_aliasing_ranges_and_sub_buffers),
        T(test_aliasing_key_lengths),
        T(test_naive_needs_unit_strides),
        T(test_host_invalid),
        T(test_valid_call_writes_output),
        T(test_options_bad_fields),
        T(test_options_bad_tensors),
        T(test_options_aliasing),
        T(test_options_head_dims),
        T(test_options_schedule),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
