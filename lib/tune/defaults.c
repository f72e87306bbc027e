/* Shipped defaults: the scheduler's starting points per vendor family, before any tuning.
 *
 *  family      match (GPU / accelerator class only)        SIMD width  TILED_GPU work-group
 *  NVIDIA      vendor id 0x10DE or vendor "NVIDIA"         32 (warp)   128 = 4 warps
 *  AMD         vendor id 0x1002 or vendor "AMD"/"Advanced" 64 (wave)   256 = 4 waves for D <= 64,
 *                                                                      128 above (register room)
 *  Intel       vendor id 0x8086 or vendor "Intel"          8-32 (SIMD) 64 (its EUs run narrow
 *                                                                      sub-groups; small groups
 *                                                                      keep more of them busy)
 *  Apple/ARM   vendor "Apple", "ARM", "Qualcomm"           32          64
 *  other GPU   anything else                               -           128
 *
 * Key tiles come from the local memory size (sched.c: the largest power of two <= 64 with K and V
 * tiles fitting), so a 48 KiB NVIDIA part gets 64-key tiles at D = 64 and 32 at D = 128, and a
 * 64 KiB AMD or Intel part 64 and 64. CPUs are not in this table: their family (register
 * blocking) is chosen from the vector width, and their rows per work-item from D (sched.c).
 * These are starting points measured on none of those GPUs here (the machines have none): the
 * tuner (`clattn tune`) replaces them with measurements per device. CLATTN_GPU_WG_SIZE=N
 * overrides the work-group size for experiments. */
#include "../core/internal.h"
#include "../sched/sched.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct vendor_row {
    const char *family;
    unsigned vendor_id;
    const char *names[3];
    unsigned simd_width;
    unsigned wg_small_d; /* work-group for D <= 64 */
    unsigned wg_large_d; /* for D > 64 */
} vendor_row;

static const vendor_row table[] = {
    {"NVIDIA", 0x10DE, {"nvidia", NULL, NULL}, 32, 128, 128},
    {"AMD", 0x1002, {"advanced micro", "amd", NULL}, 64, 256, 128},
    {"Intel", 0x8086, {"intel", NULL, NULL}, 16, 64, 64},
    {"Apple/ARM", 0, {"apple", "arm", "qualcomm"}, 32, 64, 64},
};
static const vendor_row other = {"other GPU", 0, {NULL, NULL, NULL}, 0, 128, 128};

static bool contains_lower(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static const vendor_row *row_for(const clattn_device_info *dev)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].vendor_id && dev->vendor_id == table[i].vendor_id)
            return &table[i];
        for (size_t j = 0; j < 3 && table[i].names[j]; j++)
            if (contains_lower(dev->vendor, table[i].names[j]))
                return &table[i];
    }
    return &other;
}

const char *clattn__vendor_family(const clattn_device_info *dev)
{
    return row_for(dev)->family;
}

size_t clattn__default_gpu_wg(const clattn_device_info *dev, size_t head_dim)
{
    const char *env = getenv("CLATTN_GPU_WG_SIZE");
    if (env && *env) {
        long v = strtol(env, NULL, 10);
        if (v > 0 && (v & (v - 1)) == 0)
            return (size_t)v;
    }
    const vendor_row *r = row_for(dev);
    return head_dim <= 64 ? r->wg_small_d : r->wg_large_d;
}

unsigned clattn__gpu_simd_width(const clattn_device_info *dev)
{
    return row_for(dev)->simd_width;
}
