/* The exact softmax attention plan, shared by lib/ops/softmax.c (descriptor, validation, options,
 * launch choice, plan creation, schedule) and lib/ops/softmax_enqueue.c (the commands one
 * enqueue makes, and the plan-less and host entry points built on the plan). */
#ifndef CLATTN_OPS_SOFTMAX_PLAN_H
#define CLATTN_OPS_SOFTMAX_PLAN_H

#include "../core/internal.h"
#include "../sched/sched.h"

typedef struct softmax_plan {
    clattn_plan base;
    clattn_softmax_desc desc; /* key_lengths retained */
    /* q, out: the caller's shapes (packed {1, Hq, T, D} with q_offsets); k, v: the logical
     * {B, Hk, Nk, D} (paged: Nk = max_pages * page_size), kin/vin the caller's (the pools). */
    size_t qshape[4], kshape[4], vshape[4], oshape[4], kin[4], vin[4];
    size_t batch; /* sequences B */
    clattn__softmax_launch launch;
    float scale;
    size_t npad;         /* keys padded to a multiple of the key block (TILED_CPU) */
    cl_kernel pack, fwd; /* tiled */
    cl_kernel softmax;   /* naive */
    cl_mem kp, vp;       /* packed K panels and V rows (TILED_CPU) */
    clattn_dtype vpdt;   /* the packed V rows' element type (TILED_CPU) */
    size_t vp_bytes;     /* their size: vp is allocated by the first enqueue that packs V */
    bool pack_v_always;  /* CLATTN_SOFTMAX_V_DIRECT=0 when the plan was made (v_in_place) */
    /* TILED_CPU reading K's rows in place (-DSOFTMAX_K_DIRECT=1; k_in_place in softmax_enqueue.c):
     * the kernels are built for it; kp (kp_bytes) is then allocated by the first enqueue that
     * packs K after all (a K without unit stride over D), else by the plan. */
    bool k_direct;
    size_t kp_bytes;
    cl_mem scores;       /* Nq x Nk scores of one head (NAIVE) */
    /* Element types q, k, v, out (the desc's). NAIVE with half tensors: cast kernels and dense
     * float32 scratch for each half one (CLBlast takes float32); NULL for f32 tensors. */
    clattn_dtype dt[4];
    cl_kernel cast[4];
    cl_mem staged[4];
    /* Options (issue 16): SOFTMAX_OPT_* bits of kernels_cl/softmax_opts.clh, 0 = none (the plain
     * kernels). The desc copy holds the option buffers retained; bias, mask and block mask are
     * kept as views with broadcast axes at stride 0. slopes: the caller's buffer (retained with
     * the desc) or plan scratch holding the standard slopes. dummy: a small plan buffer bound to
     * every absent option pointer (kernels never read it beyond its size). */
    unsigned opts;
    /* The plan's kernels are the options build (-DSOFTMAX_OPTS=1, arguments of arg_opts): with
     * options, and for TILED_CPU always (see optk_rule). */
    bool optk;
    size_t dv;
    clattn_tensor bias, mask, bmask;
    clattn_tensor bt; /* block table (paged K/V), buffer NULL without */
    cl_kernel gather; /* NAIVE with paged K/V: pools into dense float32 staged[1], staged[2] */
    cl_mem slopes, dummy;
    size_t slopes_off;
    /* Split-KV (TILED_CPU, issue 17): keys in `splits` ranges of split_keys packed keys, partial
     * rows in part_acc / part_ml, merged by `merge`; splits = 1: the unsplit kernel. */
    unsigned splits, split_keys;
    /* GQA folding (TILED_CPU, issue 17): query heads per work-item (-DSOFTMAX_GQA_FOLD), 1 = none. */
    unsigned fold;
    cl_kernel merge;
    cl_mem part_acc, part_ml;
} softmax_plan;

/* Copies the caller's desc, honouring struct_size so older callers with a shorter struct work. */
clattn_status clattn__softmax_read_desc(clattn_context *ctx, const clattn_softmax_desc *in,
                                        clattn_softmax_desc *out);

/* Checks the caller's q, k, v shapes: every entry >= 1, k and v alike but for D, q's batch and
 * head dim those of k, query heads a multiple of key heads, head dims and sizes in range. */
clattn_status clattn__softmax_check_shapes(clattn_context *ctx, const size_t q[4],
                                           const size_t k[4], const size_t v[4]);

#endif
