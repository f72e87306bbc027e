/* What the suites of the `clattn` tool share (tests/test_cli.c: each operator's run against the
 * fp64 reference; tests/test_cli_options.c: what every command shares): a scratch folder, running
 * the tool (whose path CMake passes as CLATTN_CLI) and capturing its output, .npy inputs. */
#ifndef CLATTN_TESTS_CLI_HARNESS_H
#define CLATTN_TESTS_CLI_HARNESS_H

#include <stddef.h>

/* Small shapes of the default inputs q, k, v [B, H, N, D]. */
enum { B = 1, H = 2, N = 33, D = 16 };

/* Makes / removes the scratch folder the tool runs in (cmocka group setup and teardown). */
int cli_dir_make(void);
int cli_dir_remove(void);
/* "<scratch folder>/name" (four rotating buffers). */
const char *at(const char *name);
int exists(const char *path);

/* Runs the tool with `args` in the scratch folder; returns its exit code and the first line of
 * its stderr; fails the test when stderr has a second line (errors and summaries are one line). */
int run(const char *args, char *err_line, size_t len);
/* Runs the tool with environment assignments `env` (may be "") and `args`; captures stdout and
 * stderr (truncated to fit). */
int run_capture(const char *env, const char *args, char *out, size_t olen, char *err,
                size_t elen);
size_t count_lines(const char *s);
/* A failing run: exit 1 or 2, one "clattn: " line containing `needle`, no bad_out.npy. */
void expect_failure(const char *args, const char *needle);

/* Files in the scratch folder. */
void write_f32(const char *name, const float *x, int ndim, const size_t *shape);
void write_raw(const char *name, const void *bytes, size_t n);
/* n elements of x rounded to dt (clattn_dtype: 0 f32, 1 f16, 2 bf16), written as '<f4', '<f2' or
 * '<u2' (bf16 words); x itself is not changed. */
void write_typed(const char *name, const float *x, int dt, int ndim, const size_t *shape,
                 size_t n);
/* Random q, k, v [B, H, N, D] (fixed seed) into the arrays and q.npy, k.npy, v.npy. */
void make_inputs(float *q, float *k, float *v);

#endif
