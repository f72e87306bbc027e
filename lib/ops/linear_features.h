/* Feature maps of the linear-attention family, shared by lib/ops/linear.c and the operators
 * built on it (kernelized attention with relative positional encoding): FAVOR+'s projection and
 * one kernel that writes phi(x) for every map. */
#ifndef CLATTN_LINEAR_FEATURES_H
#define CLATTN_LINEAR_FEATURES_H

#include "../core/internal.h"

#define CLATTN__LIN_MAX_D 256      /* head dims (LIN_MAX_D in kernels_cl/linear.cl) */
#define CLATTN__LIN_MAX_M 4096     /* FAVOR+ features */
#define CLATTN__LIN_MB 4           /* feature rows per chunk-state work-item (LIN_MB) */
#define CLATTN__LIN_MPAD 16        /* feature rows are padded to a multiple of this */
#define CLATTN__LIN_OPTIONS "-DLIN_MAX_D=256 -DLIN_CHUNK=64"

/* Feature count M for head dim d under a validated desc (d, or desc->features for FAVOR), and the
 * padded row length MP the feature buffers use. */
size_t clattn__linear_feature_dim(const clattn_linear_desc *desc, size_t d);
size_t clattn__linear_feature_stride(const clattn_linear_desc *desc, size_t d);

/* Validates the FAVOR fields of a desc for head dim d (M range, projection shape and values) and
 * fills w_host (malloc'd float32 [M][d], caller frees) with the caller's W or the drawn one. For
 * other maps *w_host is NULL. Status with a message on ctx. */
clattn_status clattn__linear_projection_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                             size_t d, float **w_host);

/* The projection on the device in the layout clattn__linear_features reads (W^T, [D][M]; a
 * read-only buffer made from the host copy, no queue involved), or *w = NULL for other maps. The
 * caller releases it. */
clattn_status clattn__linear_projection(clattn_context *ctx, const clattn_linear_desc *desc,
                                        size_t d, cl_mem *w);

/* Enqueues phi(x) for x [B, H, N, D] (any strides) into f, contiguous float32 [B*H][N][MP]
 * (MP = clattn__linear_feature_stride; padding features are 0). stab selects the stabiliser for
 * FAVOR (other maps ignore it):
 *   0  per row: queries, and keys whose log-scales are written to l ([B*H][N], may be NULL for
 *      queries) -- true phi(k_j) = f_j * exp(l_j);
 *   1  one per (b, h): keys rescaled to the largest row scale of their head (Performer's
 *      non-causal stabiliser), so true phi(k_j) = f_j * exp(l_max) for every j; l, if not NULL,
 *      receives the per-row scales before the rescale.
 * w is the projection from clattn__linear_projection (NULL unless FAVOR). The first command waits
 * for the wait list; event (may be NULL) marks the last. */
clattn_status clattn__linear_features(clattn_context *ctx, const clattn_linear_desc *desc,
                                      cl_mem w, const clattn_tensor *x, int stab, cl_mem f,
                                      cl_mem l, cl_uint num_wait, const cl_event *wait,
                                      cl_event *event);

#endif
