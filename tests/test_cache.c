/* test_cache.c - the program cache on a real device: in-memory hits within a context, binaries
 * written to and loaded from CLATTN_CACHE_DIR by a later context, corrupted cache files detected,
 * rebuilt and rewritten, unusable cache folders and CLATTN_PROGRAM_CACHE=off tolerated. Every
 * baked plan is also run and checked against the double-precision reference.
 *
 * Each test gets a fresh folder from mkdtemp, set in CLATTN_CACHE_DIR before its contexts are
 * created (a context reads the folder once, at creation). Timings of a cold build, a disk load and
 * a memory hit are printed, not asserted (PoCL's own kernel cache may serve the "cold" build). */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "clattn.h"
#include "test_util.h"
#include "reference/ref_softmax.h"

enum { B = 1, HQ = 2, HK = 1, NQ = 9, NK = 21, D = 16 };
#define Q_ELEMS ((size_t)B * HQ * NQ * D)
#define K_ELEMS ((size_t)B * HK * NK * D)
#define L_ELEMS ((size_t)B * HQ * NQ)

typedef struct stats {
    unsigned builds, loads, hits;
} stats;

static stats get_stats(const clattn_context *ctx)
{
    stats s;
    clattn_context_cache_stats(ctx, &s.builds, &s.loads, &s.hits);
    return s;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char cache_dir[256];

static void fresh_cache_dir(void)
{
    snprintf(cache_dir, sizeof cache_dir, "%s/clattn-cache-test-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(cache_dir))
        fail_msg("mkdtemp(%s) failed", cache_dir);
    assert_int_equal(setenv("CLATTN_CACHE_DIR", cache_dir, 1), 0);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Lists up to `cap` names in dir matching prog-*.bin; counts other entries in *others. */
static size_t list_cache(const char *dir, char names[][300], size_t cap, size_t *others)
{
    size_t n = 0;
    if (others)
        *others = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, "prog-", 5) == 0 && len > 9 &&
            strcmp(e->d_name + len - 4, ".bin") == 0) {
            if (n < cap)
                snprintf(names[n], sizeof names[n], "%s/%s", dir, e->d_name);
            n++;
        } else if (others) {
            (*others)++;
        }
    }
    closedir(d);
    return n;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)*len + 1);
    if (buf && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void spill(const char *path, const unsigned char *buf, long len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)len, f), (size_t)len);
    assert_int_equal(fclose(f), 0);
}

/* A new context (a missing device fails the test, never skips it): it reads CLATTN_CACHE_DIR and
 * CLATTN_PROGRAM_CACHE once, now. */
static clattn_context *new_context(void) { return tu_context(); }

static clattn_plan *bake(clattn_context *ctx, size_t d, double *ms)
{
    size_t qs[4] = {B, HQ, NQ, d}, ks[4] = {B, HK, NK, d};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = 1;
    clattn_plan *p = NULL;
    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, qs, ks, ks, &p);
    if (ms)
        *ms = now_ms() - t0;
    if (st != CLATTN_SUCCESS)
        fail_msg("bake D=%zu: %s (%s)", d, clattn_status_string(st),
                 clattn_context_last_error(ctx));
    return p;
}

/* Runs the plan (D = 16 shapes) on NaN-poisoned outputs and compares with the reference
 * (TU_TOL_FP32: fp32 against fp64 on values of order 1). */
static void run_and_check(clattn_context *ctx, clattn_plan *plan)
{
    float ro[Q_ELEMS], rl[L_ELEMS];
    uint64_t seed = 777;
    float *hq = tu_random(Q_ELEMS, 1.0f, &seed), *hk = tu_random(K_ELEMS, 1.0f, &seed);
    float *hv = tu_random(K_ELEMS, 1.0f, &seed);
    float *out = tu_poisoned(Q_ELEMS), *lse = tu_poisoned(L_ELEMS);
    cl_mem bq = tu_buffer(ctx, Q_ELEMS * sizeof(float), hq);
    cl_mem bk = tu_buffer(ctx, K_ELEMS * sizeof(float), hk);
    cl_mem bv = tu_buffer(ctx, K_ELEMS * sizeof(float), hv);
    cl_mem bo = tu_buffer(ctx, Q_ELEMS * sizeof(float), out);
    cl_mem bl = tu_buffer(ctx, L_ELEMS * sizeof(float), lse);
    clattn_tensor tq = clattn_tensor_make(bq, B, HQ, NQ, D);
    clattn_tensor tk = clattn_tensor_make(bk, B, HK, NK, D);
    clattn_tensor tv = clattn_tensor_make(bv, B, HK, NK, D);
    clattn_tensor to = clattn_tensor_make(bo, B, HQ, NQ, D);
    clattn_tensor tl = clattn_tensor_make(bl, B, HQ, NQ, 1);
    tu_expect_status(ctx, clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL),
                     CLATTN_SUCCESS, "enqueue of a baked plan");
    tu_read(ctx, bo, Q_ELEMS * sizeof(float), out);
    tu_read(ctx, bl, L_ELEMS * sizeof(float), lse);
    ref_softmax(hq, hk, hv, ro, rl, B, HQ, HK, NQ, NK, D, 1.0 / sqrt((double)D), 1, NULL);
    tu_check_close(out, ro, Q_ELEMS, TU_TOL_FP32, "out of a cached program");
    tu_check_close(lse, rl, L_ELEMS, TU_TOL_FP32, "lse of a cached program");
    free(hq);
    free(hk);
    free(hv);
    free(out);
    free(lse);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bo);
    clReleaseMemObject(bl);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("CLATTN_PROGRAM_CACHE");
    unsetenv("CLATTN_KERNEL_DIR");
    cache_dir[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (cache_dir[0])
        remove_dir(cache_dir);
    unsetenv("CLATTN_CACHE_DIR");
    unsetenv("CLATTN_PROGRAM_CACHE");
    return 0;
}

/* A bakes (source), A again (memory), B (disk); files appear; different options, different file. */
static void test_build_memory_disk(void **state)
{
    (void)state;
    fresh_cache_dir();
    double cold, hit, load;

    clattn_context *a = new_context();
    clattn_plan *p1 = bake(a, D, &cold);
    stats s1 = get_stats(a);
    assert_true(s1.builds >= 1);
    assert_int_equal(s1.loads, 0); /* the folder was empty */
    run_and_check(a, p1);

    clattn_plan *p2 = bake(a, D, &hit);
    stats s2 = get_stats(a);
    assert_int_equal(s2.builds, s1.builds);
    assert_int_equal(s2.loads, s1.loads);
    assert_true(s2.hits > s1.hits);
    run_and_check(a, p2);

    char names[8][300];
    size_t others = 0;
    size_t nfiles = list_cache(cache_dir, names, 8, &others);
    assert_true(nfiles >= 1);
    assert_int_equal(others, 0); /* no temporary files left behind */
    for (size_t i = 0; i < nfiles && i < 8; i++)
        assert_true(file_size(names[i]) > 36);

    clattn_context *b = new_context();
    clattn_plan *p3 = bake(b, D, &load);
    stats s3 = get_stats(b);
    assert_int_equal(s3.builds, 0);
    assert_true(s3.loads >= 1);
    run_and_check(b, p3);

    /* other options (D = 32) key another program: one more file */
    clattn_plan *p4 = bake(b, 32, NULL);
    assert_true(get_stats(b).builds >= 1);
    size_t nfiles2 = list_cache(cache_dir, names, 8, &others);
    assert_true(nfiles2 > nfiles);
    assert_int_equal(others, 0);

    clattn_device_info info;
    clattn_context_get_device_info(a, &info);
    print_message("[%s] bake D=%d: cold build %.1f ms, disk load %.1f ms, memory hit %.3f ms "
                  "(%zu cache file(s), %ld bytes each)\n",
                  info.name, D, cold, load, hit, nfiles, file_size(names[0]));

    clattn_plan_destroy(p1);
    clattn_plan_destroy(p2);
    clattn_plan_destroy(p3);
    clattn_plan_destroy(p4);
    clattn_context_destroy(a);
    clattn_context_destroy(b);
}

typedef enum corruption { TRUNCATE_HALF, EMPTY, HEADER_ONLY, FLIP_PAYLOAD, FLIP_HEADER, GARBAGE,
                          NCORRUPT } corruption;
static const char *const corruption_name[] = {"truncated to half", "emptied", "header only",
                                              "payload byte flipped", "header byte flipped",
                                              "overwritten with garbage"};

static void corrupt(const char *path, corruption how)
{
    long len = 0;
    unsigned char *buf = slurp(path, &len);
    assert_non_null(buf);
    assert_true(len > 40);
    switch (how) {
    case TRUNCATE_HALF:
        spill(path, buf, len / 2);
        break;
    case EMPTY:
        spill(path, buf, 0);
        break;
    case HEADER_ONLY:
        spill(path, buf, 36);
        break;
    case FLIP_PAYLOAD:
        buf[len - 1 - (len - 36) / 3] ^= 0x5a;
        spill(path, buf, len);
        break;
    case FLIP_HEADER:
        buf[14] ^= 0x01; /* inside the stored key */
        spill(path, buf, len);
        break;
    case GARBAGE:
        for (long i = 0; i < len; i++)
            buf[i] = (unsigned char)(i * 131 + 7);
        spill(path, buf, len);
        break;
    default:
        break;
    }
    free(buf);
}

/* Each kind of damage: a new context rebuilds from source, computes correctly and rewrites the
 * file, which the next context then loads. */
static void test_corrupted_files_are_rebuilt(void **state)
{
    (void)state;
    fresh_cache_dir();
    clattn_context *a = new_context();
    clattn_plan *p = bake(a, D, NULL);
    clattn_plan_destroy(p);
    clattn_context_destroy(a);

    char names[8][300];
    size_t nfiles = list_cache(cache_dir, names, 8, NULL);
    assert_true(nfiles >= 1 && nfiles <= 8);

    for (int how = 0; how < NCORRUPT; how++) {
        long good_len = file_size(names[0]);
        for (size_t i = 0; i < nfiles; i++)
            corrupt(names[i], (corruption)how);

        clattn_context *c = new_context();
        p = bake(c, D, NULL);
        stats sc = get_stats(c);
        if (sc.builds < 1 || sc.loads != 0)
            fail_msg("cache file %s: builds %u, disk loads %u (want a rebuild)",
                     corruption_name[how], sc.builds, sc.loads);
        run_and_check(c, p);
        clattn_plan_destroy(p);
        clattn_context_destroy(c);

        size_t others = 0;
        assert_int_equal(list_cache(cache_dir, names, 8, &others), nfiles);
        assert_int_equal(others, 0);
        if (file_size(names[0]) != good_len)
            fail_msg("after '%s' the file was not rewritten (%ld bytes, was %ld)",
                     corruption_name[how], file_size(names[0]), good_len);

        clattn_context *d = new_context();
        p = bake(d, D, NULL);
        stats sd = get_stats(d);
        if (sd.builds != 0 || sd.loads < 1)
            fail_msg("after '%s' and a rebuild: builds %u, disk loads %u (want a disk load)",
                     corruption_name[how], sd.builds, sd.loads);
        run_and_check(d, p);
        clattn_plan_destroy(p);
        clattn_context_destroy(d);
    }
}

/* A folder that cannot be created or written: the cache stays in memory, results are right. */
static void test_unusable_cache_dir(void **state)
{
    (void)state;
    fresh_cache_dir(); /* holds a regular file to put a path under */
    char file[400], under[500];
    snprintf(file, sizeof file, "%s/plain-file", cache_dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("not a folder\n", fp);
    fclose(fp);
    snprintf(under, sizeof under, "%s/sub/dir", file);

    const char *dirs[] = {"/proc/forbidden", under, "/proc/forbidden/deeper/still"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        assert_int_equal(setenv("CLATTN_CACHE_DIR", dirs[i], 1), 0);
        clattn_context *c = new_context();
        clattn_plan *p = bake(c, D, NULL);
        stats s = get_stats(c);
        if (s.builds < 1 || s.loads != 0)
            fail_msg("cache dir %s: builds %u, loads %u", dirs[i], s.builds, s.loads);
        run_and_check(c, p);
        clattn_plan *p2 = bake(c, D, NULL); /* memory cache still works */
        assert_true(get_stats(c).hits >= 1);
        assert_int_equal(get_stats(c).builds, s.builds);
        clattn_plan_destroy(p2);
        clattn_plan_destroy(p);
        clattn_context_destroy(c);
    }
    assert_int_equal(file_size(file), 13); /* the regular file was left alone */
    struct stat st;
    assert_true(stat("/proc/forbidden", &st) != 0);
    setenv("CLATTN_CACHE_DIR", cache_dir, 1);
}

/* CLATTN_PROGRAM_CACHE=off: nothing read, nothing written. */
static void test_program_cache_off(void **state)
{
    (void)state;
    fresh_cache_dir();
    assert_int_equal(setenv("CLATTN_PROGRAM_CACHE", "off", 1), 0);
    clattn_context *a = new_context();
    clattn_plan *p = bake(a, D, NULL);
    assert_true(get_stats(a).builds >= 1);
    run_and_check(a, p);
    clattn_plan_destroy(p);
    clattn_context_destroy(a);
    char names[4][300];
    size_t others = 0;
    assert_int_equal(list_cache(cache_dir, names, 4, &others), 0);
    assert_int_equal(others, 0);

    /* fill the folder with the cache on, then turn it off: no disk loads */
    unsetenv("CLATTN_PROGRAM_CACHE");
    clattn_context *b = new_context();
    p = bake(b, D, NULL);
    clattn_plan_destroy(p);
    clattn_context_destroy(b);
    assert_true(list_cache(cache_dir, names, 4, NULL) >= 1);

    assert_int_equal(setenv("CLATTN_PROGRAM_CACHE", "off", 1), 0);
    clattn_context *c = new_context();
    p = bake(c, D, NULL);
    stats s = get_stats(c);
    assert_true(s.builds >= 1);
    assert_int_equal(s.loads, 0);
    run_and_check(c, p);
    clattn_plan_destroy(p);
    clattn_context_destroy(c);
}

/* Timings of one program: a truly cold build (the kernel sources are copied with a unique constant
 * appended, so neither clattn's nor the driver's own cache knows them), a disk load in a new
 * context and a memory hit. Printed, not asserted. CLATTN_TEST_KERNEL_DIR (set by CMake) names
 * kernels_cl/; without it the embedded sources are timed and the "cold" build may be warm. */
static void copy_with_nonce(const char *from_dir, const char *to_dir, const char *name,
                            const char *nonce)
{
    char src[600], dst[600];
    long len = 0;
    snprintf(src, sizeof src, "%s/%s", from_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", to_dir, name);
    unsigned char *buf = slurp(src, &len);
    if (!buf)
        fail_msg("cannot read %s", src);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)len, f), (size_t)len);
    if (nonce) /* code, not a comment: drivers may hash the preprocessed source */
        fprintf(f, "\n__constant int clattn_test_nonce_%s = 1;\n", nonce);
    assert_int_equal(fclose(f), 0);
    free(buf);
}

static void test_timings(void **state)
{
    (void)state;
    char kdir[300] = "";
    fresh_cache_dir();
#ifdef CLATTN_TEST_KERNEL_DIR
    snprintf(kdir, sizeof kdir, "%s/kernels", cache_dir);
    assert_int_equal(mkdir(kdir, 0755), 0);
    char nonce[128];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(nonce, sizeof nonce, "%ld_%ld_%ld", (long)getpid(), (long)ts.tv_sec,
             (long)ts.tv_nsec);
    DIR *d = opendir(CLATTN_TEST_KERNEL_DIR);
    if (!d)
        fail_msg("cannot open %s", CLATTN_TEST_KERNEL_DIR);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if ((n > 3 && strcmp(e->d_name + n - 3, ".cl") == 0) ||
            (n > 4 && strcmp(e->d_name + n - 4, ".clh") == 0))
            copy_with_nonce(CLATTN_TEST_KERNEL_DIR, kdir, e->d_name,
                            strcmp(e->d_name, "common.clh") == 0 ? nonce : NULL);
    }
    closedir(d);
    assert_int_equal(setenv("CLATTN_KERNEL_DIR", kdir, 1), 0);
#endif
    double cold, load, hit;
    clattn_context *a = new_context();
    clattn_plan *p1 = bake(a, D, &cold);
    assert_true(get_stats(a).builds >= 1);
    run_and_check(a, p1);
    clattn_plan *p2 = bake(a, D, &hit);
    clattn_context *b = new_context();
    clattn_plan *p3 = bake(b, D, &load);
    stats sb = get_stats(b);
    assert_int_equal(sb.builds, 0);
    assert_true(sb.loads >= 1);
    run_and_check(b, p3);
    clattn_device_info info;
    clattn_context_get_device_info(a, &info);
    print_message("[%s] one plan (D=%d%s): cold build %.1f ms, disk load %.1f ms, memory hit "
                  "%.3f ms (bake times: program + kernels + scratch)\n",
                  info.name, D, kdir[0] ? ", sources made unique" : ", embedded sources", cold,
                  load, hit);
    clattn_plan_destroy(p1);
    clattn_plan_destroy(p2);
    clattn_plan_destroy(p3);
    clattn_context_destroy(a);
    clattn_context_destroy(b);
    unsetenv("CLATTN_KERNEL_DIR");
    if (kdir[0]) {
        remove_dir(kdir);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_build_memory_disk),
        T(test_corrupted_files_are_rebuilt),
        T(test_unusable_cache_dir),
        T(test_program_cache_off),
        T(test_timings),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
