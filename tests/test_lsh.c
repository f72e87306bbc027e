/* Reformer LSH attention against the fp64 host reference (tests/reference/ref_lsh.c), on the device
 * chosen by CLATTN_DEVICE; the plan API, validation and host call are in test_lsh_plan.c.
 *
 * The reference hashes in double; the device in float. Where a position's best and second-best
 * rotated coordinates are nearly equal (relative gap below MARGIN) the device may rightly choose
 * the other bucket, so every test reads the device's buckets back (the optional buckets output),
 * requires them to equal the reference's wherever the gap is clear, and computes the reference
 * attention from the device's buckets. Outputs are poisoned with NaN before each run so an
 * unwritten element fails. Tolerance: the house fp32 tolerance of DESIGN.md section 4
 * (TU_TOL_FP32: per element |x - r| <= 1e-4 + 1e-4 |r|, normalised error <= 1e-5), for out and
 * lse alike. */
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

typedef struct tcase {
    size_t B, H, N, D, Dv;
    size_t nh, nb, chunk;
    int causal, across;
    int seeded;    /* rotations drawn by the library from `seed` instead of given in the desc */
    int strided;   /* q, v, out as [B, N, H, D] views, behind a wait list; else a one-shot call */
    float amp;     /* input amplitude (large values: large logits) */
    uint64_t seed; /* rotation seed */
} tcase;

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

static float *alloc_f(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    return x;
}

static void check_close(const float *got, const float *ref, size_t n, const char *what)
{
    tu_check_close(got, ref, n, TU_TOL_FP32, what);
}

/* Device buckets must equal the reference's wherever the reference's choice is clear. */
static void check_buckets(const int32_t *got, const float *q, const float *rot, const tcase *c,
                          const char *what)
{
    size_t n = c->B * c->H * c->nh * c->N;
    int32_t *want = malloc(n * sizeof *want);
    double *margin = malloc(n * sizeof *margin);
    assert_non_null(want);
    assert_non_null(margin);
    ref_lsh_hash(q, rot, want, margin, c->B, c->H, c->N, c->D, c->nh, c->nb);
    size_t close = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] < 0 || (size_t)got[i] >= c->nb)
            fail_msg("%s: bucket %d out of range at %zu", what, got[i], i);
        if (got[i] != want[i]) {
            if (margin[i] > MARGIN)
                fail_msg("%s: bucket %d, reference %d (margin %.2e) at %zu", what, got[i],
                         want[i], margin[i], i);
            close++;
        }
    }
    if (close)
        printf("  %s: %zu near-tie bucket(s) differ from fp64 (allowed)\n", what, close);
    free(want);
    free(margin);
}

/* Runs one case: strided cases through a plan (made once, enqueued twice behind a wait list, the
 * second run on re-poisoned outputs), the others through the one-shot call. */
static void run_case(const tcase *c)
{
    uint64_t seed = 0x5eed ^ (c->N * 1315423911u + c->D * 2654435761u + c->nh * 97 + c->nb);
    size_t half = c->nb / 2, nq = c->B * c->H * c->N * c->D, nv = c->B * c->H * c->N * c->Dv;
    size_t no = nv, nl = c->B * c->H * c->N, nbk = c->B * c->H * c->nh * c->N;
    size_t nr = c->nh * c->D * half;
    float *q = alloc_f(nq), *v = alloc_f(nv), *rot = alloc_f(nr);
    ref_fill_uniform(q, nq, c->amp, &seed);
    ref_fill_uniform(v, nv, 1.0f, &seed);
    assert_int_equal(clattn_lsh_rotations(c->nh, c->D, c->nb, c->seed, rot), CLATTN_SUCCESS);
    float *out = tu_poisoned(no), *lse = tu_poisoned(nl);
    int32_t *bk = malloc(nbk * sizeof *bk);
    assert_non_null(bk);
    for (size_t i = 0; i < nbk; i++)
        bk[i] = -7;

    float *hq = c->strided ? tu_relayout(q, c->B, c->H, c->N, c->D, 1) : q;
    float *hv = c->strided ? tu_relayout(v, c->B, c->H, c->N, c->Dv, 1) : v;
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bv = tu_buffer(ctx, nv * 4, hv);
    cl_mem bo = tu_buffer(ctx, no * 4, out), bl = tu_buffer(ctx, nl * 4, lse);
    cl_mem bb = tu_buffer(ctx, nbk * 4, bk);
    clattn_tensor tq = tu_view(bq, c->B, c->H, c->N, c->D, c->strided);
    clattn_tensor tv = tu_view(bv, c->B, c->H, c->N, c->Dv, c->strided);
    clattn_tensor to = tu_view(bo, c->B, c->H, c->N, c->Dv, c->strided);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->H, c->N, 1);
    clattn_tensor tb = clattn_tensor_make(bb, c->B, c->H, c->nh, c->N);
    clattn_lsh_desc desc;
    clattn_lsh_desc_init(&desc);
    desc.n_hashes = c->nh;
    desc.n_buckets = c->nb;
    desc.chunk_size = c->chunk;
    desc.causal = c->causal;
    desc.attend_across_buckets = c->across;
    desc.seed = c->seed;
    if (!c->seeded) {
        desc.rotations = rot;
        desc.rotations_shape[0] = c->nh;
        desc.rotations_shape[1] = c->D;
        desc.rotations_shape[2] = half;
    }
    char what[200];
    snprintf(what, sizeof what,
             "B%zu H%zu N%zu D%zu Dv%zu hashes%zu buckets%zu chunk%zu causal%d across%d "
             "seeded%d strided%d amp%g",
             c->B, c->H, c->N, c->D, c->Dv, c->nh, c->nb, c->chunk, c->causal, c->across,
             c->seeded, c->strided, (double)c->amp);
    float *ref = alloc_f(no), *rlse = alloc_f(nl);
    float *got = c->strided ? alloc_f(no) : out;
    clattn_plan *plan = NULL;
    if (c->strided) {
        size_t qs[4] = {c->B, c->H, c->N, c->D}, vs[4] = {c->B, c->H, c->N, c->Dv};
        if (clattn_lsh_plan_create(ctx, &desc, qs, vs, &plan) != CLATTN_SUCCESS)
            fail_msg("plan: %s", clattn_context_last_error(ctx));
    }
    for (int run = 0; run < (c->strided ? 2 : 1); run++) {
        cl_event ev = NULL, before = NULL;
        if (run > 0) {
            tu_poison_buffer(ctx, bo, no * 4);
            tu_poison_buffer(ctx, bl, nl * 4);
        }
        clattn_status st;
        if (c->strided) {
            /* A wait list: an earlier command's event. */
            assert_int_equal(clEnqueueMarkerWithWaitList(queue(), 0, NULL, &before), CL_SUCCESS);
            st = clattn_lsh_plan_enqueue(plan, &tq, &tv, &to, &tl, &tb, 1, &before, &ev);
        } else {
            st = clattn_lsh_enqueue(ctx, &desc, &tq, &tv, &to, &tl, &tb, 0, NULL, &ev);
        }
        if (st != CLATTN_SUCCESS)
            fail_msg("enqueue: %s", clattn_context_last_error(ctx));
        if (before)
            clReleaseEvent(before);
        assert_non_null(ev);
        assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
        clReleaseEvent(ev);
        tu_read(ctx, bo, no * 4, out);
        tu_read(ctx, bl, nl * 4, lse);
        tu_read(ctx, bb, nbk * 4, bk);

        check_buckets(bk, q, rot, c, what);
        ref_lsh_attention(q, v, bk, ref, rlse, c->B, c->H, c->N, c->D, c->Dv, c->nh, c->chunk,
                          c->causal, c->across);
        if (c->strided) {
            float *t = tu_relayout(out, c->B, c->H, c->N, c->Dv, 0);
            memcpy(got, t, no * sizeof(float));
            free(t);
        }
        check_close(got, ref, no, what);
        check_close(lse, rlse, nl, what);
    }
    clattn_plan_destroy(plan);

    cl_mem all[] = {bq, bv, bo, bl, bb};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    if (c->strided) {
        free(hq);
        free(hv);
        free(got);
    }
    free(q);
    free(v);
    free(rot);
    free(out);
    free(lse);
    free(bk);
    free(ref);
    free(rlse);
}

static tcase mk(size_t B, size_t H, size_t N, size_t D, size_t Dv, size_t nh, size_t nb,
                size_t chunk, int causal, int across)
{
    tcase c = {B, H, N, D, Dv, nh, nb, chunk, causal, across, 0, 0, 1.0f, 42};
    return c;
}

/* The lengths issue 4 names: N = 1, N < chunk, N = 2 chunk + 3, N not a multiple of chunk;
 * causal and not, across buckets or not. */
static void test_edge_lengths(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 2, 5, 16, 17, 35, 100};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int causal = 0; causal < 2; causal++)
            for (int across = 0; across < 2; across++) {
                tcase c = mk(1, 2, lens[i], 16, 16, 2, 4, 16, causal, across);
                run_case(&c);
            }
}

/* Random shapes from a fixed seed: 1..8 hashes, bucket counts around and beyond 16 (the vector
 * width of the hash kernel), chunks that are not multiples of 16, head dims that are not. */
static void test_random_shapes(void **state)
{
    (void)state;
    static const size_t dims[][2] = {{16, 16}, {5, 7}, {64, 64}, {13, 3}};
    static const size_t nbs[] = {2, 4, 6, 8, 32, 40};
    static const size_t chunks[] = {1, 3, 8, 13, 32, 64};
    uint64_t s = 12345;
    for (int t = 0; t < 16; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = s >> 16;
        tcase c = mk(1 + x % 2, 1 + (x >> 3) % 2, 1 + (x >> 5) % 200, 0, 0, 1 + (x >> 13) % 8,
                     nbs[(x >> 16) % 6], chunks[(x >> 19) % 6], (int)((x >> 22) & 1),
                     (int)((x >> 23) % 4 == 0));
        c.D = dims[(x >> 25) % 4][0];
        c.Dv = dims[(x >> 25) % 4][1];
        c.seed = x;
        c.seeded = (int)((x >> 27) & 1);
        if (c.chunk * 2 + 3 < 200 && t % 5 == 0)
            c.N = c.chunk * 2 + 3;
        run_case(&c);
    }
}

/* Every hash count 1..8 on one shape, with library-drawn rotations. */
static void test_hash_counts(void **state)
{
    (void)state;
    for (size_t nh = 1; nh <= 8; nh++) {
        tcase c = mk(1, 1, 150, 16, 16, nh, 8, 20, (int)(nh & 1), 0);
        c.seeded = 1;
        c.seed = 1000 + nh;
        run_case(&c);
    }
}

static void test_strided(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = mk(2, 3, 70, 16, 5, 3, 6, 10, causal, causal);
        c.strided = 1;
        run_case(&c);
    }
}

/* Many buckets: above CLATTN__LSH_COUNTING_MAX_BUCKETS (1024) the plan sorts with the radix-sort
 * block (two 8-bit passes for 1026 and 65536 buckets, the most the desc allows), which must give
 * the same stable order as the counting sort. */
static void test_many_buckets(void **state)
{
    (void)state;
    static const size_t nbs[] = {1026, 4096, 65536};
    clattn_device_info dev;
    assert_int_equal(clattn_context_get_device_info(ctx, &dev), CLATTN_SUCCESS);
    for (size_t i = 0; i < sizeof nbs / sizeof nbs[0]; i++) {
        tcase c = mk(1, 2, 150, 8, 8, 2, nbs[i], 16, (int)(i & 1), 0);
        c.seeded = (int)(i & 1);
        c.strided = i == 1;
        /* A device that ends long loops (llvmpipe) refuses what its loops cannot finish. */
        clattn__lsh_problem p = {2, 150, 8, 8, 2, nbs[i], 16, c.causal, {0}};
        clattn__lsh_launch L;
        if (clattn__schedule_lsh(&dev, &p, &L, NULL, 0) == CLATTN_UNSUPPORTED) {
            assert_true(dev.loop_iteration_cap > 0);
            clattn_lsh_desc d;
            clattn_lsh_desc_init(&d);
            d.n_hashes = 2;
            d.n_buckets = nbs[i];
            d.chunk_size = 16;
            size_t qs[4] = {1, 2, 150, 8};
            clattn_plan *plan = NULL;
            tu_expect_status(ctx, clattn_lsh_plan_create(ctx, &d, qs, qs, &plan),
                             CLATTN_UNSUPPORTED, "many buckets past the loop cap");
            assert_null(plan);
            continue;
        }
        assert_int_equal(L.counting_sort, 0);
        run_case(&c);
    }
}

/* Head dims beyond 64 (the attention kernel then blocks 2 or 1 sorted queries per work-item),
 * D != Dv, up to the 256 limit. Few distinct padded dims: each is a kernel build. */
static void test_head_dims(void **state)
{
    (void)state;
    static const size_t dims[][2] = {{100, 72}, {250, 241}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        tcase c = mk(1, 2, 45, dims[i][0], dims[i][1], 2, 6, 16, (int)(i & 1), 0);
        run_case(&c);
    }
}

/* The register-tiled attend (clattn_lsh_attend_gpu, issue 12) forced on every device through
 * CLATTN_LSH_ATTEND_KERNEL: the default tile and a second one of its space (16 x 4 work-items of
 * 2 x 4), at test_head_dims' D 100, Dv 72 (Dp 112, Dvp 80: two Q/K chunks, two V chunks),
 * chunks that are not tile multiples (40: 48 slots; 64 with a partial last chunk), causal and
 * across buckets, N = 1. The other tiles run every other case of this file on rusticl (its
 * default there). */
static void test_tiled_attend(void **state)
{
    (void)state;
    static const char *tiles[] = {"tiled", "tiled:16,4,2,4"};
    const tcase cases[] = {
        mk(2, 2, 150, 100, 72, 2, 6, 40, 1, 0),
        mk(1, 2, 100, 100, 72, 1, 4, 64, 0, 1),
        mk(1, 1, 1, 100, 72, 1, 2, 16, 1, 0),
    };
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        assert_int_equal(setenv("CLATTN_LSH_ATTEND_KERNEL", tiles[t], 1), 0);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i]);
    }
    unsetenv("CLATTN_LSH_ATTEND_KERNEL");
}

/* Large values: logits in the hundreds must not overflow (online softmax). */
static void test_large_values(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = mk(1, 2, 90, 16, 16, 4, 4, 32, causal, 1);
        c.amp = 40.0f;
        run_case(&c);
    }
}

/* Property (issue 4): with n_buckets = 2 and chunk_size >= N, non-causal LSH attention equals
 * exact attention, per round, over the keys that share the query's bucket (its own position
 * scored -1e5), the rounds combined by their log-sum-exps. Computed here directly, without the
 * reference's sorting and chunking. */
static void test_property_two_buckets(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 57, D = 16, Dv = 9;
    for (size_t nh = 1; nh <= 3; nh += 2) {
        size_t nq = B * H * N * D, nv = B * H * N * Dv, nbk = B * H * nh * N;
        uint64_t seed = 99 + nh;
        float *q = alloc_f(nq), *v = alloc_f(nv), *out = tu_poisoned(nv), *want = alloc_f(nv);
        ref_fill_uniform(q, nq, 1.0f, &seed);
        ref_fill_uniform(v, nv, 1.0f, &seed);
        int32_t *bk = malloc(nbk * sizeof *bk);
        assert_non_null(bk);
        float *rot = alloc_f(nh * D);
        assert_int_equal(clattn_lsh_rotations(nh, D, 2, 7, rot), CLATTN_SUCCESS);
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bv = tu_buffer(ctx, nv * 4, v);
        cl_mem bo = tu_buffer(ctx, nv * 4, out);
        cl_mem bb = tu_buffer(ctx, nbk * 4, NULL);
        clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D);
        clattn_tensor tv = clattn_tensor_make(bv, B, H, N, Dv);
        clattn_tensor to = clattn_tensor_make(bo, B, H, N, Dv);
        clattn_tensor tb = clattn_tensor_make(bb, B, H, nh, N);
        clattn_lsh_desc desc;
        clattn_lsh_desc_init(&desc);
        desc.n_hashes = nh;
        desc.n_buckets = 2;
        desc.chunk_size = nh == 1 ? N : 1000; /* exactly N, and far beyond */
        desc.seed = 7;
        if (clattn_lsh_enqueue(ctx, &desc, &tq, &tv, &to, NULL, &tb, 0, NULL, NULL) !=
            CLATTN_SUCCESS)
            fail_msg("enqueue: %s", clattn_context_last_error(ctx));
        tu_read(ctx, bo, nv * 4, out);
        tu_read(ctx, bb, nbk * 4, bk);
        tcase c = mk(B, H, N, D, Dv, nh, 2, desc.chunk_size, 0, 0);
        check_buckets(bk, q, rot, &c, "two buckets");
        double scale = 1.0 / sqrt((double)D);
        for (size_t bh = 0; bh < B * H; bh++)
            for (size_t i = 0; i < N; i++) {
                const float *qi = q + (bh * N + i) * D;
                double lr[3], orr[3][16], mx_all = -INFINITY;
                for (size_t r = 0; r < nh; r++) {
                    const int32_t *br = bk + (bh * nh + r) * N;
                    double s[64], mx = -INFINITY, sum = 0;
                    for (size_t j = 0; j < N; j++) {
                        s[j] = -INFINITY;
                        if (br[j] != br[i])
                            continue;
                        const float *kj = q + (bh * N + j) * D;
                        double nrm = 0, dot = 0;
                        for (size_t d = 0; d < D; d++) {
                            nrm += (double)kj[d] * kj[d];
                            dot += (double)qi[d] * kj[d];
                        }
                        s[j] = j == i ? -1e5 : dot / sqrt(nrm) * scale;
                        mx = fmax(mx, s[j]);
                    }
                    for (size_t e = 0; e < Dv; e++)
                        orr[r][e] = 0;
                    for (size_t j = 0; j < N; j++) {
                        double p = exp(s[j] - mx);
                        sum += p;
                        for (size_t e = 0; e < Dv; e++)
                            orr[r][e] += p * v[(bh * N + j) * Dv + e];
                    }
                    for (size_t e = 0; e < Dv; e++)
                        orr[r][e] /= sum;
                    lr[r] = mx + log(sum);
                    mx_all = fmax(mx_all, lr[r]);
                }
                double tot = 0;
                for (size_t r = 0; r < nh; r++)
                    tot += exp(lr[r] - mx_all);
                for (size_t e = 0; e < Dv; e++) {
                    double acc = 0;
                    for (size_t r = 0; r < nh; r++)
                        acc += exp(lr[r] - mx_all) / tot * orr[r][e];
                    want[(bh * N + i) * Dv + e] = (float)acc;
                }
            }
        check_close(out, want, nv, nh == 1 ? "two buckets, one hash" : "two buckets, three hashes");
        cl_mem all[] = {bq, bv, bo, bb};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(v);
        free(out);
        free(want);
        free(bk);
        free(rot);
    }
}

/* Exact ties: rotations whose columns are all one vector w make every rotated coordinate equal,
 * so argmax over [x, -x] must take the first index: bucket 0 when q . w > 0, n_buckets / 2 when
 * q . w < 0, and bucket 0 for an all-zero query (whose key normalises to 0, not NaN). */
static void test_ties(void **state)
{
    (void)state;
    /* 40 buckets: 20 columns, so vector lanes 0-3 hold two tied columns each. */
    const size_t N = 40, D = 8, Dv = 8, NB = 40, NH = 2, half = NB / 2;
    uint64_t seed = 17;
    float *q = alloc_f(N * D), *v = alloc_f(N * Dv), *w = alloc_f(D), *rot = alloc_f(NH * D * half);
    float *out = tu_poisoned(N * Dv), *ref = alloc_f(N * Dv);
    ref_fill_uniform(q, N * D, 1.0f, &seed);
    ref_fill_uniform(v, N * Dv, 1.0f, &seed);
    ref_fill_uniform(w, D, 1.0f, &seed);
    for (size_t i = 0; i < N; i += 7)
        for (size_t d = 0; d < D; d++)
            q[i * D + d] = 0.0f;
    for (size_t r = 0; r < NH; r++)
        for (size_t d = 0; d < D; d++)
            for (size_t k = 0; k < half; k++)
                rot[(r * D + d) * half + k] = r == 0 ? w[d] : -w[d];
    int32_t *bk = malloc(NH * N * sizeof *bk);
    assert_non_null(bk);
    cl_mem bq = tu_buffer(ctx, N * D * 4, q), bv = tu_buffer(ctx, N * Dv * 4, v);
    cl_mem bo = tu_buffer(ctx, N * Dv * 4, out), bb = tu_buffer(ctx, NH * N * 4, NULL);
    clattn_tensor tq = clattn_tensor_make(bq, 1, 1, N, D), tv = clattn_tensor_make(bv, 1, 1, N, Dv);
    clattn_tensor to = clattn_tensor_make(bo, 1, 1, N, Dv);
    clattn_tensor tb = clattn_tensor_make(bb, 1, 1, NH, N);
    clattn_lsh_desc desc;
    clattn_lsh_desc_init(&desc);
    desc.n_hashes = NH;
    desc.n_buckets = NB;
    desc.chunk_size = 8;
    desc.rotations = rot;
    desc.rotations_shape[0] = NH;
    desc.rotations_shape[1] = D;
    desc.rotations_shape[2] = half;
    if (clattn_lsh_enqueue(ctx, &desc, &tq, &tv, &to, NULL, &tb, 0, NULL, NULL) !=
        CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    tu_read(ctx, bo, N * Dv * 4, out);
    tu_read(ctx, bb, NH * N * 4, bk);
    for (size_t r = 0; r < NH; r++)
        for (size_t i = 0; i < N; i++) {
            double x = 0;
            for (size_t d = 0; d < D; d++)
                x += (double)q[i * D + d] * rot[(r * D + d) * half];
            int32_t want = x < 0 ? (int32_t)half : 0;
            if (bk[r * N + i] != want)
                fail_msg("tie: round %zu position %zu: bucket %d, want %d", r, i, bk[r * N + i],
                         want);
        }
    ref_lsh_attention(q, v, bk, ref, NULL, 1, 1, N, D, Dv, NH, 8, 0, 0);
    check_close(out, ref, N * Dv, "ties and zero queries");
    cl_mem all[] = {bq, bv, bo, bb};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(v);
    free(w);
    free(rot);
    free(out);
    free(ref);
    free(bk);
}

/* The generator is deterministic per seed, differs across seeds, and looks standard normal. */
static void test_rotations(void **state)
{
    (void)state;
    enum { NH = 4, D = 64, NB = 64, N = NH * D * NB / 2 };
    float *a = alloc_f(N), *b = alloc_f(N), *c = alloc_f(N);
    /* Sizes, then the seed, then the output: the order of every draw (clattn_linear_favor_draw). */
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 1, a), CLATTN_SUCCESS);
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 1, b), CLATTN_SUCCESS);
    assert_int_equal(clattn_lsh_rotations(NH, D, NB, 2, c), CLATTN_SUCCESS);
    assert_memory_equal(a, b, N * sizeof(float));
    size_t same = 0;
    double mean = 0, var = 0, kurt = 0;
    for (size_t i = 0; i < N; i++) {
        same += a[i] == c[i];
        mean += a[i];
    }
    mean /= N;
    for (size_t i = 0; i < N; i++) {
        double x = a[i] - mean;
        var += x * x;
        kurt += x * x * x * x;
    }
    var /= N;
    kurt /= N * var * var;
    assert_true(same < 10);
    /* N = 8192 samples: standard errors 0.011 (mean), 0.016 (variance), 0.054 (kurtosis 3). */
    if (!(fabs(mean) < 0.05 && fabs(var - 1) < 0.08 && fabs(kurt - 3) < 0.3))
        fail_msg("rotations: mean %.3f variance %.3f kurtosis %.3f", mean, var, kurt);
    /* A prefix of a longer draw is not required, but the first element of the first pair is the
     * documented Box-Muller value of the first two splitmix64 outputs of seed 1. */
    uint64_t s = 1, x[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        x[i] = z ^ (z >> 31);
    }
    double u1 = ((double)(x[0] >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(x[1] >> 11) / 9007199254740992.0;
    double r = sqrt(-2.0 * log(u1));
    assert_true(a[0] == (float)(r * cos(6.283185307179586476925286766559 * u2)));
    assert_true(a[1] == (float)(r * sin(6.283185307179586476925286766559 * u2)));
    tu_expect_status(NULL, clattn_lsh_rotations(NH, D, NB, 1, NULL), CLATTN_NULL_POINTER,
                     "rotations NULL");
    tu_expect_status(NULL, clattn_lsh_rotations(NH, D, 3, 1, a), CLATTN_INVALID_ARGUMENT,
                     "rotations odd buckets");
    tu_expect_status(NULL, clattn_lsh_rotations(0, D, NB, 1, a), CLATTN_INVALID_ARGUMENT,
                     "rotations 0 hashes");
    tu_expect_status(NULL, clattn_lsh_rotations(NH, 0, NB, 1, a), CLATTN_INVALID_SHAPE,
                     "rotations d 0");
    tu_expect_status(NULL, clattn_lsh_rotations(NH, 257, NB, 1, a), CLATTN_INVALID_SHAPE,
                     "rotations d 257");
    assert_memory_equal(a, b, N * sizeof(float)); /* failures wrote nothing */
    free(a);
    free(b);
    free(c);
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
        cmocka_unit_test(test_rotations),
        cmocka_unit_test(test_edge_lengths),
        cmocka_unit_test(test_random_shapes),
        cmocka_unit_test(test_hash_counts),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_many_buckets),
        cmocka_unit_test(test_head_dims),
        cmocka_unit_test(test_tiled_attend),
        cmocka_unit_test(test_large_values),
        cmocka_unit_test(test_property_two_buckets),
        cmocka_unit_test(test_ties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
