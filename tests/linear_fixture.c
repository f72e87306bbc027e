/* Shared fixture of the linear-attention suites (test_linear*.c): the context, random inputs,
 * descs of every form, the fp64 reference for a desc, device runs on host arrays and the decoding
 * state's sequence helpers. Comparisons go through tests/test_util.h's harness. */
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

clattn_context *ctx;
int llvmpipe;

const clattn_linear_feature_map fmaps[3] = {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_FEATURE_RELU,
                                     CLATTN_LINEAR_FEATURE_IDENTITY};

const form forms[7] = {
    {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_FIXED, 0},
    {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 0},
    {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_NONE, 0},
    {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_NONE, 1},
    {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED, 1},
    {CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 0},
    {CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_FIXED, 0},
};

void lin_expect(clattn_status got, clattn_status want, const char *what)
{
    tu_expect_status(ctx, got, want, what);
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
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int lin_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
    /* CLATTN_TEST_FILTER=pattern runs only the matching cases (while developing). */
    if (getenv("CLATTN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CLATTN_TEST_FILTER"));
    return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}

/* On llvmpipe every call of a new shape costs ~0.1 s of CPU (the existing tests alone take ~20 s
 * there on these shared machines), so the FAVOR+/momentum tests run the relu and identity maps
 * (the element-wise path ELU already covers) and a few duplicate forms only on PoCL's devices. */
int light_skip(clattn_linear_feature_map f)
{
    return llvmpipe && (f == CLATTN_LINEAR_FEATURE_RELU || f == CLATTN_LINEAR_FEATURE_IDENTITY);
}

/* Random inputs; q and k positive for the identity map (see the file comment). */
float *inputs(size_t n, int positive, uint64_t *seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    ref_fill_uniform(x, n, 1.0f, seed);
    if (positive)
        for (size_t i = 0; i < n; i++)
            x[i] = fabsf(x[i]) + 0.05f;
    return x;
}

/* Inputs uniform in [-amp, amp] (positive for the identity map, see the file comment). */
float *inputs_amp(size_t n, clattn_linear_feature_map f, float amp, uint64_t *seed)
{
    float *x = inputs(n, f == CLATTN_LINEAR_FEATURE_IDENTITY, seed);
    for (size_t i = 0; i < n; i++)
        x[i] *= amp;
    return x;
}

/* The reference's parameters for a desc: eps as given (0: none), step size 0 -> 1 (as the
 * header documents). */
double desc_eps(const clattn_linear_desc *d) { return (double)d->eps; }

double desc_eta(const clattn_linear_desc *d)
{
    return d->step_size == 0.0f ? 1.0 : (double)d->step_size;
}

/* The W a FAVOR desc uses for head dim D (a copy of the caller's, or the one drawn from its
 * seed); NULL for the other maps. */
float *desc_w(const clattn_linear_desc *d, size_t D)
{
    if (d->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return NULL;
    float *w = malloc(d->features * D * sizeof(float));
    assert_non_null(w);
    if (d->projection != NULL)
        memcpy(w, d->projection, d->features * D * sizeof(float));
    else
        assert_int_equal(clattn_linear_favor_draw(d->features, D, d->seed, d->scaling, w), CLATTN_SUCCESS);
    return w;
}

void ref_of_desc(const clattn_linear_desc *d, const float *w, const float *q, const float *k,
                 const float *v, float *out, size_t B, size_t H, size_t Nq, size_t Nk, size_t D,
                 size_t Dv, int causal)
{
    ref_linear_general(q, k, v, out, B, H, Nq, Nk, D, Dv, (int)d->feature_map, w, d->features,
                       desc_eps(d), causal, (int)d->momentum, (double)d->mu, desc_eta(d));
}

/* A desc of the given form. FAVOR with `supplied` gets a random W of its own in *wbuf (the
 * caller frees it), otherwise draws from wseed. */
clattn_linear_desc make_desc(clattn_linear_feature_map fmap, size_t M, int supplied, uint64_t wseed,
                             size_t D, clattn_linear_momentum mom, float mu, float eta, float **wbuf)
{
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = fmap;
    d.momentum = mom;
    d.mu = mu;
    d.step_size = eta;
    *wbuf = NULL;
    if (fmap == CLATTN_LINEAR_FEATURE_FAVOR) {
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

const char *fmap_name(clattn_linear_feature_map f)
{
    return f == CLATTN_LINEAR_FEATURE_ELU     ? "elu"
           : f == CLATTN_LINEAR_FEATURE_RELU  ? "relu"
           : f == CLATTN_LINEAR_FEATURE_FAVOR ? "favor"
                                       : "identity";
}

const char *mom_name(clattn_linear_momentum m)
{
    return m == CLATTN_LINEAR_MOMENTUM_NONE ? "none" : m == CLATTN_LINEAR_MOMENTUM_FIXED ? "fixed" : "adaptive";
}

/* Runs clattn_linear_enqueue on host arrays [B, H, N, *] (stored on the device as [B, N, H, *]
 * views when bnhd); returns the output in [B, H, N, Dv] (poisoned before the run). */
float *device_linear_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                            size_t D, size_t Dv, const float *q, const float *k, const float *v,
                            int bnhd)
{
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    float *out = tu_poisoned(no);
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

float *device_linear(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                     size_t D, size_t Dv, const float *q, const float *k, const float *v)
{
    return device_linear_layout(d, B, H, Nq, Nk, D, Dv, q, k, v, 0);
}

/* One run of desc d (its causal flag) against the reference, tensors as [B, N, H, *] views when
 * bnhd. */
void check_desc_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                       size_t D, size_t Dv, float amp, tu_tol tol, const char *what, int bnhd)
{
    uint64_t seed = 0x5eed ^ (Nq * 131 + Nk * 17 + D * 7 + Dv + d->features * 3);
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    float *q = inputs_amp(nq, d->feature_map, amp, &seed);
    float *k = inputs_amp(nk, d->feature_map, amp, &seed);
    float *v = inputs_amp(nv, CLATTN_LINEAR_FEATURE_ELU, 1.0f, &seed);
    float *w = desc_w(d, D), *ref = malloc(no * 4);
    assert_non_null(ref);
    ref_of_desc(d, w, q, k, v, ref, B, H, Nq, Nk, D, Dv, d->causal);
    float *out = device_linear_layout(d, B, H, Nq, Nk, D, Dv, q, k, v, bnhd);
    char full[256];
    snprintf(full, sizeof full, "%s: %s %s causal%d B%zu H%zu Nq%zu Nk%zu D%zu Dv%zu M%zu", what,
             fmap_name(d->feature_map), mom_name(d->momentum), d->causal, B, H, Nq, Nk, D, Dv,
             clattn_linear_feature_count(d, D));
    tu_check_close(out, ref, no, tol, full);
    free(q);
    free(k);
    free(v);
    free(w);
    free(ref);
    free(out);
}

void check_desc(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk, size_t D,
                size_t Dv, float amp, tu_tol tol, const char *what)
{
    check_desc_layout(d, B, H, Nq, Nk, D, Dv, amp, tol, what, 0);
}

void seq_make(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
              clattn_linear_feature_map fmap)
{
    s->B = B, s->H = H, s->N = N, s->D = D, s->Dv = Dv;
    uint64_t seed = 77 + N + (size_t)fmap;
    int pos = fmap == CLATTN_LINEAR_FEATURE_IDENTITY;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    s->q = inputs(nq, pos, &seed);
    s->k = inputs(nq, pos, &seed);
    s->v = inputs(nv, 0, &seed);
    s->ref = malloc(nv * 4);
    assert_non_null(s->ref);
    ref_linear_attention(s->q, s->k, s->v, s->ref, B, H, N, N, D, Dv, (int)fmap,
                         CLATTN_LINEAR_DEFAULT_EPS, 1);
    float *p = tu_poisoned(nv);
    s->bq = tu_buffer(ctx, nq * 4, s->q);
    s->bk = tu_buffer(ctx, nq * 4, s->k);
    s->bv = tu_buffer(ctx, nv * 4, s->v);
    s->bo = tu_buffer(ctx, nv * 4, p);
    free(p);
}

void seq_make_desc(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                   const clattn_linear_desc *d)
{
    s->B = B, s->H = H, s->N = N, s->D = D, s->Dv = Dv;
    uint64_t seed = 1234 + N + 10 * (size_t)d->feature_map + 100 * (size_t)d->momentum;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    s->q = inputs_amp(nq, d->feature_map, 1.0f, &seed);
    s->k = inputs_amp(nq, d->feature_map, 1.0f, &seed);
    s->v = inputs_amp(nv, CLATTN_LINEAR_FEATURE_ELU, 1.0f, &seed);
    s->ref = malloc(nv * 4);
    assert_non_null(s->ref);
    float *w = desc_w(d, D);
    ref_of_desc(d, w, s->q, s->k, s->v, s->ref, B, H, N, N, D, Dv, 1);
    free(w);
    float *p = tu_poisoned(nv);
    s->bq = tu_buffer(ctx, nq * 4, s->q);
    s->bk = tu_buffer(ctx, nq * 4, s->k);
    s->bv = tu_buffer(ctx, nv * 4, s->v);
    s->bo = tu_buffer(ctx, nv * 4, p);
    free(p);
}

void seq_free(seqdata *s)
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
clattn_tensor window(cl_mem buf, const seqdata *s, size_t d, size_t n0, size_t len)
{
    clattn_tensor t = clattn_tensor_make(buf, s->B, s->H, s->N, d);
    t.shape[2] = len;
    t.offset = n0 * t.strides[2];
    return t;
}

void prefill(clattn_linear_state *st, const seqdata *s, size_t n0, size_t len, int out)
{
    clattn_tensor q = window(s->bq, s, s->D, n0, len), k = window(s->bk, s, s->D, n0, len);
    clattn_tensor v = window(s->bv, s, s->Dv, n0, len), o = window(s->bo, s, s->Dv, n0, len);
    if (clattn_linear_prefill(st, &q, &k, &v, out ? &o : NULL, 0, NULL, NULL) != CLATTN_SUCCESS)
        fail_msg("prefill: %s", clattn_context_last_error(ctx));
}

void step(clattn_linear_state *st, const seqdata *s, size_t n, cl_mem obuf)
{
    clattn_tensor q = window(s->bq, s, s->D, n, 1), k = window(s->bk, s, s->D, n, 1);
    clattn_tensor v = window(s->bv, s, s->Dv, n, 1), o = window(obuf, s, s->Dv, n, 1);
    if (clattn_linear_step(st, &q, &k, &v, &o, 0, NULL, NULL) != CLATTN_SUCCESS)
        fail_msg("step: %s", clattn_context_last_error(ctx));
}

void check_outputs(const seqdata *s, const char *what)
{
    size_t nv = s->B * s->H * s->N * s->Dv;
    float *out = malloc(nv * 4);
    tu_read(ctx, s->bo, nv * 4, out);
    tu_check_close(out, s->ref, nv, LIN_TOL, what);
    free(out);
}

clattn_linear_state *state_new(const seqdata *s, clattn_linear_feature_map fmap)
{
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = fmap;
    clattn_linear_state *st = NULL;
    if (clattn_linear_state_create(ctx, &d, s->B, s->H, s->D, s->Dv, &st) != CLATTN_SUCCESS)
        fail_msg("state create: %s", clattn_context_last_error(ctx));
    return st;
}

clattn_linear_state *state_of_desc(const seqdata *s, const clattn_linear_desc *d)
{
    clattn_linear_state *st = NULL;
    if (clattn_linear_state_create(ctx, d, s->B, s->H, s->D, s->Dv, &st) != CLATTN_SUCCESS)
        fail_msg("state create: %s", clattn_context_last_error(ctx));
    return st;
}

clattn_linear_desc form_desc(const form *f, size_t D, float **w)
{
    return make_desc(f->fmap, 48, f->supplied, 77, D, f->mom,
                     f->mom == CLATTN_LINEAR_MOMENTUM_FIXED ? 0.8f : 0.0f,
                     f->mom == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? 0.6f : 0.5f, w);
}

/* x [B][Hk][N][D] with every head repeated `group` times: [B][Hk * group][N][D] (query head h
 * reads key head h / group), so the reference computes GQA as multi-head attention. */
float *expand_heads(const float *x, size_t B, size_t Hk, size_t N, size_t D, size_t group)
{
    float *y = malloc(B * Hk * group * N * D * sizeof *y);
    assert_non_null(y);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < Hk * group; h++)
            memcpy(y + ((b * Hk * group + h) * N) * D, x + ((b * Hk + h / group) * N) * D,
                   N * D * sizeof *y);
    return y;
}

clattn_context_stats stats_now(void)
{
    clattn_context_stats st;
    assert_int_equal(clattn_context_get_stats(ctx, &st), CLATTN_SUCCESS);
    return st;
}

void expect_same_stats(const clattn_context_stats *a, const clattn_context_stats *b,
                       const char *what)
{
    if (a->kernels_created != b->kernels_created || a->program_lookups != b->program_lookups)
        fail_msg("%s: kernels created %u -> %u, program lookups %u -> %u", what, a->kernels_created,
                 b->kernels_created, a->program_lookups, b->program_lookups);
}

/* On llvmpipe the library refuses FAVOR with more than 896 features (UNSUPPORTED, see the
 * header): check that refusal instead of the result, with the output left untouched. */
void expect_llvmpipe_refusal(const clattn_linear_desc *d, size_t N, size_t D)
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

cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

double dot_rows(const float *w, size_t a, size_t b, size_t D)
{
    double s = 0;
    for (size_t d = 0; d < D; d++)
        s += (double)w[a * D + d] * w[b * D + d];
    return s;
}
