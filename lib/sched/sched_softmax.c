/* Scheduling rules for softmax attention (the tiled families and the naive baseline).
 *
 * Family: measured on PoCL (B1 H8 N4096 D64 fp32), a GPU-style kernel — a work-group sharing K/V
 * tiles through __local memory with barriers — ran at 4-6 GFLOP/s, because PoCL emulates __local
 * memory in ordinary cached memory and barriers split each work-group into costly loops; a
 * register-blocked kernel (several query rows per work-item, scores as float16 over 16 keys, K
 * packed into [N/16][D][16] panels, no __local, no barriers) reached ~165. So:
 *   - CPU-like devices (CPU class, or local memory emulated in global memory) whose OpenCL
 *     implementation maps explicit vectors onto SIMD registers inside one work-item (native float
 *     vector width >= 4, as PoCL reports 16 with AVX-512) get TILED_CPU;
 *   - everything else gets TILED_GPU, whose K/V tiles are sized to the local memory: GPUs, and
 *     CPU implementations that run work-items across SIMD lanes like a GPU and report a float
 *     vector width of 1 — rusticl on llvmpipe, where TILED_GPU measured 0.5 GFLOP/s against 0.08
 *     for TILED_CPU (N512 D64 H8; llvmpipe is slow at everything);
 *   - if a device cannot hold even one key row of K and V in local memory, TILED_CPU (it needs
 *     no local memory and is correct everywhere).
 *
 * TILED_CPU tiles: the rule at the top of lib/sched/sched_softmax_cpu.c, with its code.
 *
 * TILED_GPU: the register-tiled kernel (kernels_cl/softmax_gpu.cl; its rule below, "TILED_GPU's
 * register-tiled kernel"), else, where no launch of it fits the local memory, the previous kernel
 * (softmax.cl, clattn_softmax_fwd_gpu; also CLATTN_SOFTMAX_TILED_GPU_ROWS), whose tiles are:
 * one query row per work-item; the work-group from the vendor family's shipped
 * defaults (lib/tune/defaults.c: 128 for NVIDIA and unknown GPUs, 256/128 for AMD by D, 64 for
 * Intel and Apple/ARM; the device maximum when smaller, rounded down to a power of two); key tile = the largest power of two <= 64 with
 * tile_kv * (D + Dv) * 4 bytes (K and V tiles) within the local memory, so more local memory never
 * gives a smaller tile. */
#include "sched_softmax.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t clattn__softmax_floor_pow2(size_t x)
{
    size_t p = 1;
    while (p * 2 <= x)
        p *= 2;
    return p;
}

clattn_softmax_algo clattn__softmax_family(const clattn_device_info *dev)
{
    bool cpu_like = dev->device_class == CLATTN_DEVICE_CPU || dev->local_mem_emulated;
    if (cpu_like && dev->native_vector_width_float >= 4)
        return CLATTN_SOFTMAX_TILED_CPU;
    return CLATTN_SOFTMAX_TILED_GPU;
}

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

size_t clattn__softmax_wg_limit(const clattn_device_info *dev)
{
    size_t lim = dev->max_work_group_size ? dev->max_work_group_size : 1;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    return lim;
}


static void fill_gpu(size_t d, size_t dv, size_t wg, size_t tile, clattn__softmax_launch *out)
{
    memset(out, 0, sizeof *out); /* gpu_tx = 0: the one-row-per-item kernel */
    out->algo = CLATTN_SOFTMAX_TILED_GPU;
    out->rows_per_item = 1;
    out->local_size = wg;
    out->tile_q = (unsigned)wg;
    out->tile_kv = (unsigned)tile;
    out->local_mem_bytes = tile * (d + dv) * sizeof(float); /* K tile [tile][D], V tile [tile][Dv] */
    snprintf(out->defines, sizeof out->defines, "-DSOFTMAX_HEAD_DIM=%zu -DSOFTMAX_TILE_KV=%zu -DSOFTMAX_WG_SIZE=%zu", d,
             tile, wg);
}

/* ---- TILED_GPU's register-tiled kernel (kernels_cl/softmax_gpu.cl) ----
 * Space: TX in {8, 16} work-items across keys and head dims, TY in {4, 8, 16} across rows,
 * micro-tiles RM in {2, 4, 8} rows x RN in {2, 4} keys, K and V tiles in separate buffers or one
 * shared buffer: 72 points, those that fit the device valid.
 * A launch fits when the work-group is within the device limits, the __local buffers (queries
 * Qs[D][BR], transposed K Kt[D][BC+1], V Vs[BC][DP], probabilities Ps[BR][BC], row maxima
 * red[BR][TX]) within its local memory, and the micro-tile state (scores RM x RN, accumulator
 * RM x RD with RD = ceil(D / TX), the operands of one step, m, l and the masks) within
 * GPU_RT_REG_BUDGET floats: with ~30 registers of addresses and indices beside them, within the
 * 255 an NVIDIA thread may have and the 256 VGPRs of an AMD lane (FlashAttention-2 runs near
 * that), and Intel's large-GRF mode; 128 (our first choice) kept every 32 KiB-local launch at
 * 8 x 2 and 4 x 4 micro-tiles, 0.49 FMA/byte under oclgrind at D = 64 against 0.70 for 8 x 4.
 * The default is the fitting launch of highest modelled arithmetic intensity (useful FMAs per
 * float loaded from local and global memory per key tile), discounted by 10% when a second
 * work-group does not fit the local memory beside the first (nothing hides its barriers) and by
 * 5% for a shared K/V buffer (V's load no longer overlaps K's), among work-groups that are a
 * multiple of the vendor's SIMD width (lib/tune/defaults.c) when one is known. Ties: the smaller
 * local memory. Measured on no GPU (none here): an intensity model by construction, checked by
 * oclgrind's instruction counts (tests/inst_counts.sh); the tuner measures the space.
 *
 * Dv != D (issue 16): the V tile, the accumulators (RM x ceil(Dv / TX)) and the P.V terms of the
 * model take Dv; Q, K and the score terms D. D or Dv above 256 (to 512): where no whole-head-dim
 * launch fits (Qs[D][BR] + Kt[D][BC+1] + Vs[BC][Dv] is 51 KiB at D = 512 with the smallest
 * tiles), the head-dim-chunked space: the same tiles with Q's and K's head dims staged DC = 32,
 * 64 or 128 at a time into one buffer (scores accumulate over the chunks), then V's in chunks of
 * DC for P.V (the accumulator indices stay compile-time: the chunk loop is unrolled), local
 * memory DC * (BR + BC + 1) + BR * BC + BR * TX floats, whatever D. Its model counts Q's chunks
 * reloaded from global memory per key tile and Ps read once per V chunk. Picked per D
 * (tests/test_softmax_gpu.c test_schedule_head_dims; TX x TY, RM x RN, kv = shared K/V buffer):
 *   device            D = 64          128             256             512
 *   NVIDIA 48 KiB     8x4 8x4 kv      8x8 4x4 kv      8x4 2x4 kv      16x8 4x2 dchunk=64
 *   AMD 64 KiB        8x8 8x4         16x4 8x4 kv     16x4 4x2 kv     16x4 4x2 dchunk=128
 *   Intel 64 KiB      8x4 8x4         16x4 8x4 kv     16x4 4x2 kv     16x4 4x2 dchunk=128
 *   PoCL (TILED_GPU forced; AUTO is TILED_CPU there): whole head dims at every D (its emulated
 *   1 MiB holds them), 16x16 2x4 at 512; rusticl 32 KiB: whole to 256, dchunk=64 at 512.
 * Why: up to 256 a whole-head-dim launch fits each and wins (Q stays in local memory); at 512
 * none fits 48 or 64 KiB, and the chunked launch of highest modelled intensity is RM x RN = 4 x 2
 * (the accumulator, 4 x 32 floats at TX 16, fills the 160-float budget) with the largest chunk
 * the local memory allows beside a second work-group (NVIDIA: 64; 64 KiB: 128). */
#define GPU_RT_REG_BUDGET 160
static const unsigned rt_tx[] = {8, 16}, rt_ty[] = {4, 8, 16}, rt_rm[] = {2, 4, 8},
                      rt_rn[] = {2, 4}, rt_dc[] = {32, 64, 128};

size_t clattn__softmax_gpu_rt_local_bytes_dv(size_t d, size_t dv, unsigned tx, unsigned ty,
                                             unsigned rm, unsigned rn, unsigned kv_shared,
                                             unsigned dchunk)
{
    size_t br = (size_t)ty * rm, bc = (size_t)tx * rn;
    if (dv == 0)
        dv = d;
    if (dchunk) { /* one buffer: Q and K chunks Qs[DC][BR], Kt[DC][BC+1], then V chunks [BC][DC] */
        size_t qk = (size_t)dchunk * br + (size_t)dchunk * (bc + 1), vc = bc * dchunk;
        return sizeof(float) * ((qk > vc ? qk : vc) + br * bc + br * tx);
    }
    size_t dp = (dv + tx - 1) / tx * tx;
    size_t kt = d * (bc + 1), vv = bc * dp;
    size_t kv = kv_shared ? (kt > vv ? kt : vv) : kt + vv;
    return sizeof(float) * (d * br + kv + br * bc + br * tx);
}

size_t clattn__softmax_gpu_rt_local_bytes(size_t d, unsigned tx, unsigned ty, unsigned rm,
                                          unsigned rn, unsigned kv_shared)
{
    return clattn__softmax_gpu_rt_local_bytes_dv(d, d, tx, ty, rm, rn, kv_shared, 0);
}

/* Accumulator columns per row and work-item (all chunks), and those of one V chunk. */
static size_t rt_acc_cols(size_t dv, unsigned tx, unsigned dchunk, size_t *per_chunk)
{
    size_t rc = dchunk ? dchunk / tx : (dv + tx - 1) / tx;
    if (per_chunk)
        *per_chunk = rc;
    return dchunk ? (dv + dchunk - 1) / dchunk * rc : rc;
}

size_t clattn__softmax_gpu_rt_regs_dv(size_t dv, unsigned tx, unsigned rm, unsigned rn,
                                      unsigned dchunk)
{
    size_t rc, ra = rt_acc_cols(dv, tx, dchunk, &rc);
    return (size_t)rm * rn + rm * ra + rm + (rn > rc ? rn : rc) + 3 * (size_t)rm;
}

size_t clattn__softmax_gpu_rt_regs(size_t d, unsigned tx, unsigned rm, unsigned rn)
{
    return clattn__softmax_gpu_rt_regs_dv(d, tx, rm, rn, 0);
}

static void fill_gpu_rt(size_t d, size_t dv, unsigned tx, unsigned ty, unsigned rm, unsigned rn,
                        unsigned shared, unsigned dchunk, clattn__softmax_launch *out)
{
    out->algo = CLATTN_SOFTMAX_TILED_GPU;
    out->rows_per_item = rm;
    out->local_size = (size_t)tx * ty;
    out->tile_q = ty * rm;
    out->tile_kv = tx * rn;
    out->local_mem_bytes = clattn__softmax_gpu_rt_local_bytes_dv(d, dv, tx, ty, rm, rn, shared, dchunk);
    out->gpu_tx = tx;
    out->gpu_ty = ty;
    out->gpu_rm = rm;
    out->gpu_rn = rn;
    out->gpu_kv_shared = shared;
    snprintf(out->defines, sizeof out->defines,
             "-DSOFTMAX_HEAD_DIM=%zu -DSOFTMAX_TILE_KV=%u -DSOFTMAX_GPU_TX=%u -DSOFTMAX_GPU_TY=%u "
             "-DSOFTMAX_GPU_RM=%u -DSOFTMAX_GPU_RN=%u -DSOFTMAX_GPU_KV_SHARED=%u",
             d, out->tile_kv, tx, ty, rm, rn, shared);
    out->gpu_dchunk = dchunk;
    if (dchunk) /* unchunked launches keep their defines (and programs) */
        snprintf(out->defines + strlen(out->defines), sizeof out->defines - strlen(out->defines),
                 " -DSOFTMAX_GPU_DCHUNK=%u", dchunk);
}

clattn_status clattn__softmax_launch_gpu_rt_dc(const clattn_device_info *dev,
                                               const clattn__softmax_problem *prob, unsigned tx,
                                               unsigned ty, unsigned rm, unsigned rn,
                                               unsigned kv_shared, unsigned dchunk,
                                               clattn__softmax_launch *out, char *why,
                                               size_t why_len)
{
    memset(out, 0, sizeof *out);
    size_t d = prob->head_dim, dv = prob->head_dim_v ? prob->head_dim_v : d;
    if (d < 1 || d > CLATTN__SOFTMAX_MAX_HEAD_DIM || dv > CLATTN__SOFTMAX_MAX_HEAD_DIM) {
        say(why, why_len, "head dimension must be in [1, 512]");
        return CLATTN_INVALID_SHAPE;
    }
    if (dchunk && (dchunk % tx || dchunk > 256 || kv_shared)) {
        say(why, why_len, "head-dim chunk must be a multiple of tx up to 256 (one buffer already)");
        return CLATTN_UNSUPPORTED;
    }
    bool p2 = tx && !(tx & (tx - 1)) && ty && !(ty & (ty - 1)) && rm && !(rm & (rm - 1)) && rn &&
              !(rn & (rn - 1));
    if (!p2 || tx > 64 || ty > 64 || rm > 8 || rn > 8 || kv_shared > 1) {
        say(why, why_len, "tx, ty up to 64, rm, rn up to 8, all powers of two; kv_shared 0 or 1");
        return CLATTN_UNSUPPORTED;
    }
    size_t wg = (size_t)tx * ty;
    if (wg > clattn__softmax_wg_limit(dev) || wg > 1024) {
        say(why, why_len, "work-group beyond the device limit");
        return CLATTN_UNSUPPORTED;
    }
    if (clattn__softmax_gpu_rt_local_bytes_dv(d, dv, tx, ty, rm, rn, kv_shared, dchunk) >
        dev->local_mem_size) {
        say(why, why_len, "tiles beyond the local memory");
        return CLATTN_UNSUPPORTED;
    }
    if (clattn__softmax_gpu_rt_regs_dv(dv, tx, rm, rn, dchunk) > GPU_RT_REG_BUDGET) {
        say(why, why_len, "micro-tiles beyond the register budget");
        return CLATTN_UNSUPPORTED;
    }
    fill_gpu_rt(d, dv, tx, ty, rm, rn, kv_shared, dchunk, out);
    return CLATTN_SUCCESS;
}

clattn_status clattn__softmax_launch_gpu_rt(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob, unsigned tx,
                                            unsigned ty, unsigned rm, unsigned rn,
                                            unsigned kv_shared, clattn__softmax_launch *out,
                                            char *why, size_t why_len)
{
    return clattn__softmax_launch_gpu_rt_dc(dev, prob, tx, ty, rm, rn, kv_shared, 0, out, why,
                                            why_len);
}

/* The default's model: useful FMAs per float loaded (local + global) per key tile, discounted as
 * documented above. */
double clattn__softmax_gpu_rt_score_dv(const clattn_device_info *dev, size_t d, size_t dv,
                                       const clattn__softmax_launch *L)
{
    if (dv == 0)
        dv = d;
    double tx = L->gpu_tx, rm = L->gpu_rm, rn = L->gpu_rn, bc = L->tile_kv, br = L->tile_q;
    size_t rcs;
    rt_acc_cols(dv, L->gpu_tx, L->gpu_dchunk, &rcs);
    double rc = (double)rcs, dc = L->gpu_dchunk;
    /* V chunks (Ps is read again for each) and the global staging per key tile: unchunked K and
     * V (Q stays in local memory); chunked, Q's chunks as well, once per key tile. */
    double nvc = dc ? (double)((dv + L->gpu_dchunk - 1) / L->gpu_dchunk) : 1;
    double ndc = dc ? (double)((d + L->gpu_dchunk - 1) / L->gpu_dchunk) : 1;
    double glob = dc ? (br + bc) * ndc * dc + bc * nvc * dc : bc * (double)d + bc * rc * tx;
    double fma = rm * rn * (double)d + rm * bc * (double)dv / tx;
    double loads = (double)d * (rm + rn) + nvc * bc * (rm + rc) + rm * tx +
                   glob / (double)L->local_size;
    double score = fma / loads;
    if (2 * L->local_mem_bytes > dev->local_mem_size)
        score *= 0.9;
    if (L->gpu_kv_shared)
        score *= 0.95;
    return score;
}

double clattn__softmax_gpu_rt_score(const clattn_device_info *dev, size_t d,
                                    const clattn__softmax_launch *L)
{
    return clattn__softmax_gpu_rt_score_dv(dev, d, d, L);
}

/* Every fitting launch of the space, best modelled first (stable); returns how many. chunked:
 * the head-dim-chunked space (chunks rt_dc, one buffer) instead of the whole-head-dim one. */
static size_t rt_space(const clattn_device_info *dev, const clattn__softmax_problem *p,
                       bool chunked, clattn__softmax_launch *out, double *score, size_t cap)
{
    size_t n = 0;
    /* CLATTN_SOFTMAX_GPU_DCHUNK=<n> (for tests, not a public knob): the chunked space holds chunk
     * n only, and the default is chunked at any D (so small tests reach the chunked kernel). */
    unsigned dcs[3] = {rt_dc[0], rt_dc[1], rt_dc[2]}, ndc = 3;
    const char *force = getenv("CLATTN_SOFTMAX_GPU_DCHUNK");
    if (force && atoi(force) > 0) {
        dcs[0] = (unsigned)atoi(force);
        ndc = 1;
    }
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++)
                for (size_t e = 0; e < 2; e++)
                    for (unsigned sh = 0; sh < (chunked ? ndc : 2u) && n < cap; sh++) {
                        clattn__softmax_launch L;
                        if (clattn__softmax_launch_gpu_rt_dc(dev, p, rt_tx[a], rt_ty[b], rt_rm[c],
                                                             rt_rn[e], chunked ? 0 : sh,
                                                             chunked ? dcs[sh] : 0, &L, NULL,
                                                             0) != CLATTN_SUCCESS)
                            continue;
                        double sc =
                            clattn__softmax_gpu_rt_score_dv(dev, p->head_dim, p->head_dim_v, &L);
                        size_t at = n;
                        while (at > 0 && (score[at - 1] < sc ||
                                          (score[at - 1] == sc &&
                                           out[at - 1].local_mem_bytes > L.local_mem_bytes))) {
                            memcpy(&out[at], &out[at - 1], sizeof L); /* padding too: memcmp-able */
                            score[at] = score[at - 1];
                            at--;
                        }
                        memcpy(&out[at], &L, sizeof L);
                        score[at] = sc;
                        n++;
                    }
    return n;
}

#define RT_SPACE_MAX 108

/* Whether the register-tiled default is head-dim-chunked: where no whole-head-dim launch fits and
 * D or Dv is above 256 (at D, Dv <= 256 the previous rule stands: the row kernel next). */
static bool rt_chunked(const clattn_device_info *dev, const clattn__softmax_problem *p)
{
    size_t d = p->head_dim, dv = p->head_dim_v ? p->head_dim_v : d;
    clattn__softmax_launch all[RT_SPACE_MAX];
    double score[RT_SPACE_MAX];
    const char *force = getenv("CLATTN_SOFTMAX_GPU_DCHUNK");
    if (force && atoi(force) > 0)
        return true;
    return (d > CLATTN__MAX_HEAD_DIM || dv > CLATTN__MAX_HEAD_DIM) &&
           rt_space(dev, p, false, all, score, RT_SPACE_MAX) == 0;
}

/* The register-tiled default: the best-modelled fitting launch whose work-group is a multiple of
 * the SIMD width (any fitting launch when none is). */
static bool plan_gpu_rt(const clattn_device_info *dev, const clattn__softmax_problem *p,
                        clattn__softmax_launch *out)
{
    clattn__softmax_launch all[RT_SPACE_MAX];
    double score[RT_SPACE_MAX];
    size_t n = rt_space(dev, p, rt_chunked(dev, p), all, score, RT_SPACE_MAX);
    if (n == 0)
        return false;
    unsigned simd = clattn__gpu_simd_width(dev);
    for (size_t i = 0; i < n; i++)
        if (simd == 0 || all[i].local_size % simd == 0) {
            memcpy(out, &all[i], sizeof *out);
            return true;
        }
    memcpy(out, &all[0], sizeof *out);
    return true;
}

/* The one-row-per-work-item kernel (softmax.cl): the fallback where no register-tiled launch fits,
 * and a tuning candidate. */
static bool plan_gpu_rows(const clattn_device_info *dev, const clattn__softmax_problem *p,
                          clattn__softmax_launch *out)
{
    size_t d = p->head_dim, dv = p->head_dim_v ? p->head_dim_v : d;
    /* The vendor family's work-group (lib/tune/defaults.c), within the device's limits. */
    size_t wg = clattn__default_gpu_wg(dev, d);
    if (wg > clattn__softmax_wg_limit(dev))
        wg = clattn__softmax_floor_pow2(clattn__softmax_wg_limit(dev));
    size_t tile = 64;
    while (tile >= 1 && tile * (d + dv) * sizeof(float) > dev->local_mem_size)
        tile /= 2;
    if (tile == 0)
        return false;
    fill_gpu(d, dv, wg, tile, out);
    return true;
}

static bool plan_gpu(const clattn_device_info *dev, const clattn__softmax_problem *p,
                     clattn__softmax_launch *out)
{
    return plan_gpu_rt(dev, p, out) || plan_gpu_rows(dev, p, out);
}

clattn_status clattn__schedule_softmax(const clattn_device_info *dev,
                                         const clattn__softmax_problem *prob,
                                         clattn_softmax_algo requested,
                                         clattn__softmax_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (prob->head_dim < 1 || prob->head_dim > CLATTN__SOFTMAX_MAX_HEAD_DIM) {
        say(why, why_len, "head dimension must be in [1, 512]");
        return CLATTN_INVALID_SHAPE;
    }
    switch (requested) {
    case CLATTN_SOFTMAX_AUTO:
        if (clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU && plan_gpu(dev, prob, out)) {
            say(why, why_len, "device has real local memory: GPU tiles");
            return CLATTN_SUCCESS;
        }
        clattn__softmax_plan_cpu(dev, prob, out);
        say(why, why_len,
            clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU
                ? "CPU-like device with wide vectors: register blocking"
                : "local memory too small for one K/V row: register blocking");
        return CLATTN_SUCCESS;
    case CLATTN_SOFTMAX_TILED_CPU:
        clattn__softmax_plan_cpu(dev, prob, out);
        say(why, why_len, "requested");
        return CLATTN_SUCCESS;
    case CLATTN_SOFTMAX_TILED_GPU:
        if (!plan_gpu(dev, prob, out)) {
            say(why, why_len, "local memory cannot hold one K and V row");
            return CLATTN_UNSUPPORTED;
        }
        say(why, why_len, "requested");
        return CLATTN_SUCCESS;
    case CLATTN_SOFTMAX_TILED_GPU_ROWS:
        if (!plan_gpu_rows(dev, prob, out)) {
            say(why, why_len, "local memory cannot hold one K and V row");
            return CLATTN_UNSUPPORTED;
        }
        say(why, why_len, "requested: the one-row-per-item GPU kernel");
        return CLATTN_SUCCESS;
    case CLATTN_SOFTMAX_NAIVE:
        out->algo = CLATTN_SOFTMAX_NAIVE;
        /* The softmax kernel reduces each row with a work-group; on CPU-like devices one
         * work-item per row avoids PoCL's costly barriers. */
        out->local_size = clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU ? 1
                          : 64 <= clattn__softmax_wg_limit(dev)
                              ? 64
                              : clattn__softmax_floor_pow2(clattn__softmax_wg_limit(dev));
        out->rows_per_item = 1;
        out->tile_q = 1;
        out->tile_kv = 0;
        out->local_mem_bytes = out->local_size * sizeof(float);
        snprintf(out->defines, sizeof out->defines, "-DSOFTMAX_WG_SIZE=%zu", out->local_size);
        say(why, why_len, "requested");
        return CLATTN_SUCCESS;
    default:
        say(why, why_len, "unknown algorithm");
        return CLATTN_INVALID_ARGUMENT;
    }
}

/* ---- explicit launches and the tuner's search space ----
 *
 * TILED_CPU: ROWS in {1, 2, 4, 8} with ROWS * ceil(max(D, Dv)/16) <= 64 float16 vectors (a
 * work-item's query rows and accumulators, 16 groups of ROWS rows, then take at most 64 KiB each
 * of private memory; the P.V passes of cpu_pv_passes follow from ROWS), local size a power of two up to 256 and
 * the device limit; the key block (tile_kv, 0: the default) a power of two of whole steps up to
 * 512 keys. Searched: ROWS x key blocks {32, 64, 128, 256, 512} at the default local size, then the
 * local sizes {1, 2, 4, 8} at the default tiles. TILED_GPU: one row per work-item,
 * WG_SIZE a power of two within the device limit (at most 1024), TILE_KV a power of two in
 * [1, 64] whose K and V tiles fit the local memory. */
#define CPU_MAX_ACC_VECTORS 64

static bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

clattn_status clattn__softmax_launch_from(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob,
                                            clattn_softmax_algo algo, unsigned rows,
                                            size_t local_size, unsigned tile_kv,
                                            clattn__softmax_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    size_t d = prob->head_dim;
    if (d < 1 || d > CLATTN__SOFTMAX_MAX_HEAD_DIM) {
        say(why, why_len, "head dimension must be in [1, 512]");
        return CLATTN_INVALID_SHAPE;
    }
    size_t lim = clattn__softmax_wg_limit(dev);
    if (algo == CLATTN_SOFTMAX_TILED_CPU) {
        size_t dv = clattn__softmax_prob_dv(prob), dmax = d > dv ? d : dv;
        if (!(rows == 1 || rows == 2 || rows == 4 || rows == 8) ||
            rows * ((dmax + 15) / 16) > CPU_MAX_ACC_VECTORS) {
            say(why, why_len, "rows per work-item must be 1, 2, 4 or 8 within 64 row vectors");
            return CLATTN_UNSUPPORTED;
        }
        if (!is_pow2(local_size) || local_size > lim || local_size > 256) {
            say(why, why_len, "local size must be a power of two within the device limit");
            return CLATTN_UNSUPPORTED;
        }
        if (tile_kv != 0 &&
            (!is_pow2(tile_kv) || tile_kv < clattn__softmax_cpu_step_keys(d, dv) ||
             tile_kv > CPU_KV_BLOCK_MAX)) {
            say(why, why_len, "key block must be a power of two from the step's keys to 512");
            return CLATTN_UNSUPPORTED;
        }
        clattn__softmax_fill_cpu(clattn__softmax_cpu_groups(dev, prob), d, dv, rows, local_size,
                                 tile_kv ? tile_kv : clattn__softmax_cpu_kv_block(d, dv), out);
        return CLATTN_SUCCESS;
    }
    if (algo == CLATTN_SOFTMAX_TILED_GPU) {
        size_t dv = prob->head_dim_v ? prob->head_dim_v : d;
        if (rows > 1 || !is_pow2(local_size) || local_size > lim || local_size > 1024 ||
            !is_pow2(tile_kv) || tile_kv > 64 || dv > CLATTN__SOFTMAX_MAX_HEAD_DIM ||
            (size_t)tile_kv * (d + dv) * sizeof(float) > dev->local_mem_size) {
            say(why, why_len, "work-group or key tile outside the device limits");
            return CLATTN_UNSUPPORTED;
        }
        fill_gpu(d, dv, local_size, tile_kv, out);
        return CLATTN_SUCCESS;
    }
    say(why, why_len, "only the tiled families take explicit parameters");
    return CLATTN_UNSUPPORTED;
}

static unsigned log2_dist(size_t a, size_t b)
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

/* How far a candidate is from the default; changing ROWS, TILE_KV or WG_SIZE (GPU) costs a new
 * program build, changing only the CPU local size costs a launch-time specialisation. */
static unsigned distance(const clattn__softmax_launch *a, const clattn__softmax_launch *def)
{
    unsigned rebuild = (a->algo == CLATTN_SOFTMAX_TILED_GPU) ? 2 : 1;
    return 2 * log2_dist(a->rows_per_item, def->rows_per_item) +
           2 * log2_dist(a->tile_kv, def->tile_kv) +
           rebuild * log2_dist(a->local_size, def->local_size);
}

static bool same_launch(const clattn__softmax_launch *a, const clattn__softmax_launch *b)
{
    return a->algo == b->algo && a->rows_per_item == b->rows_per_item &&
           a->local_size == b->local_size && a->tile_kv == b->tile_kv &&
           a->gpu_tx == b->gpu_tx && a->gpu_ty == b->gpu_ty && a->gpu_rm == b->gpu_rm &&
           a->gpu_rn == b->gpu_rn && a->gpu_kv_shared == b->gpu_kv_shared &&
           a->gpu_dchunk == b->gpu_dchunk;
}

/* Appends a valid, new candidate; keeps the list sorted by distance (stable). */
static void add_candidate(const clattn_device_info *dev, const clattn__softmax_problem *prob,
                          clattn_softmax_algo algo, unsigned rows, size_t wg, unsigned tile,
                          clattn__softmax_launch *out, size_t cap, size_t *n)
{
    clattn__softmax_launch c;
    if (*n >= cap ||
        clattn__softmax_launch_from(dev, prob, algo, rows, wg, tile, &c, NULL, 0) !=
            CLATTN_SUCCESS)
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

size_t clattn__softmax_candidates(const clattn_device_info *dev,
                                    const clattn__softmax_problem *prob,
                                    clattn_softmax_algo requested, clattn__softmax_launch *out,
                                    size_t cap)
{
    clattn__softmax_launch def;
    if (cap == 0 || (requested != CLATTN_SOFTMAX_AUTO && requested != CLATTN_SOFTMAX_TILED_CPU &&
                     requested != CLATTN_SOFTMAX_TILED_GPU) ||
        clattn__schedule_softmax(dev, prob, requested, &def, NULL, 0) != CLATTN_SUCCESS)
        return 0;
    size_t n = 0;
    memcpy(&out[n++], &def, sizeof def);
    if (def.algo == CLATTN_SOFTMAX_TILED_GPU && def.gpu_tx) {
        /* The register-tiled default, then the one-row-per-item kernel's default (so every
         * tuning run measures the old kernel against the new), then the rest of the space, best
         * modelled first. */
        clattn__softmax_launch all[RT_SPACE_MAX], rows_def;
        double score[RT_SPACE_MAX];
        if (n < cap && plan_gpu_rows(dev, prob, &rows_def))
            memcpy(&out[n++], &rows_def, sizeof rows_def);
        size_t m = rt_space(dev, prob, def.gpu_dchunk != 0, all, score, RT_SPACE_MAX);
        for (size_t i = 0; i < m && n < cap; i++)
            if (!same_launch(&all[i], &def))
                memcpy(&out[n++], &all[i], sizeof all[i]);
        return n;
    }
    static const unsigned rows[] = {1, 2, 4, 8}, cpu_wg[] = {1, 2, 4, 8};
    static const unsigned gpu_wg[] = {32, 64, 128, 256}, tiles[] = {8, 16, 32, 64};
    static const unsigned cpu_kv[] = {32, 64, 128, 256, 512};
    for (size_t i = 0; i < 4; i++) {
        if (def.algo == CLATTN_SOFTMAX_TILED_CPU)
            for (size_t j = 0; j < sizeof cpu_kv / sizeof cpu_kv[0]; j++)
                add_candidate(dev, prob, def.algo, rows[i], def.local_size, cpu_kv[j], out, cap,
                              &n);
        else
            for (size_t j = 0; j < 4; j++)
                add_candidate(dev, prob, def.algo, 1, gpu_wg[j], tiles[i], out, cap, &n);
    }
    if (def.algo == CLATTN_SOFTMAX_TILED_CPU) /* the local size, at the default tiles */
        for (size_t j = 0; j < 4; j++)
            add_candidate(dev, prob, def.algo, def.rows_per_item, cpu_wg[j], def.tile_kv, out, cap,
                          &n);
    return n;
}

/* ---- split-KV for TILED_GPU's register-tiled kernel (issue 17 section 1) ----
 * clattn_softmax_fwd_gpu_rt runs ceil(Nq / tile_q) x B x Hq work-groups: one query over a long
 * cache with 32 heads is 32 work-groups, a quarter of a large GPU's compute units, each walking
 * every key. Splitting the keys into S ranges gives S times the work-groups (each writes partial
 * rows in TILED_CPU's layout, merged by clattn_softmax_split_merge). Rule: only the register-tiled
 * kernel (gpu_tx != 0) on devices whose family is TILED_GPU (a CPU-like device running it for a
 * test keeps its launches); aim at GPU_SPLIT_GROUPS_PER_CU work-groups per compute unit; never below
 * GPU_SPLIT_MIN_TILES key tiles per range; at most GPU_SPLIT_MAX. Prefill-sized Nq already fills
 * the device: S = 1 there. Not timed on a GPU yet: first guesses for the integrator to check with
 * `clattn bench decode --variants bandwidth,unsplit,split` on a real GPU. */
#define GPU_SPLIT_GROUPS_PER_CU 2
#define GPU_SPLIT_MIN_TILES 4
#define GPU_SPLIT_MAX 64

unsigned clattn__softmax_gpu_splits(const clattn_device_info *dev,
                                    const clattn__softmax_problem *p,
                                    const clattn__softmax_launch *L, size_t heads)
{
    if (L->algo != CLATTN_SOFTMAX_TILED_GPU || !L->gpu_tx || !L->tile_q || !L->tile_kv)
        return 1;
    /* CLATTN_SOFTMAX_GPU_SPLITS=<n> (tests and the decode bench, not a public knob) forces S for
     * the register-tiled kernel on any device; ranges past the keys stay empty. */
    const char *force = getenv("CLATTN_SOFTMAX_GPU_SPLITS");
    if (force && *force) {
        char *end = NULL;
        long n = strtol(force, &end, 10);
        if (end && *end == '\0' && n >= 1 && n <= 256)
            return (unsigned)n;
    }
    if (clattn__softmax_family(dev) != CLATTN_SOFTMAX_TILED_GPU)
        return 1;
    size_t groups = (p->nq + L->tile_q - 1) / L->tile_q * heads;
    size_t cu = dev->compute_units ? dev->compute_units : 1;
    size_t target = GPU_SPLIT_GROUPS_PER_CU * cu;
    if (groups >= target)
        return 1;
    size_t s = (target + groups - 1) / groups;
    size_t by_keys = p->nk / ((size_t)GPU_SPLIT_MIN_TILES * L->tile_kv);
    if (s > by_keys)
        s = by_keys;
    if (s > GPU_SPLIT_MAX)
        s = GPU_SPLIT_MAX;
    return s < 2 ? 1 : (unsigned)s;
}
