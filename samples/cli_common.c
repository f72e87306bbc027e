/* Shared helpers of the clattn command-line tool (see cli.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prints "clattn: <message>" as one line and returns `code`, so callers can `return fail(...)`. */
int fail(int code, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Library messages may carry a multi-line build log; the contract here is one line. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    fprintf(stderr, "clattn: %s\n", msg);
    return code;
}

/* Library failures caused by the caller's data are usage errors; the rest are runtime failures. */
int status_exit_code(clattn_status st)
{
    switch (st) {
    case CLATTN_INVALID_ARGUMENT:
    case CLATTN_INVALID_SHAPE:
    case CLATTN_SHAPE_MISMATCH:
        return EXIT_USAGE;
    default:
        return EXIT_RUNTIME;
    }
}

/* The context's detail message, or the status's generic one when the library left none. */
const char *lib_error(const clattn_context *ctx, clattn_status st)
{
    const char *m = clattn_context_last_error(ctx);
    return m && *m ? m : clattn_status_message(st);
}

const char *dtype_name(npy_dtype t)
{
    switch (t) {
    case NPY_F32:
        return "float32";
    case NPY_I32:
        return "int32";
    case NPY_I64:
        return "int64";
    case NPY_F16:
        return "float16";
    case NPY_U16:
        return "uint16";
    case NPY_V2:
        return "2-byte void";
    case NPY_U8:
        return "uint8";
    case NPY_B1:
        return "bool";
    }
    return "?";
}

void format_shape(char *buf, size_t len, int ndim, const size_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? ", " : "", shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}


/* 1 when `arg` is `name` exactly or `name=...` (then *inl points after '='). */
static int opt_matches(const char *arg, const char *name, const char **inl)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0') {
        *inl = NULL;
        return 1;
    }
    if (arg[n] == '=' && name[1] == '-') {
        *inl = arg + n + 1;
        return 1;
    }
    return 0;
}

/* Parses argv[first..argc) against `specs`. Returns 0, -1 when help was asked (*help set), or an
 * exit code after printing the error. */
int parse_options(int argc, char **argv, int first, const char *cmd, const opt_spec *specs,
                         size_t nspecs, int *help)
{
    *help = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i], *inl = NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = 1;
            return 0;
        }
        const opt_spec *s = NULL;
        for (size_t j = 0; j < nspecs && !s; j++)
            if (opt_matches(arg, specs[j].name, &inl) ||
                (specs[j].alias && opt_matches(arg, specs[j].alias, &inl)))
                s = &specs[j];
        if (!s) {
            if (arg[0] == '-')
                return fail(EXIT_USAGE, "%s: unknown option '%s' (see 'clattn help')", cmd, arg);
            return fail(EXIT_USAGE, "%s: unexpected argument '%s' (see 'clattn help')", cmd, arg);
        }
        if (s->flag) {
            if (inl)
                return fail(EXIT_USAGE, "%s: option %s takes no value", cmd, s->name);
            *s->flag = 1;
            continue;
        }
        if (!inl) {
            if (i + 1 >= argc)
                return fail(EXIT_USAGE, "%s: option %s needs a value", cmd, s->name);
            inl = argv[++i];
        }
        if (*inl == '\0')
            return fail(EXIT_USAGE, "%s: option %s has an empty value", cmd, s->name);
        *s->value = inl;
    }
    return 0;
}

/* A decimal integer in [lo, hi]; no sign, no spaces, no trailing characters. */
int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

int size_option(const char *cmd, const char *name, const char *s, size_t lo, size_t hi,
                       size_t *out)
{
    if (parse_size(s, lo, hi, out) != 0)
        return fail(EXIT_USAGE, "%s: %s '%s' is not an integer in [%zu, %zu]", cmd, name, s, lo,
                    hi);
    return 0;
}


void progress_step(progress *p, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    p->step++;
    if (p->tty)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s ...", p->step, p->total, what);
    else
        fprintf(stderr, "[%zu/%zu] %s\n", p->step, p->total, what);
    fflush(stderr);
}

void progress_clear(const progress *p)
{
    if (p->tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* A note about a skipped measurement; the sweep goes on. */
void note(const progress *p, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    progress_clear(p);
    fprintf(stderr, "clattn: note: %s\n", msg);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void fill_random(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

/* Creates `count` buffers of `elems` floats; the first `random` are filled with values in [-1, 1).
 * Returns CL_SUCCESS or the OpenCL error (buffers made so far are released). */
cl_int make_buffers_typed(clattn_context *ctx, cl_mem *bufs, size_t count, size_t random,
                          size_t elems, clattn_dtype dt)
{
    cl_context clctx = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    size_t es = clattn_dtype_size(dt);
    float *host = random ? malloc(elems * sizeof *host) : NULL;
    /* float32 buffers are written from `host` itself; other types from a converted copy */
    void *typed = random && dt != CLATTN_F32 ? malloc(elems * es) : host;
    cl_int err = random && (!host || !typed) ? CL_OUT_OF_HOST_MEMORY : CL_SUCCESS;
    for (size_t i = 0; i < count; i++)
        bufs[i] = NULL;
    for (size_t i = 0; i < count && err == CL_SUCCESS; i++) {
        bufs[i] = clCreateBuffer(clctx, i < random ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE,
                                 elems * es, NULL, &err);
        if (err == CL_SUCCESS && i < random) {
            fill_random(host, elems, i + 1);
            if (typed != host)
                clattn_convert_host(host, CLATTN_F32, typed, dt, elems);
            err = clEnqueueWriteBuffer(queue, bufs[i], CL_TRUE, 0, elems * es, typed, 0, NULL,
                                       NULL);
        }
    }
    if (typed != host)
        free(typed);
    free(host);
    if (err != CL_SUCCESS)
        release_buffers(bufs, count);
    return err;
}

cl_int make_buffers(clattn_context *ctx, cl_mem *bufs, size_t count, size_t random,
                    size_t elems)
{
    return make_buffers_typed(ctx, bufs, count, random, elems, CLATTN_F32);
}

int cli_dtype_list(const char *cmd, const char *s, clattn_dtype out[3], size_t *n)
{
    *n = 0;
    if (!s) {
        out[(*n)++] = CLATTN_F32;
        return 0;
    }
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char one[16];
        if (len == 0 || len >= sizeof one)
            return fail(EXIT_USAGE, "%s: --dtype '%s' is not a comma list of f32, f16, bf16", cmd,
                        s);
        memcpy(one, p, len);
        one[len] = '\0';
        clattn_dtype dt;
        int rc = cli_dtype_option(cmd, "--dtype", one, &dt);
        if (rc)
            return rc;
        for (size_t i = 0; i < *n; i++) /* three distinct types fill out[] */
            if (out[i] == dt)
                return fail(EXIT_USAGE, "%s: --dtype lists %s twice", cmd, one);
        out[(*n)++] = dt;
        if (!end)
            return 0;
        p = end + 1;
    }
}

void release_buffers(cl_mem *bufs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
}

/* A comma-separated list of integers in [lo, hi]. */
int parse_list(const char *cmd, const char *name, const char *s, size_t lo, size_t hi,
                      size_t *out, size_t *count)
{
    char item[32];
    *count = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item || *count >= MAX_SWEEP)
            return fail(EXIT_USAGE, "%s: %s '%s' is not a list of integers", cmd, name, s);
        memcpy(item, p, len);
        item[len] = '\0';
        int rc = size_option(cmd, name, item, lo, hi, &out[*count]);
        if (rc)
            return rc;
        (*count)++;
        p += len + (p[len] == ',');
    }
    return *count ? 0 : fail(EXIT_USAGE, "%s: %s is empty", cmd, name);
}

int fail_status(clattn_context *ctx, clattn_status st, const char *what)
{
    return fail(status_exit_code(st), "%s: %s (%s)", what, lib_error(ctx, st),
                clattn_status_string(st));
}

int float_option(const char *cmd, const char *name, const char *s, float lo, float hi, int open_lo,
                 float *out)
{
    char *end = NULL;
    errno = 0;
    float x = strtof(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(x) || x < lo || x > hi ||
        (open_lo && x == lo)) {
        if (isinf(lo) && isinf(hi))
            return fail(EXIT_USAGE, "%s: %s '%s' is not a finite float32 number", cmd, name, s);
        return fail(EXIT_USAGE, "%s: %s '%s' is not a number in %c%g, %g]", cmd, name, s,
                    open_lo ? '(' : '[', (double)lo, (double)hi);
    }
    *out = x;
    return 0;
}

int seed_option(const char *cmd, const char *name, const char *s, uint64_t *out)
{
    size_t v = 0;
    if (parse_size(s, 0, SIZE_MAX, &v) != 0)
        return fail(EXIT_USAGE, "%s: %s '%s' is not a non-negative integer", cmd, name, s);
    *out = (uint64_t)v;
    return 0;
}

/* ---- options every run command shares ---- */

static struct {
    int quiet;
    cli_layout layout;
    int in_dtype; /* -1: each file keeps its own type */
    clattn_dtype out_dtype;
    double t0_ms; /* when open_context returned */
} run_opts;

int cli_get_in_dtype(void) { return run_opts.in_dtype; }
clattn_dtype cli_get_out_dtype(void) { return run_opts.out_dtype; }

int cli_dtype_option(const char *cmd, const char *name, const char *s, clattn_dtype *out)
{
    if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0)
        *out = CLATTN_F32;
    else if (strcmp(s, "f16") == 0 || strcmp(s, "float16") == 0)
        *out = CLATTN_F16;
    else if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0)
        *out = CLATTN_BF16;
    else
        return fail(EXIT_USAGE, "%s: %s '%s' is not f32, f16 or bf16", cmd, name, s);
    return 0;
}

cli_layout cli_get_layout(void)
{
    return run_opts.layout;
}

const char *cli_layout_name(cli_layout layout)
{
    return layout == CLI_LAYOUT_BNHD ? "bnhd" : "bhnd";
}

void cli_usage_run_options(FILE *f)
{
    fprintf(f,
            "  options of every 'clattn run' command:\n"
            "      --layout bhnd|bnhd   4-D .npy tensors (q, k, v, out) are [B,H,N,D] (bhnd,\n"
            "                           default) or token-major [B,N,H,D] (bnhd, PyTorch's\n"
            "                           batch-first layout), read and written as such; other\n"
            "                           arrays (log-sum-exp [B,H,N], projections ...) as given\n"
            "      --dtype f32|f16|bf16 element type of the inputs on the device: float files are\n"
            "                           rounded to it; uint16 or '|V2' files hold bfloat16 and\n"
            "                           need --dtype bf16. Default: each file keeps its own\n"
            "                           type ('<f4' float32, '<f2' float16)\n"
            "      --out-dtype f32|f16|bf16  element type of the outputs (default f32); bf16\n"
            "                           files are written as uint16 words ('<u2')\n"
            "      --quiet              no summary line; by default a successful run prints one\n"
            "                           line on stderr: device, plan (operator, algorithm,\n"
            "                           launch, who chose it) and wall time from opening the\n"
            "                           device to the outputs written\n");
}

int cli_take_run_options(const char *cmd, int *argc, char **argv, int first)
{
    int out = first;
    run_opts.in_dtype = -1;
    run_opts.out_dtype = CLATTN_F32;
    for (int i = first; i < *argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strcmp(arg, "--quiet") == 0) {
            run_opts.quiet = 1;
            continue;
        }
        const char *dname = strncmp(arg, "--dtype", 7) == 0       ? "--dtype"
                            : strncmp(arg, "--out-dtype", 11) == 0 ? "--out-dtype"
                                                                    : NULL;
        if (dname && (arg[strlen(dname)] == '\0' || arg[strlen(dname)] == '=')) {
            const char *dv = arg[strlen(dname)] == '=' ? arg + strlen(dname) + 1 : NULL;
            if (!dv) {
                if (i + 1 >= *argc)
                    return fail(EXIT_USAGE, "%s: option %s needs a value", cmd, dname);
                dv = argv[++i];
            }
            clattn_dtype dt;
            if (cli_dtype_option(cmd, dname, dv, &dt))
                return EXIT_USAGE;
            if (dname[2] == 'd')
                run_opts.in_dtype = (int)dt;
            else
                run_opts.out_dtype = dt;
            continue;
        }
        if (strcmp(arg, "--layout") == 0) {
            if (i + 1 >= *argc)
                return fail(EXIT_USAGE, "%s: option --layout needs a value", cmd);
            value = argv[++i];
        } else if (strncmp(arg, "--layout=", 9) == 0) {
            value = arg + 9;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (strcmp(value, "bhnd") == 0)
            run_opts.layout = CLI_LAYOUT_BHND;
        else if (strcmp(value, "bnhd") == 0)
            run_opts.layout = CLI_LAYOUT_BNHD;
        else
            return fail(EXIT_USAGE, "%s: --layout '%s' is not bhnd or bnhd", cmd, value);
    }
    for (int i = out; i < *argc; i++)
        argv[i] = NULL;
    *argc = out;
    return 0;
}

int open_context(const char *device, clattn_context **ctx)
{
    clattn_status st = clattn_context_create(device, ctx);
    const char *env = getenv("CLATTN_DEVICE");
    int selected = (device && *device) || (env && *env); /* a selector that matched nothing */
    if (st != CLATTN_SUCCESS)
        return fail(st == CLATTN_NO_DEVICE && selected ? EXIT_USAGE : EXIT_RUNTIME,
                    "cannot open a device: %s", lib_error(NULL, st));
    run_opts.t0_ms = now_ms();
    return 0;
}

void cli_run_summary(clattn_context *ctx, const char *op, const clattn_plan *plan)
{
    cli_run_summary_with(ctx, op, plan, NULL);
}

void cli_run_summary_with(clattn_context *ctx, const char *op, const clattn_plan *plan,
                          const char *extra)
{
    if (run_opts.quiet)
        return;
    double ms = now_ms() - run_opts.t0_ms;
    clattn_device_info d;
    char where[400] = "device ?", what[400] = "plan: none";
    if (clattn_context_get_device_info(ctx, &d) == CLATTN_SUCCESS)
        snprintf(where, sizeof where, "device %u:%u %s (%s)", d.platform_index, d.device_index,
                 d.name, d.platform_name);
    clattn_plan_info pi;
    if (plan && clattn_plan_get_info(plan, &pi) == CLATTN_SUCCESS) {
        const char *by = pi.from_tuning_db   ? "tuning-db"
                         : pi.num_kernels > 0 ? pi.kernels[pi.num_kernels - 1].chosen_by
                                              : "scheduler";
        snprintf(what, sizeof what, "plan %s %s%s%s (%s)", clattn_operator_name(pi.op),
                 pi.algorithm_name[0] ? pi.algorithm_name : "-", pi.launch[0] ? " " : "",
                 pi.launch, by);
    }
    fprintf(stderr, "clattn: run %s: %s; %s; %s%s%.1f ms\n", op, where, what,
            extra && *extra ? extra : "", extra && *extra ? "; " : "", ms);
}

/* ---- usage text ---- */

/* usage(f) as text in a malloc'd string (NULL when out of memory). */
static char *usage_text(cli_usage_fn usage)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    usage(f);
    fclose(f);
    return buf;
}

/* 1 when `line` is "  clattn <command>" followed by a space or the end of the line. */
static int block_header(const char *line, const char *command)
{
    static const char lead[] = "  clattn ";
    size_t n = strlen(command);
    return strncmp(line, lead, sizeof lead - 1) == 0 &&
           strncmp(line + sizeof lead - 1, command, n) == 0 &&
           (line[sizeof lead - 1 + n] == ' ' || line[sizeof lead - 1 + n] == '\n' ||
            line[sizeof lead - 1 + n] == '\0');
}

int cli_usage_blocks(FILE *out, cli_usage_fn usage, const char *command)
{
    char *text = usage_text(usage);
    if (!text)
        return 0;
    int blocks = 0, in = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (strncmp(line, "  clattn ", 9) == 0) /* a block starts: ours or another's */
            in = block_header(line, command);
        if (in && strncmp(line, "  clattn ", 9) == 0)
            blocks++;
        if (in)
            fwrite(line, 1, len, out);
        line += len;
    }
    free(text);
    return blocks;
}

void cli_usage_first_line(cli_usage_fn usage, const char *command, char *buf, size_t len)
{
    buf[0] = '\0';
    char *text = usage_text(usage);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (block_header(line, command)) {
            snprintf(buf, len, "%.*s", (int)(n - 2), line + 2);
            break;
        }
        line += n + (nl ? 1 : 0);
    }
    free(text);
}

clattn_status time_median(clattn_context *ctx, bench_fn enqueue, void *arg, size_t reps,
                          double *ms)
{
    double *times = malloc(reps * sizeof *times);
    if (!times)
        return CLATTN_OUT_OF_HOST_MEMORY;
    clattn_status st = CLATTN_SUCCESS;
    for (size_t r = 0; r <= reps && st == CLATTN_SUCCESS; r++) {
        double t0 = now_ms();
        st = enqueue(arg);
        if (st == CLATTN_SUCCESS)
            st = clattn_context_finish(ctx);
        if (r > 0)
            times[r - 1] = now_ms() - t0;
    }
    if (st == CLATTN_SUCCESS)
        *ms = median(times, reps);
    free(times);
    return st;
}

void cli_print_csv(const bench_row *rows, size_t n)
{
    printf("%s\n", BENCH_CSV_HEADER);
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        printf("%s,%s,%zu,%zu,%zu,%zu,%zu,%d,%.4f,%.3f,%s\n", r->op, r->variant, r->batch,
               r->heads, r->nq, r->nk, r->d, r->causal, isnan(r->ms) ? 0.0 : r->ms, r->gflops,
               r->dtype ? r->dtype : "f32");
    }
}

void cli_print_table(const bench_row *rows, size_t n, const char *base, double peak_gflops)
{
    printf("%-8s %-10s %5s %5s %7s %7s %4s %6s %10s %9s %9s %6s %9s %5s  %s\n", "op", "variant",
           "batch", "heads", "nq", "nk", "d", "causal", "ms", "GFLOP/s", "build ms", "%peak",
           base ? "vs base" : "", "dtype", "kernel");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char ms[32] = "-", build[32] = "-", frac[32] = "-", speed[32] = "-";
        if (!isnan(r->ms))
            snprintf(ms, sizeof ms, "%.3f", r->ms);
        if (!isnan(r->build_ms))
            snprintf(build, sizeof build, "%.1f", r->build_ms);
        if (peak_gflops > 0 && r->gflops > 0)
            snprintf(frac, sizeof frac, "%.1f%%", 100.0 * r->gflops / peak_gflops);
        for (size_t j = 0; base && j < n; j++)
            if (strcmp(rows[j].variant, base) == 0 && rows[j].nq == r->nq &&
                rows[j].nk == r->nk && strcmp(r->variant, base) != 0 && r->ms > 0 &&
                !isnan(rows[j].ms) &&
                strcmp(rows[j].dtype ? rows[j].dtype : "f32", r->dtype ? r->dtype : "f32") == 0)
                snprintf(speed, sizeof speed, "%.2fx", rows[j].ms / r->ms);
        printf("%-8s %-10s %5zu %5zu %7zu %7zu %4zu %6d %10s %9.2f %9s %6s %9s %5s  %s\n", r->op,
               r->variant, r->batch, r->heads, r->nq, r->nk, r->d, r->causal, ms, r->gflops, build,
               frac, speed, r->dtype ? r->dtype : "f32", r->kernel);
    }
}

typedef struct tiled_job {
    clattn_plan *plan;
    clattn_tensor t[4];
} tiled_job;

static clattn_status tiled_enqueue(void *arg)
{
    tiled_job *j = arg;
    return clattn_softmax_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], NULL, 0,
                                         NULL, NULL);
}

int bench_tiled_row(clattn_context *ctx, size_t batch, size_t heads, size_t nq, size_t nk,
                    size_t d, int causal, size_t reps, const progress *prog, bench_row *r)
{
    const size_t qs[4] = {batch, heads, nq, d}, ks[4] = {batch, heads, nk, d};
    cl_mem bufs[4] = {NULL, NULL, NULL, NULL};
    tiled_job job = {NULL, {{0}}};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = causal;
    memset(r, 0, sizeof *r);
    size_t big = nq > nk ? nq : nk;
    cl_int err = make_buffers(ctx, bufs, 4, 3, batch * heads * big * d);
    if (err != CL_SUCCESS) {
        note(prog, "tiled N=%zu skipped: cannot allocate its tensors (OpenCL error %d)", nq,
             (int)err);
        return -1;
    }
    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, qs, ks, ks, &job.plan);
    r->build_ms = now_ms() - t0;
    if (st == CLATTN_SUCCESS) {
        job.t[0] = clattn_tensor_make(bufs[0], batch, heads, nq, d);
        job.t[1] = clattn_tensor_make(bufs[1], batch, heads, nk, d);
        job.t[2] = clattn_tensor_make(bufs[2], batch, heads, nk, d);
        job.t[3] = clattn_tensor_make(bufs[3], batch, heads, nq, d);
        clattn_plan_info pi;
        if (clattn_plan_get_info(job.plan, &pi) == CLATTN_SUCCESS)
            snprintf(r->kernel, sizeof r->kernel, "%s", pi.variant);
        st = time_median(ctx, tiled_enqueue, &job, reps, &r->ms);
    }
    if (st != CLATTN_SUCCESS)
        note(prog, "tiled N=%zu failed: %s", nq, lib_error(ctx, st));
    clattn_plan_destroy(job.plan);
    release_buffers(bufs, 4);
    if (st != CLATTN_SUCCESS)
        return -1;
    snprintf(r->op, sizeof r->op, "softmax");
    snprintf(r->variant, sizeof r->variant, "tiled");
    r->batch = batch;
    r->heads = heads;
    r->nq = nq;
    r->nk = nk;
    r->d = d;
    r->causal = causal;
    double flops = 4.0 * (double)batch * (double)heads * (double)nq * (double)nk * (double)d;
    r->gflops = (causal ? flops / 2 : flops) / (r->ms * 1e6);
    return 0;
}

int bench_peak_row(clattn_context *ctx, const progress *prog, bench_row *r)
{
    double g = 0;
    clattn_status st = clattn_measure_peak_gflops(ctx, &g);
    if (st != CLATTN_SUCCESS) {
        note(prog, "peak failed: %s", lib_error(ctx, st));
        return -1;
    }
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "peak");
    snprintf(r->variant, sizeof r->variant, "peak");
    r->ms = NAN;
    r->build_ms = NAN;
    r->gflops = g;
    snprintf(r->kernel, sizeof r->kernel, "float16 FMA chains");
    return 0;
}

int bench_open(const char *device, clattn_context **ctx)
{
    int rc = open_context(device, ctx);
    if (rc)
        return rc;
    clattn_device_info info;
    clattn_context_get_device_info(*ctx, &info);
    fprintf(stderr, "clattn: benchmarking on %u:%u %s (%s)\n", info.platform_index,
            info.device_index, info.name, info.platform_name);
    return 0;
}

int parse_variant_list(const char *cmd, const char *s, const char *const *names, int count,
                       int *out, int *n_out)
{
    *n_out = 0;
    if (!s) {
        for (int v = 0; v < count; v++)
            out[(*n_out)++] = v;
        return 0;
    }
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int v = 0; v < count; v++)
            if (strlen(names[v]) == len && strncmp(p, names[v], len) == 0)
                found = v;
        if (found < 0) {
            char known[256] = "";
            for (int v = 0; v < count; v++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         v ? ", " : "", names[v]);
            return fail(EXIT_USAGE, "%s: --variants: unknown variant '%.*s' (known: %s)", cmd,
                        (int)len, p, known);
        }
        int dup = 0;
        for (int i = 0; i < *n_out; i++)
            dup |= out[i] == found;
        if (!dup)
            out[(*n_out)++] = found;
        p += len + (p[len] == ',');
    }
    return *n_out ? 0 : fail(EXIT_USAGE, "%s: --variants is empty", cmd);
}
