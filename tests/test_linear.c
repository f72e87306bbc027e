/* Linear (kernelized) attention and its decoding state against the fp64 host reference
 * (tests/reference/ref_linear.c: the direct formula for the non-causal form, the sequential
 * recurrence for the causal one; ref_linear_general for FAVOR+ and momentum, itself checked
 * against hand-computed values and the closed form in test_ref_general), on the device chosen
 * by CLATTN_DEVICE.
 *
 * Inputs are random (never zero); outputs are poisoned with NaN before each run so an unwritten
 * element fails. Tolerance, per DESIGN.md §4: max|out - ref| <= 1e-4 * max(1, max|ref|).
 * The identity feature map gets positive q and k: with signed features the denominator
 * phi(q) . z can cancel to nearly 0 and the quotient is ill-conditioned in any precision (eps
 * only guards the division by zero). */
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
#include "test_util.h"
#include "reference/ref_softmax.h"
#include "reference/ref_linear.h"

#define TOL 1e-4

static clattn_context *ctx;
/* llvmpipe (rusticl) stops any kernel loop after 65535 iterations per work-item; the kernels
 * here loop at most max(64, Nk / 256) keys, N / 64 chunks and D * (Dv + 64) in one output row,
 * so every case below stays under it. */
static int llvmpipe;

/* On llvmpipe every call of a new shape costs ~0.1 s of CPU (the existing tests alone take ~20 s
 * there on these shared machines), so the FAVOR+/momentum tests run the relu and identity maps
 * (the element-wise path ELU already covers) and a few duplicate forms only on PoCL's devices. */
static int light_skip(clattn_feature_map f)
{
    return llvmpipe && (f == CLATTN_FEATURE_RELU || f == CLATTN_FEATURE_IDENTITY);
}

static const clattn_feature_map fmaps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_RELU,
                                           CLATTN_FEATURE_IDENTITY};

typedef struct tcase {
    size_t B, H, Nq, Nk, D, Dv;
    int causal;
    clattn_feature_map fmap;
    int bnhd; /* store tensors as [B, N, H, D] (strided views) */
} tcase;

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

/* Random inputs; q and k positive for the identity map (see the file comment). */
static float *inputs(size_t n, int positive, uint64_t *seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    ref_fill_uniform(x, n, 1.0f, seed);
    if (positive)
        for (size_t i = 0; i < n; i++)
            x[i] = fabsf(x[i]) + 0.05f;
    return x;
}

static float *poisoned(size_t n)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

static void check_close(const float *got, const float *ref, size_t n, const char *what)
{
    double maxref = 0, err = ref_max_abs_diff(got, ref, n, &maxref);
    if (!(err <= TOL * fmax(1.0, maxref)))
        fail_msg("%s: error %.3e (max|ref| %.3e)", what, err, maxref);
}

static void run_case(const tcase *c)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (c->Nq * 131 + c->Nk * 17 + c->D * 7 + c->Dv);
    size_t nq = c->B * c->H * c->Nq * c->D, nk = c->B * c->H * c->Nk * c->D;
    size_t nv = c->B * c->H * c->Nk * c->Dv, no = c->B * c->H * c->Nq * c->Dv;
    int pos = c->fmap == CLATTN_FEATURE_IDENTITY;
    float *q = inputs(nq, pos, &seed), *k = inputs(nk, pos, &seed), *v = inputs(nv, 0, &seed);
    float *out = poisoned(no), *ref = malloc(no * sizeof(float));
    assert_non_null(ref);
    ref_linear_attention(q, k, v, ref, c->B, c->H, c->Nq, c->Nk, c->D, c->Dv, (int)c->fmap,
                         CLATTN_LINEAR_DEFAULT_EPS, c->causal);
    float *hq = c->bnhd ? tu_relayout(q, c->B, c->H, c->Nq, c->D, 1) : q;
    float *hk = c->bnhd ? tu_relayout(k, c->B, c->H, c->Nk, c->D, 1) : k;
    float *hv = c->bnhd ? tu_relayout(v, c->B, c->H, c->Nk, c->Dv, 1) : v;
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nk * 4, hk), bv = tu_buffer(ctx, nv * 4, hv);
    cl_mem bo = tu_buffer(ctx, no * 4, out);
    clattn_linear_desc desc;
    clattn_linear_desc_init(&desc);
    desc.causal = c->causal;
    desc.feature_map = c->fmap;
    clattn_tensor tq = tu_view(bq, c->B, c->H, c->Nq, c->D, c->bnhd);
    clattn_tensor tk = tu_view(bk, c->B, c->H, c->Nk, c->D, c->bnhd);
    clattn_tensor tv = tu_view(bv, c->B, c->H, c->Nk, c->Dv, c->bnhd);
    clattn_tensor to = tu_view(bo, c->B, c->H, c->Nq, c->Dv, c->bnhd);
    cl_event ev = NULL;
    if (clattn_linear_enqueue(ctx, &desc, &tq, &tk, &tv, &to, 0, NULL, &ev) != CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bo, no * 4, out);
    float *got = c->bnhd ? tu_relayout(out, c->B, c->H, c->Nq, c->Dv, 0) : out;
    char what[160];
    snprintf(what, sizeof what, "B%zu H%zu Nq%zu Nk%zu D%zu Dv%zu causal%d fmap%d bnhd%d", c->B,
             c->H, c->Nq, c->Nk, c->D, c->Dv, c->causal, (int)c->fmap, c->bnhd);
    check_close(got, ref, no, what);
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    if (c->bnhd) {
        free(hq);
        free(hk);
        free(hv);
        free(got);
    }
    free(q);
    free(k);
    free(v);
    free(out);
    free(ref);
}

static const size_t lengths[] = {1, 7, 63, 64, 65, 1000};

static void test_noncausal(void **state)
{
    (void)state;
    for (size_t f = 0; f < 3; f++)
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            tcase c = {1, 2, lengths[i], lengths[i], 16, 24, 0, fmaps[f], 0};
            run_case(&c);
        }
}

/* Nq != Nk (cross attention) is fine without the causal mask. */
static void test_noncausal_cross(void **state)
{
    (void)state;
    static const size_t pairs[][2] = {{1, 300}, {70, 5}, {33, 129}, {5, 20000}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        tcase c = {2, 1, pairs[i][0], pairs[i][1], 8, 12, 0, fmaps[i % 3], 0};
        run_case(&c);
    }
}

/* Lengths around the 64-position chunk, against the sequential recurrence. */
static void test_causal(void **state)
{
    (void)state;
    for (size_t f = 0; f < 3; f++)
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            tcase c = {1, 2, lengths[i], lengths[i], 16, 24, 1, fmaps[f], 0};
            run_case(&c);
        }
}

static void test_head_dims(void **state)
{
    (void)state;
    static const size_t dims[][2] = {{1, 1}, {3, 130}, {64, 32}, {256, 8}, {8, 256}, {128, 128}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (int causal = 0; causal < 2; causal++) {
            tcase c = {1, 1, 70, 70, dims[i][0], dims[i][1], causal, CLATTN_FEATURE_ELU, 0};
            run_case(&c);
        }
}

static void test_strided_layout(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++)
        for (size_t f = 0; f < 3; f++) {
            tcase c = {2, 3, 100, 100, 16, 8, causal, fmaps[f], 1};
            run_case(&c);
        }
}

static void test_host(void **state)
{
    (void)state;
    size_t B = 2, H = 2, N = 90, D = 12, Dv = 5;
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv}, no = B * H * N * Dv;
    uint64_t seed = 5;
    float *q = inputs(B * H * N * D, 0, &seed), *k = inputs(B * H * N * D, 0, &seed);
    float *v = inputs(no, 0, &seed), *out = poisoned(no), *ref = malloc(no * 4);
    for (int causal = 0; causal < 2; causal++) {
        clattn_linear_desc d;
        clattn_linear_desc_init(&d);
        d.causal = causal;
        d.feature_map = CLATTN_FEATURE_RELU;
        ref_linear_attention(q, k, v, ref, B, H, N, N, D, Dv, 1, CLATTN_LINEAR_DEFAULT_EPS, causal);
        if (clattn_linear_host(ctx, &d, qs, qs, vs, q, k, v, out) != CLATTN_SUCCESS)
            fail_msg("host: %s", clattn_context_last_error(ctx));
        check_close(out, ref, no, "clattn_linear_host");
    }
    /* desc NULL: the defaults (ELU, non-causal). */
    ref_linear_attention(q, k, v, ref, B, H, N, N, D, Dv, 0, CLATTN_LINEAR_DEFAULT_EPS, 0);
    assert_int_equal(clattn_linear_host(ctx, NULL, qs, qs, vs, q, k, v, out), CLATTN_SUCCESS);
    check_close(out, ref, no, "clattn_linear_host defaults");
    free(q);
    free(k);
    free(v);
    free(out);
    free(ref);
}

/* ---- invalid arguments: the status, and the output untouched ---- */

typedef struct bad_io {
    cl_mem bq, bk, bv, bo;
    clattn_tensor q, k, v, o;
} bad_io;

static void check_untouched(cl_mem bo, size_t n)
{
    float *x = malloc(n * 4);
    tu_read(ctx, bo, n * 4, x);
    for (size_t i = 0; i < n; i++)
        assert_true(x[i] == 7.0f);
    free(x);
}

static void expect(clattn_status got, clattn_status want, const char *what)
{
    if (got != want)
        fail_msg("%s: got %s, want %s (%s)", what, clattn_status_string(got),
                 clattn_status_string(want), clattn_context_last_error(ctx));
}

static void test_invalid(void **state)
{
    (void)state;
    enum { N = 8, D = 4, DV = 6, NO = 2 * N * DV };
    float ones[2 * N * DV], sev[NO];
    for (size_t i = 0; i < 2 * N * DV; i++)
        ones[i] = 0.5f;
    for (size_t i = 0; i < NO; i++)
        sev[i] = 7.0f;
    bad_io b;
    b.bq = tu_buffer(ctx, sizeof ones, ones);
    b.bk = tu_buffer(ctx, sizeof ones, ones);
    b.bv = tu_buffer(ctx, sizeof ones, ones);
    b.bo = tu_buffer(ctx, sizeof sev, sev);
    b.q = clattn_tensor_make(b.bq, 1, 2, N, D);
    b.k = clattn_tensor_make(b.bk, 1, 2, N, D);
    b.v = clattn_tensor_make(b.bv, 1, 2, N, DV);
    b.o = clattn_tensor_make(b.bo, 1, 2, N, DV);
    clattn_linear_desc d, dd;
    clattn_linear_desc_init(&d);
    clattn_tensor t;
    cl_event ev = NULL;
#define RUN(desc, q, k, v, o) clattn_linear_enqueue(ctx, (desc), (q), (k), (v), (o), 0, NULL, NULL)
    expect(clattn_linear_enqueue(NULL, &d, &b.q, &b.k, &b.v, &b.o, 0, NULL, NULL),
           CLATTN_NULL_POINTER, "ctx NULL");
    expect(RUN(&d, NULL, &b.k, &b.v, &b.o), CLATTN_NULL_POINTER, "q NULL");
    expect(RUN(&d, &b.q, &b.k, &b.v, NULL), CLATTN_NULL_POINTER, "out NULL");
    expect(clattn_linear_enqueue(ctx, &d, &b.q, &b.k, &b.v, &b.o, 1, NULL, &ev),
           CLATTN_NULL_POINTER, "wait NULL");
    t = b.q;
    t.buffer = NULL;
    expect(RUN(&d, &t, &b.k, &b.v, &b.o), CLATTN_NULL_POINTER, "q buffer NULL");
    dd = d;
    dd.feature_map = (clattn_feature_map)7;
    expect(RUN(&dd, &b.q, &b.k, &b.v, &b.o), CLATTN_INVALID_ARGUMENT, "feature map");
    const float bad_eps[] = {-1e-6f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        dd = d;
        dd.eps = bad_eps[i];
        expect(RUN(&dd, &b.q, &b.k, &b.v, &b.o), CLATTN_INVALID_ARGUMENT, "eps");
    }
    dd = d;
    dd.struct_size = 0;
    expect(RUN(&dd, &b.q, &b.k, &b.v, &b.o), CLATTN_INVALID_ARGUMENT, "struct_size");
    t = b.q;
    t.shape[2] = 0;
    expect(RUN(&d, &t, &b.k, &b.v, &b.o), CLATTN_INVALID_SHAPE, "zero length");
    clattn_tensor q2 = b.q, k2 = b.k;
    q2.shape[3] = k2.shape[3] = 257;
    expect(RUN(&d, &q2, &k2, &b.v, &b.o), CLATTN_INVALID_SHAPE, "D > 256");
    t = b.k;
    t.shape[3] = 3;
    expect(RUN(&d, &b.q, &t, &b.v, &b.o), CLATTN_SHAPE_MISMATCH, "k head dim");
    t = b.v;
    t.shape[2] = N - 1;
    expect(RUN(&d, &b.q, &b.k, &t, &b.o), CLATTN_SHAPE_MISMATCH, "v length");
    t = b.v;
    t.shape[1] = 1;
    expect(RUN(&d, &b.q, &b.k, &t, &b.o), CLATTN_SHAPE_MISMATCH, "v heads");
    t = b.o;
    t.shape[3] = DV - 1;
    expect(RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_SHAPE_MISMATCH, "out Dv");
    t = b.o;
    t.shape[2] = N - 1;
    expect(RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_SHAPE_MISMATCH, "out length");
    dd = d;
    dd.causal = 1;
    t = b.q;
    t.shape[2] = N - 2;
    clattn_tensor o2 = b.o;
    o2.shape[2] = N - 2;
    expect(RUN(&dd, &t, &b.k, &b.v, &o2), CLATTN_UNSUPPORTED, "causal Nq != Nk");
    t = b.k;
    t.offset = 1000;
    expect(RUN(&d, &b.q, &t, &b.v, &b.o), CLATTN_BUFFER_TOO_SMALL, "k beyond buffer");
    t = b.o;
    t.strides[2] = 0;
    expect(RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_ALIASING, "out zero stride");
    t = clattn_tensor_make(b.bv, 1, 2, N, DV);
    expect(RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_ALIASING, "out aliases v");
#undef RUN
    assert_null(ev);
    check_untouched(b.bo, NO);
    cl_mem all[] = {b.bq, b.bk, b.bv, b.bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
}

/* ---- the decoding state ---- */

typedef struct seqdata {
    size_t B, H, N, D, Dv;
    float *q, *k, *v, *ref; /* [B, H, N, *]; ref: causal attention over all N */
    cl_mem bq, bk, bv, bo;
} seqdata;

static void seq_make(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                     clattn_feature_map fmap)
{
    s->B = B, s->H = H, s->N = N, s->D = D, s->Dv = Dv;
    uint64_t seed = 77 + N + (size_t)fmap;
    int pos = fmap == CLATTN_FEATURE_IDENTITY;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    s->q = inputs(nq, pos, &seed);
    s->k = inputs(nq, pos, &seed);
    s->v = inputs(nv, 0, &seed);
    s->ref = malloc(nv * 4);
    assert_non_null(s->ref);
    ref_linear_attention(s->q, s->k, s->v, s->ref, B, H, N, N, D, Dv, (int)fmap,
                         CLATTN_LINEAR_DEFAULT_EPS, 1);
    float *p = poisoned(nv);
    s->bq = tu_buffer(ctx, nq * 4, s->q);
    s->bk = tu_buffer(ctx, nq * 4, s->k);
    s->bv = tu_buffer(ctx, nv * 4, s->v);
    s->bo = tu_buffer(ctx, nv * 4, p);
    free(p);
}

static void seq_free(seqdata *s)
{
    cl_mem all[] = {s->bq, s->bk, s->bv, s->bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->ref);
}

/* Positions [n0, n0 + len) of a dense [B, H, N, d] buffer, as a view. */
static clattn_tensor window(cl_mem buf, const seqdata *s, size_t d, size_t n0, size_t len)
{
    clattn_tensor t = clattn_tensor_make(buf, s->B, s->H, s->N, d);
    t.shape[2] = len;
    t.offset = n0 * t.strides[2];
    return t;
}

static void prefill(clattn_linear_state *st, const seqdata *s, size_t n0, size_t len, int out)
{
    clattn_tensor q = window(s->bq, s, s->D, n0, len), k = window(s->bk, s, s->D, n0, len);
    clattn_tensor v = window(s->bv, s, s->Dv, n0, len), o = window(s->bo, s, s->Dv, n0, len);
    if (clattn_linear_prefill(st, &q, &k, &v, out ? &o : NULL, 0, NULL, NULL) != CLATTN_SUCCESS)
        fail_msg("prefill: %s", clattn_context_last_error(ctx));
}

static void step(clattn_linear_state *st, const seqdata *s, size_t n, cl_mem obuf)
{
    clattn_tensor q = window(s->bq, s, s->D, n, 1), k = window(s->bk, s, s->D, n, 1);
    clattn_tensor v = window(s->bv, s, s->Dv, n, 1), o = window(obuf, s, s->Dv, n, 1);
    if (clattn_linear_step(st, &q, &k, &v, &o, 0, NULL, NULL) != CLATTN_SUCCESS)
        fail_msg("step: %s", clattn_context_last_error(ctx));
}

static void check_outputs(const seqdata *s, const char *what)
{
    size_t nv = s->B * s->H * s->N * s->Dv;
    float *out = malloc(nv * 4);
    tu_read(ctx, s->bo, nv * 4, out);
    check_close(out, s->ref, nv, what);
    free(out);
}

static clattn_linear_state *state_new(const seqdata *s, clattn_feature_map fmap)
{
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = fmap;
    clattn_linear_state *st = NULL;
    if (clattn_linear_state_create(ctx, &d, s->B, s->H, s->D, s->Dv, &st) != CLATTN_SUCCESS)
        fail_msg("state create: %s", clattn_context_last_error(ctx));
    return st;
}

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
        check_outputs(&s, fmaps[f] == CLATTN_FEATURE_ELU    ? "prefill+step elu"
                          : fmaps[f] == CLATTN_FEATURE_RELU ? "prefill+step relu"
                                                            : "prefill+step identity");
        /* The state now holds the sums over the whole sequence. */
        size_t ns = s.B * s.H * s.D * s.Dv, nz = s.B * s.H * s.D;
        float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *rs = malloc(ns * 4),
              *rz = malloc(nz * 4);
        assert_int_equal(clattn_linear_state_read(st, gs, gz), CLATTN_SUCCESS);
        ref_linear_state(s.k, s.v, rs, rz, s.B, s.H, s.N, s.D, s.Dv, (int)fmaps[f]);
        check_close(gs, rs, ns, "state S");
        check_close(gz, rz, nz, "state z");
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
    seq_make(&s, 1, 3, 40, 5, 7, CLATTN_FEATURE_ELU);
    clattn_linear_state *st = state_new(&s, CLATTN_FEATURE_ELU);
    for (size_t n = 0; n < s.N; n++)
        step(st, &s, n, s.bo);
    check_outputs(&s, "steps only");
    /* Outputs of positions >= 30 again, from a state prefilled silently with the first 30. */
    assert_int_equal(clattn_linear_state_reset(st, 0, NULL, NULL), CLATTN_SUCCESS);
    float *p = poisoned(s.B * s.H * s.N * s.Dv);
    assert_int_equal(clEnqueueWriteBuffer(queue(), s.bo, CL_TRUE, 0, s.B * s.H * s.N * s.Dv * 4,
                                          p, 0, NULL, NULL),
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
                    assert_true(fabs(out[i] - s.ref[i]) <= TOL * fmax(1.0, fabs(s.ref[i])) * 10);
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
    seq_make(&s, 2, 1, 80, 6, 9, CLATTN_FEATURE_RELU);
    clattn_linear_state *a = state_new(&s, CLATTN_FEATURE_RELU);
    clattn_linear_state *b = state_new(&s, CLATTN_FEATURE_RELU);
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
    expect(clattn_linear_state_write(a, hs, hz), CLATTN_INVALID_ARGUMENT, "NaN z");
    hz[1] = keep;
    assert_int_equal(clattn_linear_state_read(a, gs, gz), CLATTN_SUCCESS);
    assert_memory_equal(gz, hz, nz * 4);
    expect(clattn_linear_state_write(a, NULL, hz), CLATTN_NULL_POINTER, "write NULL");
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
    seq_make(&s, 1, 2, 70, 8, 8, CLATTN_FEATURE_ELU);
    clattn_linear_state *a = state_new(&s, CLATTN_FEATURE_ELU);
    clattn_linear_state *b = state_new(&s, CLATTN_FEATURE_ELU);
    size_t nv = s.B * s.H * s.N * s.Dv;
    float *p = poisoned(nv), *oa = malloc(nv * 4), *ob = malloc(nv * 4);
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
        check_close(ob + bh * s.N * s.Dv, s.ref + bh * s.N * s.Dv, s.Dv, "step after reset");
    free(z);
    free(p);
    free(oa);
    free(ob);
    clReleaseMemObject(bo2);
    clattn_linear_state_destroy(a);
    clattn_linear_state_destroy(b);
    seq_free(&s);
}

static void test_state_invalid(void **state)
{
    (void)state;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    clattn_linear_state *st = (clattn_linear_state *)&d, *other = NULL;
    expect(clattn_linear_state_create(ctx, &d, 1, 2, 0, 4, &st), CLATTN_INVALID_SHAPE, "D 0");
    assert_null(st);
    expect(clattn_linear_state_create(ctx, &d, 1, 2, 4, 300, &st), CLATTN_INVALID_SHAPE,
           "Dv 300");
    expect(clattn_linear_state_create(NULL, &d, 1, 2, 4, 4, &st), CLATTN_NULL_POINTER, "ctx");
    expect(clattn_linear_state_create(ctx, &d, 1, 2, 4, 4, NULL), CLATTN_NULL_POINTER, "out");
    d.eps = -1;
    expect(clattn_linear_state_create(ctx, &d, 1, 2, 4, 4, &st), CLATTN_INVALID_ARGUMENT, "eps");
    d.eps = 0; /* the default */
    seqdata s;
    seq_make(&s, 1, 2, 10, 4, 6, CLATTN_FEATURE_ELU);
    st = state_new(&s, CLATTN_FEATURE_ELU);
    assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 2, 4, 5, &other), CLATTN_SUCCESS);
    expect(clattn_linear_state_copy(other, st, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "copy shapes");
    clattn_linear_state_destroy(other);
    d.feature_map = CLATTN_FEATURE_RELU;
    assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 2, 4, 6, &other), CLATTN_SUCCESS);
    expect(clattn_linear_state_copy(other, st, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
           "copy feature maps");
    clattn_linear_state_destroy(other);
    expect(clattn_linear_state_copy(NULL, st, 0, NULL, NULL), CLATTN_NULL_POINTER, "copy NULL");
    expect(clattn_linear_state_reset(NULL, 0, NULL, NULL), CLATTN_NULL_POINTER, "reset NULL");
    expect(clattn_linear_state_reset(st, 1, NULL, NULL), CLATTN_NULL_POINTER, "reset wait");

    clattn_tensor q = window(s.bq, &s, s.D, 0, 2), k = window(s.bk, &s, s.D, 0, 2);
    clattn_tensor v = window(s.bv, &s, s.Dv, 0, 2), o = window(s.bo, &s, s.Dv, 0, 2);
    expect(clattn_linear_step(st, &q, &k, &v, &o, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "step of 2 tokens");
    q.shape[2] = k.shape[2] = v.shape[2] = o.shape[2] = 1;
    expect(clattn_linear_step(st, &q, &k, &v, NULL, 0, NULL, NULL), CLATTN_NULL_POINTER,
           "step out NULL");
    expect(clattn_linear_step(NULL, &q, &k, &v, &o, 0, NULL, NULL), CLATTN_NULL_POINTER,
           "step NULL state");
    clattn_tensor q3 = q;
    q3.shape[3] = 3;
    expect(clattn_linear_step(st, &q3, &k, &v, &o, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "step D");
    clattn_tensor o2 = window(s.bv, &s, s.Dv, 0, 1);
    expect(clattn_linear_step(st, &q, &k, &v, &o2, 0, NULL, NULL), CLATTN_ALIASING,
           "step out aliases v");
    clattn_tensor k4 = window(s.bk, &s, s.D, 0, 4);
    expect(clattn_linear_prefill(st, &q, &k4, &v, NULL, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "prefill lengths");
    clattn_tensor v2 = v;
    v2.shape[1] = 1;
    expect(clattn_linear_prefill(st, &q, &k, &v2, NULL, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "prefill heads");
    /* None of that touched the state or the output. */
    float z[8];
    assert_int_equal(clattn_linear_state_read(st, NULL, z), CLATTN_SUCCESS);
    for (int i = 0; i < 8; i++)
        assert_true(z[i] == 0.0f);
    float out[2 * 10 * 6];
    tu_read(ctx, s.bo, sizeof out, out);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        assert_true(isnan(out[i]));
    clattn_linear_state_destroy(st);
    clattn_linear_state_destroy(NULL);
    seq_free(&s);
}

/* The caller's wait list is honoured: nothing runs before its user event completes. */
static void test_wait_list(void **state)
{
    (void)state;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    if (strncmp(info.name, "basic", 5) == 0) {
        /* PoCL 3.1's serial "basic" device deadlocks inside clSetUserEventStatus when a command
         * waits on a user event (as in test_softmax.c). */
        fprintf(stderr, "note: user-event gating skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    cl_int err;
    cl_event user = clCreateUserEvent(clattn_context_get_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    seqdata s;
    seq_make(&s, 1, 1, 20, 4, 4, CLATTN_FEATURE_ELU);
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.causal = 1;
    clattn_tensor q = window(s.bq, &s, s.D, 0, s.N), k = window(s.bk, &s, s.D, 0, s.N);
    clattn_tensor v = window(s.bv, &s, s.Dv, 0, s.N), o = window(s.bo, &s, s.Dv, 0, s.N);
    cl_event done = NULL;
    assert_int_equal(clattn_linear_enqueue(ctx, &d, &q, &k, &v, &o, 1, &user, &done),
                     CLATTN_SUCCESS);
    assert_non_null(done);
    clFlush(queue());
    cl_int es = 0;
    clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
    assert_true(es != CL_COMPLETE);
    clSetUserEventStatus(user, CL_COMPLETE);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    clReleaseEvent(done);
    clReleaseEvent(user);
    check_outputs(&s, "after wait list");
    seq_free(&s);
}

/* ---- FAVOR+ and momentum: the general reference (ref_linear_general) ----
 * Every desc below is checked against ref_linear_general, the fp64 recurrence written from
 * clattn.h's definitions; the FAVOR projection the library uses is fetched with
 * clattn_favor_draw (or is the caller's), so device and reference use the same W. */

/* The reference's parameters for a desc: eps as given (0: none), step size 0 -> 1 (as the
 * header documents). */
static double desc_eps(const clattn_linear_desc *d) { return (double)d->eps; }

static double desc_eta(const clattn_linear_desc *d)
{
    return d->step_size == 0.0f ? 1.0 : (double)d->step_size;
}

/* The W a FAVOR desc uses for head dim D (a copy of the caller's, or the one drawn from its
 * seed); NULL for the other maps. */
static float *desc_w(const clattn_linear_desc *d, size_t D)
{
    if (d->feature_map != CLATTN_FEATURE_FAVOR)
        return NULL;
    float *w = malloc(d->features * D * sizeof(float));
    assert_non_null(w);
    if (d->projection != NULL)
        memcpy(w, d->projection, d->features * D * sizeof(float));
    else
        assert_int_equal(clattn_favor_draw(d->features, D, d->seed, d->scaling, w),
                         CLATTN_SUCCESS);
    return w;
}

static void ref_of_desc(const clattn_linear_desc *d, const float *w, const float *q,
                        const float *k, const float *v, float *out, size_t B, size_t H, size_t Nq,
                        size_t Nk, size_t D, size_t Dv, int causal)
{
    ref_linear_general(q, k, v, out, B, H, Nq, Nk, D, Dv, (int)d->feature_map, w, d->features,
                       desc_eps(d), causal, (int)d->momentum, (double)d->mu, desc_eta(d));
}

/* A desc of the given form. FAVOR with `supplied` gets a random W of its own in *wbuf (the
 * caller frees it), otherwise draws from wseed. */
static clattn_linear_desc make_desc(clattn_feature_map fmap, size_t M, int supplied,
                                    uint64_t wseed, size_t D, clattn_momentum mom, float mu,
                                    float eta, float **wbuf)
{
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = fmap;
    d.momentum = mom;
    d.mu = mu;
    d.step_size = eta;
    *wbuf = NULL;
    if (fmap == CLATTN_FEATURE_FAVOR) {
        d.features = M;
        d.seed = wseed;
        if (supplied) {
            /* Unit-variance entries, not orthogonal: a trained model's W is arbitrary. */
            *wbuf = malloc(M * D * sizeof(float));
            assert_non_null(*wbuf);
            uint64_t s = wseed;
            ref_fill_uniform(*wbuf, M * D, 1.7f, &s);
            d.projection = *wbuf;
            d.projection_shape[0] = M;
            d.projection_shape[1] = D;
        }
    }
    return d;
}

static const char *fmap_name(clattn_feature_map f)
{
    return f == CLATTN_FEATURE_ELU    ? "elu"
           : f == CLATTN_FEATURE_RELU ? "relu"
           : f == CLATTN_FEATURE_FAVOR ? "favor"
                                       : "identity";
}

static const char *mom_name(clattn_momentum m)
{
    return m == CLATTN_MOMENTUM_NONE ? "none" : m == CLATTN_MOMENTUM_FIXED ? "fixed" : "adaptive";
}

/* Runs clattn_linear_enqueue on host arrays [B, H, N, *] (stored on the device as [B, N, H, *]
 * views when bnhd); returns the output in [B, H, N, Dv] (poisoned before the run). */
static float *device_linear_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq,
                                   size_t Nk, size_t D, size_t Dv, const float *q,
                                   const float *k, const float *v, int bnhd)
{
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    float *out = poisoned(no);
    float *hq = bnhd ? tu_relayout(q, B, H, Nq, D, 1) : NULL;
    float *hk = bnhd ? tu_relayout(k, B, H, Nk, D, 1) : NULL;
    float *hv = bnhd ? tu_relayout(v, B, H, Nk, Dv, 1) : NULL;
    cl_mem bq = tu_buffer(ctx, nq * 4, bnhd ? hq : q), bk = tu_buffer(ctx, nk * 4, bnhd ? hk : k);
    cl_mem bv = tu_buffer(ctx, nv * 4, bnhd ? hv : v), bo = tu_buffer(ctx, no * 4, out);
    clattn_tensor tq = tu_view(bq, B, H, Nq, D, bnhd), tk = tu_view(bk, B, H, Nk, D, bnhd);
    clattn_tensor tv = tu_view(bv, B, H, Nk, Dv, bnhd), to = tu_view(bo, B, H, Nq, Dv, bnhd);
    if (clattn_linear_enqueue(ctx, d, &tq, &tk, &tv, &to, 0, NULL, NULL) != CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    tu_read(ctx, bo, no * 4, out);
    if (bnhd) {
        float *o = tu_relayout(out, B, H, Nq, Dv, 0);
        free(out);
        out = o;
    }
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(hq);
    free(hk);
    free(hv);
    return out;
}

static float *device_linear(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq,
                            size_t Nk, size_t D, size_t Dv, const float *q, const float *k,
                            const float *v)
{
    return device_linear_layout(d, B, H, Nq, Nk, D, Dv, q, k, v, 0);
}

/* Inputs uniform in [-amp, amp] (positive for the identity map, see the file comment). */
static float *inputs_amp(size_t n, clattn_feature_map f, float amp, uint64_t *seed)
{
    float *x = inputs(n, f == CLATTN_FEATURE_IDENTITY, seed);
    for (size_t i = 0; i < n; i++)
        x[i] *= amp;
    return x;
}

/* One run of desc d (its causal flag) against the reference, tensors as [B, N, H, *] views when
 * bnhd; returns the normalised error. */
static double check_desc_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq,
                                size_t Nk, size_t D, size_t Dv, float amp, double tol,
                                const char *what, int bnhd)
{
    uint64_t seed = 0x5eed ^ (Nq * 131 + Nk * 17 + D * 7 + Dv + d->features * 3);
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    float *q = inputs_amp(nq, d->feature_map, amp, &seed);
    float *k = inputs_amp(nk, d->feature_map, amp, &seed);
    float *v = inputs_amp(nv, CLATTN_FEATURE_ELU, 1.0f, &seed);
    float *w = desc_w(d, D), *ref = malloc(no * 4);
    assert_non_null(ref);
    ref_of_desc(d, w, q, k, v, ref, B, H, Nq, Nk, D, Dv, d->causal);
    float *out = device_linear_layout(d, B, H, Nq, Nk, D, Dv, q, k, v, bnhd);
    double maxref = 0, err = ref_max_abs_diff(out, ref, no, &maxref) / fmax(1.0, maxref);
    if (!(err <= tol))
        fail_msg("%s: %s %s causal%d B%zu H%zu Nq%zu Nk%zu D%zu Dv%zu M%zu: error %.3e > %.1e "
                 "(max|ref| %.3e)",
                 what, fmap_name(d->feature_map), mom_name(d->momentum), d->causal, B, H, Nq, Nk,
                 D, Dv, clattn_linear_feature_count(d, D), err, tol, maxref);
    free(q);
    free(k);
    free(v);
    free(w);
    free(ref);
    free(out);
    return err;
}

static double check_desc(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                         size_t D, size_t Dv, float amp, double tol, const char *what)
{
    return check_desc_layout(d, B, H, Nq, Nk, D, Dv, amp, tol, what, 0);
}

/* The reference against itself and against hand-computed values, before any device result is
 * compared with it. */
static void test_ref_general(void **state)
{
    (void)state;
    /* Hand-computed: identity map, D = Dv = 1, q = 1, k = (1, 2, 1), v = (1, 1, 2).
     * Fixed mu = eta = 0.5: P = -0.5, -1.25, -1.625; S = 0.5, 1.75, 3.375; z = 1, 3, 4.
     * Adaptive eta = 1: P_1 = -U_1 = -1, S_1 = 1; mu_2 = (1 - sqrt(|2 - 1| / |1 - 0|))^2 = 0,
     * P_2 = -2, S_2 = 3; mu_3 = (1 - sqrt(|2 - 2| / |3 - 1|))^2 = 1 -> 0.9999,
     * P_3 = -1.9998 - 2, S_3 = 6.9998. */
    const float hq[3] = {1, 1, 1}, hk[3] = {1, 2, 1}, hv[3] = {1, 1, 2};
    const double fixed[3] = {0.5 / 1, 1.75 / 3, 3.375 / 4}, adapt[3] = {1.0 / 1, 3.0 / 3,
                                                                         6.9998 / 4};
    double o[3], oc[3];
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 1, 0.5, 0.5);
    ref_linear_closed_form(hq, hk, hv, oc, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 0.5, 0.5);
    for (int i = 0; i < 3; i++) {
        assert_true(fabs(o[i] - fixed[i]) < 1e-14);
        assert_true(fabs(oc[i] - fixed[i]) < 1e-14);
    }
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 3, 3, 1, 1, 2, NULL, 0, 0.0, 1, 2, 0.0, 1.0);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(o[i] - adapt[i]) < 1e-14);
    /* Non-causal: every query reads the state after the last key. */
    ref_linear_general_d(hq, hk, hv, o, 1, 1, 2, 3, 1, 1, 2, NULL, 0, 0.0, 0, 2, 0.0, 1.0);
    assert_true(fabs(o[0] - adapt[2]) < 1e-14 && fabs(o[1] - adapt[2]) < 1e-14);

    /* FAVOR with one feature and D = 1: phi(x) = exp(w x - x^2 / 2); one key, so out = v
     * whatever the stabilisers, up to eps. */
    const float w1[1] = {0.7f};
    float one[1] = {3.0f}, key[1] = {-2.0f}, val[1] = {0.25f};
    ref_linear_general_d(one, key, val, o, 1, 1, 1, 1, 1, 1, 3, w1, 1, 0.0, 1, 0, 0.0, 1.0);
    assert_true(fabs(o[0] - 0.25) < 1e-14);

    /* The element-wise maps agree with the original reference. */
    size_t B = 1, H = 2, N = 70, D = 8, Dv = 6, M = 24, no = B * H * N * Dv;
    uint64_t seed = 11;
    float *q = inputs(B * H * N * D, 1, &seed), *k = inputs(B * H * N * D, 1, &seed);
    float *v = inputs(B * H * N * Dv, 0, &seed), *a = malloc(no * 4), *b = malloc(no * 4);
    for (int f = 0; f < 3; f++)
        for (int causal = 0; causal < 2; causal++) {
            ref_linear_attention(q, k, v, a, B, H, N, N, D, Dv, f, 1e-6, causal);
            ref_linear_general(q, k, v, b, B, H, N, N, D, Dv, f, NULL, 0, 1e-6, causal, 0, 0, 1);
            double mr, e = ref_max_abs_diff(b, a, no, &mr);
            assert_true(e <= 1e-6 * fmax(1.0, mr));
        }
    /* Recurrence (running rescaling) against the closed form (none), in double, for fixed
     * momentum and for plain attention (mu 0, eta 1), with keys whose log-scales jump by
     * hundreds (so the running maximum rescales the state many times). */
    float *w = malloc(M * D * 4);
    ref_fill_uniform(w, M * D, 1.7f, &seed);
    for (size_t j = 0; j < N; j += 9)
        for (size_t d = 0; d < D; d++)
            k[j * D + d] *= (float)(1 + j % 5) * 10.0f;
    double *r1 = malloc(no * sizeof(double)), *r2 = malloc(no * sizeof(double));
    static const double mus[][2] = {{0.0, 1.0}, {0.9, 0.5}, {0.3, 2.0}};
    for (int f = 0; f < 4; f += 3)
        for (int causal = 0; causal < 2; causal++)
            for (int m = 0; m < 3; m++) {
                ref_linear_general_d(q, k, v, r1, B, H, N, N, D, Dv, f, w, M, 1e-6, causal,
                                     mus[m][0] == 0.0 && mus[m][1] == 1.0 ? 0 : 1, mus[m][0],
                                     mus[m][1]);
                ref_linear_closed_form(q, k, v, r2, B, H, N, N, D, Dv, f, w, M, 1e-6, causal,
                                       mus[m][0], mus[m][1]);
                double e = 0, mr = 0;
                for (size_t x = 0; x < no; x++) {
                    e = fmax(e, fabs(r1[x] - r2[x]));
                    mr = fmax(mr, fabs(r2[x]));
                }
                if (!(e <= 1e-10 * fmax(1.0, mr)))
                    fail_msg("closed form fmap %d causal %d mu %g: %.3e", f, causal, mus[m][0], e);
            }
    /* Momentum with mu = 0 and eta = 1 is plain linear attention. */
    ref_linear_general_d(q, k, v, r1, B, H, N, N, D, Dv, 3, w, M, 1e-6, 1, 1, 0.0, 1.0);
    ref_linear_general_d(q, k, v, r2, B, H, N, N, D, Dv, 3, w, M, 1e-6, 1, 0, 0.0, 1.0);
    for (size_t x = 0; x < no; x++)
        assert_true(fabs(r1[x] - r2[x]) <= 1e-12 * fmax(1.0, fabs(r2[x])));
    free(q);
    free(k);
    free(v);
    free(a);
    free(b);
    free(w);
    free(r1);
    free(r2);
}

/* ---- FAVOR+ ---- */

static double dot_rows(const float *w, size_t a, size_t b, size_t D)
{
    double s = 0;
    for (size_t d = 0; d < D; d++)
        s += (double)w[a * D + d] * w[b * D + d];
    return s;
}

static void test_favor_draw(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{16, 16}, {40, 16}, {256, 64}, {5, 8}, {64, 1}, {300, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t M = shapes[s][0], D = shapes[s][1];
        float *w = malloc(M * D * 4), *w2 = malloc(M * D * 4), *w3 = malloc(M * D * 4);
        assert_non_null(w3);
        for (int sc = 0; sc < 2; sc++) {
            clattn_favor_scaling scaling = (clattn_favor_scaling)sc;
            assert_int_equal(clattn_favor_draw(M, D, 42, scaling, w), CLATTN_SUCCESS);
            assert_int_equal(clattn_favor_draw(M, D, 42, scaling, w2), CLATTN_SUCCESS);
            assert_memory_equal(w, w2, M * D * 4); /* the same seed, bit for bit */
            assert_int_equal(clattn_favor_draw(M, D, 43, scaling, w3), CLATTN_SUCCESS);
            /* Another seed, another W (with d = 1 and sqrt(d) norms every entry is +-1, so
             * only "not all equal" can be asked there). */
            size_t same = 0;
            for (size_t x = 0; x < M * D; x++)
                same += w[x] == w3[x];
            assert_true(same < M * D);
            if (D >= 3)
                assert_true(same <= M * D / 4);
            double sumsq = 0;
            for (size_t r = 0; r < M; r++) {
                double nr = sqrt(dot_rows(w, r, r, D));
                assert_true(isfinite(nr) && nr > 0);
                sumsq += nr * nr;
                if (scaling == CLATTN_FAVOR_SQRT_D)
                    assert_true(fabs(nr - sqrt((double)D)) <= 1e-5 * sqrt((double)D));
                /* Rows within a d-block are orthogonal. */
                for (size_t r2 = (r / D) * D; r2 < r; r2++) {
                    double c = dot_rows(w, r, r2, D) / (nr * sqrt(dot_rows(w, r2, r2, D)));
                    if (!(fabs(c) <= 1e-5))
                        fail_msg("M%zu D%zu rows %zu, %zu: cosine %.3e", M, D, r, r2, c);
                }
            }
            if (scaling == CLATTN_FAVOR_GAUSSIAN_NORMS && M >= 64) {
                /* Squared norms of Gaussian D-vectors: chi^2_D, mean D, sd sqrt(2D) / sqrt(M)
                 * for the mean over M rows; 6 sd is far outside chance. */
                double mean = sumsq / (double)M;
                assert_true(fabs(mean - (double)D) <= 6.0 * sqrt(2.0 * D / (double)M));
            }
        }
        free(w);
        free(w2);
        free(w3);
    }
    float w[64];
    expect(clattn_favor_draw(4, 4, 1, CLATTN_FAVOR_SQRT_D, NULL), CLATTN_NULL_POINTER, "draw NULL");
    expect(clattn_favor_draw(0, 4, 1, CLATTN_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE, "draw m 0");
    expect(clattn_favor_draw(4, 0, 1, CLATTN_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE, "draw d 0");
    expect(clattn_favor_draw(4097, 1, 1, CLATTN_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
           "draw m 4097");
    expect(clattn_favor_draw(1, 257, 1, CLATTN_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
           "draw d 257");
    expect(clattn_favor_draw(4, 4, 1, (clattn_favor_scaling)2, w), CLATTN_INVALID_ARGUMENT,
           "draw scaling");

    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    assert_int_equal(clattn_linear_feature_count(&d, 24), 24);
    assert_int_equal(clattn_linear_feature_count(NULL, 24), 24);
    d.feature_map = CLATTN_FEATURE_FAVOR;
    assert_int_equal(clattn_linear_feature_count(&d, 24), 256); /* the default M */
    d.features = 100;
    assert_int_equal(clattn_linear_feature_count(&d, 24), 100);
    d.feature_map = CLATTN_FEATURE_RELU;
    assert_int_equal(clattn_linear_feature_count(&d, 7), 7);
}

/* The caller's W, non-causal (also cross-attention lengths) and causal, against the reference. */
static void test_favor_supplied(void **state)
{
    (void)state;
    static const size_t cases[][5] = {
        /* N, D, M, Dv, H */
        {1, 8, 16, 8, 2}, {7, 8, 16, 5, 2}, {65, 16, 64, 16, 2}, {130, 32, 100, 24, 1},
        {300, 64, 256, 16, 1}, {129, 24, 17, 40, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int causal = 0; causal < 2; causal++) {
            size_t N = cases[i][0], D = cases[i][1], M = cases[i][2], Dv = cases[i][3],
                   H = cases[i][4];
            if (N == 300 && (!causal || llvmpipe))
                continue; /* covered by the smaller shapes; ~3 s of CPU per call on llvmpipe */
            float *w;
            clattn_linear_desc d = make_desc(CLATTN_FEATURE_FAVOR, M, 1, 1000 + i, D,
                                             CLATTN_MOMENTUM_NONE, 0, 0, &w);
            d.causal = causal;
            check_desc(&d, 1, H, N, N, D, Dv, 1.0f, TOL, "favor supplied W");
            if (!causal && N < 200)
                check_desc(&d, 2, 1, N / 2 + 1, N + 3, D, Dv, 1.0f, TOL, "favor cross");
            free(w);
        }
}

/* On llvmpipe the library refuses FAVOR with more than 896 features (UNSUPPORTED, see the
 * header): check that refusal instead of the result, with the output left untouched. */
static void expect_llvmpipe_refusal(const clattn_linear_desc *d, size_t N, size_t D)
{
    size_t qs[4] = {1, 1, N, D}, vs[4] = {1, 1, N, 4};
    float *q = calloc(N * D, sizeof *q), *v = calloc(N * 4, sizeof *v), *o = malloc(N * 16);
    assert_non_null(q);
    assert_non_null(v);
    assert_non_null(o);
    memset(o, 0x7f, N * 16);
    assert_int_equal(clattn_linear_host(ctx, d, qs, qs, vs, q, q, v, o), CLATTN_UNSUPPORTED);
    for (size_t i = 0; i < N * 4; i++)
        assert_int_equal(((const unsigned char *)o)[i * 4], 0x7f);
    free(q);
    free(v);
    free(o);
}

/* W drawn by the library from desc.seed (both scalings); the reference draws the same W with
 * clattn_favor_draw. Larger inputs (|x| up to 2, D = 8) give logits spread over several units,
 * which the stabilisers must absorb. */
static void test_favor_drawn(void **state)
{
    (void)state;
    static const size_t cases[][3] = {{100, 16, 64}, {100, 8, 256}, {64, 64, 16}, {33, 8, 4096}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int sc = 0; sc < 2; sc++)
            for (int causal = 0; causal < 2; causal++) {
                size_t N = cases[i][0], D = cases[i][1], M = cases[i][2];
                /* The scaling only changes the host-side draw: both only for the first shape. */
                if ((sc && i > 0) || (D == 64 && !causal))
                    continue;
                float *w;
                clattn_linear_desc d = make_desc(CLATTN_FEATURE_FAVOR, M, 0, 7 + i, D,
                                                 CLATTN_MOMENTUM_NONE, 0, 0, &w);
                d.scaling = (clattn_favor_scaling)sc;
                d.causal = causal;
                if (llvmpipe && M > 896)
                    expect_llvmpipe_refusal(&d, N, D);
                else
                    check_desc(&d, 1, 2, N, N, D, 12, D <= 8 ? 2.0f : 1.0f, TOL,
                               "favor drawn W");
            }
}

/* FAVOR+ estimates softmax attention with scale 1/sqrt(D): more features, smaller error. Its
 * variance grows like exp(|q' + k'|^2), so how fast the error falls depends on the input norms
 * (measured in fp64 over 20 seeds, N 64, D 16, mean |error| at M = 16 / 256 / 4096: inputs in
 * [-0.5, 0.5] 0.0090 / 0.0022 / 0.0005, the 1/sqrt(M) rate; [-1, 1] 0.030 / 0.012 / 0.0036;
 * [-1.5, 1.5] 0.076 / 0.053 / 0.025). Over 5 seeds, M = 256 must beat M = 16 by 2x for the small
 * inputs (causal and not) and at all for [-1, 1] (non-causal). */
static void test_favor_softmax(void **state)
{
    (void)state;
    size_t N = 64, D = 16, Dv = 16, no = N * Dv;
    static const float amps[2] = {0.5f, 1.0f};
    static const double factor[2] = {0.5, 1.0};
    float *soft = malloc(no * 4), *ref = malloc(no * 4);
    for (int a = 0; a < 2; a++) {
        uint64_t seed = 99;
        float *q = inputs(N * D, 0, &seed), *k = inputs(N * D, 0, &seed);
        float *v = inputs(N * Dv, 0, &seed);
        for (size_t x = 0; x < N * D; x++)
            q[x] *= amps[a], k[x] *= amps[a];
        /* +-1.0: non-causal only, and not on llvmpipe, where each call costs ~150 ms. */
        if (a == 1 && llvmpipe)
            break;
        for (int causal = 0; causal < 2 - a; causal++) {
            double mean_err[2] = {0, 0};
            static const size_t Ms[2] = {16, 256};
            ref_softmax(q, k, v, soft, NULL, 1, 1, 1, N, N, D, 1.0 / sqrt((double)D), causal,
                          NULL);
            for (int mi = 0; mi < 2; mi++)
                for (uint64_t s = 1; s <= 5; s++) {
                    float *w;
                    clattn_linear_desc d = make_desc(CLATTN_FEATURE_FAVOR, Ms[mi], 0, s, D,
                                                     CLATTN_MOMENTUM_NONE, 0, 0, &w);
                    d.causal = causal;
                    float *out = device_linear(&d, 1, 1, N, N, D, Dv, q, k, v);
                    float *wd = desc_w(&d, D);
                    ref_of_desc(&d, wd, q, k, v, ref, 1, 1, N, N, D, Dv, causal);
                    check_close(out, ref, no, "favor vs its reference");
                    double e = 0;
                    for (size_t x = 0; x < no; x++)
                        e += fabs((double)out[x] - soft[x]);
                    mean_err[mi] += e / (double)no / 5.0;
                    free(out);
                    free(wd);
                }
            fprintf(stderr,
                    "note: FAVOR+ vs softmax (inputs +-%.1f, causal %d), mean |error| over 5 "
                    "seeds: M=16 %.4f, M=256 %.4f\n",
                    (double)amps[a], causal, mean_err[0], mean_err[1]);
            if (!(mean_err[1] < factor[a] * mean_err[0]))
                fail_msg("inputs +-%.1f causal %d: M=256 error %.4f not below %.1f x M=16's %.4f",
                         (double)amps[a], causal, mean_err[1], factor[a], mean_err[0]);
        }
        free(q);
        free(k);
        free(v);
    }
    free(soft);
    free(ref);
}

/* ---- momentum ---- */

/* Fixed momentum against the recurrence at every position (N = 200: three full 64-position
 * chunks and a partial one), non-causal, and the reference's recurrence against its closed form. */
static void test_momentum_fixed(void **state)
{
    (void)state;
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_RELU,
                                              CLATTN_FEATURE_IDENTITY, CLATTN_FEATURE_FAVOR};
    static const float mus[][2] = {{0.9f, 0.5f}, {0.5f, 1.0f}, {0.99f, 0.1f}};
    for (size_t f = 0; f < 4; f++)
        for (size_t m = 0; !light_skip(maps[f]) && m < (f == 0 || f == 3 ? 3 : 2); m++)
            for (int causal = 0; causal < 2; causal++) {
                float *w;
                clattn_linear_desc d = make_desc(maps[f], 32, m == 1, 21 + m, 16,
                                                 CLATTN_MOMENTUM_FIXED, mus[m][0], mus[m][1], &w);
                d.causal = causal;
                check_desc(&d, 1, 2, 200, 200, 16, 12, 1.0f, TOL, "fixed momentum");
                if (m == 0)
                    check_desc(&d, 2, 1, 1, 1, 16, 12, 1.0f, TOL, "fixed momentum N 1");
                if (!causal && m == 0)
                    check_desc(&d, 2, 1, 37, 150, 16, 12, 1.0f, TOL, "fixed momentum cross");
                free(w);
            }
}

/* mu = 0 and eta = 1 is plain linear attention (device against device); step size 0 means 1. */
static void test_momentum_limits(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 150, D = 16, Dv = 8, no = B * H * N * Dv;
    uint64_t seed = 31;
    float *q = inputs(B * H * N * D, 0, &seed), *k = inputs(B * H * N * D, 0, &seed);
    float *v = inputs(B * H * N * Dv, 0, &seed);
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_FAVOR};
    for (int f = llvmpipe ? 1 : 0; f < 2; f++)
        for (int causal = 0; causal < 2; causal++) {
            float *w;
            clattn_linear_desc plain = make_desc(maps[f], 64, 0, 5, D, CLATTN_MOMENTUM_NONE, 0, 0,
                                                 &w);
            clattn_linear_desc mom = plain;
            plain.causal = mom.causal = causal;
            mom.momentum = CLATTN_MOMENTUM_FIXED;
            mom.mu = 0.0f;
            mom.step_size = 1.0f;
            float *a = device_linear(&plain, B, H, N, N, D, Dv, q, k, v);
            float *b = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
            check_close(b, a, no, "mu 0 eta 1 vs plain");
            for (int adaptive = 0; causal && adaptive < 2; adaptive++) {
                mom.momentum = adaptive ? CLATTN_MOMENTUM_ADAPTIVE : CLATTN_MOMENTUM_FIXED;
                mom.mu = 0.7f;
                mom.step_size = 1.0f;
                float *c1 = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
                mom.step_size = 0.0f;
                float *c0 = device_linear(&mom, B, H, N, N, D, Dv, q, k, v);
                assert_memory_equal(c0, c1, no * 4);
                free(c0);
                free(c1);
            }
            free(a);
            free(b);
        }
    free(q);
    free(k);
    free(v);
}

/* Adaptive momentum (sequential scan) against the reference, causal and non-causal. */
static void test_momentum_adaptive(void **state)
{
    (void)state;
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_RELU,
                                              CLATTN_FEATURE_IDENTITY, CLATTN_FEATURE_FAVOR};
    static const float etas[] = {1.0f, 0.3f};
    for (size_t f = 0; f < 4; f++)
        for (size_t e = 0; !light_skip(maps[f]) && e < 2; e++)
            for (int causal = 0; causal < 2; causal++) {
                float *w;
                clattn_linear_desc d = make_desc(maps[f], 32, e, 40 + e, 16,
                                                 CLATTN_MOMENTUM_ADAPTIVE, 0, etas[e], &w);
                d.causal = causal;
                check_desc(&d, 2, 2, 200, 200, 16, 8, 1.0f, TOL, "adaptive momentum");
                if (e == 0)
                    check_desc(&d, 2, 1, 1, 1, 16, 8, 1.0f, TOL, "adaptive momentum N 1");
                if (!causal)
                    check_desc(&d, 1, 1, 20, 90, 16, 8, 1.0f, TOL, "adaptive momentum cross");
                free(w);
            }
}

/* The non-causal form by each algorithm (FUSED kernels, CLBlast GEMMs) and every feature map,
 * against the same reference (non-causal: r = max_j c_j, the per-head key maximum, for both);
 * GEMM is refused for the forms it does not compute. */
static void test_algorithms(void **state)
{
    (void)state;
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_RELU,
                                              CLATTN_FEATURE_IDENTITY, CLATTN_FEATURE_FAVOR};
    static const clattn_linear_algo algos[] = {CLATTN_LINEAR_FUSED, CLATTN_LINEAR_GEMM};
    for (size_t a = 0; a < 2; a++)
        for (size_t f = 0; f < 4; f++) {
            float *w;
            clattn_linear_desc d = make_desc(maps[f], 64, f == 3 && a == 1, 12, 16,
                                             CLATTN_MOMENTUM_NONE, 0, 0, &w);
            d.algorithm = algos[a];
            check_desc(&d, 1, 2, 70, 130, 16, 24, 1.0f, TOL, a ? "GEMM" : "FUSED");
            check_desc(&d, 2, 1, 1, 1, 16, 5, 1.0f, TOL, a ? "GEMM N 1" : "FUSED N 1");
            free(w);
        }
    /* The fused kernels with many features (AUTO may pick GEMM for this form). */
    {
        float *w;
        clattn_linear_desc d = make_desc(CLATTN_FEATURE_FAVOR, 1024, 0, 14, 8,
                                         CLATTN_MOMENTUM_NONE, 0, 0, &w);
        d.algorithm = CLATTN_LINEAR_FUSED;
        if (llvmpipe)
            expect_llvmpipe_refusal(&d, 33, 8);
        else
            check_desc(&d, 1, 1, 33, 33, 8, 12, 1.0f, TOL, "FUSED M 1024");
    }
    /* FAVOR with a wide spread of key log-scales (inputs up to +-3 with D 8): the shared per-head
     * scale must not lose the smaller keys beyond the tolerance. */
    for (size_t a = 0; a < 2; a++) {
        float *w;
        clattn_linear_desc d = make_desc(CLATTN_FEATURE_FAVOR, 128, 0, 13, 8,
                                         CLATTN_MOMENTUM_NONE, 0, 0, &w);
        d.algorithm = algos[a];
        check_desc(&d, 1, 1, 50, 90, 8, 16, 3.0f, TOL, a ? "GEMM wide" : "FUSED wide");
    }
    float one[64 * 2] = {0}, o[64];
    for (size_t i = 0; i < 64 * 2; i++)
        one[i] = 0.5f;
    for (size_t i = 0; i < 64; i++)
        o[i] = 7.0f;
    size_t qs[4] = {1, 1, 8, 8};
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.algorithm = CLATTN_LINEAR_GEMM;
    d.causal = 1;
    expect(clattn_linear_host(ctx, &d, qs, qs, qs, one, one, one, o), CLATTN_UNSUPPORTED,
           "GEMM causal");
    d.causal = 0;
    d.momentum = CLATTN_MOMENTUM_FIXED;
    d.mu = 0.5f;
    expect(clattn_linear_host(ctx, &d, qs, qs, qs, one, one, one, o), CLATTN_UNSUPPORTED,
           "GEMM fixed momentum");
    d.momentum = CLATTN_MOMENTUM_ADAPTIVE;
    expect(clattn_linear_host(ctx, &d, qs, qs, qs, one, one, one, o), CLATTN_UNSUPPORTED,
           "GEMM adaptive momentum");
    d.momentum = CLATTN_MOMENTUM_NONE;
    d.algorithm = (clattn_linear_algo)3;
    expect(clattn_linear_host(ctx, &d, qs, qs, qs, one, one, one, o), CLATTN_INVALID_ARGUMENT,
           "algorithm 3");
    for (size_t i = 0; i < 64; i++)
        assert_true(o[i] == 7.0f);
}

/* [B, N, H, D] strided views in every form. */
static void test_forms_strided(void **state)
{
    (void)state;
    static const struct {
        clattn_feature_map fmap;
        clattn_momentum mom;
        int supplied;
    } fs[] = {{CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_NONE, 0},
              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_FIXED, 1},
              {CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_ADAPTIVE, 0},
              {CLATTN_FEATURE_RELU, CLATTN_MOMENTUM_FIXED, 0}};
    for (size_t f = 0; f < sizeof fs / sizeof fs[0]; f++)
        for (int causal = 0; causal < 2; causal++) {
            float *w;
            clattn_linear_desc d = make_desc(fs[f].fmap, 40, fs[f].supplied, 9, 12, fs[f].mom,
                                             0.75f, 0.5f, &w);
            d.causal = causal;
            check_desc_layout(&d, 2, 3, 70, 70, 12, 10, 1.0f, TOL, "strided", 1);
            free(w);
        }
}

/* ---- the decoding state in every form ---- */

static void seq_make_desc(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                          const clattn_linear_desc *d)
{
    s->B = B, s->H = H, s->N = N, s->D = D, s->Dv = Dv;
    uint64_t seed = 1234 + N + 10 * (size_t)d->feature_map + 100 * (size_t)d->momentum;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    s->q = inputs_amp(nq, d->feature_map, 1.0f, &seed);
    s->k = inputs_amp(nq, d->feature_map, 1.0f, &seed);
    s->v = inputs_amp(nv, CLATTN_FEATURE_ELU, 1.0f, &seed);
    s->ref = malloc(nv * 4);
    assert_non_null(s->ref);
    float *w = desc_w(d, D);
    ref_of_desc(d, w, s->q, s->k, s->v, s->ref, B, H, N, N, D, Dv, 1);
    free(w);
    float *p = poisoned(nv);
    s->bq = tu_buffer(ctx, nq * 4, s->q);
    s->bk = tu_buffer(ctx, nq * 4, s->k);
    s->bv = tu_buffer(ctx, nv * 4, s->v);
    s->bo = tu_buffer(ctx, nv * 4, p);
    free(p);
}

static clattn_linear_state *state_of_desc(const seqdata *s, const clattn_linear_desc *d)
{
    clattn_linear_state *st = NULL;
    if (clattn_linear_state_create(ctx, d, s->B, s->H, s->D, s->Dv, &st) != CLATTN_SUCCESS)
        fail_msg("state create: %s", clattn_context_last_error(ctx));
    return st;
}

/* The forms the state tests run: every momentum form with ELU and FAVOR (drawn and supplied W). */
typedef struct form {
    clattn_feature_map fmap;
    clattn_momentum mom;
    int supplied;
} form;

static const form forms[] = {
    {CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_FIXED, 0},   {CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_ADAPTIVE, 0},
    {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_NONE, 0},  {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_NONE, 1},
    {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_FIXED, 1}, {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_ADAPTIVE, 0},
    {CLATTN_FEATURE_RELU, CLATTN_MOMENTUM_FIXED, 0},
};

static clattn_linear_desc form_desc(const form *f, size_t D, float **w)
{
    return make_desc(f->fmap, 48, f->supplied, 77, D, f->mom,
                     f->mom == CLATTN_MOMENTUM_FIXED ? 0.8f : 0.0f,
                     f->mom == CLATTN_MOMENTUM_ADAPTIVE ? 0.6f : 0.5f, w);
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
        float *p = poisoned(nv), *out = malloc(nv * 4);
        cl_mem bo2 = tu_buffer(ctx, nv * 4, p);
        for (size_t n = 0; n < 10; n++)
            step(st, &s, n, bo2);
        tu_read(ctx, bo2, nv * 4, out);
        for (size_t bh = 0; bh < s.B * s.H; bh++)
            check_close(out + bh * s.N * s.Dv, s.ref + bh * s.N * s.Dv, 10 * s.Dv, what);
        /* The state after the whole sequence. */
        prefill(st, &s, 10, s.N - 10, 0);
        size_t M = clattn_linear_feature_count(&d, s.D);
        size_t ns = s.B * s.H * M * s.Dv, nz = s.B * s.H * M;
        float *gs = malloc(ns * 4), *gz = malloc(nz * 4), *rs = malloc(ns * 4), *rz = malloc(nz * 4);
        float *wd = desc_w(&d, s.D);
        assert_int_equal(clattn_linear_state_read(st, gs, gz), CLATTN_SUCCESS);
        ref_linear_general_state(s.k, s.v, rs, rz, s.B, s.H, s.N, s.D, s.Dv, (int)d.feature_map,
                                 wd, M, (int)d.momentum, (double)d.mu, desc_eta(&d));
        check_close(gs, rs, ns, "state S");
        check_close(gz, rz, nz, "state z");
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

/* Causal outputs of a prefix do not depend on later tokens, for every feature map and momentum
 * form: N positions, then N + extra (random tokens appended). For FAVOR the first appended key is
 * also (1) of norm ~900, which breaks Performer's per-head stabiliser max_j,m (W k_j')_m, or (2)
 * D^(1/4) times W's longest row, the key with the largest possible log-scale c = |w|^2 / 2 (13.2
 * here; the random keys' c average 2.0, at most 4.5), which breaks a per-head max_j c_j: measured
 * in fp64 with such
 * stabilisers, the prefix rows move by 0.94 and 0.81. The prefix rows must agree within 1e-6
 * (normalised); bit-identical rows are counted. */
static void test_prefix_invariance(void **state)
{
    (void)state;
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_ELU, CLATTN_FEATURE_RELU,
                                              CLATTN_FEATURE_IDENTITY, CLATTN_FEATURE_FAVOR};
    size_t B = 1, H = 1, N = 130, extra = 40, NT = N + extra, D = 16, Dv = 8;
    size_t identical = 0, total = 0;
    for (size_t f = 0; f < 4; f++)
        for (int mom = 0; !light_skip(maps[f]) && mom < 3; mom++)
            for (int huge = 0; huge < (maps[f] == CLATTN_FEATURE_FAVOR ? 3 : 1); huge++) {
                float *w;
                clattn_linear_desc d = make_desc(maps[f], 64, 0, 3, D, (clattn_momentum)mom,
                                                 0.85f, 0.7f, &w);
                d.causal = 1;
                uint64_t seed = 555 + f * 7 + (size_t)mom;
                float *q = inputs_amp(B * H * NT * D, maps[f], 1.0f, &seed);
                float *k = inputs_amp(B * H * NT * D, maps[f], 1.0f, &seed);
                float *v = inputs_amp(B * H * NT * Dv, CLATTN_FEATURE_ELU, 1.0f, &seed);
                float *wd = desc_w(&d, D), *ref = malloc(B * H * NT * Dv * 4);
                size_t longest = 0;
                for (size_t m = 0; huge == 2 && m < 64; m++)
                    if (dot_rows(wd, m, m, D) > dot_rows(wd, longest, longest, D))
                        longest = m;
                for (size_t bh = 0; bh < B * H; bh++)
                    for (size_t x = 0; x < D; x++) {
                        float *kx = &k[(bh * NT + N) * D + x];
                        if (huge == 1)
                            *kx *= 400.0f;
                        else if (huge == 2)
                            *kx = wd[longest * D + x] * powf((float)D, 0.25f);
                    }
                /* The first N positions as their own [B, H, N, *] arrays. */
                float *q0 = malloc(B * H * N * D * 4), *k0 = malloc(B * H * N * D * 4);
                float *v0 = malloc(B * H * N * Dv * 4);
                for (size_t bh = 0; bh < B * H; bh++) {
                    memcpy(q0 + bh * N * D, q + bh * NT * D, N * D * 4);
                    memcpy(k0 + bh * N * D, k + bh * NT * D, N * D * 4);
                    memcpy(v0 + bh * N * Dv, v + bh * NT * Dv, N * Dv * 4);
                }
                float *a = device_linear(&d, B, H, N, N, D, Dv, q0, k0, v0);
                float *b = device_linear(&d, B, H, NT, NT, D, Dv, q, k, v);
                ref_of_desc(&d, wd, q, k, v, ref, B, H, NT, NT, D, Dv, 1);
                char what[96];
                snprintf(what, sizeof what, "prefix %s %s%s", fmap_name(maps[f]),
                         mom_name((clattn_momentum)mom),
                         huge == 1 ? " + huge key" : huge == 2 ? " + key of largest c" : "");
                check_close(b, ref, B * H * NT * Dv, what);
                for (size_t bh = 0; bh < B * H; bh++) {
                    const float *pa = a + bh * N * Dv, *pb = b + bh * NT * Dv;
                    double mr = 0, e = ref_max_abs_diff(pb, pa, N * Dv, &mr);
                    if (!(e <= 1e-6 * fmax(1.0, mr)))
                        fail_msg("%s: prefix rows changed by %.3e (max %.3e)", what, e, mr);
                    for (size_t i = 0; i < N; i++)
                        identical += memcmp(pa + i * Dv, pb + i * Dv, Dv * 4) == 0;
                    total += N;
                }
                free(q);
                free(k);
                free(v);
                free(q0);
                free(k0);
                free(v0);
                free(a);
                free(b);
                free(wd);
                free(ref);
                free(w);
            }
    fprintf(stderr, "note: prefix rows bit-identical after appending: %zu of %zu\n", identical,
            total);
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
        expect(clattn_linear_state_save(a, snap, bytes - 1), CLATTN_BUFFER_TOO_SMALL, "save short");
        assert_int_equal(clattn_linear_state_save(a, snap, bytes), CLATTN_SUCCESS);
        assert_int_equal(clattn_linear_state_load(b, snap, bytes), CLATTN_SUCCESS);
        size_t nv = s.B * s.H * s.N * s.Dv;
        float *p = poisoned(nv), *oa = malloc(nv * 4), *ob = malloc(nv * 4);
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
            expect(clattn_linear_state_load(b, bad, bytes), CLATTN_INVALID_ARGUMENT, "corrupt");
        }
        memset(bad, 0, bytes);
        expect(clattn_linear_state_load(b, bad, bytes), CLATTN_INVALID_ARGUMENT, "zeros");
        expect(clattn_linear_state_load(b, NULL, bytes), CLATTN_NULL_POINTER, "load NULL");
        expect(clattn_linear_state_save(b, NULL, bytes), CLATTN_NULL_POINTER, "save NULL");
        expect(clattn_linear_state_save_size(b, NULL), CLATTN_NULL_POINTER, "save_size NULL");
        assert_int_equal(clattn_linear_state_read(b, s1, NULL), CLATTN_SUCCESS);
        assert_memory_equal(s0, s1, ns * 4);

        /* A snapshot of another shape or desc. */
        clattn_linear_state *c = NULL;
        assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 3, 8, 6, &c), CLATTN_SUCCESS);
        expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT, "other heads");
        clattn_linear_state_destroy(c);
        clattn_linear_desc d2 = d;
        if (d.momentum == CLATTN_MOMENTUM_FIXED)
            d2.mu = 0.5f;
        else if (d.momentum == CLATTN_MOMENTUM_ADAPTIVE)
            d2.step_size = 0.25f;
        else if (d.projection == NULL)
            d2.seed = d.seed + 1;
        else
            d2.eps = 1e-3f;
        assert_int_equal(clattn_linear_state_create(ctx, &d2, 1, 2, 8, 6, &c), CLATTN_SUCCESS);
        expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT, "other desc");
        expect(clattn_linear_state_copy(c, a, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
               "copy across descs");
        clattn_linear_state_destroy(c);
        d2 = d;
        d2.momentum = d.momentum == CLATTN_MOMENTUM_NONE ? CLATTN_MOMENTUM_FIXED
                                                         : CLATTN_MOMENTUM_NONE;
        assert_int_equal(clattn_linear_state_create(ctx, &d2, 1, 2, 8, 6, &c), CLATTN_SUCCESS);
        expect(clattn_linear_state_load(c, snap, bytes), CLATTN_INVALID_ARGUMENT,
               "other momentum");
        expect(clattn_linear_state_copy(c, a, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
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
            check_close(oa + (bh * s.N + 30) * s.Dv, s.ref + (bh * s.N + 30) * s.Dv, 20 * s.Dv,
                        "copied state");
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
        if (d.momentum != CLATTN_MOMENTUM_NONE) {
            expect(clattn_linear_state_write(b, gs, gz), CLATTN_UNSUPPORTED, "write momentum");
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

/* Invalid FAVOR / momentum descs, for enqueue (output untouched) and state creation; a state used
 * with tensors of another shape. */
static void test_invalid_forms(void **state)
{
    (void)state;
    enum { N = 8, D = 4, DV = 6, NO = 2 * N * DV };
    float ones[2 * N * DV], sev[NO];
    for (size_t i = 0; i < 2 * N * DV; i++)
        ones[i] = 0.5f;
    for (size_t i = 0; i < NO; i++)
        sev[i] = 7.0f;
    cl_mem bq = tu_buffer(ctx, sizeof ones, ones), bk = tu_buffer(ctx, sizeof ones, ones);
    cl_mem bv = tu_buffer(ctx, sizeof ones, ones), bo = tu_buffer(ctx, sizeof sev, sev);
    clattn_tensor q = clattn_tensor_make(bq, 1, 2, N, D), k = clattn_tensor_make(bk, 1, 2, N, D);
    clattn_tensor v = clattn_tensor_make(bv, 1, 2, N, DV), o = clattn_tensor_make(bo, 1, 2, N, DV);
    float wgood[16 * D], wbad[16 * D];
    for (size_t i = 0; i < 16 * D; i++)
        wgood[i] = wbad[i] = 0.25f;
    wbad[5] = NAN;

    typedef struct bad {
        const char *what;
        clattn_linear_desc d;
        clattn_status want;
    } bad;
    bad cases[24];
    size_t nc = 0;
    clattn_linear_desc fav, mom;
    clattn_linear_desc_init(&fav);
    fav.feature_map = CLATTN_FEATURE_FAVOR;
    fav.features = 16;
    clattn_linear_desc_init(&mom);
    mom.momentum = CLATTN_MOMENTUM_FIXED;
    mom.mu = 0.5f;
#define BAD(name, base, field, value, status)                                                     \
    do {                                                                                           \
        cases[nc].what = name;                                                                     \
        cases[nc].d = base;                                                                        \
        cases[nc].d.field = value;                                                                 \
        cases[nc++].want = status;                                                                 \
    } while (0)
    BAD("favor M 0", fav, features, 0, CLATTN_INVALID_ARGUMENT);
    BAD("favor M 4097", fav, features, 4097, CLATTN_INVALID_ARGUMENT);
    BAD("favor scaling", fav, scaling, (clattn_favor_scaling)5, CLATTN_INVALID_ARGUMENT);
    BAD("mu -0.1", mom, mu, -0.1f, CLATTN_INVALID_ARGUMENT);
    BAD("mu 1", mom, mu, 1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("mu NaN", mom, mu, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("eta -1", mom, step_size, -1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("eta NaN", mom, step_size, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("eta inf", mom, step_size, INFINITY, CLATTN_INVALID_ARGUMENT);
    BAD("momentum 3", mom, momentum, (clattn_momentum)3, CLATTN_INVALID_ARGUMENT);
    BAD("momentum -1", mom, momentum, (clattn_momentum)-1, CLATTN_INVALID_ARGUMENT);
    mom.momentum = CLATTN_MOMENTUM_ADAPTIVE;
    BAD("adaptive eta -1", mom, step_size, -1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("adaptive eta NaN", mom, step_size, NAN, CLATTN_INVALID_ARGUMENT);
    fav.projection = wbad;
    fav.projection_shape[0] = 16;
    fav.projection_shape[1] = D;
    BAD("NaN in projection", fav, features, 16, CLATTN_INVALID_ARGUMENT);
    fav.projection = wgood;
    BAD("projection_shape M", fav, projection_shape[0], 15, CLATTN_SHAPE_MISMATCH);
    BAD("projection_shape D", fav, projection_shape[1], D + 1, CLATTN_SHAPE_MISMATCH);
    BAD("projection_shape 0", fav, projection_shape[1], 0, CLATTN_SHAPE_MISMATCH);
#undef BAD
    for (size_t i = 0; i < nc; i++)
        for (int causal = 0; causal < 2; causal++) {
            cases[i].d.causal = causal;
            expect(clattn_linear_enqueue(ctx, &cases[i].d, &q, &k, &v, &o, 0, NULL, NULL),
                   cases[i].want, cases[i].what);
        }
    check_untouched(bo, NO);
    float hout[NO];
    for (size_t i = 0; i < NO; i++)
        hout[i] = 7.0f;
    size_t qs[4] = {1, 2, N, D}, vs[4] = {1, 2, N, DV};
    for (size_t i = 0; i < nc; i++) {
        expect(clattn_linear_host(ctx, &cases[i].d, qs, qs, vs, ones, ones, ones, hout),
               cases[i].want, cases[i].what);
        clattn_linear_state *st = (clattn_linear_state *)&nc;
        clattn_status got = clattn_linear_state_create(ctx, &cases[i].d, 1, 2, D, DV, &st);
        /* State creation documents INVALID_ARGUMENT for a bad desc; a wrong projection_shape
         * may be reported as SHAPE_MISMATCH as for the enqueue. */
        if (got != cases[i].want && !(got == CLATTN_INVALID_ARGUMENT &&
                                      cases[i].want == CLATTN_SHAPE_MISMATCH))
            fail_msg("state create %s: got %s", cases[i].what, clattn_status_string(got));
        assert_null(st);
    }
    for (size_t i = 0; i < NO; i++)
        assert_true(hout[i] == 7.0f);

    /* A FAVOR state (D = 4, M = 16) used with tensors of another shape. */
    fav.projection = NULL;
    clattn_linear_state *st = NULL;
    assert_int_equal(clattn_linear_state_create(ctx, &fav, 1, 2, D, DV, &st), CLATTN_SUCCESS);
    clattn_tensor q1 = q, k1 = k, v1 = v, o1 = o;
    q1.shape[2] = k1.shape[2] = v1.shape[2] = o1.shape[2] = 1;
    clattn_tensor qd = clattn_tensor_make(bq, 1, 2, 1, D - 1), kd = clattn_tensor_make(bk, 1, 2, 1, D - 1);
    expect(clattn_linear_step(st, &qd, &kd, &v1, &o1, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "favor step D");
    clattn_tensor qh = clattn_tensor_make(bq, 1, 1, N, D), kh = clattn_tensor_make(bk, 1, 1, N, D);
    clattn_tensor vh = clattn_tensor_make(bv, 1, 1, N, DV), oh = clattn_tensor_make(bo, 1, 1, N, DV);
    expect(clattn_linear_prefill(st, &qh, &kh, &vh, &oh, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "favor prefill heads");
    clattn_tensor v5 = clattn_tensor_make(bv, 1, 2, 1, DV - 1), o5 = clattn_tensor_make(bo, 1, 2, 1, DV - 1);
    expect(clattn_linear_step(st, &q1, &k1, &v5, &o5, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "favor step Dv");
    /* A momentum state of the same shape is not a FAVOR one. */
    clattn_linear_desc dm;
    clattn_linear_desc_init(&dm);
    dm.momentum = CLATTN_MOMENTUM_FIXED;
    dm.mu = 0.5f;
    clattn_linear_state *sm = NULL;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, 2, D, DV, &sm), CLATTN_SUCCESS);
    expect(clattn_linear_state_copy(sm, st, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
           "copy favor into momentum");
    clattn_linear_state *sm2 = NULL;
    dm.mu = 0.25f;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, 2, D, DV, &sm2), CLATTN_SUCCESS);
    expect(clattn_linear_state_copy(sm2, sm, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
           "copy across mu");
    clattn_linear_state_destroy(sm2);
    dm.mu = 0.5f;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, 2, D, DV + 1, &sm2), CLATTN_SUCCESS);
    expect(clattn_linear_state_copy(sm2, sm, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
           "copy across shapes");
    clattn_linear_state_destroy(sm2);
    check_untouched(bo, NO);
    clattn_linear_state_destroy(sm);
    clattn_linear_state_destroy(st);
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
}

/* ---- plans: baked once, then no program lookup and no kernel creation ---- */

static clattn_context_stats stats_now(void)
{
    clattn_context_stats st;
    assert_int_equal(clattn_context_get_stats(ctx, &st), CLATTN_SUCCESS);
    return st;
}

static void expect_same_stats(const clattn_context_stats *a, const clattn_context_stats *b,
                              const char *what)
{
    if (a->kernels_created != b->kernels_created || a->program_lookups != b->program_lookups)
        fail_msg("%s: kernels created %u -> %u, program lookups %u -> %u", what,
                 a->kernels_created, b->kernels_created, a->program_lookups, b->program_lookups);
}

/* A decoding state bakes its plan at creation; 100 steps (after a prefill) then create no kernel
 * and look up no program, and still match causal attention over the whole sequence. Every form:
 * plain ELU, FAVOR+ with fixed momentum, adaptive momentum. */
static void test_state_steps_baked(void **state)
{
    (void)state;
    static const form fs[] = {{CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_NONE, 0},
                              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_FIXED, 0},
                              {CLATTN_FEATURE_RELU, CLATTN_MOMENTUM_ADAPTIVE, 0}};
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
        snprintf(what, sizeof what, "100 steps %s %s", fmap_name(fs[f].fmap),
                 mom_name(fs[f].mom));
        expect_same_stats(&before, &after, what);
        check_outputs(&s, what);
        clattn_linear_state_destroy(st);
        seq_free(&s);
        free(w);
    }
}

/* A plan of every form enqueued several times: the same results each time, no lookups. */
static void test_plan_reuse(void **state)
{
    (void)state;
    static const struct {
        clattn_feature_map fmap;
        clattn_momentum mom;
        int causal;
        clattn_linear_algo algo;
    } fs[] = {{CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_NONE, 0, CLATTN_LINEAR_FUSED},
              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_NONE, 0, CLATTN_LINEAR_GEMM},
              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_FIXED, 1, CLATTN_LINEAR_AUTO},
              {CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_ADAPTIVE, 0, CLATTN_LINEAR_AUTO}};
    size_t B = 1, H = 2, N = 90, D = 16, Dv = 8;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    for (size_t f = 0; f < sizeof fs / sizeof fs[0]; f++) {
        float *w;
        clattn_linear_desc d = make_desc(fs[f].fmap, 32, 0, 3, D, fs[f].mom, 0.6f, 0.5f, &w);
        d.causal = fs[f].causal;
        d.algorithm = fs[f].algo;
        uint64_t seed = 71 + f;
        float *q = inputs_amp(nq, d.feature_map, 1.0f, &seed);
        float *k = inputs_amp(nq, d.feature_map, 1.0f, &seed);
        float *v = inputs_amp(nv, CLATTN_FEATURE_ELU, 1.0f, &seed);
        float *wd = desc_w(&d, D), *ref = malloc(nv * 4), *out = malloc(nv * 4);
        ref_of_desc(&d, wd, q, k, v, ref, B, H, N, N, D, Dv, d.causal);
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nq * 4, k);
        cl_mem bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, nv * 4, NULL);
        size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
        clattn_plan *plan = NULL;
        assert_int_equal(clattn_linear_plan_create(ctx, &d, qs, qs, vs, &plan), CLATTN_SUCCESS);
        clattn_plan_info info;
        assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
        assert_int_equal(info.op, CLATTN_OP_LINEAR);
        assert_true(info.num_kernels >= 3 && strstr(info.build_options, "-DLINEAR_CHUNK="));
        if (fs[f].algo != CLATTN_LINEAR_AUTO)
            assert_int_equal(info.algorithm, fs[f].algo);
        clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D), tk = clattn_tensor_make(bk, B, H, N, D);
        clattn_tensor tv = clattn_tensor_make(bv, B, H, N, Dv), to = clattn_tensor_make(bo, B, H, N, Dv);
        clattn_context_stats before = stats_now();
        for (int rep = 0; rep < 3; rep++) {
            tu_poison_buffer(ctx, bo, nv * 4);
            cl_event ev = NULL;
            assert_int_equal(clattn_linear_plan_enqueue(plan, &tq, &tk, &tv, &to, 0, NULL, &ev),
                             CLATTN_SUCCESS);
            assert_non_null(ev);
            assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
            clReleaseEvent(ev);
            tu_read(ctx, bo, nv * 4, out);
            tu_check_close(out, ref, nv, TU_TOL_FP32, "plan reuse");
        }
        clattn_context_stats after = stats_now();
        expect_same_stats(&before, &after, "plan enqueues");
        clattn_plan_destroy(plan);
        cl_mem all[] = {bq, bk, bv, bo};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(k);
        free(v);
        free(wd);
        free(ref);
        free(out);
        free(w);
    }
}

/* ---- grouped-query attention: Hq query heads over Hk key/value heads ---- */

/* x [B][Hk][N][D] with every head repeated `group` times: [B][Hk * group][N][D] (query head h
 * reads key head h / group), so the reference computes GQA as multi-head attention. */
static float *expand_heads(const float *x, size_t B, size_t Hk, size_t N, size_t D, size_t group)
{
    float *y = malloc(B * Hk * group * N * D * sizeof *y);
    assert_non_null(y);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < Hk * group; h++)
            memcpy(y + ((b * Hk * group + h) * N) * D, x + ((b * Hk + h / group) * N) * D,
                   N * D * sizeof *y);
    return y;
}

/* Every form with GQA against the reference on expanded heads: non-causal (FUSED and GEMM),
 * causal, fixed and adaptive momentum, FAVOR+; group 2 (4 over 2 heads) and MQA (3 over 1). */
static void test_gqa(void **state)
{
    (void)state;
    static const struct {
        clattn_feature_map fmap;
        clattn_momentum mom;
        clattn_linear_algo algo;
    } fs[] = {{CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_NONE, CLATTN_LINEAR_FUSED},
              {CLATTN_FEATURE_ELU, CLATTN_MOMENTUM_NONE, CLATTN_LINEAR_GEMM},
              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_NONE, CLATTN_LINEAR_GEMM},
              {CLATTN_FEATURE_FAVOR, CLATTN_MOMENTUM_FIXED, CLATTN_LINEAR_AUTO},
              {CLATTN_FEATURE_RELU, CLATTN_MOMENTUM_ADAPTIVE, CLATTN_LINEAR_AUTO}};
    static const size_t heads[][2] = {{4, 2}, {3, 1}};
    size_t B = 2, N = 75, D = 16, Dv = 12;
    for (size_t f = 0; f < sizeof fs / sizeof fs[0]; f++)
        for (size_t hh = 0; hh < 2; hh++)
            for (int causal = 0; causal < 2; causal++) {
                if (causal && fs[f].algo == CLATTN_LINEAR_GEMM)
                    continue;
                size_t Hq = heads[hh][0], Hk = heads[hh][1], group = Hq / Hk;
                size_t Nq = causal ? N : N - 30;
                float *w;
                clattn_linear_desc d = make_desc(fs[f].fmap, 32, 0, 5, D, fs[f].mom, 0.7f, 0.6f,
                                                 &w);
                d.causal = causal;
                d.algorithm = fs[f].algo;
                uint64_t seed = 901 + f * 10 + hh;
                size_t nq = B * Hq * Nq * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv;
                size_t no = B * Hq * Nq * Dv;
                float *q = inputs_amp(nq, d.feature_map, 1.0f, &seed);
                float *k = inputs_amp(nk, d.feature_map, 1.0f, &seed);
                float *v = inputs_amp(nv, CLATTN_FEATURE_ELU, 1.0f, &seed);
                float *ke = expand_heads(k, B, Hk, N, D, group);
                float *ve = expand_heads(v, B, Hk, N, Dv, group);
                float *wd = desc_w(&d, D), *ref = malloc(no * 4), *out = malloc(no * 4);
                ref_of_desc(&d, wd, q, ke, ve, ref, B, Hq, Nq, N, D, Dv, causal);
                cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
                cl_mem bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, no * 4, NULL);
                tu_poison_buffer(ctx, bo, no * 4);
                clattn_tensor tq = clattn_tensor_make(bq, B, Hq, Nq, D);
                clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, D);
                clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, Dv);
                clattn_tensor to = clattn_tensor_make(bo, B, Hq, Nq, Dv);
                if (clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL) !=
                    CLATTN_SUCCESS)
                    fail_msg("GQA enqueue: %s", clattn_context_last_error(ctx));
                tu_read(ctx, bo, no * 4, out);
                char what[128];
                snprintf(what, sizeof what, "GQA %zu/%zu %s %s %s causal %d", Hq, Hk,
                         fmap_name(d.feature_map), mom_name(d.momentum),
                         fs[f].algo == CLATTN_LINEAR_GEMM ? "gemm" : "auto", causal);
                tu_check_close(out, ref, no, TU_TOL_FP32, what);
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
        float *v = inputs_amp(nv, CLATTN_FEATURE_ELU, 1.0f, &seed);
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
            clattn_status stt = len > 1 ? clattn_linear_prefill(st, &tq, &tk, &tv, &to, 0, NULL, NULL)
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

/* ---- eps: added to phi(q) . z in the formula's own scale ---- */

/* n standard Gaussians (Box-Muller on tu_random's uniforms); malloc'd. */
static float *gaussians(size_t n, uint64_t *seed)
{
    float *u = tu_random(2 * n, 1.0f, seed), *g = malloc(n * sizeof *g);
    assert_non_null(g);
    for (size_t i = 0; i < n; i++) {
        double u1 = 0.5 * ((double)u[2 * i] + 1.0) + 1e-12, u2 = 0.5 * ((double)u[2 * i + 1] + 1.0);
        g[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    free(u);
    return g;
}

/* True FAVOR+ features phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(M), x' = x D^(-1/4), in double. */
static void favor_true(const float *x, const float *w, size_t D, size_t M, double *phi)
{
    double s = pow((double)D, -0.25), n2 = 0;
    for (size_t d = 0; d < D; d++)
        n2 += (x[d] * s) * (x[d] * s);
    for (size_t m = 0; m < M; m++) {
        double u = 0;
        for (size_t d = 0; d < D; d++)
            u += (double)w[m * D + d] * x[d] * s;
        phi[m] = exp(u - n2 / 2) / sqrt((double)M);
    }
}

/* The issue's case: a standard Gaussian W (D 32, M 64) and Gaussian q, k; causal row 0 sees only
 * key 0, so out_0 = v_0 * t / (t + eps) with t = phi(q_0) . phi(k_0) (the formula's scale). For
 * the first seed where t >= 2 the formula gives v_0 within 5e-7; eps added to the stabilised
 * denominator gave 0.956 x v_0 in such a run. */
static void test_favor_eps_row0(void **state)
{
    (void)state;
    size_t N = 4, D = 32, M = 64, Dv = 8;
    double phq[64], phk[64], t = 0;
    float *q = NULL, *k = NULL, *w = NULL;
    uint64_t seed = 1;
    for (int tries = 0; tries < 200 && t < 2.0; tries++) {
        free(q);
        free(k);
        free(w);
        w = gaussians(M * D, &seed);
        q = gaussians(N * D, &seed);
        k = gaussians(N * D, &seed);
        favor_true(q, w, D, M, phq);
        favor_true(k, w, D, M, phk);
        t = 0;
        for (size_t m = 0; m < M; m++)
            t += phq[m] * phk[m];
    }
    assert_true(t >= 2.0);
    float *v = tu_random(N * Dv, 1.0f, &seed);
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = CLATTN_FEATURE_FAVOR;
    d.features = M;
    d.projection = w;
    d.projection_shape[0] = M;
    d.projection_shape[1] = D;
    d.causal = 1;
    float *out = device_linear(&d, 1, 1, N, N, D, Dv, q, k, v);
    for (size_t e = 0; e < Dv; e++) {
        double formula = v[e] * t / (t + (double)CLATTN_LINEAR_DEFAULT_EPS);
        assert_true(fabs(formula - v[e]) <= 5e-7 * fmax(1.0, fabs(v[e])));
        if (!(fabs(out[e] - v[e]) <= 1e-6 * fmax(1.0, fabs(v[e]))))
            fail_msg("row 0, column %zu: %.9g, want v_0 = %.9g (ratio %.6f; t = %.3f)", e,
                     (double)out[e], (double)v[e], (double)out[e] / v[e], t);
    }
    free(out);
    free(q);
    free(k);
    free(v);
    free(w);
}

/* A large eps (0.05, where its scale shows) in every form and feature map against the reference,
 * which adds it to phi(q) . z in the formula's scale: non-causal FUSED and GEMM, causal, fixed
 * and adaptive momentum, and a decoding state's prefill and steps. */
static void test_eps_forms(void **state)
{
    (void)state;
    static const clattn_feature_map maps[] = {CLATTN_FEATURE_FAVOR, CLATTN_FEATURE_ELU};
    static const clattn_momentum moms[] = {CLATTN_MOMENTUM_NONE, CLATTN_MOMENTUM_FIXED,
                                           CLATTN_MOMENTUM_ADAPTIVE};
    for (size_t f = 0; f < 2; f++)
        for (size_t m = 0; m < 3; m++)
            for (int causal = 0; causal < 2; causal++)
                for (int algo = 0; algo < (m == 0 && !causal ? 2 : 1); algo++) {
                    float *w;
                    clattn_linear_desc d = make_desc(maps[f], 32, 0, 8, 16, moms[m], 0.6f, 0.5f,
                                                     &w);
                    d.eps = 0.05f;
                    d.causal = causal;
                    d.algorithm = algo ? CLATTN_LINEAR_GEMM : CLATTN_LINEAR_FUSED;
                    check_desc(&d, 1, 2, 90, 90, 16, 8, 1.5f, TOL, "eps 0.05");
                    free(w);
                }
    /* The decoding state: prefill then steps. */
    for (size_t f = 0; f < 2; f++) {
        float *w;
        clattn_linear_desc d = make_desc(maps[f], 32, 0, 8, 16, CLATTN_MOMENTUM_FIXED, 0.6f, 0.5f,
                                         &w);
        d.eps = 0.05f;
        seqdata s;
        seq_make_desc(&s, 1, 2, 80, 16, 8, &d);
        clattn_linear_state *st = state_of_desc(&s, &d);
        prefill(st, &s, 0, 66, 1);
        for (size_t n = 66; n < s.N; n++)
            step(st, &s, n, s.bo);
        check_outputs(&s, "eps 0.05 state");
        clattn_linear_state_destroy(st);
        seq_free(&s);
        free(w);
    }
}

/* eps = 0 means no eps (not the default): outputs match the reference without one, and a row
 * whose denominator is exactly 0 (relu features of an all-negative query) outputs 0. */
static void test_eps_zero(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 70, D = 8, Dv = 6, no = B * H * N * Dv;
    uint64_t seed = 17;
    for (int fm = 0; fm < 2; fm++)
        for (int causal = 0; causal < 2; causal++)
            for (int algo = 0; algo < (causal ? 1 : 2); algo++) {
                clattn_feature_map fmap = fm ? CLATTN_FEATURE_FAVOR : CLATTN_FEATURE_RELU;
                float *w;
                clattn_linear_desc d = make_desc(fmap, 32, 0, 4, D, CLATTN_MOMENTUM_NONE, 0, 0,
                                                 &w);
                d.eps = 0.0f;
                d.causal = causal;
                d.algorithm = algo ? CLATTN_LINEAR_GEMM : CLATTN_LINEAR_FUSED;
                float *q = inputs(B * H * N * D, 0, &seed), *k = inputs(B * H * N * D, 0, &seed);
                float *v = inputs(B * H * N * Dv, 0, &seed), *ref = malloc(no * 4);
                for (size_t i = 0; i < N; i += 5) /* every fifth query all negative */
                    for (size_t x = 0; x < D; x++)
                        q[i * D + x] = -fabsf(q[i * D + x]) - 0.1f;
                float *wd = desc_w(&d, D);
                ref_of_desc(&d, wd, q, k, v, ref, B, H, N, N, D, Dv, causal);
                float *out = device_linear(&d, B, H, N, N, D, Dv, q, k, v);
                tu_check_close(out, ref, no, TU_TOL_FP32, "eps 0");
                if (fmap == CLATTN_FEATURE_RELU)
                    for (size_t i = 0; i < N; i += 5)
                        for (size_t e = 0; e < Dv; e++)
                            if (out[i * Dv + e] != 0.0f)
                                fail_msg("eps 0, zero denominator, row %zu: %g, want 0", i,
                                         (double)out[i * Dv + e]);
                free(q);
                free(k);
                free(v);
                free(ref);
                free(out);
                free(wd);
                free(w);
            }
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_context_last_error(NULL));
        return -1; /* a missing device is a failure, never a skip */
    }
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    fprintf(stderr, "device: %s / %s\n", info.platform_name, info.name);
    llvmpipe = strstr(info.name, "llvmpipe") != NULL;
    (void)llvmpipe;
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
        cmocka_unit_test(test_noncausal),
        cmocka_unit_test(test_noncausal_cross),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_head_dims),
        cmocka_unit_test(test_strided_layout),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_state_prefill_step),
        cmocka_unit_test(test_state_steps_only),
        cmocka_unit_test(test_state_read_write),
        cmocka_unit_test(test_state_copy_reset),
        cmocka_unit_test(test_state_invalid),
        cmocka_unit_test(test_wait_list),
        cmocka_unit_test(test_ref_general),
        cmocka_unit_test(test_favor_draw),
        cmocka_unit_test(test_favor_supplied),
        cmocka_unit_test(test_favor_drawn),
        cmocka_unit_test(test_favor_softmax),
        cmocka_unit_test(test_momentum_fixed),
        cmocka_unit_test(test_momentum_limits),
        cmocka_unit_test(test_momentum_adaptive),
        cmocka_unit_test(test_forms_strided),
        cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_state_forms),
        cmocka_unit_test(test_prefix_invariance),
        cmocka_unit_test(test_state_save_load),
        cmocka_unit_test(test_state_write_forms),
        cmocka_unit_test(test_invalid_forms),
        cmocka_unit_test(test_state_steps_baked),
        cmocka_unit_test(test_plan_reuse),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_gqa_state),
        cmocka_unit_test(test_favor_eps_row0),
        cmocka_unit_test(test_eps_forms),
        cmocka_unit_test(test_eps_zero),
    };
    /* CLATTN_TEST_FILTER=pattern runs only the matching cases (while developing). */
    if (getenv("CLATTN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CLATTN_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
