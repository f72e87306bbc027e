/* Made-up device descriptions for the device-free scheduler suites (tests/test_sched*.c): an
 * NVIDIA-like 48 KiB GPU, AMD- and Intel-like 64 KiB GPUs, PoCL's CPU (emulated 1 MiB), a 16 KiB
 * GPU, llvmpipe (rusticl, with its quirk fields), an AVX2 CPU and a few odd ones. */
#ifndef CLATTN_TESTS_DEVICES_H
#define CLATTN_TESTS_DEVICES_H

#include "clattn.h"

#include <stddef.h>
#include <stdint.h>

#define MAX_DEVS 16

clattn_device_info make_dev(const char *name, clattn_device_class cls, uint64_t local_mem,
                            int emulated, size_t max_wg, size_t item0);
/* Writes the made-up devices into out (at least MAX_DEVS entries) and returns how many. */
size_t make_devices(clattn_device_info *out);

#endif
