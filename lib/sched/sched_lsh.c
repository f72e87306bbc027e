/* Launch decisions of Reformer LSH attention (lib/ops/lsh.c, kernels_cl/lsh.cl): pure functions of
 * the device description and the problem, unit-tested on made-up devices (tests/test_sched_lsh.c).
 *
 * Rows per work-item (LSH_ROWS): the hash kernel rotates LSH_ROWS consecutive positions per
 * work-item and the attend kernel computes LSH_ROWS consecutive sorted queries per work-item, so
 * each rotation column and each key panel loaded feeds LSH_ROWS rows. Each row keeps its query
 * (Dp floats) and its accumulators (Dvp floats) in private memory, so rows shrink as the head dims
 * grow: 4 up to Dp, Dvp <= 64, 2 up to 128, else 1 -- the rule of softmax's register-blocked CPU
 * kernel (sched.c), which measured fastest on PoCL; the kernels were written and measured on
 * PoCL with it. On GPUs the kernels are correct but not tuned: the same rule applies and the tuner
 * may try the other combinations (clattn__lsh_candidates); the attend step, though, runs the
 * register-tiled clattn_lsh_attend_gpu on GPU-like devices (the tiled attend below).
 *
 * Work-groups: every kernel has a fixed local size, since PoCL compiles a kernel once per local
 * size and the driver's own choice would follow N (a build per new length). The per-position
 * kernels (pack_v, combine) run 16 work-items per group over N rounded up to 16; the hash kernel
 * 16 / LSH_ROWS; the attend kernel 16 / LSH_ROWS, so one group covers one 16-slot panel of
 * sorted queries and the group size divides the global size (whole panels). A small group also
 * matters on CPUs: PoCL lays out every work-item's private arrays of a group on one thread's
 * stack, and a large group of attend work-items overflowed it. The sort, key-packing and scan
 * kernels run one work-item per group: each is a long sequential loop.
 *
 * The sort of each (batch, head, round) segment by bucket: lsh.cl's counting sort (per tile of
 * positions a histogram of the n_buckets buckets, one exclusive scan in (bucket, tile) order in
 * one work-item, then an in-order scatter: stable, no atomics, no barriers) or the radix-sort
 * block of lib/ops/sort.h (8-bit LSD passes over blocks of 1024..16384 keys). Tiles hold
 * max(n_buckets, CLATTN__LSH_MIN_TILE) positions, so each histogram work-item clears n_buckets
 * counters and the scan walks n_buckets x tiles counters. With a few buckets this is one cheap
 * pass; as n_buckets grows, the work-items get fewer and longer (N / n_buckets per segment) and
 * the scan longer (at least n_buckets), while the block keeps 256 counters per work-item and
 * blocks of at least 1024 keys (its SORT_MIN_BLOCK) in two passes up to 65536 buckets. The
 * crossover, CLATTN__LSH_COUNTING_MAX_BUCKETS = 1024, is where the counting sort's tile reaches
 * the block's minimum block; it is set by that argument, not yet by a measurement (the streams'
 * machine was shared and not timed: `clattn bench lsh --buckets ...` on both sides of it is the
 * measurement to take). Independently of that, a device with a loop-iteration cap gets the
 * radix-sort block whenever the counting sort's loops would pass the cap (the block bounds its
 * loops by SORT_MAX_BLOCK).
 *
 * Loop caps (llvmpipe, dev->loop_iteration_cap = 65535): measured on rusticl/llvmpipe, the cap
 * counts the iterations of every loop of a kernel together, per work-item (lanes of a group run in
 * lockstep and count once): a flat loop stops after 65535 iterations, two nested loops of a x b
 * after 65535 / (b + 2) outer iterations. The hash kernel's column loop and the attend kernel's
 * panel loop then end early and answer wrongly (argmax over a prefix of the columns; keys past
 * a prefix of the window ignored). Where they broke (bucket mismatches, attention errors) on
 * llvmpipe: hash, 2 hashes, D 8: 65536 buckets at every LSH_ROWS, 32768 from 2 rows, 16384 at 8;
 * 1 hash: D 8, 65536 buckets from 2 rows; D 64, 16384 buckets at 1 row, 8192 from 2; D 200, 4096
 * at 1. attend, D = Dv = 8: one chunk of 4096 at 8 rows, chunks of 8192 at 1. The per-work-item
 * counts are bounded by
 *   hash:   n_hashes x ceil(n_buckets / 32) x (D (rows + 2) + 16) + 2 rows Dp
 *   attend: windows x (chunk padded to 16) / 16 x (rows (Dp + Dvp + 16) + 32)
 * which exceed 65535 at every failing point above (and at three passing ones: conservative).
 * On such a device the scheduler halves LSH_ROWS until both fit, and refuses (UNSUPPORTED) a
 * problem that does not fit even with one row: very many buckets or hashes with a large D, or
 * chunks of thousands of positions, rather than answer wrongly. */
#include "sched.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Private floats per work-item of the default rule: rows x max(Dp, Dvp) <= this (4 x 64, 2 x 128,
 * 1 x 256). Explicit launches may take up to twice as much (a spill the tuner can measure). */
#define LSH_ROW_FLOATS 256
/* Work-items per group of the per-position kernels. */
#define LSH_ROW_LOCAL 16

static size_t pad_panel(size_t x)
{
    return (x + CLATTN__LSH_PANEL - 1) / CLATTN__LSH_PANEL * CLATTN__LSH_PANEL;
}

static void say(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

static size_t floor_pow2(size_t x)
{
    size_t p = 1;
    while (p * 2 <= x)
        p *= 2;
    return p;
}

static bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

static size_t wg_limit(const clattn_device_info *dev)
{
    size_t lim = dev->max_work_group_size ? dev->max_work_group_size : 1;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < lim)
        lim = dev->max_work_item_sizes[0];
    return lim;
}

static clattn_status check_problem(const clattn__lsh_problem *p, char *why, size_t why_len)
{
    if (p->bh < 1 || p->n < 1 || p->d < 1 || p->dv < 1 || p->d > CLATTN__MAX_HEAD_DIM ||
        p->dv > CLATTN__MAX_HEAD_DIM) {
        say(why, why_len, "sizes must be >= 1 and head dims at most 256");
        return CLATTN_INVALID_SHAPE;
    }
    if (p->n_hashes < 1 || p->n_hashes > CLATTN_LSH_MAX_HASHES || p->n_buckets < 2 ||
        p->n_buckets > CLATTN_LSH_MAX_BUCKETS || p->n_buckets % 2 != 0 || p->chunk_size < 1) {
        say(why, why_len, "hashes, buckets or chunk size out of range");
        return CLATTN_INVALID_ARGUMENT;
    }
    return CLATTN_SUCCESS;
}

static size_t max_dim(const clattn__lsh_problem *p)
{
    size_t dp = pad_panel(p->d), dvp = pad_panel(p->dv);
    return dp > dvp ? dp : dvp;
}

static size_t sort_tile(const clattn__lsh_problem *p)
{
    return p->n_buckets > CLATTN__LSH_MIN_TILE ? p->n_buckets : CLATTN__LSH_MIN_TILE;
}

/* The counting sort's loops stay under the device's loop-iteration cap (counted per work-item
 * over all the loops of a kernel): the histogram clears n_buckets counters and counts a tile, the
 * scan walks n_buckets x tiles counters, the scatter a tile. */
static bool counting_fits(const clattn_device_info *dev, const clattn__lsh_problem *p)
{
    if (dev->loop_iteration_cap == 0)
        return true;
    uint64_t tile = sort_tile(p), tiles = (p->n + tile - 1) / tile;
    uint64_t cap = dev->loop_iteration_cap;
    return p->n_buckets + tile <= cap && p->n_buckets * tiles <= cap;
}

/* Upper bounds of the loop iterations of one hash and one attend work-item (see the top). */
static uint64_t hash_iterations(const clattn__lsh_problem *p, unsigned rows)
{
    uint64_t blocks = pad_panel(p->n_buckets / 2) / CLATTN__LSH_PANEL;
    return (uint64_t)p->n_hashes * blocks * (p->d * (rows + 2) + 16) +
           2ull * rows * pad_panel(p->d);
}

static uint64_t attend_iterations(const clattn__lsh_problem *p, unsigned rows)
{
    size_t chunk = p->chunk_size < p->n ? p->chunk_size : p->n;
    uint64_t windows = (p->n + chunk - 1) / chunk > 1 ? 2 : 1;
    uint64_t panels = pad_panel(chunk) / CLATTN__LSH_PANEL;
    return windows * panels * (rows * (pad_panel(p->d) + pad_panel(p->dv) + 16) + 32);
}

static bool kernels_fit(const clattn_device_info *dev, const clattn__lsh_problem *p,
                        unsigned rows)
{
    uint64_t cap = dev->loop_iteration_cap;
    return cap == 0 || (hash_iterations(p, rows) <= cap && attend_iterations(p, rows) <= cap);
}

static void say_cap(char *why, size_t len, const clattn_device_info *dev,
                    const clattn__lsh_problem *p, unsigned rows)
{
    if (why && len)
        snprintf(why, len,
                 "the device ends loops after %llu iterations; with %u row(s) per work-item the "
                 "hash kernel needs up to %llu and the attend kernel %llu (fewer buckets or "
                 "hashes, a smaller head dim or chunk)",
                 (unsigned long long)dev->loop_iteration_cap, rows,
                 (unsigned long long)hash_iterations(p, rows),
                 (unsigned long long)attend_iterations(p, rows));
}

static unsigned bucket_bits(size_t n_buckets)
{
    unsigned bits = 1;
    while (bits < 32 && ((size_t)1 << bits) < n_buckets)
        bits++;
    return bits;
}

static void fill(const clattn_device_info *dev, const clattn__lsh_problem *p, unsigned rows,
                 size_t local, int counting, clattn__lsh_launch *out)
{
    memset(out, 0, sizeof *out);
    size_t lim = wg_limit(dev);
    out->rows = rows;
    out->local_size = local;
    out->row_local = LSH_ROW_LOCAL <= lim ? LSH_ROW_LOCAL : floor_pow2(lim);
    out->hash_local = out->row_local / rows ? out->row_local / rows : 1;
    out->counting_sort = counting;
    out->sort_tile = (unsigned)sort_tile(p);
    out->key_bits = bucket_bits(p->n_buckets);
    snprintf(out->defines, sizeof out->defines,
             "-DLSH_DP=%zu -DLSH_DVP=%zu -DLSH_ROWS=%u -DLSH_PANEL=%d", pad_panel(p->d),
             pad_panel(p->dv), rows, CLATTN__LSH_PANEL);
    (void)clattn__lsh_attend_kernel(dev, p, CLATTN__LSH_ATTEND_AUTO, NULL, out, NULL, 0);
}

/* ---- the tiled attend (kernels_cl/lsh.cl clattn_lsh_attend_gpu, issue 12) ----
 * The tile candidates and rules of routing's tiled attend (lib/sched/sched_routing.c): TX x TY,
 * RM x RN = 8 x 8, 4 x 8 (Dvp <= 128), 16 x 8, 4 x 4, 8 x 8, 4 x 4, 8 x 4, 4 x 4, the first that
 * fits (32-key tiles first for chunks of at most 32 slots); Q/K head dims QC = min(Dp, 64), 32
 * or 16 at a time, V's VC = min(Dvp rounded up to TX, 64). oclgrind measures it
 * (tests/inst_counts_ops.sh, ctest inst_counts_lsh). Not tuned on a GPU (none here). */
static const unsigned lg_cand[][4] = {{8, 8, 4, 8}, {16, 8, 4, 4}, {8, 8, 4, 4}, {8, 4, 4, 4}};

static size_t lg_local_bytes(size_t br, size_t bc, size_t tx, size_t qc, size_t vc)
{
    size_t kt = qc * (bc + 1), vt = bc * vc;
    /* ints: the group's positions and buckets, the tile's, and its window's key range */
    return sizeof(float) * (qc * br + (kt > vt ? kt : vt) + br * bc + br * tx) +
           sizeof(int) * (2 * (br + bc) + 2);
}

static clattn_status lg_tile(const clattn_device_info *dev, const clattn__lsh_problem *p,
                             const unsigned t[4], clattn__lsh_launch *out, char *why,
                             size_t why_len)
{
    unsigned tx = t[0], ty = t[1], rm = t[2], rn = t[3];
    if (!is_pow2(tx) || !is_pow2(ty) || !is_pow2(rm) || !is_pow2(rn) || tx > 64 || ty > 64 ||
        rm > 8 || rn > 8) {
        say(why, why_len, "tile: tx, ty up to 64, rm, rn up to 8, all powers of two");
        return CLATTN_UNSUPPORTED;
    }
    size_t wg = (size_t)tx * ty, br = (size_t)ty * rm, bc = (size_t)tx * rn;
    size_t dp = pad_panel(p->d), dvp = pad_panel(p->dv);
    if (wg > wg_limit(dev) || wg > 1024) {
        say(why, why_len, "tile: work-group beyond the device limit");
        return CLATTN_UNSUPPORTED;
    }
    size_t vc = (dvp + tx - 1) / tx * tx, vmax = 64 / tx * tx;
    if (vmax < tx)
        vmax = tx;
    if (vc > vmax)
        vc = vmax;
    size_t ra = (dvp + vc - 1) / vc * (vc / tx);
    if ((size_t)rm * ra > 64 || (size_t)rm * rn > 32) {
        say(why, why_len, "tile: micro-tiles beyond the register budget");
        return CLATTN_UNSUPPORTED;
    }
    size_t qcs[] = {dp < 64 ? dp : 64, 32, 16}, qc = 0;
    for (size_t i = 0; i < 3 && !qc; i++)
        if (qcs[i] <= dp && lg_local_bytes(br, bc, tx, qcs[i], vc) <= dev->local_mem_size)
            qc = qcs[i];
    if (!qc) {
        say(why, why_len, "tile: tiles beyond the local memory");
        return CLATTN_UNSUPPORTED;
    }
    if (dev->loop_iteration_cap) { /* every loop of a work-item together, without unrolling */
        size_t chunk = p->chunk_size < p->n ? p->chunk_size : p->n;
        uint64_t windows = (p->n + chunk - 1) / chunk > 1 ? 2 : 1;
        uint64_t tiles = (windows * pad_panel(chunk) + bc - 1) / bc;
        uint64_t nqc = (dp + qc - 1) / qc, nvc = (dvp + vc - 1) / vc;
        /* plus the group's bucket range (br) and the window's scan for its key range */
        uint64_t scan = br + (windows * pad_panel(chunk) + wg - 1) / wg;
        if (clattn__attend_tiled_loops(tiles, nqc, nvc, br, bc, qc, vc, wg, tx, rm, rn, ra) +
                scan > dev->loop_iteration_cap) {
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
    out->attend_local_bytes = lg_local_bytes(br, bc, tx, qc, vc);
    return CLATTN_SUCCESS;
}

void clattn__lsh_attend_defines(const clattn__lsh_launch *L, char *out, size_t len)
{
    if (len)
        snprintf(out, len,
                 "%s -DLSH_GPU=1 -DLSH_GTX=%u -DLSH_GTY=%u -DLSH_GRM=%u -DLSH_GRN=%u "
                 "-DLSH_GQC=%u -DLSH_GVC=%u",
                 L->defines, L->gpu_tx, L->gpu_ty, L->gpu_rm, L->gpu_rn, L->gpu_qc, L->gpu_vc);
}

clattn_status clattn__lsh_attend_kernel(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                        int kernel, const unsigned *tile, clattn__lsh_launch *out,
                                        char *why, size_t why_len)
{
    out->attend_tiled = 0;
    out->gpu_tx = out->gpu_ty = out->gpu_rm = out->gpu_rn = out->gpu_qc = out->gpu_vc = 0;
    out->attend_rows = out->attend_local = out->attend_local_bytes = 0;
    if (kernel < CLATTN__LSH_ATTEND_AUTO || kernel > CLATTN__LSH_ATTEND_TILED) {
        say(why, why_len, "unknown attend kernel");
        return CLATTN_INVALID_ARGUMENT;
    }
    bool want = kernel == CLATTN__LSH_ATTEND_TILED ||
                (kernel == CLATTN__LSH_ATTEND_AUTO &&
                 clattn__softmax_family(dev) == CLATTN_SOFTMAX_TILED_GPU);
    if (!want)
        return CLATTN_SUCCESS;
    if (tile)
        return lg_tile(dev, p, tile, out, why, why_len);
    size_t chunk = p->chunk_size < p->n ? p->chunk_size : p->n;
    static const size_t order[2][4] = {{0, 1, 2, 3}, {2, 3, 0, 1}};
    const size_t *ord = order[pad_panel(chunk) <= 32 ? 1 : 0];
    for (size_t i = 0; i < 4; i++) {
        size_t c = ord[i];
        if (c == 0 && pad_panel(p->dv) > 128)
            continue; /* 4 x ceil(Dv / 8) accumulators: over the budget */
        if (lg_tile(dev, p, lg_cand[c], out, NULL, 0) == CLATTN_SUCCESS)
            return CLATTN_SUCCESS;
    }
    if (kernel == CLATTN__LSH_ATTEND_TILED) {
        say(why, why_len, "no tile of the tiled attend fits the device");
        return CLATTN_UNSUPPORTED;
    }
    out->attend_tiled = 0; /* none fits: the per-row kernel */
    return CLATTN_SUCCESS;
}

clattn_status clattn__lsh_launch_from(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                      unsigned rows, size_t local_size, int counting_sort,
                                      clattn__lsh_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    clattn_status status = check_problem(p, why, why_len);
    if (status != CLATTN_SUCCESS)
        return status;
    if (!(rows == 1 || rows == 2 || rows == 4 || rows == 8) ||
        rows * max_dim(p) > 2 * LSH_ROW_FLOATS) {
        say(why, why_len, "rows per work-item must be 1, 2, 4 or 8, at most 512 private floats");
        return CLATTN_UNSUPPORTED;
    }
    if (!is_pow2(local_size) || rows * local_size > CLATTN__LSH_PANEL ||
        local_size > wg_limit(dev)) {
        say(why, why_len,
            "attend work-group must be a power of two, rows x group within one 16-slot panel "
            "and the device limit");
        return CLATTN_UNSUPPORTED;
    }
    if (counting_sort != 0 && counting_sort != 1) {
        say(why, why_len, "counting_sort must be 0 or 1");
        return CLATTN_UNSUPPORTED;
    }
    if (!kernels_fit(dev, p, rows)) {
        say_cap(why, why_len, dev, p, rows);
        return CLATTN_UNSUPPORTED;
    }
    if (counting_sort && !counting_fits(dev, p)) {
        say(why, why_len, "the counting sort's loops would pass the device's loop cap");
        return CLATTN_UNSUPPORTED;
    }
    fill(dev, p, rows, local_size, counting_sort, out);
    return CLATTN_SUCCESS;
}

clattn_status clattn__schedule_lsh(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                   clattn__lsh_launch *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    clattn_status status = check_problem(p, why, why_len);
    if (status != CLATTN_SUCCESS)
        return status;
    size_t dim = max_dim(p);
    unsigned rows = dim <= 64 ? 4 : dim <= 128 ? 2 : 1;
    while (rows > 1 && !kernels_fit(dev, p, rows))
        rows /= 2;
    if (!kernels_fit(dev, p, rows)) {
        say_cap(why, why_len, dev, p, rows);
        return CLATTN_UNSUPPORTED;
    }
    size_t local = CLATTN__LSH_PANEL / rows, lim = wg_limit(dev);
    if (local > lim)
        local = floor_pow2(lim);
    int counting = p->n_buckets <= CLATTN__LSH_COUNTING_MAX_BUCKETS && counting_fits(dev, p);
    fill(dev, p, rows, local, counting, out);
    say(why, why_len,
        counting ? "counting sort" : "radix-sort block (many buckets, or the device's loop cap)");
    return CLATTN_SUCCESS;
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

/* Changing LSH_ROWS is a new program build; changing only a local size a launch-time
 * specialisation. */
static unsigned distance(const clattn__lsh_launch *a, const clattn__lsh_launch *def)
{
    return 2 * log2_dist(a->rows, def->rows) + log2_dist(a->local_size, def->local_size);
}

size_t clattn__lsh_candidates(const clattn_device_info *dev, const clattn__lsh_problem *p,
                              clattn__lsh_launch *out, size_t cap)
{
    clattn__lsh_launch def, c;
    if (cap == 0 || clattn__schedule_lsh(dev, p, &def, NULL, 0) != CLATTN_SUCCESS)
        return 0;
    size_t n = 0;
    out[n++] = def;
    static const unsigned rows[] = {1, 2, 4, 8};
    for (size_t i = 0; i < 4; i++)
        for (size_t local = 1; local <= CLATTN__LSH_PANEL; local *= 2) {
            if (n >= cap)
                return n;
            if (clattn__lsh_launch_from(dev, p, rows[i], local, def.counting_sort, &c, NULL, 0) !=
                    CLATTN_SUCCESS ||
                (c.rows == def.rows && c.local_size == def.local_size))
                continue;
            /* Sorted by distance from the default, stable. */
            size_t at = n;
            unsigned dc = distance(&c, &def);
            while (at > 1 && distance(&out[at - 1], &def) > dc) {
                out[at] = out[at - 1];
                at--;
            }
            out[at] = c;
            n++;
        }
    return n;
}
