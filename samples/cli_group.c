/* `clattn bench group` (issue 18 section 1): attention on a device group (include/clattn/group.h)
 * against the group's first device alone, in one run.
 *
 * Rows per length N (q [B, Hq, Nq, D], K/V [B, Hk, N, D], host memory in and out as
 * clattn_group_softmax_host / clattn_group_linear_host take them):
 *   first      the call on a group of the first device alone (the same host path: uploads, one
 *              device's kernels, read-back), the base of the "vs base" column
 *   dev<r>     device r alone (with --each), to set the weights against
 *   keys       the group, key/value sequence split (merged by lse; linear: state scan)
 *   heads      the group, (batch, key head) pairs split
 * Before the table: each device, its weight and where the weights came from (tuning database,
 * calibration, equal, or --weights). Times are the median wall time of --reps calls after a
 * warm-up call (kernels built), each call blocking from host inputs to host outputs. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_MAX 8

typedef struct group_bench {
    const char *devices, *weights;
    size_t ns[MAX_SWEEP], n_count, nq, batch, heads, kv_heads, d, reps;
    int causal, csv, each, linear;
    clattn_group_split splits[2];
    size_t n_splits;
} group_bench;

void cli_usage_group(FILE *f)
{
    fprintf(f,
            "  clattn bench group --devices SEL,SEL[,...] [--op softmax|linear] [--n 4096,...]\n"
            "        [--nq N] [--batch 1] [--heads 8] [--kv-heads H] [--d 64] [--causal]\n"
            "        [--split keys|heads|both] [--weights calibrate|equal|auto|W,W,...]\n"
            "        [--each] [--reps 3] [--csv]\n"
            "      One attention call split over a device group (selectors as --device takes,\n"
            "      e.g. --devices pthread,llvmpipe with OCL_ICD_VENDORS listing both ICDs)\n"
            "      against the first device alone (row first; vs base = its time / the row's),\n"
            "      host memory in and out. keys: the key/value sequence split, merged by lse\n"
            "      (linear: an exclusive scan of the states); heads: (batch, key head) pairs\n"
            "      split. Prints the weights used (tuning database or calibration by default,\n"
            "      else --weights) before the table; --each adds a row per device alone.\n");
}

static int parse_group(int argc, char **argv, group_bench *b, int *help)
{
    const char *cmd = "bench group";
    const char *ns = NULL, *nq = NULL, *batch = NULL, *heads = NULL, *kvh = NULL, *d = NULL,
               *reps = NULL, *split = NULL, *op = NULL;
    memset(b, 0, sizeof *b);
    b->ns[b->n_count++] = 4096;
    b->batch = 1;
    b->heads = 8;
    b->d = 64;
    b->reps = 3;
    const opt_spec specs[] = {
        {"--devices", NULL, &b->devices, NULL}, {"--n", NULL, &ns, NULL},
        {"--nq", NULL, &nq, NULL},              {"--batch", NULL, &batch, NULL},
        {"--heads", NULL, &heads, NULL},        {"--kv-heads", NULL, &kvh, NULL},
        {"--d", NULL, &d, NULL},                {"--causal", NULL, NULL, &b->causal},
        {"--split", NULL, &split, NULL},        {"--weights", NULL, &b->weights, NULL},
        {"--reps", NULL, &reps, NULL},          {"--csv", NULL, NULL, &b->csv},
        {"--each", NULL, NULL, &b->each},       {"--op", NULL, &op, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((ns && (rc = parse_list(cmd, "--n", ns, 1, (size_t)1 << 24, b->ns, &b->n_count))) ||
        (nq && (rc = size_option(cmd, "--nq", nq, 1, (size_t)1 << 24, &b->nq))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &b->batch))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &b->heads))) ||
        (kvh && (rc = size_option(cmd, "--kv-heads", kvh, 1, 4096, &b->kv_heads))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, 256, &b->d))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))))
        return rc;
    if (!b->devices || !*b->devices)
        return fail(EXIT_USAGE, "%s: --devices is required (e.g. --devices 0:0,1:0)", cmd);
    if (!b->kv_heads)
        b->kv_heads = b->heads;
    if (b->heads % b->kv_heads != 0)
        return fail(EXIT_USAGE, "%s: --heads %zu is not a multiple of --kv-heads %zu", cmd,
                    b->heads, b->kv_heads);
    if (op && strcmp(op, "linear") == 0)
        b->linear = 1;
    else if (op && strcmp(op, "softmax") != 0)
        return fail(EXIT_USAGE, "%s: --op '%s' (softmax or linear)", cmd, op);
    if (b->linear && b->causal && b->nq)
        return fail(EXIT_USAGE, "%s: causal linear attention needs Nq = N (drop --nq)", cmd);
    if (!split || strcmp(split, "both") == 0) {
        b->splits[b->n_splits++] = CLATTN_GROUP_SPLIT_KEYS;
        b->splits[b->n_splits++] = CLATTN_GROUP_SPLIT_HEADS;
    } else if (strcmp(split, "keys") == 0) {
        b->splits[b->n_splits++] = CLATTN_GROUP_SPLIT_KEYS;
    } else if (strcmp(split, "heads") == 0) {
        b->splits[b->n_splits++] = CLATTN_GROUP_SPLIT_HEADS;
    } else {
        return fail(EXIT_USAGE, "%s: --split '%s' (keys, heads or both)", cmd, split);
    }
    return 0;
}

typedef struct call {
    const group_bench *b;
    clattn_group *g;
    clattn_group_split split;
    size_t qs[4], ks[4];
    const float *q, *k, *v;
    float *out;
} call;

static clattn_status run_call(const call *c)
{
    if (c->b->linear) {
        clattn_linear_desc d;
        clattn_linear_desc_init(&d);
        d.causal = c->b->causal;
        return clattn_group_linear_host(c->g, &d, c->split, c->qs, c->ks, c->ks, c->q, c->k, c->v,
                                        c->out);
    }
    clattn_softmax_desc d;
    clattn_softmax_desc_init(&d);
    d.causal = c->b->causal;
    return clattn_group_softmax_host(c->g, &d, c->split, c->qs, c->ks, c->ks, c->q, c->k, c->v,
                                     NULL, c->out, NULL);
}

/* Median ms of reps calls after one warm-up; NAN after a note on failure. */
static double time_call(const call *c, const progress *prog, const char *what)
{
    double t[1000];
    for (size_t i = 0; i <= c->b->reps; i++) {
        double t0 = now_ms();
        clattn_status st = run_call(c);
        if (st != CLATTN_SUCCESS) {
            note(prog, "%s: %s", what, clattn_group_last_error(c->g));
            return NAN;
        }
        if (i > 0)
            t[i - 1] = now_ms() - t0;
    }
    return median(t, c->b->reps);
}

static void fill_row(bench_row *r, const group_bench *b, const char *variant, size_t n,
                     double ms, const char *kernel)
{
    size_t nq = b->nq ? b->nq : n;
    snprintf(r->op, sizeof r->op, "%s", b->linear ? "linear" : "softmax");
    snprintf(r->variant, sizeof r->variant, "%s", variant);
    r->batch = b->batch, r->heads = b->heads, r->nq = nq, r->nk = n, r->d = b->d;
    r->causal = b->causal;
    r->ms = ms;
    r->build_ms = NAN;
    double flops = b->linear ? 4.0 * (double)(b->batch * b->heads) * (double)(nq + n) * b->d * b->d
                             : 4.0 * (double)(b->batch * b->heads) * (double)nq * (double)n * b->d *
                                   (b->causal ? 0.5 : 1.0);
    r->gflops = isnan(ms) || ms <= 0 ? 0.0 : flops / (ms * 1e6);
    snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
}

int cli_bench_group(int argc, char **argv)
{
    group_bench b;
    int help = 0;
    int rc = parse_group(argc, argv, &b, &help);
    if (parse_done(&rc, help, cli_usage_group))
        return rc;
    clattn_context *ctx[GROUP_MAX] = {NULL};
    clattn_group *g = NULL, *solo[GROUP_MAX] = {NULL};
    bench_row *rows = NULL;
    float *q = NULL, *k = NULL, *v = NULL, *out = NULL;
    size_t nd = 0, nrows = 0;
    char list[512];
    snprintf(list, sizeof list, "%s", b.devices);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (nd == GROUP_MAX) {
            rc = fail(EXIT_USAGE, "bench group: at most %d devices", GROUP_MAX);
            goto done;
        }
        if ((rc = open_context(tok, &ctx[nd])))
            goto done;
        nd++;
    }
    clattn_group_options o;
    clattn_group_options_init(&o);
    double w[GROUP_MAX];
    size_t nw = 0;
    if (b.weights && strcmp(b.weights, "calibrate") == 0)
        o.weights = CLATTN_GROUP_WEIGHTS_CALIBRATE;
    else if (b.weights && strcmp(b.weights, "equal") == 0)
        o.weights = CLATTN_GROUP_WEIGHTS_EQUAL;
    else if (b.weights && strcmp(b.weights, "auto") != 0) {
        o.weights = CLATTN_GROUP_WEIGHTS_EQUAL;
        char wl[256], *end;
        snprintf(wl, sizeof wl, "%s", b.weights);
        for (char *tok = strtok(wl, ","); tok; tok = strtok(NULL, ",")) {
            if (nw == GROUP_MAX || !((w[nw] = strtod(tok, &end)) >= 0.0) || *end) {
                rc = fail(EXIT_USAGE, "bench group: --weights '%s' (calibrate, equal, auto or "
                                      "one number >= 0 per device)", b.weights);
                goto done;
            }
            nw++;
        }
        if (nw != nd) {
            rc = fail(EXIT_USAGE, "bench group: %zu weights for %zu devices", nw, nd);
            goto done;
        }
    }
    clattn_status st = clattn_group_create(ctx, nd, &o, &g);
    if (st == CLATTN_SUCCESS && nw)
        st = clattn_group_set_weights(g, w, nw);
    if (st != CLATTN_SUCCESS) {
        rc = fail(EXIT_RUNTIME, "bench group: %s",
                  g ? clattn_group_last_error(g) : clattn_context_last_error(NULL));
        goto done;
    }
    clattn_group_options so;
    clattn_group_options_init(&so);
    so.weights = CLATTN_GROUP_WEIGHTS_EQUAL;
    for (size_t r = 0; r < nd; r++)
        if ((r == 0 || b.each) && clattn_group_create(&ctx[r], 1, &so, &solo[r]) != CLATTN_SUCCESS) {
            rc = fail(EXIT_RUNTIME, "bench group: %s", clattn_context_last_error(NULL));
            goto done;
        }
    /* The weights used. */
    clattn_group_weights src;
    clattn_group_get_weights(g, w, GROUP_MAX, &src);
    static const char *const SRC[] = {"auto", "calibration", "equal", "tuning database",
                                      "--weights"};
    FILE *info = b.csv ? stderr : stdout;
    fprintf(info, "group of %zu devices, weights from %s:\n", nd, SRC[src]);
    for (size_t r = 0; r < nd; r++) {
        clattn_device_info di;
        clattn_context_get_device_info(ctx[r], &di);
        fprintf(info, "  device %zu: weight %.3f  %u:%u %s (%s)\n", r, w[r], di.platform_index,
                di.device_index, di.name, di.platform_name);
    }
    rows = calloc(b.n_count * (nd + 2), sizeof *rows);
    if (!rows) {
        rc = fail(EXIT_RUNTIME, "out of memory");
        goto done;
    }
    progress prog = {0, 0, b.n_count * ((b.each ? nd : 1) + b.n_splits)};
    for (size_t i = 0; i < b.n_count; i++) {
        size_t n = b.ns[i], nq = b.nq ? b.nq : n;
        size_t eq = b.batch * b.heads * nq * b.d, ek = b.batch * b.kv_heads * n * b.d;
        free(q), free(k), free(v), free(out);
        q = malloc(eq * sizeof *q), k = malloc(ek * sizeof *k), v = malloc(ek * sizeof *v);
        out = malloc(eq * sizeof *out);
        if (!q || !k || !v || !out) {
            rc = fail(EXIT_RUNTIME, "out of memory");
            goto done;
        }
        fill_random(q, eq, 1), fill_random(k, ek, 2), fill_random(v, ek, 3);
        call c = {&b, NULL, CLATTN_GROUP_SPLIT_KEYS, {b.batch, b.heads, nq, b.d},
                  {b.batch, b.kv_heads, n, b.d}, q, k, v, out};
        for (size_t r = 0; r < nd; r++) {
            if (!solo[r])
                continue;
            char name[24], what[48];
            snprintf(name, sizeof name, r == 0 ? "first" : "dev%zu", r);
            snprintf(what, sizeof what, "N %zu, device %zu alone", n, r);
            progress_step(&prog, "%s", what);
            c.g = solo[r];
            fill_row(&rows[nrows++], &b, name, n, time_call(&c, &prog, what), "one device");
        }
        for (size_t s = 0; s < b.n_splits; s++) {
            c.g = g;
            c.split = b.splits[s];
            const char *name = c.split == CLATTN_GROUP_SPLIT_KEYS ? "keys" : "heads";
            char what[48], shares[64] = "", *p = shares;
            snprintf(what, sizeof what, "N %zu, group %s", n, name);
            progress_step(&prog, "%s", what);
            double ms = time_call(&c, &prog, what);
            clattn_group_run_info ri;
            if (!isnan(ms) && clattn_group_get_run_info(g, &ri) == CLATTN_SUCCESS)
                for (size_t r = 0; r < nd && p < shares + sizeof shares - 12; r++)
                    p += snprintf(p, (size_t)(shares + sizeof shares - p), "%s%zu",
                                  r ? "/" : (c.split == CLATTN_GROUP_SPLIT_KEYS ? "keys " : "pairs "),
                                  ri.share[r]);
            fill_row(&rows[nrows++], &b, name, n, ms, shares);
        }
    }
    progress_clear(&prog);
    rc = bench_report(rows, nrows, b.csv, "first", 0.0);
    rows = NULL; /* freed by bench_report */
done:
    free(rows);
    free(q), free(k), free(v), free(out);
    for (size_t r = 0; r < GROUP_MAX; r++)
        clattn_group_destroy(solo[r]);
    clattn_group_destroy(g);
    for (size_t r = 0; r < nd; r++)
        clattn_context_destroy(ctx[r]);
    return rc;
}
