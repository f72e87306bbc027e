/* The command sequences of linear attention's forms, through a plan's kernels (linear.h). The
 * fused non-causal form of the element-wise maps (run_fused) reads q, k, v directly: chunk sums,
 * the scan, one pass over the query rows. Every other form starts by writing the features of the
 * queries and keys (lib/blocks/feature_maps.c) and a padded copy of the values, then either
 *   - chunk sums, a scan over chunks and one pass over the query rows (plain and fixed momentum:
 *     non-causal, causal, prefill), or
 *   - a state update and the same output pass (decoding steps), or
 *   - the sequential adaptive-momentum scan, or
 *   - two CLBlast GEMMs and a normalising pass (the GEMM algorithm).
 * States are [BH][MP][DW] floats (kernels_cl/linear.cl explains the layout and the log-scales).
 * Nothing here creates a kernel or looks up a program; scratch is allocated only when a run
 * needs more than the plan holds (clattn__linear_reserve). */
#include "linear.h"

#include <math.h>
#include <string.h>

/* ---- scratch ---- */

static bool is_fixed(const clattn_linear_desc *d) { return d->momentum == CLATTN_LINEAR_MOMENTUM_FIXED; }

static bool gemm_of(const clattn__linear_job *j)
{
    return j->p->launch.algo == CLATTN_LINEAR_GEMM && !j->causal && !j->step;
}

/* The one-pass kernel (run_causal): a plain plan's run with an element-wise map, causal or (where
 * the scheduler takes it) not. */
static bool causal_of(const clattn__linear_job *j)
{
    return j->p->causal_eb && !j->step && !j->state;
}

/* The fused non-causal form (run_fused): a plain plan's non-causal run with an element-wise map. */
static bool fused_of(const clattn__linear_job *j)
{
    return j->p->fused_nc && !j->causal && !j->step && !j->state;
}

clattn_status clattn__linear_reserve(clattn__linear_plan *p, const clattn__linear_job *j)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_dims *z = &j->z;
    const clattn_linear_desc *d = &p->desc;
    size_t need[LIN_SLOTS];
    memset(need, 0, sizeof need);
    size_t one, all, vp, fq, fk, iw = 0, kt = 0;
    size_t nch = p->stateful ? clattn__div_up(z->nk, p->launch.block_chunk) : z->nchunks;
    CLATTN_CHECK(clattn__mul_ok(z->bhk * z->mp, z->dw * sizeof(float), &one) &&
                     clattn__mul_ok(one, nch, &all) &&
                     clattn__mul_ok(z->bh * z->nq, z->mp * sizeof(float), &fq) &&
                     clattn__mul_ok(z->bhk * z->nk, z->mp * sizeof(float), &fk) &&
                     clattn__mul_ok(z->bhk * z->nk, z->dw * sizeof(float), &vp) &&
                     clattn__mul_ok(z->bh * z->nq, p->launch.block_chunk * sizeof(float), &iw) &&
                     clattn__mul_ok(all / z->dw, p->launch.block_chunk, &kt),
                 CLATTN_SIZE_OVERFLOW, "linear: scratch sizes overflow");
    bool adaptive = d->momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE, fixed = is_fixed(d);
    size_t f4 = sizeof(float);
    if (causal_of(j)) /* one kernel, no scratch */
        goto alloc;
    if (fused_of(j)) { /* no features, no padded values: the chunk sums and the total */
        need[LIN_CM] = need[LIN_PS] = z->bhk * nch * f4;
        need[LIN_FAC] = 2 * z->bhk * nch * f4;
        need[LIN_CA] = all;
        if (fixed)
            need[LIN_CB] = all;
        need[LIN_TA] = one;
        if (fixed)
            need[LIN_TB] = one;
        need[LIN_TR] = z->bhk * f4;
        goto alloc;
    }
    need[LIN_FQ] = fq;
    need[LIN_LQ] = z->bh * z->nq * f4;
    need[LIN_FK] = fk;
    need[LIN_LK] = z->bhk * z->nk * f4;
    need[LIN_VP] = gemm_of(j) ? vp : vp / z->dw * z->dvp;
    if (gemm_of(j)) {
        if (d->feature_map == CLATTN_LINEAR_FEATURE_FAVOR)
            need[LIN_LMAX] = z->bhk * f4;
        need[LIN_KV] = one;
        need[LIN_OP] = z->bh * z->nq * z->dw * f4;
    } else if (adaptive) {
        if (!p->stateful) {
            for (int i = 0; i < 4; i++)
                need[LIN_AS + i] = one;
            need[LIN_AR] = need[LIN_AT] = z->bhk * f4;
        }
    } else if (!j->step || p->stateful) {
        /* The chunked forms (a state's plan: its prefills). */
        need[LIN_CW] = z->bhk * z->nk * f4;
        need[LIN_CM] = need[LIN_PS] = z->bhk * nch * f4;
        need[LIN_CA] = all;
        if (fixed)
            need[LIN_CB] = all;
        need[LIN_FAC] = 2 * z->bhk * nch * f4;
        if (j->causal) {
            need[LIN_FR] = z->bhk * f4;
            need[LIN_IW] = iw;
            need[LIN_IMI] = z->bh * z->nq * f4;
            need[LIN_KT] = kt;
        } else {
            need[LIN_TA] = one;
            if (fixed)
                need[LIN_TB] = one;
            need[LIN_TR] = z->bhk * f4;
        }
    }
alloc:
    for (int i = 0; i < LIN_SLOTS; i++) {
        if (need[i] <= p->slot_bytes[i])
            continue;
        if (p->slot[i]) {
            clReleaseMemObject(p->slot[i]);
            p->base.scratch_bytes -= p->slot_bytes[i];
            p->slot[i] = NULL;
            p->slot_bytes[i] = 0;
        }
        CLATTN_FORWARD(clattn__buffer_create(ctx, need[i], "linear attention scratch",
                                             &p->slot[i]));
        p->slot_bytes[i] = need[i];
        p->base.scratch_bytes += need[i];
    }
cleanup:
    return status;
}

/* ---- the command sequence, with the launch's work-group rules ---- */

typedef struct seq {
    clattn__seq q;
    clattn_context *ctx;
    const clattn__linear_launch *L;
} seq;

static const size_t ones[3] = {1, 1, 1};

/* `blocked`: a register-blocked kernel (the launch's local size); the others run one item per
 * group only on loop-capped devices. Checks the arguments collected in a first. */
static clattn_status launch_ex(seq *s, clattn__args *a, cl_uint dims, const size_t *global,
                               bool blocked, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(a->err);
    bool one = blocked ? s->L->local_size == 1 : s->L->one_item_groups != 0;
    CLATTN_FORWARD(
        clattn__seq_kernel_local(&s->q, a->k, dims, global, one ? ones : NULL, last, event));
cleanup:
    return status;
}

static clattn_status launch(seq *s, clattn__args *a, cl_uint dims, const size_t *global,
                            bool last, cl_event *event)
{
    return launch_ex(s, a, dims, global, false, last, event);
}

static clattn_status seq_fill(seq *s, cl_mem buf, float value, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(&s->q, last, event);
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, buf, &value, sizeof value, 0, bytes, s->q.nw,
                                  s->q.w, s->q.evp));
    clattn__seq_done(&s->q);
cleanup:
    return status;
}

static clattn_status seq_copy(seq *s, cl_mem src, cl_mem dst, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(&s->q, last, event);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src, dst, 0, 0, bytes, s->q.nw, s->q.w, s->q.evp));
    clattn__seq_done(&s->q);
cleanup:
    return status;
}

/* ---- the forms ---- */

/* vp [BHk][Nk][width] = v zero padded, with 1 in column ones_at (>= width: none). */
static clattn_status launch_pack(seq *s, const clattn__linear_job *j, size_t width,
                                 size_t ones_at, cl_mem vp)
{
    const clattn__linear_dims *z = &j->z;
    cl_uint heads = (cl_uint)z->hk, dv = (cl_uint)z->dv, w = (cl_uint)width;
    cl_uint one = (cl_uint)ones_at;
    clattn__args a = {j->p->pack, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, one);
    CLATTN_ARG(&a, vp);
    size_t g[2] = {z->nk, z->bhk};
    return launch(s, &a, 2, g, false, NULL);
}

/* log(eps) for the kernels, which add eps in the formula's scale (clattn_linear_eps); -inf for
 * eps 0 (no eps). */
static cl_float log_eps(const clattn_linear_desc *d)
{
    return d->eps > 0.0f ? (cl_float)log((double)d->eps) : -INFINITY;
}

/* The non-causal output rows through the register-tiled clattn_linear_out_tiled
 * (linear_fused.cl; the launch's out_tiled): phi(q) from the caller's view (`from_view`, the
 * fused form: element-wise maps) or from the materialised features (LIN_FQ, log-scales LIN_LQ);
 * the total state sa/sb (B read with `fixed` momentum only) at log-scale ps[bk]. */
static clattn_status launch_out_tiled(seq *s, const clattn__linear_job *j, bool from_view,
                                      cl_mem sa, cl_mem sb, cl_mem ps, int fixed,
                                      cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    const clattn_linear_desc *d = &p->desc;
    const clattn__linear_launch *L = &p->launch;
    cl_uint ud = (cl_uint)z->d, heads = (cl_uint)z->hq, nq = (cl_uint)z->nq;
    cl_uint mp = (cl_uint)z->mp, dv = (cl_uint)z->dv, dvp = (cl_uint)z->dvp;
    cl_uint group = (cl_uint)z->group;
    cl_int fmap = (cl_int)d->feature_map, fromf = from_view ? 0 : 1, mom = fixed;
    cl_float mu = fixed ? d->mu : 0.0f;
    cl_float coef = fixed ? d->step_size / (1.0f - d->mu) : 1.0f, le = log_eps(d);
    cl_mem fq = from_view ? sa : p->slot[LIN_FQ], lq = from_view ? sa : p->slot[LIN_LQ];
    clattn__args a = {p->out_tiled_k, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, fq);
    CLATTN_ARG(&a, fromf);
    CLATTN_ARG(&a, lq);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, nq);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, sa);
    cl_mem sbb = fixed && sb ? sb : sa;
    CLATTN_ARG(&a, sbb);
    CLATTN_ARG(&a, ps);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, coef);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, group);
    CLATTN_CL(a.err);
    size_t br = (size_t)L->ot_ty * L->ot_rm, bn = (size_t)L->ot_tx * L->ot_rn;
    size_t g[3] = {clattn__div_up(z->nq, br) * L->out_local, clattn__div_up(z->dv, bn), z->bh};
    size_t l[3] = {L->out_local, 1, 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s->q, a.k, 3, g, l, true, event));
cleanup:
    return status;
}

/* Output rows from a carried state: per chunk (causal; ps holds their log-scales) or one per
 * (b, key head) (ps holds the state's log-scale). `fixed` selects the momentum combination
 * coef (A - mu B). */
static clattn_status launch_out(seq *s, const clattn__linear_job *j, cl_mem sa, cl_mem sb,
                                cl_mem ps, cl_mem iw, cl_mem imi, size_t nchunks, int causal,
                                int fixed, cl_event *event)
{
    const clattn__linear_plan *p = j->p;
    if (p->out_tiled && !causal && !j->step)
        return launch_out_tiled(s, j, false, sa, sb, ps, fixed, event);
    const clattn__linear_dims *z = &j->z;
    const clattn_linear_desc *d = &p->desc;
    cl_uint heads = (cl_uint)z->hq, nq = (cl_uint)z->nq, mp = (cl_uint)z->mp;
    cl_uint dv = (cl_uint)z->dv, dvp = (cl_uint)z->dvp, unch = (cl_uint)nchunks;
    cl_uint group = (cl_uint)z->group;
    cl_int c = causal, mom = fixed;
    cl_float mu = fixed ? d->mu : 0.0f;
    cl_float coef = fixed ? d->step_size / (1.0f - d->mu) : 1.0f, le = log_eps(d);
    cl_mem sbb = sb ? sb : sa, psb = ps ? ps : sa, iwb = iw ? iw : sa, imb = imi ? imi : sa;
    clattn__args a = {p->out, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->slot[LIN_FQ]);
    CLATTN_ARG(&a, p->slot[LIN_VP]);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, nq);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, sa);
    CLATTN_ARG(&a, sbb);
    CLATTN_ARG(&a, psb);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, iwb);
    CLATTN_ARG(&a, imb);
    CLATTN_ARG(&a, c);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, coef);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, p->slot[LIN_LQ]);
    CLATTN_ARG(&a, group);
    size_t g[3] = {clattn__div_up(z->dvp, 16 * (size_t)p->launch.value_blocks),
                   clattn__div_up(z->nq, p->launch.rows), z->bh};
    return launch_ex(s, &a, 3, g, true, true, event);
}

static clattn_status launch_adaptive(seq *s, const clattn__linear_job *j,
                                     const clattn__linear_bufs *b, int want_out, bool last,
                                     cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    cl_kernel k = p->adaptive;
    cl_uint n = (cl_uint)z->nk, mp = (cl_uint)z->mp, dv = (cl_uint)z->dv;
    cl_uint dvp = (cl_uint)z->dvp, heads = (cl_uint)z->hk, group = (cl_uint)z->group;
    cl_float eta = p->desc.step_size, le = log_eps(&p->desc);
    cl_int wo = want_out;
    cl_mem fq = p->slot[LIN_FQ];
    /* Without an output the view arguments still need a valid buffer. */
    clattn_tensor dummy = clattn_tensor_make(fq, 1, 1, 1, 1);
    clattn__args a = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fq);
    CLATTN_ARG(&a, p->slot[LIN_FK]);
    CLATTN_ARG(&a, p->slot[LIN_LK]);
    CLATTN_ARG(&a, p->slot[LIN_VP]);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, eta);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, p->slot[LIN_LQ]);
    CLATTN_ARG(&a, b->sa);
    CLATTN_ARG(&a, b->sb);
    CLATTN_ARG(&a, b->s1);
    CLATTN_ARG(&a, b->u1);
    CLATTN_ARG(&a, b->sr);
    CLATTN_ARG(&a, b->st);
    CLATTN_ARG(&a, wo);
    clattn__arg_view(&a, want_out ? j->out : &dummy);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, group);
    CLATTN_CL(a.err);
    /* On loop-capped devices the scan is split into launches of a bounded number of tokens (the
     * scheduler's adaptive_span, for the plan's query heads per key head; a decoding state's
     * steps may bring more); the state lives in global memory between them. */
    size_t span = z->nk, baked = p->qshape[1] / p->kshape[1];
    if (p->launch.adaptive_span) {
        span = p->launch.adaptive_span * baked / z->group;
        span = span ? span : 1;
    }
    size_t g = z->bhk;
    for (size_t t0 = 0; t0 < z->nk; t0 += span) {
        cl_uint j0 = (cl_uint)t0, j1 = (cl_uint)(t0 + span < z->nk ? t0 + span : z->nk);
        CLATTN_CL(clSetKernelArg(k, a.i, sizeof j0, &j0));
        CLATTN_CL(clSetKernelArg(k, a.i + 1, sizeof j1, &j1));
        bool fin = j1 == z->nk;
        clattn__args r = {k, 0, CL_SUCCESS};
        CLATTN_FORWARD(launch(s, &r, 1, &g, last && fin, event));
    }
cleanup:
    return status;
}

/* Zeroed scratch state for the plain (stateless) adaptive form. */
static clattn_status adaptive_scratch(seq *s, const clattn__linear_job *j,
                                      clattn__linear_bufs *b)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    size_t bytes = z->bhk * z->mp * z->dw * sizeof(float);
    b->sa = p->slot[LIN_AS];
    b->sb = p->slot[LIN_AS + 1];
    b->s1 = p->slot[LIN_AS + 2];
    b->u1 = p->slot[LIN_AS + 3];
    b->sr = p->slot[LIN_AR];
    b->st = p->slot[LIN_AT];
    cl_mem big[] = {b->sa, b->sb, b->s1, b->u1};
    for (int i = 0; i < 4; i++)
        CLATTN_FORWARD(seq_fill(s, big[i], 0.0f, bytes, false, NULL));
    CLATTN_FORWARD(seq_fill(s, b->sr, -INFINITY, z->bhk * sizeof(float), false, NULL));
    CLATTN_FORWARD(seq_fill(s, b->st, 0.0f, z->bhk * sizeof(cl_uint), false, NULL));
cleanup:
    return status;
}

/* Chunk sums, scan, output (plain and fixed momentum; not steps). */
static clattn_status run_chunked(seq *s, const clattn__linear_job *j, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    cl_mem const *sl = p->slot;
    bool fixed = is_fixed(&p->desc);
    const clattn__linear_bufs *st = j->state;
    size_t chunk = z->chunk, nchunks = z->nchunks;
    cl_mem cw = sl[LIN_CW], cm = sl[LIN_CM], ca = sl[LIN_CA], cb = sl[LIN_CB], ps = sl[LIN_PS];
    cl_mem fr = sl[LIN_FR], fac = sl[LIN_FAC], fk = sl[LIN_FK], l = sl[LIN_LK], vp = sl[LIN_VP];
    clattn__linear_bufs tot = {sl[LIN_TA], sl[LIN_TB], NULL, NULL, sl[LIN_TR], NULL};

    cl_uint un = (cl_uint)z->nk, uchunk = (cl_uint)chunk, unch = (cl_uint)nchunks;
    cl_uint mp = (cl_uint)z->mp, dvp = (cl_uint)z->dvp, group = (cl_uint)z->group;
    cl_int mom = fixed;
    cl_float mu = fixed ? p->desc.mu : 0.0f;
    const clattn__linear_launch *L = &p->launch;
    clattn__args a;

    a = (clattn__args){p->chunk_weights, 0, CL_SUCCESS};
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, cw);
    CLATTN_ARG(&a, cm);
    size_t g1[2] = {nchunks, z->bhk};
    CLATTN_FORWARD(launch(s, &a, 2, g1, false, NULL));

    cl_mem cbb = cb ? cb : ca;
    a = (clattn__args){p->chunk_state, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fk);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, cw);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    size_t g2[3] = {clattn__div_up(z->dvp, 16 * (size_t)L->value_blocks) + 1,
                    z->mp / L->feature_rows, z->bhk * nchunks};
    CLATTN_FORWARD(launch_ex(s, &a, 3, g2, true, false, NULL));

    /* Causal: chunk sums become carried prefixes, the state (if any) seeds them and receives the
     * total (its scale through fr, copied after). Non-causal: the total goes to tot. */
    bool scan_last = !j->out && !(j->causal && st);
    cl_int has_init = st != NULL, has_fin = !j->causal || st != NULL, prefix = j->causal != 0;
    cl_mem ir = st ? st->sr : cm, frr = j->causal ? fr : tot.sr;
    a = (clattn__args){p->scan_scales, 0, CL_SUCCESS};
    CLATTN_ARG(&a, cm);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, has_init);
    CLATTN_ARG(&a, ir);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, ps);
    CLATTN_ARG(&a, frr);
    size_t gs = z->bhk;
    CLATTN_FORWARD(launch(s, &a, 1, &gs, false, NULL));
    cl_mem ia = st ? st->sa : ca, ib = st && st->sb ? st->sb : ca;
    cl_mem fa = j->causal ? (st ? st->sa : ca) : tot.sa;
    cl_mem fb = j->causal ? (st && st->sb ? st->sb : ca) : (tot.sb ? tot.sb : ca);
    a = (clattn__args){p->scan, 0, CL_SUCCESS};
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, has_init);
    CLATTN_ARG(&a, ia);
    CLATTN_ARG(&a, ib);
    CLATTN_ARG(&a, has_fin);
    CLATTN_ARG(&a, fa);
    CLATTN_ARG(&a, fb);
    CLATTN_ARG(&a, prefix);
    size_t g3[3] = {z->dw / 16, z->mp, z->bhk};
    CLATTN_FORWARD(launch_ex(s, &a, 3, g3, true, scan_last, event));
    if (j->causal && st)
        CLATTN_FORWARD(seq_copy(s, fr, st->sr, z->bhk * sizeof(float), !j->out, event));
    if (j->out && j->causal) {
        cl_mem kt = sl[LIN_KT], iw = sl[LIN_IW], imi = sl[LIN_IMI];
        a = (clattn__args){p->kt, 0, CL_SUCCESS};
        CLATTN_ARG(&a, fk);
        CLATTN_ARG(&a, un);
        CLATTN_ARG(&a, unch);
        CLATTN_ARG(&a, kt);
        size_t gk[3] = {chunk, z->mp, z->bhk * nchunks};
        CLATTN_FORWARD(launch(s, &a, 3, gk, false, NULL));
        a = (clattn__args){p->intra, 0, CL_SUCCESS};
        CLATTN_ARG(&a, sl[LIN_FQ]);
        CLATTN_ARG(&a, kt);
        CLATTN_ARG(&a, l);
        CLATTN_ARG(&a, ps);
        CLATTN_ARG(&a, mp);
        CLATTN_ARG(&a, unch);
        CLATTN_ARG(&a, group);
        CLATTN_ARG(&a, iw);
        CLATTN_ARG(&a, imi);
        size_t g4[2] = {z->nq, z->bh};
        CLATTN_FORWARD(launch_ex(s, &a, 2, g4, true, false, NULL));
        CLATTN_FORWARD(launch_out(s, j, ca, cb, ps, iw, imi, nchunks, 1, fixed, event));
    } else if (j->out) {
        CLATTN_FORWARD(
            launch_out(s, j, tot.sa, tot.sb, tot.sr, NULL, NULL, 1, 0, fixed, event));
    }
cleanup:
    return status;
}

/* The fused non-causal form (kernels_cl/linear_fused.cl, clattn_linear_fused_*): chunk sums
 * read straight from k and v (phi in registers; every key's log-scale is 0, so the chunk scales
 * are 0 and the scan's factors 1), the scan (linear.cl's) sums them into the total state, and the
 * output pass reads q straight from its view. */
static clattn_status run_fused(seq *s, const clattn__linear_job *j, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    const clattn_linear_desc *d = &p->desc;
    cl_mem const *sl = p->slot;
    bool fixed = is_fixed(d);
    size_t nchunks = z->nchunks;
    cl_mem cm = sl[LIN_CM], ca = sl[LIN_CA], cb = sl[LIN_CB], ps = sl[LIN_PS], fac = sl[LIN_FAC];
    cl_mem ta = sl[LIN_TA], tb = sl[LIN_TB], tr = sl[LIN_TR];
    cl_mem cbb = cb ? cb : ca, tbb = tb ? tb : ca;
    cl_uint hk = (cl_uint)z->hk, ud = (cl_uint)z->d, dv = (cl_uint)z->dv, un = (cl_uint)z->nk;
    cl_uint mp = (cl_uint)z->mp, dvp = (cl_uint)z->dvp, uchunk = (cl_uint)z->chunk;
    cl_uint unch = (cl_uint)nchunks, heads = (cl_uint)z->hq, nq = (cl_uint)z->nq;
    cl_uint group = (cl_uint)z->group;
    cl_int fmap = (cl_int)d->feature_map, mom = fixed, zero = 0, one = 1;
    cl_float mu = fixed ? d->mu : 0.0f;
    cl_float coef = fixed ? d->step_size / (1.0f - d->mu) : 1.0f, le = log_eps(d);
    const clattn__linear_launch *L = &p->launch;
    clattn__args a;

    CLATTN_FORWARD(seq_fill(s, cm, 0.0f, z->bhk * nchunks * sizeof(float), false, NULL));
    a = (clattn__args){p->fused_state, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->k);
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, hk);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    size_t g2[3] = {clattn__div_up(z->dvp, 16 * (size_t)L->value_blocks),
                    z->mp / L->feature_rows, z->bhk * nchunks};
    CLATTN_FORWARD(launch_ex(s, &a, 3, g2, true, false, NULL));

    a = (clattn__args){p->scan_scales, 0, CL_SUCCESS};
    CLATTN_ARG(&a, cm);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, zero);
    CLATTN_ARG(&a, cm);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, ps);
    CLATTN_ARG(&a, tr);
    size_t gs = z->bhk;
    CLATTN_FORWARD(launch(s, &a, 1, &gs, false, NULL));
    a = (clattn__args){p->scan, 0, CL_SUCCESS};
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, zero);
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    CLATTN_ARG(&a, one);
    CLATTN_ARG(&a, ta);
    CLATTN_ARG(&a, tbb);
    CLATTN_ARG(&a, zero);
    size_t g3[3] = {z->dw / 16, z->mp, z->bhk};
    CLATTN_FORWARD(launch_ex(s, &a, 3, g3, true, false, NULL));

    if (p->out_tiled) {
        CLATTN_FORWARD(launch_out_tiled(s, j, true, ta, tbb, tr, fixed, event));
        goto cleanup;
    }
    a = (clattn__args){p->fused_out, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, fmap);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, nq);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, ta);
    CLATTN_ARG(&a, tbb);
    CLATTN_ARG(&a, tr);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, coef);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, group);
    size_t g4[3] = {clattn__div_up(z->dvp, 16 * (size_t)L->value_blocks),
                    clattn__div_up(z->nq, L->rows), z->bh};
    CLATTN_FORWARD(launch_ex(s, &a, 3, g4, true, true, event));
cleanup:
    return status;
}

/* The fused causal form (kernels_cl/linear_causal.cl, clattn_linear_causal): one work-item per
 * (value-column block, batch x key head) walks the chunks in order with the state in private
 * memory, reading q, k, v once and writing out. */
static clattn_status run_causal(seq *s, const clattn__linear_job *j, cl_event *event)
{
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    cl_uint hk = (cl_uint)z->hk, group = (cl_uint)z->group, un = (cl_uint)z->nk;
    cl_uint ud = (cl_uint)z->d, dv = (cl_uint)z->dv, mp = (cl_uint)z->mp;
    cl_int fmap = (cl_int)p->desc.feature_map;
    cl_float le = log_eps(&p->desc);
    clattn__args a = {p->fused_causal, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    clattn__arg_view(&a, j->k);
    clattn__arg_view(&a, j->v);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, hk);
    CLATTN_ARG(&a, group);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, fmap);
    CLATTN_ARG(&a, le);
    cl_uint unq = (cl_uint)z->nq;
    cl_int causal = j->causal;
    CLATTN_ARG(&a, unq);
    CLATTN_ARG(&a, causal);
    size_t g[2] = {clattn__div_up(z->dvp, 16 * (size_t)p->causal_eb), z->bhk};
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(&s->q, a.k, 2, g, ones, true, event));
cleanup:
    return status;
}

/* A decoding step without adaptive momentum: update, commit the scale, output. */
static clattn_status run_step(seq *s, const clattn__linear_job *j, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    const clattn__linear_bufs *st = j->state;
    bool fixed = is_fixed(&p->desc);
    cl_uint mp = (cl_uint)z->mp, dvp = (cl_uint)z->dvp;
    cl_int mom = fixed;
    cl_float mu = fixed ? p->desc.mu : 0.0f;
    cl_mem sbb = st->sb ? st->sb : st->sa;
    clattn__args a = {p->step_update, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->slot[LIN_FK]);
    CLATTN_ARG(&a, p->slot[LIN_LK]);
    CLATTN_ARG(&a, p->slot[LIN_VP]);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, st->sa);
    CLATTN_ARG(&a, sbb);
    CLATTN_ARG(&a, st->sr);
    size_t g[3] = {z->dw, z->mp, z->bhk};
    CLATTN_FORWARD(launch(s, &a, 3, g, false, NULL));
    a = (clattn__args){p->step_commit, 0, CL_SUCCESS};
    CLATTN_ARG(&a, st->sr);
    CLATTN_ARG(&a, p->slot[LIN_LK]);
    size_t g1 = z->bhk;
    CLATTN_FORWARD(launch(s, &a, 1, &g1, false, NULL));
    CLATTN_FORWARD(launch_out(s, j, st->sa, st->sb, st->sr, NULL, NULL, 1, 0, fixed, event));
cleanup:
    return status;
}

static clattn_status seq_gemm(seq *s, bool trans_a, size_t m, size_t n, size_t k, cl_mem a,
                              size_t lda, size_t sa, cl_mem b, size_t ldb, size_t sb, cl_mem c,
                              size_t ldc, size_t sc, size_t batch)
{
    clattn_status st = clattn__seq_library(&s->q, false, NULL);
    if (st == CLATTN_SUCCESS)
        st = clattn__sgemm_batched(s->ctx, trans_a, false, m, n, k, 1.0f, a, 0, lda, sa, b, 0,
                                   ldb, sb, 0.0f, c, 0, ldc, sc, batch, s->q.evp);
    if (st == CLATTN_SUCCESS)
        clattn__seq_done(&s->q);
    return st;
}

/* The GEMM form: KV = phi(K)^T [V 1] per (b, key head) and O' = phi(Q) KV by CLBlast, then out =
 * O'[:, :Dv] / (O'[:, Dv] + eps) (eps in the formula's scale). Keys carry their head's scale
 * (features with stab 1). */
static clattn_status run_gemm(seq *s, const clattn__linear_job *j, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_plan *p = j->p;
    const clattn__linear_dims *z = &j->z;
    cl_mem vp1 = p->slot[LIN_VP], kv = p->slot[LIN_KV], op = p->slot[LIN_OP];
    cl_mem fq = p->slot[LIN_FQ], fk = p->slot[LIN_FK];
    CLATTN_FORWARD(launch_pack(s, j, z->dw, z->dvp, vp1));
    CLATTN_FORWARD(seq_gemm(s, true, z->mp, z->dw, z->nk, fk, z->mp, z->nk * z->mp, vp1, z->dw,
                            z->nk * z->dw, kv, z->dw, z->mp * z->dw, z->bhk));
    /* The query heads sharing a key head (GQA) are consecutive rows of fq and op: one product of
     * group * Nq rows per key head. */
    size_t rows = z->group * z->nq;
    CLATTN_FORWARD(seq_gemm(s, false, rows, z->dw, z->mp, fq, z->mp, rows * z->mp, kv, z->dw,
                            z->mp * z->dw, op, z->dw, rows * z->dw, z->bhk));
    cl_uint heads = (cl_uint)z->hq, dv = (cl_uint)z->dv, dvp = (cl_uint)z->dvp;
    cl_uint group = (cl_uint)z->group;
    cl_float le = log_eps(&p->desc);
    cl_int has_lmax = p->slot[LIN_LMAX] != NULL;
    cl_mem lmax = has_lmax ? p->slot[LIN_LMAX] : op;
    clattn__args a = {p->normalize, 0, CL_SUCCESS};
    CLATTN_ARG(&a, op);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, le);
    CLATTN_ARG(&a, p->slot[LIN_LQ]);
    CLATTN_ARG(&a, has_lmax);
    CLATTN_ARG(&a, lmax);
    CLATTN_ARG(&a, group);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    size_t g2[2] = {z->nq, z->bh};
    CLATTN_FORWARD(launch(s, &a, 2, g2, true, event));
cleanup:
    return status;
}

clattn_status clattn__linear_run(const clattn__linear_job *j, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    clattn__linear_plan *p = j->p;
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__linear_bufs scratch;
    memset(&scratch, 0, sizeof scratch);
    seq s;
    bool started = false;
    CLATTN_FORWARD(clattn__linear_reserve(p, j));
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.L = &p->launch;
    CLATTN_FORWARD(clattn__seq_init(&s.q, ctx, num_wait, wait));
    started = true;
    if (fused_of(j)) {
        CLATTN_FORWARD(run_fused(&s, j, event));
        goto cleanup;
    }
    if (causal_of(j)) {
        CLATTN_FORWARD(run_causal(&s, j, event));
        goto cleanup;
    }
    bool gemm = gemm_of(j);
    CLATTN_FORWARD(clattn__features_enqueue(&p->feat, &s.q, j->q, 0, p->slot[LIN_FQ],
                                            p->slot[LIN_LQ], NULL, false, NULL));
    CLATTN_FORWARD(clattn__features_enqueue(&p->feat, &s.q, j->k, gemm ? 1 : 0, p->slot[LIN_FK],
                                            p->slot[LIN_LK], p->slot[LIN_LMAX], false, NULL));
    if (gemm) {
        CLATTN_FORWARD(run_gemm(&s, j, event));
        goto cleanup;
    }
    CLATTN_FORWARD(launch_pack(&s, j, j->z.dvp, j->z.dvp, p->slot[LIN_VP]));
    if (p->desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE) {
        const clattn__linear_bufs *b = j->state;
        if (!b) {
            CLATTN_FORWARD(adaptive_scratch(&s, j, &scratch));
            b = &scratch;
        }
        bool outs_here = j->out && (j->causal || j->step);
        CLATTN_FORWARD(launch_adaptive(&s, j, b, outs_here, outs_here || !j->out, event));
        if (j->out && !outs_here)
            CLATTN_FORWARD(launch_out(&s, j, b->sa, NULL, b->sr, NULL, NULL, 1, 0, 0, event));
    } else if (j->step) {
        CLATTN_FORWARD(run_step(&s, j, event));
    } else {
        CLATTN_FORWARD(run_chunked(&s, j, event));
    }
cleanup:
    if (started)
        clattn__seq_end(&s.q);
    return status;
}
