/* clattn devices / clattn demo: what the machine offers and what the scheduler would pick. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_devices(FILE *f)
{
    fprintf(f,
            "  clattn devices\n"
            "      list every OpenCL platform/device, its capabilities and the plans the\n"
            "      scheduler picks for tiled attention (D = 64, 128; N = 4096); '*' marks the\n"
            "      device a plain context would use. A CLATTN_DEVICE that matches no device is\n"
            "      reported as a warning (contexts made without --device would fail)\n"
            "  clattn demo\n"
            "      'devices', then a small bench (N = 256, 512, 1024; 4 heads; D = 64)\n");
}

static const char *class_name(clattn_device_class c)
{
    switch (c) {
    case CLATTN_DEVICE_CPU:
        return "CPU";
    case CLATTN_DEVICE_GPU:
        return "GPU";
    case CLATTN_DEVICE_ACCELERATOR:
        return "accelerator";
    default:
        return "other";
    }
}

static const char *algo_name(int a)
{
    switch (a) {
    case CLATTN_SOFTMAX_AUTO:
        return "auto";
    case CLATTN_SOFTMAX_TILED_CPU:
        return "tiled-cpu";
    case CLATTN_SOFTMAX_TILED_GPU:
        return "tiled-gpu";
    case CLATTN_SOFTMAX_NAIVE:
        return "naive";
    case CLATTN_SOFTMAX_TILED_GPU_ROWS:
        return "tiled-gpu-rows";
    }
    return "?";
}

static void format_bytes(char *buf, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.4g %s", v, units[u]);
}

static void print_plan(const clattn_device_info *dev, size_t d)
{
    const size_t n = 4096;
    const size_t shape[4] = {1, 8, n, d};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    clattn_plan_info pi;
    memset(&pi, 0, sizeof pi);
    clattn_status st = clattn_softmax_schedule(dev, &desc, shape, shape, &pi);
    if (st != CLATTN_SUCCESS) {
        printf("  plan D=%-4zu  none: %s (%s)\n", d, clattn_status_message(st),
               clattn_status_string(st));
        return;
    }
    char lmem[32];
    format_bytes(lmem, sizeof lmem, pi.local_mem_bytes);
    printf("  plan D=%-4zu  %s (%s): %u rows/item, tile_q %u, tile_kv %u, local size %zu, "
           "local mem %s\n",
           d, pi.variant, algo_name(pi.algorithm), pi.rows_per_item, pi.tile_q, pi.tile_kv,
           pi.local_size, lmem);
    printf("               options: %s\n", pi.build_options[0] ? pi.build_options : "(none)");
}

static void print_device(const clattn_device_info *d, int is_default)
{
    char gmem[32], amem[32], lmem[32];
    format_bytes(gmem, sizeof gmem, d->global_mem_size);
    format_bytes(amem, sizeof amem, d->max_alloc_size);
    format_bytes(lmem, sizeof lmem, d->local_mem_size);
    printf("%c device %u:%u  %s%s\n", is_default ? '*' : ' ', d->platform_index, d->device_index,
           d->name, is_default ? "   [default]" : "");
    printf("  platform     %s (%s)\n", d->platform_name, d->platform_version);
    printf("  vendor       %s (id 0x%x)\n", d->vendor, (unsigned)d->vendor_id);
    printf("  driver       %s; %s\n", d->driver_version, d->device_version);
    printf("  class        %s, %u compute units, %u MHz\n", class_name(d->device_class),
           (unsigned)d->compute_units, (unsigned)d->max_clock_mhz);
    printf("  memory       global %s, max allocation %s\n", gmem, amem);
    printf("  local mem    %s%s\n", lmem,
           d->local_mem_emulated ? " (emulated in global memory)" : "");
    printf("  work-group   max %zu, item sizes %zu x %zu x %zu\n", d->max_work_group_size,
           d->max_work_item_sizes[0], d->max_work_item_sizes[1], d->max_work_item_sizes[2]);
    printf("  float width  preferred %u, native %u\n", (unsigned)d->preferred_vector_width_float,
           (unsigned)d->native_vector_width_float);
    printf("  fp16 / fp64  %s / %s\n", d->has_fp16 ? "yes" : "no", d->has_fp64 ? "yes" : "no");
    print_plan(d, 64);
    print_plan(d, 128);
}

/* The default is whatever a plain context picks (CLATTN_DEVICE included), so ask one. Returns
 * CLATTN_SUCCESS with *info filled, or the status with the reason in err. */
static clattn_status default_device(clattn_device_info *info, char *err, size_t len)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st == CLATTN_SUCCESS)
        st = clattn_context_get_device_info(ctx, info);
    if (st != CLATTN_SUCCESS)
        snprintf(err, len, "%s", lib_error(ctx, st));
    clattn_context_destroy(ctx);
    return st;
}

int cli_cmd_devices(int argc, char **argv)
{
    int help = 0;
    int rc = parse_options(argc, argv, 1, "devices", NULL, 0, &help);
    if (rc)
        return rc;
    if (help) {
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_devices, "devices");
        return 0;
    }
    size_t count = 0;
    clattn_status st = clattn_list_devices(NULL, 0, &count);
    if (st == CLATTN_NO_DEVICE || (st == CLATTN_SUCCESS && count == 0))
        return fail(EXIT_RUNTIME, "no OpenCL device found (is an ICD such as PoCL installed?)");
    if (st != CLATTN_SUCCESS)
        return fail(EXIT_RUNTIME, "listing devices: %s", clattn_status_message(st));
    clattn_device_info *infos = calloc(count, sizeof *infos);
    if (!infos)
        return fail(EXIT_RUNTIME, "out of memory");
    size_t got = 0;
    st = clattn_list_devices(infos, count, &got);
    if (st != CLATTN_SUCCESS) {
        free(infos);
        return fail(EXIT_RUNTIME, "listing devices: %s", clattn_status_message(st));
    }
    if (got > count)
        got = count;

    clattn_device_info def;
    char def_err[512] = "";
    st = default_device(&def, def_err, sizeof def_err);
    int have_def = st == CLATTN_SUCCESS;
    const char *env = getenv("CLATTN_DEVICE");
    /* A selector that matches nothing makes every plain context fail: say so, and still list. */
    if (st == CLATTN_NO_DEVICE && env && *env)
        fprintf(stderr, "clattn: warning: %s; contexts made without --device will fail\n",
                def_err);

    printf("clattn %s: %zu OpenCL device%s", clattn_version_string(), got, got == 1 ? "" : "s");
    if (env && *env)
        printf(" (CLATTN_DEVICE=%s)", env);
    printf("\n\n");
    for (size_t i = 0; i < got; i++) {
        int is_def = have_def && def.platform_index == infos[i].platform_index &&
                     def.device_index == infos[i].device_index;
        print_device(&infos[i], is_def);
        printf("\n");
    }
    if (have_def)
        printf("* = the default selection (CLATTN_DEVICE, else the first GPU, accelerator, CPU)\n");
    else
        printf("default selection: none (%s)\n", def_err[0] ? def_err : "context creation failed");
    free(infos);
    return 0;
}

int cli_cmd_demo(int argc, char **argv)
{
    int help = 0;
    int rc = parse_options(argc, argv, 1, "demo", NULL, 0, &help);
    if (rc)
        return rc;
    if (help) {
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_devices, "demo");
        return 0;
    }
    printf("== clattn devices ==\n\n");
    fflush(stdout);
    if ((rc = cli_cmd_devices(1, argv)) != 0)
        return rc;
    return cli_softmax_demo();
}
