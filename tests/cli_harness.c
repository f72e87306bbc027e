/* The `clattn` tool suites' shared helpers (see cli_harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clattn.h"
#include "cli_harness.h"
#include "test_util.h"
#include "npy.h"
#include "reference/ref_softmax.h"

static char dir[64];

int cli_dir_make(void)
{
    snprintf(dir, sizeof dir, "/tmp/clattn-cli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

int cli_dir_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *at(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Lines the OpenCL implementation itself prints on stderr while it compiles a kernel the first
 * time (PoCL's clang: "3 warnings generated."; Mesa's rusticl: "MESA: warning: ..."): not the
 * tool's output, so the one-line checks skip them (they appear only on a cold kernel cache). */
static int foreign_line(const char *l)
{
    size_t n = strlen(l);
    while (n && (l[n - 1] == '\n' || l[n - 1] == '\r'))
        n--;
    static const char *const tails[] = {" warning generated.", " warnings generated."};
    for (int i = 0; i < 2; i++) {
        size_t t = strlen(tails[i]);
        if (n > t && memcmp(l + n - t, tails[i], t) == 0)
            return 1;
    }
    return strncmp(l, "MESA: warning:", 14) == 0;
}

/* Removes foreign_line lines from a captured stderr, in place. */
static void drop_foreign(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        char *eol = strchr(r, '\n');
        size_t n = eol ? (size_t)(eol - r) + 1 : strlen(r);
        char save = r[n];
        r[n] = '\0';
        int drop = foreign_line(r);
        r[n] = save;
        if (!drop) {
            memmove(w, r, n);
            w += n;
        }
        r += n;
    }
    *w = '\0';
}

/* Runs the tool with `args`; returns its exit code and the first line of its stderr. */
int run(const char *args, char *err_line, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>%s/stderr.txt >/dev/null", dir, CLATTN_CLI, args,
             dir);
    int rc = system(cmd);
    err_line[0] = '\0';
    FILE *f = fopen(at("stderr.txt"), "r");
    if (f) {
        char line[1024];
        int lines = 0;
        while (fgets(line, sizeof line, f)) {
            if (foreign_line(line))
                continue;
            if (lines++ == 0)
                snprintf(err_line, len, "%s", line);
        }
        /* a one-line error: nothing may follow */
        if (lines > 1)
            fail_msg("'%s': %d lines on stderr, the first '%s'", args, lines, err_line);
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void write_f32(const char *name, const float *x, int ndim, const size_t *shape)
{
    char err[256];
    assert_int_equal(npy_write_f32(at(name), x, ndim, shape, err, sizeof err), 0);
}

void write_typed(const char *name, const float *x, int dt, int ndim, const size_t *shape,
                 size_t n)
{
    char err[256];
    void *p = tu_pack(x, n, (clattn_dtype)dt);
    npy_dtype nt = dt == CLATTN_F32 ? NPY_F32 : dt == CLATTN_F16 ? NPY_F16 : NPY_U16;
    if (npy_write(at(name), nt, p, ndim, shape, err, sizeof err) != 0)
        fail_msg("%s: %s", name, err);
    free(p);
}

void write_raw(const char *name, const void *bytes, size_t n)
{
    FILE *f = fopen(at(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

void make_inputs(float *q, float *k, float *v)
{
    uint64_t seed = 5;
    size_t n = (size_t)B * H * N * D, shape[4] = {B, H, N, D};
    ref_fill_uniform(q, n, 1, &seed);
    ref_fill_uniform(k, n, 1, &seed);
    ref_fill_uniform(v, n, 1, &seed);
    write_f32("q.npy", q, 4, shape);
    write_f32("k.npy", k, 4, shape);
    write_f32("v.npy", v, 4, shape);
}

/* Each bad input: exit 1 or 2, one "clattn: " line naming the problem, no output file. */
void expect_failure(const char *args, const char *needle)
{
    char line[512];
    remove(at("bad_out.npy"));
    int rc = run(args, line, sizeof line);
    if (rc != 1 && rc != 2)
        fail_msg("'%s': exit %d, want 1 or 2", args, rc);
    if (strncmp(line, "clattn: ", 8) != 0 || !strstr(line, needle))
        fail_msg("'%s': stderr '%s' lacks '%s'", args, line, needle);
    assert_false(exists(at("bad_out.npy")));
}

/* Runs the tool with `env` (assignments, may be "") and `args`; captures stdout and stderr. */
int run_capture(const char *env, const char *args, char *out, size_t olen, char *err,
                       size_t elen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s %s >%s/stdout.txt 2>%s/stderr.txt", dir, env,
             CLATTN_CLI, args, dir, dir);
    int rc = system(cmd);
    const char *names[2] = {"stdout.txt", "stderr.txt"};
    char *bufs[2] = {out, err};
    size_t lens[2] = {olen, elen};
    for (int i = 0; i < 2; i++) {
        bufs[i][0] = '\0';
        FILE *f = fopen(at(names[i]), "rb");
        if (f) {
            size_t n = fread(bufs[i], 1, lens[i] - 1, f);
            bufs[i][n] = '\0';
            fclose(f);
        }
    }
    drop_foreign(err);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}
