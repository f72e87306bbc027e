/* Device discovery, device capability records and the context's lifetime. */
#include "internal.h"
#include "../blocks/fft.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

static void device_string(cl_device_id dev, cl_device_info what, char *out, size_t size)
{
    out[0] = '\0';
    if (clGetDeviceInfo(dev, what, size, out, NULL) != CL_SUCCESS)
        out[0] = '\0';
    out[size - 1] = '\0';
}

static void platform_string(cl_platform_id p, cl_platform_info what, char *out, size_t size)
{
    out[0] = '\0';
    if (clGetPlatformInfo(p, what, size, out, NULL) != CL_SUCCESS)
        out[0] = '\0';
    out[size - 1] = '\0';
}

static bool has_extension(cl_device_id dev, const char *ext)
{
    size_t n = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return false;
    char *s = malloc(n + 1);
    if (!s)
        return false;
    bool found = false;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, n, s, NULL) == CL_SUCCESS) {
        s[n] = '\0';
        size_t len = strlen(ext);
        for (const char *p = strstr(s, ext); p; p = strstr(p + 1, ext)) {
            if ((p == s || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0')) {
                found = true;
                break;
            }
        }
    }
    free(s);
    return found;
}

clattn_status clattn__query_device(cl_platform_id platform, cl_device_id dev,
                                   clattn_device_info *info)
{
    memset(info, 0, sizeof *info);
    platform_string(platform, CL_PLATFORM_NAME, info->platform_name, sizeof info->platform_name);
    platform_string(platform, CL_PLATFORM_VERSION, info->platform_version,
                    sizeof info->platform_version);
    device_string(dev, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_string(dev, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    device_string(dev, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    device_string(dev, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);

    cl_device_type type = 0;
    cl_ulong u64 = 0;
    cl_uint u32 = 0;
    cl_device_local_mem_type lmt = CL_LOCAL;
    cl_int err = clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    if (err != CL_SUCCESS)
        return (clattn_status)err;
    info->device_class = (type & CL_DEVICE_TYPE_GPU)           ? CLATTN_DEVICE_GPU
                         : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLATTN_DEVICE_ACCELERATOR
                         : (type & CL_DEVICE_TYPE_CPU)         ? CLATTN_DEVICE_CPU
                                                               : CLATTN_DEVICE_OTHER;
    clGetDeviceInfo(dev, CL_DEVICE_VENDOR_ID, sizeof u32, &u32, NULL);
    info->vendor_id = u32;
    if (clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
        info->global_mem_size = u64;
    if (clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
        info->max_alloc_size = u64;
    if (clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
        info->local_mem_size = u64;
    if (clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_TYPE, sizeof lmt, &lmt, NULL) == CL_SUCCESS)
        info->local_mem_emulated = (lmt == CL_GLOBAL);
    size_t wg = 1;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->max_work_group_size = wg ? wg : 1;
    size_t items[3] = {1, 1, 1};
    cl_uint dims = 3;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, sizeof dims, &dims, NULL);
    if (dims >= 3)
        clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL);
    memcpy(info->max_work_item_sizes, items, sizeof items);
    u32 = 1;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof u32, &u32, NULL);
    info->compute_units = u32 ? u32 : 1;
    u32 = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof u32, &u32, NULL);
    info->max_clock_mhz = u32;
    u32 = 1;
    clGetDeviceInfo(dev, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof u32, &u32, NULL);
    info->preferred_vector_width_float = u32 ? u32 : 1;
    u32 = 1;
    clGetDeviceInfo(dev, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof u32, &u32, NULL);
    info->native_vector_width_float = u32 ? u32 : 1;
    info->has_fp16 = has_extension(dev, "cl_khr_fp16");
    cl_device_fp_config fp64 = 0;
    clGetDeviceInfo(dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
    info->has_fp64 = fp64 != 0 || has_extension(dev, "cl_khr_fp64");
    /* Quirks measured on these drivers (DESIGN.md sections 8-9): llvmpipe (Mesa's rusticl)
     * stops every loop after 65535 iterations counted over a work-group. */
    if (strstr(info->name, "llvmpipe")) {
        info->loop_iteration_cap = 65535;
        info->simt_cpu = 1;
    }
    return CLATTN_SUCCESS;
}

typedef struct found_device {
    cl_platform_id platform;
    cl_device_id device;
    clattn_device_info info;
} found_device;

/* Enumerates all devices of all platforms into a malloc'd array. */
static clattn_status enumerate(found_device **out, size_t *count)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    *out = NULL;
    *count = 0;
    clattn__pocl_env_defaults();
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0)
        return clattn__fail(NULL, CLATTN_NO_DEVICE, "no OpenCL platform found (is an ICD such "
                                                    "as pocl-opencl-icd installed?)");
    if (err != CL_SUCCESS)
        return clattn__fail(NULL, (clattn_status)err, "clGetPlatformIDs failed (%d)", (int)err);
    if (np > MAX_PLATFORMS)
        np = MAX_PLATFORMS;
    found_device *list = calloc((size_t)np * MAX_DEVICES, sizeof *list);
    if (!list)
        return clattn__fail(NULL, CLATTN_OUT_OF_HOST_MEMORY, "cannot list devices");
    size_t n = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue; /* e.g. Clover with no device: skip the platform */
        if (nd > MAX_DEVICES)
            nd = MAX_DEVICES;
        for (cl_uint d = 0; d < nd; d++) {
            if (clattn__query_device(plats[p], devs[d], &list[n].info) != CLATTN_SUCCESS)
                continue;
            list[n].platform = plats[p];
            list[n].device = devs[d];
            list[n].info.platform_index = p;
            list[n].info.device_index = d;
            n++;
        }
    }
    if (n == 0) {
        free(list);
        return clattn__fail(NULL, CLATTN_NO_DEVICE, "%u OpenCL platform(s) but no device",
                            (unsigned)np);
    }
    *out = list;
    *count = n;
    return CLATTN_SUCCESS;
}

clattn_status clattn_list_devices(clattn_device_info *infos, size_t capacity, size_t *count)
{
    if (!count || (capacity > 0 && !infos))
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_list_devices: count is NULL, or "
                                                       "infos is NULL with capacity > 0");
    found_device *list = NULL;
    size_t n = 0;
    clattn_status st = enumerate(&list, &n);
    *count = n;
    for (size_t i = 0; i < n && i < capacity; i++)
        infos[i] = list[i].info;
    free(list);
    return st;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t hn = strlen(hay), nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
            j++;
        if (j == nn)
            return true;
    }
    return false;
}

/* Picks a device by "P:D", by name substring, or by the default order GPU > accelerator > CPU.
 * A selector that matches no device is an error (never a silent fall-back to the default order);
 * `from` names where it came from ("selector", "CLATTN_DEVICE") for the message. */
static clattn_status select_device(const found_device *list, size_t n, const char *sel,
                                   const char *from, size_t *chosen)
{
    if (sel && *sel) {
        unsigned p, d;
        char tail;
        if (sscanf(sel, "%u:%u%c", &p, &d, &tail) == 2) {
            for (size_t i = 0; i < n; i++)
                if (list[i].info.platform_index == p && list[i].info.device_index == d) {
                    *chosen = i;
                    return CLATTN_SUCCESS;
                }
            return clattn__fail(NULL, CLATTN_NO_DEVICE,
                                "%s '%s': no device %u:%u (%zu device%s; see `clattn devices`)",
                                from, sel, p, d, n, n == 1 ? "" : "s");
        }
        for (size_t i = 0; i < n; i++) {
            char full[300];
            snprintf(full, sizeof full, "%s %s", list[i].info.platform_name, list[i].info.name);
            if (contains_ci(full, sel)) {
                *chosen = i;
                return CLATTN_SUCCESS;
            }
        }
        return clattn__fail(NULL, CLATTN_NO_DEVICE,
                            "%s '%s' matches no device (neither P:D nor a substring of a "
                            "platform and device name; see `clattn devices`)",
                            from, sel);
    }
    static const clattn_device_class order[] = {CLATTN_DEVICE_GPU, CLATTN_DEVICE_ACCELERATOR,
                                                CLATTN_DEVICE_CPU, CLATTN_DEVICE_OTHER};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (size_t i = 0; i < n; i++)
            if (list[i].info.device_class == order[o]) {
                *chosen = i;
                return CLATTN_SUCCESS;
            }
    return clattn__fail(NULL, CLATTN_NO_DEVICE, "no usable device");
}

static clattn_context *context_alloc(void)
{
    clattn_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        free(ctx);
        return NULL;
    }
    if (pthread_mutex_init(&ctx->prog_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return NULL;
    }
    if (pthread_mutex_init(&ctx->tune_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->prog_lock);
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return NULL;
    }
    if (pthread_mutex_init(&ctx->ws_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->tune_lock);
        pthread_mutex_destroy(&ctx->prog_lock);
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return NULL;
    }
    clattn__cache_dir(ctx->cache_dir, sizeof ctx->cache_dir);
    return ctx;
}

void clattn_context_destroy(clattn_context *ctx)
{
    if (!ctx)
        return;
    /* Workspace, programs and kernels may still be in use by enqueued work. OpenCL's reference
     * counts keep them alive, but some drivers (rusticl in Mesa 22.3) then free a kernel's
     * compute state on their queue thread while exit() tears the driver down: heap corruption
     * at exit. Draining first leaves nothing in flight. */
    if (ctx->queue)
        clFinish(ctx->queue);
    clattn__fft_release(ctx); /* before the queue and context its plans were baked for */
    clattn__blas_release(ctx); /* CLBlast's cached programs hold references to ctx->cl_ctx */
    clattn__ws_release(ctx);
    clattn__program_cache_clear(ctx);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl_ctx)
        clReleaseContext(ctx->cl_ctx);
    if (ctx->device)
        clReleaseDevice(ctx->device);
    clattn__tune_release(ctx);
    pthread_mutex_destroy(&ctx->ws_lock);
    pthread_mutex_destroy(&ctx->tune_lock);
    pthread_mutex_destroy(&ctx->prog_lock);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

clattn_status clattn_context_create(const char *selector, clattn_context **out)
{
    clattn_context *ctx = NULL; /* creation messages go to the thread-local buffer */
    clattn_status status = CLATTN_SUCCESS;
    found_device *list = NULL;
    size_t n = 0, chosen = 0;
    clattn_context *made = NULL;
    cl_int err = CL_SUCCESS;

    CLATTN_CHECK(out != NULL, CLATTN_NULL_POINTER, "clattn_context_create: ctx is NULL");
    *out = NULL;
    CLATTN_FORWARD(enumerate(&list, &n));
    const char *from = "selector";
    if (!selector || !*selector) {
        selector = getenv("CLATTN_DEVICE");
        from = "CLATTN_DEVICE";
    }
    CLATTN_FORWARD(select_device(list, n, selector, from, &chosen));

    made = context_alloc();
    CLATTN_CHECK(made != NULL, CLATTN_OUT_OF_HOST_MEMORY, "cannot allocate a context");
    made->platform = list[chosen].platform;
    CLATTN_CL(clRetainDevice(list[chosen].device)); /* released in destroy, like wrapped ones */
    made->device = list[chosen].device;
    made->info = list[chosen].info;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)made->platform,
                                     0};
    made->cl_ctx = clCreateContext(props, 1, &made->device, NULL, NULL, &err);
    CLATTN_CHECK(err == CL_SUCCESS, (clattn_status)err, "clCreateContext on '%s' failed: %s",
                 made->info.name, clattn_status_string((clattn_status)err));
    made->queue = clCreateCommandQueue(made->cl_ctx, made->device, CL_QUEUE_PROFILING_ENABLE, &err);
    CLATTN_CHECK(err == CL_SUCCESS, (clattn_status)err, "clCreateCommandQueue on '%s' failed: %s",
                 made->info.name, clattn_status_string((clattn_status)err));
    *out = made;
    made = NULL;
cleanup:
    clattn_context_destroy(made);
    free(list);
    return status;
}

clattn_status clattn_context_create_from_cl(cl_context context, cl_device_id device,
                                            cl_command_queue queue, clattn_context **out)
{
    clattn_context *ctx = NULL;
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *made = NULL;
    cl_context qctx = NULL;
    cl_device_id qdev = NULL;
    cl_platform_id plat = NULL;

    CLATTN_CHECK(out != NULL, CLATTN_NULL_POINTER, "clattn_context_create_from_cl: ctx is NULL");
    *out = NULL;
    CLATTN_CHECK(context && device && queue, CLATTN_NULL_POINTER,
                 "clattn_context_create_from_cl: context, device and queue are required");
    CLATTN_CL(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL));
    CLATTN_CL(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL));
    CLATTN_CHECK(qctx == context && qdev == device, CLATTN_INVALID_CONTEXT,
                 "the queue does not belong to the given context and device");
    CLATTN_CL(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL));
    made = context_alloc();
    CLATTN_CHECK(made != NULL, CLATTN_OUT_OF_HOST_MEMORY, "cannot allocate a context");
    CLATTN_FORWARD(clattn__query_device(plat, device, &made->info));
    /* Fill in the indices the device has in the global enumeration, when it is there. */
    {
        found_device *list = NULL;
        size_t n = 0;
        if (enumerate(&list, &n) == CLATTN_SUCCESS)
            for (size_t i = 0; i < n; i++)
                if (list[i].device == device) {
                    made->info.platform_index = list[i].info.platform_index;
                    made->info.device_index = list[i].info.device_index;
                }
        free(list);
    }
    CLATTN_CL(clRetainContext(context));
    made->cl_ctx = context;
    CLATTN_CL(clRetainDevice(device));
    made->device = device;
    CLATTN_CL(clRetainCommandQueue(queue));
    made->queue = queue;
    made->platform = plat;
    *out = made;
    made = NULL;
cleanup:
    clattn_context_destroy(made);
    return status;
}

clattn_status clattn_context_get_device_info(const clattn_context *ctx, clattn_device_info *info)
{
    if (!ctx || !info)
        return clattn__fail((clattn_context *)ctx, CLATTN_NULL_POINTER,
                            "clattn_context_get_device_info: NULL argument");
    *info = ctx->info;
    return CLATTN_SUCCESS;
}

cl_context clattn_context_get_cl_context(const clattn_context *ctx)
{
    return ctx ? ctx->cl_ctx : NULL;
}
cl_device_id clattn_context_get_cl_device(const clattn_context *ctx)
{
    return ctx ? ctx->device : NULL;
}
cl_command_queue clattn_context_get_cl_queue(const clattn_context *ctx)
{
    return ctx ? ctx->queue : NULL;
}

clattn_status clattn_context_finish(clattn_context *ctx)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_context_finish: ctx is NULL");
    cl_int err = clFinish(ctx->queue);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "clFinish failed");
    return CLATTN_SUCCESS;
}

void clattn_context_cache_stats(const clattn_context *ctx, unsigned *source_builds,
                                unsigned *disk_loads, unsigned *memory_hits)
{
    clattn_context *c = (clattn_context *)ctx;
    unsigned a = 0, b = 0, h = 0;
    if (c) {
        pthread_mutex_lock(&c->lock);
        a = c->source_builds;
        b = c->disk_loads;
        h = c->memory_hits;
        pthread_mutex_unlock(&c->lock);
    }
    if (source_builds)
        *source_builds = a;
    if (disk_loads)
        *disk_loads = b;
    if (memory_hits)
        *memory_hits = h;
}

clattn_status clattn_context_get_stats(const clattn_context *ctx, clattn_context_stats *stats)
{
    if (!ctx || !stats)
        return clattn__fail((clattn_context *)ctx, CLATTN_NULL_POINTER,
                            "clattn_context_get_stats: NULL argument");
    clattn_context *c = (clattn_context *)ctx;
    memset(stats, 0, sizeof *stats);
    pthread_mutex_lock(&c->lock);
    stats->source_builds = c->source_builds;
    stats->disk_loads = c->disk_loads;
    stats->memory_hits = c->memory_hits;
    stats->kernels_created = c->kernels_created;
    pthread_mutex_unlock(&c->lock);
    stats->program_lookups = stats->source_builds + stats->disk_loads + stats->memory_hits;
    return CLATTN_SUCCESS;
}
