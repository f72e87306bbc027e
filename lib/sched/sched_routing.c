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
 *     size (N for scores/assign, w for attend), within the device's limits. */
#include "sched.h"

#include <stdio.h>

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

clattn_status clattn__schedule_routing(const clattn_device_info *dev,
                                       const clattn__routing_problem *p,
                                       clattn__routing_launch *out, char *why, size_t why_len)
{
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
    say(why, why_len, "");
    return CLATTN_SUCCESS;
}
