/* The per-device tuning database: a small text file, one entry per line, so that a person can read
 * it and a damaged line costs only that line.
 *
 *   clattn-tuning-db 2 lib=0.1.0 device=0123456789abcdef
 *   softmax variant=cpu d=64 dv=64 nq=4096 nk=4096 causal=0 default_ms=... tuned_ms=... : rows=4 local=1 tile_kv=16
 *
 * The header names the file format, the library version that wrote it and the device hash (the
 * file name carries the same hash; the header catches a copied or colliding file). An entry line
 * is the operator, the key of its shape class and the two timings, then after " : " the launch
 * parameters as name=value pairs, whatever the operator's launch has. Format 1 files (softmax
 * only: "softmax d=64 nq=... nk=... causal=0 family=cpu rows=4 local=1 tile_kv=16 default_ms=...
 * tuned_ms=...") are read as format 2 entries and rewritten in format 2 by the next writer.
 * Writers take an exclusive flock on "<file>.lock", re-read the file, merge and rename a temporary
 * file over it: two processes tuning at once both keep their entries, and a reader (which takes no
 * lock) sees either the old or the new file, never a partial one. */
#include "tune.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DB_BYTES (4u << 20) /* a database is a few KiB; anything huge is not ours */

void clattn__tune_db_free(clattn__tune_db *db)
{
    if (!db)
        return;
    free(db->entries);
    db->entries = NULL;
    db->count = db->cap = 0;
}

static bool same_key(const clattn_tuning_entry *a, const clattn_tuning_entry *b)
{
    return strcmp(a->op, b->op) == 0 && strcmp(a->variant, b->variant) == 0 &&
           a->head_dim == b->head_dim && a->head_dim_v == b->head_dim_v &&
           a->nq_bucket == b->nq_bucket && a->nk_bucket == b->nk_bucket && a->causal == b->causal;
}

const clattn_tuning_entry *clattn__tune_db_find(const clattn__tune_db *db,
                                                const clattn_tuning_entry *key)
{
    for (size_t i = 0; db && i < db->count; i++)
        if (same_key(&db->entries[i], key))
            return &db->entries[i];
    return NULL;
}

bool clattn__tune_db_put(clattn__tune_db *db, const clattn_tuning_entry *e)
{
    clattn_tuning_entry *old = (clattn_tuning_entry *)clattn__tune_db_find(db, e);
    if (old) {
        *old = *e;
        return true;
    }
    if (db->count == db->cap) {
        size_t cap = db->cap ? db->cap * 2 : 16;
        clattn_tuning_entry *n = realloc(db->entries, cap * sizeof *n);
        if (!n)
            return false;
        db->entries = n;
        db->cap = cap;
    }
    db->entries[db->count++] = *e;
    return true;
}

size_t clattn__tune_bucket(size_t n)
{
    size_t p = 1;
    while (p < n && p <= SIZE_MAX / 2)
        p *= 2;
    return p;
}

void clattn__tune_key(clattn_tuning_entry *e, clattn_operator op, const char *variant,
                      size_t head_dim, size_t head_dim_v, size_t nq, size_t nk, int causal)
{
    memset(e, 0, sizeof *e);
    snprintf(e->op, sizeof e->op, "%s", clattn_operator_name(op));
    snprintf(e->variant, sizeof e->variant, "%s", variant);
    e->head_dim = (unsigned)head_dim;
    e->head_dim_v = (unsigned)head_dim_v;
    e->nq_bucket = clattn__tune_bucket(nq);
    e->nk_bucket = clattn__tune_bucket(nk);
    e->causal = causal != 0;
}

static bool param_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof ((clattn_tuning_param *)0)->name)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
            return false;
    return true;
}

bool clattn__tune_param_set(clattn_tuning_entry *e, const char *name, long long value)
{
    if (!param_name_ok(name))
        return false;
    for (unsigned i = 0; i < e->num_params; i++)
        if (strcmp(e->params[i].name, name) == 0) {
            e->params[i].value = value;
            return true;
        }
    if (e->num_params >= CLATTN_TUNING_MAX_PARAMS)
        return false;
    clattn_tuning_param *p = &e->params[e->num_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->value = value;
    return true;
}

long long clattn__tune_param(const clattn_tuning_entry *e, const char *name, long long fallback)
{
    for (unsigned i = 0; i < e->num_params && i < CLATTN_TUNING_MAX_PARAMS; i++)
        if (strcmp(e->params[i].name, name) == 0)
            return e->params[i].value;
    return fallback;
}

void clattn__tune_params_text(const clattn_tuning_entry *e, char *out, size_t size)
{
    size_t at = 0;
    if (size)
        out[0] = '\0';
    for (unsigned i = 0; i < e->num_params && i < CLATTN_TUNING_MAX_PARAMS && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%s=%lld", i ? " " : "", e->params[i].name,
                               e->params[i].value);
}

uint64_t clattn__tune_device_hash(const clattn_device_info *info)
{
    const char *parts[] = {info->platform_name, info->platform_version, info->name,
                           info->driver_version};
    uint64_t h = CLATTN__HASH_SEED;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        h = clattn__hash64(h, parts[i], strlen(parts[i]) + 1);
    return h;
}

void clattn__tune_db_path(const char *dir, uint64_t device, char *out, size_t size)
{
    snprintf(out, size, "%s/tune-%016llx.txt", dir, (unsigned long long)device);
}

/* Keeps the first warning; counts the rest. */
static void warn_add(char *warn, size_t wlen, unsigned *count, const char *msg)
{
    if (warn && wlen && *count == 0)
        snprintf(warn, wlen, "%s", msg);
    (*count)++;
}

static bool known_operator(const char *name)
{
    for (int op = CLATTN_OP_SOFTMAX; op <= CLATTN_OP_DEQ; op++)
        if (strcmp(name, clattn_operator_name((clattn_operator)op)) == 0)
            return true;
    return false;
}

static bool key_ok(const clattn_tuning_entry *e)
{
    return known_operator(e->op) && e->variant[0] != '\0' && (e->causal == 0 || e->causal == 1) &&
           e->head_dim >= 1 && e->head_dim_v >= 1 && e->nq_bucket >= 1 && e->nk_bucket >= 1 &&
           e->default_ms >= 0 && e->tuned_ms >= 0;
}

/* A format 1 line (softmax only) as a format 2 entry. */
static bool parse_entry_v1(const char *line, clattn_tuning_entry *e)
{
    char fam[8];
    unsigned rows = 0, tile = 0;
    size_t local = 0;
    int used = -1;
    memset(e, 0, sizeof *e);
    int got = sscanf(line,
                     "%15s d=%u nq=%zu nk=%zu causal=%d family=%7s rows=%u local=%zu tile_kv=%u "
                     "default_ms=%lf tuned_ms=%lf%n",
                     e->op, &e->head_dim, &e->nq_bucket, &e->nk_bucket, &e->causal, fam, &rows,
                     &local, &tile, &e->default_ms, &e->tuned_ms, &used);
    if (got != 11 || used < 0 || line[used] != '\0' || strcmp(e->op, "softmax") != 0 ||
        (strcmp(fam, "cpu") != 0 && strcmp(fam, "gpu") != 0))
        return false;
    snprintf(e->variant, sizeof e->variant, "%s", fam);
    e->head_dim_v = e->head_dim;
    clattn__tune_param_set(e, "rows", rows);
    clattn__tune_param_set(e, "local", (long long)local);
    clattn__tune_param_set(e, "tile_kv", tile);
    return key_ok(e) && e->head_dim <= CLATTN__SOFTMAX_MAX_HEAD_DIM;
}

/* One format 2 entry line (without its newline); false when it does not parse completely. */
static bool parse_entry(const char *line, clattn_tuning_entry *e)
{
    int used = -1;
    memset(e, 0, sizeof *e);
    int got = sscanf(line,
                     "%15s variant=%31s d=%u dv=%u nq=%zu nk=%zu causal=%d default_ms=%lf "
                     "tuned_ms=%lf :%n",
                     e->op, e->variant, &e->head_dim, &e->head_dim_v, &e->nq_bucket,
                     &e->nk_bucket, &e->causal, &e->default_ms, &e->tuned_ms, &used);
    if (got != 9 || used < 0 || !key_ok(e))
        return false;
    for (const char *p = line + used; *p;) {
        if (*p++ != ' ')
            return false;
        char name[32];
        long long value;
        int n = -1;
        if (sscanf(p, "%31[A-Za-z0-9_]=%lld%n", name, &value, &n) != 2 || n < 0 ||
            (p[n] != ' ' && p[n] != '\0') || clattn__tune_param(e, name, LLONG_MIN) != LLONG_MIN ||
            !clattn__tune_param_set(e, name, value))
            return false;
        p += n;
    }
    return e->num_params > 0;
}

/* The header; its format into *fmt, or false with why into msg. */
static bool parse_header(const char *line, uint64_t device, unsigned *fmt, char *msg,
                         size_t mlen)
{
    char lib[32];
    unsigned long long dev = 0;
    int used = -1;
    if (sscanf(line, CLATTN__TUNE_MAGIC " %u lib=%31s device=%llx%n", fmt, lib, &dev, &used) !=
            3 ||
        line[used] != '\0') {
        snprintf(msg, mlen, "tuning database: not a clattn tuning database (bad header): ignored");
        return false;
    }
    if ((*fmt != 1 && *fmt != CLATTN__TUNE_FORMAT) || strcmp(lib, clattn_version_string()) != 0) {
        snprintf(msg, mlen,
                 "tuning database: written by clattn %.31s (format %u), this is %s (format %d): "
                 "ignored",
                 lib, *fmt, clattn_version_string(), CLATTN__TUNE_FORMAT);
        return false;
    }
    if (dev != device) {
        snprintf(msg, mlen, "tuning database: belongs to another device (%016llx): ignored", dev);
        return false;
    }
    return true;
}

unsigned clattn__tune_db_parse(const char *text, size_t len, uint64_t device, clattn__tune_db *db,
                               char *warn, size_t wlen)
{
    unsigned nwarn = 0;
    char line[640], msg[760];
    size_t pos = 0, lineno = 0;
    unsigned fmt = 0;
    if (len == 0) {
        warn_add(warn, wlen, &nwarn, "tuning database: empty file: ignored");
        return nwarn;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        bool fits = n < sizeof line && memchr(text + pos, '\0', n) == NULL;
        if (fits) {
            memcpy(line, text + pos, n);
            line[n] = '\0';
        }
        pos += n + (nl ? 1 : 0);
        if (lineno == 1) {
            if (!fits || !nl || !parse_header(line, device, &fmt, msg, sizeof msg)) {
                if (!fits || !nl)
                    snprintf(msg, sizeof msg, "tuning database: unreadable header: ignored");
                warn_add(warn, wlen, &nwarn, msg);
                return nwarn;
            }
            continue;
        }
        if (fits && (n == 0 || line[0] == '#'))
            continue;
        clattn_tuning_entry e;
        if (!nl) {
            snprintf(msg, sizeof msg, "tuning database: line %zu truncated: ignored", lineno);
            warn_add(warn, wlen, &nwarn, msg);
        } else if (!fits || !(fmt == 1 ? parse_entry_v1(line, &e) : parse_entry(line, &e))) {
            snprintf(msg, sizeof msg, "tuning database: line %zu unreadable: ignored", lineno);
            warn_add(warn, wlen, &nwarn, msg);
        } else if (!clattn__tune_db_put(db, &e)) {
            warn_add(warn, wlen, &nwarn, "tuning database: out of memory");
            return nwarn;
        }
    }
    return nwarn;
}

char *clattn__tune_db_format(const clattn__tune_db *db, uint64_t device)
{
    size_t cap = 128 + db->count * 640, at = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    at += (size_t)snprintf(out, cap, CLATTN__TUNE_MAGIC " %d lib=%s device=%016llx\n",
                           CLATTN__TUNE_FORMAT, clattn_version_string(),
                           (unsigned long long)device);
    for (size_t i = 0; i < db->count && at < cap; i++) {
        const clattn_tuning_entry *e = &db->entries[i];
        char params[400];
        clattn__tune_params_text(e, params, sizeof params);
        at += (size_t)snprintf(out + at, cap - at,
                               "%s variant=%s d=%u dv=%u nq=%zu nk=%zu causal=%d default_ms=%.4f "
                               "tuned_ms=%.4f : %s\n",
                               e->op, e->variant, e->head_dim, e->head_dim_v, e->nq_bucket,
                               e->nk_bucket, e->causal, e->default_ms, e->tuned_ms, params);
    }
    if (at >= cap) { /* cannot happen with 640 bytes a line; refuse rather than truncate */
        free(out);
        return NULL;
    }
    return out;
}

unsigned clattn__tune_db_load(const char *path, uint64_t device, clattn__tune_db *db, char *warn,
                              size_t wlen)
{
    unsigned nwarn = 0;
    char msg[1200];
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(msg, sizeof msg, "tuning database %s: cannot open (%s): ignored", path,
                     strerror(errno));
            warn_add(warn, wlen, &nwarn, msg);
        }
        return nwarn;
    }
    char *text = malloc(MAX_DB_BYTES + 1);
    size_t len = text ? fread(text, 1, MAX_DB_BYTES + 1, f) : 0;
    bool err = !text || ferror(f) || len > MAX_DB_BYTES;
    fclose(f);
    if (err) {
        snprintf(msg, sizeof msg, "tuning database %s: unreadable or too large: ignored", path);
        warn_add(warn, wlen, &nwarn, msg);
    } else {
        nwarn = clattn__tune_db_parse(text, len, device, db, warn, wlen);
    }
    free(text);
    return nwarn;
}

/* Opens and exclusively locks "<path>.lock"; -1 on failure. */
static int lock_db(const char *path)
{
    char lock[1100];
    snprintf(lock, sizeof lock, "%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void unlock_db(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static bool write_file(const char *path, const char *text)
{
    char tmp[1200];
    static unsigned serial;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), serial++);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return false;
    }
    return true;
}

static void dir_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash && slash != out)
        *slash = '\0';
}

clattn_status clattn__tune_db_store(const char *path, uint64_t device,
                                    const clattn_tuning_entry *add, size_t n, char *warn,
                                    size_t wlen)
{
    char dir[1100];
    dir_of(path, dir, sizeof dir);
    if (!clattn__mkdirs(dir)) {
        snprintf(warn, wlen, "tuning database: cannot create folder %s", dir);
        return CLATTN_IO_ERROR;
    }
    int fd = lock_db(path);
    if (fd < 0) {
        snprintf(warn, wlen, "tuning database: cannot lock %s.lock (%s)", path, strerror(errno));
        return CLATTN_IO_ERROR;
    }
    clattn__tune_db db = {NULL, 0, 0};
    char ignored[256];
    /* What is there now, written by anyone; an unreadable old file is replaced. */
    clattn__tune_db_load(path, device, &db, ignored, sizeof ignored);
    clattn_status status = CLATTN_SUCCESS;
    for (size_t i = 0; i < n && status == CLATTN_SUCCESS; i++)
        if (!clattn__tune_db_put(&db, &add[i]))
            status = CLATTN_OUT_OF_HOST_MEMORY;
    char *text = status == CLATTN_SUCCESS ? clattn__tune_db_format(&db, device) : NULL;
    if (status == CLATTN_SUCCESS && !text)
        status = CLATTN_OUT_OF_HOST_MEMORY;
    if (status == CLATTN_SUCCESS && !write_file(path, text)) {
        snprintf(warn, wlen, "tuning database: cannot write %s (%s)", path, strerror(errno));
        status = CLATTN_IO_ERROR;
    }
    if (status == CLATTN_OUT_OF_HOST_MEMORY)
        snprintf(warn, wlen, "tuning database: out of host memory");
    free(text);
    clattn__tune_db_free(&db);
    unlock_db(fd);
    return status;
}

clattn_status clattn__tune_db_remove(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return CLATTN_SUCCESS;
    int fd = lock_db(path);
    bool ok = remove(path) == 0 || errno == ENOENT;
    unlock_db(fd);
    return ok ? CLATTN_SUCCESS : CLATTN_IO_ERROR;
}
