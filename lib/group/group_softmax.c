/* Exact softmax attention over a device group (include/clattn/group.h): key slices merged by lse,
 * or (batch, key head) pairs dealt out. Every device's work is enqueued and flushed before any is
 * waited for, so the devices run at the same time; the caller's out and lse are written last. */
#include "group_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct part {
    size_t r;    /* device */
    size_t a, n; /* keys [a, a + n) (KEYS) or pairs [a, a + n) (HEADS) */
    cl_mem q, k, v, o, l, kl, sinks, slopes;
    clattn_softmax_desc d;
    size_t qs[4], ks[4], vs[4];
} part;

typedef struct job {
    clattn_group *g;
    const clattn_softmax_desc *desc;
    size_t B, Hq, Hk, Nq, Nk, D, Dv, G;
    const float *q, *k, *v;
    const int32_t *kl;
    float *sinks, *slopes; /* host copies of the desc's [Hq] buffers, or NULL */
    part p[CLATTN__GROUP_MAX];
    size_t np;
} job;

/* clattn__group_buffer on the job's group */
static cl_mem mkbuf(job *j, size_t r, size_t bytes, const void *init, clattn_status *st)
{
    return clattn__group_buffer(j->g, r, bytes, init, st);
}

static void part_release(part *p)
{
    cl_mem *const m[8] = {&p->q, &p->k, &p->v, &p->o, &p->l, &p->kl, &p->sinks, &p->slopes};
    clattn__group_release(m, 8);
}

/* Reads `count` floats of a [Hq] option buffer of the first context into a malloc'd array. */
static clattn_status read_option(job *j, cl_mem m, size_t off, const char *what, float **out)
{
    clattn_group *g = j->g;
    cl_context c0 = clattn_context_get_cl_context(g->ctx[0]);
    cl_context mc = NULL;
    size_t size = 0;
    if (clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof mc, &mc, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT, "group softmax: desc.%s is not a "
                                                              "valid buffer", what);
    if (mc != c0)
        return clattn__group_fail(g, CLATTN_UNSUPPORTED,
                                  "group softmax: desc.%s must be a buffer of the group's first "
                                  "context (device 0)", what);
    if (off > size / sizeof(float) || size / sizeof(float) - off < j->Hq)
        return clattn__group_fail(g, CLATTN_BUFFER_TOO_SMALL,
                                  "group softmax: desc.%s holds %zu bytes, needs %zu floats from "
                                  "element %zu", what, size, j->Hq, off);
    float *h = malloc(j->Hq * sizeof *h);
    if (!h)
        return clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of memory");
    cl_int err = clEnqueueReadBuffer(clattn_context_get_cl_queue(g->ctx[0]), m, CL_TRUE,
                                     off * sizeof(float), j->Hq * sizeof(float), h, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        free(h);
        return clattn__group_fail(g, (clattn_status)err, "group softmax: reading desc.%s on "
                                                         "device 0 failed (%d)", what, (int)err);
    }
    *out = h;
    return CLATTN_SUCCESS;
}

/* The aligned position of query row 0 minus that of key 0 (row i sees key j under causal iff
 * j <= i + off). */
static int64_t row_offset(const job *j)
{
    return (int64_t)j->Nk - (int64_t)j->Nq + j->desc->position_offset;
}

/* The visible (query, key) pairs of key j over all batches (one head): the rows whose causal
 * mask and window let them see it, times the batches whose key length covers it. */
static double key_cost(const job *j, size_t key)
{
    const clattn_softmax_desc *d = j->desc;
    int64_t off = row_offset(j), jj = (int64_t)key;
    int64_t lo = 0, hi = (int64_t)j->Nq - 1;
    if (d->causal && jj - off > lo)
        lo = jj - off;
    if (d->window_right >= 0 && jj - d->window_right - off > lo)
        lo = jj - d->window_right - off;
    if (d->window_left >= 0 && jj + d->window_left - off < hi)
        hi = jj + d->window_left - off;
    if (hi < lo)
        return 0.0;
    size_t batches = j->B;
    if (j->kl) {
        batches = 0;
        for (size_t b = 0; b < j->B; b++)
            batches += (size_t)j->kl[b] > key;
    }
    return (double)(hi - lo + 1) * (double)batches;
}

/* Host-packed input slices of part p (KEYS: keys [a, a + n) of every (b, h); HEADS: pairs). */
static clattn_status make_inputs(job *j, part *p, clattn_group_split split)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t r = p->r;
    float *tk = NULL, *tv = NULL;
    int32_t *kl = NULL;
    if (split == CLATTN_GROUP_SPLIT_KEYS) {
        size_t rows = j->B * j->Hk;
        tk = malloc(rows * p->n * j->D * sizeof *tk);
        tv = malloc(rows * p->n * j->Dv * sizeof *tv);
        kl = malloc(j->B * sizeof *kl);
        if (!tk || !tv || !kl) {
            status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of "
                                                                         "host memory");
            goto cleanup;
        }
        for (size_t i = 0; i < rows; i++) {
            memcpy(tk + i * p->n * j->D, j->k + (i * j->Nk + p->a) * j->D,
                   p->n * j->D * sizeof *tk);
            memcpy(tv + i * p->n * j->Dv, j->v + (i * j->Nk + p->a) * j->Dv,
                   p->n * j->Dv * sizeof *tv);
        }
        for (size_t b = 0; b < j->B; b++) {
            int64_t L = j->kl ? (int64_t)j->kl[b] - (int64_t)p->a : (int64_t)p->n;
            kl[b] = (int32_t)(L < 0 ? 0 : L > (int64_t)p->n ? (int64_t)p->n : L);
        }
        size_t qs[4] = {j->B, j->Hq, j->Nq, j->D}, ks[4] = {j->B, j->Hk, p->n, j->D};
        size_t vs[4] = {j->B, j->Hk, p->n, j->Dv};
        memcpy(p->qs, qs, sizeof qs);
        memcpy(p->ks, ks, sizeof ks);
        memcpy(p->vs, vs, sizeof vs);
        /* Every slice reads all queries: parts on one cl_context share one copy. */
        for (part *t = j->p; t < p && !p->q; t++)
            if (t->q && clattn__group_same_cl(j->g->ctx[t->r], j->g->ctx[r])) {
                p->q = t->q;
                clRetainMemObject(p->q);
            }
        if ((!p->q && !(p->q = mkbuf(j, r, j->B * j->Hq * j->Nq * j->D * 4, j->q, &status))) ||
            !(p->k = mkbuf(j, r, rows * p->n * j->D * 4, tk, &status)) ||
            !(p->v = mkbuf(j, r, rows * p->n * j->Dv * 4, tv, &status)) ||
            !(p->kl = mkbuf(j, r, j->B * 4, kl, &status)))
            goto cleanup;
        /* Keys [a, a + n): the shift that keeps every query's position (group.h). */
        p->d.position_offset = j->desc->position_offset + (int64_t)(j->Nk - (p->a + p->n));
    } else {
        /* Pairs u = b * Hk + h are contiguous in q (G query heads each), k, v and out: the part
         * is a problem of n "batches" of G query heads and one key head. */
        size_t qs[4] = {p->n, j->G, j->Nq, j->D}, ks[4] = {p->n, 1, j->Nk, j->D};
        size_t vs[4] = {p->n, 1, j->Nk, j->Dv};
        memcpy(p->qs, qs, sizeof qs);
        memcpy(p->ks, ks, sizeof ks);
        memcpy(p->vs, vs, sizeof vs);
        if (j->kl) {
            kl = malloc(p->n * sizeof *kl);
            if (!kl) {
                status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out "
                                                                             "of host memory");
                goto cleanup;
            }
            for (size_t u = 0; u < p->n; u++)
                kl[u] = j->kl[(p->a + u) / j->Hk];
            if (!(p->kl = mkbuf(j, r, p->n * 4, kl, &status)))
                goto cleanup;
        }
        if (!(p->q = mkbuf(j, r, p->n * j->G * j->Nq * j->D * 4, j->q + p->a * j->G * j->Nq * j->D,
                           &status)) ||
            !(p->k = mkbuf(j, r, p->n * j->Nk * j->D * 4, j->k + p->a * j->Nk * j->D, &status)) ||
            !(p->v = mkbuf(j, r, p->n * j->Nk * j->Dv * 4, j->v + p->a * j->Nk * j->Dv, &status)))
            goto cleanup;
    }
    p->d.key_lengths = p->kl;
    p->d.key_lengths_offset = 0;
    if (j->slopes) {
        if (!(p->slopes = mkbuf(j, r, j->Hq * 4, j->slopes, &status)))
            goto cleanup;
        p->d.alibi_slopes = p->slopes;
        p->d.alibi_slopes_offset = 0;
    }
    if (j->sinks && (split == CLATTN_GROUP_SPLIT_HEADS || p == &j->p[0])) {
        /* KEYS: the sink joins exactly one slice's denominator (the first part's). */
        if (!(p->sinks = mkbuf(j, r, j->Hq * 4, j->sinks, &status)))
            goto cleanup;
        p->d.sinks = p->sinks;
        p->d.sinks_offset = 0;
    }
    size_t ob = p->qs[0] * p->qs[1] * p->qs[2];
    if (!(p->o = mkbuf(j, r, ob * j->Dv * 4, NULL, &status)) ||
        !(p->l = mkbuf(j, r, ob * 4, NULL, &status)))
        goto cleanup;
cleanup:
    free(tk);
    free(tv);
    free(kl);
    return status;
}

static clattn_tensor t_of(cl_mem m, const size_t s[4], size_t last)
{
    return clattn_tensor_make(m, s[0], s[1], s[2], last);
}

/* Enqueues part p on its device and flushes its queue (no wait). */
static clattn_status launch(job *j, part *p)
{
    clattn_context *ctx = j->g->ctx[p->r];
    clattn_tensor tq = t_of(p->q, p->qs, j->D), tk = t_of(p->k, p->ks, j->D);
    clattn_tensor tv = t_of(p->v, p->vs, j->Dv), to = t_of(p->o, p->qs, j->Dv);
    clattn_tensor tl = t_of(p->l, p->qs, 1);
    clattn_status st = clattn_softmax_enqueue(ctx, &p->d, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        return clattn__group_device_fail(j->g, p->r, st, "softmax");
    cl_int err = clFlush(clattn_context_get_cl_queue(ctx));
    if (err != CL_SUCCESS) {
        (void)clattn__fail(ctx, (clattn_status)err, "clFlush failed (%d)", (int)err);
        return clattn__group_device_fail(j->g, p->r, (clattn_status)err, "flush");
    }
    return clattn__group_injected(j->g, p->r) != CLATTN_SUCCESS
               ? clattn__group_device_fail(j->g, p->r, j->g->inject_status, "softmax")
               : CLATTN_SUCCESS;
}

static clattn_status read_back(job *j, size_t r, cl_mem m, size_t bytes, void *dst)
{
    cl_int err = clEnqueueReadBuffer(clattn_context_get_cl_queue(j->g->ctx[r]), m, CL_TRUE, 0,
                                     bytes, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        (void)clattn__fail(j->g->ctx[r], (clattn_status)err, "clEnqueueReadBuffer of %zu bytes "
                                                             "failed (%d)", bytes, (int)err);
        return clattn__group_device_fail(j->g, r, (clattn_status)err, "read back");
    }
    return CLATTN_SUCCESS;
}

/* KEYS: merges every part into the first on device 0 (device buffers where the part's
 * cl_context is device 0's, host staging otherwise: each such part's partials are read back and
 * uploaded to device 0), the merges enqueued in order and waited for once, then the result is
 * read into out / lse. */
static clattn_status merge_keys(job *j, float *out, float *lse)
{
    clattn_group *g = j->g;
    clattn_status status = CLATTN_SUCCESS;
    size_t rows = j->B * j->Hq * j->Nq, ob = rows * j->Dv * 4, lb = rows * 4;
    cl_mem so[CLATTN__GROUP_MAX], sl[CLATTN__GROUP_MAX];
    size_t ns = 0;
    cl_mem acc_o = NULL, acc_l = NULL;
    float *ho = NULL, *hl = NULL;
    clattn_context *c0 = g->ctx[0];
    size_t s4[4] = {j->B, j->Hq, j->Nq, 1};
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        part *p = &j->p[i];
        cl_mem po = p->o, pl = p->l;
        if (!clattn__group_same_cl(g->ctx[p->r], c0)) {
            if (!ho && (!(ho = malloc(ob)) || !(hl = malloc(lb)))) {
                status = clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of "
                                                                          "host memory");
                break;
            }
            if ((status = read_back(j, p->r, p->o, ob, ho)) != CLATTN_SUCCESS ||
                (status = read_back(j, p->r, p->l, lb, hl)) != CLATTN_SUCCESS)
                break;
            /* Created from the host arrays (a copy at creation): they may be reused next. */
            if (!(so[ns] = mkbuf(j, 0, ob, ho, &status)))
                break;
            if (!(sl[ns] = mkbuf(j, 0, lb, hl, &status))) {
                clReleaseMemObject(so[ns]);
                break;
            }
            po = so[ns];
            pl = sl[ns];
            ns++;
        }
        if (!acc_o) {
            acc_o = po;
            acc_l = pl;
            continue;
        }
        clattn_tensor to = t_of(acc_o, s4, j->Dv), tl = t_of(acc_l, s4, 1);
        clattn_tensor tpo = t_of(po, s4, j->Dv), tpl = t_of(pl, s4, 1);
        status = clattn_softmax_merge_enqueue(c0, &to, &tl, &tpo, &tpl, 0, NULL, NULL);
        if (status != CLATTN_SUCCESS)
            status = clattn__group_device_fail(g, 0, status, "merge");
    }
    if (status == CLATTN_SUCCESS && (status = clattn_context_finish(c0)) != CLATTN_SUCCESS)
        status = clattn__group_device_fail(g, 0, status, "merge");
    if (status == CLATTN_SUCCESS) {
        /* The accumulator lives in device 0's cl_context, maybe made on another context's queue:
         * device 0's queue reads it (every queue was finished). */
        status = read_back(j, 0, acc_o, ob, out);
        if (status == CLATTN_SUCCESS && lse)
            status = read_back(j, 0, acc_l, lb, lse);
    }
    (void)clattn_context_finish(c0); /* nothing may still use the staging buffers */
    for (size_t i = 0; i < ns; i++) {
        clReleaseMemObject(so[i]);
        clReleaseMemObject(sl[i]);
    }
    free(ho);
    free(hl);
    return status;
}

static clattn_status check_call(job *j, const size_t *qs, const size_t *ks, const size_t *vs)
{
    clattn_group *g = j->g;
    const clattn_softmax_desc *d = j->desc;
    for (int i = 0; i < 4; i++)
        if (!qs[i] || !ks[i] || !vs[i])
            return clattn__group_fail(g, CLATTN_INVALID_SHAPE, "group softmax: a zero size");
    if (ks[0] != qs[0] || vs[0] != qs[0] || vs[1] != ks[1] || vs[2] != ks[2] ||
        ks[3] != qs[3] || qs[1] % ks[1] != 0)
        return clattn__group_fail(g, CLATTN_SHAPE_MISMATCH,
                                  "group softmax: q {%zu, %zu, %zu, %zu}, k {%zu, %zu, %zu, %zu}, "
                                  "v {%zu, %zu, %zu, %zu} do not match",
                                  qs[0], qs[1], qs[2], qs[3], ks[0], ks[1], ks[2], ks[3], vs[0],
                                  vs[1], vs[2], vs[3]);
    size_t os[4] = {qs[0], qs[1], qs[2], vs[3]};
    const size_t *all[4] = {qs, ks, vs, os};
    if (!clattn__group_sizes_ok(all, 4))
        return clattn__group_fail(g, CLATTN_SIZE_OVERFLOW, "group softmax: sizes overflow");
    if (d->struct_size != sizeof *d)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT, "group softmax: desc.struct_size "
                                                              "(use clattn_softmax_desc_init)");
    struct {
        bool set;
        const char *name;
    } refused[] = {{d->bias.buffer != NULL, "bias"},
                   {d->mask.buffer != NULL, "mask"},
                   {d->block_mask.buffer != NULL, "block_mask"},
                   {d->q_lengths != NULL, "q_lengths"},
                   {d->q_offsets != NULL, "q_offsets"},
                   {d->block_table.buffer != NULL, "block_table"},
                   {d->key_lengths != NULL, "key_lengths (pass the host array instead)"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (refused[i].set)
            return clattn__group_fail(g, CLATTN_UNSUPPORTED,
                                      "group softmax: desc.%s is a tensor of one context; device "
                                      "groups take none",
                                      refused[i].name);
    if (d->alibi_slopes && !d->alibi)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT,
                                  "group softmax: desc.alibi_slopes without desc.alibi");
    /* The rest of the desc and the shapes, as the first device's plan would check them. */
    clattn_device_info info;
    clattn_plan_info pi;
    clattn_softmax_desc dv = *d;
    dv.alibi_slopes = NULL;
    dv.sinks = NULL;
    dv.q_dtype = dv.k_dtype = dv.v_dtype = dv.out_dtype = CLATTN_F32;
    clattn_status st = clattn_context_get_device_info(g->ctx[0], &info);
    if (st == CLATTN_SUCCESS)
        st = clattn_softmax_schedule(&info, &dv, qs, ks, &pi);
    if (st != CLATTN_SUCCESS && st != CLATTN_UNSUPPORTED)
        return clattn__group_fail(g, st, "group softmax: %s", clattn_context_last_error(NULL));
    if (vs[3] > 512)
        return clattn__group_fail(g, CLATTN_INVALID_SHAPE, "group softmax: Dv %zu > 512", vs[3]);
    if (j->kl)
        for (size_t b = 0; b < qs[0]; b++)
            if (j->kl[b] < 0 || (size_t)j->kl[b] > ks[2])
                return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT,
                                          "group softmax: key_lengths[%zu] = %d outside [0, %zu]",
                                          b, (int)j->kl[b], ks[2]);
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_softmax_host(clattn_group *group, const clattn_softmax_desc *desc,
                                        clattn_group_split split, const size_t q_shape[4],
                                        const size_t k_shape[4], const size_t v_shape[4],
                                        const float *q, const float *k, const float *v,
                                        const int32_t *key_lengths, float *out, float *lse)
{
    if (!group)
        return CLATTN_NULL_POINTER;
    clattn_group *g = group;
    g->msg[0] = '\0';
    if (!q_shape || !k_shape || !v_shape || !q || !k || !v || !out)
        return clattn__group_fail(g, CLATTN_NULL_POINTER, "group softmax: shapes, q, k, v and "
                                                          "out are required");
    if ((unsigned)split > CLATTN_GROUP_SPLIT_HEADS)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT, "group softmax: split %d",
                                  (int)split);
    clattn_softmax_desc dflt;
    clattn_softmax_desc_init(&dflt);
    job *j = calloc(1, sizeof *j);
    float *ro = NULL, *rl = NULL;
    if (!j)
        return clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of memory");
    clattn_status status = CLATTN_SUCCESS;
    j->g = g;
    j->desc = desc ? desc : &dflt;
    j->B = q_shape[0], j->Hq = q_shape[1], j->Nq = q_shape[2], j->D = q_shape[3];
    j->Hk = k_shape[1], j->Nk = k_shape[2], j->Dv = v_shape[3];
    j->q = q, j->k = k, j->v = v, j->kl = key_lengths;
    if ((status = check_call(j, q_shape, k_shape, v_shape)) != CLATTN_SUCCESS)
        goto cleanup;
    j->G = j->Hq / j->Hk;
    size_t rows = j->B * j->Hq * j->Nq;
    if (!(ro = malloc(rows * j->Dv * sizeof *ro)) || !(rl = malloc(rows * sizeof *rl))) {
        status = clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of memory");
        goto cleanup;
    }
    if (j->desc->sinks &&
        (status = read_option(j, j->desc->sinks, j->desc->sinks_offset, "sinks", &j->sinks)))
        goto cleanup;
    if (j->desc->alibi_slopes && (status = read_option(j, j->desc->alibi_slopes,
                                                       j->desc->alibi_slopes_offset,
                                                       "alibi_slopes", &j->slopes)))
        goto cleanup;
    /* Per-head options vary inside a pair's query heads only when Hk == 1 (then a pair is a
     * batch and its heads are all Hq). */
    bool heads_ok = j->Hk == 1 || (!j->desc->alibi && !j->sinks);
    clattn_group_split s = clattn__group_pick(g, split, j->B * j->Hk, j->Nk);
    if (s == CLATTN_GROUP_SPLIT_HEADS && !heads_ok) {
        if (split == CLATTN_GROUP_SPLIT_HEADS || g->split == CLATTN_GROUP_SPLIT_HEADS) {
            status = clattn__group_fail(g, CLATTN_UNSUPPORTED,
                                        "group softmax: the HEADS split with ALiBi or sinks needs "
                                        "one key head (Hk = %zu); use KEYS",
                                        j->Hk);
            goto cleanup;
        }
        s = CLATTN_GROUP_SPLIT_KEYS;
    }
    size_t start[CLATTN__GROUP_MAX], count[CLATTN__GROUP_MAX];
    if (s == CLATTN_GROUP_SPLIT_KEYS) {
        double *cost = malloc(j->Nk * sizeof *cost);
        if (!cost) {
            status = clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of "
                                                                      "memory");
            goto cleanup;
        }
        for (size_t key = 0; key < j->Nk; key++)
            cost[key] = key_cost(j, key);
        clattn__group_cut(g, cost, j->Nk, start, count);
        for (size_t r = 0; r < g->n; r++) {
            /* Keys no query sees are trimmed from both ends of a slice, and a slice of only
             * such keys is skipped. */
            size_t a = start[r], e = start[r] + count[r];
            while (a < e && cost[a] == 0.0)
                a++;
            while (e > a && cost[e - 1] == 0.0)
                e--;
            if (e > a) {
                part *p = &j->p[j->np++];
                p->r = r, p->a = a, p->n = e - a;
            }
        }
        free(cost);
        if (j->np == 0) {
            /* No query sees any key: one part still runs (all keys, on the first device of
             * positive weight) so that rows get their zeros and -inf (or the sink) from the
             * kernels. */
            size_t r = 0;
            while (g->w[r] <= 0.0)
                r++;
            j->p[0].r = r, j->p[0].a = 0, j->p[0].n = j->Nk;
            j->np = 1;
        }
    } else {
        clattn__group_cut(g, NULL, j->B * j->Hk, start, count);
        for (size_t r = 0; r < g->n; r++)
            if (count[r]) {
                part *p = &j->p[j->np++];
                p->r = r, p->a = start[r], p->n = count[r];
            }
    }
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        j->p[i].d = *j->desc;
        j->p[i].d.q_dtype = j->p[i].d.k_dtype = j->p[i].d.v_dtype = j->p[i].d.out_dtype =
            CLATTN_F32;
        j->p[i].d.sinks = NULL;
        j->p[i].d.alibi_slopes = NULL;
        /* Each part is launched as soon as its inputs are on its device (the next device's
         * uploads overlap this one's work); all are waited for below. */
        status = make_inputs(j, &j->p[i], s);
        if (status == CLATTN_SUCCESS)
            status = launch(j, &j->p[i]);
    }
    for (size_t r = 0; r < g->n; r++) {
        clattn_status st = clattn_context_finish(g->ctx[r]);
        if (st != CLATTN_SUCCESS && status == CLATTN_SUCCESS)
            status = clattn__group_device_fail(g, r, st, "finish");
    }
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    if (s == CLATTN_GROUP_SPLIT_KEYS) {
        status = merge_keys(j, ro, lse ? rl : NULL);
    } else {
        for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
            part *p = &j->p[i];
            size_t pr = p->n * j->G * j->Nq;
            status = read_back(j, p->r, p->o, pr * j->Dv * 4, ro + p->a * j->G * j->Nq * j->Dv);
            if (status == CLATTN_SUCCESS && lse)
                status = read_back(j, p->r, p->l, pr * 4, rl + p->a * j->G * j->Nq);
        }
    }
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    memcpy(out, ro, rows * j->Dv * sizeof *out);
    if (lse)
        memcpy(lse, rl, rows * sizeof *lse);
    memset(&g->info, 0, sizeof g->info);
    g->info.split = s;
    g->info.parts = j->np;
    for (size_t i = 0; i < j->np; i++) {
        g->info.share[j->p[i].r] = j->p[i].n;
        g->info.share_start[j->p[i].r] = j->p[i].a;
    }
cleanup:
    for (size_t i = 0; i < j->np; i++)
        part_release(&j->p[i]);
    free(j->sinks);
    free(j->slopes);
    free(j);
    free(ro);
    free(rl);
    return status;
}

/* One tensor of clattn_group_softmax_tensors: float32, dense [b, h, n, d] from its offset, a
 * buffer of the first device's cl_context that holds the view. */
static clattn_status check_tensor(clattn_group *g, const clattn_tensor *t, const char *name,
                                  size_t *elems)
{
    const size_t *s = t->shape, *st = t->strides;
    if (t->dtype != CLATTN_F32)
        return clattn__group_fail(g, CLATTN_DTYPE_MISMATCH, "group softmax: %s is not float32",
                                  name);
    if (!t->buffer)
        return clattn__group_fail(g, CLATTN_NULL_POINTER, "group softmax: %s.buffer is NULL",
                                  name);
    if (st[3] != 1 || st[2] != s[3] || st[1] != s[2] * s[3] || st[0] != s[1] * s[2] * s[3])
        return clattn__group_fail(g, CLATTN_UNSUPPORTED,
                                  "group softmax: %s must be dense [b, h, n, d] "
                                  "(clattn_tensor_make's strides)", name);
    cl_context mc = NULL;
    size_t size = 0;
    if (clGetMemObjectInfo(t->buffer, CL_MEM_CONTEXT, sizeof mc, &mc, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(t->buffer, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT, "group softmax: %s.buffer is not a "
                                                              "valid buffer", name);
    if (mc != clattn_context_get_cl_context(g->ctx[0]))
        return clattn__group_fail(g, CLATTN_INVALID_CONTEXT,
                                  "group softmax: %s is not a buffer of the group's first "
                                  "context", name);
    size_t n = s[0] * s[1] * s[2] * s[3];
    if (t->offset > size / 4 || size / 4 - t->offset < n)
        return clattn__group_fail(g, CLATTN_BUFFER_TOO_SMALL,
                                  "group softmax: %s's view (%zu floats from element %zu) is "
                                  "beyond its buffer of %zu bytes", name, n, t->offset, size);
    *elems = n;
    return CLATTN_SUCCESS;
}

static bool overlap(const clattn_tensor *a, size_t na, const clattn_tensor *b, size_t nb)
{
    return a->buffer == b->buffer && a->offset < b->offset + nb && b->offset < a->offset + na;
}

clattn_status clattn_group_softmax_tensors(clattn_group *group, const clattn_softmax_desc *desc,
                                           clattn_group_split split, const clattn_tensor *q,
                                           const clattn_tensor *k, const clattn_tensor *v,
                                           const int32_t *key_lengths, const clattn_tensor *out,
                                           const clattn_tensor *lse)
{
    if (!group)
        return CLATTN_NULL_POINTER;
    clattn_group *g = group;
    g->msg[0] = '\0';
    if (!q || !k || !v || !out)
        return clattn__group_fail(g, CLATTN_NULL_POINTER, "group softmax: q, k, v and out are "
                                                          "required");
    const clattn_tensor *ts[5] = {q, k, v, out, lse};
    const char *names[5] = {"q", "k", "v", "out", "lse"};
    size_t n[5] = {0, 0, 0, 0, 0};
    clattn_status status = CLATTN_SUCCESS;
    for (int i = 0; i < 5; i++)
        if (ts[i] && (status = check_tensor(g, ts[i], names[i], &n[i])) != CLATTN_SUCCESS)
            return status;
    const size_t *qs = q->shape, *vs = v->shape;
    size_t os[4] = {qs[0], qs[1], qs[2], vs[3]}, ls[4] = {qs[0], qs[1], qs[2], 1};
    if (memcmp(out->shape, os, sizeof os) != 0 || (lse && memcmp(lse->shape, ls, sizeof ls) != 0))
        return clattn__group_fail(g, CLATTN_SHAPE_MISMATCH,
                                  "group softmax: out must be {%zu, %zu, %zu, %zu} and lse "
                                  "{%zu, %zu, %zu, 1}", os[0], os[1], os[2], os[3], ls[0], ls[1],
                                  ls[2]);
    for (int o = 3; o < 5; o++)
        for (int i = 0; i < 5 && ts[o]; i++)
            if (i != o && ts[i] && overlap(ts[o], n[o], ts[i], n[i]))
                return clattn__group_fail(g, CLATTN_ALIASING, "group softmax: %s overlaps %s",
                                          names[o], names[i]);
    float *h[5] = {NULL, NULL, NULL, NULL, NULL};
    cl_command_queue q0 = clattn_context_get_cl_queue(g->ctx[0]);
    for (int i = 0; i < 5; i++)
        if (ts[i] && !(h[i] = malloc((n[i] ? n[i] : 1) * sizeof(float)))) {
            status = clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group softmax: out of host "
                                                                      "memory");
            goto cleanup;
        }
    /* Inputs to host memory (after everything enqueued before on the first context's queue). */
    for (int i = 0; i < 3; i++) {
        cl_int err = clEnqueueReadBuffer(q0, ts[i]->buffer, CL_TRUE, ts[i]->offset * 4, n[i] * 4,
                                         h[i], 0, NULL, NULL);
        if (err != CL_SUCCESS) {
            status = clattn__group_fail(g, (clattn_status)err, "group softmax: reading %s on "
                                                               "device 0 failed (%d)", names[i],
                                        (int)err);
            goto cleanup;
        }
    }
    status = clattn_group_softmax_host(g, desc, split, q->shape, k->shape, v->shape, h[0], h[1],
                                       h[2], key_lengths, h[3], lse ? h[4] : NULL);
    for (int i = 3; i < 5 && status == CLATTN_SUCCESS; i++) {
        if (!ts[i])
            continue;
        cl_int err = clEnqueueWriteBuffer(q0, ts[i]->buffer, CL_TRUE, ts[i]->offset * 4, n[i] * 4,
                                          h[i], 0, NULL, NULL);
        if (err != CL_SUCCESS)
            status = clattn__group_fail(g, (clattn_status)err, "group softmax: writing %s on "
                                                               "device 0 failed (%d)", names[i],
                                        (int)err);
    }
cleanup:
    for (int i = 0; i < 5; i++)
        free(h[i]);
    return status;
}
