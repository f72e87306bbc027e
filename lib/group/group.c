/* Device groups: the handle, its weights (tuning database, calibration, caller), the cuts of a
 * sequence or of (batch, head) pairs into per-device shares, and failures that name a device.
 * The operators' group calls live in group_softmax.c and group_linear.c. */
#include "group_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void clattn_group_options_init(clattn_group_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->weights = CLATTN_GROUP_WEIGHTS_AUTO;
    opts->split = CLATTN_GROUP_SPLIT_AUTO;
}

clattn_status clattn__group_fail(clattn_group *g, clattn_status status, const char *fmt, ...)
{
    char buf[CLATTN__GROUP_MSG - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g)
        snprintf(g->msg, sizeof g->msg, "%s: %s", clattn_status_string(status), buf);
    else /* creation: the thread's message, as clattn_context_create leaves it */
        (void)clattn__fail(NULL, status, "%s", buf);
    return status;
}

clattn_status clattn__group_device_fail(clattn_group *g, size_t r, clattn_status status,
                                        const char *what)
{
    return clattn__group_fail(g, status, "device %zu (%s): %s: %s", r, g->name[r], what,
                              clattn_context_last_error(g->ctx[r]));
}

cl_mem clattn__group_buffer(clattn_group *g, size_t r, size_t bytes, const void *init,
                            clattn_status *st)
{
    cl_int err = CL_SUCCESS;
    clattn_context *ctx = g->ctx[r];
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx),
                              CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes < 4 ? 4 : bytes, (void *)init, &err);
    if (err != CL_SUCCESS) {
        (void)clattn__fail(ctx, (clattn_status)err, "clCreateBuffer of %zu bytes failed (%d)",
                           bytes, (int)err);
        *st = clattn__group_device_fail(g, r, (clattn_status)err, "buffer");
        return NULL;
    }
    return m;
}

void clattn__group_release(cl_mem *const *m, int n)
{
    for (int i = 0; i < n; i++)
        if (*m[i]) {
            clReleaseMemObject(*m[i]);
            *m[i] = NULL;
        }
}

void clattn__group_inject_failure(clattn_group *g, size_t r, clattn_status status)
{
    if (g && r < g->n) {
        g->inject = r + 1;
        g->inject_status = status;
    }
}

clattn_status clattn__group_injected(clattn_group *g, size_t r)
{
    if (g->inject != r + 1)
        return CLATTN_SUCCESS;
    g->inject = 0;
    (void)clattn__fail(g->ctx[r], g->inject_status, "injected failure (test hook)");
    return g->inject_status;
}

int clattn__group_same_cl(clattn_context *a, clattn_context *b)
{
    return a == b || clattn_context_get_cl_context(a) == clattn_context_get_cl_context(b);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One device's throughput on the calibration block, {1, 4, 256, 64} non-causal softmax: a
 * warm-up run (builds or loads the kernels), then the best of up to three timed runs (one on a
 * device slow enough that they pass 0.2 s), in GFLOP/s. */
static clattn_status calibrate_one(clattn_group *g, size_t r, double *gflops)
{
    clattn_context *ctx = g->ctx[r];
    clattn_status status = CLATTN_SUCCESS;
    const size_t B = 1, H = 4, N = 256, D = 64;
    size_t shape[4] = {B, H, N, D};
    size_t elems = B * H * N * D;
    cl_mem buf[4] = {NULL, NULL, NULL, NULL};
    clattn_plan *plan = NULL;
    float *host = malloc(elems * sizeof *host);
    if (!host)
        return clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "calibration: out of memory");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < elems; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        host[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) - 0.5f;
    }
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < 4 && err == CL_SUCCESS; i++)
        buf[i] = clCreateBuffer(clattn_context_get_cl_context(ctx),
                                CL_MEM_READ_WRITE | (i < 3 ? CL_MEM_COPY_HOST_PTR : 0),
                                elems * sizeof(float), i < 3 ? host : NULL, &err);
    if (err != CL_SUCCESS) {
        (void)clattn__fail(ctx, (clattn_status)err, "clCreateBuffer of %zu bytes failed",
                           elems * sizeof(float));
        status = clattn__group_device_fail(g, r, (clattn_status)err, "calibration");
        goto cleanup;
    }
    status = clattn_softmax_plan_create(ctx, NULL, shape, shape, shape, &plan);
    if (status != CLATTN_SUCCESS) {
        status = clattn__group_device_fail(g, r, status, "calibration plan");
        goto cleanup;
    }
    clattn_tensor t[4];
    for (int i = 0; i < 4; i++)
        t[i] = clattn_tensor_make(buf[i], B, H, N, D);
    double best = INFINITY, spent = 0.0;
    /* The warm-up, then up to three timed runs, fewer on a slow device (stop after 0.2 s). */
    for (int it = 0; it < 4 && spent < 0.2; it++) {
        double t0 = now_s();
        status = clattn_softmax_plan_enqueue(plan, &t[0], &t[1], &t[2], &t[3], NULL, 0, NULL, NULL);
        if (status == CLATTN_SUCCESS)
            status = clattn_context_finish(ctx);
        if (status != CLATTN_SUCCESS) {
            status = clattn__group_device_fail(g, r, status, "calibration run");
            goto cleanup;
        }
        double dt = now_s() - t0;
        if (it > 0) {
            best = dt < best ? dt : best;
            spent += dt;
        }
    }
    *gflops = 4.0 * (double)(B * H * N * N * D) / (best > 1e-9 ? best : 1e-9) * 1e-9;
cleanup:
    clattn_plan_destroy(plan);
    for (int i = 0; i < 4; i++)
        if (buf[i])
            clReleaseMemObject(buf[i]);
    free(host);
    return status;
}

/* Weights from the tuning databases: a softmax shape class (head dims, buckets, causal) every
 * device has an f32 entry for, its tuned times inverted. False when there is none. */
static bool weights_from_db(clattn_group *g, double *w)
{
    enum { CAP = 256 };
    clattn_tuning_entry *e = calloc((size_t)CAP * g->n, sizeof *e);
    size_t *cnt = calloc(g->n, sizeof *cnt);
    bool found = false;
    if (!e || !cnt)
        goto done;
    for (size_t r = 0; r < g->n; r++) {
        size_t c = 0;
        if (clattn_tuning_db_list(g->ctx[r], e + r * CAP, CAP, &c) != CLATTN_SUCCESS)
            goto done;
        cnt[r] = c < CAP ? c : CAP;
    }
    double best_work = 0.0;
    for (size_t i = 0; i < cnt[0]; i++) {
        const clattn_tuning_entry *a = &e[i];
        if (strcmp(a->op, "softmax") != 0 || strchr(a->variant, '.') || !(a->tuned_ms > 0.0))
            continue;
        double t[CLATTN__GROUP_MAX];
        t[0] = a->tuned_ms;
        bool all = true;
        for (size_t r = 1; r < g->n && all; r++) {
            all = false;
            for (size_t j = 0; j < cnt[r]; j++) {
                const clattn_tuning_entry *b = &e[r * CAP + j];
                if (strcmp(b->op, "softmax") == 0 && !strchr(b->variant, '.') &&
                    b->head_dim == a->head_dim && b->head_dim_v == a->head_dim_v &&
                    b->nq_bucket == a->nq_bucket && b->nk_bucket == a->nk_bucket &&
                    b->causal == a->causal && b->tuned_ms > 0.0) {
                    t[r] = b->tuned_ms;
                    all = true;
                    break;
                }
            }
        }
        double work = (double)a->nq_bucket * (double)a->nk_bucket * a->head_dim;
        if (all && work > best_work) { /* the largest common class: the least launch overhead */
            best_work = work;
            for (size_t r = 0; r < g->n; r++)
                w[r] = 1.0 / t[r];
            found = true;
        }
    }
done:
    free(e);
    free(cnt);
    return found;
}

static void normalise(double *w, size_t n)
{
    double sum = 0.0;
    for (size_t r = 0; r < n; r++)
        sum += w[r];
    for (size_t r = 0; r < n; r++)
        w[r] /= sum;
}

clattn_status clattn_group_create(clattn_context *const *contexts, size_t n,
                                  const clattn_group_options *opts, clattn_group **group)
{
    if (group)
        *group = NULL;
    if (!contexts || !group)
        return clattn__group_fail(NULL, CLATTN_NULL_POINTER, "group create: contexts and group "
                                                             "are required");
    if (n < 1 || n > CLATTN__GROUP_MAX)
        return clattn__group_fail(NULL, CLATTN_INVALID_ARGUMENT,
                                  "group create: %zu devices (1 to %d)", n, CLATTN__GROUP_MAX);
    clattn_group_options o;
    clattn_group_options_init(&o);
    if (opts) {
        if (opts->struct_size < sizeof(size_t) || opts->struct_size > sizeof o)
            return clattn__group_fail(NULL, CLATTN_INVALID_ARGUMENT,
                                      "group create: options.struct_size %zu (use "
                                      "clattn_group_options_init)",
                                      opts->struct_size);
        memcpy(&o, opts, opts->struct_size);
        o.struct_size = sizeof o;
    }
    if ((unsigned)o.weights > CLATTN_GROUP_WEIGHTS_EQUAL)
        return clattn__group_fail(NULL, CLATTN_INVALID_ARGUMENT,
                                  "group create: options.weights %d (AUTO, CALIBRATE or EQUAL)",
                                  (int)o.weights);
    if ((unsigned)o.split > CLATTN_GROUP_SPLIT_HEADS)
        return clattn__group_fail(NULL, CLATTN_INVALID_ARGUMENT,
                                  "group create: options.split %d", (int)o.split);
    for (size_t r = 0; r < n; r++) {
        if (!contexts[r])
            return clattn__group_fail(NULL, CLATTN_NULL_POINTER, "group create: contexts[%zu] is "
                                                                 "NULL", r);
        for (size_t s = 0; s < r; s++)
            if (contexts[s] == contexts[r])
                return clattn__group_fail(NULL, CLATTN_INVALID_ARGUMENT,
                                          "group create: contexts[%zu] repeats contexts[%zu] (make "
                                          "a second context for the same device)",
                                          r, s);
    }
    clattn_group *g = calloc(1, sizeof *g);
    if (!g)
        return clattn__group_fail(NULL, CLATTN_OUT_OF_HOST_MEMORY, "group create: out of memory");
    g->n = n;
    g->split = o.split;
    for (size_t r = 0; r < n; r++) {
        g->ctx[r] = contexts[r];
        clattn_device_info info;
        if (clattn_context_get_device_info(contexts[r], &info) == CLATTN_SUCCESS)
            snprintf(g->name[r], sizeof g->name[r], "%.40s %.48s", info.platform_name, info.name);
        else
            snprintf(g->name[r], sizeof g->name[r], "?");
        g->w[r] = 1.0;
    }
    g->source = CLATTN_GROUP_WEIGHTS_EQUAL;
    if (n > 1 && o.weights == CLATTN_GROUP_WEIGHTS_AUTO && weights_from_db(g, g->w)) {
        g->source = CLATTN_GROUP_WEIGHTS_TUNING_DB;
    } else if (n > 1 && o.weights != CLATTN_GROUP_WEIGHTS_EQUAL) {
        for (size_t r = 0; r < n; r++) {
            clattn_status st = calibrate_one(g, r, &g->w[r]);
            if (st != CLATTN_SUCCESS) {
                /* g->msg starts with the status name and ": " (clattn__group_fail). */
                size_t skip = strlen(clattn_status_string(st)) + 2;
                (void)clattn__group_fail(NULL, st, "group create: %s",
                                         strlen(g->msg) > skip ? g->msg + skip : g->msg);
                free(g);
                return st;
            }
        }
        g->source = CLATTN_GROUP_WEIGHTS_CALIBRATE;
    }
    if (g->source != CLATTN_GROUP_WEIGHTS_EQUAL) {
        /* A device measured below 2% of the fastest is left out: its fixed costs (uploads, a
         * pass over every query of its slice) would outweigh the share it could take. */
        double top = 0.0;
        for (size_t r = 0; r < n; r++)
            top = g->w[r] > top ? g->w[r] : top;
        for (size_t r = 0; r < n; r++)
            if (!(g->w[r] >= 0.02 * top))
                g->w[r] = 0.0;
    }
    normalise(g->w, n);
    *group = g;
    return CLATTN_SUCCESS;
}

void clattn_group_destroy(clattn_group *group)
{
    free(group);
}

size_t clattn_group_size(const clattn_group *group)
{
    return group ? group->n : 0;
}

clattn_status clattn_group_set_weights(clattn_group *group, const double *weights, size_t n)
{
    if (!group || !weights)
        return group ? clattn__group_fail(group, CLATTN_NULL_POINTER, "set weights: weights is "
                                                                      "NULL")
                     : CLATTN_NULL_POINTER;
    if (n != group->n)
        return clattn__group_fail(group, CLATTN_INVALID_ARGUMENT,
                                  "set weights: %zu weights for %zu devices", n, group->n);
    double sum = 0.0;
    for (size_t r = 0; r < n; r++) {
        if (!isfinite(weights[r]) || weights[r] < 0.0)
            return clattn__group_fail(group, CLATTN_INVALID_ARGUMENT,
                                      "set weights: weight %zu is %g (finite, >= 0)", r,
                                      weights[r]);
        sum += weights[r];
    }
    if (!(sum > 0.0) || !isfinite(sum))
        return clattn__group_fail(group, CLATTN_INVALID_ARGUMENT,
                                  "set weights: the weights sum to %g (must be > 0)", sum);
    for (size_t r = 0; r < n; r++)
        group->w[r] = weights[r] / sum;
    group->source = CLATTN_GROUP_WEIGHTS_CALLER;
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_get_weights(const clattn_group *group, double *weights, size_t n,
                                       clattn_group_weights *source)
{
    if (!group || !weights)
        return CLATTN_NULL_POINTER;
    if (n < group->n)
        return CLATTN_BUFFER_TOO_SMALL;
    for (size_t r = 0; r < group->n; r++)
        weights[r] = group->w[r];
    if (source)
        *source = group->source;
    return CLATTN_SUCCESS;
}

const char *clattn_group_last_error(const clattn_group *group)
{
    return group ? group->msg : clattn_context_last_error(NULL);
}

clattn_status clattn_group_get_run_info(const clattn_group *group, clattn_group_run_info *info)
{
    if (!group || !info)
        return CLATTN_NULL_POINTER;
    *info = group->info;
    return CLATTN_SUCCESS;
}

void clattn__group_cut(const clattn_group *g, const double *cost, size_t n, size_t *start,
                       size_t *count)
{
    double total = 0.0;
    if (cost)
        for (size_t j = 0; j < n; j++)
            total += cost[j];
    else
        total = (double)n;
    double wsum = 0.0, acc = 0.0;
    size_t j = 0;
    size_t last = 0; /* the last device of positive weight takes the remainder */
    for (size_t r = 0; r < g->n; r++)
        if (g->w[r] > 0.0)
            last = r;
    for (size_t r = 0; r < g->n; r++) {
        start[r] = j;
        wsum += g->w[r];
        size_t end = j;
        if (r == last) {
            end = n;
        } else if (g->w[r] > 0.0) {
            double target = wsum * total;
            if (cost) {
                /* Advance while taking the next item brings the sum closer to the target. */
                while (end < n && acc + 0.5 * cost[end] <= target) {
                    acc += cost[end];
                    end++;
                }
            } else {
                double e = floor(target + 0.5);
                end = e > (double)n ? n : (size_t)e;
                if (end < j)
                    end = j;
            }
        }
        count[r] = end - j;
        j = end;
    }
}

clattn_group_split clattn__group_pick(const clattn_group *g, clattn_group_split split,
                                      size_t pairs, size_t nk)
{
    if (split == CLATTN_GROUP_SPLIT_AUTO)
        split = g->split;
    if (split != CLATTN_GROUP_SPLIT_AUTO)
        return split;
    size_t active = 0;
    for (size_t r = 0; r < g->n; r++)
        active += g->w[r] > 0.0;
    /* One working device: its plain call (HEADS gives it every pair: no slices, no states). */
    return (active == 1 || pairs >= 4 * active || nk < 16 * active) ? CLATTN_GROUP_SPLIT_HEADS
                                                 : CLATTN_GROUP_SPLIT_KEYS;
}
