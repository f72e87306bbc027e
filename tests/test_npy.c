/* test_npy.c - the .npy reader/writer used by the clattn tool.
 *
 * numpy is not needed: the headers below are written byte for byte as
 * numpy 1.24 writes them (captured from np.save), and every file the tests
 * make lives in a mkdtemp directory removed at the end. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, dirent, stat */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../samples/npy.h"

static char tmpdir[512];

#define SP10 "          "

/* np.save(np.arange(6, dtype=np.float32).reshape(2, 3)), header only: 128 bytes. */
static const char hdr_f32_2x3[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    SP10 SP10 SP10 SP10 SP10 "        " "\n";

/* np.save(np.arange(4, dtype=np.int64)), header only: 128 bytes. */
static const char hdr_i64_4[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }"
    SP10 SP10 SP10 SP10 SP10 SP10 "\n";

static void tpath(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Makes <tmpdir>/<name> from a header dict, padded as numpy pads it, followed
 * by n data bytes. major selects the 1.0 (uint16) or 2.0/3.0 (uint32) length. */
static void make_npy(char *path, size_t len, const char *name, int major, const char *dict,
                     const void *data, size_t n)
{
    unsigned char buf[1024];
    size_t prefix = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t pad = 64 - (prefix + dlen + 1) % 64;
    size_t hlen = dlen + pad + 1;

    assert_true(prefix + hlen + n <= sizeof buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    if (prefix == 12) {
        buf[10] = 0;
        buf[11] = 0;
    }
    memcpy(buf + prefix, dict, dlen);
    memset(buf + prefix + dlen, ' ', pad);
    buf[prefix + hlen - 1] = '\n';
    if (n > 0)
        memcpy(buf + prefix + hlen, data, n);
    tpath(path, len, name);
    write_bytes(path, buf, prefix + hlen + n);
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return 0;
    return 1;
}

/* Every rejection: -1, a one-line message naming the file and the problem,
 * and *out left zeroed. */
static void expect_reject(const char *path, const char *needle)
{
    npy_array a;
    char err[512];
    size_t n;

    memset(&a, 0xAB, sizeof a);
    memset(err, 0, sizeof err);
    assert_int_equal(npy_read(path, &a, err, sizeof err), -1);
    n = strlen(err);
    assert_true(n > 0);
    assert_true(err[n - 1] != '\n' && strchr(err, '\n') == NULL);
    if (strstr(err, needle) == NULL || strstr(err, path) == NULL)
        fail_msg("message \"%s\" lacks \"%s\" or the path", err, needle);
    assert_true(all_zero(&a, sizeof a));
}

static void reject_dict(const char *name, const char *dict, size_t data_bytes, const char *needle)
{
    char path[600];
    unsigned char data[64] = { 0 };
    assert_true(data_bytes <= sizeof data);
    make_npy(path, sizeof path, name, 1, dict, data, data_bytes);
    expect_reject(path, needle);
}

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/clattn_npy_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

/* One level deep is all the tests create (the "adir" directory). */
static int group_teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[1024];
    (void)state;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        remove(p);
    }
    closedir(d);
    return rmdir(tmpdir);
}

static int count_temp_files(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.") != NULL)
            n++;
    closedir(d);
    return n;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- reading hand-made files ---------------------------------------------- */

static void test_read_v1_f32_2x3(void **state)
{
    unsigned char buf[128 + 24];
    const float want[6] = { 0, 1, 2, 3, 4, 5 };
    char path[600], err[256];
    npy_array a;
    (void)state;
    assert_int_equal(sizeof hdr_f32_2x3 - 1, 128);
    memcpy(buf, hdr_f32_2x3, 128);
    memcpy(buf + 128, want, sizeof want); /* little-endian host assumed by the test data */
    tpath(path, sizeof path, "f32_2x3.npy");
    write_bytes(path, buf, sizeof buf);

    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.count, 6);
    assert_memory_equal(a.data, want, sizeof want);
    npy_free(&a);
    assert_null(a.data);
}

static void test_read_v1_i64_4(void **state)
{
    unsigned char buf[128 + 32];
    const int64_t want[4] = { -1, 0, INT64_C(1) << 40, 7 };
    char path[600], err[256];
    npy_array a;
    (void)state;
    assert_int_equal(sizeof hdr_i64_4 - 1, 128);
    memcpy(buf, hdr_i64_4, 128);
    memcpy(buf + 128, want, sizeof want);
    tpath(path, sizeof path, "i64_4.npy");
    write_bytes(path, buf, sizeof buf);

    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.dtype, NPY_I64);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 4);
    assert_int_equal(a.count, 4);
    assert_memory_equal(a.data, want, sizeof want);
    npy_free(&a);
}

static void test_read_v2_and_v3(void **state)
{
    const int32_t want[3] = { 5, -6, 7 };
    char path[600], err[256];
    npy_array a;
    (void)state;
    make_npy(path, sizeof path, "v2.npy", 2,
             "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", want, sizeof want);
    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.dtype, NPY_I32);
    assert_int_equal(a.count, 3);
    assert_memory_equal(a.data, want, sizeof want);
    npy_free(&a);

    make_npy(path, sizeof path, "v3.npy", 3,
             "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", want, sizeof want);
    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.ndim, 2);
    assert_memory_equal(a.data, want, sizeof want);
    npy_free(&a);
}

/* Key order, quotes, spacing, trailing comma, byte-order mark and 0-d shapes vary. */
static void test_read_header_variants(void **state)
{
    static const char *dicts[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\":\"f4\",\"fortran_order\":False,\"shape\":(2,3)}",
        "{ 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , 'descr' : '|f4' , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
    };
    const float data[6] = { 1, 2, 3, 4, 5, 6 };
    const float one = 42.0f;
    char path[600], err[256];
    npy_array a;
    (void)state;
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        make_npy(path, sizeof path, "variant.npy", 1, dicts[i], data, sizeof data);
        if (npy_read(path, &a, err, sizeof err) != 0)
            fail_msg("dict %zu rejected: %s", i, err);
        assert_int_equal(a.ndim, 2);
        assert_int_equal(a.shape[0], 2);
        assert_int_equal(a.shape[1], 3);
        assert_memory_equal(a.data, data, sizeof data);
        npy_free(&a);
    }
    make_npy(path, sizeof path, "scalar.npy", 1,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &one, sizeof one);
    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    assert_true(*(float *)a.data == 42.0f);
    npy_free(&a);

    make_npy(path, sizeof path, "empty.npy", 1,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }", NULL, 0);
    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.count, 0);
    assert_non_null(a.data);
    npy_free(&a);
}

/* ---- rejections ------------------------------------------------------------ */

static void test_reject_dtypes(void **state)
{
    (void)state;
    reject_dict("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
                "big-endian");
    reject_dict("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16,
                "dtype '<f8' is not supported");
    reject_dict("bf2.npy", "{'descr': '>f2', 'fortran_order': False, 'shape': (2,), }", 4,
                "big-endian");
    reject_dict("i1.npy", "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", 2,
                "'|i1'");
    reject_dict("v4.npy", "{'descr': '|V4', 'fortran_order': False, 'shape': (2,), }", 8,
                "'|V4'");
    reject_dict("obj.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16,
                "'|O'");
    reject_dict("u4.npy", "{'descr': '<u4', 'fortran_order': False, 'shape': (2,), }", 8,
                "'<u4'");
    reject_dict("rec.npy",
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
                "structured");
}

/* The 16-bit kinds: '<f2' (float16), '<u2' and '|V2' (bfloat16 words) are read raw; npy_write
 * writes '<f2' and '<u2' back, byte for byte. */
static void test_half_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *descr;
        npy_dtype dt;
    } kinds[] = {{"<f2", NPY_F16}, {"<u2", NPY_U16}, {"|V2", NPY_V2}};
    const unsigned char data[6] = {0x00, 0x3c, 0x80, 0x3f, 0xff, 0x7b};
    for (size_t i = 0; i < 3; i++) {
        char path[600], dict[128], err[512];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 kinds[i].descr);
        make_npy(path, sizeof path, "half.npy", 1, dict, data, sizeof data);
        npy_array a;
        assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
        assert_int_equal(a.dtype, kinds[i].dt);
        assert_int_equal(a.count, 3);
        assert_memory_equal(a.data, data, sizeof data);
        if (kinds[i].dt != NPY_V2) {
            size_t shape[1] = {3};
            assert_int_equal(npy_write(path, kinds[i].dt, a.data, 1, shape, err, sizeof err), 0);
            npy_array b;
            assert_int_equal(npy_read(path, &b, err, sizeof err), 0);
            assert_int_equal(b.dtype, kinds[i].dt);
            assert_memory_equal(b.data, data, sizeof data);
            npy_free(&b);
        }
        npy_free(&a);
    }
}

/* The 1-byte kinds of masks: '|u1' and numpy bool '|b1' are read raw and written back. */
static void test_byte_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *descr;
        npy_dtype dt;
    } kinds[] = {{"|u1", NPY_U8}, {"|b1", NPY_B1}};
    const unsigned char data[3] = {0, 1, 1};
    for (size_t i = 0; i < 2; i++) {
        char path[600], dict[128], err[512];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 kinds[i].descr);
        make_npy(path, sizeof path, "byte.npy", 1, dict, data, sizeof data);
        npy_array a, b;
        assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
        assert_int_equal(a.dtype, kinds[i].dt);
        assert_int_equal(a.count, 3);
        assert_memory_equal(a.data, data, sizeof data);
        size_t shape[1] = {3};
        assert_int_equal(npy_write(path, kinds[i].dt, a.data, 1, shape, err, sizeof err), 0);
        assert_int_equal(npy_read(path, &b, err, sizeof err), 0);
        assert_int_equal(b.dtype, kinds[i].dt);
        assert_memory_equal(b.data, data, sizeof data);
        npy_free(&b);
        npy_free(&a);
    }
}

static void test_reject_layout_and_shape(void **state)
{
    (void)state;
    reject_dict("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                16, "fortran_order");
    reject_dict("ndim9.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
                "9 dimensions");
    /* 2^80 elements overflow any size_t */
    reject_dict("prod.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (65536, 65536, 65536, 65536, 65536), }", 0, "overflow");
    /* fits as a count on 64-bit, overflows once multiplied by 4 bytes */
    reject_dict("bytes.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2), }",
                0, "overflow");
    reject_dict("extent.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (999999999999999999999999,), }", 0, "overflow");
}

static void test_reject_malformed_header(void **state)
{
    (void)state;
    reject_dict("nokey.npy", "{'descr': '<f4', 'fortran_order': False}", 4, "lacks key 'shape'");
    reject_dict("extra.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4,
                "unexpected");
    reject_dict("dup.npy",
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
                "repeated");
    reject_dict("open.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4,
                "malformed");
    reject_dict("neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4,
                "malformed");
    reject_dict("bool.npy", "{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}", 4,
                "malformed");
    reject_dict("after.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4,
                "malformed");
}

static void test_reject_bad_files(void **state)
{
    char path[600];
    unsigned char buf[200] = {0};
    (void)state;

    tpath(path, sizeof path, "missing.npy");
    expect_reject(path, "cannot open");

    tpath(path, sizeof path, "zero.npy");
    write_bytes(path, "", 0);
    expect_reject(path, "empty");

    memcpy(buf, hdr_f32_2x3, 128);
    buf[1] = 'X';
    tpath(path, sizeof path, "magic.npy");
    write_bytes(path, buf, 128 + 24);
    expect_reject(path, "bad magic");

    tpath(path, sizeof path, "text.npy");
    write_bytes(path, "hello", 5);
    expect_reject(path, "bad magic");

    tpath(path, sizeof path, "short_prefix.npy");
    write_bytes(path, hdr_f32_2x3, 9);
    expect_reject(path, "truncated header");

    tpath(path, sizeof path, "short_header.npy");
    write_bytes(path, hdr_f32_2x3, 60);
    expect_reject(path, "truncated header");

    memcpy(buf, hdr_f32_2x3, 128);
    buf[6] = 4;
    tpath(path, sizeof path, "v4.npy");
    write_bytes(path, buf, 128 + 24);
    expect_reject(path, "version 4.0");

    memset(buf + 128, 0, 28);
    memcpy(buf, hdr_f32_2x3, 128);
    tpath(path, sizeof path, "short_data.npy");
    write_bytes(path, buf, 128 + 20);
    expect_reject(path, "truncated data");

    tpath(path, sizeof path, "long_data.npy");
    write_bytes(path, buf, 128 + 28);
    expect_reject(path, "file has 4 extra bytes");
}

/* ---- writing --------------------------------------------------------------- */

/* Our header must be byte-identical to np.save's, so numpy.load reads it. */
static void test_write_matches_numpy_bytes(void **state)
{
    const float data[6] = { 0, 1, 2, 3, 4, 5 };
    const size_t shape[2] = { 2, 3 };
    unsigned char buf[256];
    char path[600], err[256];
    FILE *f;
    (void)state;
    tpath(path, sizeof path, "out_2x3.npy");
    assert_int_equal(npy_write_f32(path, data, 2, shape, err, sizeof err), 0);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf, f), 128 + 24);
    fclose(f);
    assert_memory_equal(buf, hdr_f32_2x3, 128);
    assert_memory_equal(buf + 128, data, sizeof data);
}

static void test_write_read_round_trip(void **state)
{
    static const size_t shapes[][8] = {
        { 0 }, { 5 }, { 2, 3 }, { 2, 0, 3 }, { 1, 2, 3, 4, 1, 1, 1, 2 }, { 123456789012, 0 },
    };
    static const int ndims[] = { 0, 1, 2, 3, 8, 2 };
    float data[48];
    char path[600], err[256];
    npy_array a;
    (void)state;
    for (int i = 0; i < 48; i++)
        data[i] = (float)i * 0.5f - 3.0f;
    tpath(path, sizeof path, "rt.npy");
    for (size_t t = 0; t < sizeof ndims / sizeof ndims[0]; t++) {
        unsigned char pre[10];
        size_t hlen;
        FILE *f;

        assert_int_equal(npy_write_f32(path, data, ndims[t], shapes[t], err, sizeof err), 0);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(pre, 1, 10, f), 10);
        fclose(f);
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        assert_int_equal((10 + hlen) % 64, 0); /* numpy's data alignment */

        if (npy_read(path, &a, err, sizeof err) != 0)
            fail_msg("case %zu: %s", t, err);
        assert_int_equal(a.dtype, NPY_F32);
        assert_int_equal(a.ndim, ndims[t]);
        for (int d = 0; d < ndims[t]; d++)
            assert_int_equal(a.shape[d], shapes[t][d]);
        assert_memory_equal(a.data, data, a.count * sizeof(float));
        npy_free(&a);
    }
    assert_int_equal(count_temp_files(), 0);
}

static void test_write_replaces_existing(void **state)
{
    const float one[2] = { 1, 2 }, two[3] = { 3, 4, 5 };
    const size_t s2 = 2, s3 = 3;
    char path[600], err[256];
    npy_array a;
    (void)state;
    tpath(path, sizeof path, "replace.npy");
    assert_int_equal(npy_write_f32(path, one, 1, &s2, err, sizeof err), 0);
    assert_int_equal(npy_write_f32(path, two, 1, &s3, err, sizeof err), 0);
    assert_int_equal(npy_read(path, &a, err, sizeof err), 0);
    assert_int_equal(a.count, 3);
    assert_memory_equal(a.data, two, sizeof two);
    npy_free(&a);
}

static void test_write_failures_leave_nothing(void **state)
{
    const float data[2] = { 1, 2 };
    const size_t shape[9] = { 2, 1, 1, 1, 1, 1, 1, 1, 1 };
    char path[600], err[256];
    (void)state;

    tpath(path, sizeof path, "no_such_dir/x.npy");
    err[0] = '\0';
    assert_int_equal(npy_write_f32(path, data, 1, shape, err, sizeof err), -1);
    assert_true(strlen(err) > 0 && strstr(err, path) != NULL);
    assert_false(file_exists(path));

    /* fopen of the temp file succeeds, rename onto a directory fails: the temp must go. */
    tpath(path, sizeof path, "adir");
    assert_int_equal(mkdir(path, 0700), 0);
    err[0] = '\0';
    assert_int_equal(npy_write_f32(path, data, 1, shape, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(count_temp_files(), 0);

    tpath(path, sizeof path, "write_ndim9.npy");
    err[0] = '\0';
    assert_int_equal(npy_write_f32(path, data, 9, shape, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    assert_false(file_exists(path));

    err[0] = '\0';
    assert_int_equal(npy_write_f32(path, NULL, 1, shape, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    assert_false(file_exists(path));
    assert_int_equal(count_temp_files(), 0);
}

static void test_free_is_null_safe(void **state)
{
    npy_array a;
    (void)state;
    memset(&a, 0, sizeof a);
    npy_free(NULL);
    npy_free(&a);
    npy_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_v1_f32_2x3),
        cmocka_unit_test(test_read_v1_i64_4),
        cmocka_unit_test(test_read_v2_and_v3),
        cmocka_unit_test(test_read_header_variants),
        cmocka_unit_test(test_reject_dtypes),
        cmocka_unit_test(test_half_kinds),
        cmocka_unit_test(test_byte_kinds),
        cmocka_unit_test(test_reject_layout_and_shape),
        cmocka_unit_test(test_reject_malformed_header),
        cmocka_unit_test(test_reject_bad_files),
        cmocka_unit_test(test_write_matches_numpy_bytes),
        cmocka_unit_test(test_write_read_round_trip),
        cmocka_unit_test(test_write_replaces_existing),
        cmocka_unit_test(test_write_failures_leave_nothing),
        cmocka_unit_test(test_free_is_null_safe),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
