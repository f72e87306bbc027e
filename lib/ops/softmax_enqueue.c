/* The enqueue side of exact softmax attention (include/clattn/softmax.h): validates the tensors
 * against a plan, binds the kernels' arguments (options, block table, split-KV) and enqueues the
 * tiled families (TILED_CPU's pack, the forward kernel, the split merge) or the naive baseline
 * (CLBlast GEMMs around a softmax kernel); also the plan-less and host entry points built on it.
 * A file of its own so plan creation (lib/ops/softmax.c) and the commands stay apart; both share
 * the plan struct in lib/ops/softmax_plan.h. */
#include "softmax_plan.h"

#include <stdint.h>

static clattn_status validate_io(softmax_plan *plan, const clattn_tensor *q,
                                  const clattn_tensor *k, const clattn_tensor *v,
                                  const clattn_tensor *out, const clattn_tensor *lse)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t lshape[4] = {plan->qshape[0], plan->qshape[1], plan->qshape[2], 1};
    const clattn__view ins[] = {{q, "q", plan->qshape, false, plan->dt[0]},
                                {k, "k", plan->kin, false, plan->dt[1]},
                                {v, "v", plan->vin, false, plan->dt[2]}};
    const clattn__view outs[] = {{out, "out", plan->oshape, false, plan->dt[3]},
                                 {lse, "lse", lshape, true, CLATTN_F32}};
    CLATTN_FORWARD(clattn__check_views(ctx, ins, 3, outs, 2));
    if (plan->desc.key_lengths) {
        clattn_tensor kl = clattn_tensor_make(plan->desc.key_lengths, 1, 1, 1, plan->batch);
        kl.offset = plan->desc.key_lengths_offset;
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", &kl, "key_lengths", 4));
        if (lse)
            CLATTN_FORWARD(clattn__check_no_alias(ctx, lse, "lse", &kl, "key_lengths", 4));
    }
    /* The option buffers are read while out and lse are written. */
    size_t hq = plan->qshape[1];
    clattn_tensor sl = clattn_tensor_make(plan->desc.alibi_slopes, 1, 1, 1, hq);
    sl.offset = plan->desc.alibi_slopes_offset;
    clattn_tensor sk = clattn_tensor_make(plan->desc.sinks, 1, 1, 1, hq);
    sk.offset = plan->desc.sinks_offset;
    clattn_tensor qln = clattn_tensor_make(plan->desc.q_lengths, 1, 1, 1, plan->batch);
    qln.offset = plan->desc.q_lengths_offset;
    clattn_tensor qof = clattn_tensor_make(plan->desc.q_offsets, 1, 1, 1, plan->batch + 1);
    qof.offset = plan->desc.q_offsets_offset;
    const clattn_tensor *opt_in[8] = {&plan->bias, &plan->mask, &plan->bmask, &sl,
                                      &sk,         &qln,        &qof,         &plan->bt};
    static const char *const opt_name[8] = {"bias",  "mask",      "block_mask", "alibi_slopes",
                                            "sinks", "q_lengths", "q_offsets",  "block_table"};
    for (int i = 0; i < 8; i++) {
        if (!opt_in[i]->buffer)
            continue;
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", opt_in[i], opt_name[i], 4));
        if (lse)
            CLATTN_FORWARD(clattn__check_no_alias(ctx, lse, "lse", opt_in[i], opt_name[i], 4));
    }
    if (plan->launch.algo == CLATTN_SOFTMAX_NAIVE) {
        /* Half tensors are staged through dense float32 scratch: any strides. */
        const clattn_tensor *all[] = {q, k, v, out};
        for (int i = 0; i < 4; i++)
            CLATTN_CHECK(plan->dt[i] != CLATTN_F32 || all[i]->strides[3] == 1, CLATTN_UNSUPPORTED,
                         "the naive algorithm needs unit stride along D (CLBlast rows)");
    }
cleanup:
    return status;
}

static void arg_opts(clattn__args *f, const softmax_plan *plan);

/* The arguments both tiled families take after their K/V inputs, in the same order. */
static void arg_tail(clattn__args *f, const softmax_plan *plan, const clattn_tensor *q,
                     const clattn_tensor *out, const clattn_tensor *lse)
{
    cl_uint hq = (cl_uint)plan->qshape[1], hk = (cl_uint)plan->kshape[1];
    cl_uint nq = (cl_uint)plan->qshape[2], nk = (cl_uint)plan->kshape[2];
    cl_float scale_log2 = plan->scale * 1.4426950408889634f;
    cl_int causal = plan->desc.causal != 0;
    cl_int has_lse = lse != NULL, has_kl = plan->desc.key_lengths != NULL;
    /* Unused buffers still need a valid cl_mem: the kernels never touch them when the flag is 0. */
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset;
    clattn__arg_view(f, out);
    clattn__arg_view(f, lse ? lse : out);
    CLATTN_ARG(f, has_lse);
    CLATTN_ARG(f, klbuf);
    CLATTN_ARG(f, kloff);
    CLATTN_ARG(f, has_kl);
    CLATTN_ARG(f, hq);
    CLATTN_ARG(f, hk);
    CLATTN_ARG(f, nq);
    CLATTN_ARG(f, nk);
    CLATTN_ARG(f, scale_log2);
    CLATTN_ARG(f, causal);
    if (plan->splits > 1) { /* TILED_CPU split-KV: CPU_SPLIT_ARGS */
        cl_uint ns = plan->splits, skeys = plan->split_keys;
        CLATTN_ARG(f, ns);
        CLATTN_ARG(f, skeys);
        CLATTN_ARG(f, plan->part_acc);
        CLATTN_ARG(f, plan->part_ml);
    }
    arg_opts(f, plan);
}

/* SOFTMAX_OPT_PARAMS (kernels_cl/softmax_opts.clh), in its order, for plans with options. */
/* The block table's arguments, in the order every kernel takes them (SOFTMAX_OPT_PARAMS, the pack
 * and the gather): the table (`absent` without one), its offset and row stride, max pages per
 * row, tokens per page, pages in the pools. */
static void arg_table(clattn__args *a, const softmax_plan *plan, cl_mem absent)
{
    bool paged = plan->bt.buffer != NULL;
    cl_mem bt = paged ? plan->bt.buffer : absent;
    cl_ulong btoff = paged ? plan->bt.offset : 0, btsb = paged ? plan->bt.strides[2] : 0;
    cl_uint maxp = paged ? (cl_uint)plan->bt.shape[3] : 0;
    cl_uint page = paged ? (cl_uint)plan->desc.page_size : 1;
    cl_uint npages = paged ? (cl_uint)plan->kin[0] : 0;
    CLATTN_ARG(a, bt);
    CLATTN_ARG(a, btoff);
    CLATTN_ARG(a, btsb);
    CLATTN_ARG(a, maxp);
    CLATTN_ARG(a, page);
    CLATTN_ARG(a, npages);
}

static void arg_opts(clattn__args *f, const softmax_plan *plan)
{
    if (!plan->optk)
        return;
    const clattn_tensor *views[3] = {&plan->bias, &plan->mask, &plan->bmask};
    for (int i = 0; i < 3; i++) {
        cl_mem buf = views[i]->buffer ? views[i]->buffer : plan->dummy;
        cl_ulong off = views[i]->buffer ? views[i]->offset : 0;
        cl_ulong st[4] = {0, 0, 0, 0};
        if (views[i]->buffer)
            for (int a = 0; a < 4; a++)
                st[a] = views[i]->strides[a];
        CLATTN_ARG(f, buf);
        CLATTN_ARG(f, off);
        clattn__arg(f, sizeof st, st);
        if (i == 2) {
            cl_uint bq = plan->desc.block_q, bk = plan->desc.block_k;
            CLATTN_ARG(f, bq);
            CLATTN_ARG(f, bk);
        }
    }
    cl_mem sinks = plan->desc.sinks ? plan->desc.sinks : plan->dummy;
    cl_ulong soff = plan->desc.sinks ? plan->desc.sinks_offset : 0, loff = plan->slopes_off;
    cl_int wl = plan->desc.window_left, wr = plan->desc.window_right;
    cl_float cap = plan->desc.softcap;
    cl_uint flags = plan->opts;
    CLATTN_ARG(f, plan->slopes);
    CLATTN_ARG(f, loff);
    CLATTN_ARG(f, sinks);
    CLATTN_ARG(f, soff);
    CLATTN_ARG(f, wl);
    CLATTN_ARG(f, wr);
    CLATTN_ARG(f, cap);
    CLATTN_ARG(f, flags);
    /* Serving: q_lengths or q_offsets, the block table (a row stride, max pages, page size,
     * pool pages). */
    const clattn_softmax_desc *d = &plan->desc;
    cl_mem seq = d->q_lengths ? d->q_lengths : d->q_offsets ? d->q_offsets : plan->dummy;
    cl_ulong seqoff = d->q_lengths ? d->q_lengths_offset : d->q_offsets ? d->q_offsets_offset : 0;
    CLATTN_ARG(f, seq);
    CLATTN_ARG(f, seqoff);
    arg_table(f, plan, plan->dummy);
    cl_long pos = (cl_long)d->position_offset;
    CLATTN_ARG(f, pos);
}

/* The last arguments of TILED_CPU's pack and NAIVE's gather: key lengths (keys
 * at or past a sequence's length are not packed beyond the zeros its last step reads) and the
 * block table of paged K/V. */
static void arg_pack_seq(clattn__args *a, const softmax_plan *plan, const clattn_tensor *q)
{
    cl_int has_kl = plan->desc.key_lengths != NULL, paged = plan->bt.buffer != NULL;
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset;
    CLATTN_ARG(a, klbuf);
    CLATTN_ARG(a, kloff);
    CLATTN_ARG(a, has_kl);
    arg_table(a, plan, q->buffer);
    CLATTN_ARG(a, paged);
}

/* Split-KV's second kernel (both tiled families): clattn_softmax_split_merge combines the
 * plan's S partial rows of every (b, query head, row) into out and lse. */
static clattn_status enqueue_merge(softmax_plan *plan, const clattn_tensor *out,
                                   const clattn_tensor *lse, clattn__seq *s, cl_event *event)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint ns = plan->splits, hq = (cl_uint)plan->qshape[1];
    cl_uint nq = (cl_uint)plan->qshape[2], nk = (cl_uint)plan->kshape[2];
    cl_int has_lse = lse != NULL;
    clattn__args m = {plan->merge, 0, CL_SUCCESS};
    CLATTN_ARG(&m, plan->part_acc);
    CLATTN_ARG(&m, plan->part_ml);
    CLATTN_ARG(&m, ns);
    clattn__arg_view(&m, out);
    clattn__arg_view(&m, lse ? lse : out);
    CLATTN_ARG(&m, has_lse);
    CLATTN_ARG(&m, hq);
    CLATTN_ARG(&m, nq);
    CLATTN_ARG(&m, nk);
    arg_opts(&m, plan);
    CLATTN_CL(m.err);
    size_t gm[2] = {plan->qshape[2], plan->batch * plan->qshape[1]};
    CLATTN_FORWARD(clattn__seq_kernel(s, plan->merge, 2, gm, true, event));
cleanup:
    return status;
}

/* Whether TILED_CPU reads V's rows in place instead of packing them: where they already are as
 * the packed rows would be (the panels' element type, unit stride over Dv, Dv a multiple of 16 so
 * that whole float16 vectors cover a row, not paged); the main kernel reads no row past a group's
 * last key, so the packed copy's zero rows are not needed. Saves the V half of the pack, a copy at
 * memory bandwidth that matters where the attention itself is O(N): one query over 64k keys, D 128,
 * B 1 H 8 took 65-67 ms against 82-87 ms packed (session 9, same run); self-attention at N 1024
 * moved within the noise. The packed rows' scratch is allocated by the first call that packs V
 * (a plan whose calls all read V in place never holds it). CLATTN_SOFTMAX_V_DIRECT=0 when the plan
 * is made packs its V always (for measuring and testing; not a public knob). */
static bool v_in_place(const softmax_plan *plan, const clattn_tensor *v)
{
    return !plan->pack_v_always && plan->bt.buffer == NULL && v->dtype == plan->vpdt &&
           plan->dv % 16 == 0 && v->strides[3] == 1;
}

/* Whether TILED_CPU reads K's rows in place (a plan built with -DSOFTMAX_K_DIRECT=1, see
 * plan_create): K of the plan's element type with unit stride over D (the kernel loads float16
 * vectors of a row); else this call packs K into panels as other plans do. With V in place too,
 * the pack kernel does not run at all. */
static bool k_in_place(const softmax_plan *plan, const clattn_tensor *k)
{
    return plan->k_direct && k->dtype == plan->dt[1] && k->strides[3] == 1;
}

static clattn_status enqueue_tiled(softmax_plan *plan, const clattn_tensor *q,
                                   const clattn_tensor *k, const clattn_tensor *v,
                                   const clattn_tensor *out, const clattn_tensor *lse,
                                   clattn__seq *s, cl_event *event)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__softmax_launch *L = &plan->launch;
    size_t lo[2] = {L->local_size, 1};
    size_t bh = plan->batch * plan->qshape[1];
    clattn__args f = {plan->fwd, 0, CL_SUCCESS};
    clattn__arg_view(&f, q);

    if (L->algo == CLATTN_SOFTMAX_TILED_CPU) {
        cl_uint hk = (cl_uint)plan->kshape[1], nk = (cl_uint)plan->kshape[2];
        cl_uint npad = (cl_uint)plan->npad;
        cl_int vdir = v_in_place(plan, v), kdir = k_in_place(plan, k);
        if (!vdir && !plan->vp) /* the first call that packs V: its rows' scratch, kept */
            CLATTN_FORWARD(clattn__plan_scratch(&plan->base, plan->vp_bytes, "packed V rows",
                                                &plan->vp));
        if (!(kdir && vdir)) { /* the pack (of K, and of V unless in place) */
            if (!plan->kp) /* a K-direct plan's first call that packs: K's panels, kept */
                CLATTN_FORWARD(clattn__plan_scratch(&plan->base, plan->kp_bytes,
                                                    "packed K panels", &plan->kp));
            cl_mem vpk = vdir ? plan->kp : plan->vp; /* unused by the pack with V in place */
            clattn__args a = {plan->pack, 0, CL_SUCCESS};
            clattn__arg_view(&a, k);
            clattn__arg_view(&a, v);
            CLATTN_ARG(&a, hk);
            CLATTN_ARG(&a, nk);
            CLATTN_ARG(&a, npad);
            CLATTN_ARG(&a, plan->kp);
            CLATTN_ARG(&a, vpk);
            arg_pack_seq(&a, plan, q);
            CLATTN_ARG(&a, vdir);
            CLATTN_CL(a.err);
            size_t gp[2] = {plan->npad, plan->batch * plan->kshape[1]};
            CLATTN_FORWARD(clattn__seq_kernel(s, plan->pack, 2, gp, false, NULL));
        }
        /* K's panels, or any valid buffer where they are not read (K in place, none allocated) */
        cl_mem kpk = plan->kp ? plan->kp : k->buffer;
        CLATTN_ARG(&f, kpk);
        if (vdir) {
            clattn__arg_view(&f, v);
        } else { /* the packed rows, [B * Hk][npad][Dv rounded up to 16] */
            size_t dpad = clattn__div_up(plan->dv, 16) * 16;
            clattn_tensor packed = {plan->vp, 0, {0}, {hk * plan->npad * dpad, plan->npad * dpad,
                                                     dpad, 1}, plan->vpdt};
            clattn__arg_view(&f, &packed);
        }
        CLATTN_ARG(&f, npad);
        arg_tail(&f, plan, q, out, lse);
        if (plan->k_direct) { /* CPU_KDIR_ARGS */
            clattn__arg_view(&f, k);
            CLATTN_ARG(&f, kdir);
        }
        CLATTN_CL(f.err);
        /* GQA folding: G x Nq rows per work-item (one query block), B x Hk of them. */
        size_t items = clattn__div_up(plan->qshape[2] * plan->fold, L->tile_q / L->local_size);
        bool split = plan->splits > 1;
        size_t gl[2] = {clattn__div_up(items, L->local_size) * L->local_size,
                        bh / plan->fold * plan->splits};
        CLATTN_FORWARD(clattn__seq_kernel_local(s, plan->fwd, 2, gl, lo, !split,
                                                split ? NULL : event));
        if (split)
            CLATTN_FORWARD(enqueue_merge(plan, out, lse, s, event));
    } else {
        clattn__arg_view(&f, k);
        clattn__arg_view(&f, v);
        arg_tail(&f, plan, q, out, lse);
        CLATTN_CL(f.err);
        /* One work-group per tile_q rows (the old GPU kernel: tile_q = local_size); split-KV
         * (register-tiled kernel): S groups per rows' tile, then the merge as TILED_CPU's. */
        bool split = plan->splits > 1;
        size_t gl[2] = {clattn__div_up(plan->qshape[2], L->tile_q) * L->local_size,
                        bh * plan->splits};
        CLATTN_FORWARD(clattn__seq_kernel_local(s, plan->fwd, 2, gl, lo, !split,
                                                split ? NULL : event));
        if (split)
            CLATTN_FORWARD(enqueue_merge(plan, out, lse, s, event));
    }
cleanup:
    return status;
}

static clattn_status enqueue_naive(softmax_plan *plan, const clattn_tensor *q,
                                   const clattn_tensor *k, const clattn_tensor *v,
                                   const clattn_tensor *out, const clattn_tensor *lse,
                                   clattn__seq *s, cl_event *event)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t B = plan->batch, hq = plan->qshape[1], group = hq / plan->kshape[1];
    size_t nq = plan->qshape[2], nk = plan->kshape[2], d = plan->qshape[3], dv = plan->dv;
    cl_uint unq = (cl_uint)nq, unk = (cl_uint)nk;
    cl_float scale = plan->scale;
    cl_int causal = plan->desc.causal != 0, has_lse = lse != NULL;
    cl_int has_kl = plan->desc.key_lengths != NULL;
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset, zero = 0;
    cl_mem lbuf = lse ? lse->buffer : out->buffer;

    /* Half tensors: q, k, v cast into dense float32 scratch first; the GEMMs then see dense
     * float32 views of it, and a half out is computed densely and cast out at the end. */
    clattn_tensor dense[4];
    const clattn_tensor *io[4] = {q, k, v, out};
    if (plan->gather) { /* paged: both pools into dense float32 [B, Hk, Nk, D / Dv] */
        cl_uint hk = (cl_uint)plan->kshape[1], unk2 = (cl_uint)nk, ud = (cl_uint)d;
        cl_uint udv = (cl_uint)dv;
        clattn__args g = {plan->gather, 0, CL_SUCCESS};
        clattn__arg_view(&g, k);
        clattn__arg_view(&g, v);
        CLATTN_ARG(&g, hk);
        CLATTN_ARG(&g, unk2);
        CLATTN_ARG(&g, ud);
        CLATTN_ARG(&g, udv);
        CLATTN_ARG(&g, plan->staged[1]);
        CLATTN_ARG(&g, plan->staged[2]);
        arg_pack_seq(&g, plan, q); /* keys past each length gather as zeros */
        CLATTN_CL(g.err);
        size_t gg[2] = {nk, B * plan->kshape[1]};
        CLATTN_FORWARD(clattn__seq_kernel(s, plan->gather, 2, gg, false, NULL));
    }
    for (int i = 0; i < 4; i++) {
        bool gathered = plan->gather && (i == 1 || i == 2);
        if (plan->dt[i] == CLATTN_F32 && !gathered)
            continue;
        /* checked: the plan's shapes (the logical ones for gathered K/V) */
        const size_t *sh = i == 1 ? plan->kshape : i == 2 ? plan->vshape : io[i]->shape;
        dense[i] = clattn_tensor_make(plan->staged[i], sh[0], sh[1], sh[2], sh[3]);
        if (i < 3 && !gathered)
            CLATTN_FORWARD(clattn__cast_enqueue(s, plan->cast[i], io[i], plan->staged[i], 0,
                                                false, false, NULL));
        io[i] = &dense[i];
    }
    q = io[0];
    k = io[1];
    v = io[2];
    const clattn_tensor *final_out = out;
    out = io[3];
    bool cast_out = plan->dt[3] != CLATTN_F32;

    for (size_t b = 0; b < B; b++) {
        for (size_t h = 0; h < hq; h++) {
            size_t qo = q->offset + b * q->strides[0] + h * q->strides[1];
            size_t ko = k->offset + b * k->strides[0] + (h / group) * k->strides[1];
            size_t vo = v->offset + b * v->strides[0] + (h / group) * v->strides[1];
            size_t oo = out->offset + b * out->strides[0] + h * out->strides[1];
            CLATTN_FORWARD(clattn__seq_library(s, false, NULL));
            CLATTN_FORWARD(clattn__sgemm(ctx, true, nq, nk, d, 1.0f, q->buffer, qo,
                                         q->strides[2], k->buffer, ko, k->strides[2], 0.0f,
                                         plan->scores, 0, nk, s->evp));
            clattn__seq_done(s);
            cl_ulong loff = lse ? lse->offset + b * lse->strides[0] + h * lse->strides[1] : 0;
            cl_uint ub = (cl_uint)b, uh = (cl_uint)h;
            clattn__args a = {plan->softmax, 0, CL_SUCCESS};
            CLATTN_ARG(&a, plan->scores);
            CLATTN_ARG(&a, zero);
            CLATTN_ARG(&a, unq);
            CLATTN_ARG(&a, unk);
            CLATTN_ARG(&a, scale);
            CLATTN_ARG(&a, causal);
            CLATTN_ARG(&a, klbuf);
            CLATTN_ARG(&a, kloff);
            CLATTN_ARG(&a, has_kl);
            CLATTN_ARG(&a, ub);
            CLATTN_ARG(&a, lbuf);
            CLATTN_ARG(&a, loff);
            CLATTN_ARG(&a, has_lse);
            if (plan->optk) {
                CLATTN_ARG(&a, uh);
                arg_opts(&a, plan);
            }
            CLATTN_CL(a.err);
            size_t lo = plan->launch.local_size, gl = nq * lo;
            CLATTN_FORWARD(clattn__seq_kernel_local(s, plan->softmax, 1, &gl, &lo, false, NULL));
            bool last = b == B - 1 && h == hq - 1 && !cast_out;
            CLATTN_FORWARD(clattn__seq_library(s, last, last ? event : NULL));
            CLATTN_FORWARD(clattn__sgemm(ctx, false, nq, dv, nk, 1.0f, plan->scores, 0, nk,
                                         v->buffer, vo, v->strides[2], 0.0f, out->buffer, oo,
                                         out->strides[2], s->evp));
            clattn__seq_done(s);
        }
    }
    if (cast_out)
        CLATTN_FORWARD(clattn__cast_enqueue(s, plan->cast[3], final_out, plan->staged[3], 0, true,
                                            true, event));
cleanup:
    return status;
}

clattn_status clattn_softmax_plan_enqueue(clattn_plan *base, const clattn_tensor *q,
                                          const clattn_tensor *k, const clattn_tensor *v,
                                          const clattn_tensor *out, const clattn_tensor *lse,
                                          cl_uint num_wait, const cl_event *wait,
                                          cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_SOFTMAX, "softmax enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    softmax_plan *plan = (softmax_plan *)base;
    clattn_context *ctx = base->ctx;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "softmax enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(validate_io(plan, q, k, v, out, lse));
    if (plan->launch.algo == CLATTN_SOFTMAX_NAIVE)
        CLATTN_CHECK(!lse || lse->strides[2] == 1, CLATTN_UNSUPPORTED,
                     "naive algorithm: lse needs unit row stride");
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    if (plan->launch.algo == CLATTN_SOFTMAX_NAIVE)
        status = enqueue_naive(plan, q, k, v, out, lse, &s, event);
    else
        status = enqueue_tiled(plan, q, k, v, out, lse, &s, event);
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_softmax_enqueue(clattn_context *ctx, const clattn_softmax_desc *desc,
                                     const clattn_tensor *q, const clattn_tensor *k,
                                     const clattn_tensor *v, const clattn_tensor *out,
                                     const clattn_tensor *lse, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "softmax enqueue: ctx is NULL");
    if (!q || !k || !v || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "softmax enqueue: q, k, v and out are required");
    clattn_plan *plan = NULL;
    /* The element types come from the tensors (a desc of an older, shorter struct included). */
    clattn_softmax_desc d;
    clattn_status status = clattn__softmax_read_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    d.q_dtype = q->dtype;
    d.k_dtype = k->dtype;
    d.v_dtype = v->dtype;
    d.out_dtype = out->dtype;
    status = clattn_softmax_plan_create(ctx, &d, q->shape, k->shape, v->shape, &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_softmax_plan_enqueue(plan, q, k, v, out, lse, num_wait, wait, event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_softmax_host(clattn_context *ctx, const clattn_softmax_desc *desc,
                                  const size_t q_shape[4], const size_t k_shape[4],
                                  const size_t v_shape[4], const float *q, const float *k,
                                  const float *v, const int32_t *key_lengths, float *out,
                                  float *lse)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    cl_mem bq, bk, bv, bo, bl = NULL, bkl;
    clattn_softmax_desc d;
    clattn_plan *plan = NULL;
    cl_event done = NULL;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "softmax host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "softmax host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(clattn__softmax_read_desc(ctx, desc, &d));
    d.q_dtype = d.k_dtype = d.v_dtype = d.out_dtype = CLATTN_F32; /* host arrays are float32 */
    CLATTN_FORWARD(clattn__softmax_check_shapes(ctx, q_shape, k_shape, v_shape));
    size_t nq_el, nk_el, nv_el, no_el, nl_el;
    CLATTN_CHECK(clattn__mul_ok(q_shape[0] * q_shape[1], q_shape[2] * q_shape[3], &nq_el) &&
                     clattn__mul_ok(k_shape[0] * k_shape[1], k_shape[2] * k_shape[3], &nk_el) &&
                     clattn__mul_ok(v_shape[0] * v_shape[1], v_shape[2] * v_shape[3], &nv_el) &&
                     clattn__mul_ok(q_shape[0] * q_shape[1], q_shape[2] * v_shape[3], &no_el) &&
                     nq_el < SIZE_MAX / 4 && nk_el < SIZE_MAX / 4 && nv_el < SIZE_MAX / 4 &&
                     no_el < SIZE_MAX / 4,
                 CLATTN_SIZE_OVERFLOW, "softmax host: sizes overflow");
    nl_el = q_shape[0] * q_shape[1] * q_shape[2];
    if (key_lengths) {
        for (size_t b = 0; b < q_shape[0]; b++)
            CLATTN_CHECK(key_lengths[b] >= 0 && (size_t)key_lengths[b] <= k_shape[2],
                         CLATTN_INVALID_ARGUMENT, "key_lengths[%zu] = %d outside [0, %zu]", b,
                         (int)key_lengths[b], k_shape[2]);
        CLATTN_FORWARD(clattn__stage_in(&st, key_lengths, q_shape[0] * sizeof(int32_t),
                                        "key_lengths", &bkl));
        d.key_lengths = bkl;
        d.key_lengths_offset = 0;
    }
    CLATTN_FORWARD(clattn_softmax_plan_create(ctx, &d, q_shape, k_shape, v_shape, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, q, nq_el * sizeof(float), "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, k, nk_el * sizeof(float), "k", &bk));
    CLATTN_FORWARD(clattn__stage_in(&st, v, nv_el * sizeof(float), "v", &bv));
    CLATTN_FORWARD(clattn__stage_out(&st, out, no_el * sizeof(float), "output", &bo));
    if (lse)
        CLATTN_FORWARD(clattn__stage_out(&st, lse, nl_el * sizeof(float), "lse", &bl));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, q_shape[0], q_shape[1], q_shape[2], v_shape[3]);
    clattn_tensor tl = clattn_tensor_make(bl, q_shape[0], q_shape[1], q_shape[2], 1);
    CLATTN_FORWARD(clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, lse ? &tl : NULL, 0,
                                               NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
