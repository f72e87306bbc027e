/* npy.c - strict, small reader/writer for NumPy .npy files.
 *
 * Format reference: numpy/lib/format.py. A file is the magic "\x93NUMPY", a
 * major and minor version byte, a little-endian header length (uint16 for
 * 1.0, uint32 for 2.0 and 3.0), then a Python dict literal padded with spaces
 * and '\n', then the raw array bytes.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, getpid */

#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_DIMS 8
/* numpy itself refuses headers over 10000 bytes unless told otherwise; we are a
 * little more lenient but never allocate what a corrupt length field claims. */
#define NPY_MAX_HEADER_BYTES (1u << 20)
/* numpy >= 1.23 pads the header so the first axis can grow to this many digits
 * in place; we copy it so our files are byte-identical to np.save's. */
#define NPY_GROWTH_AXIS_MAX_DIGITS 21
#define NPY_ARRAY_ALIGN 64

static const char npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int host_is_little(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* The data are little-endian on disk; only a big-endian host needs this. */
static void swap_bytes(void *data, size_t count, size_t size)
{
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* Product of the shape; 0 on overflow, with *overflow set. A zero extent makes
 * the product 0 whatever the others are, as numpy allows. */
static size_t shape_count(const size_t *shape, int ndim, int *overflow)
{
    size_t count = 1;
    *overflow = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return 0;
    for (int i = 0; i < ndim; i++) {
        if (count > SIZE_MAX / shape[i]) {
            *overflow = 1;
            return 0;
        }
        count *= shape[i];
    }
    return count;
}

/* Python's repr of a tuple of ints: "()", "(4,)", "(2, 3)". */
static void format_shape(char *buf, size_t len, const size_t *shape, int ndim)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? ", " : "", shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, ndim == 1 ? ",)" : ")");
}

/* ---- header dict parser -------------------------------------------------
 * Only the literal subset numpy writes: a dict with exactly the keys 'descr'
 * (a string), 'fortran_order' (True/False) and 'shape' (a tuple of
 * non-negative ints), in any order, with optional trailing comma and spaces.
 * We do not evaluate Python, so anything else is an error, not a guess. */

typedef struct {
    const char *p, *end;
} cursor;

typedef struct {
    char descr[32];
    int descr_too_long;
    int fortran_order;
    size_t shape[NPY_MAX_DIMS];
    int ndim;             /* may exceed NPY_MAX_DIMS: we keep counting to report it */
    int shape_overflow;   /* an extent did not fit in size_t */
} header_info;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int accept_word(cursor *c, const char *w)
{
    size_t n = strlen(w);
    skip_ws(c);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A '...' or "..." string without escapes (numpy never writes any in these keys). */
static int parse_string(cursor *c, char *buf, size_t len, int *too_long)
{
    char q;
    size_t n = 0;
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    q = *c->p++;
    *too_long = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n')
            return -1;
        if (n + 1 < len)
            buf[n++] = *c->p;
        else
            *too_long = 1;
        c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    buf[n] = '\0';
    return 0;
}

static int parse_shape(cursor *c, header_info *hi)
{
    hi->ndim = 0;
    if (!accept(c, '('))
        return -1;
    for (;;) {
        size_t v = 0;
        if (accept(c, ')'))
            return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return -1;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            size_t d = (size_t)(*c->p++ - '0');
            if (v > (SIZE_MAX - d) / 10)
                hi->shape_overflow = 1;
            else
                v = v * 10 + d;
        }
        if (c->p < c->end && *c->p == 'L') /* Python 2 longs in old files */
            c->p++;
        if (hi->ndim < NPY_MAX_DIMS)
            hi->shape[hi->ndim] = v;
        hi->ndim++;
        if (accept(c, ','))
            continue;
        if (accept(c, ')'))
            return 0;
        return -1;
    }
}

static int parse_header(const char *path, const char *h, size_t len, header_info *hi,
                        char *err, size_t errlen)
{
    cursor c = { h, h + len };
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    char key[32];
    int too_long;

    if (!accept(&c, '{'))
        goto malformed;
    while (!accept(&c, '}')) {
        if (parse_string(&c, key, sizeof key, &too_long) != 0 || !accept(&c, ':'))
            goto malformed;
        if (strcmp(key, "descr") == 0 && !too_long && !seen_descr) {
            seen_descr = 1;
            if (parse_string(&c, hi->descr, sizeof hi->descr, &hi->descr_too_long) != 0) {
                fail(err, errlen, "%s: header 'descr' is not a plain dtype string "
                     "(structured dtypes are not supported)", path);
                return -1;
            }
        } else if (strcmp(key, "fortran_order") == 0 && !too_long && !seen_fortran) {
            seen_fortran = 1;
            if (accept_word(&c, "True"))
                hi->fortran_order = 1;
            else if (accept_word(&c, "False"))
                hi->fortran_order = 0;
            else
                goto malformed;
        } else if (strcmp(key, "shape") == 0 && !too_long && !seen_shape) {
            seen_shape = 1;
            if (parse_shape(&c, hi) != 0)
                goto malformed;
        } else {
            fail(err, errlen, "%s: header has an unexpected or repeated key '%s%s'", path, key,
                 too_long ? "..." : "");
            return -1;
        }
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                goto malformed;
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end)
        goto malformed;
    if (!seen_descr || !seen_fortran || !seen_shape) {
        fail(err, errlen, "%s: header lacks key '%s'", path,
             !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
        return -1;
    }
    return 0;

malformed:
    fail(err, errlen, "%s: header dict is malformed at byte %zu of %zu", path,
         (size_t)(c.p - h), len);
    return -1;
}

static int dtype_from_descr(const char *path, const header_info *hi, npy_dtype *dt,
                            size_t *size, char *err, size_t errlen)
{
    const char *t = hi->descr;
    if (!hi->descr_too_long) {
        if (*t == '<' || *t == '|')
            t++;
        if (strcmp(t, "f4") == 0) {
            *dt = NPY_F32;
            *size = 4;
            return 0;
        }
        if (strcmp(t, "i4") == 0) {
            *dt = NPY_I32;
            *size = 4;
            return 0;
        }
        if (strcmp(t, "i8") == 0) {
            *dt = NPY_I64;
            *size = 8;
            return 0;
        }
        if (strcmp(t, "f2") == 0) {
            *dt = NPY_F16;
            *size = 2;
            return 0;
        }
        if (strcmp(t, "u2") == 0) {
            *dt = NPY_U16;
            *size = 2;
            return 0;
        }
        if (strcmp(t, "V2") == 0) {
            *dt = NPY_V2;
            *size = 2;
            return 0;
        }
        if (strcmp(t, "u1") == 0 || strcmp(t, "b1") == 0) {
            *dt = t[0] == 'u' ? NPY_U8 : NPY_B1;
            *size = 1;
            return 0;
        }
    }
    if (hi->descr[0] == '>')
        fail(err, errlen, "%s: dtype '%s' is big-endian (need little-endian float32 '<f4', "
             "float16 '<f2', uint16 '<u2' (bfloat16), int32 '<i4', int64 '<i8', uint8 '|u1' or "
             "bool '|b1')", path, hi->descr);
    else
        fail(err, errlen, "%s: dtype '%s%s' is not supported (need float32 '<f4', "
             "float16 '<f2', uint16 '<u2' or void '|V2' (bfloat16), int32 '<i4', int64 '<i8', "
             "uint8 '|u1' or bool '|b1')",
             path, hi->descr, hi->descr_too_long ? "..." : "");
    return -1;
}

/* npy_read on an open stream `given` (closed here), or on the file at path when given is NULL;
 * path names the array in messages either way. */
static int read_stream(FILE *given, const char *path, npy_array *out, char *err, size_t errlen)
{
    int rc = -1;
    FILE *f = given;
    char *hdr = NULL;
    void *data = NULL;
    unsigned char pre[12];
    size_t got, prefix, hlen, count, esize, bytes;
    int overflow;
    npy_dtype dt;
    header_info hi;
    struct stat st;
    char shp[256];

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (path == NULL || out == NULL) {
        fail(err, errlen, "npy_read: path and out must not be NULL");
        return -1;
    }
    memset(&hi, 0, sizeof hi);

    if (f == NULL)
        f = fopen(path, "rb");
    if (f == NULL) {
        fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    got = fread(pre, 1, 10, f);
    if (got == 0) {
        fail(err, errlen, "%s: file is empty, not a .npy file", path);
        goto cleanup;
    }
    if (memcmp(pre, npy_magic, got < 6 ? got : 6) != 0) {
        fail(err, errlen, "%s: not a .npy file (bad magic)", path);
        goto cleanup;
    }
    if (got < 8) {
        fail(err, errlen, "%s: truncated header (file is only %zu bytes)", path, got);
        goto cleanup;
    }
    if ((pre[6] != 1 && pre[6] != 2 && pre[6] != 3) || pre[7] != 0) {
        fail(err, errlen, "%s: .npy format version %u.%u is not supported (need 1.0, 2.0 or 3.0)",
             path, (unsigned)pre[6], (unsigned)pre[7]);
        goto cleanup;
    }
    prefix = pre[6] == 1 ? 10 : 12;
    if (got == 10 && prefix == 12)
        got += fread(pre + 10, 1, 2, f);
    if (got < prefix) {
        fail(err, errlen, "%s: truncated header (file is only %zu bytes)", path, got);
        goto cleanup;
    }
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (prefix == 12)
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    if (hlen > NPY_MAX_HEADER_BYTES) {
        fail(err, errlen, "%s: header length %zu is implausible (limit %u)", path, hlen,
             NPY_MAX_HEADER_BYTES);
        goto cleanup;
    }
    hdr = malloc(hlen + 1);
    if (hdr == NULL) {
        fail(err, errlen, "%s: out of memory for a %zu-byte header", path, hlen);
        goto cleanup;
    }
    got = fread(hdr, 1, hlen, f);
    if (got < hlen) {
        fail(err, errlen, "%s: truncated header (%zu of %zu header bytes present)", path, got,
             hlen);
        goto cleanup;
    }
    hdr[hlen] = '\0';
    if (parse_header(path, hdr, hlen, &hi, err, errlen) != 0)
        goto cleanup;
    if (dtype_from_descr(path, &hi, &dt, &esize, err, errlen) != 0)
        goto cleanup;
    if (hi.fortran_order) {
        fail(err, errlen, "%s: fortran_order True is not supported (need a C-order array)", path);
        goto cleanup;
    }
    if (hi.ndim > NPY_MAX_DIMS) {
        fail(err, errlen, "%s: shape has %d dimensions (at most %d supported)", path, hi.ndim,
             NPY_MAX_DIMS);
        goto cleanup;
    }
    format_shape(shp, sizeof shp, hi.shape, hi.ndim);
    count = shape_count(hi.shape, hi.ndim, &overflow);
    if (hi.shape_overflow || overflow || count > SIZE_MAX / esize) {
        if (hi.shape_overflow)
            fail(err, errlen, "%s: shape has an extent that overflows size_t", path);
        else
            fail(err, errlen, "%s: shape %s is too large (its size overflows size_t)", path, shp);
        goto cleanup;
    }
    bytes = count * esize;

    /* For a regular file, check the size before allocating, so a corrupt shape
     * gives "truncated" rather than "out of memory". */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        size_t avail = (size_t)st.st_size - prefix - hlen;
        if (avail < bytes) {
            fail(err, errlen, "%s: truncated data: shape %s needs %zu bytes, file has %zu",
                 path, shp, bytes, avail);
            goto cleanup;
        }
        if (avail > bytes) {
            fail(err, errlen, "%s: file has %zu extra bytes after the data of shape %s", path,
                 avail - bytes, shp);
            goto cleanup;
        }
    }
    data = malloc(bytes ? bytes : 1);
    if (data == NULL) {
        fail(err, errlen, "%s: out of memory for %zu data bytes", path, bytes);
        goto cleanup;
    }
    got = fread(data, 1, bytes, f);
    if (got < bytes) {
        if (ferror(f))
            fail(err, errlen, "%s: read error: %s", path, strerror(errno));
        else
            fail(err, errlen, "%s: truncated data: shape %s needs %zu bytes, file has %zu",
                 path, shp, bytes, got);
        goto cleanup;
    }
    /* Not a regular file (a pipe): the size check above could not run. */
    if (fgetc(f) != EOF) {
        size_t extra = 1;
        unsigned char sink[4096];
        while ((got = fread(sink, 1, sizeof sink, f)) > 0)
            extra += got;
        fail(err, errlen, "%s: file has %zu extra bytes after the data of shape %s", path, extra,
             shp);
        goto cleanup;
    }
    if (!host_is_little())
        swap_bytes(data, count, esize);

    out->dtype = dt;
    out->ndim = hi.ndim;
    memcpy(out->shape, hi.shape, sizeof hi.shape);
    out->count = count;
    out->data = data;
    data = NULL;
    rc = 0;

cleanup:
    free(data);
    free(hdr);
    if (f != NULL)
        fclose(f);
    return rc;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen)
{
    return read_stream(NULL, path, out, err, errlen);
}

/* ---- .npz: a zip archive of .npy members (np.savez) ---- */

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* The zip64 extended-information values (0x0001) of an extra field that replace 0xffffffff
 * entries of a central-directory record, in order: uncompressed size, compressed size, local
 * header offset. */
static void zip64_fields(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                         uint64_t *off)
{
    while (xlen >= 4) {
        uint32_t id = le16(x), n = le16(x + 2);
        if (n + 4 > xlen)
            return;
        if (id == 1) {
            const unsigned char *v = x + 4;
            size_t left = n;
            uint64_t *f[3] = {usize, csize, off};
            for (int i = 0; i < 3; i++)
                if (*f[i] == 0xffffffffu && left >= 8) {
                    *f[i] = le64(v);
                    v += 8;
                    left -= 8;
                }
            return;
        }
        x += 4 + n;
        xlen -= 4 + n;
    }
}

int npz_read(const char *path, const char *name, npy_array *out, char *err, size_t errlen)
{
    int rc = -1;
    unsigned char *z = NULL;
    FILE *f = NULL;
    long flen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (path == NULL || name == NULL || out == NULL) {
        fail(err, errlen, "npz_read: path, name and out must not be NULL");
        return -1;
    }
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (flen = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    size_t len = (size_t)flen;
    z = malloc(len ? len : 1);
    if (z == NULL) {
        fail(err, errlen, "%s: out of memory for %zu bytes", path, len);
        goto cleanup;
    }
    if (fread(z, 1, len, f) != len) {
        fail(err, errlen, "%s: read error", path);
        goto cleanup;
    }
    /* the end-of-central-directory record: the last "PK\5\6" with room for its 22 bytes */
    size_t eocd = (size_t)-1;
    for (size_t i = len >= 22 ? len - 22 + 1 : 0; i-- > 0;)
        if (le32(z + i) == 0x06054b50u) {
            eocd = i;
            break;
        }
    if (eocd == (size_t)-1) {
        fail(err, errlen, "%s: not a .npz file (no zip end-of-central-directory record)", path);
        goto cleanup;
    }
    uint64_t entries = le16(z + eocd + 10), cd = le32(z + eocd + 16);
    if (cd == 0xffffffffu || entries == 0xffffu) { /* zip64: its locator precedes the record */
        if (eocd < 20 || le32(z + eocd - 20) != 0x07064b50u ||
            le64(z + eocd - 12) + 56 > len || le32(z + le64(z + eocd - 12)) != 0x06064b50u) {
            fail(err, errlen, "%s: damaged zip64 end-of-central-directory record", path);
            goto cleanup;
        }
        const unsigned char *r = z + le64(z + eocd - 12);
        entries = le64(r + 32);
        cd = le64(r + 48);
    }
    char want[256];
    snprintf(want, sizeof want, "%s.npy", name);
    size_t pos = (size_t)cd;
    for (uint64_t e = 0; e < entries; e++) {
        if (pos + 46 > len || le32(z + pos) != 0x02014b50u) {
            fail(err, errlen, "%s: damaged zip central directory", path);
            goto cleanup;
        }
        const unsigned char *c = z + pos;
        uint32_t method = le16(c + 10), nlen = le16(c + 28), xlen = le16(c + 30),
                 clen = le16(c + 32);
        uint64_t csize = le32(c + 20), usize = le32(c + 24), off = le32(c + 42);
        if (pos + 46 + nlen + xlen > len) {
            fail(err, errlen, "%s: damaged zip central directory", path);
            goto cleanup;
        }
        const char *ename = (const char *)c + 46;
        pos += 46 + (size_t)nlen + xlen + clen;
        if (nlen != strlen(want) || memcmp(ename, want, nlen) != 0)
            continue;
        zip64_fields(c + 46 + nlen, xlen, &usize, &csize, &off);
        if (method != 0) {
            fail(err, errlen,
                 "%s: member %s is compressed (zip method %u): compressed .npz "
                 "(np.savez_compressed) is not supported, save with np.savez",
                 path, want, (unsigned)method);
            goto cleanup;
        }
        if (off + 30 > len || le32(z + off) != 0x04034b50u) {
            fail(err, errlen, "%s: damaged zip local header of %s", path, want);
            goto cleanup;
        }
        uint64_t data = off + 30 + le16(z + off + 26) + le16(z + off + 28);
        if (csize != usize || data + usize > len || usize == 0) {
            fail(err, errlen, "%s: member %s: %llu bytes do not fit the archive", path, want,
                 (unsigned long long)usize);
            goto cleanup;
        }
        FILE *m = fmemopen(z + data, (size_t)usize, "rb");
        if (m == NULL) {
            fail(err, errlen, "%s: cannot read member %s: %s", path, want, strerror(errno));
            goto cleanup;
        }
        char label[1024];
        snprintf(label, sizeof label, "%s:%s", path, want);
        rc = read_stream(m, label, out, err, errlen);
        goto cleanup;
    }
    fail(err, errlen, "%s: no member %s", path, want);
cleanup:
    free(z);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Builds the 1.0 preamble + header exactly as numpy's _write_array_header:
 * sorted keys, repr'd values, growth padding, then spaces and '\n' so that the
 * data starts on a 64-byte boundary. Returns its total length. */
static size_t build_header(char *buf, size_t len, const char *descr, int ndim,
                           const size_t *shape)
{
    char shp[256], first[32];
    size_t dict, hlen, pad;
    int growth = 0;

    format_shape(shp, sizeof shp, shape, ndim);
    if (ndim > 0)
        growth = NPY_GROWTH_AXIS_MAX_DIGITS - snprintf(first, sizeof first, "%zu", shape[0]);
    if (growth < 0)
        growth = 0;
    dict = (size_t)snprintf(buf + 10, len - 10,
                            "{'descr': '%s', 'fortran_order': False, 'shape': %s, }%*s", descr,
                            shp, growth, "");
    pad = NPY_ARRAY_ALIGN - (10 + dict + 1) % NPY_ARRAY_ALIGN;
    hlen = dict + pad + 1;
    memset(buf + 10 + dict, ' ', pad);
    buf[10 + dict + pad] = '\n';
    memcpy(buf, npy_magic, sizeof npy_magic);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    return 10 + hlen;
}

static int write_data_le(FILE *f, const void *data, size_t esize, size_t count)
{
    unsigned char chunk[4096];
    const unsigned char *p = data;
    if (host_is_little())
        return fwrite(data, esize, count, f) == count ? 0 : -1;
    size_t per = sizeof chunk / esize;
    while (count > 0) {
        size_t n = count < per ? count : per;
        memcpy(chunk, p, n * esize);
        swap_bytes(chunk, n, esize);
        if (fwrite(chunk, esize, n, f) != n)
            return -1;
        p += n * esize;
        count -= n;
    }
    return 0;
}

int npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape,
                  char *err, size_t errlen)
{
    return npy_write(path, NPY_F32, data, ndim, shape, err, errlen);
}

int npy_write(const char *path, npy_dtype dtype, const void *data, int ndim,
              const size_t *shape, char *err, size_t errlen)
{
    const char *descr = dtype == NPY_F32 ? "<f4" : dtype == NPY_F16 ? "<f2"
                      : dtype == NPY_U16 ? "<u2" : dtype == NPY_I32 ? "<i4"
                      : dtype == NPY_U8 ? "|u1" : dtype == NPY_B1 ? "|b1" : NULL;
    size_t esize = dtype == NPY_F32 || dtype == NPY_I32 ? 4
                 : dtype == NPY_U8 || dtype == NPY_B1 ? 1 : 2;
    int rc = -1, tmp_made = 0, overflow;
    FILE *f = NULL;
    char *tmp = NULL;
    /* dict with 8 twenty-digit extents, growth padding and alignment fits easily */
    char hdr[512];
    size_t count, hbytes;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL) {
        fail(err, errlen, "npy_write: path must not be NULL");
        return -1;
    }
    if (descr == NULL) {
        fail(err, errlen, "%s: npy_write cannot write dtype %d", path, (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && shape == NULL)) {
        fail(err, errlen, "%s: cannot write %d dimensions (need 0..%d and a shape)", path, ndim,
             NPY_MAX_DIMS);
        return -1;
    }
    count = shape_count(shape, ndim, &overflow);
    if (overflow || count > SIZE_MAX / esize) {
        fail(err, errlen, "%s: shape is too large (its size overflows size_t)", path);
        return -1;
    }
    if (count > 0 && data == NULL) {
        fail(err, errlen, "%s: data is NULL for %zu elements", path, count);
        return -1;
    }
    hbytes = build_header(hdr, sizeof hdr, descr, ndim, shape);

    tmp = malloc(strlen(path) + 32);
    if (tmp == NULL) {
        fail(err, errlen, "%s: out of memory", path);
        goto cleanup;
    }
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (f == NULL) {
        fail(err, errlen, "%s: cannot create temp file '%s': %s", path, tmp, strerror(errno));
        goto cleanup;
    }
    tmp_made = 1;
    if (fwrite(hdr, 1, hbytes, f) != hbytes || write_data_le(f, data, esize, count) != 0) {
        fail(err, errlen, "%s: write failed: %s", path, strerror(errno));
        goto cleanup;
    }
    /* fclose reports a failed final flush (disk full); the file is not done until then. */
    if (fclose(f) != 0) {
        f = NULL;
        fail(err, errlen, "%s: write failed on close: %s", path, strerror(errno));
        goto cleanup;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        fail(err, errlen, "%s: cannot move temp file into place: %s", path, strerror(errno));
        goto cleanup;
    }
    tmp_made = 0;
    rc = 0;

cleanup:
    if (f != NULL)
        fclose(f);
    if (tmp_made)
        remove(tmp);
    free(tmp);
    return rc;
}

void npy_free(npy_array *a)
{
    if (a == NULL)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
