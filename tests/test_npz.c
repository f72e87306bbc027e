/* test_npz.c - device-free checks of npz_read (samples/npy.c), the reader of `clattn run deq
 * --weights W.npz`: archives written here the way np.savez writes them (stored members, with and
 * without numpy's forced ZIP64 extra fields), members found by name, a compressed member
 * (np.savez_compressed) refused with a message that says so, a missing member and files that are
 * not zip archives refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"

static void put16(FILE *f, unsigned v)
{
    fputc((int)(v & 0xff), f);
    fputc((int)((v >> 8) & 0xff), f);
}
static void put32(FILE *f, unsigned long v)
{
    put16(f, (unsigned)(v & 0xffff));
    put16(f, (unsigned)((v >> 16) & 0xffff));
}
static void put64(FILE *f, unsigned long long v)
{
    put32(f, (unsigned long)(v & 0xffffffffu));
    put32(f, (unsigned long)(v >> 32));
}

/* The bytes of a .npy holding float32 `data` of `shape` (via npy_write_f32). */
static unsigned char *npy_bytes(const float *data, int ndim, const size_t *shape, size_t *len)
{
    char path[] = "/tmp/clattn_npz_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_int_equal(npy_write_f32(path, data, ndim, shape, err, sizeof err), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    unlink(path);
    return b;
}

/* A zip of `n` members (stored, or labelled with `method`), the central directory's sizes as
 * 0xffffffff with a ZIP64 extra field when zip64 (numpy's local headers carry one too). */
static void write_zip(const char *path, const char *const *names, unsigned char *const *blobs,
                      const size_t *lens, int n, unsigned method, int zip64)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    long offs[8];
    for (int i = 0; i < n; i++) {
        offs[i] = ftell(f);
        put32(f, 0x04034b50u);
        put16(f, 45);
        put16(f, 0);
        put16(f, method);
        put32(f, 0); /* time, date */
        put32(f, 0); /* crc (not checked) */
        put32(f, zip64 ? 0xffffffffu : lens[i]);
        put32(f, zip64 ? 0xffffffffu : lens[i]);
        put16(f, (unsigned)strlen(names[i]));
        put16(f, zip64 ? 20 : 0);
        fputs(names[i], f);
        if (zip64) {
            put16(f, 1);
            put16(f, 16);
            put64(f, lens[i]);
            put64(f, lens[i]);
        }
        fwrite(blobs[i], 1, lens[i], f);
    }
    long cd = ftell(f);
    for (int i = 0; i < n; i++) {
        put32(f, 0x02014b50u);
        put16(f, 45);
        put16(f, 45);
        put16(f, 0);
        put16(f, method);
        put32(f, 0);
        put32(f, 0);
        put32(f, zip64 ? 0xffffffffu : lens[i]);
        put32(f, zip64 ? 0xffffffffu : lens[i]);
        put16(f, (unsigned)strlen(names[i]));
        put16(f, zip64 ? 20 : 0);
        put16(f, 0); /* comment */
        put16(f, 0);
        put16(f, 0);
        put32(f, 0);
        put32(f, (unsigned long)offs[i]);
        fputs(names[i], f);
        if (zip64) {
            put16(f, 1);
            put16(f, 16);
            put64(f, lens[i]);
            put64(f, lens[i]);
        }
    }
    long end = ftell(f);
    put32(f, 0x06054b50u);
    put16(f, 0);
    put16(f, 0);
    put16(f, (unsigned)n);
    put16(f, (unsigned)n);
    put32(f, (unsigned long)(end - cd));
    put32(f, (unsigned long)cd);
    put16(f, 0);
    fclose(f);
}

static void check_archive(int zip64)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {-1, -2, -3, -4};
    size_t sa[2] = {2, 3}, sb[1] = {4}, la, lb;
    unsigned char *blobs[2] = {npy_bytes(a, 2, sa, &la), npy_bytes(b, 1, sb, &lb)};
    size_t lens[2] = {la, lb};
    const char *names[2] = {"wq.npy", "wo.npy"};
    char path[] = "/tmp/clattn_npz_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_zip(path, names, blobs, lens, 2, 0, zip64);
    npy_array x;
    char err[512];
    assert_int_equal(npz_read(path, "wo", &x, err, sizeof err), 0);
    assert_int_equal(x.ndim, 1);
    assert_int_equal(x.shape[0], 4);
    assert_memory_equal(x.data, b, sizeof b);
    npy_free(&x);
    assert_int_equal(npz_read(path, "wq", &x, err, sizeof err), 0);
    assert_int_equal(x.ndim, 2);
    assert_memory_equal(x.data, a, sizeof a);
    npy_free(&x);
    assert_int_equal(npz_read(path, "wk", &x, err, sizeof err), -1);
    assert_non_null(strstr(err, "no member wk.npy"));
    assert_null(x.data);
    /* the same archive labelled deflate: refused, saying why */
    write_zip(path, names, blobs, lens, 2, 8, zip64);
    assert_int_equal(npz_read(path, "wq", &x, err, sizeof err), -1);
    assert_non_null(strstr(err, "np.savez_compressed"));
    unlink(path);
    free(blobs[0]);
    free(blobs[1]);
}

static void test_npz_stored(void **state)
{
    (void)state;
    check_archive(0);
}

static void test_npz_zip64(void **state)
{
    (void)state;
    check_archive(1);
}

static void test_npz_not_zip(void **state)
{
    (void)state;
    char path[] = "/tmp/clattn_npz_XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(write(fd, "not a zip archive at all, just text", 35), 35);
    close(fd);
    npy_array x;
    char err[512];
    assert_int_equal(npz_read(path, "wq", &x, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a .npz file"));
    unlink(path);
    assert_int_equal(npz_read("/nonexistent/w.npz", "wq", &x, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npz_stored),
        cmocka_unit_test(test_npz_zip64),
        cmocka_unit_test(test_npz_not_zip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
