/* Launch decisions of RPE attention (kernelized attention with relative positional encoding,
 * lib/ops/rpe.c): FFT or direct sums, the causal FFT path's directly summed head rows, how the
 * FFT signals are grouped within a scratch budget, and the work-group sizes of the feature
 * kernels. Pure: no OpenCL calls (tests/test_sched_rpe.c runs it on made-up devices). */
#include "sched.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* AUTO's choice by a cost model: the direct sums cost ~ N^2 (M + Dv) (half that when causal), the
 * FFT path ~ N log2(2N) M (Dv + 1), so FFT is taken when
 *   N (M + Dv) (1/2 when causal) >= CLATTN__RPE_FFT_CROSSOVER M (Dv + 1) log2(2N).
 * The constant is the measured crossover on PoCL (2-vCPU EPYC shared with other jobs, `clattn
 * bench rpe`, B1 H1, non-causal): equal times near N = 3000 for M = Dv = 16 (C = 28) and
 * N = 8800 for M = Dv = 64 (C = 19); causal, M = Dv = 16, between 4k and 16k as predicted. Both
 * sides scale with the query heads alike, so the rule is per (batch, query head). */
#define CLATTN__RPE_FFT_CROSSOVER 24.0

/* The causal FFT path's error is absolute, about 1.4e-7 * N times a row's typical weight (measured
 * on PoCL with clFFT), while row i sums only i + 1 weights: early rows would lose accuracy
 * (2e-4 at row 0 for N = 1500). The first ceil(N / CLATTN__RPE_CAUSAL_HEAD_DIV) rows are therefore
 * summed directly (O(N^2 / DIV^2), negligible), which bounds the relative error of the others near
 * 1.4e-7 * DIV. */
#define CLATTN__RPE_CAUSAL_HEAD_DIV 64

/* Device scratch for the FFT signals of one group (real rows and their spectra), unless the
 * problem gives its own budget (lib/ops/rpe.c reads CLATTN_RPE_FFT_SCRATCH, which lets tests
 * split small problems into many groups); at most half the device's largest allocation. */
#define CLATTN__RPE_FFT_SCRATCH ((size_t)128 << 20)

/* Partial maxima per head when finding the largest bias entry: shares keep each work-item's loop
 * short (llvmpipe caps loops at 65535 iterations per work-group). */
#define CLATTN__RPE_PARTS 256

/* The tiled direct kernel (kernels_cl/rpe.cl clattn_rpe_direct_tiled) for GPU-like devices
 * (clattn__softmax_family: real local memory): RPE_TX x RPE_TY = 8 x 8 work-items, each a 4 x 4
 * micro-tile of scores (RPE_RM x RPE_RN) and a 4 x RPE_RD block of the output, RPE_RD the value
 * columns per item up to CLATTN__RPE_TILE_MAX_RD (8: 32 accumulators, as many as the score tile
 * and row sums together leave in a GPU's register budget), features staged RPE_MK = 16 at a time.
 * The shape follows issue 12's 4x4 micro-tile (0.5 FMA per byte of the score GEMM); it has not
 * been tuned on a GPU (none here). oclgrind --inst-counts (tests/inst_counts_ops.sh, M = Dv = 64,
 * N 40-64): 0.50-0.52 FMA per byte of __global + __local loads and no private traffic, against
 * 0.166 FMA/B and 4.06 private B/FMA for clattn_rpe_direct (0.48 against 0.166 at M = Dv = 128,
 * where the value columns take two work-groups). A wider key tile (RPE_RN 8) would give ~0.6 in
 * the model but needs ~31 KiB of __local at Dv 64: not measured. */
#define CLATTN__RPE_TILE_TX 8
#define CLATTN__RPE_TILE_TY 8
#define CLATTN__RPE_TILE_RM 4
#define CLATTN__RPE_TILE_RN 4
#define CLATTN__RPE_TILE_MK 16
#define CLATTN__RPE_TILE_MAX_RD 8

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* FFT beats the direct sums for this problem (the cost model above). */
static bool fft_cheaper(const clattn__rpe_problem *p)
{
    double n = (double)p->n, m = (double)p->m, dv = (double)p->dv;
    double direct = n * (m + dv) * (p->causal ? 0.5 : 1.0);
    return direct >= CLATTN__RPE_FFT_CROSSOVER * m * (dv + 1.0) * log2(2.0 * n);
}

/* Groups of (batch, key head, feature) triples, Dv + 1 signals each, whose real rows and spectra
 * (plus the per-query-head product spectra when they are shared) fit the budget. Every group has
 * the same number of signals (the last padded with zero rows) so that clFFT bakes one plan per
 * direction. */
static void fft_groups(const clattn_device_info *dev, const clattn__rpe_problem *p,
                       clattn__rpe_launch *out)
{
    out->fft_len = p->fft_len;
    out->fft_bins = p->fft_len / 2 + 1;
    out->spectra_shared = p->hq > p->hk;
    size_t spectra = out->spectra_shared ? 2 : 1;
    size_t per_signal = out->fft_len * sizeof(float) + spectra * out->fft_bins * 2 * sizeof(float);
    size_t cols = p->dv + 1, total = p->batch * p->hk * p->m;
    size_t budget = p->fft_scratch ? p->fft_scratch : CLATTN__RPE_FFT_SCRATCH;
    if (dev->max_alloc_size && dev->max_alloc_size / 2 < budget)
        budget = (size_t)(dev->max_alloc_size / 2);
    size_t cap = budget / (per_signal * cols);
    if (cap == 0)
        cap = 1; /* one triple at least; the buffer allocation reports if even that is too big */
    out->groups = div_up(total, cap);
    out->per_group = div_up(total, out->groups);
    out->signals = out->per_group * cols;
}

/* The work-group sizes and __local bytes of the tiled direct kernel for `dv` value columns. */
static void tile_shape(const clattn__rpe_problem *p, clattn__rpe_launch *out, size_t *rd)
{
    size_t tx = CLATTN__RPE_TILE_TX, ty = CLATTN__RPE_TILE_TY;
    *rd = div_up(p->dv, tx);
    if (*rd > CLATTN__RPE_TILE_MAX_RD)
        *rd = CLATTN__RPE_TILE_MAX_RD;
    size_t br = CLATTN__RPE_TILE_RM * ty, bc = CLATTN__RPE_TILE_RN * tx, dt = *rd * tx;
    out->tile_rows = br;
    out->tile_local = tx * ty;
    out->tile_dv_groups = div_up(p->dv, dt);
    out->tile_local_bytes =
        (CLATTN__RPE_TILE_MK * (br + bc) + br * (bc + 1) + bc * dt) * sizeof(float);
}

/* Tiled or per-row direct sums: tiled on GPU-like devices whose local memory and work-group
 * size take the tile (or when the problem asks for it, e.g. tests on PoCL); its -D options are
 * appended to the defines (`used` characters written so far). */
static void direct_tiles(const clattn_device_info *dev, const clattn__rpe_problem *p,
                         clattn__rpe_launch *out, size_t used)
{
    size_t rd;
    tile_shape(p, out, &rd);
    bool fits = out->tile_local_bytes <= dev->local_mem_size &&
                out->tile_local <= dev->max_work_group_size &&
                (dev->max_work_item_sizes[0] == 0 || out->tile_local <= dev->max_work_item_sizes[0]);
    bool tiled = fits && (p->direct_kernel == CLATTN__RPE_DIRECT_TILED ||
                          (p->direct_kernel == CLATTN__RPE_DIRECT_AUTO &&
                           clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU));
    if (!tiled) {
        out->tile_rows = out->tile_local = out->tile_dv_groups = out->tile_local_bytes = 0;
        return;
    }
    out->direct_tiled = 1;
    if (used < sizeof out->defines)
        snprintf(out->defines + used, sizeof out->defines - used,
                 " -DRPE_TILED=1 -DRPE_TX=%d -DRPE_TY=%d -DRPE_RM=%d -DRPE_RN=%d -DRPE_RD=%zu"
                 " -DRPE_MK=%d",
                 CLATTN__RPE_TILE_TX, CLATTN__RPE_TILE_TY, CLATTN__RPE_TILE_RM,
                 CLATTN__RPE_TILE_RN, rd, CLATTN__RPE_TILE_MK);
}

clattn_status clattn__schedule_rpe(const clattn_device_info *dev, const clattn__rpe_problem *p,
                                   clattn_rpe_algo requested, clattn__rpe_launch *out, char *why,
                                   size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (!dev || !p)
        return CLATTN_NULL_POINTER;
    if (p->batch == 0 || p->hq == 0 || p->hk == 0 || p->n == 0 || p->m == 0 || p->dv == 0) {
        say(why, why_len, "every size must be >= 1");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->dv > CLATTN__RPE_MAX_DV) {
        say(why, why_len, "value columns beyond RPE_MAX_DV");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->hq % p->hk != 0) {
        say(why, why_len, "query heads are not a multiple of the key heads");
        return CLATTN_INVALID_ARGUMENT;
    }
    if (requested != CLATTN_RPE_AUTO && requested != CLATTN_RPE_FFT &&
        requested != CLATTN_RPE_DIRECT) {
        say(why, why_len, "unknown algorithm");
        return CLATTN_INVALID_ARGUMENT;
    }
    size_t head = p->causal ? div_up(p->n, CLATTN__RPE_CAUSAL_HEAD_DIV) : 0;
    bool fft;
    if (head >= p->n) {
        fft = false; /* N = 1 causal: the head rows are every row */
        say(why, why_len, "direct: the causal head rows cover the sequence");
    } else if (requested != CLATTN_RPE_AUTO) {
        fft = requested == CLATTN_RPE_FFT;
        say(why, why_len, "requested");
    } else {
        fft = fft_cheaper(p);
        say(why, why_len,
            fft ? "fft: cheaper by the cost model" : "direct: cheaper by the cost model");
    }
    if (fft && p->fft_len < 2 * p->n - 1) {
        say(why, why_len, "the FFT length is below 2N - 1");
        return CLATTN_INVALID_ARGUMENT;
    }
    out->algo = fft ? CLATTN_RPE_FFT : CLATTN_RPE_DIRECT;
    if (fft) {
        out->head_rows = head;
        fft_groups(dev, p, out);
    }
    out->parts = CLATTN__RPE_PARTS;
    /* The feature kernels (linear.cl's) run one item per work-group where their loops need it:
     * on CPU-style devices (the driver would otherwise pack items into long per-lane loops) and on
     * devices with a loop-iteration cap counted over a work-group (llvmpipe). */
    bool capped = dev->loop_iteration_cap != 0 || dev->simt_cpu;
    out->features_local =
        capped || clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU ? 1 : 0;
    out->favor_local = capped ? 1 : 0;
    if (p->direct_kernel != CLATTN__RPE_DIRECT_AUTO && p->direct_kernel != CLATTN__RPE_DIRECT_ROWS &&
        p->direct_kernel != CLATTN__RPE_DIRECT_TILED) {
        say(why, why_len, "unknown direct kernel");
        return CLATTN_INVALID_ARGUMENT;
    }
    int n = snprintf(out->defines, sizeof out->defines, "-DRPE_MAX_DV=%d -DRPE_PARTS=%zu",
                     CLATTN__RPE_MAX_DV, out->parts);
    if (!fft || out->head_rows > 0)
        direct_tiles(dev, p, out, (size_t)n);
    return CLATTN_SUCCESS;
}
