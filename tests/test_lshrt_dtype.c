/* Half-precision storage (f16, bf16) in Reformer LSH attention and routing attention, on the device
 * chosen by CLATTN_DEVICE: every tensor role in its own type, against the fp64 references
 * (tests/reference/ref_lsh.c, ref_routing.c; they round their results to float, far below the
 * tolerance) computed on the SAME half-rounded inputs (tu_round_to).
 *
 * Type matrix (LSH: q, v, out; routing: q, k, v, out): all-f16, all-bf16, f16 in / f32 out,
 * f32 in / f16 out, mixed bf16 / f16 / f32. Every type set is a program of its own (-DQ_DT=...),
 * and building one costs far more than running these shapes (about 2.5 s of CPU on PoCL and
 * several times that on rusticl's llvmpipe, 0.1 s to run everything once built), so to keep CI
 * small the three device configs share the five type sets of each operator (pocl: all-f16 and
 * f32 in / f16 out; pocl_basic: all-bf16 and f16 in / f32 out; rusticl: the mixed set);
 * CLATTN_TEST_ALL_DTYPES=1 runs all five everywhere (they pass on all three). Shapes of tens: N = 1, N not a multiple of the
 * chunk (LSH) or window (routing), causal and not, large logits (|q.k| / sqrt(D) ~ 1e3), and for
 * routing positions routed nowhere or whose every key is hidden (zero rows: "masked rows").
 * Bucket and cluster choices depend on the rounded inputs: LSH compares the device's buckets with
 * the reference hash of the rounded q where its margin is clear and computes the reference
 * attention from the device's buckets; routing checks that every selection boundary of the
 * rounded inputs is clear (MIN_GAP) before comparing. Tolerance: clattn.h's accuracy contract,
 * tu_check_typed with TU_TOL_FP32 (|x - r| <= ulp_dt(r) + 1e-4 + 1e-4 |r|); lse (float32) with
 * TU_TOL_FP32. Bad input: an unknown dtype in a desc (INVALID_ARGUMENT), views of another type
 * than the plan's (DTYPE_MISMATCH), with every output byte untouched. */
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
#include "reference/ref_lsh.h"
#include "reference/ref_routing.h"
#include "test_util.h"
#include "../lib/tune/tune.h"

#define MARGIN 1e-4
#define MIN_GAP 1e-5

static clattn_context *ctx;

#define F32 CLATTN_F32
#define F16 CLATTN_F16
#define BF16 CLATTN_BF16

/* The type sets (see the top): all-f16, all-bf16, f16 in / f32 out, f32 in / f16 out, mixed. */
static const clattn_dtype LSH_SETS[5][3] = {
    {F16, F16, F16}, {BF16, BF16, BF16}, {F16, F16, F32}, {F32, F32, F16}, {BF16, F16, F32},
};
static const clattn_dtype ROUTING_SETS[5][4] = {
    {F16, F16, F16, F16}, {BF16, BF16, BF16, BF16}, {F16, F16, F16, F32},
    {F32, F32, F32, F16}, {BF16, F16, F32, BF16},
};
/* The sets this device config runs: picks[0..npicks). */
static size_t picks[5], npicks;

static void choose_sets(void)
{
    static const size_t by_config[3][2] = {{0, 3}, {1, 2}, {4, 4}}, count[3] = {2, 2, 1};
    const char *all = getenv("CLATTN_TEST_ALL_DTYPES"), *dev = getenv("CLATTN_DEVICE");
    const char *pd = getenv("POCL_DEVICES");
    if (all && strcmp(all, "1") == 0) {
        for (npicks = 0; npicks < 5; npicks++)
            picks[npicks] = npicks;
        return;
    }
    int cfg = dev && strstr(dev, "rusticl") ? 2 : pd && strcmp(pd, "basic") == 0 ? 1 : 0;
    picks[0] = by_config[cfg][0];
    picks[1] = by_config[cfg][1];
    npicks = count[cfg];
}

static void ok(clattn_status st, const char *what)
{
    tu_expect_status(ctx, st, CLATTN_SUCCESS, what);
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* A buffer holding x (n floats) as dt elements. */
static cl_mem typed_buffer(const float *x, size_t n, clattn_dtype dt)
{
    void *p = tu_pack(x, n, dt);
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), p);
    free(p);
    return m;
}

/* ---------------------------------------------------------------------------------------------- */
/* LSH                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

typedef struct lcase {
    size_t B, H, N, D, Dv, nh, nb, chunk;
    int causal, oneshot;
    float amp;
    clattn_dtype q, v, o;
} lcase;

static void lsh_case(const lcase *c, uint64_t seed)
{
    size_t half = c->nb / 2, nq = c->B * c->H * c->N * c->D, nv = c->B * c->H * c->N * c->Dv;
    size_t nl = c->B * c->H * c->N, nbk = c->B * c->H * c->nh * c->N, nr = c->nh * c->D * half;
    float *q = tu_random(nq, c->amp, &seed), *v = tu_random(nv, 1.0f, &seed);
    float *rot = malloc(nr * sizeof(float));
    assert_non_null(rot);
    tu_round_to(q, nq, c->q);
    tu_round_to(v, nv, c->v);
    assert_int_equal(clattn_lsh_rotations(c->nh, c->D, c->nb, seed, rot), CLATTN_SUCCESS);
    cl_mem bq = typed_buffer(q, nq, c->q), bv = typed_buffer(v, nv, c->v);
    size_t osz = clattn_dtype_size(c->o);
    cl_mem bo = tu_buffer(ctx, nv * osz, NULL), bl = tu_buffer(ctx, nl * 4, NULL);
    cl_mem bb = tu_buffer(ctx, nbk * 4, NULL);
    tu_poison_buffer(ctx, bo, nv * osz);
    tu_poison_buffer(ctx, bl, nl * 4);
    clattn_tensor tq = clattn_tensor_make_typed(bq, c->q, c->B, c->H, c->N, c->D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, c->v, c->B, c->H, c->N, c->Dv);
    clattn_tensor to = clattn_tensor_make_typed(bo, c->o, c->B, c->H, c->N, c->Dv);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->H, c->N, 1);
    clattn_tensor tb = clattn_tensor_make(bb, c->B, c->H, c->nh, c->N);
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    d.n_hashes = c->nh;
    d.n_buckets = c->nb;
    d.chunk_size = c->chunk;
    d.causal = c->causal;
    d.rotations = rot;
    d.rotations_shape[0] = c->nh;
    d.rotations_shape[1] = c->D;
    d.rotations_shape[2] = half;
    char what[160];
    snprintf(what, sizeof what, "lsh N%zu D%zu Dv%zu chunk%zu causal%d amp%g q %s v %s out %s",
             c->N, c->D, c->Dv, c->chunk, c->causal, (double)c->amp, clattn_dtype_name(c->q),
             clattn_dtype_name(c->v), clattn_dtype_name(c->o));
    if (c->oneshot) { /* the types come from the tensors: the desc's stay f32 */
        ok(clattn_lsh_enqueue(ctx, &d, &tq, &tv, &to, &tl, &tb, 0, NULL, NULL), what);
    } else {
        d.q_dtype = c->q;
        d.v_dtype = c->v;
        d.out_dtype = c->o;
        clattn_plan *plan = NULL;
        ok(clattn_lsh_plan_create(ctx, &d, tq.shape, tv.shape, &plan), what);
        clattn_plan_info info;
        ok(clattn_plan_get_info(plan, &info), "info");
        if (c->q != F32)
            assert_non_null(strstr(info.build_options, "-DQ_DT="));
        ok(clattn_lsh_plan_enqueue(plan, &tq, &tv, &to, &tl, &tb, 0, NULL, NULL), what);
        clattn_plan_destroy(plan);
    }
    void *out = malloc(nv * osz);
    float *lse = malloc(nl * 4), *ref = malloc(nv * 4), *rlse = malloc(nl * 4);
    int32_t *bk = malloc(nbk * 4), *want = malloc(nbk * 4);
    double *margin = malloc(nbk * sizeof *margin);
    assert_true(out && lse && ref && rlse && bk && want && margin);
    tu_read(ctx, bo, nv * osz, out);
    tu_read(ctx, bl, nl * 4, lse);
    tu_read(ctx, bb, nbk * 4, bk);
    /* Buckets of the rounded q: the device's must match where the choice is clear. */
    ref_lsh_hash(q, rot, want, margin, c->B, c->H, c->N, c->D, c->nh, c->nb);
    for (size_t i = 0; i < nbk; i++) {
        if (bk[i] < 0 || (size_t)bk[i] >= c->nb)
            fail_msg("%s: bucket %d out of range at %zu", what, bk[i], i);
        if (bk[i] != want[i] && margin[i] > MARGIN)
            fail_msg("%s: bucket %d, reference %d (margin %.2e) at %zu", what, bk[i], want[i],
                     margin[i], i);
    }
    ref_lsh_attention(q, v, bk, ref, rlse, c->B, c->H, c->N, c->D, c->Dv, c->nh, c->chunk,
                      c->causal, 0);
    double *refd = to_double(ref, nv);
    tu_check_typed(out, c->o, refd, nv, TU_TOL_FP32, what);
    tu_check_close(lse, rlse, nl, TU_TOL_FP32, what);
    cl_mem all[] = {bq, bv, bo, bl, bb};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(v);
    free(rot);
    free(out);
    free(lse);
    free(ref);
    free(rlse);
    free(bk);
    free(want);
    free(margin);
    free(refd);
}

static void test_lsh_types(void **state)
{
    (void)state;
    for (size_t j = 0; j < npicks; j++) {
        const clattn_dtype *t = LSH_SETS[picks[j]];
        /* N 37 in chunks of 8 (the last one short), causal and not. */
        for (int causal = 0; causal < 2; causal++) {
            lcase c = {1, 2, 37, 16, 12, 2, 8, 8, causal, 0, 1.0f, t[0], t[1], t[2]};
            lsh_case(&c, 10 + 2 * picks[j] + (uint64_t)causal);
        }
        /* N = 1 (a single position: it sees only itself). */
        lcase one = {2, 1, 1, 8, 8, 1, 4, 4, 1, 0, 1.0f, t[0], t[1], t[2]};
        lsh_case(&one, 1);
        /* Large logits: |q| ~ 1.7e3 sqrt(D / 3), logits q . k_hat / sqrt(D) up to ~1e3. */
        lcase big = {1, 1, 29, 8, 5, 2, 4, 16, (int)(j % 2), 0, 1700.0f, t[0], t[1], t[2]};
        lsh_case(&big, 2);
        /* The one-shot call takes its types from the tensors. */
        lcase os = {1, 2, 20, 16, 16, 1, 6, 7, 0, 1, 1.0f, t[0], t[1], t[2]};
        lsh_case(&os, 4);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Routing                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

typedef struct rcase {
    size_t B, Hq, Hk, N, D, Dv, C, w; /* w 0: auto */
    int causal, oneshot;
    float amp;
    clattn_dtype q, k, v, o;
} rcase;

static void routing_case(const rcase *c, uint64_t seed)
{
    size_t nq = c->B * c->Hq * c->N * c->D, nk = c->B * c->Hk * c->N * c->D;
    size_t nv = c->B * c->Hk * c->N * c->Dv, no = c->B * c->Hq * c->N * c->Dv;
    size_t nmu = c->Hk * c->C * c->D, w = c->w ? c->w : (c->N + c->C - 1) / c->C;
    float *q = tu_random(nq, c->amp, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *mu = tu_random(nmu, 1.0f, &seed);
    tu_round_to(q, nq, c->q);
    tu_round_to(k, nk, c->k);
    tu_round_to(v, nv, c->v);
    char what[200];
    snprintf(what, sizeof what,
             "routing B%zu Hq%zu Hk%zu N%zu D%zu Dv%zu C%zu w%zu causal%d amp%g q %s k %s v %s "
             "out %s",
             c->B, c->Hq, c->Hk, c->N, c->D, c->Dv, c->C, w, c->causal, (double)c->amp,
             clattn_dtype_name(c->q), clattn_dtype_name(c->k), clattn_dtype_name(c->v),
             clattn_dtype_name(c->o));
    float *ref = malloc(no * 4);
    assert_non_null(ref);
    double gap;
    double scale = 1.0 / sqrt((double)c->D);
    ref_routing_attention_gqa(q, k, v, mu, ref, c->B, c->Hq, c->Hk, c->N, c->D, c->Dv, c->C, w,
                              scale, c->causal, &gap);
    if (!(gap >= MIN_GAP))
        fail_msg("%s: a selection boundary is only %.2e wide: choose another seed", what, gap);
    size_t osz = clattn_dtype_size(c->o);
    cl_mem bq = typed_buffer(q, nq, c->q), bk = typed_buffer(k, nk, c->k);
    cl_mem bv = typed_buffer(v, nv, c->v), bmu = tu_buffer(ctx, nmu * 4, mu);
    cl_mem bo = tu_buffer(ctx, no * osz, NULL);
    tu_poison_buffer(ctx, bo, no * osz);
    clattn_tensor tq = clattn_tensor_make_typed(bq, c->q, c->B, c->Hq, c->N, c->D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, c->k, c->B, c->Hk, c->N, c->D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, c->v, c->B, c->Hk, c->N, c->Dv);
    clattn_tensor to = clattn_tensor_make_typed(bo, c->o, c->B, c->Hq, c->N, c->Dv);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, c->Hk, c->C, c->D);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.causal = c->causal;
    if (c->w)
        d.window = c->w;
    if (c->oneshot) {
        ok(clattn_routing_enqueue(ctx, &d, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL), what);
    } else {
        d.q_dtype = c->q;
        d.k_dtype = c->k;
        d.v_dtype = c->v;
        d.out_dtype = c->o;
        clattn_plan *plan = NULL;
        ok(clattn_routing_plan_create(ctx, &d, tq.shape, tk.shape, tv.shape, tmu.shape, &plan),
           what);
        ok(clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL), what);
        clattn_plan_destroy(plan);
    }
    void *out = malloc(no * osz);
    assert_non_null(out);
    tu_read(ctx, bo, no * osz, out);
    double *refd = to_double(ref, no);
    tu_check_typed(out, c->o, refd, no, TU_TOL_FP32, what);
    cl_mem all[] = {bq, bk, bv, bmu, bo};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(mu);
    free(ref);
    free(refd);
    free(out);
}

static void test_routing_types(void **state)
{
    (void)state;
    for (size_t j = 0; j < npicks; j++) {
        const clattn_dtype *t = ROUTING_SETS[picks[j]];
        /* N 30, C 4: w = 8 (the last cluster's slots overlap), GQA with two query heads per key
         * head; causal and not. */
        for (int causal = 0; causal < 2; causal++) {
            rcase c = {1, 4, 2, 30, 16, 12, 4, 0, causal, 0, 1.0f, t[0], t[1], t[2], t[3]};
            routing_case(&c, 60 + 2 * picks[j] + (uint64_t)causal);
        }
        /* N = 1. */
        rcase one = {1, 1, 1, 1, 8, 8, 1, 0, 1, 0, 1.0f, t[0], t[1], t[2], t[3]};
        routing_case(&one, 1);
        /* 3 clusters x w 4 for 37 positions: most are routed nowhere (zero rows); causal hides
         * every key from some of the rest (zero rows too). */
        rcase masked = {2, 1, 1, 37, 8, 6, 3, 4, 1, 0, 1.0f, t[0], t[1], t[2], t[3]};
        routing_case(&masked, 2);
        /* Large logits: scale |q| |k| cos / sqrt(D) up to ~1e3. */
        rcase big = {1, 2, 2, 24, 8, 8, 3, 0, (int)(j % 2), 0, 2000.0f, t[0], t[1], t[2], t[3]};
        routing_case(&big, 3);
        /* The one-shot call takes its types from the tensors. */
        rcase os = {1, 2, 1, 20, 8, 8, 2, 0, 0, 1, 1.0f, t[0], t[1], t[2], t[3]};
        routing_case(&os, 4);
    }
}

/* k-means++ and the EMA update read q and k in the plan's types (centroids stay float32). */
static void test_routing_centroids(void **state)
{
    (void)state;
    size_t B = 1, Hq = 2, Hk = 1, N = 24, D = 8, C = 3, nq = B * Hq * N * D, nk = B * Hk * N * D;
    size_t nmu = Hk * C * D;
    uint64_t seed = 91;
    const clattn_dtype *t = ROUTING_SETS[picks[npicks - 1]]; /* a plan built above */
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    tu_round_to(q, nq, t[0]);
    tu_round_to(k, nk, t[1]);
    float *rmu = malloc(nmu * 4), *gmu = malloc(nmu * 4);
    assert_true(rmu && gmu);
    ref_routing_kmeanspp_gqa(q, k, B, Hq, Hk, N, D, C, 77, rmu);
    cl_mem bq = typed_buffer(q, nq, t[0]), bk = typed_buffer(k, nk, t[1]);
    cl_mem bmu = tu_buffer(ctx, nmu * 4, NULL);
    clattn_tensor tq = clattn_tensor_make_typed(bq, t[0], B, Hq, N, D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, t[1], B, Hk, N, D);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, Hk, C, D);
    size_t vs[4] = {B, Hk, N, 4};
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.q_dtype = t[0];
    d.k_dtype = t[1];
    d.v_dtype = t[2];
    d.out_dtype = t[3];
    d.decay = 0.5f;
    clattn_plan *plan = NULL;
    ok(clattn_routing_plan_create(ctx, &d, tq.shape, tk.shape, vs, tmu.shape, &plan), "plan");
    ok(clattn_routing_centroids_draw(plan, &tq, &tk, 77, &tmu), "k-means++");
    tu_read(ctx, bmu, nmu * 4, gmu);
    assert_memory_equal(gmu, rmu, nmu * 4); /* a host computation on the same rounded data */
    double gap;
    ref_routing_update_gqa(q, k, rmu, B, Hq, Hk, N, D, C, 0.5, &gap);
    assert_true(gap >= MIN_GAP);
    ok(clattn_routing_update_centroids(plan, &tq, &tk, &tmu, 0, NULL, NULL), "update");
    tu_read(ctx, bmu, nmu * 4, gmu);
    tu_check_close(gmu, rmu, nmu, TU_TOL_FP32, "update");
    clattn_plan_destroy(plan);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bmu);
    free(q);
    free(k);
    free(rmu);
    free(gmu);
}

/* ---------------------------------------------------------------------------------------------- */
/* Bad input                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

/* A type other than dt. */
static clattn_dtype other(clattn_dtype dt) { return dt == F16 ? BF16 : F16; }

/* The refusals run on plans of this config's first type sets (programs built above). */
static void test_bad_input(void **state)
{
    (void)state;
    size_t B = 1, H = 1, N = 9, D = 8, n = B * H * N * D, nl = B * H * N, nmu = 2 * D;
    const clattn_dtype *L = LSH_SETS[picks[0]], *R = ROUTING_SETS[picks[0]];
    cl_mem bq = tu_buffer(ctx, n * 4, NULL), bk = tu_buffer(ctx, n * 4, NULL);
    cl_mem bv = tu_buffer(ctx, n * 4, NULL), bo = tu_buffer(ctx, n * 4, NULL);
    cl_mem bl = tu_buffer(ctx, nl * 4, NULL), bmu = tu_buffer(ctx, nmu * 4, NULL);
    tu_poison_buffer(ctx, bo, n * 4);
    tu_poison_buffer(ctx, bl, nl * 4);
    tu_poison_buffer(ctx, bmu, nmu * 4);
#define VIEW(buf, dt) clattn_tensor_make_typed(buf, dt, B, H, N, D)
    clattn_tensor lse = clattn_tensor_make(bl, B, H, N, 1);
    clattn_tensor lse16 = clattn_tensor_make_typed(bl, F16, B, H, N, 1);
    clattn_tensor mu = clattn_tensor_make(bmu, 1, H, 2, D);
    clattn_tensor mu16 = clattn_tensor_make_typed(bmu, F16, 1, H, 2, D);
    clattn_plan *plan = NULL;
    tu_watch wt;
    tu_watch_init(&wt, ctx);
    tu_watch_buffer(&wt, bo, n * 4, "out");
    tu_watch_buffer(&wt, bl, nl * 4, "lse");
    tu_watch_buffer(&wt, bmu, nmu * 4, "centroids");

    /* LSH: unknown dtypes in the desc, on a tensor of the one-shot call. */
    clattn_tensor q = VIEW(bq, L[0]), v = VIEW(bv, L[1]), out = VIEW(bo, L[2]);
    clattn_lsh_desc ld;
    clattn_lsh_desc_init(&ld);
    ld.n_buckets = 4;
    ld.v_dtype = (clattn_dtype)3;
    tu_expect_status(ctx, clattn_lsh_plan_create(ctx, &ld, q.shape, v.shape, &plan),
                     CLATTN_INVALID_ARGUMENT, "lsh v_dtype 3");
    assert_null(plan);
    ld.v_dtype = F32;
    ld.out_dtype = (clattn_dtype)-1;
    tu_expect_status(ctx, clattn_lsh_plan_create(ctx, &ld, q.shape, v.shape, &plan),
                     CLATTN_INVALID_ARGUMENT, "lsh out_dtype -1");
    clattn_tensor bad = q;
    bad.dtype = (clattn_dtype)7;
    tu_expect_status(ctx, clattn_lsh_enqueue(ctx, &ld, &bad, &v, &out, NULL, NULL, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "lsh one-shot q dtype 7");
    /* A typed plan refuses views of other types and a half lse. */
    ld.q_dtype = L[0];
    ld.v_dtype = L[1];
    ld.out_dtype = L[2];
    ok(clattn_lsh_plan_create(ctx, &ld, q.shape, v.shape, &plan), "lsh typed plan");
    clattn_tensor wq = VIEW(bq, other(L[0])), wv = VIEW(bv, other(L[1]));
    clattn_tensor wo = VIEW(bo, other(L[2]));
    tu_expect_status(ctx, clattn_lsh_plan_enqueue(plan, &wq, &v, &out, &lse, NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "lsh q of another type");
    tu_expect_status(ctx, clattn_lsh_plan_enqueue(plan, &q, &wv, &out, &lse, NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "lsh v of another type");
    tu_expect_status(ctx, clattn_lsh_plan_enqueue(plan, &q, &v, &wo, &lse, NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "lsh out of another type");
    tu_expect_status(ctx, clattn_lsh_plan_enqueue(plan, &q, &v, &out, &lse16, NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "lsh f16 lse");
    clattn_plan_destroy(plan);
    plan = NULL;

    /* Routing: unknown dtypes; views of other types; half centroids. */
    clattn_tensor rq = VIEW(bq, R[0]), rk = VIEW(bk, R[1]), rv = VIEW(bv, R[2]);
    clattn_tensor ro = VIEW(bo, R[3]);
    clattn_routing_desc rd;
    clattn_routing_desc_init(&rd);
    rd.k_dtype = (clattn_dtype)5;
    tu_expect_status(ctx,
                     clattn_routing_plan_create(ctx, &rd, rq.shape, rk.shape, rv.shape, mu.shape,
                                                &plan),
                     CLATTN_INVALID_ARGUMENT, "routing k_dtype 5");
    assert_null(plan);
    bad = ro;
    bad.dtype = (clattn_dtype)9;
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, NULL, &rq, &rk, &rv, &mu, &bad, 0, NULL,
                                                 NULL),
                     CLATTN_INVALID_ARGUMENT, "routing one-shot out dtype 9");
    rd.q_dtype = R[0];
    rd.k_dtype = R[1];
    rd.v_dtype = R[2];
    rd.out_dtype = R[3];
    ok(clattn_routing_plan_create(ctx, &rd, rq.shape, rk.shape, rv.shape, mu.shape, &plan),
       "routing typed plan");
    clattn_tensor wk = VIEW(bk, other(R[1])), wro = VIEW(bo, other(R[3]));
    clattn_tensor wrq = VIEW(bq, other(R[0]));
    tu_expect_status(ctx, clattn_routing_plan_enqueue(plan, &rq, &wk, &rv, &mu, &ro, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "routing k of another type");
    tu_expect_status(ctx,
                     clattn_routing_plan_enqueue(plan, &rq, &rk, &rv, &mu, &wro, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "routing out of another type");
    tu_expect_status(ctx,
                     clattn_routing_plan_enqueue(plan, &rq, &rk, &rv, &mu16, &ro, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "routing f16 centroids");
    tu_expect_status(ctx, clattn_routing_update_centroids(plan, &rq, &rk, &mu16, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "routing update into f16 centroids");
    tu_expect_status(ctx, clattn_routing_centroids_draw(plan, &wrq, &rk, 1, &mu),
                     CLATTN_DTYPE_MISMATCH, "routing k-means++ from q of another type");
    clattn_plan_destroy(plan);
    /* One-shot: the tensors' types are taken, but never half centroids. */
    tu_expect_status(ctx,
                     clattn_routing_enqueue(ctx, NULL, &rq, &rk, &rv, &mu16, &ro, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "routing one-shot f16 centroids");
#undef VIEW
    assert_int_equal(clFinish(clattn_context_get_cl_queue(ctx)), CL_SUCCESS);
    tu_watch_check(&wt, "refused half calls");
    tu_watch_free(&wt);
    cl_mem all[] = {bq, bk, bv, bo, bl, bmu};
    for (int i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
}

/* LSH's tuning-database key: typed plans get their own variant (".<q><v><out>"), float32 plans
 * keep the old one, so existing databases still serve them and never serve a half plan. */
static void test_lsh_tuning_key(void **state)
{
    (void)state;
    size_t qs[4] = {1, 2, 100, 32}, vs[4] = {1, 2, 100, 16};
    clattn_lsh_desc d;
    clattn_lsh_desc_init(&d);
    clattn__lsh_problem p;
    clattn_tuning_entry key;
    ok(clattn__lsh_problem_make(ctx, &d, qs, vs, &p), "problem f32");
    clattn__tune_lsh_key(&p, &key);
    assert_string_equal(key.variant, "h4-b64-c64");
    d.q_dtype = F16;
    d.v_dtype = F16;
    ok(clattn__lsh_problem_make(ctx, &d, qs, vs, &p), "problem f16");
    clattn__tune_lsh_key(&p, &key);
    assert_string_equal(key.variant, "h4-b64-c64.hhs");
    d.q_dtype = BF16;
    d.out_dtype = BF16;
    ok(clattn__lsh_problem_make(ctx, &d, qs, vs, &p), "problem bf16");
    clattn__tune_lsh_key(&p, &key);
    assert_string_equal(key.variant, "h4-b64-c64.bhb");
}

static int setup(void **state)
{
    (void)state;
    choose_sets();
    ctx = tu_context();
    return ctx ? 0 : -1;
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
        cmocka_unit_test(test_lsh_types),
        cmocka_unit_test(test_routing_types),
        cmocka_unit_test(test_routing_centroids),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_lsh_tuning_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
