/* Linear attention over a device group (include/clattn/group.h). KEYS: the sequence is cut into
 * one slice per device; each device's decoding state (clattn_linear_state) carries the slices'
 * (S, z) sums: causal, device r runs its slice from the exclusive prefix sum of the earlier
 * slices' states (phase 1 computes each slice's own state, the host scans, phase 2 writes the
 * prefix and runs the slice with its output); non-causal, the slices' states are summed and each
 * device runs the query pass of its query slice against the total (a prefill from the total over
 * keys whose features are exactly 0 and zero values, which leaves S and z as they are). HEADS:
 * (batch, key head) pairs dealt out, each device a plain clattn_linear_enqueue. */
#include "group_internal.h"
#include "../ops/linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct lpart {
    size_t r, a, n;    /* device; positions / query rows / pairs [a, a + n) */
    size_t qa, qn;     /* non-causal KEYS: the query rows of phase 2 */
    cl_mem q, k, v, o, nk, nv, q2, o2;
    clattn_linear_state *st;
} lpart;

typedef struct ljob {
    clattn_group *g;
    clattn_linear_desc d;
    size_t B, Hq, Hk, Nq, Nk, D, Dv, G, M;
    const float *q, *k, *v;
    lpart p[CLATTN__GROUP_MAX];
    size_t np;
} ljob;

/* clattn__group_buffer on the job's group */
static cl_mem lbuf(ljob *j, size_t r, size_t bytes, const void *init, clattn_status *st)
{
    return clattn__group_buffer(j->g, r, bytes, init, st);
}

static void lpart_release(lpart *p)
{
    cl_mem *const m[8] = {&p->q, &p->k, &p->v, &p->o, &p->nk, &p->nv, &p->q2, &p->o2};
    clattn__group_release(m, 8);
    clattn_linear_state_destroy(p->st);
    p->st = NULL;
}

/* Rows [a, a + n) of every (b, h) of a [B, H, N, W] array, packed: malloc'd (NULL: no memory). */
static float *slice(const float *x, size_t BH, size_t N, size_t W, size_t a, size_t n)
{
    size_t el = BH * n * W;
    float *t = malloc((el ? el : 1) * sizeof *t);
    if (t)
        for (size_t i = 0; i < BH; i++)
            memcpy(t + i * n * W, x + (i * N + a) * W, n * W * sizeof *t);
    return t;
}

static clattn_status dev_status(ljob *j, size_t r, clattn_status st, const char *what)
{
    return st == CLATTN_SUCCESS ? st : clattn__group_device_fail(j->g, r, st, what);
}

static clattn_status flush_dev(ljob *j, size_t r)
{
    cl_int err = clFlush(clattn_context_get_cl_queue(j->g->ctx[r]));
    if (err != CL_SUCCESS) {
        (void)clattn__fail(j->g->ctx[r], (clattn_status)err, "clFlush failed (%d)", (int)err);
        return clattn__group_device_fail(j->g, r, (clattn_status)err, "flush");
    }
    clattn_status inj = clattn__group_injected(j->g, r);
    return dev_status(j, r, inj, "linear");
}

static clattn_status finish_all(ljob *j, clattn_status status)
{
    for (size_t r = 0; r < j->g->n; r++) {
        clattn_status st = clattn_context_finish(j->g->ctx[r]);
        if (st != CLATTN_SUCCESS && status == CLATTN_SUCCESS)
            status = dev_status(j, r, st, "finish");
    }
    return status;
}

static clattn_status lread(ljob *j, size_t r, cl_mem m, size_t bytes, void *dst)
{
    cl_int err = clEnqueueReadBuffer(clattn_context_get_cl_queue(j->g->ctx[r]), m, CL_TRUE, 0,
                                     bytes, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        (void)clattn__fail(j->g->ctx[r], (clattn_status)err, "clEnqueueReadBuffer failed (%d)",
                           (int)err);
        return clattn__group_device_fail(j->g, r, (clattn_status)err, "read back");
    }
    return CLATTN_SUCCESS;
}

/* The parts of a cut: devices whose share is not empty. */
static void parts_of(ljob *j, size_t n)
{
    size_t start[CLATTN__GROUP_MAX], count[CLATTN__GROUP_MAX];
    clattn__group_cut(j->g, NULL, n, start, count);
    j->np = 0;
    for (size_t r = 0; r < j->g->n; r++)
        if (count[r]) {
            lpart *p = &j->p[j->np++];
            memset(p, 0, sizeof *p);
            p->r = r, p->a = start[r], p->n = count[r];
        }
}

static clattn_status run_heads(ljob *j, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    parts_of(j, j->B * j->Hk);
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        size_t r = p->r;
        if (!(p->q = lbuf(j, r, p->n * j->G * j->Nq * j->D * 4, j->q + p->a * j->G * j->Nq * j->D,
                          &status)) ||
            !(p->k = lbuf(j, r, p->n * j->Nk * j->D * 4, j->k + p->a * j->Nk * j->D, &status)) ||
            !(p->v = lbuf(j, r, p->n * j->Nk * j->Dv * 4, j->v + p->a * j->Nk * j->Dv, &status)) ||
            !(p->o = lbuf(j, r, p->n * j->G * j->Nq * j->Dv * 4, NULL, &status)))
            break;
        clattn_tensor tq = clattn_tensor_make(p->q, p->n, j->G, j->Nq, j->D);
        clattn_tensor tk = clattn_tensor_make(p->k, p->n, 1, j->Nk, j->D);
        clattn_tensor tv = clattn_tensor_make(p->v, p->n, 1, j->Nk, j->Dv);
        clattn_tensor to = clattn_tensor_make(p->o, p->n, j->G, j->Nq, j->Dv);
        status = dev_status(j, r,
                            clattn_linear_enqueue(j->g->ctx[r], &j->d, &tq, &tk, &tv, &to, 0, NULL,
                                                  NULL),
                            "linear");
        if (status == CLATTN_SUCCESS)
            status = flush_dev(j, r);
    }
    status = finish_all(j, status);
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        status = lread(j, p->r, p->o, p->n * j->G * j->Nq * j->Dv * 4,
                       out + p->a * j->G * j->Nq * j->Dv);
    }
    return status;
}

/* Phase 1 of KEYS: each part's slice of keys [a, a + n) into its fresh state (out: causal part 0
 * writes its rows, its prefix being zero), states read into sz (parts' [S | z] blocks). */
static clattn_status keys_phase1(ljob *j, float *s_all, float *z_all, size_t ssz, size_t zsz)
{
    clattn_status status = CLATTN_SUCCESS;
    float *tq = NULL, *tk = NULL, *tv = NULL;
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        size_t r = p->r;
        status = dev_status(j, r,
                            clattn_linear_state_create(j->g->ctx[r], &j->d, j->B, j->Hk, j->D,
                                                       j->Dv, &p->st),
                            "linear state");
        if (status != CLATTN_SUCCESS || !p->n)
            continue;
        tk = slice(j->k, j->B * j->Hk, j->Nk, j->D, p->a, p->n);
        tv = slice(j->v, j->B * j->Hk, j->Nk, j->Dv, p->a, p->n);
        tq = j->d.causal ? slice(j->q, j->B * j->Hq, j->Nq, j->D, p->a, p->n) : NULL;
        if (!tk || !tv || (j->d.causal && !tq)) {
            status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out of "
                                                                         "host memory");
            break;
        }
        size_t qh = j->d.causal ? j->Hq : j->Hk;
        if (!(p->k = lbuf(j, r, j->B * j->Hk * p->n * j->D * 4, tk, &status)) ||
            !(p->v = lbuf(j, r, j->B * j->Hk * p->n * j->Dv * 4, tv, &status)) ||
            (tq && !(p->q = lbuf(j, r, j->B * j->Hq * p->n * j->D * 4, tq, &status))) ||
            (j->d.causal && !(p->o = lbuf(j, r, j->B * j->Hq * p->n * j->Dv * 4, NULL, &status))))
            break;
        free(tq), free(tk), free(tv);
        tq = tk = tv = NULL;
        /* Non-causal: the slice's keys stand in for the queries (no output is written). */
        clattn_tensor q = clattn_tensor_make(j->d.causal ? p->q : p->k, j->B, qh, p->n, j->D);
        clattn_tensor k = clattn_tensor_make(p->k, j->B, j->Hk, p->n, j->D);
        clattn_tensor v = clattn_tensor_make(p->v, j->B, j->Hk, p->n, j->Dv);
        clattn_tensor o = clattn_tensor_make(p->o, j->B, j->Hq, p->n, j->Dv);
        bool with_out = j->d.causal && i == 0;
        /* The last causal part's own state is not needed: it runs in phase 2 only. */
        if (j->d.causal && i > 0 && i + 1 == j->np)
            continue;
        status = dev_status(j, r,
                            clattn_linear_prefill(p->st, &q, &k, &v, with_out ? &o : NULL, 0,
                                                  NULL, NULL),
                            "linear prefill");
        if (status == CLATTN_SUCCESS)
            status = flush_dev(j, r);
    }
    free(tq), free(tk), free(tv);
    status = finish_all(j, status);
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        if (!p->n || (j->d.causal && i > 0 && i + 1 == j->np))
            continue;
        status = dev_status(j, p->r,
                            clattn_linear_state_read(p->st, s_all + i * ssz, z_all + i * zsz),
                            "linear state read");
    }
    return status;
}

static clattn_status run_keys(ljob *j, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t ssz = j->B * j->Hk * j->M * j->Dv, zsz = j->B * j->Hk * j->M;
    float *s_all = NULL, *z_all = NULL, *s = NULL, *z = NULL, *zeros = NULL, *nul = NULL;
    float *tq = NULL;
    size_t n = j->Nk;
    parts_of(j, n);
    if (!(s_all = calloc(j->np * ssz, sizeof *s_all)) ||
        !(z_all = calloc(j->np * zsz, sizeof *z_all)) || !(s = calloc(ssz, sizeof *s)) ||
        !(z = calloc(zsz, sizeof *z))) {
        status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out of host "
                                                                     "memory");
        goto cleanup;
    }
    if (!j->d.causal) {
        /* Every device runs part of the query pass, also one whose key slice was empty. */
        size_t qstart[CLATTN__GROUP_MAX], qcount[CLATTN__GROUP_MAX];
        size_t kstart[CLATTN__GROUP_MAX], kcount[CLATTN__GROUP_MAX];
        clattn__group_cut(j->g, NULL, j->Nk, kstart, kcount);
        clattn__group_cut(j->g, NULL, j->Nq, qstart, qcount);
        j->np = 0;
        for (size_t r = 0; r < j->g->n; r++)
            if (kcount[r] || qcount[r]) {
                lpart *p = &j->p[j->np++];
                memset(p, 0, sizeof *p);
                p->r = r, p->a = kstart[r], p->n = kcount[r], p->qa = qstart[r];
                p->qn = qcount[r];
            }
    }
    if ((status = keys_phase1(j, s_all, z_all, ssz, zsz)) != CLATTN_SUCCESS)
        goto cleanup;
    /* Phase 2. Causal: part i (> 0) from the sum of parts 0 .. i - 1; non-causal: every part's
     * query rows against the sum of all. */
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        size_t r = p->r;
        if (j->d.causal) {
            if (i == 0)
                continue; /* done in phase 1 */
            for (size_t e = 0; e < ssz; e++)
                s[e] += s_all[(i - 1) * ssz + e];
            for (size_t e = 0; e < zsz; e++)
                z[e] += z_all[(i - 1) * zsz + e];
        } else if (i == 0) {
            for (size_t t = 0; t < j->np; t++) {
                for (size_t e = 0; e < ssz; e++)
                    s[e] += s_all[t * ssz + e];
                for (size_t e = 0; e < zsz; e++)
                    z[e] += z_all[t * zsz + e];
            }
        }
        size_t rows = j->d.causal ? p->n : p->qn;
        if (!rows)
            continue;
        status = dev_status(j, r, clattn_linear_state_write(p->st, s, z), "linear state write");
        if (status != CLATTN_SUCCESS)
            break;
        if (!j->d.causal) {
            /* Query rows [qa, qa + qn) against keys whose features are exactly 0 (ELU: exp of
             * -1e30; RELU, IDENTITY: 0) and zero values: the prefill adds nothing to S or z. */
            float kz = j->d.feature_map == CLATTN_LINEAR_FEATURE_ELU ? -1e30f : 0.0f;
            size_t nk_el = j->B * j->Hk * rows * j->D, nv_el = j->B * j->Hk * rows * j->Dv;
            free(nul), free(zeros), free(tq);
            nul = malloc(nk_el * sizeof *nul);
            zeros = calloc(nv_el, sizeof *zeros);
            tq = slice(j->q, j->B * j->Hq, j->Nq, j->D, p->qa, rows);
            if (!nul || !zeros || !tq) {
                status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out "
                                                                             "of host memory");
                break;
            }
            for (size_t e = 0; e < nk_el; e++)
                nul[e] = kz;
            if (!(p->nk = lbuf(j, r, nk_el * 4, nul, &status)) ||
                !(p->nv = lbuf(j, r, nv_el * 4, zeros, &status)) ||
                !(p->q2 = lbuf(j, r, j->B * j->Hq * rows * j->D * 4, tq, &status)) ||
                !(p->o2 = lbuf(j, r, j->B * j->Hq * rows * j->Dv * 4, NULL, &status)))
                break;
        }
        clattn_tensor q = clattn_tensor_make(j->d.causal ? p->q : p->q2, j->B, j->Hq, rows, j->D);
        clattn_tensor k = clattn_tensor_make(j->d.causal ? p->k : p->nk, j->B, j->Hk, rows, j->D);
        clattn_tensor v = clattn_tensor_make(j->d.causal ? p->v : p->nv, j->B, j->Hk, rows, j->Dv);
        clattn_tensor o = clattn_tensor_make(j->d.causal ? p->o : p->o2, j->B, j->Hq, rows, j->Dv);
        status = dev_status(j, r, clattn_linear_prefill(p->st, &q, &k, &v, &o, 0, NULL, NULL),
                            "linear prefill");
        if (status == CLATTN_SUCCESS)
            status = flush_dev(j, r);
    }
    status = finish_all(j, status);
    /* Gather the rows: part i's [B, Hq, rows, Dv] into out's positions. */
    for (size_t i = 0; i < j->np && status == CLATTN_SUCCESS; i++) {
        lpart *p = &j->p[i];
        size_t rows = j->d.causal ? p->n : p->qn, a = j->d.causal ? p->a : p->qa;
        if (!rows)
            continue;
        size_t bh = j->B * j->Hq, el = bh * rows * j->Dv;
        float *h = malloc(el * sizeof *h);
        if (!h) {
            status = clattn__group_fail(j->g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out of "
                                                                         "host memory");
            break;
        }
        status = lread(j, p->r, j->d.causal ? p->o : p->o2, el * 4, h);
        for (size_t t = 0; t < bh && status == CLATTN_SUCCESS; t++)
            memcpy(out + (t * j->Nq + a) * j->Dv, h + t * rows * j->Dv,
                   rows * j->Dv * sizeof *h);
        free(h);
    }
cleanup:
    free(s_all), free(z_all), free(s), free(z), free(zeros), free(nul), free(tq);
    return status;
}

clattn_status clattn_group_linear_host(clattn_group *group, const clattn_linear_desc *desc,
                                       clattn_group_split split, const size_t q_shape[4],
                                       const size_t k_shape[4], const size_t v_shape[4],
                                       const float *q, const float *k, const float *v, float *out)
{
    if (!group)
        return CLATTN_NULL_POINTER;
    clattn_group *g = group;
    g->msg[0] = '\0';
    if (!q_shape || !k_shape || !v_shape || !q || !k || !v || !out)
        return clattn__group_fail(g, CLATTN_NULL_POINTER, "group linear: shapes, q, k, v and out "
                                                          "are required");
    if ((unsigned)split > CLATTN_GROUP_SPLIT_HEADS)
        return clattn__group_fail(g, CLATTN_INVALID_ARGUMENT, "group linear: split %d",
                                  (int)split);
    ljob *j = calloc(1, sizeof *j);
    float *res = NULL;
    if (!j)
        return clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out of memory");
    clattn_status status = CLATTN_SUCCESS;
    j->g = g;
    clattn_linear_desc_init(&j->d);
    if (desc) {
        if (desc->struct_size != sizeof *desc) {
            status = clattn__group_fail(g, CLATTN_INVALID_ARGUMENT,
                                        "group linear: desc.struct_size (use "
                                        "clattn_linear_desc_init)");
            goto cleanup;
        }
        j->d = *desc;
    }
    j->d.q_dtype = j->d.k_dtype = j->d.v_dtype = j->d.out_dtype = CLATTN_F32;
    j->B = q_shape[0], j->Hq = q_shape[1], j->Nq = q_shape[2], j->D = q_shape[3];
    j->Hk = k_shape[1], j->Nk = k_shape[2], j->Dv = v_shape[3];
    j->q = q, j->k = k, j->v = v;
    /* The desc and shapes, as the devices' plans check them (nothing is built here). */
    {
        clattn_linear_desc rd;
        clattn_context *c0 = g->ctx[0];
        clattn_status st = clattn__linear_read_desc(c0, &j->d, &rd);
        if (st == CLATTN_SUCCESS)
            st = clattn__linear_check_dims(c0, q_shape, k_shape, v_shape, j->d.causal);
        size_t os[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
        const size_t *all[4] = {q_shape, k_shape, v_shape, os};
        if (st == CLATTN_SUCCESS && !clattn__group_sizes_ok(all, 4))
            st = clattn__fail(c0, CLATTN_SIZE_OVERFLOW, "sizes overflow");
        if (st != CLATTN_SUCCESS) {
            status = clattn__group_fail(g, st, "group linear: %s", clattn_context_last_error(c0));
            goto cleanup;
        }
    }
    j->G = j->Hq / j->Hk;
    j->M = clattn_linear_feature_count(&j->d, j->D);
    bool keys_ok = j->d.momentum == CLATTN_LINEAR_MOMENTUM_NONE &&
                   j->d.feature_map != CLATTN_LINEAR_FEATURE_FAVOR;
    clattn_group_split s = clattn__group_pick(g, split, j->B * j->Hk, j->Nk);
    if (s == CLATTN_GROUP_SPLIT_KEYS && !keys_ok) {
        if (split == CLATTN_GROUP_SPLIT_KEYS || g->split == CLATTN_GROUP_SPLIT_KEYS) {
            status = clattn__group_fail(g, CLATTN_UNSUPPORTED,
                                        "group linear: the KEYS split needs states that add "
                                        "(ELU, RELU or IDENTITY features without momentum); "
                                        "use HEADS for FAVOR and the momentum forms");
            goto cleanup;
        }
        s = CLATTN_GROUP_SPLIT_HEADS;
    }
    size_t el = j->B * j->Hq * j->Nq * j->Dv;
    if (!(res = malloc(el * sizeof *res))) {
        status = clattn__group_fail(g, CLATTN_OUT_OF_HOST_MEMORY, "group linear: out of memory");
        goto cleanup;
    }
    status = s == CLATTN_GROUP_SPLIT_HEADS ? run_heads(j, res) : run_keys(j, res);
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    memcpy(out, res, el * sizeof *out);
    memset(&g->info, 0, sizeof g->info);
    g->info.split = s;
    g->info.parts = j->np;
    for (size_t i = 0; i < j->np; i++) {
        g->info.share[j->p[i].r] = j->p[i].n;
        g->info.share_start[j->p[i].r] = j->p[i].a;
    }
cleanup:
    if (j)
        for (size_t i = 0; i < j->np; i++)
            lpart_release(&j->p[i]);
    free(j);
    free(res);
    return status;
}
