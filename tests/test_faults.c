/* Fault-injection sweep over the `clattn` tool (label "faults").
 *
 *   test_faults [--strict] CASE   sweep one case (softmax, linear, ssm_fft, ...; see `cases`);
 *                             --strict fails the waived points too (see `waivers`)
 *   test_faults --inputs DIR  only write every case's .npy inputs into DIR (to reproduce by hand:
 *                             LD_PRELOAD=libclfault.so CLFAULT_AT=k clattn run ...)
 *
 * A case runs the tool at a tiny shape under the clfault shim (tests/shim/clfault.c): once to
 * warm the caches, once counting the wrapped OpenCL calls (N) and keeping the outputs, then for
 * every k = 1..N with the k-th call failing. Each faulted run must either exit 0 with outputs
 * byte-identical to the clean run's (the library recovered) or exit non-zero with exactly one
 * "clattn: ..." line on stderr; never a signal, a sanitizer report or a hang (RUN_TIMEOUT_S).
 * Every bad point is reported with the case, k, the failing function and the run's stderr.
 * The tool and the shim come from CMake (CLATTN_CLI, CLATTN_FAULT_SHIM). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "npy.h"

/* A run with a warm cache takes well under a second; a fault that forces a rebuild a few
 * seconds. Beyond this a run is a hang. */
#define RUN_TIMEOUT_S 120

typedef struct fault_case {
    const char *name;
    const char *args;    /* after the tool's name; outputs are the -o/--lse files below */
    const char *outputs; /* space-separated output files compared with the clean run */
} fault_case;

/* Tiny shapes (see write_inputs): every operator's CLI path once, plus the library-backed
 * variants (CLBlast GEMMs, clFFT transforms) whose error paths differ. */
static const fault_case cases[] = {
    {"softmax", "run softmax --q q.npy --k k.npy --v v.npy -o out.npy --lse lse.npy --causal",
     "out.npy lse.npy"},
    {"softmax_naive", "run softmax --q q.npy --k k.npy --v v.npy -o out.npy --algo naive",
     "out.npy"},
    {"linear",
     "run linear --q q.npy --k k.npy --v v.npy -o out.npy --causal --feature-map favor "
     "--features 16 --seed 3",
     "out.npy"},
    {"linear_gemm", "run linear --q q.npy --k k.npy --v v.npy -o out.npy --algo gemm", "out.npy"},
    {"rpe", "run rpe --q q.npy --k k.npy --v v.npy --bias bias.npy -o out.npy --algo direct",
     "out.npy"},
    {"rpe_fft", "run rpe --q q.npy --k k.npy --v v.npy --bias bias.npy -o out.npy --algo fft",
     "out.npy"},
    {"lsh",
     "run lsh --q q.npy --v v.npy -o out.npy --hashes 2 --buckets 4 --chunk 4 --seed 1 "
     "--lse lse.npy",
     "out.npy lse.npy"},
    {"routing", "run routing --q q.npy --k k.npy --v v.npy -o out.npy --clusters 2 --seed 9",
     "out.npy"},
    {"ssm", "run ssm --u u.npy --A A.npy --Ct Ct.npy --log-dt dt.npy --D D.npy -o out.npy "
            "--algo direct",
     "out.npy"},
    {"ssm_fft", "run ssm --u u.npy --A A.npy --Ct Ct.npy --log-dt dt.npy --D D.npy -o out.npy "
                "--algo fft",
     "out.npy"},
    {"gss", "run gss --x x.npy --weights gw -o out.npy --algo direct", "out.npy"},
    {"mgk", "run mgk --q q.npy --k mk.npy --v v.npy --pi pi.npy -o out.npy --lse lse.npy --causal",
     "out.npy lse.npy"},
    {"deq", "run deq --x x.npy --seed 3 --heads 2 --solver anderson --tol 3 --max-iter 2 "
            "-o out.npy",
     "out.npy"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static char dir[256];

static const char *at(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- inputs ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(void) /* in [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static int write_array(const char *name, int ndim, const size_t *shape, float lo, float hi)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *x = malloc(n * sizeof *x);
    if (!x)
        return -1;
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * 0.5f * (uniform() + 1.0f);
    char err[256];
    int rc = npy_write_f32(at(name), x, ndim, shape, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "writing %s: %s\n", name, err);
    free(x);
    return rc;
}

/* Attention inputs [1, 2, 8, 8] (bias [2, 15]); SSM u [1, 2, 16], A and Ct [2, 4, 2]. */
static int write_inputs(void)
{
    const size_t qkv[4] = {1, 2, 8, 8}, bias[2] = {2, 15};
    const size_t u[3] = {1, 2, 16}, a[3] = {2, 4, 2}, h[1] = {2};
    /* GSS: x [1, 8, 4] (E 4), F 6, the DSS above (H 2, N 4) in the folder gw, one bias. */
    const size_t x[3] = {1, 8, 4}, wv[2] = {4, 6}, wu[2] = {4, 2}, wo1[2] = {2, 6},
                 wo2[2] = {6, 4}, e[1] = {4};
    if ((mkdir(at("gw"), 0755) != 0 && errno != EEXIST) || write_array("x.npy", 3, x, -1, 1) ||
        write_array("gw/Ct.npy", 3, a, -1, 1) || write_array("gw/log_dt.npy", 1, h, -3, -1) ||
        write_array("gw/D.npy", 1, h, -1, 1) || write_array("gw/w_v.npy", 2, wv, -0.5f, 0.5f) ||
        write_array("gw/w_u.npy", 2, wu, -0.5f, 0.5f) ||
        write_array("gw/w_o1.npy", 2, wo1, -0.5f, 0.5f) ||
        write_array("gw/w_o2.npy", 2, wo2, -0.5f, 0.5f) || write_array("gw/b_o2.npy", 1, e, -1, 1))
        return -1;
    if (write_array("q.npy", 4, qkv, -1, 1) || write_array("k.npy", 4, qkv, -1, 1) ||
        write_array("v.npy", 4, qkv, -1, 1) || write_array("bias.npy", 2, bias, -1, 0) ||
        write_array("u.npy", 3, u, -1, 1) || write_array("Ct.npy", 3, a, -1, 1) ||
        write_array("dt.npy", 1, h, -3, -1) || write_array("D.npy", 1, h, -1, 1))
        return -1;
    /* MGK: k [1, 2, R = 2, 8, 8], pi [2, 2, 8] in (0, 1]. */
    const size_t mk[5] = {1, 2, 2, 8, 8}, pi[3] = {2, 2, 8};
    if (write_array("mk.npy", 5, mk, -1, 1) || write_array("pi.npy", 3, pi, 0.1f, 1))
        return -1;
    /* A: negative real parts (a stable SSM), any imaginary parts. */
    float av[16];
    for (int i = 0; i < 16; i++)
        av[i] = i % 2 == 0 ? -0.5f - 0.25f * (float)(i / 2) : (float)(i / 2);
    char err[256];
    if (npy_write_f32(at("A.npy"), av, 3, a, err, sizeof err) != 0 ||
        npy_write_f32(at("gw/A.npy"), av, 3, a, err, sizeof err) != 0) {
        fprintf(stderr, "writing A.npy: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- one run of the tool ---- */

typedef struct run_result {
    int exited, code, signal, timed_out;
    char *err; /* its stderr (malloc'd) */
} run_result;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap + 1);
    while (s) {
        size_t got = fread(s + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *t = realloc(s, cap * 2 + 1);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

/* Runs the tool with the case's arguments, the shim preloaded and `fault_at` (0: none). */
static int run_tool(const fault_case *c, unsigned long fault_at, int count, run_result *r)
{
    memset(r, 0, sizeof *r);
    char args[1024], *argv[64];
    int argc = 0;
    argv[argc++] = (char *)CLATTN_CLI;
    snprintf(args, sizeof args, "%s", c->args);
    for (char *tok = strtok(args, " "); tok && argc < 63; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;

    /* Outputs of an earlier run must not pass for this one's. */
    char outs[256];
    snprintf(outs, sizeof outs, "%s", c->outputs);
    for (char *tok = strtok(outs, " "); tok; tok = strtok(NULL, " "))
        remove(at(tok));
    remove(at("report.txt"));

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        struct rlimit no_core = {0, 0}; /* crashing points are expected: no core files */
        setrlimit(RLIMIT_CORE, &no_core);
        char at_s[32], preload[1200];
        snprintf(at_s, sizeof at_s, "%lu", fault_at);
        const char *old = getenv("LD_PRELOAD");
        snprintf(preload, sizeof preload, "%s%s%s", CLATTN_FAULT_SHIM, old && *old ? ":" : "",
                 old && *old ? old : "");
        setenv("LD_PRELOAD", preload, 1);
        setenv("CLFAULT_AT", at_s, 1);
        setenv("CLFAULT_COUNT", count ? "1" : "0", 1);
        setenv("CLFAULT_REPORT", at("report.txt"), 1);
        int in = open("/dev/null", O_RDONLY), out = open("/dev/null", O_WRONLY),
            er = open(at("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (chdir(dir) != 0 || in < 0 || out < 0 || er < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(er, 2);
        execv(CLATTN_CLI, argv);
        _exit(127);
    }
    setpgid(pid, pid);
    double t0 = now_s();
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_s() - t0 > RUN_TIMEOUT_S) {
            r->timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    r->exited = WIFEXITED(st);
    r->code = r->exited ? WEXITSTATUS(st) : -1;
    r->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    r->err = slurp(at("stderr.txt"), NULL);
    if (!r->err)
        r->err = strdup("");
    return 0;
}

/* The value after `key ` on a line of the shim's report ("calls N", "fail K FN ERR"). */
static int report_field(const char *key, char *out, size_t size)
{
    char *rep = slurp(at("report.txt"), NULL);
    int found = 0;
    out[0] = '\0';
    if (rep) {
        size_t kl = strlen(key);
        for (char *line = rep; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                size_t n = strcspn(line + kl + 1, "\n");
                if (n >= size)
                    n = size - 1;
                memcpy(out, line + kl + 1, n);
                out[n] = '\0';
                found = 1;
                break;
            }
        }
    }
    free(rep);
    return found;
}

/* Reads every output file of the case into one buffer (NULL when one is missing). */
static char *read_outputs(const fault_case *c, size_t *len)
{
    char outs[256];
    snprintf(outs, sizeof outs, "%s", c->outputs);
    char *all = NULL;
    size_t total = 0;
    for (char *tok = strtok(outs, " "); tok; tok = strtok(NULL, " ")) {
        size_t n = 0;
        char *s = slurp(at(tok), &n);
        if (!s) {
            free(all);
            return NULL;
        }
        char *t = realloc(all, total + n + 1);
        if (!t) {
            free(s);
            free(all);
            return NULL;
        }
        all = t;
        memcpy(all + total, s, n);
        total += n;
        free(s);
    }
    *len = total;
    return all;
}

static int has_sanitizer_report(const char *s)
{
    return strstr(s, "AddressSanitizer") || strstr(s, "LeakSanitizer") ||
           strstr(s, "UndefinedBehaviorSanitizer") || strstr(s, "runtime error:") ||
           strstr(s, "ThreadSanitizer");
}

static int contains(const char *s, size_t n, const char *what)
{
    size_t w = strlen(what);
    for (size_t i = 0; i + w <= n; i++)
        if (memcmp(s + i, what, w) == 0)
            return 1;
    return 0;
}

/* Lines that CLBlast 1.5 and clFFT 2.12 print to stderr themselves when an OpenCL call fails
 * inside them; neither offers a way to silence them, so they may accompany the tool's line. */
static int third_party_line(const char *line, size_t n)
{
    static const char *const prefixes[] = {"CLBlast: ", "OPENCL_V<", "\t\t\tBUILD LOG"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (n >= strlen(prefixes[i]) && strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    /* clFFT: "FFTGeneratedStockhamAction::compileKernels failed", "FFT...() failed!", and the
     * rule of asterisks around a build log. */
    if (n >= 3 && strncmp(line, "FFT", 3) == 0 && contains(line, n, " failed"))
        return 1;
    return n == 0 || strspn(line, "*") == n;
}

/* Exactly one "clattn: ..." line; any other line is one of the libraries' own (counted in
 * *noise). */
static int one_clean_line(const char *s, int *noise)
{
    int tool = 0, other = 0;
    *noise = 0;
    for (const char *line = s; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (!end)
            return 0; /* an unterminated line */
        if (n > 8 && strncmp(line, "clattn: ", 8) == 0)
            tool++;
        else if (third_party_line(line, n))
            (*noise)++;
        else
            other++;
        line = end + 1;
    }
    return tool == 1 && other == 0;
}

/* Fault points whose outcome clattn cannot control: calls whose failure the library making them
 * discards, then carries on as if they had succeeded. Matched on the shim's "fail" record (the
 * calling object and the nearest exported symbol before the call site). Such a point is still
 * run and reported (WAIVED), but does not fail the sweep.
 *   - clFFT 2.12's clfftBakePlan ignores the status of FFTPlan::ConstructAndEnqueueConstantBuffers
 *     (plan.cpp): when that blocking clEnqueueWriteBuffer of the plan's constant buffer fails, the
 *     plan is marked baked and its kernels later read an uninitialised batch count, touching rows
 *     beyond the buffers (heap corruption, SIGSEGV in a PoCL worker in pocl_broadcast, or wrong
 *     output). No clFFT API exposes that buffer or the failure.
 *   - clFFT 2.12's FFTRepo::getclProgram ignores the status of its clGetProgramInfo
 *     (CL_PROGRAM_CONTEXT) and then reports the cached program missing; compileKernels builds a
 *     second one and FFTRepo::setclProgram's assert(NULL == p) aborts. */
static const struct {
    const char *object, *symbol, *why;
} waivers[] = {
    {"libclFFT", "ConstructAndEnqueueConstantBuffers", "clfftBakePlan discards this status"},
    {"libclFFT", "getclProgram", "FFTRepo::getclProgram discards this status"},
};

static int strict; /* --strict: no waivers */

static const char *waived(const char *fail_record)
{
    if (strict)
        return NULL;
    for (size_t i = 0; i < sizeof waivers / sizeof waivers[0]; i++)
        if (strstr(fail_record, waivers[i].object) && strstr(fail_record, waivers[i].symbol))
            return waivers[i].why;
    return NULL;
}

static int sweep(const fault_case *c)
{
    run_result r;
    double t0 = now_s();
    char calls[64], func[512];

    /* Warm-up (kernel caches), then the counted clean run that sets the expected outputs. */
    for (int pass = 0; pass < 2; pass++) {
        if (run_tool(c, 0, 1, &r) != 0) {
            fprintf(stderr, "faults %s: cannot run %s\n", c->name, CLATTN_CLI);
            return 1;
        }
        if (!r.exited || r.code != 0) {
            fprintf(stderr, "faults %s: the clean run failed (exit %d, signal %d):\n%s", c->name,
                    r.code, r.signal, r.err);
            free(r.err);
            return 1;
        }
        free(r.err);
    }
    if (!report_field("calls", calls, sizeof calls)) {
        fprintf(stderr, "faults %s: the shim reported no call (is %s preloadable?)\n", c->name,
                CLATTN_FAULT_SHIM);
        return 1;
    }
    unsigned long n = strtoul(calls, NULL, 10);
    size_t ref_len = 0;
    char *ref = read_outputs(c, &ref_len);
    if (!ref) {
        fprintf(stderr, "faults %s: the clean run wrote no output\n", c->name);
        return 1;
    }
    printf("faults %s: %lu wrapped OpenCL calls in a clean run: %s\n", c->name, n, c->args);
    fflush(stdout);

    unsigned long errors = 0, recoveries = 0, bad = 0, noisy = 0, waived_points = 0;
    for (unsigned long k = 1; k <= n; k++) {
        if (run_tool(c, k, 0, &r) != 0) {
            fprintf(stderr, "faults %s: cannot run the tool at k=%lu\n", c->name, k);
            free(ref);
            return 1;
        }
        if (!report_field("fail", func, sizeof func))
            snprintf(func, sizeof func, "none: the run made fewer than %lu calls", k);
        const char *why = NULL;
        int noise = 0;
        if (r.timed_out)
            why = "hang (killed after the timeout)";
        else if (r.signal)
            why = "killed by a signal";
        else if (has_sanitizer_report(r.err))
            why = "sanitizer report";
        else if (r.code == 0) {
            size_t len = 0;
            char *got = read_outputs(c, &len);
            if (!got || len != ref_len || memcmp(got, ref, len) != 0)
                why = got ? "exit 0 but the outputs differ from the clean run's"
                          : "exit 0 but an output is missing";
            free(got);
            if (!why)
                recoveries++;
        } else if (!one_clean_line(r.err, &noise))
            why = "a failure without exactly one 'clattn: ...' line on stderr";
        else {
            errors++;
            noisy += noise > 0;
        }
        const char *excuse = why ? waived(func) : NULL;
        if (why) {
            FILE *to = excuse ? stdout : stderr;
            if (excuse)
                waived_points++;
            else
                bad++;
            fprintf(to,
                    "%s %s k=%lu (fail %s): %s; exit %d, signal %d (%s)%s%s\n--- stderr ---\n%s"
                    "--- end ---\n",
                    excuse ? "WAIVED" : "FAULT", c->name, k, func, why, r.code, r.signal,
                    r.signal ? strsignal(r.signal) : "", excuse ? "; waived: " : "",
                    excuse ? excuse : "", r.err);
            fflush(to);
        }
        free(r.err);
    }
    free(ref);
    printf("faults %s: %lu points, %lu clean errors (%lu with the libraries' own stderr lines), "
           "%lu recoveries, %lu waived, %lu bad, %.1f s\n",
           c->name, n, errors, noisy, recoveries, waived_points, bad, now_s() - t0);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--inputs") == 0) {
        snprintf(dir, sizeof dir, "%s", argv[2]);
        return write_inputs() ? 1 : 0;
    }
    if (argc == 3 && strcmp(argv[1], "--strict") == 0) {
        strict = 1;
        argv++;
        argc--;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: test_faults [--strict] CASE | --inputs DIR\ncases:");
        for (size_t i = 0; i < NCASES; i++)
            fprintf(stderr, " %s", cases[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    const fault_case *c = NULL;
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(argv[1], cases[i].name) == 0)
            c = &cases[i];
    if (!c) {
        fprintf(stderr, "test_faults: unknown case '%s'\n", argv[1]);
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/clattn_faults_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = write_inputs() ? 1 : sweep(c);
    /* The folder holds only our files. */
    const char *files[] = {"q.npy",  "k.npy",  "v.npy",   "bias.npy",   "u.npy",
                           "A.npy",  "Ct.npy", "dt.npy",  "D.npy",      "out.npy",
                           "lse.npy", "report.txt", "stderr.txt", "x.npy",
                           "gw/A.npy", "gw/Ct.npy", "gw/log_dt.npy", "gw/D.npy", "gw/w_v.npy",
                           "gw/w_u.npy", "gw/w_o1.npy", "gw/w_o2.npy", "gw/b_o2.npy"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove(at(files[i]));
    rmdir(at("gw"));
    rmdir(dir);
    return rc;
}
