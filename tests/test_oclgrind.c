/* Small shapes of every attention kernel, meant to run under oclgrind (tests/run_oclgrind.sh), which
 * simulates the device and reports data races, out-of-bounds and uninitialised accesses. Also
 * checks results against the fp64 reference so a silent wrong answer fails too.
 * Usage: test_oclgrind [cpu|gpu|naive|linear|linear_tiled|lsh|sort|lsh_tiled|routing|routing_tiled|ssm|ssm_s4|rpe|rpe_tiled|mgk|deq]...
 * (default: cpu gpu) */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "reference/ref_linear.h"
#include "reference/ref_lsh.h"
#include "reference/ref_routing.h"
#include "reference/ref_rpe.h"
#include "reference/ref_ssm.h"
#include "reference/ref_ssm_s4.h"
#include "reference/ref_gss.h"
#include "reference/ref_mgk.h"
#include "reference/ref_deq.h"
#include "../lib/blocks/sort.h"
#include "../lib/sched/sched.h"
#include "oclgrind_typed.h"

static int run(clattn_context *ctx, clattn_softmax_algo algo, size_t nq, size_t nk, size_t d,
               int causal)
{
    size_t B = 2, Hq = 2, Hk = 1;
    size_t s_q[4] = {B, Hq, nq, d}, s_k[4] = {B, Hk, nk, d};
    size_t n_q = B * Hq * nq * d, n_k = B * Hk * nk * d, n_l = B * Hq * nq;
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_k * 4), *o = malloc(n_q * 4),
          *r = malloc(n_q * 4), *l = malloc(n_l * 4), *rl = malloc(n_l * 4);
    int32_t kl[2] = {(int32_t)(nk / 2), (int32_t)nk};
    uint64_t seed = 11;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_k, 1, &seed);
    ref_softmax(q, k, v, r, rl, B, Hq, Hk, nq, nk, d, 1.0 / sqrt((double)d), causal, kl);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = causal;
    int rc = 0;
    if (clattn_softmax_host(ctx, &desc, s_q, s_k, s_k, q, k, v, kl, o, l) != CLATTN_SUCCESS) {
        fprintf(stderr, "attention failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        double ml = 0, el = ref_max_abs_diff(l, rl, n_l, &ml);
        printf("algo %d nq %zu nk %zu d %zu causal %d: error %.2e, lse error %.2e\n", (int)algo,
               nq, nk, d, causal, e, el);
        rc = !(e <= 1e-4 * fmax(1, mr) && el <= 1e-4 * fmax(1, ml));
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(l);
    free(rl);
    return rc;
}

static int run_linear(clattn_context *ctx, size_t n, size_t d, size_t dv, int causal,
                      clattn_linear_feature_map fmap, clattn_linear_momentum mom)
{
    size_t B = 2, H = 1, M = fmap == CLATTN_LINEAR_FEATURE_FAVOR ? 24 : d;
    size_t s_q[4] = {B, H, n, d}, s_v[4] = {B, H, n, dv};
    size_t n_q = B * H * n * d, n_v = B * H * n * dv;
    float *q = malloc(n_q * 4), *k = malloc(n_q * 4), *v = malloc(n_v * 4), *o = malloc(n_v * 4),
          *r = malloc(n_v * 4), *w = malloc(M * d * 4);
    uint64_t seed = 21;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_q, 1, &seed);
    ref_fill_uniform(v, n_v, 1, &seed);
    clattn_linear_desc desc;
    clattn_linear_desc_init(&desc);
    desc.causal = causal;
    desc.feature_map = fmap;
    desc.features = M;
    desc.momentum = mom;
    desc.mu = 0.6f;
    desc.step_size = 0.8f;
    clattn_linear_favor_draw(M, d, 5, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w);
    ref_linear_general(q, k, v, r, B, H, n, n, d, dv, (int)fmap,
                       fmap == CLATTN_LINEAR_FEATURE_FAVOR ? w : NULL, M, 1e-6, causal, (int)mom,
                       desc.mu, desc.step_size);
    if (fmap == CLATTN_LINEAR_FEATURE_FAVOR) {
        desc.projection = w;
        desc.projection_shape[0] = M;
        desc.projection_shape[1] = d;
    }
    int rc = 0;
    if (clattn_linear_host(ctx, &desc, s_q, s_q, s_v, q, k, v, o) != CLATTN_SUCCESS) {
        fprintf(stderr, "linear failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_v, &mr);
        printf("linear n %zu d %zu dv %zu causal %d map %d momentum %d: error %.2e\n", n, d, dv,
               causal, (int)fmap, (int)mom, e);
        rc = !(e <= 1e-4 * fmax(1, mr));
    }
    /* The decoding kernels: a prefill of all but the last two tokens, then two steps; the last
     * step's output must match the causal reference's last row. */
    clattn_linear_state *st = NULL;
    if (!rc && causal && n > 3 &&
        clattn_linear_state_create(ctx, &desc, B, H, d, dv, &st) == CLATTN_SUCCESS) {
        cl_context cl = clattn_context_get_cl_context(ctx);
        cl_command_queue qu = clattn_context_get_cl_queue(ctx);
        cl_int err = CL_SUCCESS;
        cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n_q * 4, q, &err);
        cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n_q * 4, k, &err);
        cl_mem bv = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n_v * 4, v, &err);
        cl_mem bo = clCreateBuffer(cl, CL_MEM_READ_WRITE, n_v * 4, NULL, &err);
        size_t pre = n - 2;
        clattn_tensor tq = {bq, 0, {B, H, pre, d}, {H * n * d, n * d, d, 1}};
        clattn_tensor tk = tq, tv = {bv, 0, {B, H, pre, dv}, {H * n * dv, n * dv, dv, 1}};
        tk.buffer = bk;
        clattn_tensor to = tv;
        to.buffer = bo;
        clattn_status s1 = clattn_linear_prefill(st, &tq, &tk, &tv, &to, 0, NULL, NULL);
        for (size_t t = pre; t < n && s1 == CLATTN_SUCCESS; t++) {
            clattn_tensor sq = tq, sk = tk, sv = tv, so = to;
            sq.shape[2] = sk.shape[2] = sv.shape[2] = so.shape[2] = 1;
            sq.offset = sk.offset = t * d;
            sv.offset = so.offset = t * dv;
            s1 = clattn_linear_step(st, &sq, &sk, &sv, &so, 0, NULL, NULL);
        }
        if (s1 == CLATTN_SUCCESS)
            s1 = (clattn_status)clEnqueueReadBuffer(qu, bo, CL_TRUE, 0, n_v * 4, o, 0, NULL, NULL);
        double mr = 0, e = s1 == CLATTN_SUCCESS ? ref_max_abs_diff(o, r, n_v, &mr) : INFINITY;
        printf("  prefill + 2 steps: error %.2e\n", e);
        rc = !(e <= 1e-4 * fmax(1, mr));
        clReleaseMemObject(bq);
        clReleaseMemObject(bk);
        clReleaseMemObject(bv);
        clReleaseMemObject(bo);
        clattn_linear_state_destroy(st);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(w);
    return rc;
}

/* LSH attention (hash, counting sort or the radix-sort block, packing, attention kernels) through
 * a plan enqueued twice, against its fp64 reference computed from the device's own buckets
 * (checked against the fp64 hash where clear-cut). Causal runs give the rotations in the desc,
 * the others draw them from the seed; `radix` forces the radix-sort block. */
static int run_lsh(clattn_context *ctx, size_t n, size_t d, size_t dv, size_t nb, size_t chunk,
                   int causal, int radix)
{
    size_t B = 2, H = 1, nh = 2, nq = B * H * n * d, nv = B * H * n * dv, nbk = B * H * nh * n;
    size_t nl = B * H * n, nr = nh * d * nb / 2;
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    float *q = malloc(nq * 4), *v = malloc(nv * 4), *o = malloc(nv * 4), *r = malloc(nv * 4),
          *l = malloc(nl * 4), *rl = malloc(nl * 4), *rot = malloc(nr * 4);
    int32_t *bk = malloc(nbk * 4), *rbk = malloc(nbk * 4);
    double *margin = malloc(nbk * sizeof *margin);
    uint64_t seed = 31;
    ref_fill_uniform(q, nq, 1, &seed);
    ref_fill_uniform(v, nv, 1, &seed);
    clattn_lsh_desc desc;
    clattn_lsh_desc_init(&desc);
    desc.n_hashes = nh;
    desc.n_buckets = nb;
    desc.chunk_size = chunk;
    desc.causal = causal;
    desc.seed = 3;
    clattn_lsh_rotations(nh, d, nb, desc.seed, rot);
    if (causal) {
        desc.rotations = rot;
        desc.rotations_shape[0] = nh;
        desc.rotations_shape[1] = d;
        desc.rotations_shape[2] = nb / 2;
    }
    cl_int e0, e1, e2, e3, e4;
    cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_WRITE, nq * 4, NULL, &e0);
    cl_mem bv = clCreateBuffer(cl, CL_MEM_READ_WRITE, nv * 4, NULL, &e1);
    cl_mem bo = clCreateBuffer(cl, CL_MEM_READ_WRITE, nv * 4, NULL, &e2);
    cl_mem bl = clCreateBuffer(cl, CL_MEM_READ_WRITE, nl * 4, NULL, &e3);
    cl_mem bb = clCreateBuffer(cl, CL_MEM_READ_WRITE, nbk * 4, NULL, &e4);
    clattn_plan *plan = NULL;
    int rc = 1;
    if (e0 || e1 || e2 || e3 || e4 ||
        clEnqueueWriteBuffer(queue, bq, CL_TRUE, 0, nq * 4, q, 0, NULL, NULL) != CL_SUCCESS ||
        clEnqueueWriteBuffer(queue, bv, CL_TRUE, 0, nv * 4, v, 0, NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "lsh: buffers failed\n");
        goto done;
    }
    clattn_tensor tq = clattn_tensor_make(bq, B, H, n, d), tv = clattn_tensor_make(bv, B, H, n, dv);
    clattn_tensor to = clattn_tensor_make(bo, B, H, n, dv), tl = clattn_tensor_make(bl, B, H, n, 1);
    clattn_tensor tb = clattn_tensor_make(bb, B, H, nh, n);
    size_t qs[4] = {B, H, n, d}, vs[4] = {B, H, n, dv};
    clattn_status st;
    if (radix) {
        clattn__lsh_problem p = {B * H, n, d, dv, nh, nb, chunk, causal, {0}};
        clattn__lsh_launch L;
        clattn_device_info dev;
        st = clattn_context_get_device_info(ctx, &dev);
        if (st == CLATTN_SUCCESS)
            st = clattn__schedule_lsh(&dev, &p, &L, NULL, 0);
        if (st == CLATTN_SUCCESS)
            st = clattn__lsh_launch_from(&dev, &p, L.rows, L.local_size, 0, &L, NULL, 0);
        if (st == CLATTN_SUCCESS)
            st = clattn__lsh_plan_create_launch(ctx, &desc, qs, vs, &L, &plan);
    } else {
        st = clattn_lsh_plan_create(ctx, &desc, qs, vs, &plan);
    }
    /* Twice on one plan: the second run reuses the plan's scratch. */
    for (int rep = 0; rep < 2 && st == CLATTN_SUCCESS; rep++)
        st = clattn_lsh_plan_enqueue(plan, &tq, &tv, &to, &tl, &tb, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS ||
        clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, nv * 4, o, 0, NULL, NULL) != CL_SUCCESS ||
        clEnqueueReadBuffer(queue, bl, CL_TRUE, 0, nl * 4, l, 0, NULL, NULL) != CL_SUCCESS ||
        clEnqueueReadBuffer(queue, bb, CL_TRUE, 0, nbk * 4, bk, 0, NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "lsh failed: %s\n", clattn_context_last_error(ctx));
        goto done;
    }
    ref_lsh_hash(q, rot, rbk, margin, B, H, n, d, nh, nb);
    size_t bad = 0;
    for (size_t i = 0; i < nbk; i++)
        bad += bk[i] != rbk[i] && margin[i] > 1e-4;
    ref_lsh_attention(q, v, bk, r, rl, B, H, n, d, dv, nh, chunk, causal, 0);
    double mr = 0, e = ref_max_abs_diff(o, r, nv, &mr);
    double ml = 0, el = ref_max_abs_diff(l, rl, nl, &ml);
    printf("lsh n %zu d %zu dv %zu buckets %zu chunk %zu causal %d %s: error %.2e, lse error "
           "%.2e, %zu wrong bucket(s)\n",
           n, d, dv, nb, chunk, causal, radix ? "radix" : "counting", e, el, bad);
    rc = !(bad == 0 && e <= 1e-4 * fmax(1, mr) && el <= 1e-4 * fmax(1, ml));
done:
    clReleaseMemObject(bq);
    clReleaseMemObject(bv);
    clReleaseMemObject(bo);
    clReleaseMemObject(bl);
    clReleaseMemObject(bb);
    clattn_plan_destroy(plan);
    free(q);
    free(v);
    free(o);
    free(r);
    free(l);
    free(rl);
    free(rot);
    free(bk);
    free(rbk);
    free(margin);
    return rc;
}

/* The building blocks of lib/blocks/sort.h on small inputs with ties, spanning several blocks:
 * stable sort, top-k both orders, gather and scatter-mean, checked on the host. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_sort(clattn_context *ctx)
{
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    enum { NSEG = 2, LEN = 2100, K = 150, N = NSEG * LEN, D = 3, NDST = 50 }; /* 3 blocks */
    static uint32_t keys[N], ko[N], vo[N], idx[NSEG * K], dest[N];
    static float sc[N], rows[N * D], mean[NDST * D];
    static uint64_t ref[LEN];
    uint64_t seed = 17;
    ref_fill_uniform(rows, N * D, 1, &seed);
    for (size_t i = 0; i < N; i++) {
        keys[i] = (uint32_t)(rows[i * D] * 1000.0f + 1000.0f) % 13; /* ties */
        sc[i] = (float)(keys[i] % 5);
        dest[i] = i % 9 == 0 ? 0xffffffffu : keys[i] * 3 % NDST;
    }
    cl_int e[8];
    cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof keys, keys,
                               &e[0]);
    cl_mem bs = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof sc, sc, &e[1]);
    cl_mem br = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof rows, rows,
                               &e[2]);
    cl_mem bd = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof dest, dest,
                               &e[3]);
    cl_mem bko = clCreateBuffer(cl, CL_MEM_READ_WRITE, sizeof ko, NULL, &e[4]);
    cl_mem bvo = clCreateBuffer(cl, CL_MEM_READ_WRITE, sizeof vo, NULL, &e[5]);
    cl_mem bi = clCreateBuffer(cl, CL_MEM_READ_WRITE, sizeof idx, NULL, &e[6]);
    cl_mem bm = clCreateBuffer(cl, CL_MEM_READ_WRITE, sizeof mean, NULL, &e[7]);
    int rc = 1;
    for (int i = 0; i < 8; i++)
        if (e[i] != CL_SUCCESS)
            goto done;
    if (clattn__sort_pairs(ctx, bk, NULL, bko, bvo, NSEG, LEN, 12, 0, NULL, NULL) ||
        clEnqueueReadBuffer(queue, bvo, CL_TRUE, 0, sizeof vo, vo, 0, NULL, NULL)) {
        fprintf(stderr, "sort failed: %s\n", clattn_context_last_error(ctx));
        goto done;
    }
    rc = 0;
    for (size_t s = 0; s < NSEG; s++) {
        for (size_t i = 0; i < LEN; i++)
            ref[i] = (uint64_t)keys[s * LEN + i] << 32 | i;
        qsort(ref, LEN, sizeof ref[0], cmp_u64);
        for (size_t i = 0; i < LEN; i++)
            rc |= vo[s * LEN + i] != (uint32_t)ref[i];
    }
    /* Top-k by index: every chosen score beats (or ties at a lower index) every other. */
    for (int order = 0; order < 2 && !rc; order++) {
        if (clattn__topk(ctx, bs, NSEG, LEN, K, (clattn__topk_order)order, bi, NULL, 0, NULL,
                         NULL) ||
            clEnqueueReadBuffer(queue, bi, CL_TRUE, 0, sizeof idx, idx, 0, NULL, NULL)) {
            fprintf(stderr, "top-k failed: %s\n", clattn_context_last_error(ctx));
            rc = 1;
            break;
        }
        for (size_t s = 0; s < NSEG; s++) {
            /* rank key: (4 - score) << 32 | index, smallest first */
            for (size_t i = 0; i < LEN; i++)
                ref[i] = (uint64_t)(4 - (uint32_t)sc[s * LEN + i]) << 32 | i;
            qsort(ref, LEN, sizeof ref[0], cmp_u64);
            if (order == 0)
                for (size_t j = 0; j < K; j++)
                    ref[j] &= 0xffffffffu;
            if (order == 0)
                qsort(ref, K, sizeof ref[0], cmp_u64);
            for (size_t j = 0; j < K; j++)
                rc |= idx[s * K + j] != (uint32_t)ref[j];
        }
    }
    if (!rc) {
        if (clattn__scatter_mean_rows(ctx, br, N, D, bd, NDST, bm, NULL, 0, NULL, NULL) ||
            clEnqueueReadBuffer(queue, bm, CL_TRUE, 0, sizeof mean, mean, 0, NULL, NULL)) {
            fprintf(stderr, "scatter-mean failed: %s\n", clattn_context_last_error(ctx));
            rc = 1;
        }
        for (size_t r = 0; r < NDST && !rc; r++)
            for (size_t d = 0; d < D; d++) {
                double s = 0;
                size_t c = 0;
                for (size_t i = 0; i < N; i++)
                    if (dest[i] == r) {
                        s += rows[i * D + d];
                        c++;
                    }
                rc |= fabs(mean[r * D + d] - (c ? s / c : 0.0)) > 1e-5;
            }
    }
    /* Gather NDST rows by the sorted order (indices below LEN). */
    if (!rc && (clattn__gather_rows(ctx, br, N, D, bvo, NDST, bm, 0, NULL, NULL) ||
                clEnqueueReadBuffer(queue, bm, CL_TRUE, 0, sizeof mean, mean, 0, NULL, NULL)))
        rc = 1;
    for (size_t j = 0; j < NDST && !rc; j++)
        for (size_t d = 0; d < D; d++)
            rc |= mean[j * D + d] != rows[vo[j] * D + d];
    printf("sort, top-k, scatter-mean, gather: %s\n", rc ? "WRONG" : "ok");
done:
    {
        cl_mem all[] = {bk, bs, br, bd, bko, bvo, bi, bm};
        for (int i = 0; i < 8; i++)
            if (all[i])
                clReleaseMemObject(all[i]);
    }
    return rc;
}

/* Routing attention (scores, top-w, attend, scatter-mean, store), the k-means++ path and the EMA
 * update, with Hq query heads sharing H key heads, against their fp64 references. */
static int run_routing_d(clattn_context *ctx, size_t n, size_t c, int causal, size_t Hq,
                         size_t D, size_t Dv)
{
    size_t B = 2, H = 1, nq = B * Hq * n * D, nk = B * H * n * D;
    size_t nv = B * H * n * Dv, no = B * Hq * n * Dv;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4), *o = malloc(no * 4),
          *r = malloc(no * 4), *mu = malloc(H * c * D * 4), *mu2 = malloc(H * c * D * 4);
    uint64_t seed = 23;
    ref_fill_uniform(q, nq, 1, &seed);
    ref_fill_uniform(k, nk, 1, &seed);
    ref_fill_uniform(v, nv, 1, &seed);
    clattn_routing_desc desc;
    clattn_routing_desc_init(&desc);
    desc.clusters = c;
    desc.causal = causal;
    desc.seed = 8;
    ref_routing_kmeanspp_gqa(q, k, B, Hq, H, n, D, c, desc.seed, mu);
    double gap;
    ref_routing_attention_gqa(q, k, v, mu, r, B, Hq, H, n, D, Dv, c, (n + c - 1) / c,
                              1.0 / sqrt((double)D), causal, &gap);
    size_t qs[4] = {B, Hq, n, D}, ks[4] = {B, H, n, D}, vs[4] = {B, H, n, Dv};
    int rc = 0;
    if (clattn_routing_host(ctx, &desc, qs, ks, vs, q, k, v, NULL, o) != CLATTN_SUCCESS) {
        fprintf(stderr, "routing failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, no, &mr);
        printf("routing n %zu c %zu causal %d hq %zu: error %.2e (boundary gap %.1e)\n", n, c,
               causal, Hq, e, gap);
        rc = !(e <= 1e-4 * fmax(1, mr)) || !(gap >= 1e-5);
    }
    /* EMA update on device buffers. */
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_int e0, e1, e2;
    cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nq * 4, q, &e0);
    cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nk * 4, k, &e1);
    cl_mem bm = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, H * c * D * 4, mu,
                               &e2);
    clattn_plan *plan = NULL;
    if (!rc && !e0 && !e1 && !e2) {
        clattn_tensor tq = clattn_tensor_make(bq, B, Hq, n, D);
        clattn_tensor tk = clattn_tensor_make(bk, B, H, n, D);
        clattn_tensor tm = clattn_tensor_make(bm, 1, H, c, D);
        desc.decay = 0.5f;
        ref_routing_update_gqa(q, k, mu, B, Hq, H, n, D, c, 0.5, &gap);
        if (clattn_routing_plan_create(ctx, &desc, qs, ks, vs, tm.shape, &plan) ||
            clattn_routing_update_centroids(plan, &tq, &tk, &tm, 0, NULL, NULL) ||
            clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), bm, CL_TRUE, 0, H * c * D * 4,
                                mu2, 0, NULL, NULL)) {
            fprintf(stderr, "routing update failed: %s\n", clattn_context_last_error(ctx));
            rc = 1;
        } else {
            double mr = 0, e = ref_max_abs_diff(mu2, mu, H * c * D, &mr);
            printf("routing update: error %.2e\n", e);
            rc = !(e <= 1e-4 * fmax(1, mr)) || !(gap >= 1e-5);
        }
    } else {
        rc = 1;
    }
    clattn_plan_destroy(plan);
    if (bq)
        clReleaseMemObject(bq);
    if (bk)
        clReleaseMemObject(bk);
    if (bm)
        clReleaseMemObject(bm);
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(mu);
    free(mu2);
    return rc;
}

/* ---- half storage in LSH and routing (issue 15): one small mixed-type case each ---- */

static int run_routing(clattn_context *ctx, size_t n, size_t c, int causal, size_t Hq)
{
    return run_routing_d(ctx, n, c, causal, Hq, 8, 5);
}

static int ssm_check(const float *got, const float *ref, size_t n, const char *what)
{
    double mr = 0, e = ref_max_abs_diff(got, ref, n, &mr);
    if (!(e <= 1e-4 * fmax(1.0, mr))) {
        fprintf(stderr, "ssm %s: error %.3e\n", what, e);
        return 1;
    }
    return 0;
}

static int run_ssm(clattn_context *ctx)
{
    size_t B = 2, H = 3, N = 4, L = 45, E = 6, F = 5;
    uint64_t seed = 23;
    float A[24], C[24], Ct[24], ldt[3], D[3], u[270], y[270], r[270];
    ref_fill_uniform(C, 24, 1, &seed);
    ref_fill_uniform(D, 3, 1, &seed);
    ref_fill_uniform(u, 270, 1, &seed);
    for (size_t i = 0; i < 12; i++) {
        A[2 * i] = -0.5f;
        A[2 * i + 1] = 3.14159265f * (float)(i % N);
    }
    for (size_t h = 0; h < H; h++)
        ldt[h] = -2.0f - (float)h;
    int rc = 0;
    if (clattn_ssm_s4d_zoh(H, N, A, NULL, C, ldt, 1, Ct) != CLATTN_SUCCESS)
        return 1;
    ref_ssm_forward(u, A, Ct, ldt, D, B, H, N, L, r);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    for (int a = 0; a < 2; a++) {
        d.algorithm = a ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        for (size_t i = 0; i < 270; i++)
            y[i] = NAN;
        if (clattn_ssm_host(ctx, &d, B, H, N, L, A, Ct, ldt, D, u, y) != CLATTN_SUCCESS) {
            fprintf(stderr, "ssm failed: %s\n", clattn_context_last_error(ctx));
            return 1;
        }
        rc |= ssm_check(y, r, 270, a ? "direct" : "fft");
    }

    /* Steps over 8 positions from a zero state, B = 2. */
    clattn_ssm *s = NULL;
    clattn_ssm_state *st = NULL;
    cl_mem bu = NULL, by = NULL, bufs[6] = {NULL};
    cl_int err;
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    if (clattn_ssm_create(ctx, H, N, A, Ct, ldt, D, &s) != CLATTN_SUCCESS ||
        clattn_ssm_state_create(s, B, &st) != CLATTN_SUCCESS)
        return 1;
    /* oclgrind 21.10 does not count clEnqueueFillBuffer (the state's zeroing) as initialising
     * memory under --uninitialized; a written state is tracked. */
    float zeros[48] = {0};
    if (clattn_ssm_state_write(st, zeros) != CLATTN_SUCCESS)
        return 1;
    bu = clCreateBuffer(cl, CL_MEM_READ_WRITE, 6 * 4, NULL, &err);
    by = clCreateBuffer(cl, CL_MEM_READ_WRITE, 6 * 4, NULL, &err);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, 1, 1), ty = clattn_tensor_make(by, B, H, 1, 1);
    float rr[270];
    ref_ssm_recurrence(u, A, Ct, ldt, D, B, H, N, L, rr);
    for (size_t l = 0; l < 8 && !rc; l++) {
        float ut[6], yt[6], rt[6];
        for (size_t i = 0; i < 6; i++) {
            ut[i] = u[i * L + l];
            rt[i] = rr[i * L + l];
        }
        clEnqueueWriteBuffer(q, bu, CL_TRUE, 0, sizeof ut, ut, 0, NULL, NULL);
        if (clattn_ssm_step(st, &tu, &ty, 0, NULL, NULL) != CLATTN_SUCCESS) {
            rc = 1;
            break;
        }
        clEnqueueReadBuffer(q, by, CL_TRUE, 0, sizeof yt, yt, 0, NULL, NULL);
        rc |= ssm_check(yt, rt, 6, "step");
    }

    /* GSS: B = 1, L = 9 tokens of E = 6, F = 5, H = 3. */
    size_t T = 9;
    float x[54], wv[30], wu[18], wo1[15], wo2[30], o[54], ro[54];
    ref_fill_uniform(x, 54, 1, &seed);
    ref_fill_uniform(wv, 30, 0.5f, &seed);
    ref_fill_uniform(wu, 18, 0.5f, &seed);
    ref_fill_uniform(wo1, 15, 0.5f, &seed);
    ref_fill_uniform(wo2, 30, 0.5f, &seed);
    ref_gss(x, 1, T, E, F, H, N, NULL, NULL, 1e-5, wv, NULL, wu, NULL, wo1, NULL, wo2, NULL, A,
            Ct, ldt, D, ro);
    const float *hw[4] = {wv, wu, wo1, wo2};
    size_t nw[4] = {30, 18, 15, 30};
    for (int i = 0; i < 4; i++)
        bufs[i] = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nw[i] * 4,
                                 (void *)hw[i], &err);
    bufs[4] = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, 54 * 4, x, &err);
    bufs[5] = clCreateBuffer(cl, CL_MEM_READ_WRITE, 54 * 4, NULL, &err);
    clattn_gss_weights w;
    memset(&w, 0, sizeof w);
    w.w_v = bufs[0];
    w.w_u = bufs[1];
    w.w_o1 = bufs[2];
    w.w_o2 = bufs[3];
    clattn_tensor tx = clattn_tensor_make(bufs[4], 1, 1, T, E);
    clattn_tensor to = clattn_tensor_make(bufs[5], 1, 1, T, E);
    if (clattn_gss_enqueue(ctx, NULL, s, &w, F, &tx, &to, 0, NULL, NULL) != CLATTN_SUCCESS) {
        fprintf(stderr, "gss failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        clEnqueueReadBuffer(q, bufs[5], CL_TRUE, 0, sizeof o, o, 0, NULL, NULL);
        rc |= ssm_check(o, ro, 54, "gss");
    }
    for (int i = 0; i < 6; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    return rc;
}

static int run_ssm_s4(clattn_context *ctx)
{
    size_t B = 2, H = 2, N = 3, L = 40;
    uint64_t seed = 31;
    float lam[12], P[12], Q[12], Bm[12], C[12], ldt[2] = {-2.0f, -4.0f}, D[2], u[160], y[160],
                                                 r[160];
    double K[80];
    ref_fill_uniform(lam, 12, 1, &seed);
    ref_fill_uniform(P, 12, 0.3f, &seed);
    ref_fill_uniform(Q, 12, 0.3f, &seed);
    ref_fill_uniform(Bm, 12, 1, &seed);
    ref_fill_uniform(C, 12, 1, &seed);
    ref_fill_uniform(D, 2, 1, &seed);
    ref_fill_uniform(u, 160, 1, &seed);
    for (size_t i = 0; i < 6; i++)
        lam[2 * i] = -0.5f - 0.2f * fabsf(lam[2 * i]), lam[2 * i + 1] *= 4.0f;
    ref_ssm_s4_kernel(lam, P, Q, Bm, C, ldt, H, N, L, K);
    ref_ssm_conv(u, K, D, B, H, L, r);
    float Kf[80], kg[80];
    for (size_t i = 0; i < 80; i++)
        Kf[i] = (float)K[i];
    clattn_ssm *s = NULL;
    clattn_ssm_state *st = NULL;
    clattn_plan *plan = NULL;
    cl_int err;
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    if (clattn_ssm_s4_create(ctx, H, N, L, lam, P, Q, Bm, C, ldt, D, &s) != CLATTN_SUCCESS) {
        fprintf(stderr, "ssm s4 failed: %s\n", clattn_context_last_error(ctx));
        return 1;
    }
    int rc = 0;
    cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_WRITE, 80 * 4, NULL, &err);
    cl_mem bu = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, 160 * 4, u, &err);
    cl_mem by = clCreateBuffer(cl, CL_MEM_READ_WRITE, 160 * 4, NULL, &err);
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = CLATTN_SSM_FFT;
    if (clattn_ssm_kernel_enqueue(s, &tk, 0, NULL, NULL) != CLATTN_SUCCESS ||
        clattn_ssm_plan_create(ctx, &d, s, tu.shape, &plan) != CLATTN_SUCCESS ||
        clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, NULL) != CLATTN_SUCCESS ||
        clattn_ssm_state_create(s, B, &st) != CLATTN_SUCCESS) {
        fprintf(stderr, "ssm s4 failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
        goto out;
    }
    clEnqueueReadBuffer(q, bk, CL_TRUE, 0, sizeof kg, kg, 0, NULL, NULL);
    clEnqueueReadBuffer(q, by, CL_TRUE, 0, sizeof y, y, 0, NULL, NULL);
    rc |= ssm_check(kg, Kf, 80, "s4 kernel");
    rc |= ssm_check(y, r, 160, "s4 fft plan");
    float zeros[24] = {0}; /* B * H * N complex */
    if (clattn_ssm_state_write(st, zeros) != CLATTN_SUCCESS) {
        rc = 1;
        goto out;
    }
    clattn_tensor su = clattn_tensor_make(bu, B, H, 1, 1), sy = clattn_tensor_make(by, B, H, 1, 1);
    for (size_t l = 0; l < 6 && !rc; l++) {
        float ut[4], yt[4], rt[4];
        for (size_t i = 0; i < 4; i++)
            ut[i] = u[i * L + l], rt[i] = r[i * L + l];
        clEnqueueWriteBuffer(q, bu, CL_TRUE, 0, sizeof ut, ut, 0, NULL, NULL);
        if (clattn_ssm_step(st, &su, &sy, 0, NULL, NULL) != CLATTN_SUCCESS) {
            rc = 1;
            break;
        }
        clEnqueueReadBuffer(q, by, CL_TRUE, 0, sizeof yt, yt, 0, NULL, NULL);
        rc |= ssm_check(yt, rt, 4, "s4 step");
    }
out:
    clattn_ssm_state_destroy(st);
    clattn_plan_destroy(plan);
    clattn_ssm_destroy(s);
    clReleaseMemObject(bk);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    return rc;
}

static int run_rpe(clattn_context *ctx, clattn_rpe_algo algo, size_t n, size_t d, size_t dv,
                   int causal, clattn_linear_feature_map fmap, size_t hk)
{
    size_t B = 2, H = 2, M = 12;
    size_t s_q[4] = {B, H, n, d}, s_k[4] = {B, hk, n, d}, s_v[4] = {B, hk, n, dv};
    size_t n_q = B * H * n * d, n_k = B * hk * n * d, n_v = B * hk * n * dv;
    size_t n_o = B * H * n * dv, n_b = H * (2 * n - 1);
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_v * 4), *o = malloc(n_o * 4),
          *r = malloc(n_o * 4), *b = malloc(n_b * 4), *w = malloc(M * d * 4);
    uint64_t seed = 31;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_v, 1, &seed);
    ref_fill_uniform(b, n_b, 1, &seed);
    clattn_rpe_desc desc;
    clattn_rpe_desc_init(&desc);
    desc.causal = causal;
    desc.algorithm = algo;
    desc.linear.feature_map = fmap;
    desc.linear.features = M;
    desc.linear.seed = 5;
    int rc = clattn_linear_favor_draw(M, d, 5, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w) != CLATTN_SUCCESS;
    ref_rpe_gqa(q, k, v, b, r, B, H, hk, n, d, dv, (int)fmap, w, M, 1e-6, causal);
    if (clattn_rpe_host(ctx, &desc, s_q, s_k, s_v, q, k, v, b, o) != CLATTN_SUCCESS) {
        fprintf(stderr, "rpe failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_o, &mr);
        printf("rpe algo %d n %zu d %zu dv %zu causal %d fmap %d hk %zu: error %.2e\n", (int)algo,
               n, d, dv, causal, (int)fmap, hk, e);
        rc |= !(e <= 1e-4 * fmax(1, mr));
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(b);
    free(w);
    return rc;
}

/* Transformer-MGK: softmax form in both families (causal, key lengths) and the linear form
 * (causal scan and non-causal), R = 2, against the fp64 references. */
static int run_mgk(clattn_context *ctx, clattn_mgk_form form, clattn_mgk_algo algo, size_t nq,
                   size_t nk, size_t d, int causal)
{
    size_t B = 2, H = 2, R = 2;
    size_t s_q[4] = {B, H, nq, d}, s_k[4] = {B, H * R, nk, d};
    size_t n_q = B * H * nq * d, n_k = B * H * R * nk * d, n_v = B * H * nk * d, n_p = H * R * nk;
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_v * 4), *p = malloc(n_p * 4),
          *o = malloc(n_q * 4), *r = malloc(n_q * 4);
    double *rd = malloc(n_q * sizeof *rd), sig2[2] = {sqrt((double)d), sqrt((double)d)};
    uint64_t seed = 41;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_v, 1, &seed);
    ref_fill_uniform(p, n_p, 1, &seed);
    for (size_t i = 0; i < n_p; i++)
        p[i] = fabsf(p[i]);
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = form;
    desc.algorithm = algo;
    desc.causal = causal;
    if (form == CLATTN_MGK_SOFTMAX)
        ref_mgk_softmax(q, k, v, p, rd, NULL, B, H, R, nq, nk, d, sig2, causal, NULL);
    else
        ref_mgk_linear(q, k, v, p, rd, B, H, R, nq, nk, d, desc.eps, causal);
    for (size_t i = 0; i < n_q; i++)
        r[i] = (float)rd[i];
    int rc = 0;
    if (clattn_mgk_host(ctx, &desc, s_q, s_k, q, k, v, p, o, NULL) != CLATTN_SUCCESS) {
        fprintf(stderr, "mgk failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        printf("mgk form %d algo %d nq %zu nk %zu d %zu causal %d: error %.2e\n", (int)form,
               (int)algo, nq, nk, d, causal, e);
        rc = !(e <= 1e-4 * fmax(1, mr));
    }
    free(q), free(k), free(v), free(p), free(o), free(r), free(rd);
    return rc;
}

static int run_mgk_state(clattn_context *ctx)
{
    size_t B = 2, H = 2, R = 2, d = 8, n = 3;
    size_t n_q = B * H * n * d, n_k = n_q * R, n_p = H * R * n;
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_q * 4), *p = malloc(n_p * 4),
          *o = malloc(n_q * 4), *r = malloc(n_q * 4);
    double *rd = malloc(n_q * sizeof *rd);
    uint64_t seed = 43;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_q, 1, &seed);
    ref_fill_uniform(p, n_p, 1, &seed);
    for (size_t i = 0; i < n_p; i++)
        p[i] = fabsf(p[i]);
    ref_mgk_linear(q, k, v, p, rd, B, H, R, n, n, d, 1e-5, 1);
    for (size_t i = 0; i < n_q; i++)
        r[i] = (float)rd[i];
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = CLATTN_MGK_LINEAR;
    clattn_mgk_state *st = NULL;
    cl_context cc = clattn_context_get_cl_context(ctx);
    cl_command_queue cq = clattn_context_get_cl_queue(ctx);
    cl_int e1, e2, e3, e4, e5;
    cl_mem bq = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_q * 4, q, &e1);
    cl_mem bk = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_k * 4, k, &e2);
    cl_mem bv = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_q * 4, v, &e3);
    cl_mem bp = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_p * 4, p, &e4);
    cl_mem bo = clCreateBuffer(cc, CL_MEM_READ_WRITE, n_q * 4, NULL, &e5);
    int rc = e1 || e2 || e3 || e4 || e5 ||
             clattn_mgk_state_create(ctx, &desc, B, H, R, d, &st) != CLATTN_SUCCESS;
    for (size_t j = 0; !rc && j < n; j++) {
        clattn_tensor tq = clattn_tensor_make(bq, B, H, n, d), tk = clattn_tensor_make(bk, B, H * R, n, d);
        clattn_tensor tv = clattn_tensor_make(bv, B, H, n, d), to = clattn_tensor_make(bo, B, H, n, d);
        clattn_tensor tp = clattn_tensor_make(bp, 1, H, R, n);
        clattn_tensor *rows[] = {&tq, &tk, &tv, &to};
        for (int i = 0; i < 4; i++) {
            rows[i]->shape[2] = 1;
            rows[i]->offset = j * rows[i]->strides[2];
        }
        tp.shape[3] = 1;
        tp.offset = j;
        rc = clattn_mgk_state_step(st, &tq, &tk, &tv, &tp, &to, 0, NULL, NULL) != CLATTN_SUCCESS;
    }
    if (!rc)
        rc = clEnqueueReadBuffer(cq, bo, CL_TRUE, 0, n_q * 4, o, 0, NULL, NULL) != CL_SUCCESS;
    if (rc) {
        fprintf(stderr, "mgk state failed: %s\n", clattn_context_last_error(ctx));
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        printf("mgk state %zu steps: error %.2e\n", n, e);
        rc = !(e <= 1e-4 * fmax(1, mr));
    }
    clattn_mgk_state_destroy(st);
    cl_mem all[] = {bq, bk, bv, bp, bo};
    for (int i = 0; i < 5; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(q), free(k), free(v), free(p), free(o), free(r), free(rd);
    return rc;
}

/* The DEQ attention cell (B 1, N 5, D 8, 2 heads) once against its fp64 reference, then a few
 * Anderson and Broyden iterations on it (the solvers' dots and combination kernels). */
static int run_deq(clattn_context *ctx)
{
    enum { N = 5, D = 8, L = N * D };
    float w[4][D * D], x[L], z[L], out[L];
    double zd[L], ref[L];
    uint64_t seed = 31;
    for (int i = 0; i < 4; i++)
        ref_fill_uniform(w[i], D * D, 0.35, &seed);
    ref_fill_uniform(x, L, 1, &seed);
    ref_fill_uniform(z, L, 1, &seed);
    for (int i = 0; i < L; i++)
        zd[i] = z[i];
    ref_deq_cell(1, N, D, 2, 0, w[0], w[1], w[2], w[3], x, zd, ref);
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    cl_int e = CL_SUCCESS;
    cl_mem bw[4], bx, bz, bo;
    for (int i = 0; i < 4; i++)
        bw[i] = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof w[i], w[i], &e);
    bx = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, &e);
    bz = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof z, z, &e);
    bo = clCreateBuffer(cl, CL_MEM_READ_WRITE, sizeof out, NULL, &e);
    clattn_deq_cell_desc cd;
    clattn_deq_cell_desc_init(&cd);
    cd.heads = 2;
    clattn_plan *cell = NULL, *solver = NULL;
    clattn_tensor tx = clattn_tensor_make(bx, 1, 1, N, D), tz = clattn_tensor_make(bz, 1, 1, N, D),
                  to = clattn_tensor_make(bo, 1, 1, N, D);
    clattn_status st = clattn_deq_cell_create(ctx, &cd, 1, N, D, bw[0], bw[1], bw[2], bw[3], &cell);
    if (st == CLATTN_SUCCESS)
        st = clattn_deq_cell_set_input(cell, &tx);
    if (st == CLATTN_SUCCESS)
        st = clattn_deq_cell_eval(cell, &tz, &to, 0, NULL, NULL);
    if (st == CLATTN_SUCCESS)
        st = clEnqueueReadBuffer(q, bo, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL) == CL_SUCCESS
                 ? CLATTN_SUCCESS
                 : CLATTN_INTERNAL_ERROR;
    int rc = st != CLATTN_SUCCESS;
    if (!rc) {
        double e_max = 0;
        for (int i = 0; i < L; i++)
            e_max = fmax(e_max, fabs(out[i] - ref[i]));
        printf("deq cell: error %.2e\n", e_max);
        rc = !(e_max <= 1e-4 * 4);
    }
    for (int m = CLATTN_DEQ_ANDERSON; m <= CLATTN_DEQ_BROYDEN && !rc; m++) {
        clattn_deq_desc dd;
        clattn_deq_desc_init(&dd);
        dd.method = (clattn_deq_method)m;
        dd.max_iter = 6;
        dd.memory = 3;
        dd.broyden_memory = 3;
        const size_t shape[4] = {1, 1, N, D};
        clattn_deq_result r;
        st = clattn_deq_plan_create(ctx, &dd, shape, &solver);
        if (st == CLATTN_SUCCESS)
            st = clattn_deq_solve(solver, clattn_deq_cell_eval, cell, &tz, &r);
        clattn_plan_destroy(solver);
        solver = NULL;
        if (st == CLATTN_NOT_CONVERGED || st == CLATTN_SUCCESS) {
            printf("deq %s: %u evaluations, residual %.2e\n", m == 1 ? "anderson" : "broyden",
                   r.f_evals, r.residual);
            rc = !isfinite(r.residual);
        } else
            rc = 1;
    }
    if (st != CLATTN_SUCCESS && st != CLATTN_NOT_CONVERGED)
        fprintf(stderr, "deq failed: %s\n", clattn_context_last_error(ctx));
    clattn_plan_destroy(cell);
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(bw[i]);
    clReleaseMemObject(bx);
    clReleaseMemObject(bz);
    clReleaseMemObject(bo);
    return rc;
}

int main(int argc, char **argv)
{
    clattn_context *ctx = NULL;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
        return 1;
    }
    int rc = 0;
    const char *def[] = {"cpu", "gpu"};
    int n = argc > 1 ? argc - 1 : 2;
    for (int i = 0; i < n; i++) {
        const char *w = argc > 1 ? argv[i + 1] : def[i];
        if (strcmp(w, "sort") == 0) {
            rc |= run_sort(ctx);
            continue;
        }
        if (strcmp(w, "routing") == 0) {
            rc |= run_routing(ctx, 45, 4, 1, 1);
            rc |= run_routing(ctx, 30, 3, 0, 2);
            rc |= run_routing_half(ctx);
            continue;
        }
        if (strcmp(w, "lsh") == 0) {
            rc |= run_lsh(ctx, 45, 12, 20, 6, 16, 1, 0);
            rc |= run_lsh(ctx, 21, 16, 8, 36, 40, 0, 0);
            rc |= run_lsh(ctx, 37, 8, 8, 600, 8, 1, 1);
            rc |= run_lsh_half(ctx);
            continue;
        }
        if (strcmp(w, "rpe") == 0) {
            rc |= run_rpe(ctx, CLATTN_RPE_DIRECT, 37, 8, 5, 1, CLATTN_LINEAR_FEATURE_ELU, 2);
            rc |= run_rpe(ctx, CLATTN_RPE_DIRECT, 20, 4, 3, 0, CLATTN_LINEAR_FEATURE_FAVOR, 2);
            rc |= run_rpe(ctx, CLATTN_RPE_FFT, 30, 6, 4, 0, CLATTN_LINEAR_FEATURE_RELU, 2);
            rc |= run_rpe(ctx, CLATTN_RPE_FFT, 70, 4, 3, 1, CLATTN_LINEAR_FEATURE_ELU, 2);
            rc |= run_rpe(ctx, CLATTN_RPE_DIRECT, 21, 4, 3, 1, CLATTN_LINEAR_FEATURE_RELU, 1);
            rc |= run_rpe(ctx, CLATTN_RPE_FFT, 25, 5, 3, 1, CLATTN_LINEAR_FEATURE_FAVOR, 1);
            rc |= run_rpe_f16(ctx, CLATTN_RPE_FFT, 21, 4, 3, 1);
            continue;
        }
        if (strcmp(w, "mgk") == 0) {
            rc |= run_mgk(ctx, CLATTN_MGK_SOFTMAX, CLATTN_MGK_TILED_CPU, 21, 37, 8, 1);
            rc |= run_mgk(ctx, CLATTN_MGK_SOFTMAX, CLATTN_MGK_TILED_GPU, 37, 21, 8, 0);
            rc |= run_mgk(ctx, CLATTN_MGK_LINEAR, CLATTN_MGK_AUTO, 19, 19, 8, 1);
            rc |= run_mgk(ctx, CLATTN_MGK_LINEAR, CLATTN_MGK_AUTO, 11, 19, 8, 0);
            rc |= run_mgk_state(ctx);
            rc |= run_mgk_half(ctx, CLATTN_MGK_SOFTMAX, CLATTN_MGK_TILED_CPU);
            rc |= run_mgk_half(ctx, CLATTN_MGK_LINEAR, CLATTN_MGK_AUTO);
            continue;
        }
        if (strcmp(w, "deq") == 0) {
            rc |= run_deq(ctx);
            continue;
        }
        if (strcmp(w, "lsh_tiled") == 0) { /* the GPU attend kernel, forced on any device */
            setenv("CLATTN_LSH_ATTEND_KERNEL", "tiled", 1);
            rc |= run_lsh(ctx, 45, 12, 20, 6, 16, 1, 0);
            /* D 72, Dv 80: Q/K staged per key tile in two chunks, V in two (the other barrier
             * structure). */
            rc |= run_lsh(ctx, 20, 72, 80, 4, 16, 1, 0);
            unsetenv("CLATTN_LSH_ATTEND_KERNEL");
            continue;
        }
        if (strcmp(w, "linear_tiled") == 0) { /* linear's tiled output kernel, forced */
            setenv("CLATTN_LINEAR_OUT_KERNEL", "tiled", 1);
            /* fused form (phi from the q view): two row tiles, a partial feature stage (D 20)
             * and a partial column tile (Dv 40); materialised FAVOR+ rows with Dv 12 (the
             * narrow 8 x 16 tile); adaptive momentum's rows (the state without B) */
            rc |= run_linear(ctx, 70, 20, 40, 0, CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_FIXED);
            rc |= run_linear(ctx, 37, 8, 12, 0, CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED);
            rc |= run_linear(ctx, 21, 8, 40, 0, CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE);
            unsetenv("CLATTN_LINEAR_OUT_KERNEL");
            continue;
        }
        if (strcmp(w, "routing_tiled") == 0) { /* the GPU attend kernel, forced on any device */
            setenv("CLATTN_ROUTING_ATTEND_KERNEL", "tiled", 1);
            rc |= run_routing(ctx, 45, 4, 1, 1);
            rc |= run_routing(ctx, 30, 3, 0, 2);
            /* D 72, Dv 80: Q/K staged per key tile in two chunks, V in two chunks (the other
             * barrier structure). */
            rc |= run_routing_d(ctx, 20, 1, 1, 1, 72, 80);
            unsetenv("CLATTN_ROUTING_ATTEND_KERNEL");
            continue;
        }
        if (strcmp(w, "rpe_tiled") == 0) { /* the GPU direct kernel, forced on any device */
            setenv("CLATTN_RPE_DIRECT_KERNEL", "tiled", 1);
            rc |= run_rpe(ctx, CLATTN_RPE_DIRECT, 37, 8, 5, 1, CLATTN_LINEAR_FEATURE_ELU, 2);
            rc |= run_rpe(ctx, CLATTN_RPE_DIRECT, 40, 20, 70, 0, CLATTN_LINEAR_FEATURE_RELU, 1);
            rc |= run_rpe(ctx, CLATTN_RPE_FFT, 70, 4, 3, 1, CLATTN_LINEAR_FEATURE_FAVOR, 2);
            unsetenv("CLATTN_RPE_DIRECT_KERNEL");
            continue;
        }
        if (strcmp(w, "ssm") == 0) {
            rc |= run_ssm(ctx);
            rc |= run_ssm_f16(ctx);
            continue;
        }
        if (strcmp(w, "ssm_s4") == 0) {
            rc |= run_ssm_s4(ctx);
            continue;
        }
        if (strcmp(w, "linear") == 0) {
            rc |= run_linear(ctx, 70, 12, 20, 1, CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_NONE);
            rc |= run_linear(ctx, 45, 16, 8, 0, CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_NONE);
            rc |= run_linear(ctx, 70, 8, 20, 1, CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED);
            rc |= run_linear(ctx, 37, 8, 12, 0, CLATTN_LINEAR_FEATURE_FAVOR, CLATTN_LINEAR_MOMENTUM_FIXED);
            rc |= run_linear(ctx, 21, 8, 12, 1, CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE);
            /* the fused non-causal form (element-wise map; momentum rules out GEMM) */
            rc |= run_linear(ctx, 45, 20, 24, 0, CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_FIXED);
            rc |= run_linear_f16(ctx, 30, 20, 24); /* half storage (issue 15) */
            continue;
        }
        clattn_softmax_algo a = strcmp(w, "cpu") == 0   ? CLATTN_SOFTMAX_TILED_CPU
                                  : strcmp(w, "gpu") == 0 ? CLATTN_SOFTMAX_TILED_GPU
                                                          : CLATTN_SOFTMAX_NAIVE;
        rc |= run(ctx, a, 37, 70, 16, 1);
        rc |= run(ctx, a, 70, 37, 8, 0);
        if (a != CLATTN_SOFTMAX_NAIVE) { /* issue 15: one f16 and one mixed bf16 case */
            static const clattn_dtype h4[4] = {CLATTN_F16, CLATTN_F16, CLATTN_F16, CLATTN_F16};
            static const clattn_dtype bmix[4] = {CLATTN_BF16, CLATTN_BF16, CLATTN_F16, CLATTN_F32};
            rc |= run_softmax_typed(ctx, a, 21, 37, 8, 1, h4);
            rc |= run_softmax_typed(ctx, a, 1, 40, 8, 0, bmix);
        }
    }
    clattn_context_destroy(ctx);
    return rc;
}
