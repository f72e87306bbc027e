/* Shared by samples/cli_softmax.c (usage, `run softmax`) and samples/cli_softmax_bench.c
 * (`bench softmax`, the demo). */
#ifndef CLATTN_CLI_SOFTMAX_H
#define CLATTN_CLI_SOFTMAX_H

#include <clattn.h>

#define SGEMM_SIZE 2048
/* bench softmax --variants window: the sliding window's width (window_left + 1). */
#define BENCH_WINDOW 4096

/* Softmax attention takes D and Dv up to 512 (issue 16); the other operators keep MAX_HEAD_DIM. */
#define SOFTMAX_MAX_HEAD_DIM 512

/* --algo NAME (auto, cpu / tiled-cpu, gpu / tiled-gpu, gpu-rows / tiled-gpu-rows, naive) into
 * *algo: 0, or -1 (and *algo untouched) for another name. */
int cli_softmax_parse_algo(const char *s, clattn_softmax_algo *algo);

#endif
