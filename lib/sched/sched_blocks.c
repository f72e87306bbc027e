/* Launch rules of the sort / top-k / gather building blocks (lib/blocks/sort.c,
 * kernels_cl/sort.cl).
 *
 * Every block kernel gives one work-item a contiguous block of one segment and 2^SORT_BITS
 * counters in private memory (no __local memory, no barriers: DESIGN.md section 8). The rules:
 *   - digits of SORT_DIGIT_BITS = 8 bits: 256 private counters per work-item, four passes for a
 *     32-bit key (a radix sort of n keys costs 4 n reads and writes plus the counters);
 *   - a block holds at least SORT_MIN_BLOCK elements, so that clearing, scanning and writing the
 *     256 counters stays a quarter of a work-item's work at most;
 *   - blocks are sized for about SORT_ITEMS work-items over all segments (enough for every
 *     device here, and the scan over blocks stays short), and hold at most SORT_MAX_BLOCK
 *     elements: on a driver that ends long loops (llvmpipe counts 65535 iterations over a whole
 *     work-group, clattn_device_info.loop_iteration_cap) a work-group's blocks together stay
 *     below the cap;
 *   - work-groups of at most SORT_LOCAL items: CPU drivers lay out a work-group's private
 *     counters (1 KiB per item) on one thread's stack. */
#include "sched.h"

#include <stdio.h>

#define SORT_DIGIT_BITS 8
#define SORT_MIN_BLOCK 1024
#define SORT_MAX_BLOCK 16384
#define SORT_ITEMS 8192
#define SORT_LOCAL 8

void clattn__schedule_blocks(const clattn_device_info *dev, clattn__blocks_launch *out)
{
    out->bits = SORT_DIGIT_BITS;
    out->min_block = SORT_MIN_BLOCK;
    out->max_block = SORT_MAX_BLOCK;
    out->items = SORT_ITEMS;
    size_t local = SORT_LOCAL;
    if (dev->max_work_group_size && dev->max_work_group_size < local)
        local = dev->max_work_group_size;
    if (dev->max_work_item_sizes[0] && dev->max_work_item_sizes[0] < local)
        local = dev->max_work_item_sizes[0];
    uint64_t cap = dev->loop_iteration_cap;
    if (cap) {
        /* A whole work-group's loop iterations count against the cap. */
        while (local > 1 && cap / local < out->min_block)
            local /= 2;
        if (cap / local < out->max_block)
            out->max_block = (size_t)(cap / local);
        if (out->max_block < out->min_block)
            out->min_block = out->max_block ? out->max_block : 1;
        if (out->max_block == 0)
            out->max_block = out->min_block = 1;
    }
    out->local_size = local;
    snprintf(out->defines, sizeof out->defines, "-DSORT_BITS=%u", out->bits);
}

size_t clattn__sort_block(const clattn__blocks_launch *L, size_t nseg, size_t len)
{
    size_t n = nseg * len, items = L->items ? L->items : 1;
    size_t b = n / items + (n % items != 0);
    return b < L->min_block ? L->min_block : b > L->max_block ? L->max_block : b;
}
