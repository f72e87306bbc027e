/* test_tune_db.c - device-free checks of the tuner's pieces: the candidate list on made-up devices
 * (every candidate valid and re-creatable, the scheduler's default first, no duplicates) and the
 * tuning database file (round trip, merge, and corrupt, truncated, empty, foreign-version and
 * other-device files ignored with a warning, never fatal); linear's and LSH's database keys and
 * their parameters' round trip (candidate -> entry -> file -> entry -> the same launch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tune/tune.h"

#define KIB ((uint64_t)1024)
#define DEV 0x1234abcd5678ef00ull

static clattn_device_info make_dev(clattn_device_class cls, uint64_t local, int emulated,
                                   size_t max_wg, unsigned vec)
{
    clattn_device_info d;
    memset(&d, 0, sizeof d);
    d.device_class = cls;
    d.local_mem_size = local;
    d.local_mem_emulated = emulated;
    d.max_work_group_size = max_wg;
    d.max_work_item_sizes[0] = d.max_work_item_sizes[1] = d.max_work_item_sizes[2] = max_wg;
    d.max_alloc_size = (uint64_t)1 << 30;
    d.native_vector_width_float = d.preferred_vector_width_float = vec;
    return d;
}

static void check_candidates(const clattn_device_info *dev, size_t d)
{
    clattn__softmax_problem prob = {d, 1000, 1000, 0, 0};
    clattn__softmax_launch c[64], def, again;
    size_t n = clattn__softmax_candidates(dev, &prob, CLATTN_SOFTMAX_AUTO, c, 64);
    assert_true(n >= 1);
    assert_int_equal(clattn__schedule_softmax(dev, &prob, CLATTN_SOFTMAX_AUTO, &def, NULL, 0),
                     CLATTN_SUCCESS);
    assert_memory_equal(&c[0], &def, sizeof def); /* the default first, unchanged */
    for (size_t i = 0; i < n; i++) {
        const clattn__softmax_launch *L = &c[i];
        assert_int_equal(L->algo, def.algo);
        if (L->gpu_tx) /* TILED_GPU's register-tiled kernel */
            assert_int_equal(clattn__softmax_launch_gpu_rt(dev, &prob, L->gpu_tx, L->gpu_ty,
                                                           L->gpu_rm, L->gpu_rn,
                                                           L->gpu_kv_shared, &again, NULL, 0),
                             CLATTN_SUCCESS);
        else
            assert_int_equal(clattn__softmax_launch_from(dev, &prob, L->algo, L->rows_per_item,
                                                         L->local_size, L->tile_kv, &again,
                                                         NULL, 0),
                             CLATTN_SUCCESS);
        assert_string_equal(again.defines, L->defines);
        assert_true(L->local_size <= dev->max_work_group_size);
        if (L->algo == CLATTN_SOFTMAX_TILED_CPU)
            assert_true(L->rows_per_item * ((d + 15) / 16) <= 64);
        else
            assert_true(L->local_mem_bytes <= dev->local_mem_size);
        for (size_t j = 0; j < i; j++)
            assert_false(c[j].rows_per_item == L->rows_per_item &&
                         c[j].local_size == L->local_size && c[j].tile_kv == L->tile_kv &&
                         c[j].gpu_tx == L->gpu_tx && c[j].gpu_ty == L->gpu_ty &&
                         c[j].gpu_rm == L->gpu_rm && c[j].gpu_rn == L->gpu_rn &&
                         c[j].gpu_kv_shared == L->gpu_kv_shared);
    }
}

static void test_candidates_made_up_devices(void **state)
{
    (void)state;
    clattn_device_info devs[] = {
        make_dev(CLATTN_DEVICE_GPU, 48 * KIB, 0, 1024, 1),  make_dev(CLATTN_DEVICE_GPU, 64 * KIB, 0, 256, 1),
        make_dev(CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 16), make_dev(CLATTN_DEVICE_CPU, 32 * KIB, 1, 1024, 1),
        make_dev(CLATTN_DEVICE_GPU, 16 * KIB, 0, 64, 1),    make_dev(CLATTN_DEVICE_GPU, 1 * KIB, 0, 16, 1),
    };
    const size_t ds[] = {1, 16, 33, 64, 100, 128, 256};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
        for (size_t j = 0; j < sizeof ds / sizeof ds[0]; j++)
            check_candidates(&devs[i], ds[j]);
    /* PoCL-like: a real search space; D = 64 and 128 allow 8 rows (P.V then passes through
     * registers in slices); rows x 5 key blocks (32 is under D 64's 64-key step: 4 there), then 3
     * more local sizes at the default tiles. */
    clattn__softmax_problem p64 = {64, 4096, 4096, 0, 0}, p128 = {128, 4096, 4096, 1, 0};
    clattn__softmax_launch c[64];
    assert_int_equal(clattn__softmax_candidates(&devs[2], &p64, CLATTN_SOFTMAX_AUTO, c, 64), 19);
    assert_int_equal(clattn__softmax_candidates(&devs[2], &p128, CLATTN_SOFTMAX_AUTO, c, 64), 23);
    /* GPU 48 KiB: the register-tiled default, the one-row-per-item kernel's default, then the
     * rest of the 72-point register-tiled space that fits (57 of them at D = 64). */
    assert_int_equal(clattn__softmax_candidates(&devs[0], &p64, CLATTN_SOFTMAX_AUTO, c, 64), 58);
    assert_true(c[0].gpu_tx != 0 && c[1].gpu_tx == 0 && c[2].gpu_tx != 0);
    assert_int_equal(clattn__softmax_candidates(&devs[2], &p64, CLATTN_SOFTMAX_NAIVE, c, 64), 0);
    assert_int_equal(clattn__softmax_candidates(&devs[2], &p64, CLATTN_SOFTMAX_AUTO, c, 3), 3);
}

static void test_launch_from_rejects(void **state)
{
    (void)state;
    clattn_device_info cpu = make_dev(CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 16);
    clattn_device_info gpu = make_dev(CLATTN_DEVICE_GPU, 16 * KIB, 0, 256, 1);
    clattn__softmax_problem p = {128, 512, 512, 0, 0}, big = {513, 512, 512, 0, 0};
    clattn__softmax_launch L;
    char why[128];
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p, CLATTN_SOFTMAX_TILED_CPU, 3, 1, 16, &L,
                                                   why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_true(why[0] != '\0');
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p, CLATTN_SOFTMAX_TILED_CPU, 8, 1, 16, &L,
                                                   NULL, 0),
                     CLATTN_UNSUPPORTED); /* 8 x 8 accumulators */
    assert_int_equal(clattn__softmax_launch_from(&cpu, &p, CLATTN_SOFTMAX_TILED_CPU, 2, 3, 16, &L,
                                                   NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_from(&gpu, &p, CLATTN_SOFTMAX_TILED_GPU, 1, 512, 8, &L,
                                                   NULL, 0),
                     CLATTN_UNSUPPORTED); /* beyond the work-group limit */
    assert_int_equal(clattn__softmax_launch_from(&gpu, &p, CLATTN_SOFTMAX_TILED_GPU, 1, 64, 32, &L,
                                                   NULL, 0),
                     CLATTN_UNSUPPORTED); /* 2 x 32 x 128 x 4 B > 16 KiB */
    assert_int_equal(clattn__softmax_launch_from(&gpu, &p, CLATTN_SOFTMAX_TILED_GPU, 1, 64, 16, &L,
                                                   NULL, 0),
                     CLATTN_SUCCESS);
    /* the register-tiled kernel: powers of two, work-group, local memory, register budget */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 8, 4, 2, 2, 1, &L, why, sizeof why),
                     CLATTN_SUCCESS); /* 13.3 KiB with K and V sharing a buffer */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 8, 4, 2, 2, 0, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED); /* 21.3 KiB in separate buffers */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 8, 4, 3, 2, 0, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 16, 32, 2, 2, 0, &L, NULL, 0),
                     CLATTN_UNSUPPORTED); /* 512 work-items > 256 */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 16, 8, 4, 4, 0, &L, NULL, 0),
                     CLATTN_UNSUPPORTED); /* > 16 KiB */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&cpu, &p, 8, 4, 8, 8, 0, &L, NULL, 0),
                     CLATTN_UNSUPPORTED); /* 8 x 8 scores + 8 x 16 accumulators > 160 floats */
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &p, 8, 4, 2, 2, 2, &L, NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_gpu_rt(&gpu, &big, 8, 4, 2, 2, 0, &L, NULL, 0),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__softmax_launch_from(&gpu, &p, CLATTN_SOFTMAX_NAIVE, 1, 64, 0, &L,
                                                   NULL, 0),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__softmax_launch_from(&gpu, &big, CLATTN_SOFTMAX_TILED_GPU, 1, 64, 8,
                                                   &L, NULL, 0),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn__tune_bucket(1), 1);
    assert_int_equal(clattn__tune_bucket(4096), 4096);
    assert_int_equal(clattn__tune_bucket(4097), 8192);
}

/* ---- the database file ---- */

static char dir[256];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/clattn-tune-db-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static clattn_tuning_entry entry(unsigned d, size_t n, int causal, unsigned rows, double ms)
{
    clattn_tuning_entry e;
    clattn__tune_key(&e, CLATTN_OP_SOFTMAX, "cpu", d, d, n, n, causal);
    assert_true(clattn__tune_param_set(&e, "rows", rows));
    assert_true(clattn__tune_param_set(&e, "local", 2));
    assert_true(clattn__tune_param_set(&e, "tile_kv", 16));
    e.default_ms = 2 * ms;
    e.tuned_ms = ms;
    return e;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Loads the file; returns the entry count and the warning count. */
static size_t load(const char *path, unsigned *warnings, char *warn, size_t wlen)
{
    clattn__tune_db db = {NULL, 0, 0};
    warn[0] = '\0';
    *warnings = clattn__tune_db_load(path, DEV, &db, warn, wlen);
    size_t n = db.count;
    clattn__tune_db_free(&db);
    return n;
}

static void test_db_round_trip_and_merge(void **state)
{
    (void)state;
    char path[400], warn[400];
    unsigned nw;
    clattn__tune_db_path(dir, DEV, path, sizeof path);
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0); /* absent: empty, no warning */
    assert_int_equal(nw, 0);
    clattn_tuning_entry a[2] = {entry(64, 4096, 0, 2, 10.25), entry(128, 4096, 1, 1, 3.5)};
    assert_int_equal(clattn__tune_db_store(path, DEV, a, 2, warn, sizeof warn), CLATTN_SUCCESS);
    clattn_tuning_entry b = entry(64, 4096, 0, 8, 9.0); /* same key as a[0]: replaces it */
    assert_int_equal(clattn__tune_db_store(path, DEV, &b, 1, warn, sizeof warn), CLATTN_SUCCESS);
    clattn__tune_db db = {NULL, 0, 0};
    assert_int_equal(clattn__tune_db_load(path, DEV, &db, warn, sizeof warn), 0);
    assert_int_equal(db.count, 2);
    const clattn_tuning_entry *f = clattn__tune_db_find(&db, &b);
    assert_non_null(f);
    assert_int_equal(clattn__tune_param(f, "rows", -1), 8);
    assert_true(f->tuned_ms == 9.0 && f->default_ms == 18.0);
    f = clattn__tune_db_find(&db, &a[1]);
    assert_non_null(f);
    assert_int_equal(f->causal, 1);
    assert_int_equal(f->head_dim_v, 128);
    assert_int_equal(clattn__tune_param(f, "local", -1), 2);
    assert_string_equal(f->variant, "cpu");
    assert_string_equal(f->op, "softmax");
    clattn__tune_db_free(&db);
    assert_int_equal(clattn__tune_db_remove(path), CLATTN_SUCCESS);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(clattn__tune_db_remove(path), CLATTN_SUCCESS);
}

/* A format 1 header (the v1 lines below are read as format 2 entries). */
static void header(char *buf, size_t size, const char *lib, unsigned long long dev)
{
    snprintf(buf, size, "clattn-tuning-db 1 lib=%s device=%016llx\n", lib, dev);
}

static void header2(char *buf, size_t size, unsigned long long dev)
{
    snprintf(buf, size, "clattn-tuning-db 2 lib=%s device=%016llx\n", clattn_version_string(),
             dev);
}

#define LINE1 "softmax d=64 nq=4096 nk=4096 causal=0 family=cpu rows=4 local=1 tile_kv=16 " \
              "default_ms=1.0 tuned_ms=0.5\n"
#define LINE2 "softmax d=32 nq=256 nk=256 causal=1 family=gpu rows=1 local=64 tile_kv=32 " \
              "default_ms=1.0 tuned_ms=0.9\n"
#define LINE2V2 "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=1 default_ms=1.0 " \
                "tuned_ms=0.9 : rows=1 local=64 tile_kv=32\n"
/* Another operator's entry: the file format carries any operator's key and parameters. */
#define LINEAR_V2 "linear variant=favor-fused d=64 dv=32 nq=1 nk=65536 causal=1 " \
                  "default_ms=2.5 tuned_ms=2.0 : chunk=128 local=64 feature_local=32\n"

static void test_db_bad_files_ignored(void **state)
{
    (void)state;
    char path[400], warn[400], text[2048], hdr[128];
    unsigned nw;
    clattn__tune_db_path(dir, DEV, path, sizeof path);
    header(hdr, sizeof hdr, clattn_version_string(), DEV);

    write_text(path, "", 0); /* empty */
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_int_equal(nw, 1);
    assert_non_null(strstr(warn, "empty"));

    write_text(path, "\x7f" "ELF\x01\x02garbage\n\n", 13); /* corrupt */
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_true(nw >= 1 && strstr(warn, "header"));

    snprintf(text, sizeof text, "%s" LINE1 "softmax d=banana\n" LINE2 "# a comment\n", hdr);
    write_text(path, text, strlen(text)); /* one bad line among good ones */
    assert_int_equal(load(path, &nw, warn, sizeof warn), 2);
    assert_int_equal(nw, 1);
    assert_non_null(strstr(warn, "line 3"));

    snprintf(text, sizeof text, "%s" LINE1 LINE2, hdr);
    write_text(path, text, strlen(text) - 20); /* truncated in the last line */
    assert_int_equal(load(path, &nw, warn, sizeof warn), 1);
    assert_non_null(strstr(warn, "truncated"));
    write_text(path, text, strlen(hdr) - 5); /* truncated in the header */
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_int_equal(nw, 1);

    header(hdr, sizeof hdr, "0.0.9", DEV); /* foreign library version */
    snprintf(text, sizeof text, "%s" LINE1, hdr);
    write_text(path, text, strlen(text));
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_non_null(strstr(warn, "0.0.9"));
    snprintf(text, sizeof text, "clattn-tuning-db 3 lib=%s device=%016llx\n" LINE2V2,
             clattn_version_string(), DEV); /* foreign (future) format */
    write_text(path, text, strlen(text));
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_int_equal(nw, 1);

    header(hdr, sizeof hdr, clattn_version_string(), DEV + 1); /* another device */
    snprintf(text, sizeof text, "%s" LINE1, hdr);
    write_text(path, text, strlen(text));
    assert_int_equal(load(path, &nw, warn, sizeof warn), 0);
    assert_non_null(strstr(warn, "another device"));

    /* A writer replaces whatever unreadable file was there. */
    clattn_tuning_entry e = entry(16, 256, 0, 1, 1.0);
    assert_int_equal(clattn__tune_db_store(path, DEV, &e, 1, warn, sizeof warn), CLATTN_SUCCESS);
    assert_int_equal(load(path, &nw, warn, sizeof warn), 1);
    assert_int_equal(nw, 0);
}

static void test_db_unwritable_folder(void **state)
{
    (void)state;
    char path[400], warn[400] = "";
    clattn_tuning_entry e = entry(16, 256, 0, 1, 1.0);
    clattn__tune_db_path("/proc/clattn-no-such-dir", DEV, path, sizeof path);
    assert_int_equal(clattn__tune_db_store(path, DEV, &e, 1, warn, sizeof warn), CLATTN_IO_ERROR);
    assert_true(warn[0] != '\0');
}

/* Format 1 lines become format 2 entries (variant = family, dv = d, params rows/local/tile_kv);
 * the next writer rewrites the file in format 2. */
static void test_db_reads_format1(void **state)
{
    (void)state;
    char path[400], warn[400], text[2048], hdr[128];
    clattn__tune_db_path(dir, DEV, path, sizeof path);
    header(hdr, sizeof hdr, clattn_version_string(), DEV);
    snprintf(text, sizeof text, "%s" LINE1 LINE2, hdr);
    write_text(path, text, strlen(text));
    clattn__tune_db db = {NULL, 0, 0};
    assert_int_equal(clattn__tune_db_load(path, DEV, &db, warn, sizeof warn), 0);
    assert_int_equal(db.count, 2);
    const clattn_tuning_entry *e = &db.entries[1];
    assert_string_equal(e->op, "softmax");
    assert_string_equal(e->variant, "gpu");
    assert_int_equal(e->head_dim, 32);
    assert_int_equal(e->head_dim_v, 32);
    assert_int_equal(e->causal, 1);
    assert_int_equal(e->num_params, 3);
    assert_int_equal(clattn__tune_param(e, "rows", -1), 1);
    assert_int_equal(clattn__tune_param(e, "local", -1), 64);
    assert_int_equal(clattn__tune_param(e, "tile_kv", -1), 32);
    clattn__tune_db_free(&db);

    clattn_tuning_entry add = entry(16, 256, 0, 1, 1.0);
    assert_int_equal(clattn__tune_db_store(path, DEV, &add, 1, warn, sizeof warn), CLATTN_SUCCESS);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    assert_non_null(strstr(text, "clattn-tuning-db 2 "));
    assert_non_null(strstr(text, "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=1"));
    assert_non_null(strstr(text, ": rows=1 local=64 tile_kv=32\n"));
    assert_int_equal(clattn__tune_db_load(path, DEV, &db, warn, sizeof warn), 0);
    assert_int_equal(db.count, 3);
    clattn__tune_db_free(&db);
}

/* Format 2: any operator's key and parameters round-trip; the key includes the variant and dv;
 * malformed lines are ignored one by one. */
static void test_db_format2_generic(void **state)
{
    (void)state;
    char path[400], warn[400], text[4096], hdr[128];
    unsigned nw;
    clattn__tune_db_path(dir, DEV, path, sizeof path);
    header2(hdr, sizeof hdr, DEV);
    snprintf(text, sizeof text,
             "%s" LINE2V2 LINEAR_V2
             "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=1 default_ms=1 tuned_ms=1\n"
             "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=1 default_ms=1 tuned_ms=1 :\n"
             "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=1 default_ms=1 tuned_ms=1 : "
             "rows=1 rows=2\n"
             "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=2 default_ms=1 tuned_ms=1 : "
             "rows=1\n"
             "nosuchop variant=x d=32 dv=32 nq=256 nk=256 causal=0 default_ms=1 tuned_ms=1 : "
             "a=1\n"
             "softmax variant=gpu d=32 dv=32 nq=256 nk=256 causal=0 default_ms=1 tuned_ms=1 : "
             "rows=x\n",
             hdr);
    write_text(path, text, strlen(text));
    clattn__tune_db db = {NULL, 0, 0};
    warn[0] = '\0';
    nw = clattn__tune_db_load(path, DEV, &db, warn, sizeof warn);
    assert_int_equal(db.count, 2);
    assert_int_equal(nw, 6); /* one per malformed line */
    assert_non_null(strstr(warn, "line 4"));
    clattn_tuning_entry key;
    clattn__tune_key(&key, CLATTN_OP_LINEAR, "favor-fused", 64, 32, 1, 40000, 1);
    const clattn_tuning_entry *f = clattn__tune_db_find(&db, &key);
    assert_non_null(f); /* nk 40000 falls in the 65536 bucket */
    assert_int_equal(f->num_params, 3);
    assert_int_equal(clattn__tune_param(f, "chunk", -1), 128);
    assert_int_equal(clattn__tune_param(f, "feature_local", -1), 32);
    assert_int_equal(clattn__tune_param(f, "absent", -7), -7);
    key.head_dim_v = 64; /* dv is part of the key */
    assert_null(clattn__tune_db_find(&db, &key));
    clattn__tune_key(&key, CLATTN_OP_SOFTMAX, "cpu", 32, 32, 256, 256, 1);
    assert_null(clattn__tune_db_find(&db, &key)); /* the variant is part of the key */

    /* Written back in format 2 and read again: the same entries. */
    char *out = clattn__tune_db_format(&db, DEV);
    assert_non_null(out);
    clattn__tune_db again = {NULL, 0, 0};
    assert_int_equal(clattn__tune_db_parse(out, strlen(out), DEV, &again, warn, sizeof warn), 0);
    assert_int_equal(again.count, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(again.entries[i].op, db.entries[i].op);
        assert_string_equal(again.entries[i].variant, db.entries[i].variant);
        assert_int_equal(again.entries[i].num_params, db.entries[i].num_params);
        assert_memory_equal(again.entries[i].params, db.entries[i].params,
                            sizeof db.entries[i].params);
    }
    free(out);
    clattn__tune_db_free(&again);
    clattn__tune_db_free(&db);

    /* Parameter helpers: replace, capacity, names. */
    clattn_tuning_entry e;
    clattn__tune_key(&e, CLATTN_OP_SOFTMAX, "cpu", 64, 64, 100, 100, 0);
    assert_int_equal(e.nq_bucket, 128);
    for (int i = 0; i < CLATTN_TUNING_MAX_PARAMS; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        assert_true(clattn__tune_param_set(&e, name, i));
    }
    assert_false(clattn__tune_param_set(&e, "one_more", 1));
    assert_true(clattn__tune_param_set(&e, "p3", 33));
    assert_int_equal(clattn__tune_param(&e, "p3", -1), 33);
    assert_false(clattn__tune_param_set(&e, "bad name", 1));
    assert_false(clattn__tune_param_set(&e, "", 1));
}

/* ---- linear and LSH: keys and parameter round trips (device-free) ---- */

/* Every candidate, written as an entry, through the file format and back, gives the same
 * launch; the entry's key is the one the plan looks up. */
static void round_trip(const clattn__tune_adapter *ad, const void *cands, size_t n,
                       const clattn_tuning_entry *key,
                       bool (*from)(const clattn_device_info *, const void *,
                                    const clattn_tuning_entry *, void *),
                       const clattn_device_info *dev, const void *prob)
{
    clattn__tune_db db = {NULL, 0, 0}, again = {NULL, 0, 0};
    unsigned char back[CLATTN__TUNE_MAX_LAUNCH];
    char warn[200];
    for (size_t i = 0; i < n; i++) {
        const unsigned char *c = (const unsigned char *)cands + i * ad->launch_size;
        clattn_tuning_entry e = *key;
        ad->to_params(c, &e);
        e.default_ms = 1.5;
        e.tuned_ms = 1.25;
        clattn__tune_db_free(&db);
        assert_true(clattn__tune_db_put(&db, &e));
        char *text = clattn__tune_db_format(&db, DEV);
        assert_non_null(text);
        clattn__tune_db_free(&again);
        assert_int_equal(clattn__tune_db_parse(text, strlen(text), DEV, &again, warn, sizeof warn),
                         0);
        free(text);
        const clattn_tuning_entry *got = clattn__tune_db_find(&again, key);
        assert_non_null(got);
        assert_int_equal(got->num_params, e.num_params);
        memset(back, 0xA5, sizeof back);
        assert_true(from(dev, prob, got, back));
        assert_memory_equal(back, c, ad->launch_size);
    }
    clattn__tune_db_free(&db);
    clattn__tune_db_free(&again);
}

static bool linear_from(const clattn_device_info *dev, const void *p, const clattn_tuning_entry *e,
                        void *out)
{
    return clattn__tune_linear_from_entry(dev, p, e, out);
}

static bool lsh_from(const clattn_device_info *dev, const void *p, const clattn_tuning_entry *e,
                     void *out)
{
    return clattn__tune_lsh_from_entry(dev, p, e, out);
}

static clattn__linear_problem lin_problem(size_t nq, size_t nk, int causal, int momentum,
                                          int favor, size_t m)
{
    clattn__linear_problem p;
    memset(&p, 0, sizeof p);
    p.bh = p.bh_kv = 8;
    p.nq = nq;
    p.nk = nk;
    p.d = p.dv = 64;
    p.m = m;
    p.causal = causal;
    p.momentum = momentum;
    p.favor = favor;
    return p;
}

static void test_linear_keys_and_params(void **state)
{
    (void)state;
    const clattn__tune_adapter *ad = clattn__tune_adapter_for(CLATTN_OP_LINEAR);
    assert_non_null(ad);
    assert_int_equal(ad->launch_size, sizeof(clattn__linear_launch));
    clattn_device_info devs[3] = {
        make_dev(CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 16), /* PoCL-like: FUSED */
        make_dev(CLATTN_DEVICE_GPU, 48 * KIB, 0, 1024, 1),    /* GPU: AUTO takes GEMM */
        make_dev(CLATTN_DEVICE_GPU, 32 * KIB, 0, 256, 4),     /* llvmpipe-like, loop cap */
    };
    devs[2].loop_iteration_cap = 65535;
    const struct {
        clattn__linear_problem p;
        int map;
        const char *variant[3]; /* per device */
    } cases[] = {
        {lin_problem(4096, 4096, 0, CLATTN_LINEAR_MOMENTUM_NONE, 0, 64), CLATTN_LINEAR_FEATURE_ELU,
         {"elu-none-fused", "elu-none-gemm", "elu-none-gemm"}},
        {lin_problem(1, 4096, 0, CLATTN_LINEAR_MOMENTUM_NONE, 0, 64), CLATTN_LINEAR_FEATURE_RELU,
         {"relu-none-fused", "relu-none-gemm", "relu-none-gemm"}},
        {lin_problem(2048, 2048, 1, CLATTN_LINEAR_MOMENTUM_NONE, 1, 128),
         CLATTN_LINEAR_FEATURE_FAVOR,
         {"favor128-none-fused", "favor128-none-fused", "favor128-none-fused"}},
        {lin_problem(512, 512, 1, CLATTN_LINEAR_MOMENTUM_FIXED, 0, 64),
         CLATTN_LINEAR_FEATURE_IDENTITY,
         {"identity-fixed-fused", "identity-fixed-fused", "identity-fixed-fused"}},
        {lin_problem(512, 512, 0, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 1, 4096),
         CLATTN_LINEAR_FEATURE_FAVOR,
         {"favor4096-adaptive-fused", "favor4096-adaptive-fused", NULL}}, /* M too big capped */
    };
    clattn__linear_launch c[CLATTN__TUNE_MAX_CANDIDATES], def;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < 3; j++) {
            const clattn__linear_problem *p = &cases[i].p;
            size_t n = clattn__tune_linear_candidates(&devs[j], p, CLATTN_LINEAR_AUTO, c,
                                                      CLATTN__TUNE_MAX_CANDIDATES);
            if (!cases[i].variant[j]) {
                assert_int_equal(n, 0);
                continue;
            }
            assert_true(n >= 1);
            assert_int_equal(n > 1, devs[j].loop_iteration_cap == 0); /* capped: default only */
            assert_int_equal(clattn__schedule_linear(&devs[j], p, CLATTN_LINEAR_AUTO, &def, NULL,
                                                     0),
                             CLATTN_SUCCESS);
            assert_memory_equal(&c[0], &def, sizeof def);
            clattn_tuning_entry key;
            clattn__tune_linear_key(cases[i].map, p, c[0].algo, &key);
            assert_string_equal(key.op, "linear");
            assert_string_equal(key.variant, cases[i].variant[j]);
            assert_int_equal(key.head_dim, 64);
            assert_int_equal(key.nq_bucket, clattn__tune_bucket(p->nq));
            assert_int_equal(key.causal, p->causal);
            round_trip(ad, c, n, &key, linear_from, &devs[j], p);
        }

    /* A forced form: the scheduler's launch of that form first, then only that form. */
    clattn__linear_problem p = cases[0].p;
    size_t n = clattn__tune_linear_candidates(&devs[1], &p, CLATTN_LINEAR_FUSED, c,
                                              CLATTN__TUNE_MAX_CANDIDATES);
    assert_true(n > 1);
    assert_int_equal(clattn__schedule_linear(&devs[1], &p, CLATTN_LINEAR_FUSED, &def, NULL, 0),
                     CLATTN_SUCCESS);
    assert_memory_equal(&c[0], &def, sizeof def);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i].algo, CLATTN_LINEAR_FUSED);
    assert_int_equal(clattn__tune_linear_candidates(&devs[0], &p, CLATTN_LINEAR_GEMM, c, 64), 1);
    assert_int_equal(c[0].algo, CLATTN_LINEAR_GEMM);

    /* Entries that do not fit are refused, never half-used. */
    clattn_tuning_entry e;
    clattn__linear_launch L;
    clattn__tune_linear_key(CLATTN_LINEAR_FEATURE_ELU, &p, CLATTN_LINEAR_FUSED, &e);
    ad->to_params(&def, &e);
    assert_true(clattn__tune_linear_from_entry(&devs[0], &p, &e, &L));
    const struct {
        const char *name;
        long long value;
    } bad[] = {{"rows", 3}, {"eb", 8}, {"block", 48}, {"wg", 2}, {"algo", 0}, {"chunk", 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clattn_tuning_entry b = e;
        assert_true(clattn__tune_param_set(&b, bad[i].name, bad[i].value));
        if (clattn__tune_linear_from_entry(&devs[0], &p, &b, &L))
            fail_msg("linear entry with %s=%lld accepted", bad[i].name, bad[i].value);
    }
    clattn_tuning_entry missing = e;
    missing.num_params--; /* wg gone */
    assert_false(clattn__tune_linear_from_entry(&devs[0], &p, &missing, &L));
    clattn__linear_problem causal = cases[2].p; /* GEMM does not run the causal form */
    assert_true(clattn__tune_param_set(&e, "algo", CLATTN_LINEAR_GEMM));
    assert_false(clattn__tune_linear_from_entry(&devs[0], &causal, &e, &L));
    assert_true(clattn__tune_param_set(&e, "algo", CLATTN_LINEAR_FUSED));
    assert_false(clattn__tune_linear_from_entry(&devs[2], &p, &e, &L)); /* wg 1 only, capped */
}

static void test_lsh_keys_and_params(void **state)
{
    (void)state;
    const clattn__tune_adapter *ad = clattn__tune_adapter_for(CLATTN_OP_LSH);
    assert_non_null(ad);
    assert_int_equal(ad->launch_size, sizeof(clattn__lsh_launch));
    clattn_device_info devs[3] = {
        make_dev(CLATTN_DEVICE_CPU, 1024 * KIB, 1, 4096, 16),
        make_dev(CLATTN_DEVICE_GPU, 48 * KIB, 0, 1024, 1),
        make_dev(CLATTN_DEVICE_GPU, 32 * KIB, 0, 256, 4),
    };
    devs[2].loop_iteration_cap = 65535;
    const struct {
        clattn__lsh_problem p;
        const char *variant;
    } cases[] = {
        {{8, 4096, 64, 64, 4, 64, 64, 0, {0}}, "h4-b64-c64"},
        {{2, 1000, 128, 32, 8, 4096, 128, 1, {0}}, "h8-b4096-c128"}, /* radix sort */
        {{1, 300, 16, 16, 1, 2, 7, 1, {0}}, "h1-b2-c7"},
    };
    clattn__lsh_launch c[CLATTN__TUNE_MAX_CANDIDATES], def;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < 3; j++) {
            const clattn__lsh_problem *p = &cases[i].p;
            size_t n = clattn__lsh_candidates(&devs[j], p, c, CLATTN__TUNE_MAX_CANDIDATES);
            if (clattn__schedule_lsh(&devs[j], p, &def, NULL, 0) != CLATTN_SUCCESS) {
                assert_int_equal(n, 0);
                continue;
            }
            assert_true(n > 1);
            assert_memory_equal(&c[0], &def, sizeof def);
            clattn_tuning_entry key;
            clattn__tune_lsh_key(p, &key);
            assert_string_equal(key.op, "lsh");
            assert_string_equal(key.variant, cases[i].variant);
            assert_int_equal(key.head_dim, p->d);
            assert_int_equal(key.head_dim_v, p->dv);
            assert_int_equal(key.nq_bucket, clattn__tune_bucket(p->n));
            assert_int_equal(key.nk_bucket, key.nq_bucket);
            assert_int_equal(key.causal, p->causal);
            round_trip(ad, c, n, &key, lsh_from, &devs[j], p);
        }
    /* Keys differ by what changes the launch space. */
    clattn_tuning_entry a, b;
    clattn__lsh_problem p = cases[0].p;
    clattn__tune_lsh_key(&p, &a);
    p.chunk_size = 32;
    clattn__tune_lsh_key(&p, &b);
    assert_string_not_equal(a.variant, b.variant);

    /* Entries that do not fit are refused. */
    p = cases[0].p;
    clattn_tuning_entry e;
    clattn__lsh_launch L;
    assert_int_equal(clattn__schedule_lsh(&devs[0], &p, &def, NULL, 0), CLATTN_SUCCESS);
    clattn__tune_lsh_key(&p, &e);
    ad->to_params(&def, &e);
    assert_true(clattn__tune_lsh_from_entry(&devs[0], &p, &e, &L));
    assert_memory_equal(&L, &def, sizeof L);
    const struct {
        const char *name;
        long long value;
    } bad[] = {{"rows", 3}, {"rows", 16}, {"wg", 3}, {"wg", 32}, {"counting_sort", 2},
               {"wg", 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clattn_tuning_entry x = e;
        assert_true(clattn__tune_param_set(&x, bad[i].name, bad[i].value));
        if (clattn__tune_lsh_from_entry(&devs[0], &p, &x, &L))
            fail_msg("lsh entry with %s=%lld accepted", bad[i].name, bad[i].value);
    }
    clattn_tuning_entry missing = e;
    missing.num_params--;
    assert_false(clattn__tune_lsh_from_entry(&devs[0], &p, &missing, &L));
}

/* The adapter table: softmax, linear and LSH are tunable; an operator without an adapter is
 * refused cleanly. */
static void test_adapters(void **state)
{
    (void)state;
    assert_non_null(clattn__tune_adapter_for(CLATTN_OP_SOFTMAX));
    assert_int_equal(clattn__tune_adapter_for(CLATTN_OP_SOFTMAX)->op, CLATTN_OP_SOFTMAX);
    assert_true(clattn__tune_adapter_for(CLATTN_OP_SOFTMAX)->launch_size <=
                CLATTN__TUNE_MAX_LAUNCH);
    assert_int_equal(clattn_tune_supported(CLATTN_OP_SOFTMAX), 1);
    assert_int_equal(clattn_tune_supported(CLATTN_OP_LINEAR), 1);
    assert_int_equal(clattn_tune_supported(CLATTN_OP_LSH), 1);
    assert_int_equal(clattn__tune_adapter_for(CLATTN_OP_LINEAR)->op, CLATTN_OP_LINEAR);
    assert_int_equal(clattn__tune_adapter_for(CLATTN_OP_LSH)->op, CLATTN_OP_LSH);
    assert_true(clattn__tune_adapter_for(CLATTN_OP_LINEAR)->launch_size <=
                CLATTN__TUNE_MAX_LAUNCH);
    assert_true(clattn__tune_adapter_for(CLATTN_OP_LSH)->launch_size <= CLATTN__TUNE_MAX_LAUNCH);
    assert_int_equal(clattn_tune_supported(CLATTN_OP_SSM), 0);
    assert_null(clattn__tune_adapter_for((clattn_operator)99));
    clattn_tune_report r;
    size_t s[4] = {1, 1, 16, 16};
    assert_int_equal(clattn_tune(NULL, CLATTN_OP_SOFTMAX, NULL, s, s, NULL, 1.0, &r),
                     CLATTN_NULL_POINTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_candidates_made_up_devices),
        cmocka_unit_test(test_launch_from_rejects),
        cmocka_unit_test(test_db_round_trip_and_merge),
        cmocka_unit_test(test_db_bad_files_ignored),
        cmocka_unit_test(test_db_unwritable_folder),
        cmocka_unit_test(test_db_reads_format1),
        cmocka_unit_test(test_db_format2_generic),
        cmocka_unit_test(test_linear_keys_and_params),
        cmocka_unit_test(test_lsh_keys_and_params),
        cmocka_unit_test(test_adapters),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
