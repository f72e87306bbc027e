/* Routing attention's plan, shared by the operator (lib/ops/routing.c) and its centroid helpers
 * (lib/ops/routing_centroids.c). */
#ifndef CLATTN_OPS_ROUTING_H
#define CLATTN_OPS_ROUTING_H

#include "../blocks/sort.h"
#include "../core/internal.h"
#include "../sched/sched.h"

/* A baked routing plan: shapes, launch, kernels (routing.cl and the sort blocks) and scratch.
 * One scratch set serves the attention, the centroid update and the k-means++ upload (the
 * sequence, or on out-of-order queues the caller, orders the plan's enqueues), each buffer sized
 * for the largest of its uses. */
typedef struct clattn__routing_plan {
    clattn_plan base;
    clattn_routing_desc desc;
    clattn__routing_problem prob; /* B, Hq, Hk, N, D, Dv, C, w (resolved), causal */
    clattn__routing_launch launch;
    size_t qshape[4], kshape[4], vshape[4], mushape[4];
    size_t wp, dvp, cb; /* w and Dv rounded up to the lanes, centroid panels per head */
    float scale;
    cl_kernel pack_centroids, scores, pack_keys, attend, store, store_f32, assign, ema;
    clattn__sort_kernels blocks;
    clattn__sort_scratch ws;
    cl_mem mp;     /* centroid panels [Hk][cb][D][lanes] */
    cl_mem big;    /* scores; then the dense outputs | update: normalised rows | init: centroids */
    cl_mem sel;    /* top-w selections | update: assignments */
    cl_mem kp;     /* key panels | update: cluster means */
    cl_mem vp;     /* value rows */
    cl_mem kpos;   /* key positions | update: cluster counts */
    cl_mem slots;  /* per-cluster outputs */
    cl_mem dest;   /* their destinations */
} clattn__routing_plan;

/* Validates the views of a call on the plan: q and k (and v and an input centroid view when not
 * NULL) against the plan's shapes and types (centroids float32), and the output `out` (shape
 * out_shape, type out_dtype) one-to-one and overlapping no input. */
clattn_status clattn__routing_check_io(const clattn__routing_plan *p, const clattn_tensor *q,
                                       const clattn_tensor *k, const clattn_tensor *v,
                                       const clattn_tensor *mu_in, const clattn_tensor *out,
                                       const char *out_name, const size_t out_shape[4],
                                       clattn_dtype out_dtype);

/* clattn_routing_pack_centroids: the centroid view into the plan's panels. */
clattn_status clattn__routing_pack_centroids(clattn__seq *s, const clattn__routing_plan *p,
                                             const clattn_tensor *mu);

/* The arguments the scores and assign kernels share, set on a's kernel from its current index:
 * q, k, the packed centroids, B, Hq, Hk, N, D, C, the centroid block and the row scratch `big`.
 * Their launch: rows_sizes (global {N, B x (Hq + Hk)}, local {rows_local, 1}). */
void clattn__routing_rows_args(clattn__args *a, const clattn__routing_plan *p,
                               const clattn_tensor *q, const clattn_tensor *k);
void clattn__routing_rows_sizes(const clattn__routing_plan *p, size_t global[2], size_t local[2]);

/* clattn_routing_store (the output's type) or, with f32, clattn_routing_store_f32: dense
 * [bh * n][d] (bh = batch x `heads` rows of n) into a strided view. */
clattn_status clattn__routing_store(clattn__seq *s, const clattn__routing_plan *p, bool f32,
                                    cl_mem dense,
                                    size_t bh, size_t heads, size_t n, size_t d,
                                    const clattn_tensor *out, bool last, cl_event *event);

#endif
