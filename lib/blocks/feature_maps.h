/* Feature maps of the kernelized attention family, a building block shared by linear attention
 * (lib/ops/linear.c) and RPE attention: FAVOR+'s projection (drawn on the host, uploaded once by
 * a plan) and the kernels of kernels_cl/blocks_features.cl that write phi(x) for every map.
 *
 * A plan bakes a clattn__features (kernels created once, W uploaded once) and enqueues it on its
 * command sequence as often as it likes; nothing is created or looked up per enqueue. */
#ifndef CLATTN_BLOCKS_FEATURES_H
#define CLATTN_BLOCKS_FEATURES_H

#include "../core/internal.h"

#define CLATTN__FEATURES_MAX_D 256  /* head dims */
#define CLATTN__FEATURES_MAX_M 4096 /* FAVOR+ features */
#define CLATTN__FEATURES_MPAD 16    /* feature rows are padded to a multiple of this */

/* Feature count M for head dim d under a validated desc (d, or desc->features for FAVOR), and the
 * padded row length MP the feature buffers use. */
size_t clattn__features_count(const clattn_linear_desc *desc, size_t d);
size_t clattn__features_stride(const clattn_linear_desc *desc, size_t d);

/* Validates the FAVOR fields of a desc for head dim d (projection shape and values) and fills
 * w_host (malloc'd float32 [M][d], caller frees) with the caller's W or the one drawn from its
 * seed. For other maps *w_host is NULL. Status with a message on ctx. */
clattn_status clattn__features_projection_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                               size_t d, float **w_host);

/* The feature kernels of one (map, head dim), owned by a plan. */
typedef struct clattn__features {
    int fmap;
    size_t d, m, mp;
    float xs, fs;        /* FAVOR: x' = x * xs, features scaled by fs = 1/sqrt(M) */
    cl_mem wt;           /* FAVOR: W^T [D][M] on the device (owned by the plan) */
    cl_kernel map;       /* element-wise maps (float32 input) */
    cl_kernel proj, exp; /* FAVOR (proj: float32 input) */
    /* map / proj reading inputs of another element type, by clattn_dtype ([0] unused: map and
     * proj); made by clattn__features_bake_typed for the types asked for. */
    cl_kernel map_dt[3], proj_dt[3];
    cl_kernel head_max, head_rescale; /* FAVOR with one scale per head (stab 1) */
    size_t local;        /* 1: the element-wise kernels run one item per group (CPU family) */
    int one_item;        /* every kernel runs one item per group (loop-capped devices) */
} clattn__features;

/* Creates the kernels of desc's map for head dim d in `plan` (and uploads W^T from w_host, FAVOR
 * only; w_host from clattn__features_projection_host). head_scale: also the kernels of stab 1.
 * local / one_item: the launch's work-group rules (clattn__linear_launch's feature_local and
 * one_item_groups). chosen_by is recorded with each kernel. */
clattn_status clattn__features_bake(clattn_plan *plan, const clattn_linear_desc *desc, size_t d,
                                    const float *w_host, int head_scale, size_t local,
                                    int one_item, const char *chosen_by, clattn__features *f);

/* As clattn__features_bake, for inputs of the n element types xdts (e.g. {q's, k's}): the
 * input-reading kernels are made once per distinct type (float32 ones only when asked for). */
clattn_status clattn__features_bake_typed(clattn_plan *plan, const clattn_linear_desc *desc,
                                          size_t d, const float *w_host, int head_scale,
                                          size_t local, int one_item, const char *chosen_by,
                                          const clattn_dtype *xdts, int n, clattn__features *f);

/* Enqueues phi(x) for x [B, H, N, D] (any strides; x->dtype picks the kernel, which must have
 * been baked for it) (any strides) into out, contiguous float32 [B*H][N][MP]
 * (padding features 0), on the command sequence s. stab selects the stabiliser for FAVOR (other
 * maps ignore it and write l = 0):
 *   0  per row: true phi(x_j) = out_j * exp(l_j); l ([B*H][N]) may be NULL;
 *   1  one per (b, h): rows rescaled to the largest row scale of their head (Performer's
 *      non-causal stabiliser), so true phi(x_j) = out_j * exp(lmax[bh]) for every j; l (required)
 *      receives the per-row scales before the rescale and lmax ([B*H]) the head scales.
 * last / event: as for clattn__seq_kernel (the last command returns the caller's event). */
clattn_status clattn__features_enqueue(const clattn__features *f, clattn__seq *s,
                                       const clattn_tensor *x, int stab, cl_mem out, cl_mem l,
                                       cl_mem lmax, bool last, cl_event *event);

#endif
