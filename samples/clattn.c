/* clattn — the command-line tool.
 *
 *   clattn devices                       platforms, devices, capabilities and the scheduler's plans
 *   clattn run softmax --q ... -o ...    attention on float32 .npy files, checkable from numpy
 *   clattn bench softmax [...]           timing sweeps against a naive baseline, SGEMM and FMA peak
 *   clattn tune [...]                    autotune tiled attention; --show / --reset the database
 *   clattn demo                          devices + a small bench on the default device
 *
 * It links only against the public API (clattn.h) and the .npy helper (npy.h), so it doubles as an
 * example of the plan API. Exit status: 0 success, 1 runtime failure (device, build, I/O while
 * writing), 2 usage error (bad options, unreadable or mismatched input files). Errors are one line
 * on stderr starting with "clattn: "; outputs are written only after the computation succeeded. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SGEMM_SIZE 2048


/* ---------------------------------------------------------------------------------------------- */
/* Operators: each family's `run` and `bench` live in samples/cli_<op>.c (see cli.h)               */
/* ---------------------------------------------------------------------------------------------- */

static int run_softmax_cmd(int argc, char **argv);
static int bench_softmax_cmd(int argc, char **argv);
static void usage_softmax(FILE *f);
void cli_usage_linear(FILE *f);
int cli_run_linear(int argc, char **argv);
int cli_bench_linear(int argc, char **argv);
int cli_run_lsh(int argc, char **argv); /* samples/cli_lsh.c */
int cli_bench_lsh(int argc, char **argv);
void cli_usage_lsh(FILE *f);
int cli_run_routing(int argc, char **argv); /* samples/cli_routing.c */
int cli_bench_routing(int argc, char **argv);
void cli_usage_routing(FILE *f);
int cli_run_ssm(int argc, char **argv); /* samples/cli_ssm.c */
int cli_bench_ssm(int argc, char **argv);
void cli_usage_ssm(FILE *f);
int cli_run_rpe(int argc, char **argv); /* samples/cli_rpe.c */
int cli_bench_rpe(int argc, char **argv);
void cli_usage_rpe(FILE *f);

/* Registered operators: name, `run`, `bench` (either may be NULL) and the usage lines for
 * `clattn help`. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int (*bench)(int argc, char **argv);
    void (*usage)(FILE *f);
} OPERATORS[] = {
    {"softmax", run_softmax_cmd, bench_softmax_cmd, usage_softmax},
    {"linear", cli_run_linear, cli_bench_linear, cli_usage_linear},
    {"lsh", cli_run_lsh, cli_bench_lsh, cli_usage_lsh},
    {"routing", cli_run_routing, cli_bench_routing, cli_usage_routing},
    {"ssm", cli_run_ssm, cli_bench_ssm, cli_usage_ssm},
    {"rpe", cli_run_rpe, cli_bench_rpe, cli_usage_rpe},
};
#define N_OPERATORS (sizeof OPERATORS / sizeof OPERATORS[0])

/* ---------------------------------------------------------------------------------------------- */
/* Messages                                                                                       */
/* ---------------------------------------------------------------------------------------------- */

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

static const char *algo_name(clattn_softmax_algo a)
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

/* ---------------------------------------------------------------------------------------------- */
/* Usage                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

static void usage_softmax(FILE *f)
{
    fprintf(f,
            "  clattn run softmax --q Q.npy --k K.npy --v V.npy -o OUT.npy [--causal]\n"
            "         [--scale S] [--key-lengths L.npy] [--lse LSE.npy]\n"
            "         [--algo auto|cpu|gpu|naive] [--device SEL]\n"
            "      exact attention on float32 .npy arrays: q [B,Hq,Nq,D], k and v [B,Hk,Nk,D]\n"
            "      (Hq a multiple of Hk), key lengths int32/int64 [B] in [0, Nk]; writes OUT\n"
            "      [B,Hq,Nq,D] and optionally the log-sum-exp LSE [B,Hq,Nq]. --scale defaults to\n"
            "      1/sqrt(D); --causal is bottom-right aligned when Nq != Nk\n"
            "  clattn bench softmax [--n 1024,2048,...] [--d 64] [--heads 8] [--batch 1]\n"
            "         [--causal] [--csv] [--reps 5] [--variants LIST] [--device SEL]\n"
            "      median wall time per variant: tiled (scheduler's choice), tiled-cpu,\n"
            "      tiled-gpu, naive (CLBlast GEMMs + softmax), sgemm (CLBlast, M=N=K=%d),\n"
            "      peak (FMA throughput); default tiled,naive,sgemm,peak. Plan build time is\n"
            "      reported apart. --csv prints op,variant,batch,heads,nq,nk,d,causal,ms,gflops\n"
            "      (sgemm rows: nq,nk,d = M,N,K; peak rows: sizes and ms 0). Attention FLOPs\n"
            "      are 4*B*H*Nq*Nk*D, halved with --causal\n",
            SGEMM_SIZE);
}

static void print_usage(FILE *f)
{
    fprintf(f,
            "clattn %s - runtime-compiled OpenCL kernels for attention\n"
            "\n"
            "usage:\n"
            "  clattn devices\n"
            "      list every OpenCL platform/device, its capabilities and the plans the\n"
            "      scheduler picks for tiled attention (D = 64, 128; N = 4096); '*' marks the\n"
            "      device a plain context would use\n",
            clattn_version_string());
    for (size_t i = 0; i < N_OPERATORS; i++)
        OPERATORS[i].usage(f);
    fprintf(f,
            "  clattn tune [--op softmax] [--d 64,128] [--n 4096] [--causal both|yes|no]\n"
            "         [--budget SECONDS] [--heads 8] [--batch 1] [--device SEL]\n"
            "      autotune tiled attention for each shape (B x H x N x D): time the valid\n"
            "      launches against the scheduler's default, keep the fastest only when it beats\n"
            "      the default beyond the measured noise, and record it in the tuning database\n"
            "      that later plans use; a progress bar, then a before/after table. Budget per\n"
            "      shape, default 60 s\n"
            "  clattn tune --show | --reset\n"
            "      list this device's tuning database, or delete it\n"
            "  clattn demo\n"
            "      'devices', then a small bench (N = 256, 512, 1024; 4 heads; D = 64)\n"
            "  clattn help | -h | --help      this text\n"
            "  clattn --version               the tool's and the linked library's versions\n"
            "\n"
            "environment:\n"
            "  CLATTN_DEVICE=P:D|substring  device used when --device is not given (default:\n"
            "                               first GPU, else accelerator, else CPU)\n"
            "  CLATTN_CACHE_DIR=DIR         program-binary cache and tuning database (default\n"
            "                               $XDG_CACHE_HOME/clattn, then ~/.cache/clattn)\n"
            "  CLATTN_KERNEL_DIR=DIR        read kernel sources from DIR instead of the copies\n"
            "                               embedded in the library (kernel development)\n"
            "  CLATTN_PROGRAM_CACHE=off     do not read or write the on-disk program cache\n"
            "  CLATTN_TUNING=off            plans ignore the tuning database\n"
            "  CLATTN_CLBLAST_CPU_PARAMS=off  let CLBlast use its own defaults on CPU devices\n"
            "\n"
            "exit status: 0 success, 1 runtime failure, 2 usage error or bad input file\n");
}

/* ---------------------------------------------------------------------------------------------- */
/* Option parsing                                                                                 */
/* ---------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------- */
/* clattn devices                                                                                 */
/* ---------------------------------------------------------------------------------------------- */

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

/* The default is whatever a plain context picks (CLATTN_DEVICE included), so ask one. Returns 1
 * with *info filled, or 0 with the reason in err. */
static int default_device(clattn_device_info *info, char *err, size_t len)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st == CLATTN_SUCCESS)
        st = clattn_context_get_device_info(ctx, info);
    if (st != CLATTN_SUCCESS)
        snprintf(err, len, "%s", lib_error(ctx, st));
    clattn_context_destroy(ctx);
    return st == CLATTN_SUCCESS;
}

static int cmd_devices(int argc, char **argv)
{
    int help = 0;
    int rc = parse_options(argc, argv, 1, "devices", NULL, 0, &help);
    if (rc)
        return rc;
    if (help) {
        print_usage(stdout);
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
    int have_def = default_device(&def, def_err, sizeof def_err);

    const char *env = getenv("CLATTN_DEVICE");
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

/* ---------------------------------------------------------------------------------------------- */
/* clattn run softmax                                                                             */
/* ---------------------------------------------------------------------------------------------- */

typedef struct run_args {
    const char *q, *k, *v, *out, *lse, *scale, *key_lengths, *algo, *device;
    int causal;
} run_args;

static int load_qkv(const char *path, const char *opt, npy_array *a)
{
    return load_f32(path, opt, 4, a);
}

static int check_qkv_shapes(const run_args *ra, const npy_array *q, const npy_array *k,
                            const npy_array *v)
{
    char ks[160], vs[160];
    format_shape(ks, sizeof ks, 4, k->shape);
    format_shape(vs, sizeof vs, 4, v->shape);
    if (memcmp(k->shape, v->shape, 4 * sizeof k->shape[0]) != 0)
        return fail(EXIT_USAGE, "%s (--k) shape %s differs from %s (--v) shape %s", ra->k, ks,
                    ra->v, vs);
    if (q->shape[0] != k->shape[0])
        return fail(EXIT_USAGE, "batch of %s (%zu) differs from batch of %s (%zu)", ra->q,
                    q->shape[0], ra->k, k->shape[0]);
    if (q->shape[3] != k->shape[3])
        return fail(EXIT_USAGE, "head dim of %s (%zu) differs from head dim of %s (%zu)", ra->q,
                    q->shape[3], ra->k, k->shape[3]);
    if (q->shape[1] % k->shape[1] != 0)
        return fail(EXIT_USAGE, "heads of %s (%zu) are not a multiple of heads of %s (%zu)", ra->q,
                    q->shape[1], ra->k, k->shape[1]);
    if (q->shape[3] > MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dim %zu exceeds the supported maximum %d", ra->q,
                    q->shape[3], MAX_HEAD_DIM);
    return 0;
}

/* Reads int32 or int64 key lengths [B], each in [0, nk], into a malloc'd int32 array. */
static int load_key_lengths(const char *path, size_t batch, size_t nk, int32_t **out)
{
    npy_array a;
    char err[512];
    *out = NULL;
    if (npy_read(path, &a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    int rc = 0;
    char shp[160];
    format_shape(shp, sizeof shp, a.ndim, a.shape);
    if (a.dtype != NPY_I32 && a.dtype != NPY_I64)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): dtype %s, expected int32 or int64", path,
                  dtype_name(a.dtype));
    else if (a.ndim != 1 || a.shape[0] != batch)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): shape %s, expected [%zu] (one per batch)", path,
                  shp, batch);
    int32_t *kl = rc ? NULL : malloc((batch ? batch : 1) * sizeof *kl);
    if (!rc && !kl)
        rc = fail(EXIT_RUNTIME, "out of memory");
    for (size_t b = 0; !rc && b < batch; b++) {
        int64_t x =
            a.dtype == NPY_I32 ? ((const int32_t *)a.data)[b] : ((const int64_t *)a.data)[b];
        if (x < 0 || (uint64_t)x > nk)
            rc = fail(EXIT_USAGE, "%s (--key-lengths): key_lengths[%zu] = %lld outside [0, %zu]",
                      path, b, (long long)x, nk);
        else
            kl[b] = (int32_t)x;
    }
    npy_free(&a);
    if (rc)
        free(kl);
    else
        *out = kl;
    return rc;
}

static int parse_algo(const char *s, clattn_softmax_algo *algo)
{
    static const struct {
        const char *name;
        clattn_softmax_algo algo;
    } names[] = {{"auto", CLATTN_SOFTMAX_AUTO},           {"cpu", CLATTN_SOFTMAX_TILED_CPU},
                 {"tiled-cpu", CLATTN_SOFTMAX_TILED_CPU}, {"gpu", CLATTN_SOFTMAX_TILED_GPU},
                 {"tiled-gpu", CLATTN_SOFTMAX_TILED_GPU}, {"naive", CLATTN_SOFTMAX_NAIVE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *algo = names[i].algo;
            return 0;
        }
    return -1;
}

/* Options that need no file: parsed before anything is read so that typos fail fast. */
static int run_check_options(const run_args *ra, clattn_softmax_desc *desc)
{
    const char *missing = !ra->q ? "--q" : !ra->k ? "--k" : !ra->v ? "--v" : !ra->out ? "-o" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "run softmax: missing required option %s (needs --q, --k, --v, -o)",
                    missing);
    if (ra->lse && strcmp(ra->lse, ra->out) == 0)
        return fail(EXIT_USAGE, "run softmax: --lse and -o name the same file '%s'", ra->out);
    clattn_softmax_desc_init(desc);
    desc->causal = ra->causal;
    if (ra->scale) {
        char *end = NULL;
        errno = 0;
        float s = strtof(ra->scale, &end);
        if (end == ra->scale || *end != '\0' || errno == ERANGE || !isfinite(s))
            return fail(EXIT_USAGE, "run softmax: --scale '%s' is not a finite float32 number",
                        ra->scale);
        desc->scale = s;
    }
    if (ra->algo && parse_algo(ra->algo, &desc->algorithm) != 0)
        return fail(EXIT_USAGE, "run softmax: --algo '%s' is not one of auto, cpu, gpu, naive",
                    ra->algo);
    return 0;
}

/* Writes OUT and then LSE; if LSE fails, OUT is removed so no half-result is left behind. */
static int write_outputs(const run_args *ra, const float *out, const float *lse,
                         const size_t qshape[4])
{
    char err[512];
    if (npy_write_f32(ra->out, out, 4, qshape, err, sizeof err) != 0)
        return fail(EXIT_RUNTIME, "%s", err);
    if (ra->lse && npy_write_f32(ra->lse, lse, 3, qshape, err, sizeof err) != 0) {
        remove(ra->out);
        return fail(EXIT_RUNTIME, "%s (removed %s)", err, ra->out);
    }
    return 0;
}

static int run_softmax(const run_args *ra)
{
    clattn_softmax_desc desc;
    int rc = run_check_options(ra, &desc);
    if (rc)
        return rc;

    npy_array q, k, v;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    int32_t *kl = NULL;
    float *out = NULL, *lse = NULL;
    clattn_context *ctx = NULL;

    if ((rc = load_qkv(ra->q, "--q", &q)) || (rc = load_qkv(ra->k, "--k", &k)) ||
        (rc = load_qkv(ra->v, "--v", &v)) || (rc = check_qkv_shapes(ra, &q, &k, &v)))
        goto cleanup;
    if (ra->key_lengths && (rc = load_key_lengths(ra->key_lengths, q.shape[0], k.shape[2], &kl)))
        goto cleanup;

    out = malloc(q.count * sizeof *out);
    lse = ra->lse ? malloc(q.count / q.shape[3] * sizeof *lse) : NULL;
    if (!out || (ra->lse && !lse)) {
        rc = fail(EXIT_RUNTIME, "out of memory for the outputs");
        goto cleanup;
    }
    clattn_status st = clattn_context_create(ra->device, &ctx);
    if (st != CLATTN_SUCCESS) {
        rc = fail(st == CLATTN_NO_DEVICE && ra->device ? EXIT_USAGE : EXIT_RUNTIME,
                  "cannot open a device: %s", lib_error(NULL, st));
        goto cleanup;
    }
    st = clattn_softmax_host(ctx, &desc, q.shape, k.shape, v.shape, q.data, k.data, v.data, kl,
                               out, lse);
    if (st != CLATTN_SUCCESS) {
        rc = fail(status_exit_code(st), "attention failed: %s (%s)", lib_error(ctx, st),
                  clattn_status_string(st));
        goto cleanup;
    }
    rc = write_outputs(ra, out, lse, q.shape);
cleanup:
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    free(kl);
    free(out);
    free(lse);
    return rc;
}

static int run_softmax_cmd(int argc, char **argv)
{
    run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},
        {"--k", NULL, &ra.k, NULL},
        {"--v", NULL, &ra.v, NULL},
        {"--out", "-o", &ra.out, NULL},
        {"--lse", NULL, &ra.lse, NULL},
        {"--scale", NULL, &ra.scale, NULL},
        {"--key-lengths", NULL, &ra.key_lengths, NULL},
        {"--algo", NULL, &ra.algo, NULL},
        {"--device", NULL, &ra.device, NULL},
        {"--causal", NULL, NULL, &ra.causal},
    };
    int help = 0;
    int rc =
        parse_options(argc, argv, 2, "run softmax", specs, sizeof specs / sizeof specs[0], &help);
    if (rc)
        return rc;
    if (help) {
        print_usage(stdout);
        return 0;
    }
    return run_softmax(&ra);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn bench softmax                                                                           */
/* ---------------------------------------------------------------------------------------------- */

typedef enum variant_id {
    V_TILED,
    V_TILED_CPU,
    V_TILED_GPU,
    V_NAIVE,
    V_SGEMM,
    V_PEAK,
    V_COUNT
} variant_id;

static const struct {
    const char *name;
    int attention;
    clattn_softmax_algo algo;
} VARIANTS[V_COUNT] = {
    {"tiled", 1, CLATTN_SOFTMAX_AUTO},          {"tiled-cpu", 1, CLATTN_SOFTMAX_TILED_CPU},
    {"tiled-gpu", 1, CLATTN_SOFTMAX_TILED_GPU}, {"naive", 1, CLATTN_SOFTMAX_NAIVE},
    {"sgemm", 0, CLATTN_SOFTMAX_AUTO},          {"peak", 0, CLATTN_SOFTMAX_AUTO},
};

typedef struct bench_config {
    size_t ns[MAX_SWEEP];
    size_t n_count;
    size_t d, heads, batch, reps;
    int causal, csv;
    variant_id order[V_COUNT];
    size_t n_variants;
    const char *device;
} bench_config;

typedef struct bench_result {
    const char *op;
    variant_id variant;
    size_t batch, heads, nq, nk, d;
    int causal;
    double ms, gflops, build_ms; /* ms and build_ms are NAN where they do not apply */
    char kernel[64];
} bench_result;

static int parse_variants(const char *s, bench_config *cfg)
{
    cfg->n_variants = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        variant_id found = V_COUNT;
        for (int v = 0; v < V_COUNT; v++)
            if (strlen(VARIANTS[v].name) == len && strncmp(p, VARIANTS[v].name, len) == 0)
                found = (variant_id)v;
        if (found == V_COUNT)
            return fail(EXIT_USAGE,
                        "bench: --variants: unknown variant '%.*s' (known: tiled, tiled-cpu, "
                        "tiled-gpu, naive, sgemm, peak)",
                        (int)len, p);
        int dup = 0;
        for (size_t i = 0; i < cfg->n_variants; i++)
            dup |= cfg->order[i] == found;
        if (!dup)
            cfg->order[cfg->n_variants++] = found;
        p += len;
        if (*p == ',' && *++p == '\0')
            return fail(EXIT_USAGE, "bench: --variants '%s' ends with a comma", s);
    }
    return 0;
}

static int parse_ns(const char *s, bench_config *cfg)
{
    cfg->n_count = 0;
    const char *p = s;
    while (*p) {
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return fail(EXIT_USAGE, "bench: --n '%s' is not a comma-separated list of lengths", s);
        memcpy(item, p, len);
        item[len] = '\0';
        if (cfg->n_count == MAX_SWEEP)
            return fail(EXIT_USAGE, "bench: --n lists more than %d lengths", MAX_SWEEP);
        if (parse_size(item, 1, (size_t)1 << 24, &cfg->ns[cfg->n_count]) != 0)
            return fail(EXIT_USAGE, "bench: --n: '%s' is not an integer in [1, %zu]", item,
                        (size_t)1 << 24);
        cfg->n_count++;
        p += len;
        if (*p == ',' && *++p == '\0')
            return fail(EXIT_USAGE, "bench: --n '%s' ends with a comma", s);
    }
    return 0;
}

/* Warm-up once, then `reps` timed runs of enqueue + finish; the median in *ms. The wall clock is
 * used for every variant because the tiled CPU family runs a packing kernel before the one whose
 * event the plan returns. */
static clattn_status time_plan(clattn_context *ctx, clattn_plan *plan, const clattn_tensor t[4],
                               size_t reps, double *ms)
{
    double *times = malloc(reps * sizeof *times);
    if (!times)
        return CLATTN_OUT_OF_HOST_MEMORY;
    clattn_status st = CLATTN_SUCCESS;
    for (size_t r = 0; r <= reps && st == CLATTN_SUCCESS; r++) {
        double t0 = now_ms();
        st = clattn_softmax_plan_enqueue(plan, &t[0], &t[1], &t[2], &t[3], NULL, 0, NULL, NULL);
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

static double attention_flops(const bench_config *cfg, size_t n)
{
    double f =
        4.0 * (double)cfg->batch * (double)cfg->heads * (double)n * (double)n * (double)cfg->d;
    return cfg->causal ? f / 2 : f;
}

/* Bakes and times one attention variant at length n; 0 with *r filled, or -1 after a note. */
static int bench_attention(clattn_context *ctx, const bench_config *cfg, size_t n, variant_id var,
                           cl_mem bufs[4], const progress *prog, bench_result *r)
{
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = cfg->causal;
    desc.algorithm = VARIANTS[var].algo;
    const size_t shape[4] = {cfg->batch, cfg->heads, n, cfg->d};
    clattn_plan *plan = NULL;

    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, shape, shape, shape, &plan);
    r->build_ms = now_ms() - t0;
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s N=%zu skipped: %s", VARIANTS[var].name, n, lib_error(ctx, st));
        return -1;
    }
    clattn_plan_info pi;
    if (clattn_plan_get_info(plan, &pi) == CLATTN_SUCCESS)
        snprintf(r->kernel, sizeof r->kernel, "%s", pi.variant);
    clattn_tensor t[4];
    for (int i = 0; i < 4; i++)
        t[i] = clattn_tensor_make(bufs[i], cfg->batch, cfg->heads, n, cfg->d);
    st = time_plan(ctx, plan, t, cfg->reps, &r->ms);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s N=%zu failed: %s", VARIANTS[var].name, n, lib_error(ctx, st));
    clattn_plan_destroy(plan);
    if (st != CLATTN_SUCCESS)
        return -1;
    r->op = "softmax";
    r->variant = var;
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = r->nk = n;
    r->d = cfg->d;
    r->causal = cfg->causal;
    r->gflops = attention_flops(cfg, n) / (r->ms * 1e6);
    return 0;
}

/* Every attention variant at one length, sharing one set of inputs. Returns results added. */
static size_t bench_length(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, size_t n, progress *prog, bench_result *res)
{
    size_t nattn = 0, added = 0;
    for (size_t i = 0; i < cfg->n_variants; i++)
        nattn += VARIANTS[cfg->order[i]].attention;
    if (nattn == 0)
        return 0;
    size_t elems = cfg->batch * cfg->heads * n * cfg->d; /* bounded by the option ranges */
    cl_mem bufs[4];
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (elems * sizeof(float) <= info->max_alloc_size)
        err = make_buffers(ctx, bufs, 4, 3, elems);
    if (err != CL_SUCCESS) {
        note(prog,
             "N=%zu skipped: cannot allocate four %zu-byte tensors (max allocation %llu; "
             "OpenCL error %d)",
             n, elems * sizeof(float), (unsigned long long)info->max_alloc_size, (int)err);
        prog->step += nattn;
        return 0;
    }
    for (size_t i = 0; i < cfg->n_variants; i++) {
        variant_id v = cfg->order[i];
        if (!VARIANTS[v].attention)
            continue;
        progress_step(prog, "%s N=%zu", VARIANTS[v].name, n);
        bench_result *r = &res[added];
        memset(r, 0, sizeof *r);
        if (bench_attention(ctx, cfg, n, v, bufs, prog, r) == 0)
            added++;
    }
    release_buffers(bufs, 4);
    return added;
}

static int bench_sgemm(clattn_context *ctx, const bench_config *cfg, const progress *prog,
                       bench_result *r)
{
    const size_t m = SGEMM_SIZE;
    cl_mem bufs[3];
    cl_int err = make_buffers(ctx, bufs, 3, 2, m * m);
    if (err != CL_SUCCESS) {
        note(prog, "sgemm skipped: cannot allocate its matrices (OpenCL error %d)", (int)err);
        return -1;
    }
    double *times = malloc(cfg->reps * sizeof *times);
    clattn_status st = times ? CLATTN_SUCCESS : CLATTN_OUT_OF_HOST_MEMORY;
    for (size_t rep = 0; rep <= cfg->reps && st == CLATTN_SUCCESS; rep++) {
        double t0 = now_ms();
        st = clattn_sgemm_enqueue(ctx, 0, m, m, m, 1.0f, bufs[0], 0, m, bufs[1], 0, m, 0.0f,
                                  bufs[2], 0, m, 0, NULL, NULL);
        if (st == CLATTN_SUCCESS)
            st = clattn_context_finish(ctx);
        if (rep > 0)
            times[rep - 1] = now_ms() - t0;
    }
    if (st == CLATTN_SUCCESS) {
        memset(r, 0, sizeof *r);
        r->op = "sgemm";
        r->variant = V_SGEMM;
        r->batch = r->heads = 1;
        r->nq = r->nk = r->d = m;
        r->ms = median(times, cfg->reps);
        r->gflops = 2.0 * (double)m * (double)m * (double)m / (r->ms * 1e6);
        r->build_ms = NAN;
        snprintf(r->kernel, sizeof r->kernel, "CLBlast SGEMM %zux%zux%zu", m, m, m);
    } else {
        note(prog, "sgemm failed: %s", lib_error(ctx, st));
    }
    free(times);
    release_buffers(bufs, 3);
    return st == CLATTN_SUCCESS ? 0 : -1;
}

static int bench_peak(clattn_context *ctx, const progress *prog, bench_result *r)
{
    double g = 0;
    clattn_status st = clattn_measure_peak_gflops(ctx, &g);
    if (st != CLATTN_SUCCESS) {
        note(prog, "peak failed: %s", lib_error(ctx, st));
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->op = "peak";
    r->variant = V_PEAK;
    r->ms = NAN;
    r->build_ms = NAN;
    r->gflops = g;
    snprintf(r->kernel, sizeof r->kernel, "float16 FMA chains");
    return 0;
}

static const bench_result *find_result(const bench_result *res, size_t n, variant_id v, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].variant == v && (VARIANTS[v].attention ? res[i].nq == len : 1))
            return &res[i];
    return NULL;
}

static void print_csv(const bench_result *res, size_t n)
{
    printf("%s\n", BENCH_CSV_HEADER);
    for (size_t i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        printf("%s,%s,%zu,%zu,%zu,%zu,%zu,%d,%.4f,%.3f\n", r->op, VARIANTS[r->variant].name,
               r->batch, r->heads, r->nq, r->nk, r->d, r->causal, isnan(r->ms) ? 0.0 : r->ms,
               r->gflops);
    }
}

static void print_table(const bench_result *res, size_t n)
{
    const bench_result *peak = find_result(res, n, V_PEAK, 0);
    printf("%-8s %-10s %5s %5s %7s %7s %4s %6s %10s %9s %9s %6s %8s  %s\n", "op", "variant",
           "batch", "heads", "nq", "nk", "d", "causal", "ms", "GFLOP/s", "build ms", "%peak",
           "vs naive", "kernel");
    for (size_t i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        char ms[32] = "-", build[32] = "-", frac[32] = "-", speed[32] = "-";
        if (!isnan(r->ms))
            snprintf(ms, sizeof ms, "%.3f", r->ms);
        if (!isnan(r->build_ms))
            snprintf(build, sizeof build, "%.1f", r->build_ms);
        if (peak && r->variant != V_PEAK && peak->gflops > 0)
            snprintf(frac, sizeof frac, "%.1f%%", 100.0 * r->gflops / peak->gflops);
        const bench_result *naive = find_result(res, n, V_NAIVE, r->nq);
        if (VARIANTS[r->variant].attention && r->variant != V_NAIVE && naive && r->ms > 0)
            snprintf(speed, sizeof speed, "%.2fx", naive->ms / r->ms);
        printf("%-8s %-10s %5zu %5zu %7zu %7zu %4zu %6d %10s %9.2f %9s %6s %8s  %s\n", r->op,
               VARIANTS[r->variant].name, r->batch, r->heads, r->nq, r->nk, r->d, r->causal, ms,
               r->gflops, build, frac, speed, r->kernel);
    }
}

/* Runs the sweep; *res (malloc'd, caller frees) receives *count results. Returns an exit code. */
static int bench_run(const bench_config *cfg, bench_result **res, size_t *count)
{
    *res = NULL;
    *count = 0;
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(cfg->device, &ctx);
    if (st != CLATTN_SUCCESS)
        return fail(st == CLATTN_NO_DEVICE && cfg->device ? EXIT_USAGE : EXIT_RUNTIME,
                    "cannot open a device: %s", lib_error(NULL, st));
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    fprintf(stderr, "clattn: benchmarking on %u:%u %s (%s)\n", info.platform_index,
            info.device_index, info.name, info.platform_name);

    size_t nattn = 0;
    int want_sgemm = 0, want_peak = 0;
    for (size_t i = 0; i < cfg->n_variants; i++) {
        nattn += VARIANTS[cfg->order[i]].attention;
        want_sgemm |= cfg->order[i] == V_SGEMM;
        want_peak |= cfg->order[i] == V_PEAK;
    }
    bench_result *r = calloc(cfg->n_count * nattn + 2, sizeof *r);
    if (!r) {
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    progress prog = {isatty(fileno(stderr)), 0,
                     cfg->n_count * nattn + (size_t)want_sgemm + (size_t)want_peak};
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_count; i++)
        n += bench_length(ctx, &info, cfg, cfg->ns[i], &prog, r + n);
    if (want_sgemm) {
        progress_step(&prog, "sgemm M=N=K=%d", SGEMM_SIZE);
        n += bench_sgemm(ctx, cfg, &prog, &r[n]) == 0;
    }
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        n += bench_peak(ctx, &prog, &r[n]) == 0;
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    *res = r;
    *count = n;
    if (n == 0)
        return fail(EXIT_RUNTIME, "bench: no measurement succeeded");
    return 0;
}

static void bench_defaults(bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const size_t ns[] = {1024, 2048, 4096};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg->ns[cfg->n_count++] = ns[i];
    cfg->d = 64;
    cfg->heads = 8;
    cfg->batch = 1;
    cfg->reps = 5;
    const variant_id def[] = {V_TILED, V_NAIVE, V_SGEMM, V_PEAK};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
        cfg->order[cfg->n_variants++] = def[i];
}

static int bench_parse(int argc, char **argv, bench_config *cfg, int *help)
{
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL, *vars = NULL;
    bench_defaults(cfg);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--device", NULL, &cfg->device, NULL},
        {"--causal", NULL, NULL, &cfg->causal},
        {"--csv", NULL, NULL, &cfg->csv},
    };
    int rc =
        parse_options(argc, argv, 2, "bench softmax", specs, sizeof specs / sizeof specs[0], help);
    if (rc || *help)
        return rc;
    if ((n && (rc = parse_ns(n, cfg))) ||
        (d && (rc = size_option("bench", "--d", d, 1, MAX_HEAD_DIM, &cfg->d))) ||
        (heads && (rc = size_option("bench", "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option("bench", "--batch", batch, 1, 65536, &cfg->batch))) ||
        (reps && (rc = size_option("bench", "--reps", reps, 1, 1000, &cfg->reps))) ||
        (vars && (rc = parse_variants(vars, cfg))))
        return rc;
    if (cfg->n_variants == 0)
        return fail(EXIT_USAGE, "bench: --variants is empty");
    return 0;
}

static int bench_report(const bench_config *cfg)
{
    bench_result *res = NULL;
    size_t n = 0;
    int rc = bench_run(cfg, &res, &n);
    if (n > 0) {
        if (cfg->csv)
            print_csv(res, n);
        else
            print_table(res, n);
    }
    free(res);
    return rc;
}

static int bench_softmax_cmd(int argc, char **argv)
{
    bench_config cfg;
    int help = 0;
    int rc = bench_parse(argc, argv, &cfg, &help);
    if (rc)
        return rc;
    if (help) {
        print_usage(stdout);
        return 0;
    }
    return bench_report(&cfg);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn tune                                                                                    */
/* ---------------------------------------------------------------------------------------------- */

typedef struct tune_config {
    size_t ds[MAX_SWEEP], d_count, ns[MAX_SWEEP], n_count;
    size_t heads, batch;
    int causal[2], causal_count;
    double budget;
    int show, reset;
    const char *device;
} tune_config;

static int tune_parse(int argc, char **argv, tune_config *cfg, int *help)
{
    const char *op = NULL, *d = NULL, *n = NULL, *causal = NULL, *budget = NULL, *heads = NULL,
               *batch = NULL;
    memset(cfg, 0, sizeof *cfg);
    cfg->ds[0] = 64;
    cfg->ds[1] = 128;
    cfg->d_count = 2;
    cfg->ns[0] = 4096;
    cfg->n_count = 1;
    cfg->heads = 8;
    cfg->batch = 1;
    cfg->causal[0] = 0;
    cfg->causal[1] = 1;
    cfg->causal_count = 2;
    cfg->budget = 60;
    const opt_spec specs[] = {
        {"--op", NULL, &op, NULL},         {"--d", NULL, &d, NULL},
        {"--n", NULL, &n, NULL},           {"--causal", NULL, &causal, NULL},
        {"--budget", NULL, &budget, NULL}, {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},   {"--device", NULL, &cfg->device, NULL},
        {"--show", NULL, NULL, &cfg->show}, {"--reset", NULL, NULL, &cfg->reset},
    };
    int rc = parse_options(argc, argv, 1, "tune", specs, sizeof specs / sizeof specs[0], help);
    if (rc || *help)
        return rc;
    if (op && strcmp(op, "softmax") != 0)
        return fail(EXIT_USAGE, "tune: unknown operator '%s' (tunable: softmax)", op);
    if ((d && (rc = parse_list("tune", "--d", d, 1, MAX_HEAD_DIM, cfg->ds, &cfg->d_count))) ||
        (n && (rc = parse_list("tune", "--n", n, 1, (size_t)1 << 30, cfg->ns, &cfg->n_count))) ||
        (heads && (rc = size_option("tune", "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option("tune", "--batch", batch, 1, 65536, &cfg->batch))))
        return rc;
    if (causal) {
        int yes = strcmp(causal, "yes") == 0, no = strcmp(causal, "no") == 0;
        if (!yes && !no && strcmp(causal, "both") != 0)
            return fail(EXIT_USAGE, "tune: --causal must be both, yes or no");
        if (yes || no) {
            cfg->causal[0] = yes;
            cfg->causal_count = 1;
        }
    }
    if (budget) {
        char *end = NULL;
        cfg->budget = strtod(budget, &end);
        if (!end || *end || !(cfg->budget > 0) || cfg->budget > 86400)
            return fail(EXIT_USAGE, "tune: --budget '%s' is not a number of seconds in (0, 86400]",
                        budget);
    }
    if (cfg->show && cfg->reset)
        return fail(EXIT_USAGE, "tune: --show and --reset exclude each other");
    return 0;
}

static int tune_show(clattn_context *ctx)
{
    char path[1200], warn[512];
    size_t count = 0;
    clattn_tuning_entry e[256];
    if (clattn_tuning_db_path(ctx, path, sizeof path) != CLATTN_SUCCESS)
        return fail(EXIT_RUNTIME, "tune: %s", clattn_context_last_error(ctx));
    clattn_status st = clattn_tuning_db_list(ctx, e, 256, &count);
    if (st != CLATTN_SUCCESS)
        return fail(EXIT_RUNTIME, "tune: %s", lib_error(ctx, st));
    clattn_tuning_db_warning(ctx, warn, sizeof warn);
    if (warn[0])
        fprintf(stderr, "clattn: warning: %s\n", warn);
    printf("tuning database %s: %zu entr%s\n", path, count, count == 1 ? "y" : "ies");
    if (count == 0)
        return 0;
    printf("%-8s %4s %7s %7s %6s  %-30s %10s %10s %8s\n", "op", "d", "nq<=", "nk<=", "causal",
           "tuned plan", "default ms", "tuned ms", "speedup");
    for (size_t i = 0; i < count && i < 256; i++) {
        char plan[64];
        if (e[i].algorithm == CLATTN_SOFTMAX_TILED_CPU)
            snprintf(plan, sizeof plan, "cpu rows=%u local=%zu", e[i].rows_per_item,
                     e[i].local_size);
        else
            snprintf(plan, sizeof plan, "gpu wg=%zu tile_kv=%u", e[i].local_size, e[i].tile_kv);
        printf("%-8s %4u %7zu %7zu %6s  %-30s %10.3f %10.3f %7.2fx\n", e[i].op, e[i].head_dim,
               e[i].nq_bucket, e[i].nk_bucket, e[i].causal ? "yes" : "no", plan, e[i].default_ms,
               e[i].tuned_ms, e[i].tuned_ms > 0 ? e[i].default_ms / e[i].tuned_ms : 1.0);
    }
    return 0;
}

static void tune_bar(const progress *p, const char *what, double budget)
{
    if (!p->tty) {
        fprintf(stderr, "[%zu/%zu] tuning %s (budget %.0f s)\n", p->step, p->total, what, budget);
        return;
    }
    char bar[31];
    size_t fill = p->total ? (p->step - 1) * 30 / p->total : 0;
    for (size_t i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu tuning %s (budget %.0f s) ...", bar, p->step, p->total,
            what, budget);
    fflush(stderr);
}

typedef struct tune_row {
    char shape[64];
    clattn_tune_report rep;
    int ok;
} tune_row;

static void tune_table(const tune_row *rows, size_t n)
{
    printf("%-28s %-28s %-28s %10s %10s %8s %7s %7s\n", "shape", "default plan", "tuned plan",
           "default ms", "tuned ms", "speedup", "tune s", "tried");
    for (size_t i = 0; i < n; i++) {
        const clattn_tune_report *r = &rows[i].rep;
        if (!rows[i].ok) {
            printf("%-28s failed\n", rows[i].shape);
            continue;
        }
        char tried[24];
        snprintf(tried, sizeof tried, "%u/%u", r->tried, r->candidates);
        printf("%-28s %-28s %-28s %10.3f %10.3f %7.2fx %7.1f %7s\n", rows[i].shape,
               r->default_plan, r->kept_default ? "(default kept)" : r->tuned_plan, r->default_ms,
               r->tuned_ms, r->tuned_ms > 0 ? r->default_ms / r->tuned_ms : 1.0, r->seconds,
               tried);
    }
}

static int tune_run(clattn_context *ctx, const tune_config *cfg)
{
    size_t total = cfg->d_count * cfg->n_count * (size_t)cfg->causal_count, n = 0;
    tune_row *rows = calloc(total, sizeof *rows);
    if (!rows)
        return fail(EXIT_RUNTIME, "out of memory");
    progress prog = {isatty(fileno(stderr)), 0, total};
    int failures = 0;
    for (size_t i = 0; i < cfg->d_count; i++)
        for (size_t j = 0; j < cfg->n_count; j++)
            for (int c = 0; c < cfg->causal_count; c++, n++) {
                tune_row *row = &rows[n];
                size_t qs[4] = {cfg->batch, cfg->heads, cfg->ns[j], cfg->ds[i]};
                clattn_softmax_desc desc;
                clattn_softmax_desc_init(&desc);
                desc.causal = cfg->causal[c];
                snprintf(row->shape, sizeof row->shape, "D=%zu N=%zu %s", cfg->ds[i], cfg->ns[j],
                         desc.causal ? "causal" : "full");
                prog.step++;
                tune_bar(&prog, row->shape, cfg->budget);
                clattn_status st =
                    clattn_tune_softmax(ctx, &desc, qs, qs, cfg->budget, &row->rep);
                row->ok = st == CLATTN_SUCCESS;
                if (!row->ok) {
                    note(&prog, "%s: %s", row->shape, lib_error(ctx, st));
                    failures++;
                } else if (row->rep.notes[0] && !prog.tty) {
                    fprintf(stderr, "%s", row->rep.notes);
                }
            }
    progress_clear(&prog);
    tune_table(rows, n);
    free(rows);
    return failures == (int)n ? fail(EXIT_RUNTIME, "tune: every shape failed") : 0;
}

static int cmd_tune(int argc, char **argv)
{
    tune_config cfg;
    int help = 0;
    int rc = tune_parse(argc, argv, &cfg, &help);
    if (rc)
        return rc;
    if (help) {
        print_usage(stdout);
        return 0;
    }
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(cfg.device, &ctx);
    if (st != CLATTN_SUCCESS)
        return fail(st == CLATTN_NO_DEVICE && cfg.device ? EXIT_USAGE : EXIT_RUNTIME,
                    "cannot open a device: %s", lib_error(NULL, st));
    if (cfg.show) {
        rc = tune_show(ctx);
    } else if (cfg.reset) {
        char path[1200] = "";
        clattn_tuning_db_path(ctx, path, sizeof path);
        st = clattn_tuning_db_reset(ctx);
        rc = st == CLATTN_SUCCESS ? (printf("removed tuning database %s\n", path), 0)
                                  : fail(EXIT_RUNTIME, "tune: %s", lib_error(ctx, st));
    } else {
        clattn_device_info info;
        clattn_context_get_device_info(ctx, &info);
        fprintf(stderr, "clattn: tuning on %u:%u %s (%s)\n", info.platform_index,
                info.device_index, info.name, info.platform_name);
        rc = tune_run(ctx, &cfg);
    }
    clattn_context_destroy(ctx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn demo                                                                                    */
/* ---------------------------------------------------------------------------------------------- */

static int cmd_demo(int argc, char **argv)
{
    int help = 0;
    int rc = parse_options(argc, argv, 1, "demo", NULL, 0, &help);
    if (rc)
        return rc;
    if (help) {
        print_usage(stdout);
        return 0;
    }
    printf("== clattn devices ==\n\n");
    fflush(stdout);
    if ((rc = cmd_devices(1, argv)) != 0)
        return rc;

    bench_config cfg;
    bench_defaults(&cfg);
    const size_t ns[] = {256, 512, 1024};
    cfg.n_count = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg.ns[cfg.n_count++] = ns[i];
    cfg.heads = 4;
    cfg.reps = 3;
    printf("\n== clattn bench softmax --n 256,512,1024 --heads 4 --d 64 --reps 3 ==\n\n");
    fflush(stdout);
    bench_result *res = NULL;
    size_t n = 0;
    rc = bench_run(&cfg, &res, &n);
    if (n > 0) {
        print_table(res, n);
        printf("\ntiled speed-up over naive:");
        int any = 0;
        for (size_t i = 0; i < cfg.n_count; i++) {
            const bench_result *t = find_result(res, n, V_TILED, cfg.ns[i]);
            const bench_result *nv = find_result(res, n, V_NAIVE, cfg.ns[i]);
            if (t && nv && t->ms > 0) {
                printf("%s N=%zu %.2fx", any ? "," : "", cfg.ns[i], nv->ms / t->ms);
                any = 1;
            }
        }
        printf("%s\n", any ? "" : " not measured");
    }
    free(res);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */

/* `clattn run|bench OP ...`: hands argv (from "run"/"bench") to the operator's command. */
static int dispatch(int argc, char **argv, int bench)
{
    const char *verb = bench ? "bench" : "run";
    char names[256] = "";
    for (size_t i = 0; i < N_OPERATORS; i++)
        if ((bench ? OPERATORS[i].bench : OPERATORS[i].run) != NULL)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     OPERATORS[i].name);
    if (argc < 2 || is_help(argv[1])) {
        if (argc < 2)
            return fail(EXIT_USAGE, "%s: missing operator (supported: %s; see 'clattn help')",
                        verb, names);
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_OPERATORS; i++) {
        int (*fn)(int, char **) = bench ? OPERATORS[i].bench : OPERATORS[i].run;
        if (fn && strcmp(argv[1], OPERATORS[i].name) == 0)
            return fn(argc, argv);
    }
    return fail(EXIT_USAGE, "%s: unknown operator '%s' (supported: %s)", verb, argv[1], names);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("clattn %d.%d.%d (library %s)\n", CLATTN_VERSION_MAJOR, CLATTN_VERSION_MINOR,
               CLATTN_VERSION_PATCH, clattn_version_string());
        return 0;
    }
    if (strcmp(cmd, "devices") == 0)
        return cmd_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return dispatch(argc - 1, argv + 1, 0);
    if (strcmp(cmd, "bench") == 0)
        return dispatch(argc - 1, argv + 1, 1);
    if (strcmp(cmd, "demo") == 0)
        return cmd_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "tune") == 0)
        return cmd_tune(argc - 1, argv + 1);
    return fail(EXIT_USAGE, "unknown command '%s' (see 'clattn help')", cmd);
}
