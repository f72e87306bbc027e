/* Launch sizes of the DEQ solvers' vector kernels (kernels_cl/deq.cl): how many partial sums a
 * dot product is split into, and the work-group sizes of the kernels that loop. */
#include "sched.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void clattn__schedule_deq(const clattn_device_info *dev, size_t len, clattn__deq_launch *out)
{
    memset(out, 0, sizeof *out);
    /* Partial sums of at least CLATTN__DEQ_MIN_PER_PART elements each (the host adds them in
     * double: more parts cost a bigger read-back and host sum, fewer leave items idle); 256
     * parts cover a GPU's wave of work-groups and every CPU core. Not measured: the solver's cost
     * is dominated by f (GEMMs and attention over the same data). */
    size_t parts = 1;
    while (parts * 2 <= CLATTN__DEQ_MAX_PARTS && parts * 2 * CLATTN__DEQ_MIN_PER_PART <= len)
        parts *= 2;
    out->parts = parts;
    /* llvmpipe runs a work-group's items inside one loop and counts their iterations against its
     * cap: the looping kernels (dots: len / parts iterations; LayerNorm: 3 d) get single-item
     * work-groups there. */
    bool one = dev->simt_cpu || dev->loop_iteration_cap != 0;
    /* Explicit work-group sizes everywhere (global sizes rounded up to them): PoCL compiles a
     * kernel once per work-group size, and with the driver's choice the dots kernel's varying
     * row count (1 to m + 1) made it compile again and again in a solver's first iterations. */
    size_t local = 1;
    while (local * 2 <= CLATTN__DEQ_LOCAL && local * 2 <= dev->max_work_group_size &&
           local * 2 <= dev->max_work_item_sizes[0])
        local *= 2;
    out->dots_local = one ? 1 : (parts < local ? parts : local);
    out->comb_local = local;
    out->ln_local = one ? 1 : local;
    snprintf(out->defines, sizeof out->defines, "-DDEQ_PARTS=%zu", parts);
}
