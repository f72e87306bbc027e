/* The program cache: kernels_cl sources (embedded, or read from CLATTN_KERNEL_DIR) built with -D
 * options, kept in memory per context and as binaries on disk per device.
 *
 * Disk entries are keyed by a hash of everything that changes the binary: the cache format, the
 * platform name and version, the device name, the driver version, the full source text and the
 * options. Each file carries a header with that key, the binary's length and a checksum, so a
 * truncated or corrupted file is detected, rebuilt from source and rewritten. Writes go to a
 * temporary file renamed into place, so concurrent processes never see half a file. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "CLATTNPB"
#define CACHE_FORMAT 1u

struct clattn__prog_entry {
    clattn__prog_entry *next;
    uint64_t key;
    char *file;
    char *options;
    cl_program program;
};

uint64_t clattn__hash64(uint64_t h, const void *data, size_t len)
{
    /* FNV-1a with a final avalanche; enough to key caches (collisions are also checked by
     * comparing the stored key and, in memory, the strings). */
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t finish_hash(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void clattn__cache_dir(char *out, size_t size)
{
    const char *d = getenv("CLATTN_CACHE_DIR");
    if (d && *d) {
        snprintf(out, size, "%s", d);
        return;
    }
    d = getenv("XDG_CACHE_HOME");
    if (d && *d) {
        snprintf(out, size, "%s/clattn", d);
        return;
    }
    d = getenv("HOME");
    if (d && *d) {
        snprintf(out, size, "%s/.cache/clattn", d);
        return;
    }
    out[0] = '\0';
}

bool clattn__mkdirs(const char *path)
{
    char buf[1024];
    if (!path || !*path || strlen(path) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return false;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return false;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

static const clattn__kernel_source *embedded(const char *file)
{
    for (size_t i = 0; i < clattn__kernel_source_count; i++)
        if (strcmp(clattn__kernel_sources[i].name, file) == 0)
            return &clattn__kernel_sources[i];
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* Loads one source file: from CLATTN_KERNEL_DIR when set, else the embedded copy. */
static clattn_status load_source(clattn_context *ctx, const char *file, char **text, size_t *len)
{
    const char *dir = getenv("CLATTN_KERNEL_DIR");
    if (dir && *dir) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        *text = read_file(path, len);
        if (!*text)
            return clattn__fail(ctx, CLATTN_IO_ERROR, "cannot read kernel source %s "
                                                      "(CLATTN_KERNEL_DIR is set)", path);
        return CLATTN_SUCCESS;
    }
    const clattn__kernel_source *src = embedded(file);
    if (!src)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "no embedded kernel source '%s'", file);
    *text = malloc(src->length + 1);
    if (!*text)
        return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "copying kernel source %s", file);
    memcpy(*text, src->text, src->length);
    (*text)[src->length] = '\0';
    *len = src->length;
    return CLATTN_SUCCESS;
}

static uint64_t disk_key(const clattn_context *ctx, const char *source, size_t len,
                         const char *options)
{
    uint64_t h = CLATTN__HASH_SEED;
    unsigned fmt = CACHE_FORMAT;
    h = clattn__hash64(h, &fmt, sizeof fmt);
    const char *parts[] = {ctx->info.platform_name, ctx->info.platform_version, ctx->info.name,
                           ctx->info.driver_version, ctx->info.device_version, options};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        h = clattn__hash64(h, parts[i], strlen(parts[i]) + 1);
    h = clattn__hash64(h, source, len);
    return finish_hash(h);
}

static void disk_path(const clattn_context *ctx, uint64_t key, char *out, size_t size)
{
    snprintf(out, size, "%s/prog-%016llx.bin", ctx->cache_dir, (unsigned long long)key);
}

/* Returns a malloc'd binary when the file exists and is intact, else NULL. */
static unsigned char *disk_read(const char *path, uint64_t key, size_t *len)
{
    size_t n = 0;
    unsigned char *buf = (unsigned char *)read_file(path, &n);
    const size_t head = 8 + 4 + 8 + 8 + 8;
    if (!buf)
        return NULL;
    uint32_t fmt;
    uint64_t k, size, sum;
    if (n < head || memcmp(buf, CACHE_MAGIC, 8) != 0)
        goto bad;
    memcpy(&fmt, buf + 8, 4);
    memcpy(&k, buf + 12, 8);
    memcpy(&size, buf + 20, 8);
    memcpy(&sum, buf + 28, 8);
    if (fmt != CACHE_FORMAT || k != key || size != n - head || size == 0)
        goto bad;
    if (clattn__hash64(CLATTN__HASH_SEED, buf + head, size) != sum)
        goto bad;
    memmove(buf, buf + head, size);
    *len = size;
    return buf;
bad:
    free(buf);
    return NULL;
}

static void disk_write(const char *path, uint64_t key, const unsigned char *bin, size_t len)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%p", path, (long)getpid(), (const void *)bin);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return; /* unusable folder: the cache quietly stays in memory only */
    uint32_t fmt = CACHE_FORMAT;
    uint64_t size = len, sum = clattn__hash64(CLATTN__HASH_SEED, bin, len);
    bool ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&fmt, 4, 1, f) == 1 &&
              fwrite(&key, 8, 1, f) == 1 && fwrite(&size, 8, 1, f) == 1 &&
              fwrite(&sum, 8, 1, f) == 1 && fwrite(bin, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0)
        remove(tmp);
}

static bool disk_cache_enabled(const clattn_context *ctx)
{
    const char *off = getenv("CLATTN_PROGRAM_CACHE");
    if (off && strcmp(off, "off") == 0)
        return false;
    return ctx->cache_dir[0] != '\0';
}

static void append_build_log(clattn_context *ctx, cl_program prog, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    if (clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) !=
            CL_SUCCESS ||
        n == 0)
        return;
    char *log = malloc(n + 1);
    if (!log)
        return;
    if (clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) ==
        CL_SUCCESS) {
        log[n] = '\0';
        snprintf(out, size, "%s", log);
    }
    free(log);
}

static cl_program try_binary(clattn_context *ctx, const unsigned char *bin, size_t len,
                             const char *options)
{
    cl_int err, bin_status;
    cl_program prog = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &len, &bin,
                                                &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

static unsigned char *get_binary(clattn_context *ctx, cl_program prog, size_t *len)
{
    size_t n = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS || !n)
        return NULL;
    unsigned char *bin = malloc(n);
    if (!bin)
        return NULL;
    unsigned char *ptrs[1] = {bin};
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, NULL) != CL_SUCCESS) {
        free(bin);
        return NULL;
    }
    (void)ctx;
    *len = n;
    return bin;
}

static void count(clattn_context *ctx, unsigned *field)
{
    pthread_mutex_lock(&ctx->lock);
    (*field)++;
    pthread_mutex_unlock(&ctx->lock);
}

/* Builds from source (or loads from disk) without touching the in-memory list. */
static clattn_status build(clattn_context *ctx, const char *file, const char *options,
                           const char *source, size_t srclen, cl_program *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    unsigned char *bin = NULL;
    char *log = NULL;
    char path[1200] = "";
    uint64_t key = disk_key(ctx, source, srclen, options);
    bool use_disk = disk_cache_enabled(ctx);

    if (use_disk) {
        size_t len = 0;
        disk_path(ctx, key, path, sizeof path);
        bin = disk_read(path, key, &len);
        if (bin && (prog = try_binary(ctx, bin, len, options)) != NULL) {
            count(ctx, &ctx->disk_loads);
            goto done;
        }
        free(bin);
        bin = NULL;
    }

    cl_int err;
    const char *srcs[1] = {source};
    prog = clCreateProgramWithSource(ctx->cl_ctx, 1, srcs, &srclen, &err);
    CLATTN_CHECK(err == CL_SUCCESS, (clattn_status)err, "clCreateProgramWithSource(%s): %s", file,
                 clattn_status_string((clattn_status)err));
    err = clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        log = malloc(CLATTN__MSG_LEN);
        if (log)
            append_build_log(ctx, prog, log, CLATTN__MSG_LEN - 512);
        status = clattn__fail(ctx, CLATTN_BUILD_FAILED, "building %s with '%s' on '%s' failed (%s):\n%s",
                              file, options, ctx->info.name,
                              clattn_status_string((clattn_status)err), log ? log : "");
        goto cleanup;
    }
    count(ctx, &ctx->source_builds);
    if (use_disk && clattn__mkdirs(ctx->cache_dir)) {
        size_t len = 0;
        bin = get_binary(ctx, prog, &len);
        if (bin)
            disk_write(path, key, bin, len);
    }
done:
    *out = prog;
    prog = NULL;
cleanup:
    if (prog)
        clReleaseProgram(prog);
    free(bin);
    free(log);
    return status;
}

clattn_status clattn__program_get(clattn_context *ctx, const char *file, const char *options,
                                  cl_program *out)
{
    clattn_status status = CLATTN_SUCCESS;
    char *common = NULL, *body = NULL, *source = NULL, *headers = NULL;
    size_t clen = 0, blen = 0;
    clattn__prog_entry *e = NULL;
    bool locked = false;

    CLATTN_FORWARD(load_source(ctx, "common.clh", &common, &clen));
    CLATTN_FORWARD(load_source(ctx, file, &body, &blen));
    /* A kernel file may name further headers on leading lines "//@include name.clh": they are
     * joined after common.clh, in order (the embedded sources have no directory to #include). */
    size_t hlen = 0;
    const char *at = body;
    while (strncmp(at, "//@include ", 11) == 0) {
        const char *name = at + 11, *eol = strchr(name, '\n');
        size_t nlen = eol ? (size_t)(eol - name) : strlen(name);
        char hname[64];
        CLATTN_CHECK(nlen > 0 && nlen < sizeof hname, CLATTN_INVALID_ARGUMENT,
                     "kernel source %s: bad //@include line", file);
        memcpy(hname, name, nlen);
        hname[nlen] = '\0';
        char *h = NULL, *grown;
        size_t len = 0;
        CLATTN_FORWARD(load_source(ctx, hname, &h, &len));
        grown = realloc(headers, hlen + len + 2);
        if (!grown)
            free(h);
        CLATTN_CHECK(grown != NULL, CLATTN_OUT_OF_HOST_MEMORY, "joining kernel headers");
        headers = grown;
        memcpy(headers + hlen, h, len);
        headers[hlen + len] = '\n';
        hlen += len + 1;
        free(h);
        at = eol ? eol + 1 : name + nlen;
    }
    source = malloc(clen + hlen + blen + 2);
    CLATTN_CHECK(source != NULL, CLATTN_OUT_OF_HOST_MEMORY, "joining kernel sources");
    memcpy(source, common, clen);
    source[clen] = '\n';
    if (hlen)
        memcpy(source + clen + 1, headers, hlen);
    memcpy(source + clen + 1 + hlen, body, blen);
    source[clen + 1 + hlen + blen] = '\0';
    size_t srclen = clen + 1 + hlen + blen;
    uint64_t key = clattn__hash64(clattn__hash64(CLATTN__HASH_SEED, source, srclen), options,
                                  strlen(options) + 1);

    pthread_mutex_lock(&ctx->prog_lock);
    locked = true;
    for (clattn__prog_entry *p = ctx->programs; p; p = p->next)
        if (p->key == key && strcmp(p->file, file) == 0 && strcmp(p->options, options) == 0) {
            count(ctx, &ctx->memory_hits);
            *out = p->program;
            goto cleanup;
        }
    e = calloc(1, sizeof *e);
    CLATTN_CHECK(e != NULL, CLATTN_OUT_OF_HOST_MEMORY, "program cache entry");
    e->file = strdup(file);
    e->options = strdup(options);
    CLATTN_CHECK(e->file && e->options, CLATTN_OUT_OF_HOST_MEMORY, "program cache entry");
    CLATTN_FORWARD(build(ctx, file, options, source, srclen, &e->program));
    e->key = key;
    e->next = ctx->programs;
    ctx->programs = e;
    *out = e->program;
    e = NULL;
cleanup:
    if (locked)
        pthread_mutex_unlock(&ctx->prog_lock);
    if (e) {
        free(e->file);
        free(e->options);
        free(e);
    }
    free(common);
    free(body);
    free(source);
    free(headers);
    return status;
}

void clattn__program_cache_clear(clattn_context *ctx)
{
    clattn__prog_entry *p = ctx->programs;
    while (p) {
        clattn__prog_entry *next = p->next;
        clReleaseProgram(p->program);
        free(p->file);
        free(p->options);
        free(p);
        p = next;
    }
    ctx->programs = NULL;
}

clattn_status clattn__kernel_create(clattn_context *ctx, cl_program program, const char *name,
                                    cl_kernel *kernel)
{
    cl_int err;
    *kernel = clCreateKernel(program, name, &err);
    pthread_mutex_lock(&ctx->lock);
    ctx->kernels_created++;
    pthread_mutex_unlock(&ctx->lock);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "clCreateKernel(%s): %s", name,
                            clattn_status_string((clattn_status)err));
    return CLATTN_SUCCESS;
}

void clattn__arg(clattn__args *a, size_t size, const void *value)
{
    if (a->err == CL_SUCCESS)
        a->err = clSetKernelArg(a->k, a->i, size, value);
    a->i++;
}

void clattn__arg_view(clattn__args *a, const clattn_tensor *t)
{
    cl_ulong off = t->offset;
    cl_ulong4 st;
    for (int i = 0; i < 4; i++)
        st.s[i] = t->strides[i];
    CLATTN_ARG(a, t->buffer);
    CLATTN_ARG(a, off);
    CLATTN_ARG(a, st);
}
