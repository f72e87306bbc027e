/* The made-up device descriptions every scheduler suite runs on (test_devices.h). */
#include "test_devices.h"

#include <stdio.h>
#include <string.h>

#define KIB ((uint64_t)1024)


clattn_device_info make_dev(const char *name, clattn_device_class cls, uint64_t local_mem,
                                   int emulated, size_t max_wg, size_t item0)
{
    clattn_device_info d;
    memset(&d, 0, sizeof d);
    snprintf(d.platform_name, sizeof d.platform_name, "made-up platform");
    snprintf(d.name, sizeof d.name, "%s", name);
    d.device_class = cls;
    d.global_mem_size = (uint64_t)8 << 30;
    d.max_alloc_size = (uint64_t)2 << 30;
    d.local_mem_size = local_mem;
    d.local_mem_emulated = emulated;
    d.max_work_group_size = max_wg;
    d.max_work_item_sizes[0] = item0;
    d.max_work_item_sizes[1] = item0;
    d.max_work_item_sizes[2] = item0 < 64 ? item0 : 64;
    d.compute_units = 16;
    d.max_clock_mhz = 1500;
    d.preferred_vector_width_float = 1;
    d.native_vector_width_float = 1;
    return d;
}


size_t make_devices(clattn_device_info *out)
{
    size_t n = 0;
    /* Vendor ids as the drivers report them: the softmax GPU rule reads the SIMD width by vendor. */
    out[n] = make_dev("NVIDIA-like 48 KiB", CLATTN_DEVICE_GPU, 48 * KIB, 0, 1024, 1024);
    out[n].vendor_id = 0x10DE;
    snprintf(out[n++].vendor, sizeof out[0].vendor, "NVIDIA Corporation");
    out[n] = make_dev("AMD-like 64 KiB", CLATTN_DEVICE_GPU, 64 * KIB, 0, 256, 1024);
    out[n].vendor_id = 0x1002;
    snprintf(out[n++].vendor, sizeof out[0].vendor, "Advanced Micro Devices, Inc.");
    out[n] = make_dev("Intel-like 64 KiB", CLATTN_DEVICE_GPU, 64 * KIB, 0, 512, 512);
    out[n].vendor_id = 0x8086;
    snprintf(out[n++].vendor, sizeof out[0].vendor, "Intel(R) Corporation");
    out[n] = make_dev("PoCL CPU (emulated 1 MiB)", CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 4096);
    out[n].preferred_vector_width_float = out[n].native_vector_width_float = 16;
    n++;
    out[n++] = make_dev("small GPU 16 KiB", CLATTN_DEVICE_GPU, 16 * KIB, 0, 1024, 1024);
    out[n++] = make_dev("GPU max WG 64", CLATTN_DEVICE_GPU, 32 * KIB, 0, 64, 64);
    /* rusticl on llvmpipe: a CPU device, local memory emulated, SIMT-style (vector width 1). */
    out[n] = make_dev("llvmpipe (rusticl)", CLATTN_DEVICE_CPU, 32 * KIB, 1, 1024, 1024);
    out[n].loop_iteration_cap = 65535; /* its quirks, as lib/core/context.c fills them */
    out[n].simt_cpu = 1;
    n++;
    out[n] = make_dev("CPU with AVX2, 32 KiB local", CLATTN_DEVICE_CPU, 32 * KIB, 1, 8192, 8192);
    out[n].preferred_vector_width_float = out[n].native_vector_width_float = 8;
    n++;
    out[n++] = make_dev("GPU 1 KiB local", CLATTN_DEVICE_GPU, 1 * KIB, 0, 256, 256);
    /* Beyond the usual: item size smaller than the work-group limit and not a power of two, an
     * accelerator with real local memory, a GPU whose local memory is emulated. */
    out[n++] = make_dev("GPU items[0]=100", CLATTN_DEVICE_GPU, 64 * KIB, 0, 1024, 100);
    out[n++] = make_dev("accelerator 128 KiB", CLATTN_DEVICE_ACCELERATOR, 128 * KIB, 0, 512, 512);
    out[n++] = make_dev("GPU, emulated local", CLATTN_DEVICE_GPU, 64 * KIB, 1, 256, 256);
    return n;
}
