/* Routing attention's centroids, on a routing plan (lib/ops/routing.h): the EMA update (assign →
 * scatter-mean → EMA, through the plan's kernels and scratch) and the k-means++ initialisation on
 * the host (its result stored through the plan's store kernel). */
#include "routing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- EMA update ---- */

clattn_status clattn_routing_update_centroids(clattn_plan *base, const clattn_tensor *q,
                                              const clattn_tensor *k,
                                              const clattn_tensor *centroids, cl_uint num_wait,
                                              const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_ROUTING, "routing update");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__routing_plan *p = (clattn__routing_plan *)base;
    clattn_context *ctx = base->ctx;
    const clattn__routing_problem *r = &p->prob;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(q && k && centroids, CLATTN_NULL_POINTER,
                 "routing update: q, k and centroids are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "routing update: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(
        clattn__routing_check_io(p, q, k, NULL, NULL, centroids, "centroids", p->mushape,
                                 CLATTN_F32));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    /* Scratch reuse: normalised rows in `big`, assignments in `sel`, cluster means in `kp`,
     * counts in `kpos`. */
    size_t units = r->batch * (r->heads_q + r->heads_k), nrows = units * r->n;
    size_t ndst = r->heads_k * r->clusters;
    CLATTN_FORWARD(clattn__routing_pack_centroids(&s, p, centroids));
    cl_uint dk = (cl_uint)r->d, nc = (cl_uint)r->clusters;
    clattn__args a = {p->assign, 0, CL_SUCCESS};
    clattn__routing_rows_args(&a, p, q, k);
    CLATTN_ARG(&a, p->sel);
    CLATTN_CL(a.err);
    size_t gas[2], las[2];
    clattn__routing_rows_sizes(p, gas, las);
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, p->assign, 2, gas, las, false, NULL));
    CLATTN_FORWARD(clattn__scatter_mean_rows_seq(&s, &p->blocks, &p->ws, p->big, nrows, r->d,
                                                 p->sel, ndst, p->kp, p->kpos, false, NULL));
    cl_float decay = p->desc.decay;
    a = (clattn__args){p->ema, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->kp);
    CLATTN_ARG(&a, p->kpos);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, decay);
    clattn__arg_view(&a, centroids);
    CLATTN_CL(a.err);
    size_t ge[2] = {r->clusters, r->heads_k};
    CLATTN_FORWARD(clattn__seq_kernel(&s, p->ema, 2, ge, true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

/* ---- k-means++ on the host ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* The M = (G + 1) B N normalised vectors of key head hk (header of
 * clattn_routing_centroids_draw) from dense host q [B, Hq, N, D] and k [B, Hk, N, D] into x. */
static void head_data(const float *q, const float *k, const clattn__routing_problem *r, size_t hk,
                      double *x)
{
    size_t G = r->heads_q / r->heads_k, BN = r->batch * r->n, D = r->d;
    for (size_t m = 0; m < (G + 1) * BN; m++) {
        size_t g = m / BN, b = (m % BN) / r->n, n = m % r->n;
        const float *src = g < G ? q + ((b * r->heads_q + hk * G + g) * r->n + n) * D
                                 : k + ((b * r->heads_k + hk) * r->n + n) * D;
        double nn = 0;
        for (size_t e = 0; e < D; e++)
            nn += (double)src[e] * src[e];
        double inv = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
        for (size_t e = 0; e < D; e++)
            x[m * D + e] = src[e] * inv;
    }
}

/* k-means++ of every key head; writes mu [Hk][C][D]. x: scratch of M D doubles, dist: M. */
static void kmeanspp(const float *q, const float *k, const clattn__routing_problem *r,
                     uint64_t seed, double *x, double *dist, float *mu)
{
    size_t M = (r->heads_q / r->heads_k + 1) * r->batch * r->n, D = r->d;
    for (size_t h = 0; h < r->heads_k; h++) {
        head_data(q, k, r, h, x);
        uint64_t st = seed + (uint64_t)(h + 1) * 0x9E3779B97F4A7C15ull;
        size_t pick = (size_t)(uniform01(&st) * (double)M);
        for (size_t c = 0; c < r->clusters; c++) {
            if (c > 0) {
                double total = 0;
                for (size_t i = 0; i < M; i++)
                    total += dist[i];
                double u = uniform01(&st);
                if (total > 0) {
                    double target = u * total, run = 0;
                    size_t last_pos = 0;
                    pick = M;
                    for (size_t i = 0; i < M && pick == M; i++) {
                        if (dist[i] > 0)
                            last_pos = i;
                        run += dist[i];
                        if (run > target)
                            pick = i;
                    }
                    if (pick == M)
                        pick = last_pos; /* rounding ran past the end */
                } else {
                    pick = (size_t)(u * (double)M); /* every point is already a centroid */
                }
            }
            const double *cx = x + pick * D;
            for (size_t e = 0; e < D; e++)
                mu[(h * r->clusters + c) * D + e] = (float)cx[e];
            for (size_t i = 0; i < M; i++) {
                double s = 0;
                for (size_t e = 0; e < D; e++) {
                    double t = x[i * D + e] - cx[e];
                    s += t * t;
                }
                if (c == 0 || s < dist[i])
                    dist[i] = s;
            }
        }
    }
}

/* Reads a strided view of element type dt (checked by the caller) into dense float32 host memory
 * [s0][s1][s2][s3], after everything enqueued before (blocking). */
static clattn_status read_view(clattn_context *ctx, const clattn_tensor *t, clattn_dtype dt,
                               float *dst)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t first, last;
    clattn__tensor_extent(t, clattn_dtype_size(dt), &first, &last);
    unsigned char *tmp = malloc(last + 1 - first);
    CLATTN_CHECK(tmp != NULL, CLATTN_OUT_OF_HOST_MEMORY, "routing: staging %zu bytes",
                 last + 1 - first);
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, t->buffer, CL_TRUE, first, last + 1 - first, tmp, 0,
                                  NULL, NULL));
    size_t o = 0;
    for (size_t i0 = 0; i0 < t->shape[0]; i0++)
        for (size_t i1 = 0; i1 < t->shape[1]; i1++)
            for (size_t i2 = 0; i2 < t->shape[2]; i2++)
                for (size_t i3 = 0; i3 < t->shape[3]; i3++)
                    dst[o++] = clattn__load_host(tmp, dt,
                                                 i0 * t->strides[0] + i1 * t->strides[1] +
                                                     i2 * t->strides[2] + i3 * t->strides[3]);
cleanup:
    free(tmp);
    return status;
}

clattn_status clattn_routing_centroids_draw(clattn_plan *base, const clattn_tensor *q,
                                            const clattn_tensor *k, uint64_t seed,
                                            const clattn_tensor *centroids)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_ROUTING, "routing k-means++");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__routing_plan *p = (clattn__routing_plan *)base;
    clattn_context *ctx = base->ctx;
    const clattn__routing_problem *r = &p->prob;
    clattn__seq s;
    bool seq = false;
    float *hq = NULL, *hk = NULL, *hmu = NULL;
    double *x = NULL, *dist = NULL;
    CLATTN_CHECK(q && k && centroids, CLATTN_NULL_POINTER,
                 "routing k-means++: q, k and centroids are required");
    CLATTN_FORWARD(
        clattn__routing_check_io(p, q, k, NULL, NULL, centroids, "centroids", p->mushape,
                                 CLATTN_F32));
    size_t nq = r->batch * r->heads_q * r->n * r->d, nk = r->batch * r->heads_k * r->n * r->d;
    size_t M = (r->heads_q / r->heads_k + 1) * r->batch * r->n;
    size_t nmu = r->heads_k * r->clusters * r->d;
    hq = malloc(nq * sizeof(float));
    hk = malloc(nk * sizeof(float));
    hmu = malloc(nmu * sizeof(float));
    x = malloc(M * r->d * sizeof(double));
    dist = malloc(M * sizeof(double));
    CLATTN_CHECK(hq && hk && hmu && x && dist, CLATTN_OUT_OF_HOST_MEMORY,
                 "routing k-means++: host scratch for %zu vectors of %zu", M, r->d);
    CLATTN_FORWARD(read_view(ctx, q, p->desc.q_dtype, hq));
    CLATTN_FORWARD(read_view(ctx, k, p->desc.k_dtype, hk));
    kmeanspp(hq, hk, r, seed, x, dist, hmu);
    /* Every earlier command has finished (the reads above waited for a barrier), so the plan's
     * score buffer is free to carry the result to the store kernel. */
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, p->big, CL_TRUE, 0, nmu * sizeof(float), hmu, 0,
                                   NULL, NULL));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, 0, NULL));
    seq = true;
    CLATTN_FORWARD(clattn__routing_store(&s, p, true, p->big, r->heads_k, r->heads_k, r->clusters,
                                         r->d, centroids, true, NULL));
    CLATTN_CL(clFinish(ctx->queue));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    free(hq);
    free(hk);
    free(hmu);
    free(x);
    free(dist);
    return status;
}
