/* clattn — the command-line tool: dispatch and help. The commands live in their own files (see
 * cli.h):
 *
 *   clattn devices                       platforms, devices, capabilities and the scheduler's plans
 *   clattn run OP --q ... -o ...         an operator on float32 .npy files, checkable from numpy
 *   clattn bench OP [...]                timing sweeps against baselines, SGEMM and FMA peak
 *   clattn tune [...]                    autotune launches; --show / --reset the database
 *   clattn demo                          devices + a small bench on the default device
 *
 * It links only against the public API (clattn.h) and the .npy helper (npy.h), so it doubles as an
 * example of the plan API. Exit status: 0 success, 1 runtime failure (device, build, I/O while
 * writing), 2 usage error (bad options, unreadable or mismatched input files). Errors are one line
 * on stderr starting with "clattn: "; outputs are written only after the computation succeeded. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registered operators: name, `run`, `bench` (either may be NULL) and their usage blocks. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int (*bench)(int argc, char **argv);
    cli_usage_fn usage;
} OPERATORS[] = {
    {"softmax", cli_run_softmax, cli_bench_softmax, cli_usage_softmax},
    {"linear", cli_run_linear, cli_bench_linear, cli_usage_linear},
    {"lsh", cli_run_lsh, cli_bench_lsh, cli_usage_lsh},
    {"routing", cli_run_routing, cli_bench_routing, cli_usage_routing},
    {"ssm", cli_run_ssm, cli_bench_ssm, cli_usage_ssm},
    {"rpe", cli_run_rpe, cli_bench_rpe, cli_usage_rpe},
    {"gss", cli_run_gss, cli_bench_gss, cli_usage_gss},
    {"mgk", cli_run_mgk, cli_bench_mgk, cli_usage_mgk},
    {"deq", cli_run_deq, cli_bench_deq, cli_usage_deq},
    {"decode", NULL, cli_bench_decode, cli_usage_decode}, /* bench only (cli_decode.c) */
    {"ring", NULL, cli_bench_ring, cli_usage_ring}, /* bench only; run: --distributed (cli_ring.c) */
    {"group", NULL, cli_bench_group, cli_usage_group},    /* bench only (cli_group.c) */
};
#define N_OPERATORS (sizeof OPERATORS / sizeof OPERATORS[0])

static void print_usage(FILE *f)
{
    fprintf(f,
            "clattn %s - runtime-compiled OpenCL kernels for attention\n"
            "\n"
            "usage:\n",
            clattn_version_string());
    cli_usage_blocks(f, cli_usage_devices, "devices");
    for (size_t i = 0; i < N_OPERATORS; i++)
        OPERATORS[i].usage(f);
    cli_usage_run_options(f);
    cli_usage_tune(f);
    cli_usage_blocks(f, cli_usage_devices, "demo");
    fprintf(f,
            "  clattn help | -h | --help      this text; 'clattn COMMAND --help' (e.g.\n"
            "                                 'clattn run softmax --help') shows one command\n"
            "  clattn --version               the tool's and the linked library's versions\n"
            "\n"
            "environment:\n"
            "  CLATTN_DEVICE=P:D|substring  device used when --device is not given (default:\n"
            "                               first GPU, else accelerator, else CPU); one that\n"
            "                               matches no device is an error\n"
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

/* `clattn run --help` / `clattn bench --help`: the commands of the verb, one line each. */
static void print_verb_usage(const char *verb, int bench)
{
    printf("usage: clattn %s OPERATOR [options]%s\n\noperators:\n", verb,
           bench ? "" : " [--layout bhnd|bnhd] [--quiet]");
    for (size_t i = 0; i < N_OPERATORS; i++) {
        if ((bench ? OPERATORS[i].bench : OPERATORS[i].run) == NULL)
            continue;
        char cmd[64], line[256];
        snprintf(cmd, sizeof cmd, "%s %s", verb, OPERATORS[i].name);
        cli_usage_first_line(OPERATORS[i].usage, cmd, line, sizeof line);
        printf("  %s\n", line);
    }
    if (!bench) {
        printf("\n");
        cli_usage_run_options(stdout);
    }
    printf("\n'clattn %s OPERATOR --help' shows one operator's options.\n", verb);
}

/* `clattn run OP --help`: that block only (and the options every run shares). */
static int print_command_usage(const char *verb, size_t op)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%s %s", verb, OPERATORS[op].name);
    printf("usage:\n");
    cli_usage_blocks(stdout, OPERATORS[op].usage, cmd);
    if (strcmp(verb, "run") == 0)
        cli_usage_run_options(stdout);
    return 0;
}

static int asks_help(int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

/* `clattn run|bench OP ...`: hands argv (from "run"/"bench") to the operator's command. */
static int dispatch(int argc, char **argv, int bench)
{
    const char *verb = bench ? "bench" : "run";
    char names[256] = "";
    for (size_t i = 0; i < N_OPERATORS; i++)
        if ((bench ? OPERATORS[i].bench : OPERATORS[i].run) != NULL)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     OPERATORS[i].name);
    if (argc < 2)
        return fail(EXIT_USAGE, "%s: missing operator (supported: %s; see 'clattn %s --help')",
                    verb, names, verb);
    if (is_help(argv[1])) {
        print_verb_usage(verb, bench);
        return 0;
    }
    for (size_t i = 0; i < N_OPERATORS; i++) {
        int (*fn)(int, char **) = bench ? OPERATORS[i].bench : OPERATORS[i].run;
        if (!fn || strcmp(argv[1], OPERATORS[i].name) != 0)
            continue;
        if (asks_help(argc, argv, 2))
            return print_command_usage(verb, i);
        if (!bench) {
            char cmd[64];
            snprintf(cmd, sizeof cmd, "run %s", OPERATORS[i].name);
            int rc = cli_take_run_options(cmd, &argc, argv, 2);
            if (rc)
                return rc;
            if (cli_wants_distributed(argc, argv)) /* across MPI ranks (cli_ring.c) */
                return cli_run_distributed(argc, argv);
        }
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
        return cli_cmd_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return dispatch(argc - 1, argv + 1, 0);
    if (strcmp(cmd, "bench") == 0)
        return dispatch(argc - 1, argv + 1, 1);
    if (strcmp(cmd, "demo") == 0)
        return cli_cmd_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "tune") == 0)
        return cli_cmd_tune(argc - 1, argv + 1);
    return fail(EXIT_USAGE, "unknown command '%s' (see 'clattn help')", cmd);
}
