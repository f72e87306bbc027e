/* Scheduling rules for Transformer-MGK (kernels_cl/mgk.cl).
 *
 * Softmax form: the same two families as softmax attention, chosen by the same rule
 * (clattn__softmax_family: CPU-like devices with wide vectors get TILED_CPU, everything else
 * TILED_GPU; see sched_softmax.c for the PoCL and llvmpipe measurements behind it).
 *
 * TILED_CPU: rows per work-item as softmax (4 up to D = 64, 2 up to 128, else 1), halved while the
 * live float16 vectors -- rows x ceil(D/16) accumulators plus R x step x rows score vectors --
 * exceed CLATTN__MGK_MAX_LIVE_VECTORS; two 16-key panels per step only for R = 1 and D <= 64 (where
 * softmax measured them faster), else one, so R = 2 keeps as many score vectors live as softmax.
 * One work-item per group on CPU devices (softmax's measurement: PoCL fastest with 1), 64 on GPUs
 * that land here.
 *
 * TILED_GPU: one row per work-item, the vendor family's work-group (lib/tune/defaults.c); the key
 * tile is the largest power of two <= 64 / R (at least 1; the private score array holds R x tile
 * floats, so it stays the size softmax's holds) whose R K tiles, R bias rows and V tile,
 * ((R + 1) D + R) x tile x 4 bytes, fit the local memory.
 *
 * Linear form: LINEAR_SCAN, work-group sizes left to the driver (its kernels have no __local
 * memory and no barriers). */
#include "sched.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

static size_t wg_limit(const clattn_device_info *dev)
{
    size_t lim = dev->max_work_group_size ? dev->max_work_group_size : 1;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    return lim;
}

static size_t floor_pow2(size_t x)
{
    size_t p = 1;
    while (p * 2 <= x)
        p *= 2;
    return p;
}

static void plan_cpu(const clattn_device_info *dev, const clattn__mgk_problem *p,
                     clattn__mgk_launch *out)
{
    size_t d = p->head_dim, r = p->components, dvec = (d + 15) / 16;
    unsigned rows = d <= 64 ? 4 : d <= 128 ? 2 : 1;
    unsigned step = d <= 64 && r == 1 ? 2 : 1;
    while (rows > 1 && rows * (dvec + r * step) > CLATTN__MGK_MAX_LIVE_VECTORS)
        rows /= 2;
    size_t wg = clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU ? 1 : 64;
    if (wg > wg_limit(dev))
        wg = floor_pow2(wg_limit(dev));
    out->algo = CLATTN_MGK_TILED_CPU;
    out->rows_per_item = rows;
    out->step_blocks = step;
    out->tile_kv = CLATTN__KEY_BLOCK * step;
    out->local_size = wg;
    out->local_mem_bytes = 0;
    snprintf(out->defines, sizeof out->defines,
             "-DMGK_FAMILY=1 -DMGK_HEAD_DIM=%zu -DMGK_R=%zu -DMGK_ROWS=%u -DMGK_STEP_BLOCKS=%u "
             "-DMGK_KEY_BLOCK=%d",
             d, r, rows, step, CLATTN__KEY_BLOCK);
}

static bool plan_gpu(const clattn_device_info *dev, const clattn__mgk_problem *p,
                     clattn__mgk_launch *out)
{
    size_t d = p->head_dim, r = p->components;
    size_t wg = clattn__default_gpu_wg(dev, d);
    if (wg > wg_limit(dev))
        wg = floor_pow2(wg_limit(dev));
    size_t tile = floor_pow2(64 / r > 0 ? 64 / r : 1);
    while (tile >= 1 && ((r + 1) * d + r) * tile * sizeof(float) > dev->local_mem_size)
        tile /= 2;
    if (tile == 0)
        return false;
    out->algo = CLATTN_MGK_TILED_GPU;
    out->rows_per_item = 1;
    out->step_blocks = 1;
    out->tile_kv = (unsigned)tile;
    out->local_size = wg;
    out->local_mem_bytes = ((r + 1) * d + r) * tile * sizeof(float);
    snprintf(out->defines, sizeof out->defines,
             "-DMGK_FAMILY=2 -DMGK_HEAD_DIM=%zu -DMGK_R=%zu -DMGK_TILE_KV=%zu -DMGK_WG_SIZE=%zu "
             "-DMGK_KEY_BLOCK=%d",
             d, r, tile, wg, CLATTN__KEY_BLOCK);
    return true;
}

clattn_status clattn__schedule_mgk(const clattn_device_info *dev, const clattn__mgk_problem *prob,
                                   clattn_mgk_algo requested, clattn__mgk_launch *out, char *why,
                                   size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (prob->head_dim < 1 || prob->head_dim > CLATTN__MAX_HEAD_DIM) {
        say(why, why_len, "head dimension must be in [1, 256]");
        return CLATTN_INVALID_SHAPE;
    }
    if (prob->components < 1 || prob->components > CLATTN_MGK_MAX_COMPONENTS) {
        say(why, why_len, "components per key must be in [1, 8]");
        return CLATTN_INVALID_SHAPE;
    }
    if (prob->linear) {
        if (requested != CLATTN_MGK_AUTO && requested != CLATTN_MGK_LINEAR_SCAN) {
            say(why, why_len, "the linear form has only LINEAR_SCAN");
            return CLATTN_INVALID_ARGUMENT;
        }
        out->algo = CLATTN_MGK_LINEAR_SCAN;
        out->rows_per_item = 1;
        out->step_blocks = 1;
        snprintf(out->defines, sizeof out->defines, "-DMGK_FAMILY=3 -DMGK_HEAD_DIM=%zu -DMGK_R=%zu",
                 prob->head_dim, prob->components);
        say(why, why_len, prob->causal ? "linear form: causal scan" : "linear form: S = psi^T V");
        return CLATTN_SUCCESS;
    }
    switch (requested) {
    case CLATTN_MGK_AUTO:
        if (clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU && plan_gpu(dev, prob, out)) {
            say(why, why_len, "device has real local memory: GPU tiles");
            return CLATTN_SUCCESS;
        }
        plan_cpu(dev, prob, out);
        say(why, why_len,
            clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU
                ? "CPU-like device with wide vectors: register blocking"
                : "local memory too small for one key of every tile: register blocking");
        return CLATTN_SUCCESS;
    case CLATTN_MGK_TILED_CPU:
        plan_cpu(dev, prob, out);
        say(why, why_len, "requested");
        return CLATTN_SUCCESS;
    case CLATTN_MGK_TILED_GPU:
        if (!plan_gpu(dev, prob, out)) {
            say(why, why_len, "local memory cannot hold one key of the R K tiles and V");
            return CLATTN_UNSUPPORTED;
        }
        say(why, why_len, "requested");
        return CLATTN_SUCCESS;
    default:
        say(why, why_len, "unknown algorithm for the softmax form");
        return CLATTN_INVALID_ARGUMENT;
    }
}
