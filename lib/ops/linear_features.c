/* FAVOR+ projections (drawn on the host in double precision) and the feature kernel launches. */
#include "linear_features.h"
#include "sched/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t clattn__linear_feature_dim(const clattn_linear_desc *desc, size_t d)
{
    return desc->feature_map == CLATTN_FEATURE_FAVOR ? desc->features : d;
}

size_t clattn__linear_feature_stride(const clattn_linear_desc *desc, size_t d)
{
    size_t m = clattn__linear_feature_dim(desc, d);
    return clattn__div_up(m, CLATTN__LIN_MPAD) * CLATTN__LIN_MPAD;
}

/* ---- reproducible Gaussians: splitmix64 seeds xoshiro256**, Box-Muller in double ---- */

typedef struct rng {
    uint64_t s[4];
    int have;
    double spare;
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
    r->have = 0;
}

/* Uniform in (0, 1): 53 random bits, never 0. */
static double uniform(rng *r) { return ((double)(xoshiro(r) >> 11) + 0.5) * 0x1.0p-53; }

static double gaussian(rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = uniform(r), u2 = uniform(r), rad = sqrt(-2.0 * log(u1));
    double a = 6.283185307179586 * u2;
    r->spare = rad * sin(a);
    r->have = 1;
    return rad * cos(a);
}

clattn_status clattn_favor_draw(size_t m, size_t d, uint64_t seed, clattn_favor_scaling scaling,
                                float *w)
{
    if (!w)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "favor draw: w is NULL");
    if (m == 0 || d == 0 || m > CLATTN__LIN_MAX_M || d > CLATTN__LIN_MAX_D)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE,
                            "favor draw: m %zu must be in [1, %d] and d %zu in [1, %d]", m,
                            CLATTN__LIN_MAX_M, d, CLATTN__LIN_MAX_D);
    if (scaling != CLATTN_FAVOR_GAUSSIAN_NORMS && scaling != CLATTN_FAVOR_SQRT_D)
        return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT, "favor draw: unknown scaling %d",
                            (int)scaling);
    double *blk = malloc(d * d * sizeof *blk);
    if (!blk)
        return clattn__fail(NULL, CLATTN_OUT_OF_HOST_MEMORY, "favor draw: %zu x %zu block", d, d);
    rng r;
    rng_seed(&r, seed);
    for (size_t row0 = 0; row0 < m; row0 += d) {
        for (size_t i = 0; i < d * d; i++)
            blk[i] = gaussian(&r);
        /* Modified Gram-Schmidt on the rows (twice, for orthogonality to working precision). */
        for (size_t i = 0; i < d; i++) {
            double *ri = blk + i * d;
            for (int pass = 0; pass < 2; pass++)
                for (size_t j = 0; j < i; j++) {
                    const double *rj = blk + j * d;
                    double dot = 0;
                    for (size_t t = 0; t < d; t++)
                        dot += ri[t] * rj[t];
                    for (size_t t = 0; t < d; t++)
                        ri[t] -= dot * rj[t];
                }
            double nrm = 0;
            for (size_t t = 0; t < d; t++)
                nrm += ri[t] * ri[t];
            nrm = sqrt(nrm);
            for (size_t t = 0; t < d; t++)
                ri[t] /= nrm;
        }
        for (size_t i = 0; i < d && row0 + i < m; i++)
            for (size_t t = 0; t < d; t++)
                w[(row0 + i) * d + t] = (float)blk[i * d + t];
    }
    /* Row norms after every block, so the blocks do not depend on the scaling. */
    for (size_t i = 0; i < m; i++) {
        double nrm = sqrt((double)d);
        if (scaling == CLATTN_FAVOR_GAUSSIAN_NORMS) {
            double s = 0;
            for (size_t t = 0; t < d; t++) {
                double g = gaussian(&r);
                s += g * g;
            }
            nrm = sqrt(s);
        }
        for (size_t t = 0; t < d; t++)
            w[i * d + t] = (float)(w[i * d + t] * nrm);
    }
    free(blk);
    return CLATTN_SUCCESS;
}

clattn_status clattn__linear_projection_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                             size_t d, float **w_host)
{
    *w_host = NULL;
    if (desc->feature_map != CLATTN_FEATURE_FAVOR)
        return CLATTN_SUCCESS;
    size_t m = desc->features;
    float *w = malloc(m * d * sizeof *w);
    if (!w)
        return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "favor: projection %zu x %zu", m, d);
    if (desc->projection) {
        if (desc->projection_shape[0] != m || desc->projection_shape[1] != d) {
            free(w);
            return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                "favor: projection_shape [%zu, %zu] differs from [M, D] = "
                                "[%zu, %zu]",
                                desc->projection_shape[0], desc->projection_shape[1], m, d);
        }
        for (size_t i = 0; i < m * d; i++) {
            if (!isfinite(desc->projection[i])) {
                free(w);
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "favor: projection[%zu] is not finite", i);
            }
            w[i] = desc->projection[i];
        }
    } else {
        clattn_status st = clattn_favor_draw(m, d, desc->seed, desc->scaling, w);
        if (st != CLATTN_SUCCESS) {
            free(w);
            return clattn__fail(ctx, st, "favor: drawing the projection failed");
        }
    }
    *w_host = w;
    return CLATTN_SUCCESS;
}

clattn_status clattn__linear_projection(clattn_context *ctx, const clattn_linear_desc *desc,
                                        size_t d, cl_mem *w)
{
    *w = NULL;
    float *wh = NULL;
    clattn_status st = clattn__linear_projection_host(ctx, desc, d, &wh);
    if (st != CLATTN_SUCCESS || !wh)
        return st;
    size_t m = desc->features;
    float *wt = malloc(m * d * sizeof *wt);
    if (!wt) {
        free(wh);
        return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "favor: projection %zu x %zu", m, d);
    }
    for (size_t r = 0; r < m; r++)
        for (size_t t = 0; t < d; t++)
            wt[t * m + r] = wh[r * d + t];
    free(wh);
    cl_int err = CL_SUCCESS;
    *w = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, m * d * sizeof(float),
                        wt, &err);
    free(wt);
    if (err != CL_SUCCESS) {
        *w = NULL;
        return clattn__fail(ctx, (clattn_status)err, "favor: projection buffer: %s",
                            clattn_status_string((clattn_status)err));
    }
    return CLATTN_SUCCESS;
}

static clattn_status kernel_get(clattn_context *ctx, const char *name, cl_kernel *k)
{
    cl_program prog = NULL;
    clattn_status st = clattn__program_get(ctx, "linear.cl", CLATTN__LIN_OPTIONS, &prog);
    return st == CLATTN_SUCCESS ? clattn__kernel_create(ctx, prog, name, k) : st;
}

clattn_status clattn__linear_features(clattn_context *ctx, const clattn_linear_desc *desc,
                                      cl_mem w, const clattn_tensor *x, int stab, cl_mem f,
                                      cl_mem l, cl_uint num_wait, const cl_event *wait,
                                      cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel k1 = NULL, k2 = NULL, km = NULL, kr = NULL;
    cl_mem lt = NULL, lmax = NULL;
    cl_event ev[3] = {NULL, NULL, NULL};
    bool favor = desc->feature_map == CLATTN_FEATURE_FAVOR, head = favor && stab == 1;
    size_t heads = x->shape[1], n = x->shape[2], d = x->shape[3], bh = x->shape[0] * heads;
    cl_uint uh = (cl_uint)heads, ud = (cl_uint)d, un = (cl_uint)n;
    cl_uint um = (cl_uint)clattn__linear_feature_dim(desc, d);
    size_t mp = clattn__linear_feature_stride(desc, d);
    cl_uint ump = (cl_uint)mp;
    cl_int fmap = (cl_int)desc->feature_map, want_l = l != NULL || head;
    cl_float xs = (cl_float)pow((double)d, -0.25), fs = (cl_float)(1.0 / sqrt((double)um));
    const size_t ones[2] = {1, 1};
    bool cpu = clattn__softmax_family(&ctx->info) == CLATTN_SOFTMAX_TILED_CPU;
    /* llvmpipe counts its 65535-iteration loop cap over a whole work-group: one item per group. */
    bool tiny = strstr(ctx->info.name, "llvmpipe") != NULL;
    const size_t ones3[3] = {1, 1, 1};
    const size_t *small = tiny ? ones3 : NULL;
    if (head && !l)
        CLATTN_FORWARD(clattn__buffer_create(ctx, bh * n * sizeof(float), "key scales", &lt));
    cl_mem lbuf = l ? l : lt ? lt : f; /* any valid buffer when unused */
    size_t g3[3] = {mp, n, bh}, g2[2] = {n, bh};
    clattn__args a;
    if (!favor) {
        CLATTN_FORWARD(kernel_get(ctx, "clattn_linear_features", &k1));
        a = (clattn__args){k1, 0, CL_SUCCESS};
        clattn__arg_view(&a, x);
        CLATTN_ARG(&a, uh);
        CLATTN_ARG(&a, ud);
        CLATTN_ARG(&a, fmap);
        CLATTN_ARG(&a, f);
        CLATTN_ARG(&a, want_l);
        CLATTN_ARG(&a, lbuf);
        CLATTN_CL(a.err);
        size_t gb[3] = {mp / 16, n, bh}, l3[3] = {1, 1, 1};
        CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, k1, 3, NULL, gb, cpu || tiny ? l3 : NULL,
                                         num_wait, wait, event));
        goto cleanup;
    }
    CLATTN_CHECK(w != NULL, CLATTN_INVALID_ARGUMENT, "favor features: no projection");
    CLATTN_FORWARD(kernel_get(ctx, "clattn_linear_favor_proj", &k1));
    a = (clattn__args){k1, 0, CL_SUCCESS};
    clattn__arg_view(&a, x);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, xs);
    CLATTN_ARG(&a, f);
    CLATTN_CL(a.err);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, k1, 3, NULL, g3, small, num_wait, wait, &ev[0]));
    CLATTN_FORWARD(kernel_get(ctx, "clattn_linear_favor_exp", &k2));
    a = (clattn__args){k2, 0, CL_SUCCESS};
    CLATTN_ARG(&a, f);
    CLATTN_ARG(&a, ump);
    CLATTN_ARG(&a, fs);
    CLATTN_ARG(&a, want_l);
    CLATTN_ARG(&a, lbuf);
    CLATTN_CL(a.err);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, k2, 2, NULL, g2, cpu || tiny ? ones : NULL, 1,
                                     &ev[0], head ? &ev[1] : event));
    if (!head)
        goto cleanup;
    CLATTN_FORWARD(clattn__buffer_create(ctx, bh * sizeof(float), "head key scales", &lmax));
    CLATTN_FORWARD(kernel_get(ctx, "clattn_linear_head_max", &km));
    a = (clattn__args){km, 0, CL_SUCCESS};
    CLATTN_ARG(&a, lbuf);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, lmax);
    CLATTN_CL(a.err);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, km, 1, NULL, &bh, small, 1, &ev[1], &ev[2]));
    CLATTN_FORWARD(kernel_get(ctx, "clattn_linear_head_rescale", &kr));
    a = (clattn__args){kr, 0, CL_SUCCESS};
    CLATTN_ARG(&a, f);
    CLATTN_ARG(&a, lbuf);
    CLATTN_ARG(&a, lmax);
    CLATTN_CL(a.err);
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, kr, 3, NULL, g3, small, 1, &ev[2], event));
cleanup:
    for (int i = 0; i < 3; i++)
        if (ev[i])
            clReleaseEvent(ev[i]);
    cl_kernel ks[] = {k1, k2, km, kr};
    for (int i = 0; i < 4; i++)
        if (ks[i])
            clReleaseKernel(ks[i]);
    if (lt)
        clReleaseMemObject(lt);
    if (lmax)
        clReleaseMemObject(lmax);
    return status;
}
