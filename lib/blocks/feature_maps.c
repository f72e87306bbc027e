/* Feature maps (feature_maps.h): FAVOR+ projections drawn on the host in double precision, and the
 * feature kernels of kernels_cl/blocks_features.cl, baked once into a plan. */
#include "feature_maps.h"
#include "../sched/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t clattn__features_count(const clattn_linear_desc *desc, size_t d)
{
    return desc->feature_map == CLATTN_LINEAR_FEATURE_FAVOR ? desc->features : d;
}

size_t clattn__features_stride(const clattn_linear_desc *desc, size_t d)
{
    size_t m = clattn__features_count(desc, d);
    return clattn__div_up(m, CLATTN__FEATURES_MPAD) * CLATTN__FEATURES_MPAD;
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

clattn_status clattn_linear_favor_draw(size_t m, size_t d, uint64_t seed, clattn_linear_favor_scaling scaling,
                                float *w)
{
    if (!w)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "favor draw: w is NULL");
    if (m == 0 || d == 0 || m > CLATTN__FEATURES_MAX_M || d > CLATTN__FEATURES_MAX_D)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE,
                            "favor draw: m %zu must be in [1, %d] and d %zu in [1, %d]", m,
                            CLATTN__FEATURES_MAX_M, d, CLATTN__FEATURES_MAX_D);
    if (scaling != CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS && scaling != CLATTN_LINEAR_FAVOR_SQRT_D)
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
        if (scaling == CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS) {
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

clattn_status clattn__features_projection_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                             size_t d, float **w_host)
{
    *w_host = NULL;
    if (desc->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
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
        clattn_status st = clattn_linear_favor_draw(m, d, desc->seed, desc->scaling, w);
        if (st != CLATTN_SUCCESS) {
            free(w);
            return clattn__fail(ctx, st, "favor: drawing the projection failed");
        }
    }
    *w_host = w;
    return CLATTN_SUCCESS;
}


/* W [M][D] transposed to the [D][M] layout clattn_features_favor_proj reads (malloc'd). */
static float *transpose_w(const float *w, size_t m, size_t d)
{
    float *wt = malloc(m * d * sizeof *wt);
    if (wt)
        for (size_t r = 0; r < m; r++)
            for (size_t t = 0; t < d; t++)
                wt[t * m + r] = w[r * d + t];
    return wt;
}

clattn_status clattn__features_bake(clattn_plan *plan, const clattn_linear_desc *desc, size_t d,
                                    const float *w_host, int head_scale, size_t local,
                                    int one_item, const char *chosen_by, clattn__features *f)
{
    const clattn_dtype f32 = CLATTN_F32;
    return clattn__features_bake_typed(plan, desc, d, w_host, head_scale, local, one_item,
                                       chosen_by, &f32, 1, f);
}

/* The input-reading kernel `name` for element type dt: options "" for float32 (the programs
 * and cache keys of before), "-DX_DT=<dt>" otherwise. */
static clattn_status typed_kernel(clattn_plan *plan, const char *name, clattn_dtype dt,
                                  size_t local, const char *chosen_by, cl_kernel *k)
{
    char opts[24] = "";
    if (dt != CLATTN_F32)
        snprintf(opts, sizeof opts, "-DX_DT=%d", (int)dt);
    return clattn__plan_kernel(plan, "blocks_features.cl", opts, name, local, chosen_by, k);
}

clattn_status clattn__features_bake_typed(clattn_plan *plan, const clattn_linear_desc *desc,
                                          size_t d, const float *w_host, int head_scale,
                                          size_t local, int one_item, const char *chosen_by,
                                          const clattn_dtype *xdts, int n, clattn__features *f)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *wt = NULL;
    char saved_defines[sizeof plan->dtype_defines];
    saved_defines[0] = '\0';
    memcpy(saved_defines, plan->dtype_defines, sizeof saved_defines);
    memset(f, 0, sizeof *f);
    f->fmap = (int)desc->feature_map;
    f->d = d;
    f->m = clattn__features_count(desc, d);
    f->mp = clattn__features_stride(desc, d);
    f->xs = (float)pow((double)d, -0.25);
    f->fs = (float)(1.0 / sqrt((double)f->m));
    f->local = one_item ? 1 : local;
    f->one_item = one_item;
    const char *file = "blocks_features.cl";
    size_t el = f->local, any = one_item ? 1 : 0;
    /* The feature kernels take their input's type from X_DT alone, not from the plan's roles
     * (-DQ_DT=...): one program per input type, shared by every plan whatever its other types
     * (as clattn__plan_cast_kernel does); restored at cleanup. */
    memcpy(saved_defines, plan->dtype_defines, sizeof saved_defines);
    plan->dtype_defines[0] = '\0';
    bool favor = desc->feature_map == CLATTN_LINEAR_FEATURE_FAVOR;
    for (int i = 0; i < n; i++) {
        clattn_dtype dt = xdts[i];
        CLATTN_CHECK((int)dt >= 0 && (int)dt <= 2, CLATTN_INVALID_ARGUMENT,
                     "features: unknown element type %d", (int)dt);
        cl_kernel *slot = favor ? (dt == CLATTN_F32 ? &f->proj : &f->proj_dt[dt])
                                : (dt == CLATTN_F32 ? &f->map : &f->map_dt[dt]);
        if (*slot)
            continue;
        CLATTN_FORWARD(typed_kernel(plan, favor ? "clattn_features_favor_proj"
                                                : "clattn_features_map",
                                    dt, favor ? any : el, chosen_by, slot));
    }
    if (!favor)
        goto cleanup;
    CLATTN_FORWARD(clattn__plan_kernel(plan, file, "", "clattn_features_favor_exp", el,
                                       chosen_by, &f->exp));
    if (head_scale) {
        CLATTN_FORWARD(clattn__plan_kernel(plan, file, "", "clattn_features_head_max", any,
                                           chosen_by, &f->head_max));
        CLATTN_FORWARD(clattn__plan_kernel(plan, file, "", "clattn_features_head_rescale", any,
                                           chosen_by, &f->head_rescale));
    }
    if (w_host) {
        wt = transpose_w(w_host, f->m, d);
        CLATTN_CHECK(wt != NULL, CLATTN_OUT_OF_HOST_MEMORY, "favor: projection %zu x %zu", f->m,
                     d);
        CLATTN_FORWARD(clattn__plan_upload(plan, wt, f->m * d * sizeof(float),
                                           "FAVOR+ projection", &f->wt));
    }
cleanup:
    memcpy(plan->dtype_defines, saved_defines, sizeof saved_defines);
    free(wt);
    return status;
}

clattn_status clattn__features_enqueue(const clattn__features *f, clattn__seq *s,
                                       const clattn_tensor *x, int stab, cl_mem out, cl_mem l,
                                       cl_mem lmax, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    bool favor = f->fmap == CLATTN_LINEAR_FEATURE_FAVOR, head = favor && stab == 1;
    size_t heads = x->shape[1], n = x->shape[2], bh = x->shape[0] * heads;
    cl_uint uh = (cl_uint)heads, ud = (cl_uint)f->d, un = (cl_uint)n, um = (cl_uint)f->m;
    cl_uint ump = (cl_uint)f->mp;
    cl_int fmap = f->fmap, want_l = l != NULL;
    cl_mem lbuf = l ? l : out; /* any valid buffer when unused */
    const size_t ones[3] = {1, 1, 1};
    const size_t *el = f->local ? ones : NULL, *any = f->one_item ? ones : NULL;
    size_t g3[3] = {f->mp, n, bh}, g2[2] = {n, bh};
    clattn__args a;
    CLATTN_CHECK(!head || (l && lmax && f->head_max), CLATTN_INTERNAL_ERROR,
                 "features: the per-head stabiliser needs its kernels and buffers");
    clattn_dtype xdt = x->dtype;
    CLATTN_CHECK((int)xdt >= 0 && (int)xdt <= 2, CLATTN_INTERNAL_ERROR,
                 "features: unknown element type %d", (int)xdt);
    cl_kernel kmap = xdt == CLATTN_F32 ? f->map : f->map_dt[xdt];
    cl_kernel kproj = xdt == CLATTN_F32 ? f->proj : f->proj_dt[xdt];
    CLATTN_CHECK(favor ? kproj != NULL : kmap != NULL, CLATTN_INTERNAL_ERROR,
                 "features: no kernel baked for %s inputs", clattn_dtype_name(xdt));
    if (!favor) {
        a = (clattn__args){kmap, 0, CL_SUCCESS};
        clattn__arg_view(&a, x);
        CLATTN_ARG(&a, uh);
        CLATTN_ARG(&a, ud);
        CLATTN_ARG(&a, fmap);
        CLATTN_ARG(&a, out);
        CLATTN_ARG(&a, want_l);
        CLATTN_ARG(&a, lbuf);
        CLATTN_CL(a.err);
        size_t gb[3] = {f->mp / 16, n, bh};
        CLATTN_FORWARD(clattn__seq_kernel_local(s, kmap, 3, gb, el, last, event));
        goto cleanup;
    }
    CLATTN_CHECK(f->wt != NULL, CLATTN_INTERNAL_ERROR, "favor features: no projection");
    a = (clattn__args){kproj, 0, CL_SUCCESS};
    clattn__arg_view(&a, x);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, f->wt);
    CLATTN_ARG(&a, f->xs);
    CLATTN_ARG(&a, out);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, kproj, 3, g3, any, false, NULL));
    a = (clattn__args){f->exp, 0, CL_SUCCESS};
    CLATTN_ARG(&a, out);
    CLATTN_ARG(&a, ump);
    CLATTN_ARG(&a, f->fs);
    CLATTN_ARG(&a, want_l);
    CLATTN_ARG(&a, lbuf);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, f->exp, 2, g2, el, last && !head, event));
    if (!head)
        goto cleanup;
    a = (clattn__args){f->head_max, 0, CL_SUCCESS};
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, lmax);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, f->head_max, 1, &bh, any, false, NULL));
    a = (clattn__args){f->head_rescale, 0, CL_SUCCESS};
    CLATTN_ARG(&a, out);
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, lmax);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, f->head_rescale, 3, g3, any, last, event));
cleanup:
    return status;
}
