/* cli.h — what every `clattn` subcommand shares: one-line errors and exit codes, option parsing,
 * .npy loading and writing, device opening, the run summary line, timing, and the bench CSV/table
 * format; and the list of commands, each in its own file:
 *
 *   samples/clattn.c        dispatch, `clattn help`, per-command help, the options of every run
 *   samples/cli_devices.c   clattn devices, clattn demo
 *   samples/cli_tune.c      clattn tune
 *   samples/cli_<op>.c      clattn run <op>, clattn bench <op> (softmax, linear, lsh, ...)
 *
 * An operator family exposes
 *     void cli_usage_<op>(FILE *f);                usage blocks of its run and bench commands
 *     int cli_run_<op>(int argc, char **argv);    argv[0] = "run", argv[1] = "<op>", options after
 *     int cli_bench_<op>(int argc, char **argv);  argv[0] = "bench", argv[1] = "<op>", options after
 * declared below and registered in the OPERATORS table of samples/clattn.c. A usage block starts
 * with a line "  clattn <verb> <op> ..." and continues with lines indented deeper, so that
 * `clattn run <op> --help` can print that block alone (cli_usage_blocks). Conventions: exit 0 on
 * success, EXIT_USAGE for bad options or input files (checked before any device work),
 * EXIT_RUNTIME for device/library failures; every error is one "clattn: ..." line from fail();
 * outputs are written only after the computation succeeded; a successful run ends with
 * cli_run_summary(). Bench output is the table of cli_print_table() or, with --csv, the CSV of
 * cli_print_csv() (the same header as `bench softmax`). */
#ifndef CLATTN_SAMPLES_CLI_H
#define CLATTN_SAMPLES_CLI_H

#include <clattn.h>

#include "npy.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* The public contract of the attention operators (1 <= D <= 256); checked here too so that the
 * message can name the file. */
#define MAX_HEAD_DIM 256
#define MAX_SWEEP 64

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* ---- messages ---- */
/* Prints "clattn: <message>" as one line and returns `code`, so callers can `return fail(...)`. */
PRINTF_LIKE(2, 3) int fail(int code, const char *fmt, ...);
/* EXIT_USAGE for statuses caused by the caller's data (invalid argument/shape, mismatch), else
 * EXIT_RUNTIME. */
int status_exit_code(clattn_status st);
/* The context's detail message, or the status's generic one when the library left none. */
const char *lib_error(const clattn_context *ctx, clattn_status st);
/* "attention failed: <detail> (CLATTN_X)" style report of a failed library call. */
int fail_status(clattn_context *ctx, clattn_status st, const char *what);
const char *dtype_name(npy_dtype t);
void format_shape(char *buf, size_t len, int ndim, const size_t *shape);
double now_ms(void);
int is_help(const char *arg);

/* ---- options ---- */
/* One option: "--name VALUE", "--name=VALUE" (value options) or "--name" (flags). */
typedef struct opt_spec {
    const char *name;
    const char *alias;  /* e.g. "-o"; may be NULL */
    const char **value; /* set for value options */
    int *flag;          /* set for flags */
} opt_spec;
#define OPT_COUNT(specs) (sizeof(specs) / sizeof((specs)[0]))

/* Parses argv[first..argc) against `specs`. Returns 0 (with *help set when -h/--help was given),
 * or an exit code after printing the error. */
int parse_options(int argc, char **argv, int first, const char *cmd, const opt_spec *specs,
                  size_t nspecs, int *help);
/* A decimal integer in [lo, hi]; no sign, no spaces, no trailing characters. 0 or -1. */
int parse_size(const char *s, size_t lo, size_t hi, size_t *out);
/* parse_size with a message: 0 or EXIT_USAGE. */
int size_option(const char *cmd, const char *name, const char *s, size_t lo, size_t hi,
                size_t *out);
/* A comma-separated list of at most MAX_SWEEP integers in [lo, hi]: 0 or EXIT_USAGE. */
int parse_list(const char *cmd, const char *name, const char *s, size_t lo, size_t hi, size_t *out,
               size_t *count);
/* A finite float32 (strtof), optionally within [lo, hi] (pass -INFINITY/INFINITY for none) and,
 * when open_lo, strictly above lo: 0 or EXIT_USAGE. */
int float_option(const char *cmd, const char *name, const char *s, float lo, float hi, int open_lo,
                 float *out);
/* A uint64 seed (decimal): 0 or EXIT_USAGE. */
int seed_option(const char *cmd, const char *name, const char *s, uint64_t *out);

/* ---- options every `run` command shares (parsed by the dispatcher, samples/clattn.c) ---- */
/* --layout bhnd|bnhd: how 4-D tensors (q, k, v, out) are laid out in .npy files. bhnd (default):
 * [B, H, N, D]; bnhd: token-major [B, N, H, D], as PyTorch's (batch, seq, heads, dim) tensors.
 * load_f32/write_f32 convert, so every run command sees and produces [B, H, N, D] in memory.
 * Arrays of other ranks (log-sum-exp [B, H, N], projections, biases ...) are not affected.
 * --quiet: no summary line after a successful run. */
typedef enum cli_layout { CLI_LAYOUT_BHND = 0, CLI_LAYOUT_BNHD = 1 } cli_layout;
/* Removes --quiet and --layout (with its value) from argv[first..*argc), recording them for
 * load_f32, write_f32 and cli_run_summary: 0, or EXIT_USAGE after a message. */
int cli_take_run_options(const char *cmd, int *argc, char **argv, int first);
cli_layout cli_get_layout(void);
/* --dtype and --out-dtype of `run` (taken by cli_take_run_options): the inputs' element type on
 * the device (-1 when not given: each file keeps its own) and the outputs' (default f32). */
int cli_get_in_dtype(void);
clattn_dtype cli_get_out_dtype(void);
/* Parses f32|f16|bf16 (also float32|float16|bfloat16) for option `name`: 0 or EXIT_USAGE. */
int cli_dtype_option(const char *cmd, const char *name, const char *s, clattn_dtype *out);
const char *cli_layout_name(cli_layout layout);
/* The usage lines of those options, for `clattn run OP --help`. */
void cli_usage_run_options(FILE *f);

/* ---- files and devices ---- */
/* Reads a float32 .npy of `ndim` dimensions (ndim 0: any), none empty: 0 or EXIT_USAGE with a
 * message naming the file and the option. With ndim 4 the file is read in the run's --layout and
 * *a holds [B, H, N, D] (shape and data). The caller npy_free()s it (also after a failure). */
int load_f32(const char *path, const char *opt, int ndim, npy_array *a);
/* Writes a float32 .npy atomically: 0 or EXIT_RUNTIME. With ndim 4, `data` and `shape` are
 * [B, H, N, D] and the file is written in the run's --layout. */
int write_f32(const char *path, const float *data, int ndim, const size_t *shape);
/* Reads a float .npy as a tensor input of `ndim` dimensions (as load_f32 does: none empty, 4-D
 * files in the run's --layout) keeping half data half: '<f4' is float32, '<f2' float16, '<u2'
 * and '|V2' bfloat16 (only with --dtype bf16: otherwise refused with a message saying so).
 * With --dtype given, data is converted (rounded to nearest even) to that type. *dt receives the
 * element type of a->data (a->dtype is set to match: NPY_F32, NPY_F16 or NPY_U16). 0 or
 * EXIT_USAGE. */
int load_tensor(const char *path, const char *opt, int ndim, npy_array *a, clattn_dtype *dt);
/* Writes `count(shape)` elements of type dt (4-D: [B, H, N, D], written in the run's --layout)
 * as '<f4', '<f2' or (bf16) '<u2': 0 or EXIT_RUNTIME. */
int write_tensor(const char *path, const void *data, clattn_dtype dt, int ndim,
                 const size_t *shape);
/* Swaps axes 1 and 2 of a 4-D array of shape `shape` (dst must not overlap src). */
void cli_swap_axes12(float *dst, const float *src, const size_t shape[4]);
/* The same for elements of `esize` bytes. */
void cli_swap_axes12_bytes(void *dst, const void *src, const size_t shape[4], size_t esize);
/* A dense [B, H, N, D] view of `dt` elements (cli_tensor's typed form). */
clattn_tensor cli_tensor_typed(cl_mem buffer, const size_t shape[4], clattn_dtype dt);
/* Opens a context on `device` (NULL: the default selection): 0 or an exit code after a message.
 * Starts the clock of cli_run_summary. */
int open_context(const char *device, clattn_context **ctx);
/* The one line a successful `clattn run` prints on stderr (unless --quiet), after its outputs are
 * written: "clattn: run OP: device P:D NAME (PLATFORM); plan OP ALGORITHM LAUNCH (chosen by);
 * T ms". Every run command passes the plan it baked (NULL would say "plan: none"); T is
 * the wall time since open_context (plan bake, compute, read-back and writing the outputs). */
void cli_run_summary(clattn_context *ctx, const char *op, const clattn_plan *plan);
/* The same with `extra` (NULL or "": nothing) between the plan and the time, e.g. the options
 * of the run ("options bias B.npy [1,1,8,8], window 4,-1"). */
void cli_run_summary_with(clattn_context *ctx, const char *op, const clattn_plan *plan,
                          const char *extra);
/* ---- device buffers of a run ----
 * Every `clattn run` bakes its operator's plan and enqueues it on buffers made here: inputs copied
 * from host arrays, outputs read back after the plan's event, scratch the run fills itself:
 *     cli_io io; cli_io_init(&io, ctx);
 *     cl_mem bq = cli_io_in(&io, q.data, bytes), bo = cli_io_out(&io, out, bytes);
 *     if ((rc = cli_io_check(&io))) ...             (then bake the plan, fail_status on failure)
 *     st = clattn_<op>_plan_enqueue(plan, ..., 0, NULL, &done);
 *     if ((rc = cli_io_read(&io, st, done, "<op> attention failed"))) ...
 *     cli_io_end(&io);                              (also on every error path, before the plan,
 *                                                    the context and the host outputs go) */
#define CLI_IO_MAX 8
typedef struct cli_io {
    clattn_context *ctx;
    size_t n;
    cl_mem buf[CLI_IO_MAX];
    void *dst[CLI_IO_MAX]; /* where cli_io_read copies an output; NULL for inputs and scratch */
    size_t bytes[CLI_IO_MAX];
    cl_int err; /* the first allocation failure */
} cli_io;
/* ctx may be NULL (no device yet): cli_io_end is then a no-op. */
void cli_io_init(cli_io *io, clattn_context *ctx);
/* A buffer of `bytes` (> 0) holding a copy of `host`: NULL once an allocation has failed (every
 * later call returns NULL too; cli_io_check reports it). */
cl_mem cli_io_in(cli_io *io, const void *host, size_t bytes);
/* A buffer of `bytes` (> 0) that cli_io_read copies into `dst` (NULL: device scratch only). */
cl_mem cli_io_out(cli_io *io, void *dst, size_t bytes);
/* 0, or EXIT_RUNTIME after "cannot allocate the device buffers (OpenCL error E)". */
int cli_io_check(const cli_io *io);
/* After a plan's enqueue returned `st` and its event `done` (released here in every case): the
 * failure as fail_status(ctx, st, what), else every output read back after `done` into its host
 * array: 0, or EXIT_RUNTIME after "reading the result back failed (OpenCL error E)". */
int cli_io_read(cli_io *io, clattn_status st, cl_event done, const char *what);
/* Waits for the queue (nothing may still use the buffers) and releases them. */
void cli_io_end(cli_io *io);
/* A dense [B, H, N, D] view of `buffer` with the shape of a 4-D array. */
clattn_tensor cli_tensor(cl_mem buffer, const size_t shape[4]);

/* open_context, then "clattn: benchmarking on P:D NAME (PLATFORM)" on stderr. */
int bench_open(const char *device, clattn_context **ctx);
/* --variants: a comma-separated subset of names[0..count) in the order given (duplicates
 * dropped) as indices into out (room for count), or every name when s is NULL: 0 or EXIT_USAGE. */
int parse_variant_list(const char *cmd, const char *s, const char *const *names, int count,
                       int *out, int *n_out);

/* ---- benchmarks ---- */
typedef struct progress {
    int tty;
    size_t step, total;
} progress;
/* "[step/total] what" on stderr (one rewritten line on a terminal). */
PRINTF_LIKE(2, 3) void progress_step(progress *p, const char *fmt, ...);
void progress_clear(const progress *p);
/* A note about a skipped measurement ("clattn: note: ..."); the sweep goes on. */
PRINTF_LIKE(2, 3) void note(const progress *p, const char *fmt, ...);

double median(double *v, size_t n);
/* Deterministic values in [-1, 1) from a seed (xorshift). */
void fill_random(float *x, size_t n, uint64_t seed);
/* Creates `count` buffers of `elems` floats; the first `random` are filled by fill_random (seeds
 * 1, 2, ...). Returns CL_SUCCESS or the OpenCL error (buffers made so far are released). */
cl_int make_buffers(clattn_context *ctx, cl_mem *bufs, size_t count, size_t random, size_t elems);
/* The same for elements of type dt: the random buffers hold fill_random's values rounded to dt
 * (so every type times the same numbers). */
cl_int make_buffers_typed(clattn_context *ctx, cl_mem *bufs, size_t count, size_t random,
                          size_t elems, clattn_dtype dt);
/* A bench's --dtype LIST: f32|f16|bf16 separated by commas, each at most once, in the order
 * given; NULL means f32 alone. 0, or EXIT_USAGE after a message. */
int cli_dtype_list(const char *cmd, const char *s, clattn_dtype out[3], size_t *n);
void release_buffers(cl_mem *bufs, size_t count);

/* Runs `enqueue(arg)` + clFinish once to warm up, then `reps` more times, and stores the median
 * wall time in *ms. enqueue returns a status; the first failure is returned. */
typedef clattn_status (*bench_fn)(void *arg);
clattn_status time_median(clattn_context *ctx, bench_fn enqueue, void *arg, size_t reps,
                          double *ms);

/* One measurement row, printed by cli_print_csv / cli_print_table. ms and build_ms are NAN where
 * they do not apply; gflops 0 where no FLOP count is defined. */
typedef struct bench_row {
    char op[16], variant[24];
    size_t batch, heads, nq, nk, d;
    int causal;
    double ms, gflops, build_ms;
    char kernel[64];
    const char *dtype; /* the inputs' element type name (clattn_dtype_name); NULL: "f32" */
} bench_row;
/* dtype is the last CSV column (appended: the earlier columns keep their places). */
#define BENCH_CSV_HEADER "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype"
void cli_print_csv(const bench_row *rows, size_t n);
/* A table; `base` names the variant others are compared with per length ("vs <base>" column,
 * base ms / row ms), NULL for none; `peak_gflops` > 0 adds a %peak column. */
void cli_print_table(const bench_row *rows, size_t n, const char *base, double peak_gflops);


/* Baselines every operator's bench can show next to its own rows, measured in the same run:
 * exact tiled softmax attention (the scheduler's choice; variant "tiled"; FLOPs 4*B*H*Nq*Nk*D,
 * halved when causal) on random inputs of the given shape, and the device's FMA peak (variant
 * "peak", op "peak"). 0 with *r filled, or -1 after a note (the sweep goes on). */
int bench_tiled_row(clattn_context *ctx, size_t batch, size_t heads, size_t nq, size_t nk,
                    size_t d, int causal, size_t reps, const progress *prog, bench_row *r);
int bench_peak_row(clattn_context *ctx, const progress *prog, bench_row *r);

/* cli_bench.c. A context (bench_open when `banner`, else open_context) and `nrows` zeroed rows:
 * 0, or the failure (EXIT_RUNTIME after "out of memory", the context destroyed). */
int bench_start(const char *device, int banner, size_t nrows, clattn_context **ctx,
                bench_row **rows);
/* The rows as CSV or as a table (cli_print_table's base and peak), then frees them: 0, or
 * EXIT_RUNTIME after "bench: no measurement succeeded" when there are none. */
int bench_report(bench_row *rows, size_t nrows, int csv, const char *base, double peak_gflops);
/* An operator's rows (variant `op`, measured by row(ctx, cfg, n, ...): 0 or -1 after a note) and
 * the tiled baseline's at every length, on a quiet context (open_context); the table compares
 * with "tiled" when both are measured. 0, or EXIT_RUNTIME when nothing succeeded and something
 * failed. */
typedef int (*bench_op_row_fn)(clattn_context *ctx, const void *cfg, size_t n,
                               const progress *prog, bench_row *r);
typedef struct bench_pair {
    const char *op, *device;
    bench_op_row_fn row;
    const void *cfg;
    int do_op, do_tiled, causal, csv;
    const size_t *ns;
    size_t n_count, batch, heads, d, reps;
} bench_pair;
int bench_pair_sweep(const bench_pair *p);

/* ---- usage text ---- */
typedef void (*cli_usage_fn)(FILE *f);
/* Prints the blocks of usage(f) whose first line starts with "  clattn <command>" followed by a
 * space or the end of the line (command "run softmax", "tune" ...). Returns how many. */
int cli_usage_blocks(FILE *out, cli_usage_fn usage, const char *command);
/* The first line of that block (without its two-space indent), or "" when there is none. */
void cli_usage_first_line(cli_usage_fn usage, const char *command, char *buf, size_t len);
/* cli_bench.c. After an option parse that returned *rc and set help: 1 when the command stops
 * here (*rc: the parse's failure, or 0 after usage(stdout) for --help), else 0. */
int parse_done(int *rc, int help, cli_usage_fn usage);

/* ---- commands ---- */
void cli_usage_devices(FILE *f); /* cli_devices.c: devices and demo */
int cli_cmd_devices(int argc, char **argv);
int cli_cmd_demo(int argc, char **argv);
void cli_usage_tune(FILE *f); /* cli_tune.c */
int cli_cmd_tune(int argc, char **argv);
void cli_usage_softmax(FILE *f); /* cli_softmax.c */
int cli_run_softmax(int argc, char **argv);
int cli_bench_softmax(int argc, char **argv); /* cli_softmax_bench.c, with the demo's */
/* demo's bench: softmax variants at N = 256, 512, 1024 and the tiled speed-up over naive. */
int cli_softmax_demo(void);
void cli_usage_linear(FILE *f); /* cli_linear.c */
int cli_run_linear(int argc, char **argv);
int cli_bench_linear(int argc, char **argv);
void cli_usage_lsh(FILE *f); /* cli_lsh.c */
int cli_run_lsh(int argc, char **argv);
int cli_bench_lsh(int argc, char **argv);
void cli_usage_routing(FILE *f); /* cli_routing.c */
int cli_run_routing(int argc, char **argv);
int cli_bench_routing(int argc, char **argv);
void cli_usage_ssm(FILE *f); /* cli_ssm.c */
int cli_run_ssm(int argc, char **argv);
int cli_bench_ssm(int argc, char **argv);
/* Full S4 (cli_ssm_s4.c): `run ssm --s4` and `bench ssm --s4`, reached from cli_ssm.c. */
void cli_usage_ssm_s4(FILE *f);
int cli_run_ssm_s4(int argc, char **argv);
int cli_bench_ssm_s4(int argc, char **argv);
void cli_usage_rpe(FILE *f); /* cli_rpe.c */
int cli_run_rpe(int argc, char **argv);
int cli_bench_rpe(int argc, char **argv);
void cli_usage_gss(FILE *f); /* cli_gss.c */
int cli_run_gss(int argc, char **argv);
int cli_bench_gss(int argc, char **argv);
void cli_usage_mgk(FILE *f); /* cli_mgk.c */
int cli_run_mgk(int argc, char **argv);
int cli_bench_mgk(int argc, char **argv);

/* A random S4D-Lin layer for the benches of ssm and gss (cli_ssm.c): A = -1/2 + i pi n, dt from
 * 0.001 to 0.1 across the H channels, Ct random (fixed seed). */
clattn_status cli_make_s4d_lin(clattn_context *ctx, size_t H, size_t N, clattn_ssm **s);
/* --dtype LIST of the ssm and gss benches (cli_ssm.c): "f32,f16,bf16" into out[<= 3] (NULL: f32
 * alone): 0 or EXIT_USAGE after a message. */

void cli_usage_deq(FILE *f); /* cli_deq.c */
int cli_run_deq(int argc, char **argv);
int cli_bench_deq(int argc, char **argv);
void cli_usage_decode(FILE *f); /* cli_decode.c: bench decode (issue 17) */
int cli_bench_decode(int argc, char **argv);
/* cli_ring.c (issue 18): `run softmax|linear --distributed ring|zigzag` under mpirun, and
 * `bench ring`; without clattn_mpi both say the tool was built without MPI. */
void cli_usage_ring(FILE *f);
int cli_bench_ring(int argc, char **argv);
int cli_wants_distributed(int argc, char **argv); /* argv from "run": --distributed given */
int cli_run_distributed(int argc, char **argv);

void cli_usage_group(FILE *f); /* cli_group.c: bench group (issue 18: device groups) */
int cli_bench_group(int argc, char **argv);

#endif
