/* Launch rules of routing attention (lib/ops/routing.c, kernels_cl/routing.cl).
 *
 * The kernels are the CPU recipe of DESIGN.md section 8: scores and attention 16 centroids or
 * keys at a time in one float16 vector (ROUTING_LANES, fixed by the kernels' vector types),
 * panels packed once per call, no __local memory, no barriers. On GPUs they are correct but not
 * tuned.
 *   - ROUTING_MAX_D = CLATTN__ROUTING_MAX_D (256): the row kernels hold a q or k row (and attend
 *     its Dv accumulators) in private arrays of this length. One value for every head dimension
 *     keeps one program per device (a PoCL build costs 0.5-0.7 s, DESIGN.md section 8).
 *   - ROUTING_ROW_LOCAL = 16: work-group size at most of the kernels with private rows (1 KiB per
 *     work-item at D = 256, 2 KiB for attend): CPU drivers keep a whole work-group's private
 *     memory on one thread's stack. The size is the largest power of two dividing the global
 *     size (N for scores/assign, w for attend), within the device's limits.
 * On GPU-like devices the attention inside the clusters runs the register-tiled
 * clattn_routing_attend_gpu instead (issue 12; see the tiled attend below). */
#include "sched.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ROUTING_LANES 16
#define ROUTING_ROW_LOCAL 16

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

/* The largest power of two <= want that divides n and fits the device. */
static size_t local_for(const clattn_device_info *dev, size_t n, size_t want)
{
    if (dev->max_work_group_size && dev->max_work_group_size < want)
        want = dev->max_work_group_size;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < want)
        want = dev->max_work_item_sizes[0];
    size_t l = 1;
    while (l * 2 <= want && n % (l * 2) == 0)
        l *= 2;
    return l;
}

/* ---- the tiled attend (kernels_cl/routing.cl clattn_routing_attend_gpu, issue 12) ----
 * For GPU-like devices (clattn__softmax_family: real local memory; rusticl counts) or when the
 * problem asks for it. Candidates, first fitting one the default:
 *   TX x TY, RM x RN = 8 x 8, 4 x 8 (Dv <= 128: 32 accumulators at Dv 64), 16 x 8, 4 x 4 (the
 *   accumulator halves per work-item at Dv 256), then 8 x 8, 4 x 4 and 8 x 4, 4 x 4 for small
 *   local memories / work-groups and for windows of at most 32 (64-key tiles: mostly padding).
 * Q and K's head dims are staged QC = min(D, 64), 32, 16 or 8 at a time (the largest whose tiles
 * fit: Q then stays in local memory for the whole group when QC >= D), V's VC = min(Dv rounded
 * up to TX, 64) at a time. The model: per head dim RM + RN local loads feed RM RN FMAs (8 x 4:
 * 0.67 FMA/byte), per key RM + VC/TX feed RM VC/TX (4 x 8: 0.67); oclgrind measures it
 * (tests/inst_counts_ops.sh, ctest inst_counts_routing). Not tuned on a GPU (none here). */
static const unsigned rg_cand[][4] = {{8, 8, 4, 8}, {16, 8, 4, 4}, {8, 8, 4, 4}, {8, 4, 4, 4}};

uint64_t clattn__attend_tiled_loops(uint64_t tiles, uint64_t nqc, uint64_t nvc, size_t br,
                                    size_t bc, size_t qc, size_t vc, size_t wg, unsigned tx,
                                    unsigned rm, unsigned rn, size_t ra)
{
    uint64_t per = nqc * ((br + bc) * qc / wg + 1 + qc) + nvc * (bc * vc / wg + 1 + bc) +
                   (uint64_t)rm * (tx + rn + ra) + 8;
    return tiles * per + br + (uint64_t)rm * (tx + ra);
}

static size_t rg_local_bytes(size_t br, size_t bc, size_t tx, size_t qc, size_t vc)
{
    size_t kt = qc * (bc + 1), vt = bc * vc;
    return sizeof(float) * (qc * br + (kt > vt ? kt : vt) + br * bc + br * tx) +
           sizeof(int) * br;
}

clattn_status clattn__routing_launch_tiled(const clattn_device_info *dev,
                                           const clattn__routing_problem *p, unsigned tx,
                                           unsigned ty, unsigned rm, unsigned rn,
                                           clattn__routing_launch *out, char *why,
                                           size_t why_len)
{
    bool p2 = tx && !(tx & (tx - 1)) && ty && !(ty & (ty - 1)) && rm && !(rm & (rm - 1)) && rn &&
              !(rn & (rn - 1));
    if (!p2 || tx > 64 || ty > 64 || rm > 8 || rn > 8) {
        say(why, why_len, "tile: tx, ty up to 64, rm, rn up to 8, all powers of two");
        return CLATTN_UNSUPPORTED;
    }
    size_t wg = (size_t)tx * ty, br = (size_t)ty * rm, bc = (size_t)tx * rn;
    size_t lim = dev->max_work_group_size ? dev->max_work_group_size : 1;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    if (wg > lim || wg > 1024) {
        say(why, why_len, "tile: work-group beyond the device limit");
        return CLATTN_UNSUPPORTED;
    }
    size_t vc = (p->dv + tx - 1) / tx * tx, vmax = 64 / tx * tx;
    if (vmax < tx)
        vmax = tx;
    if (vc > vmax)
        vc = vmax;
    size_t ra = (p->dv + vc - 1) / vc * (vc / tx);
    if ((size_t)rm * ra > CLATTN__ROUTING_GPU_REGS || (size_t)rm * rn > 32) {
        say(why, why_len, "tile: micro-tiles beyond the register budget");
        return CLATTN_UNSUPPORTED;
    }
    size_t qcs[] = {p->d < 64 ? p->d : 64, 32, 16, 8}, qc = 0;
    for (size_t i = 0; i < sizeof qcs / sizeof qcs[0] && !qc; i++)
        if (qcs[i] <= p->d && rg_local_bytes(br, bc, tx, qcs[i], vc) <= dev->local_mem_size)
            qc = qcs[i];
    if (!qc) {
        say(why, why_len, "tile: tiles beyond the local memory");
        return CLATTN_UNSUPPORTED;
    }
    /* Loop iterations per work-item, every loop of the kernel together (llvmpipe ends loops past
     * its cap, lib/sched/sched_lsh.c): per key tile the Q/K chunks' staging and d loops, the V
     * chunks' staging and key loops, the reductions; counted without the unrolling. */
    if (dev->loop_iteration_cap) {
        uint64_t nqc = (p->d + qc - 1) / qc, nvc = (p->dv + vc - 1) / vc;
        uint64_t tiles = (p->window + bc - 1) / bc;
        if (clattn__attend_tiled_loops(tiles, nqc, nvc, br, bc, qc, vc, wg, tx, rm, rn, ra) >
            dev->loop_iteration_cap) {
            say(why, why_len, "tile: the kernel's loops would pass the device's loop cap");
            return CLATTN_UNSUPPORTED;
        }
    }
    out->attend_tiled = 1;
    out->gpu_tx = tx;
    out->gpu_ty = ty;
    out->gpu_rm = rm;
    out->gpu_rn = rn;
    out->gpu_qc = (unsigned)qc;
    out->gpu_vc = (unsigned)vc;
    out->attend_rows = br;
    out->attend_local = wg;
    out->attend_local_bytes = rg_local_bytes(br, bc, tx, qc, vc);
    snprintf(out->attend_defines, sizeof out->attend_defines,
             "%s -DROUTING_GPU=1 -DRG_TX=%u -DRG_TY=%u -DRG_RM=%u -DRG_RN=%u -DRG_D=%zu "
             "-DRG_DV=%zu -DRG_QC=%zu -DRG_VC=%zu",
             out->defines, tx, ty, rm, rn, p->d, p->dv, qc, vc);
    return CLATTN_SUCCESS;
}

/* The tiled attend when the problem asks for it or the device is GPU-like and a candidate fits;
 * else the per-slot kernel (attend_tiled 0). A requested tile that does not fit: UNSUPPORTED. */
static clattn_status pick_attend(const clattn_device_info *dev, const clattn__routing_problem *p,
                                 clattn__routing_launch *out, char *why, size_t why_len)
{
    out->attend_tiled = 0;
    out->attend_defines[0] = '\0';
    bool want = p->attend_kernel == CLATTN__ROUTING_ATTEND_TILED ||
                (p->attend_kernel == CLATTN__ROUTING_ATTEND_AUTO &&
                 clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU);
    if (!want)
        return CLATTN_SUCCESS;
    if (p->gpu_tile[0])
        return clattn__routing_launch_tiled(dev, p, p->gpu_tile[0], p->gpu_tile[1],
                                            p->gpu_tile[2], p->gpu_tile[3], out, why, why_len);
    /* Windows of at most 32 keys (and slots): the 32-key tiles first (a 64-key tile would be
     * half padding, every FMA of it counted). */
    static const size_t order[2][4] = {{0, 1, 2, 3}, {2, 3, 0, 1}};
    const size_t *ord = order[p->window <= 32 ? 1 : 0];
    for (size_t i = 0; i < 4; i++) {
        size_t c = ord[i];
        if (c == 0 && p->dv > 128)
            continue; /* 4 x ceil(Dv / 8) accumulators: over the budget */
        if (clattn__routing_launch_tiled(dev, p, rg_cand[c][0], rg_cand[c][1], rg_cand[c][2],
                                         rg_cand[c][3], out, NULL, 0) == CLATTN_SUCCESS)
            return CLATTN_SUCCESS;
    }
    out->attend_tiled = 0; /* nothing fits: the per-slot kernel */
    out->attend_local = local_for(dev, p->window, ROUTING_ROW_LOCAL);
    return CLATTN_SUCCESS;
}

clattn_status clattn__schedule_routing(const clattn_device_info *dev,
                                       const clattn__routing_problem *p,
                                       clattn__routing_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (!p->batch || !p->heads_q || !p->heads_k || !p->n || !p->d || !p->dv || !p->clusters ||
        !p->window) {
        say(why, why_len, "every size must be >= 1");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->d > CLATTN__ROUTING_MAX_D || p->dv > CLATTN__ROUTING_MAX_D) {
        say(why, why_len, "head dims above 256");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->heads_q % p->heads_k != 0) {
        say(why, why_len, "query heads not a multiple of key heads");
        return CLATTN_INVALID_SHAPE;
    }
    out->lanes = ROUTING_LANES;
    out->max_d = CLATTN__ROUTING_MAX_D;
    out->rows_local = local_for(dev, p->n, ROUTING_ROW_LOCAL);
    out->attend_local = local_for(dev, p->window, ROUTING_ROW_LOCAL);
    snprintf(out->defines, sizeof out->defines, "-DROUTING_MAX_D=%u -DROUTING_LANES=%u",
             out->max_d, out->lanes);
    if (p->attend_kernel < CLATTN__ROUTING_ATTEND_AUTO ||
        p->attend_kernel > CLATTN__ROUTING_ATTEND_TILED) {
        say(why, why_len, "unknown attend kernel");
        return CLATTN_INVALID_ARGUMENT;
    }
    clattn_status st = pick_attend(dev, p, out, why, why_len);
    if (st != CLATTN_SUCCESS)
        return st;
    say(why, why_len, "");
    return CLATTN_SUCCESS;
}
