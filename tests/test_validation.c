/* test_validation.c - every invalid-argument path of the attention entry points, on a real device:
 * the documented status comes back, the context's last error names it, and no buffer has been
 * touched (each buffer is filled with a sentinel pattern or known data first and read back after).
 *
 * The device comes from CLATTN_DEVICE (or the default order). A missing device is a failure. */
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

/* Base problem: grouped-query attention, two query heads per key head. */
enum { B = 2, HQ = 4, HK = 2, NQ = 8, NK = 12, D = 16 };
#define Q_ELEMS ((size_t)B * HQ * NQ * D)
#define K_ELEMS ((size_t)B * HK * NK * D)
#define L_ELEMS ((size_t)B * HQ * NQ)

#define MAX_WATCH 8

typedef struct watched {
    cl_mem mem;
    size_t bytes;
    unsigned char *snap;
    const char *name;
} watched;

typedef struct fixture {
    clattn_context *ctx;
    cl_context clctx;
    cl_command_queue queue;
    cl_mem q, k, v, out, lse;
    float *hq, *hk, *hv;
    clattn_plan *plan; /* AUTO plan for the base shapes */
    size_t qs[4], ks[4], ls[4];
    watched watch[MAX_WATCH];
    size_t nwatch;
} fixture;

/* ---- helpers ---------------------------------------------------------------------------- */

static cl_mem make_buffer(fixture *f, size_t bytes)
{
    cl_int err;
    cl_mem m = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        fail_msg("clCreateBuffer(%zu): %d", bytes, (int)err);
    return m;
}

static void write_buffer(fixture *f, cl_mem m, const void *src, size_t bytes)
{
    cl_int err = clEnqueueWriteBuffer(f->queue, m, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        fail_msg("clEnqueueWriteBuffer: %d", (int)err);
}

static void read_buffer(fixture *f, cl_mem m, void *dst, size_t bytes)
{
    cl_int err = clFinish(f->queue);
    if (err == CL_SUCCESS)
        err = clEnqueueReadBuffer(f->queue, m, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        fail_msg("clEnqueueReadBuffer: %d", (int)err);
}

/* Fills a buffer with a byte pattern no kernel would produce (0x7f... floats are NaNs). */
static void poison(fixture *f, cl_mem m, size_t bytes, unsigned char seed)
{
    unsigned char *p = malloc(bytes);
    assert_non_null(p);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)(i % 4 == 3 ? 0x7f : seed + i * 13);
    write_buffer(f, m, p, bytes);
    free(p);
}

/* Records the current bytes of a buffer; check_untouched() compares against them. */
static void watch(fixture *f, cl_mem m, size_t bytes, const char *name)
{
    for (size_t i = 0; i < f->nwatch; i++)
        if (f->watch[i].mem == m) {
            read_buffer(f, m, f->watch[i].snap, f->watch[i].bytes);
            return;
        }
    assert_true(f->nwatch < MAX_WATCH);
    watched *w = &f->watch[f->nwatch++];
    w->mem = m;
    w->bytes = bytes;
    w->name = name;
    w->snap = malloc(bytes);
    assert_non_null(w->snap);
    read_buffer(f, m, w->snap, bytes);
}

static void unwatch_extra(fixture *f, size_t keep)
{
    while (f->nwatch > keep) {
        f->nwatch--;
        free(f->watch[f->nwatch].snap);
        f->watch[f->nwatch].snap = NULL;
    }
}

static void check_untouched(fixture *f, const char *what, int line)
{
    for (size_t i = 0; i < f->nwatch; i++) {
        watched *w = &f->watch[i];
        unsigned char *now = malloc(w->bytes);
        assert_non_null(now);
        read_buffer(f, w->mem, now, w->bytes);
        for (size_t j = 0; j < w->bytes; j++)
            if (now[j] != w->snap[j]) {
                free(now);
                fail_msg("line %d (%s): buffer %s changed at byte %zu", line, what, w->name, j);
            }
        free(now);
    }
}

/* Puts a known message on the context (and on the thread), so a stale message is not mistaken
 * for the one a failing call should have left. */
#define RESET_CTX_MSG "CLATTN_NULL_POINTER: clattn_context_get_device_info: NULL argument"
static void reset_messages(fixture *f)
{
    clattn_context *dummy;
    assert_int_equal(clattn_context_get_device_info(f->ctx, NULL), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_context_create(NULL, NULL), CLATTN_NULL_POINTER);
    (void)dummy;
}

/* The message must be fresh, start with the status name and say something after it. */
static void check_message(const char *msg, clattn_status want, const char *stale,
                          const char *what, int line)
{
    const char *name = clattn_status_string(want);
    size_t n = strlen(name);
    if (!msg || !msg[0])
        fail_msg("line %d (%s): empty last error", line, what);
    if (stale && strcmp(msg, stale) == 0)
        fail_msg("line %d (%s): last error not updated ('%s')", line, what, msg);
    if (strncmp(msg, name, n) != 0 || msg[n] != ':' || strlen(msg) < n + 3)
        fail_msg("line %d (%s): last error '%s' does not start with '%s: '", line, what, msg,
                 name);
}

static void expect_status(fixture *f, clattn_status got, clattn_status want, int on_ctx,
                          const char *what, int line)
{
    if (got != want)
        fail_msg("line %d: %s returned %s, want %s (last error: %s)", line, what,
                 clattn_status_string(got), clattn_status_string(want),
                 clattn_context_last_error(on_ctx ? f->ctx : NULL));
    if (on_ctx)
        check_message(clattn_context_last_error(f->ctx), want, RESET_CTX_MSG, what, line);
    else
        check_message(clattn_context_last_error(NULL), want,
                      "CLATTN_NULL_POINTER: clattn_context_create: ctx is NULL", what, line);
    check_untouched(f, what, line);
}

/* Runs `call`, expecting `want`, a fresh message on the context (on_ctx) or the thread, and
 * every watched buffer unchanged. */
#define EXPECT(f, want, on_ctx, call)                                                              \
    do {                                                                                           \
        reset_messages(f);                                                                         \
        clattn_status st_ = (call);                                                                \
        expect_status((f), st_, (want), (on_ctx), #call, __LINE__);                                \
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

/* Checks both the plan path and the one-shot path on the same views. */
#define EXPECT_ENQ(f, want, w)                                                                     \
    do {                                                                                           \
        EXPECT(f, want, 1,                                                                         \
               clattn_softmax_plan_enqueue((f)->plan, &(w).q, &(w).k, &(w).v, &(w).out,         \
                                             &(w).lse, 0, NULL, NULL));                            \
        EXPECT(f, want, 1,                                                                         \
               clattn_softmax_enqueue((f)->ctx, NULL, &(w).q, &(w).k, &(w).v, &(w).out,         \
                                        &(w).lse, 0, NULL, NULL));                                 \
    } while (0)

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
    f->clctx = clattn_context_get_cl_context(f->ctx);
    f->queue = clattn_context_get_cl_queue(f->ctx);

    size_t qs[4] = {B, HQ, NQ, D}, ks[4] = {B, HK, NK, D}, ls[4] = {B, HQ, NQ, 1};
    memcpy(f->qs, qs, sizeof qs);
    memcpy(f->ks, ks, sizeof ks);
    memcpy(f->ls, ls, sizeof ls);
    f->hq = malloc(Q_ELEMS * sizeof(float));
    f->hk = malloc(K_ELEMS * sizeof(float));
    f->hv = malloc(K_ELEMS * sizeof(float));
    if (!f->hq || !f->hk || !f->hv)
        return -1;
    uint64_t seed = 12345;
    ref_fill_uniform(f->hq, Q_ELEMS, 1.0f, &seed);
    ref_fill_uniform(f->hk, K_ELEMS, 1.0f, &seed);
    ref_fill_uniform(f->hv, K_ELEMS, 1.0f, &seed);
    cl_int err;
    f->q = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                          Q_ELEMS * sizeof(float), f->hq, &err);
    f->k = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                          K_ELEMS * sizeof(float), f->hk, &err);
    f->v = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                          K_ELEMS * sizeof(float), f->hv, &err);
    f->out = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE, Q_ELEMS * sizeof(float), NULL, &err);
    f->lse = clCreateBuffer(f->clctx, CL_MEM_READ_WRITE, L_ELEMS * sizeof(float), NULL, &err);
    if (!f->q || !f->k || !f->v || !f->out || !f->lse)
        return -1;
    st = clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, f->ks, &f->plan);
    if (st != CLATTN_SUCCESS) {
        print_error("base plan: %s\n", clattn_context_last_error(f->ctx));
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    if (!f)
        return 0;
    unwatch_extra(f, 0);
    clattn_plan_destroy(f->plan);
    cl_mem all[] = {f->q, f->k, f->v, f->out, f->lse};
    for (size_t i = 0; i < 5; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clattn_context_destroy(f->ctx);
    free(f->hq);
    free(f->hk);
    free(f->hv);
    free(f);
    return 0;
}

/* Before each test: sentinel in out and lse, all five buffers watched. */
static int setup(void **state)
{
    fixture *f = *state;
    unwatch_extra(f, 0);
    poison(f, f->out, Q_ELEMS * sizeof(float), 0x21);
    poison(f, f->lse, L_ELEMS * sizeof(float), 0x43);
    watch(f, f->q, Q_ELEMS * sizeof(float), "q");
    watch(f, f->k, K_ELEMS * sizeof(float), "k");
    watch(f, f->v, K_ELEMS * sizeof(float), "v");
    watch(f, f->out, Q_ELEMS * sizeof(float), "out");
    watch(f, f->lse, L_ELEMS * sizeof(float), "lse");
    return 0;
}

/* ---- plan creation ---------------------------------------------------------------------- */

static void test_plan_create_null_pointers(void **state)
{
    fixture *f = *state;
    clattn_plan *p = (clattn_plan *)(uintptr_t)1;
    EXPECT(f, CLATTN_NULL_POINTER, 0,
           clattn_softmax_plan_create(NULL, NULL, f->qs, f->ks, f->ks, &p));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, f->ks, NULL));
    p = (clattn_plan *)(uintptr_t)1;
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_create(f->ctx, NULL, NULL, f->ks, f->ks, &p));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, NULL, f->ks, &p));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, NULL, &p));
}

static void test_plan_create_bad_shapes(void **state)
{
    fixture *f = *state;
    clattn_plan *p;
    for (int i = 0; i < 4; i++) {
        size_t q[4], k[4], v[4];
        for (int which = 0; which < 3; which++) {
            memcpy(q, f->qs, sizeof q);
            memcpy(k, f->ks, sizeof k);
            memcpy(v, f->ks, sizeof v);
            (which == 0 ? q : which == 1 ? k : v)[i] = 0;
            p = (clattn_plan *)(uintptr_t)1;
            EXPECT(f, CLATTN_INVALID_SHAPE, 1,
                   clattn_softmax_plan_create(f->ctx, NULL, q, k, v, &p));
            assert_null(p);
        }
    }
    size_t q257[4] = {B, HQ, NQ, 257}, k257[4] = {B, HK, NK, 257};
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_plan_create(f->ctx, NULL, q257, k257, k257, &p));
    size_t q3[4] = {B, 3, NQ, D};
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, q3, f->ks, f->ks, &p));
    size_t k3[4] = {B, 3, NK, D};
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, k3, k3, &p));
    size_t qb[4] = {B + 1, HQ, NQ, D};
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, qb, f->ks, f->ks, &p));
    size_t vn[4] = {B, HK, NK + 1, D}, vd[4] = {B, HK, NK, D + 1}, vh[4] = {B, 1, NK, D};
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, vn, &p));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, vd, &p));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, f->qs, f->ks, vh, &p));
    size_t qd[4] = {B, HQ, NQ, D + 1};
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_create(f->ctx, NULL, qd, f->ks, f->ks, &p));
#if SIZE_MAX > 0xffffffffu
    /* B * Hq = 2^64 wraps to 0 in size_t: must still be rejected, not allocated */
    size_t qw[4] = {(size_t)1 << 32, (size_t)1 << 32, NQ, D}, kw[4] = {(size_t)1 << 32,
                                                                        (size_t)1 << 32, NK, D};
    p = NULL;
    reset_messages(f);
    clattn_status st = clattn_softmax_plan_create(f->ctx, NULL, qw, kw, kw, &p);
    clattn_plan_destroy(p);
    if (st != CLATTN_INVALID_SHAPE)
        fail_msg("B = Hq = 2^32: %s, want CLATTN_INVALID_SHAPE (%s)", clattn_status_string(st),
                 clattn_context_last_error(f->ctx));
#endif
}

static void test_plan_create_bad_desc(void **state)
{
    fixture *f = *state;
    clattn_plan *p;
    clattn_softmax_desc d;
    const float bad_scales[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        clattn_softmax_desc_init(&d);
        d.scale = bad_scales[i];
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
               clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p));
    }
    const int bad_algos[] = {4, -1, 1000};
    for (size_t i = 0; i < 3; i++) {
        clattn_softmax_desc_init(&d);
        d.algorithm = (clattn_softmax_algo)bad_algos[i];
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
               clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p));
    }
    clattn_softmax_desc_init(&d);
    d.struct_size = 0;
    EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
           clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p));
}

static void test_plan_create_key_lengths_too_small(void **state)
{
    fixture *f = *state;
    clattn_plan *p;
    clattn_softmax_desc d;
    cl_mem kl = make_buffer(f, (B - 1) * sizeof(int32_t)); /* one short */
    clattn_softmax_desc_init(&d);
    d.key_lengths = kl;
    EXPECT(f, CLATTN_BUFFER_TOO_SMALL, 1,
           clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p));
    clReleaseMemObject(kl);

    kl = make_buffer(f, B * sizeof(int32_t)); /* right size, offset pushes past the end */
    d.key_lengths = kl;
    d.key_lengths_offset = 1;
    EXPECT(f, CLATTN_BUFFER_TOO_SMALL, 1,
           clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p));
    /* the one-shot path checks it too, before touching out */
    views w = base_views(f);
    EXPECT(f, CLATTN_BUFFER_TOO_SMALL, 1,
           clattn_softmax_enqueue(f->ctx, &(clattn_softmax_desc){.struct_size = sizeof d,
                                                                     .key_lengths = kl,
                                                                     .key_lengths_offset = 1},
                                    &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL, NULL));
    d.key_lengths_offset = SIZE_MAX - 1; /* offset + B overflows */
    reset_messages(f);
    p = NULL;
    clattn_status st = clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p);
    clattn_plan_destroy(p);
    if (st != CLATTN_BUFFER_TOO_SMALL && st != CLATTN_SIZE_OVERFLOW) {
        clReleaseMemObject(kl);
        fail_msg("key_lengths_offset SIZE_MAX - 1 (offset + batch wraps): %s, want "
                 "CLATTN_SIZE_OVERFLOW or CLATTN_BUFFER_TOO_SMALL",
                 clattn_status_string(st));
    }
    check_message(clattn_context_last_error(f->ctx), st, RESET_CTX_MSG, "kl offset", __LINE__);
    clReleaseMemObject(kl);
}

/* ---- enqueue: pointers, shapes, extents ------------------------------------------------- */

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
    /* D = 257 everywhere */
    w = base_views(f);
    w.q.shape[3] = w.k.shape[3] = w.v.shape[3] = w.out.shape[3] = 257;
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_enqueue(f->ctx, NULL, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL,
                                    NULL));
    EXPECT(f, CLATTN_SHAPE_MISMATCH, 1,
           clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL,
                                         NULL));
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
    /* out overlapping itself with non-zero strides: rows closer than D */
    w = base_views(f), w.out.strides[2] = D / 2;
    reset_messages(f);
    clattn_status st = clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse,
                                                     0, NULL, NULL);
    if (st == CLATTN_SUCCESS)
        print_message("note: out with overlapping rows (stride %d < D %d) is accepted\n", D / 2,
                      D);
    clattn_context_finish(f->ctx);
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

static void check_result(fixture *f, cl_mem out, size_t out_off, cl_mem lse, size_t lse_off,
                         int line)
{
    float *got = malloc((out_off + Q_ELEMS) * sizeof(float));
    float *gl = malloc((lse_off + L_ELEMS) * sizeof(float));
    float *ro = malloc(Q_ELEMS * sizeof(float)), *rl = malloc(L_ELEMS * sizeof(float));
    assert_true(got && gl && ro && rl);
    read_buffer(f, out, got, (out_off + Q_ELEMS) * sizeof(float));
    read_buffer(f, lse, gl, (lse_off + L_ELEMS) * sizeof(float));
    ref_softmax(f->hq, f->hk, f->hv, ro, rl, B, HQ, HK, NQ, NK, D, 1.0 / sqrt((double)D), 0,
                  NULL);
    /* float32 kernels against a double reference on values of order 1: atol 1e-5, rtol 1e-4 */
    for (size_t i = 0; i < Q_ELEMS; i++)
        if (!(fabs(got[out_off + i] - ro[i]) <= 1e-5 + 1e-4 * fabs(ro[i])))
            fail_msg("line %d: out[%zu] = %g, reference %g", line, i, got[out_off + i], ro[i]);
    for (size_t i = 0; i < L_ELEMS; i++)
        if (!(fabs(gl[lse_off + i] - rl[i]) <= 1e-5 + 1e-4 * fabs(rl[i])))
            fail_msg("line %d: lse[%zu] = %g, reference %g", line, i, gl[lse_off + i], rl[i]);
    free(got);
    free(gl);
    free(ro);
    free(rl);
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
    cl_mem big = make_buffer(f, total * sizeof(float));
    poison(f, big, total * sizeof(float), 0x65);
    cl_int err = clEnqueueWriteBuffer(f->queue, big, CL_TRUE, q_at * sizeof(float),
                                      Q_ELEMS * sizeof(float), f->hq, 0, NULL, NULL);
    assert_int_equal(err, CL_SUCCESS);
    watch(f, big, total * sizeof(float), "big");

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
    reset_messages(f);
    clattn_status st = clattn_softmax_plan_enqueue(f->plan, &ok.q, &ok.k, &ok.v, &ok.out,
                                                     &ok.lse, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("disjoint views of one buffer: %s (%s)", clattn_status_string(st),
                 clattn_context_last_error(f->ctx));
    check_result(f, big, out_at, big, lse_at, __LINE__);
    /* disjoint sub-buffers of one parent: accepted too */
    cl_mem sub_o = sub_buffer(big, out_at * sizeof(float), Q_ELEMS * sizeof(float));
    poison(f, big, total * sizeof(float), 0x11);
    err = clEnqueueWriteBuffer(f->queue, big, CL_TRUE, q_at * sizeof(float),
                               Q_ELEMS * sizeof(float), f->hq, 0, NULL, NULL);
    assert_int_equal(err, CL_SUCCESS);
    ok.q.buffer = sub_q_overlap, ok.q.offset = 0;
    ok.out.buffer = sub_o, ok.out.offset = 0;
    st = clattn_softmax_enqueue(f->ctx, NULL, &ok.q, &ok.k, &ok.v, &ok.out, &ok.lse, 0, NULL,
                                  NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("disjoint sub-buffers: %s (%s)", clattn_status_string(st),
                 clattn_context_last_error(f->ctx));
    check_result(f, sub_o, 0, big, lse_at, __LINE__);

    clReleaseMemObject(sub_o);
    clReleaseMemObject(sub_l);
    clReleaseMemObject(sub_q_overlap);
    unwatch_extra(f, 5);
    clReleaseMemObject(big);
}

static void test_aliasing_key_lengths(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_plan *p = NULL;
    cl_mem kl = make_buffer(f, Q_ELEMS * sizeof(float));
    int32_t lens[B] = {NK, NK / 2};
    write_buffer(f, kl, lens, sizeof lens);
    watch(f, kl, Q_ELEMS * sizeof(float), "key_lengths");
    clattn_softmax_desc_init(&d);
    d.key_lengths = kl;
    assert_int_equal(clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p),
                     CLATTN_SUCCESS);
    views w = base_views(f);
    w.out.buffer = kl; /* out over the key lengths */
    EXPECT(f, CLATTN_ALIASING, 1,
           clattn_softmax_plan_enqueue(p, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL, NULL));
    w = base_views(f);
    w.lse.buffer = kl;
    EXPECT(f, CLATTN_ALIASING, 1,
           clattn_softmax_plan_enqueue(p, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL, NULL));
    clattn_plan_destroy(p);
    unwatch_extra(f, 5);
    clReleaseMemObject(kl);
}

/* ---- algorithm-specific ------------------------------------------------------------------ */

static void test_naive_needs_unit_d_stride(void **state)
{
    fixture *f = *state;
    clattn_softmax_desc d;
    clattn_plan *p = NULL;
    clattn_softmax_desc_init(&d);
    d.algorithm = CLATTN_SOFTMAX_NAIVE;
    clattn_status st = clattn_softmax_plan_create(f->ctx, &d, f->qs, f->ks, f->ks, &p);
    if (st != CLATTN_SUCCESS)
        fail_msg("naive plan: %s", clattn_context_last_error(f->ctx));
    cl_mem wide = make_buffer(f, 2 * Q_ELEMS * sizeof(float));
    poison(f, wide, 2 * Q_ELEMS * sizeof(float), 0x77);
    watch(f, wide, 2 * Q_ELEMS * sizeof(float), "wide");
    /* every other element along D, each tensor in turn */
    for (int t = 0; t < 4; t++) {
        views w = base_views(f);
        clattn_tensor *ts[4] = {&w.q, &w.k, &w.v, &w.out};
        clattn_tensor *x = ts[t];
        x->buffer = wide;
        for (int i = 0; i < 4; i++)
            x->strides[i] *= 2;
        EXPECT(f, CLATTN_UNSUPPORTED, 1,
               clattn_softmax_plan_enqueue(p, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL,
                                             NULL));
        EXPECT(f, CLATTN_UNSUPPORTED, 1,
               clattn_softmax_enqueue(f->ctx, &d, &w.q, &w.k, &w.v, &w.out, &w.lse, 0, NULL,
                                        NULL));
    }
    clattn_plan_destroy(p);
    unwatch_extra(f, 5);
    clReleaseMemObject(wide);
}

/* ---- host convenience -------------------------------------------------------------------- */

static void test_host_key_lengths_out_of_range(void **state)
{
    fixture *f = *state;
    float *out = malloc(Q_ELEMS * sizeof(float)), *lse = malloc(L_ELEMS * sizeof(float));
    float *o0 = malloc(Q_ELEMS * sizeof(float)), *l0 = malloc(L_ELEMS * sizeof(float));
    assert_true(out && lse && o0 && l0);
    memset(o0, 0x5c, Q_ELEMS * sizeof(float));
    memset(l0, 0x3d, L_ELEMS * sizeof(float));
    const int32_t bad[][B] = {{-1, NK}, {NK, NK + 1}, {INT32_MIN, 0}, {0, INT32_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(out, o0, Q_ELEMS * sizeof(float));
        memcpy(lse, l0, L_ELEMS * sizeof(float));
        EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
               clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv,
                                     bad[i], out, lse));
        assert_memory_equal(out, o0, Q_ELEMS * sizeof(float));
        assert_memory_equal(lse, l0, L_ELEMS * sizeof(float));
    }
    /* NULL pointers and bad shapes: out untouched too */
    memcpy(out, o0, Q_ELEMS * sizeof(float));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, NULL, f->hk, f->hv, NULL,
                                 out, lse));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, NULL, f->hq, f->hk, f->hv, NULL,
                                 out, lse));
    EXPECT(f, CLATTN_NULL_POINTER, 1,
           clattn_softmax_host(f->ctx, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL,
                                 NULL, lse));
    EXPECT(f, CLATTN_NULL_POINTER, 0,
           clattn_softmax_host(NULL, NULL, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL,
                                 out, lse));
    size_t q257[4] = {B, HQ, NQ, 257}, k257[4] = {B, HK, NK, 257};
    EXPECT(f, CLATTN_INVALID_SHAPE, 1,
           clattn_softmax_host(f->ctx, NULL, q257, k257, k257, f->hq, f->hk, f->hv, NULL, out,
                                 lse));
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.scale = NAN;
    EXPECT(f, CLATTN_INVALID_ARGUMENT, 1,
           clattn_softmax_host(f->ctx, &d, f->qs, f->ks, f->ks, f->hq, f->hk, f->hv, NULL, out,
                                 lse));
    assert_memory_equal(out, o0, Q_ELEMS * sizeof(float));
    assert_memory_equal(lse, l0, L_ELEMS * sizeof(float));
    free(out);
    free(lse);
    free(o0);
    free(l0);
}

/* ---- contexts and devices ---------------------------------------------------------------- */

static void test_context_create_no_match(void **state)
{
    fixture *f = *state;
    static const char *sels[] = {"no-such-device", "9:9", "0:999", "999:0"};
    for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i++) {
        clattn_context *c = (clattn_context *)(uintptr_t)1;
        EXPECT(f, CLATTN_NO_DEVICE, 0, clattn_context_create(sels[i], &c));
        assert_null(c);
        if (!strstr(clattn_context_last_error(NULL), sels[i]))
            print_message("note: message for '%s' does not quote it: %s\n", sels[i],
                          clattn_context_last_error(NULL));
    }
}

static void test_context_create_from_cl(void **state)
{
    fixture *f = *state;
    cl_device_id dev = clattn_context_get_cl_device(f->ctx);
    cl_int err;
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue other_q = clCreateCommandQueue(other, dev, 0, &err);
    assert_int_equal(err, CL_SUCCESS);

    clattn_context *c = (clattn_context *)(uintptr_t)1;
    EXPECT(f, CLATTN_INVALID_CONTEXT, 0, clattn_context_create_from_cl(f->clctx, dev, other_q, &c));
    assert_null(c);
    c = (clattn_context *)(uintptr_t)1;
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(NULL, dev, other_q, &c));
    assert_null(c);
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, NULL, other_q, &c));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, dev, NULL, &c));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, dev, other_q, NULL));

    /* the matching triple works, and destroying it leaves the caller's references alone */
    cl_uint before = 0, after = 0;
    clGetContextInfo(other, CL_CONTEXT_REFERENCE_COUNT, sizeof before, &before, NULL);
    c = NULL;
    assert_int_equal(clattn_context_create_from_cl(other, dev, other_q, &c), CLATTN_SUCCESS);
    assert_non_null(c);
    assert_ptr_equal(clattn_context_get_cl_context(c), other);
    assert_ptr_equal(clattn_context_get_cl_queue(c), other_q);
    clattn_context_destroy(c);
    clGetContextInfo(other, CL_CONTEXT_REFERENCE_COUNT, sizeof after, &after, NULL);
    assert_int_equal(before, after);

    clReleaseCommandQueue(other_q);
    clReleaseContext(other);
}

static void test_list_devices_and_null_safety(void **state)
{
    fixture *f = *state;
    size_t n = 0;
    assert_int_equal(clattn_list_devices(NULL, 0, &n), CLATTN_SUCCESS);
    assert_true(n >= 1);
    clattn_device_info *infos = calloc(n, sizeof *infos);
    assert_non_null(infos);
    size_t n2 = 0;
    assert_int_equal(clattn_list_devices(infos, n, &n2), CLATTN_SUCCESS);
    assert_int_equal(n, n2);
    clattn_device_info mine;
    assert_int_equal(clattn_context_get_device_info(f->ctx, &mine), CLATTN_SUCCESS);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(infos[i].name[0] != '\0');
        if (infos[i].platform_index == mine.platform_index &&
            infos[i].device_index == mine.device_index) {
            assert_string_equal(infos[i].name, mine.name);
            found = 1;
        }
    }
    assert_true(found);
    free(infos);
    /* a capacity smaller than the count still reports the count */
    clattn_device_info one;
    assert_int_equal(clattn_list_devices(&one, 1, &n2), CLATTN_SUCCESS);
    assert_int_equal(n2, n);

    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_list_devices(NULL, 0, NULL));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_list_devices(NULL, 1, &n));

    /* "P:D" of our own device selects it */
    char sel[32];
    snprintf(sel, sizeof sel, "%u:%u", mine.platform_index, mine.device_index);
    clattn_context *c = NULL;
    assert_int_equal(clattn_context_create(sel, &c), CLATTN_SUCCESS);
    clattn_device_info again;
    clattn_context_get_device_info(c, &again);
    assert_string_equal(again.name, mine.name);
    clattn_context_destroy(c);

    clattn_context_destroy(NULL);
    clattn_plan_destroy(NULL);
    assert_int_equal(clattn_context_finish(NULL), CLATTN_NULL_POINTER);
    clattn_plan_info pi;
    assert_int_equal(clattn_plan_get_info(NULL, &pi), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_plan_get_info(f->plan, NULL), CLATTN_NULL_POINTER);
    assert_null(clattn_context_get_cl_context(NULL));
    assert_null(clattn_context_get_cl_device(NULL));
    assert_null(clattn_context_get_cl_queue(NULL));
    unsigned a = 7, b = 7, h = 7;
    clattn_context_cache_stats(NULL, &a, &b, &h);
    assert_int_equal(a + b + h, 0);
    clattn_context_cache_stats(f->ctx, NULL, NULL, NULL);
}

/* The fixture itself is sound: the valid call succeeds and writes the right values, so the
 * "untouched" checks above are not vacuous. */
static void test_valid_call_writes_output(void **state)
{
    fixture *f = *state;
    views w = base_views(f);
    clattn_status st = clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse,
                                                     0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("valid enqueue: %s (%s)", clattn_status_string(st),
                 clattn_context_last_error(f->ctx));
    check_result(f, f->out, 0, f->lse, 0, __LINE__);
    /* with a wait list (the event of a non-blocking write of the sentinel) and an event out.
     * Not a user event: PoCL's "basic" device deadlocks in clSetUserEventStatus here. */
    unsigned char *junk = malloc(Q_ELEMS * sizeof(float));
    assert_non_null(junk);
    memset(junk, 0x7f, Q_ELEMS * sizeof(float));
    cl_event written = NULL, done = NULL;
    assert_int_equal(clEnqueueWriteBuffer(f->queue, f->out, CL_FALSE, 0, Q_ELEMS * sizeof(float),
                                          junk, 0, NULL, &written),
                     CL_SUCCESS);
    st = clattn_softmax_plan_enqueue(f->plan, &w.q, &w.k, &w.v, &w.out, &w.lse, 1, &written,
                                       &done);
    assert_int_equal(st, CLATTN_SUCCESS);
    assert_non_null(done);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    clReleaseEvent(done);
    clReleaseEvent(written);
    free(junk);
    check_result(f, f->out, 0, f->lse, 0, __LINE__);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, setup)
    const struct CMUnitTest tests[] = {
        T(test_plan_create_null_pointers),
        T(test_plan_create_bad_shapes),
        T(test_plan_create_bad_desc),
        T(test_plan_create_key_lengths_too_small),
        T(test_enqueue_null_pointers),
        T(test_enqueue_zero_shapes),
        T(test_enqueue_shape_mismatch),
        T(test_enqueue_buffer_too_small),
        T(test_enqueue_size_overflow),
        T(test_enqueue_aliasing_same_buffer),
        T(test_aliasing_ranges_and_sub_buffers),
        T(test_aliasing_key_lengths),
        T(test_naive_needs_unit_d_stride),
        T(test_host_key_lengths_out_of_range),
        T(test_context_create_no_match),
        T(test_context_create_from_cl),
        T(test_list_devices_and_null_safety),
        T(test_valid_call_writes_output),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
