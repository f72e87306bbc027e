/* Scheduling rules for linear attention (pure: no OpenCL calls; tests/test_sched_linear.c runs
 * them on made-up devices).
 *
 * Form: the non-causal form without momentum can run as clattn's fused kernels (chunk sums, a
 * scan, register-blocked output rows) or as two strided-batched CLBlast SGEMMs; AUTO takes GEMM
 * on GPU-like devices, where CLBlast's tiles beat the fused kernels (H100: 2.2-3x), and FUSED on
 * CPU-like ones, where the fused kernels win (PoCL: 2.4-2.6x). "GPU-like" and "CPU-like" are the
 * device families of the softmax scheduler (clattn__softmax_family: CPU-like = CPU class or
 * emulated local memory, with native float vectors of 4 or more).
 *
 * Register blocking (kernels_cl/linear.cl): LINEAR_RB query rows times LINEAR_EB float16 value
 * blocks per output work-item, LINEAR_MB feature rows per chunk-state work-item, causal chunks of
 * LINEAR_CHUNK keys (the in-chunk masked block). Defaults 8 x 2, 8 and 64: the shapes the kernels
 * were written and measured with on PoCL (feature rows 8 since the fused non-causal form computes
 * phi(k) in the chunk-state items: 8 rows x 2 blocks is 16 float16 accumulators, and half the
 * items of 4 rows, so half the exp calls per key); the tuner may try the others.
 *
 * Output rows on GPU-like devices: the non-causal forms of the FUSED algorithm run the
 * register-tiled clattn_linear_out_tiled (local-memory tiles, register micro-tiles; see "the tiled
 * output kernel" below) instead of the per-row kernels.
 *
 * Work-groups: on the CPU family a register-blocked kernel runs one work-item per group, so PoCL
 * does not also vectorise across work-items; elsewhere the driver chooses.
 *
 * Quirks (clattn_device_info, filled by lib/core/context.c): on a device with a loop_iteration_cap
 * (llvmpipe: 65535 iterations counted over a whole work-group) or a SIMT-style CPU driver, every
 * kernel runs one item per group; FAVOR with many features breaks the fused kernels there
 * (measured on rusticl/llvmpipe, cap 65535: exact up to M = 896, wrong sums from M = 1008), so
 * M is limited in proportion to the cap; and the sequential adaptive-momentum scan is split into
 * launches of a bounded number of tokens (30000 loop iterations per launch with the 65535 cap,
 * the split used since the scan was written). */
#include "sched.h"
#include "../blocks/feature_maps.h" /* the feature padding (no OpenCL calls are made here) */

#include <stdbool.h>
#include <stdio.h>
#include <string.h>


/* The defaults of kernels_cl/linear.cl's register blocking. */
#define LIN_DEFAULT_RB 8
#define LIN_DEFAULT_EB 2
#define LIN_DEFAULT_MB 8

/* Private-memory bounds of the blocked kernels (float16 accumulators, two sets with momentum):
 * beyond them the accumulators spill out of the vector registers. */
#define LIN_MAX_OUT_ACC 32  /* LINEAR_RB * LINEAR_EB */
#define LIN_MAX_STATE_ACC 16 /* LINEAR_MB * LINEAR_EB */

/* Loop-capped devices (see the file comment): measured with the cap below. */
#define LIN_CAP_MEASURED 65535u
#define LIN_CAP_MAX_M_MEASURED 896u       /* largest FAVOR M computed exactly there */
#define LIN_CAP_ADAPTIVE_BUDGET 30000u    /* loop iterations per adaptive-scan launch there */

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

static bool capped(const clattn_device_info *dev)
{
    return dev->loop_iteration_cap != 0 || dev->simt_cpu;
}

static bool cpu_family(const clattn_device_info *dev)
{
    return clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU;
}

size_t clattn__linear_chunk(const clattn_device_info *dev, size_t nk, size_t bh, int causal)
{
    if (causal)
        return CLATTN__LIN_CAUSAL_CHUNK;
    /* A CPU needs a few tasks per core; a GPU's work-items are the (columns x features) of each
     * task, so a few tasks per compute unit fill it. */
    size_t cu = dev->compute_units ? dev->compute_units : 1, parallel = 32 * cu;
    size_t want = (parallel + (bh ? bh : 1) - 1) / (bh ? bh : 1);
    if (want > 256)
        want = 256;
    size_t c = (nk + want - 1) / want;
    return c < CLATTN__LIN_CAUSAL_CHUNK ? CLATTN__LIN_CAUSAL_CHUNK : c;
}

/* Non-causal chunks on the CPU family: the chunk-state work-items of one chunk (value blocks x
 * feature rows, consecutive work-groups) each stream the chunk's key rows (features and values);
 * a chunk whose rows fit a core's L2 is read from memory once and from cache by the others.
 * 256 KiB (512 keys at D = Dv = 64) is a quarter of the 1 MiB L2 of the Xeon these kernels were
 * written on (PoCL, AVX-512): set from that size, not yet from a timing (the machine was shared;
 * the tuner's chunk candidates, x2 and /2, cover it). A 512-key chunk's sums (MP x DW floats, 20
 * KiB at D64) add about 8% to the key rows' bytes. The chunk count stays within LIN_MAX_CHUNKS. */
#define LIN_CPU_CHUNK_BYTES (256u * 1024u)
#define LIN_MAX_CHUNKS 256u

size_t clattn__linear_cpu_chunk(const clattn_device_info *dev, const clattn__linear_problem *p)
{
    size_t bh_kv = p->bh_kv ? p->bh_kv : p->bh;
    size_t c = clattn__linear_chunk(dev, p->nk, bh_kv, 0);
    if (!cpu_family(dev))
        return c;
    size_t row = (round_up(p->m, CLATTN__FEATURES_MPAD) + round_up(p->dv, 16)) * sizeof(float);
    size_t fit = LIN_CPU_CHUNK_BYTES / row, least = (p->nk + LIN_MAX_CHUNKS - 1) / LIN_MAX_CHUNKS;
    fit = fit < least ? least : fit;
    fit = fit < CLATTN__LIN_CAUSAL_CHUNK ? CLATTN__LIN_CAUSAL_CHUNK : fit;
    return fit < c ? fit : c;
}

/* The largest FAVOR M the fused kernels compute correctly on the device (0: no limit). */
static size_t max_features(const clattn_device_info *dev)
{
    if (!dev->loop_iteration_cap)
        return 0;
    uint64_t m = (uint64_t)LIN_CAP_MAX_M_MEASURED * dev->loop_iteration_cap / LIN_CAP_MEASURED;
    m = m / CLATTN__FEATURES_MPAD * CLATTN__FEATURES_MPAD;
    return m ? (size_t)m : CLATTN__FEATURES_MPAD;
}

/* Tokens per adaptive-scan launch on a loop-capped device (0: the whole sequence at once). */
static size_t adaptive_span(const clattn_device_info *dev, const clattn__linear_problem *p)
{
    if (!dev->loop_iteration_cap || p->momentum != CLATTN_LINEAR_MOMENTUM_ADAPTIVE)
        return 0;
    size_t mp = round_up(p->m, CLATTN__FEATURES_MPAD), dvp = round_up(p->dv, 16);
    uint64_t budget = (uint64_t)LIN_CAP_ADAPTIVE_BUDGET * dev->loop_iteration_cap /
                      LIN_CAP_MEASURED;
    size_t bh_kv = p->bh_kv ? p->bh_kv : p->bh, group = p->bh / bh_kv;
    size_t per_token = 3 * mp * dvp + group * mp * (p->dv + 1);
    return per_token < budget ? (size_t)(budget / per_token) : 1;
}

static bool gemm_form(const clattn__linear_problem *p)
{
    return !p->causal && p->momentum == CLATTN_LINEAR_MOMENTUM_NONE;
}

static clattn_status check_problem(const clattn_device_info *dev, const clattn__linear_problem *p,
                                   char *why, size_t why_len)
{
    if (p->d < 1 || p->d > CLATTN__FEATURES_MAX_D || p->dv < 1 ||
        p->dv > CLATTN__FEATURES_MAX_D) {
        say(why, why_len, "head dims D and Dv must be in [1, 256]");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->m < 1 || p->m > CLATTN__FEATURES_MAX_M || p->bh < 1 || p->nq < 1 || p->nk < 1) {
        say(why, why_len, "empty problem or more than 4096 features");
        return CLATTN_INVALID_SHAPE;
    }
    size_t lim = max_features(dev);
    if (p->favor && lim && p->m > lim) {
        if (why && why_len)
            snprintf(why, why_len,
                     "FAVOR features %zu > %zu are not supported on this device (its loop "
                     "iteration cap breaks the fused kernels beyond)",
                     p->m, lim);
        return CLATTN_UNSUPPORTED;
    }
    return CLATTN_SUCCESS;
}

static void fill_defines(clattn__linear_launch *L)
{
    int w = snprintf(L->defines, sizeof L->defines,
                     "-DLINEAR_CHUNK=%u -DLINEAR_RB=%u -DLINEAR_EB=%u -DLINEAR_MB=%u",
                     L->block_chunk, L->rows, L->value_blocks, L->feature_rows);
    if (L->out_tiled && w > 0 && (size_t)w < sizeof L->defines)
        snprintf(L->defines + w, sizeof L->defines - (size_t)w,
                 " -DLINEAR_OT_TX=%u -DLINEAR_OT_TY=%u -DLINEAR_OT_RM=%u -DLINEAR_OT_RN=%u",
                 L->ot_tx, L->ot_ty, L->ot_rm, L->ot_rn);
}

/* ---- the tiled output kernel (kernels_cl/linear_fused.cl clattn_linear_out_tiled, issue 12) --
 * On GPU-like devices (clattn__softmax_family: real local memory; rusticl counts) the non-causal
 * output rows of the FUSED algorithm -- the fused form with momentum (the non-causal default
 * there without momentum is CLBlast's GEMM), FAVOR's materialised form, the adaptive form's
 * rows, and any FUSED plan the caller or tuner asks for -- run the register-tiled kernel; CPU
 * devices, the causal form and decoding steps keep the per-row kernels. Candidates
 * (TX x TY work-items, RM x RN micro-tile; BR = TY RM rows, BN = TX RN value columns), the first
 * that fits the device the default (BN 32 first where Dv <= 32, the tile's columns past Dv being
 * wasted FMAs):
 *   16 x 8, 8 x 4:  BR 64, BN 64, 128 items, 32 accumulators; per feature 12 local loads feed 32
 *                   FMAs (0.67 FMA/byte of local loads; ~0.6 with the global staging loads)
 *   16 x 16, 4 x 4: BR 64, BN 64, 256 items, 16 accumulators (0.5 FMA/byte of local loads)
 *   8 x 8, 8 x 8:   BR 64, BN 64, 64 items, 64 accumulators (1.0)
 *   8 x 16, 4 x 4:  BR 64, BN 32, 128 items (0.5)
 *   16 x 16, 8 x 8: BR 128, BN 128, 256 items, 64 accumulators (1.0; Dv >= 128)
 *   8 x 8, 4 x 4:   BR 32, BN 32, 64 items (small work-groups / local memories)
 * Momentum costs nothing in the inner loop: C = coef (A - mu B) is formed while staging. Set by
 * that model and oclgrind's counts (tests/inst_counts_ops.sh, ctest inst_counts_linear), not by a
 * GPU timing (none here): the tuner's candidates include them all. */
static const unsigned ot_cand[][4] = {{16, 8, 8, 4}, {16, 16, 4, 4}, {8, 8, 8, 8},
                                      {8, 16, 4, 4}, {16, 16, 8, 8}, {8, 8, 4, 4}};
#define OT_NCAND (sizeof ot_cand / sizeof ot_cand[0])
#define OT_MAX_ACC 64u /* rm * rn: float accumulators per work-item */
#define OT_KC 16u      /* features per stage */

size_t clattn__linear_out_tile_local_bytes(unsigned tx, unsigned ty, unsigned rm, unsigned rn)
{
    size_t br = (size_t)ty * rm, bn = (size_t)tx * rn;
    return sizeof(float) * (OT_KC * (br + 1) + OT_KC * bn + OT_KC + br);
}

/* Loop iterations per work-item, every loop of the kernel together and counted without the
 * unrolling (llvmpipe's cap, see the file comment): per 16 features the two staging loops, the
 * normaliser's and the micro-tile's feature loops; then the epilogue. */
static uint64_t ot_loops(size_t mp, size_t wg, size_t br, size_t bn, unsigned rm, unsigned rn)
{
    uint64_t per = (br * OT_KC + wg - 1) / wg + (bn * OT_KC + wg - 1) / wg + 2 * OT_KC + 4;
    return (mp / OT_KC) * per + (uint64_t)rm * rn + rm + 8;
}

static bool is_p2(unsigned x) { return x && !(x & (x - 1)); }

clattn_status clattn__linear_launch_out_tile(const clattn_device_info *dev,
                                             const clattn__linear_problem *p, unsigned tx,
                                             unsigned ty, unsigned rm, unsigned rn,
                                             clattn__linear_launch *launch, char *why,
                                             size_t why_len)
{
    if (tx == 0) {
        launch->out_tiled = 0;
        launch->ot_tx = launch->ot_ty = launch->ot_rm = launch->ot_rn = 0;
        launch->out_local = 0;
        fill_defines(launch);
        return CLATTN_SUCCESS;
    }
    if (launch->algo != CLATTN_LINEAR_FUSED || p->causal) {
        say(why, why_len, "the tiled output kernel serves the FUSED algorithm's non-causal forms");
        return CLATTN_UNSUPPORTED;
    }
    if (!is_p2(tx) || !is_p2(ty) || !is_p2(rm) || !is_p2(rn) || tx > 32 || ty > 32 || rm > 8 ||
        rn > 8 || rm * rn > OT_MAX_ACC) {
        say(why, why_len, "output tile: tx, ty up to 32, rm, rn up to 8, all powers of two");
        return CLATTN_UNSUPPORTED;
    }
    size_t wg = (size_t)tx * ty, br = (size_t)ty * rm, bn = (size_t)tx * rn;
    size_t lim = dev->max_work_group_size ? dev->max_work_group_size : 1;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    if (wg > lim || wg > 1024) {
        say(why, why_len, "output tile: work-group beyond the device limit");
        return CLATTN_UNSUPPORTED;
    }
    if (clattn__linear_out_tile_local_bytes(tx, ty, rm, rn) > dev->local_mem_size) {
        say(why, why_len, "output tile: tiles beyond the local memory");
        return CLATTN_UNSUPPORTED;
    }
    size_t mp = round_up(p->m, CLATTN__FEATURES_MPAD);
    if (dev->loop_iteration_cap &&
        ot_loops(mp, wg, br, bn, rm, rn) > dev->loop_iteration_cap) {
        say(why, why_len, "output tile: the kernel's loops would pass the device's loop cap");
        return CLATTN_UNSUPPORTED;
    }
    launch->out_tiled = 1;
    launch->ot_tx = tx;
    launch->ot_ty = ty;
    launch->ot_rm = rm;
    launch->ot_rn = rn;
    launch->out_local = wg;
    fill_defines(launch);
    return CLATTN_SUCCESS;
}

/* The output kernel of a new launch: the problem's request (CLATTN_LINEAR_OUT_KERNEL), else the
 * tiled kernel's first fitting candidate on GPU-like devices for the FUSED non-causal forms, else
 * the per-row kernels. */
static clattn_status pick_out(const clattn_device_info *dev, const clattn__linear_problem *p,
                              clattn__linear_launch *L, char *why, size_t why_len)
{
    clattn__linear_launch_out_tile(dev, p, 0, 0, 0, 0, L, NULL, 0);
    bool fits = L->algo == CLATTN_LINEAR_FUSED && !p->causal;
    if (!fits || p->out_kernel == 1 || (p->out_kernel == 0 && cpu_family(dev)))
        return CLATTN_SUCCESS;
    if (p->out_kernel == 2 && p->out_tile[0])
        return clattn__linear_launch_out_tile(dev, p, p->out_tile[0], p->out_tile[1],
                                              p->out_tile[2], p->out_tile[3], L, why, why_len);
    bool narrow = p->dv <= 32;
    for (size_t k = 0; k < 2; k++) /* BN 32 first where Dv <= 32 */
        for (size_t c = 0; c < OT_NCAND; c++) {
            bool bn32 = ot_cand[c][0] * ot_cand[c][3] <= 32;
            if ((k == 0) != (narrow == bn32))
                continue;
            if (clattn__linear_launch_out_tile(dev, p, ot_cand[c][0], ot_cand[c][1],
                                               ot_cand[c][2], ot_cand[c][3], L, NULL,
                                               0) == CLATTN_SUCCESS)
                return CLATTN_SUCCESS;
        }
    return CLATTN_SUCCESS; /* nothing fits: the per-row kernels */
}

clattn_status clattn__linear_launch_from(const clattn_device_info *dev,
                                         const clattn__linear_problem *p, int algo, size_t chunk,
                                         unsigned block_chunk, unsigned rows,
                                         unsigned value_blocks, unsigned feature_rows,
                                         size_t local_size, clattn__linear_launch *out, char *why,
                                         size_t why_len)
{
    memset(out, 0, sizeof *out);
    clattn_status st = check_problem(dev, p, why, why_len);
    if (st != CLATTN_SUCCESS)
        return st;
    if (algo != CLATTN_LINEAR_FUSED && algo != CLATTN_LINEAR_GEMM) {
        say(why, why_len, "algorithm must be FUSED or GEMM");
        return CLATTN_INVALID_ARGUMENT;
    }
    if (algo == CLATTN_LINEAR_GEMM && !gemm_form(p)) {
        say(why, why_len, "the GEMM algorithm is for the non-causal form without momentum");
        return CLATTN_UNSUPPORTED;
    }
    if (!(block_chunk == 32 || block_chunk == 64 || block_chunk == 128) ||
        !(rows == 4 || rows == 8 || rows == 16) || block_chunk % rows != 0 ||
        !(value_blocks == 1 || value_blocks == 2 || value_blocks == 4) ||
        !(feature_rows == 2 || feature_rows == 4 || feature_rows == 8) ||
        rows * value_blocks > LIN_MAX_OUT_ACC || feature_rows * value_blocks > LIN_MAX_STATE_ACC) {
        say(why, why_len, "register blocking outside the kernels' supported values");
        return CLATTN_UNSUPPORTED;
    }
    if (local_size > 1 || (capped(dev) && local_size != 1)) {
        say(why, why_len, "work-group size must be 0 (driver) or 1 (1 on loop-capped devices)");
        return CLATTN_UNSUPPORTED;
    }
    out->algo = algo;
    out->block_chunk = block_chunk;
    out->chunk = p->causal ? block_chunk
                 : chunk   ? chunk
                           : clattn__linear_cpu_chunk(dev, p);
    out->rows = rows;
    out->value_blocks = value_blocks;
    out->feature_rows = feature_rows;
    out->one_item_groups = capped(dev);
    out->local_size = local_size;
    out->feature_local = capped(dev) || cpu_family(dev) ? 1 : 0;
    out->adaptive_span = adaptive_span(dev, p);
    fill_defines(out);
    return pick_out(dev, p, out, why, why_len);
}

clattn_status clattn__schedule_linear(const clattn_device_info *dev,
                                      const clattn__linear_problem *p, int requested_algo,
                                      clattn__linear_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (requested_algo != CLATTN_LINEAR_AUTO && requested_algo != CLATTN_LINEAR_FUSED &&
        requested_algo != CLATTN_LINEAR_GEMM) {
        say(why, why_len, "unknown algorithm");
        return CLATTN_INVALID_ARGUMENT;
    }
    int algo = requested_algo;
    if (algo == CLATTN_LINEAR_AUTO)
        algo = gemm_form(p) && !cpu_family(dev) ? CLATTN_LINEAR_GEMM : CLATTN_LINEAR_FUSED;
    size_t local = capped(dev) || cpu_family(dev) ? 1 : 0;
    clattn_status st = clattn__linear_launch_from(dev, p, algo, 0, CLATTN__LIN_CAUSAL_CHUNK,
                                                  LIN_DEFAULT_RB, LIN_DEFAULT_EB,
                                                  LIN_DEFAULT_MB, local, out, why, why_len);
    if (st != CLATTN_SUCCESS)
        return st;
    say(why, why_len,
        requested_algo != CLATTN_LINEAR_AUTO ? "requested"
        : algo == CLATTN_LINEAR_GEMM         ? "GPU-like device, non-causal form: CLBlast GEMMs"
                                             : "fused kernels");
    return CLATTN_SUCCESS;
}

/* ---- the tuner's search space ---- */

static bool same_launch(const clattn__linear_launch *a, const clattn__linear_launch *b)
{
    return a->algo == b->algo && a->chunk == b->chunk && a->block_chunk == b->block_chunk &&
           a->rows == b->rows && a->value_blocks == b->value_blocks &&
           a->feature_rows == b->feature_rows && a->local_size == b->local_size &&
           a->out_tiled == b->out_tiled && a->ot_tx == b->ot_tx && a->ot_ty == b->ot_ty &&
           a->ot_rm == b->ot_rm && a->ot_rn == b->ot_rn;
}

static unsigned steps(size_t a, size_t b)
{
    unsigned n = 0;
    while (a < b) {
        a *= 2;
        n++;
    }
    while (a > b) {
        b *= 2;
        n++;
    }
    return n;
}

/* How far a candidate is from the default (parameter steps; another algorithm counts 4). */
static unsigned distance(const clattn__linear_launch *a, const clattn__linear_launch *d)
{
    return (a->algo != d->algo ? 4 : 0) + steps(a->chunk, d->chunk) +
           steps(a->block_chunk, d->block_chunk) + steps(a->rows, d->rows) +
           steps(a->value_blocks, d->value_blocks) + steps(a->feature_rows, d->feature_rows) +
           (a->local_size != d->local_size ? 1 : 0) +
           (a->out_tiled != d->out_tiled || a->ot_tx != d->ot_tx || a->ot_ty != d->ot_ty ||
                    a->ot_rm != d->ot_rm || a->ot_rn != d->ot_rn
                ? 1
                : 0);
}

static void add_launch(const clattn__linear_launch *cand, clattn__linear_launch *out, size_t cap,
                       size_t *n)
{
    clattn__linear_launch c = *cand;
    if (*n >= cap)
        return;
    for (size_t i = 0; i < *n; i++)
        if (same_launch(&out[i], &c))
            return;
    size_t at = *n;
    unsigned dc = distance(&c, &out[0]);
    while (at > 1 && distance(&out[at - 1], &out[0]) > dc) {
        out[at] = out[at - 1];
        at--;
    }
    out[at] = c;
    (*n)++;
}

/* Appends a valid, new candidate, keeping the list sorted by distance (stable, default first). */
static void add(const clattn_device_info *dev, const clattn__linear_problem *p, int algo,
                size_t chunk, unsigned bc, unsigned rb, unsigned eb, unsigned mb, size_t local,
                clattn__linear_launch *out, size_t cap, size_t *n)
{
    clattn__linear_launch c;
    if (*n >= cap || clattn__linear_launch_from(dev, p, algo, chunk, bc, rb, eb, mb, local, &c,
                                                NULL, 0) != CLATTN_SUCCESS)
        return;
    add_launch(&c, out, cap, n);
}

/* The default with another output kernel: the tiled kernel's other candidates and the per-row
 * kernels (GPU-like devices, FUSED non-causal forms). */
static void add_out_tiles(const clattn_device_info *dev, const clattn__linear_problem *p,
                          const clattn__linear_launch *def, clattn__linear_launch *out,
                          size_t cap, size_t *n)
{
    for (size_t c = 0; c <= OT_NCAND; c++) {
        clattn__linear_launch L = *def;
        const unsigned *t = c < OT_NCAND ? ot_cand[c] : (const unsigned[4]){0, 0, 0, 0};
        if (*n < cap &&
            clattn__linear_launch_out_tile(dev, p, t[0], t[1], t[2], t[3], &L, NULL, 0) ==
                CLATTN_SUCCESS)
            add_launch(&L, out, cap, n);
    }
}


size_t clattn__linear_candidates(const clattn_device_info *dev, const clattn__linear_problem *p,
                                 clattn__linear_launch *out, size_t cap)
{
    clattn__linear_launch def;
    if (cap == 0 || clattn__schedule_linear(dev, p, CLATTN_LINEAR_AUTO, &def, NULL, 0) !=
                        CLATTN_SUCCESS)
        return 0;
    size_t n = 0;
    out[n++] = def;
    if (def.out_tiled)
        add_out_tiles(dev, p, &def, out, cap, &n);
    if (capped(dev))
        return n;
    static const unsigned bcs[] = {32, 64, 128}, rbs[] = {4, 8, 16}, ebs[] = {1, 2, 4};
    static const unsigned mbs[] = {2, 4, 8};
    const size_t locals[2] = {def.local_size, def.local_size ? 0 : 1};
    int algos[2] = {def.algo, 0};
    int nalgo = 1;
    if (gemm_form(p))
        algos[nalgo++] = def.algo == CLATTN_LINEAR_GEMM ? CLATTN_LINEAR_FUSED : CLATTN_LINEAR_GEMM;
    for (int a = 0; a < nalgo; a++) {
        size_t defchunk = p->causal ? 0 : def.chunk;
        const size_t chunks[3] = {defchunk, defchunk ? 2 * defchunk : 0,
                                  defchunk > CLATTN__LIN_CAUSAL_CHUNK ? defchunk / 2 : 0};
        if (algos[a] == CLATTN_LINEAR_GEMM) { /* its own kernels have nothing to tune */
            add(dev, p, algos[a], 0, def.block_chunk, def.rows, def.value_blocks,
                def.feature_rows, def.local_size, out, cap, &n);
            continue;
        }
        for (size_t c = 0; c < 3; c++)
            for (size_t i = 0; i < 3; i++)
                for (size_t r = 0; r < 3; r++)
                    for (size_t e = 0; e < 3; e++)
                        for (size_t m = 0; m < 3; m++)
                            for (size_t l = 0; l < 2; l++) {
                                if ((c && !chunks[c]) || (!p->causal && bcs[i] != 64))
                                    continue;
                                add(dev, p, algos[a], chunks[c], bcs[i], rbs[r], ebs[e], mbs[m],
                                    locals[l], out, cap, &n);
                            }
    }
    return n;
}

/* ---- the fused causal form (kernels_cl/linear_causal.cl) ----
 * A CPU has few cores and big caches: one work-item per (batch, key head) keeps the running state
 * in L1 and reads q, k, v once (the materialised pipeline makes many passes over memory). The
 * value columns are split into blocks of 16 LINC_EB across work-items only as far as needed for
 * 4 work-items per compute unit (each block recomputes the chunk's phi(Q) phi(K)^T, 1 / (2 EB)
 * of its FMAs). The non-causal form runs the same kernel (all keys into the state, then the query
 * rows) where B * Hk * (value blocks) gives 4 work-items per compute unit. */
#define LIN_CAUSAL_ITEMS_PER_CU 4u

unsigned clattn__linear_causal_fused(const clattn_device_info *dev,
                                     const clattn__linear_problem *p)
{
    if (!cpu_family(dev) || capped(dev) || p->favor ||
        p->momentum != CLATTN_LINEAR_MOMENTUM_NONE || p->m > CLATTN__FEATURES_MAX_D ||
        p->dv > CLATTN__FEATURES_MAX_D || (p->causal && p->nq != p->nk))
        return 0;
    if (!p->causal && p->out_kernel == 2) /* the tiled output kernel requested */
        return 0;
    size_t blocks = round_up(p->dv, 16) / 16, bh_kv = p->bh_kv ? p->bh_kv : p->bh;
    size_t cu = dev->compute_units ? dev->compute_units : 1;
    /* Non-causal: only where the work-items fill the device (else the chunk-parallel fused
     * kernels of linear_fused.cl, parallel over key chunks too). */
    if (!p->causal && bh_kv * blocks < LIN_CAUSAL_ITEMS_PER_CU * cu)
        return 0;
    unsigned eb = 1;
    while (eb < 4 && eb < blocks)
        eb *= 2;
    while (eb > 1 && bh_kv * ((blocks + eb - 1) / eb) < LIN_CAUSAL_ITEMS_PER_CU * cu)
        eb /= 2;
    return eb;
}
