/* Internal to softmax attention's scheduler: shared by lib/sched/sched_softmax.c (the family
 * choice, TILED_GPU, the naive baseline, explicit launches, the tuner's space) and
 * lib/sched/sched_softmax_cpu.c (the TILED_CPU family's rules). The entry points the rest of the
 * library calls stay in sched.h. */
#ifndef CLATTN_SCHED_SOFTMAX_H
#define CLATTN_SCHED_SOFTMAX_H

#include "sched.h"

/* The largest TILED_CPU key block (the rule at the top of sched_softmax_cpu.c): the default's
 * bound and the tuner's. */
#define CPU_KV_BLOCK_MAX 512

/* The largest power of two <= x (1 for x < 2). */
size_t clattn__softmax_floor_pow2(size_t x);

/* The device's work-group limit: its maximum work-group size within work-item size 0. */
size_t clattn__softmax_wg_limit(const clattn_device_info *dev);

/* V's head dim of a problem (0 there means D; sched_softmax_cpu.c). */
size_t clattn__softmax_prob_dv(const clattn__softmax_problem *p);

/* TILED_CPU (sched_softmax_cpu.c): keys per online-softmax step by D and Dv; the default key
 * block; register groups per work-item; a launch filled from explicit parameters (already
 * validated); the default launch. */
unsigned clattn__softmax_cpu_step_keys(size_t d, size_t dv);
unsigned clattn__softmax_cpu_kv_block(size_t d, size_t dv);
int clattn__softmax_cpu_groups(const clattn_device_info *dev, const clattn__softmax_problem *p);
void clattn__softmax_fill_cpu(int groups, size_t d, size_t dv, unsigned rows, size_t wg,
                              unsigned kv_block, clattn__softmax_launch *out);
void clattn__softmax_plan_cpu(const clattn_device_info *dev, const clattn__softmax_problem *p,
                              clattn__softmax_launch *out);

#endif
