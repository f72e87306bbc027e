/* The TILED_CPU family's scheduling rules for softmax attention (kernels_cl/softmax.cl's
 * clattn_softmax_fwd_cpu): its default tiles (register rows, query groups, key block, P.V passes,
 * work-group size), the split-KV count for few queries and the GQA folding. A file of its own
 * because its rules carry the record of their measurements; lib/sched/sched_softmax.c keeps the
 * family choice, TILED_GPU, the naive baseline, explicit launches and the tuner's space, and
 * shares its helpers with this file through lib/sched/sched_softmax.h.
 *
 * TILED_CPU tiles: a register group of 4 query rows up to D = 256, else 1 (by the larger of D and
 * Dv), consuming 32 keys per online-softmax step: 4 x 2 float16 score vectors, each K panel load
 * feeding 4 FMAs. The group's accumulators (rows x Dv floats) stay in vector registers through a
 * key block where they take at most 16 (Dv <= 64); beyond, they live in the work-item's private
 * arrays and each step adds P.V in slices of 4 rows x 4 vectors (cpu_pv_passes; until issue 11
 * D 128 kept 2 rows and D 256 one, whole, in registers: 1.7x and 2x more CPU time than these
 * slices in same-run A/B). A work-item owns CPU_QUERY_GROUPS = 16 such groups (64 rows; 32 from
 * 2048 query rows up to D 128, 8 below 256 query rows: cpu_groups) and walks the keys in blocks:
 * every group consumes a key block before the next one is read, so a block's K panels and V rows are reused 16 times
 * from L1 instead of each group streaming all of K and V (2 MiB per head at N 4096 D 64, past a
 * 2 MiB L2 shared with the queries). The block is the largest power of two of keys whose K and V
 * take at most CPU_KV_BLOCK_BYTES = 32 KiB (64 keys at D 64, 32 at D 128), between one step and
 * CPU_KV_BLOCK_MAX = 512 keys: half the 48 KiB L1d, so that a K line is still there when the next
 * group reads it (between two reads of a line the group touches the rest of the block plus its
 * own queries and accumulators, 2-4 KiB). Session 7 measured this on the 2-vCPU Xeon (48 KiB L1d,
 * 2 MiB L2 per core; same-run A/B, each run at real-time priority on a loaded machine): 8 groups
 * and 64 KiB blocks ran N 1024-8192 D 128 at 184-220 GFLOP/s, 16 groups and 32 KiB at 211-236;
 * D 64 N 4096 198-203 against 233-236; the same kernel with K and V made L1-resident (every step
 * reading the same keys) was only 7% faster than the 16 x 32 KiB schedule, against 21% faster
 * than 8 x 64 KiB. On the quiet machine afterwards 32 groups beat 16 by 3-6% at N 2048-8192 D 128
 * (docs/measurements/2026-12-07-cpu-d128.log). The tuner searches key blocks 32-512.
 */
#include "sched_softmax.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TILED_CPU cache blocking (see the rule at the top): register groups per work-item, and the
 * bytes of K and V one key block may take. */
#define CPU_QUERY_GROUPS 16
#define CPU_QUERY_GROUPS_SHORT 8
#define CPU_QUERY_GROUPS_LONG_NQ 256
#define CPU_QUERY_GROUPS_WIDE 32
#define CPU_QUERY_GROUPS_WIDE_NQ 2048
#define CPU_QUERY_GROUPS_WIDE_DMAX 128
#define CPU_KV_BLOCK_BYTES (32 * 1024)

/* Keys consumed per online-softmax step (the kernel's SOFTMAX_STEP_BLOCKS x 16) by the larger of
 * D and Dv: 64 up to 64 (16 score vectors; the accumulators then go through registers per step),
 * else 32 (64 measured 4% more CPU time at D 128). The plan pads the packed keys to a multiple
 * of 64 (lib/ops/softmax.c, plan_create), whole steps of either. */
unsigned clattn__softmax_cpu_step_keys(size_t d, size_t dv)
{
    return (d > dv ? d : dv) <= 64 ? 4 * CLATTN__KEY_BLOCK : 2 * CLATTN__KEY_BLOCK;
}

/* The default key block: the largest power of two whose K panels and V rows (D and Dv floats)
 * fit CPU_KV_BLOCK_BYTES, within [step, CPU_KV_BLOCK_MAX]. */
unsigned clattn__softmax_cpu_kv_block(size_t d, size_t dv)
{
    size_t per_key = (d + (dv + 15) / 16 * 16) * sizeof(float);
    size_t kv = clattn__softmax_floor_pow2(CPU_KV_BLOCK_BYTES / per_key);
    if (kv > CPU_KV_BLOCK_MAX)
        kv = CPU_KV_BLOCK_MAX;
    if (kv < clattn__softmax_cpu_step_keys(d, dv))
        kv = clattn__softmax_cpu_step_keys(d, dv);
    return (unsigned)kv;
}

/* V's head dim of a problem (0 there means D). */
size_t clattn__softmax_prob_dv(const clattn__softmax_problem *p)
{
    return p->head_dim_v ? p->head_dim_v : p->head_dim;
}

/* The register group's rows: by the larger of D and Dv (the rule at the top). */
static unsigned cpu_rows(size_t d, size_t dv)
{
    size_t m = d > dv ? d : dv;
    return m <= 256 ? 4 : 1;
}

/* P.V passes of the CPU kernel (SOFTMAX_PV_PASSES): a group's rows x ceil(Dv / 16) float16
 * accumulators stay in registers through a key block while they take at most CPU_PASS_VECTORS
 * (16 of the 32 AVX-512 registers: 4 rows at Dv 64, the scores and operands take the rest);
 * beyond, they stay in the work-item's private arrays (L1) and each 32-key step adds P.V in passes
 * of at most CPU_PASS_VECTORS / rows vectors per row, the step's rescale folded into their load
 * (4 rows: 2 passes at Dv 128, 4 at 256, 8 at 512). Before, D 128 kept 2 rows x 8 whole
 * accumulators in registers, so each K panel load fed 2 FMAs beside 2 broadcast loads and the
 * accumulators spilled around the softmax step; 4 rows in 2 passes cut the user CPU time of N
 * 4096 D 128 by 1.7x (same-run A/B, loaded machine). */
#define CPU_PASS_VECTORS 16
static unsigned cpu_pv_passes(size_t dv, unsigned rows)
{
    size_t vecs = (dv + 15) / 16, per = CPU_PASS_VECTORS / rows; /* rows <= 8: per >= 2 */
    if (rows * vecs <= CPU_PASS_VECTORS)
        return 1;
    return (unsigned)((vecs + per - 1) / per);
}

/* Register groups per work-item: CPU_QUERY_GROUPS_WIDE from CPU_QUERY_GROUPS_WIDE_NQ query rows on
 * up to D and Dv 128 (each K/V block read once per 128 rows: 3-6% over 16 groups at N 2048-8192
 * D 128 non-causal, equal causal, +1-5% at D 64; at N 1024 the fewer, longer work-items balanced
 * causal work worse; private memory stays at 128 KiB of queries and accumulators), else
 * CPU_QUERY_GROUPS from CPU_QUERY_GROUPS_LONG_NQ query rows on, else CPU_QUERY_GROUPS_SHORT (short
 * queries and decoding: fewer duplicate rows loaded and more work-items), and one on devices that
 * run this family although it is not theirs (a SIMT-style implementation or a GPU without room
 * for TILED_GPU, which run many work-items per group: one register group each keeps their
 * private memory at the single-group size; rusticl on llvmpipe returned NaNs with 8, in a build
 * that also had a lazy-rescale branch: the cause is not isolated). */
int clattn__softmax_cpu_groups(const clattn_device_info *dev, const clattn__softmax_problem *p)
{
    if (clattn__softmax_family(dev) != CLATTN_SOFTMAX_TILED_CPU)
        return 1;
    size_t d = p->head_dim, dv = clattn__softmax_prob_dv(p), dmax = d > dv ? d : dv;
    if (p->nq >= CPU_QUERY_GROUPS_WIDE_NQ && dmax <= CPU_QUERY_GROUPS_WIDE_DMAX)
        return CPU_QUERY_GROUPS_WIDE;
    return p->nq >= CPU_QUERY_GROUPS_LONG_NQ ? CPU_QUERY_GROUPS : CPU_QUERY_GROUPS_SHORT;
}

/* Fills a TILED_CPU launch from explicit parameters (already validated). The defines do not carry
 * the work-group size (the kernel has no reqd_work_group_size), so local sizes share a program.
 * tile_q counts the query rows of a work-group: rows x groups (cpu_groups) x local size. Dv itself
 * reaches the kernel through the plan (-DSOFTMAX_HEAD_DIM_V); the P.V passes are named here, and
 * only when above one (so launches of the old space keep their defines). */
void clattn__softmax_fill_cpu(int groups, size_t d, size_t dv, unsigned rows, size_t wg,
                              unsigned kv_block, clattn__softmax_launch *out)
{
    out->algo = CLATTN_SOFTMAX_TILED_CPU;
    out->rows_per_item = rows;
    out->tile_kv = kv_block;
    out->local_size = wg;
    out->tile_q = rows * (unsigned)groups * (unsigned)wg;
    out->local_mem_bytes = 0;
    snprintf(out->defines, sizeof out->defines,
             "-DSOFTMAX_HEAD_DIM=%zu -DSOFTMAX_ROWS=%u -DSOFTMAX_QGROUPS=%d -DSOFTMAX_TILE_KV=%u "
             "-DSOFTMAX_KEY_BLOCK=%d",
             d, rows, groups, kv_block, CLATTN__KEY_BLOCK);
    unsigned passes = cpu_pv_passes(dv, rows);
    unsigned step = clattn__softmax_cpu_step_keys(d, dv);
    if (step != 2 * CLATTN__KEY_BLOCK) /* the kernel's default is 2 panels */
        snprintf(out->defines + strlen(out->defines), sizeof out->defines - strlen(out->defines),
                 " -DSOFTMAX_STEP_BLOCKS=%u", step / CLATTN__KEY_BLOCK);
    if (passes > 1)
        snprintf(out->defines + strlen(out->defines), sizeof out->defines - strlen(out->defines),
                 " -DSOFTMAX_PV_PASSES=%u", passes);
}

void clattn__softmax_plan_cpu(const clattn_device_info *dev, const clattn__softmax_problem *p,
                              clattn__softmax_launch *out)
{
    size_t d = p->head_dim, dv = clattn__softmax_prob_dv(p);
    unsigned rows = cpu_rows(d, dv);
    /* On CPU devices a work-item is already a full vector thread: PoCL measured fastest with one
     * work-item per group (N4096 D64: 177 GFLOP/s against 119 with 8, which PoCL runs as a loop
     * it tries to vectorise across work-items). Real GPUs that land here (too little local
     * memory for TILED_GPU) need many work-items per group instead. */
    size_t wg = clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_CPU ? 1 : 64;
    size_t lim = clattn__softmax_wg_limit(dev);
    if (wg > lim)
        wg = clattn__softmax_floor_pow2(lim);
    clattn__softmax_fill_cpu(clattn__softmax_cpu_groups(dev, p), d, dv, rows, wg,
                             clattn__softmax_cpu_kv_block(d, dv), out);
}

/* ---- split-KV for few queries (issue 17 section 1) ----
 * TILED_CPU runs ceil(Nq / rows per work-item) x B x Hq work-items: one query over a long cache
 * with 8 heads is 8 work-items, too few to keep every core streaming K/V (and the last ones to
 * finish idle the rest). Splitting the keys into S ranges gives S times the work-items, each
 * writing a partial row merged by clattn_softmax_split_merge (one more small launch and
 * S x (Dv + 2) floats per row of scratch). Rule: split only on devices whose family is TILED_CPU
 * (a SIMT-style device running it has its own parallelism); aim at CPU_SPLIT_ITEMS_PER_CU
 * work-items per compute unit; never split below CPU_SPLIT_MIN_BLOCKS key blocks and
 * CPU_SPLIT_MIN_KEYS keys per range (so the merge and the per-item setup stay small against the
 * range's work; the keys' floor kept D 128's ranges at 256 keys when its key block went from 64
 * to 32 keys); at most
 * CPU_SPLIT_MAX. Prefill-sized Nq already has the work-items: S = 1 there, unchanged. Not
 * timed on a quiet machine yet: the constants are first guesses for the integrator to check
 * with `clattn bench decode --variants bandwidth,unsplit,split`. */
#define CPU_SPLIT_ITEMS_PER_CU 8
#define CPU_SPLIT_MIN_BLOCKS 4
#define CPU_SPLIT_MIN_KEYS 256
#define CPU_SPLIT_MAX 64

unsigned clattn__softmax_cpu_splits(const clattn_device_info *dev,
                                    const clattn__softmax_problem *p,
                                    const clattn__softmax_launch *L, size_t heads)
{
    if (L->algo != CLATTN_SOFTMAX_TILED_CPU || !L->local_size || !L->tile_q || !L->tile_kv)
        return 1;
    /* CLATTN_SOFTMAX_CPU_SPLITS=<n> (tests and the decode bench, not a public knob) forces S,
     * on any device that runs TILED_CPU; ranges past the keys stay empty. */
    const char *force = getenv("CLATTN_SOFTMAX_CPU_SPLITS");
    if (force && *force) {
        char *end = NULL;
        long n = strtol(force, &end, 10);
        if (end && *end == '\0' && n >= 1 && n <= 256)
            return (unsigned)n;
    }
    if (clattn__softmax_family(dev) != CLATTN_SOFTMAX_TILED_CPU)
        return 1;
    size_t per_item = L->tile_q / L->local_size;
    size_t items = (p->nq + per_item - 1) / (per_item ? per_item : 1) * heads;
    size_t cu = dev->compute_units ? dev->compute_units : 1;
    size_t target = CPU_SPLIT_ITEMS_PER_CU * cu;
    if (items >= target)
        return 1;
    size_t s = (target + items - 1) / items;
    size_t min_keys = (size_t)CPU_SPLIT_MIN_BLOCKS * L->tile_kv;
    if (min_keys < CPU_SPLIT_MIN_KEYS)
        min_keys = CPU_SPLIT_MIN_KEYS;
    size_t by_keys = p->nk / min_keys;
    if (s > by_keys)
        s = by_keys;
    if (s > CPU_SPLIT_MAX)
        s = CPU_SPLIT_MAX;
    return s < 2 ? 1 : (unsigned)s;
}

/* GQA folding (issue 17 section 1): TILED_CPU runs the G = Hq / Hk query heads of one KV head in
 * one work-item (-DSOFTMAX_GQA_FOLD=G) when G > 1 and their G x Nq rows fit the work-item's query
 * block (decoding: Nq 1 to 16 with G 4 or 8 at the default 32 rows), so each K/V panel is read once
 * per KV head instead of G times. `uniform`: no option varies by head within a group (the plan's
 * check: no ALiBi, no sinks, bias / mask / block mask broadcast over heads); 1 = no folding.
 * CLATTN_SOFTMAX_CPU_FOLD=0 (tests and the decode bench, not a public knob) turns it off. The split
 * count is then decided over the folded work-items: clattn__softmax_cpu_splits with nq = G x Nq
 * and heads = B x Hk. */
unsigned clattn__softmax_cpu_fold(const clattn__softmax_launch *L, size_t nq, size_t hq,
                                  size_t hk, int uniform)
{
    if (L->algo != CLATTN_SOFTMAX_TILED_CPU || !L->local_size || !L->tile_q || !uniform || !hk ||
        hq % hk != 0)
        return 1;
    const char *off = getenv("CLATTN_SOFTMAX_CPU_FOLD");
    if (off && strcmp(off, "0") == 0)
        return 1;
    size_t g = hq / hk, per_item = L->tile_q / L->local_size;
    return g > 1 && g <= 64 && g * nq <= per_item ? (unsigned)g : 1;
}
