/* clattn run softmax|linear --distributed ring|zigzag, and clattn bench ring: attention over the
 * ranks of an MPI job (mpirun -np R clattn ...) through clattn_mpi (mpi/include/clattn/ring.h).
 * Built with MPI when the clattn_mpi library exists (CLATTN_CLI_MPI); without it these commands
 * say so and exit with the usage code.
 *
 * run: rank 0 reads the full .npy inputs and sends every rank its shard (or, with --shard, each
 * rank reads its own shard files: "{rank}" in each path is replaced by the rank), the ranks run
 * the ring, and rank 0 gathers the output rows and writes the same files the single-process run
 * writes (-o, --lse). Float32 only. Errors: every rank returns the same status (the ring's
 * agreement); rank 0 prints it.
 * bench: in one run, the single-process time (rank 0 alone, the whole problem), the R-rank ring
 * time, the ring without its transfers and the transfers alone (overlap), and the bytes each rank
 * sent against the formula. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

int cli_wants_distributed(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--distributed") == 0 || strncmp(argv[i], "--distributed=", 14) == 0)
            return 1;
    return 0;
}

void cli_usage_ring(FILE *f)
{
    fprintf(f,
            "  clattn bench ring [--n 4096] [--nq N] [--d 64] [--heads 8] [--kv-heads H]\n"
            "         [--batch 1] [--causal] [--shards contiguous|zigzag] [--reps 3]\n"
            "         [--device SEL] [--csv]\n"
            "      under mpirun -np R (clattn_mpi): single-process time (rank 0, the whole\n"
            "      problem), R-rank ring attention time (slowest rank), the ring without its\n"
            "      transfers and the transfers alone (overlap = share of the transfer time\n"
            "      hidden behind compute), and per rank the bytes sent against the formula\n"
            "      (Nk - n_(r+1)) * B * Hk * (D + Dv) * 4 ((R-1)/R of K and V for even shards).\n"
            "      Distributed runs (same options as the single-process run, float32):\n"
            "        mpirun -np R clattn run softmax --distributed ring|zigzag --q Q.npy\n"
            "          --k K.npy --v V.npy -o OUT.npy [--causal] [--scale S]\n"
            "          [--key-lengths L.npy] [--lse LSE.npy] [--algo A] [--shard]\n"
            "          [--timeout SEC] [--device SEL]\n"
            "        mpirun -np R clattn run linear --distributed ring|zigzag --causal\n"
            "          --q Q.npy --k K.npy --v V.npy -o OUT.npy [--feature-map elu|relu|identity]\n"
            "          [--eps E] [--shard] [--timeout SEC] [--device SEL]\n"
            "        rank 0 reads the full inputs and writes the full outputs; with --shard each\n"
            "        rank reads its own shard (\"{rank}\" in every input path) in the layout's\n"
            "        rows (ring: contiguous; zigzag: chunks r and 2R-1-r of 2R).\n");
}

#ifndef CLATTN_CLI_MPI

int cli_run_distributed(int argc, char **argv)
{
    (void)argc;
    return fail(EXIT_USAGE, "run %s --distributed: this clattn was built without MPI "
                            "(clattn_mpi); install libopenmpi-dev and rebuild",
                argv[1]);
}

int cli_bench_ring(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return fail(EXIT_USAGE, "bench ring: this clattn was built without MPI (clattn_mpi); "
                            "install libopenmpi-dev and rebuild");
}

#else

#include <clattn/ring_mpi.h>

static int g_rank, g_size;

/* MPI_Barrier without busy polling: Open MPI's blocking barrier spins, and on a machine with
 * fewer cores than ranks the spinning ranks take CPU from the one being timed (rank 0's single
 * run measured 356 ms beside one spinning rank, against 177-193 ms in other runs). */
static void quiet_barrier(void)
{
    MPI_Request r;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &r) != MPI_SUCCESS) {
        MPI_Barrier(MPI_COMM_WORLD);
        return;
    }
    for (int done = 0;;) {
        if (MPI_Test(&r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done)
            return;
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
}

/* Rows of x [B, H, N, W] (two ranges) as a dense [B, H, n, W] copy, or the reverse (scatter). */
static void move_rows(float *full, float *part, size_t B, size_t H, size_t N, size_t W,
                      const size_t s[2], const size_t c[2], int to_part)
{
    size_t n = c[0] + c[1];
    for (size_t bh = 0; bh < B * H; bh++) {
        size_t loc = 0;
        for (int p = 0; p < 2; p++) {
            float *f = full + (bh * N + s[p]) * W, *q = part + (bh * n + loc) * W;
            if (to_part)
                memcpy(q, f, c[p] * W * sizeof *q);
            else
                memcpy(f, q, c[p] * W * sizeof *q);
            loc += c[p];
        }
    }
}

static int start_mpi(void)
{
    int init = 0;
    MPI_Initialized(&init);
    if (!init && MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return fail(EXIT_RUNTIME, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

/* Every rank's exit code agreed (the largest), so that all leave together. */
static int agree_rc(int rc)
{
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

/* "{rank}" in path replaced by the rank. */
static char *rank_path(const char *path)
{
    const char *at = strstr(path, "{rank}");
    size_t len = strlen(path) + 16;
    char *p = malloc(len);
    if (!p)
        return NULL;
    if (!at)
        snprintf(p, len, "%s", path);
    else
        snprintf(p, len, "%.*s%d%s", (int)(at - path), path, g_rank, at + 6);
    return p;
}

typedef struct dist_in {
    size_t qshape[4], kshape[4], vshape[4]; /* global */
    size_t qs[2], qc[2], ks[2], kc[2];       /* this rank's rows */
    float *q, *k, *v;                        /* this rank's shard, dense [B, H, n, D] */
    int32_t *kl;                             /* global key lengths [B] or NULL */
} dist_in;

/* Loads (rank 0, or every rank with --shard) and distributes the inputs: 0 or an agreed exit
 * code. */
static int distribute(const char *qp, const char *kp, const char *vp, const char *klp, int shard,
                      clattn_ring_layout lay, dist_in *in)
{
    int rc = 0;
    npy_array a[3];
    memset(a, 0, sizeof a);
    const char *paths[3] = {qp, kp, vp}, *opts[3] = {"--q", "--k", "--v"};
    int64_t hdr[14] = {0};
    if (shard || g_rank == 0) {
        for (int i = 0; i < 3 && !rc; i++) {
            char *p = shard ? rank_path(paths[i]) : NULL;
            if (shard && g_size > 1 && !strstr(paths[i], "{rank}"))
                rc = fail(EXIT_USAGE, "run --shard: %s needs \"{rank}\" in its path", opts[i]);
            else
                rc = load_f32(p ? p : paths[i], opts[i], 4, &a[i]);
            free(p);
        }
        if (!rc && (a[1].shape[0] != a[0].shape[0] || a[2].shape[0] != a[0].shape[0] ||
                    a[2].shape[1] != a[1].shape[1] || a[2].shape[2] != a[1].shape[2] ||
                    a[1].shape[3] != a[0].shape[3] || a[0].shape[1] % a[1].shape[1]))
            rc = fail(EXIT_USAGE, "run --distributed: q [B,Hq,Nq,D], k [B,Hk,Nk,D], "
                                  "v [B,Hk,Nk,Dv] with Hq a multiple of Hk");
        if (!rc && klp) {
            npy_array l;
            char err[512];
            if (npy_read(klp, &l, err, sizeof err) != 0)
                rc = fail(EXIT_USAGE, "%s", err);
            else if ((l.dtype != NPY_I32 && l.dtype != NPY_I64) || l.ndim != 1 ||
                     l.shape[0] != a[0].shape[0])
                rc = fail(EXIT_USAGE, "%s (--key-lengths): expected int32/int64 [%zu]", klp,
                          a[0].shape[0]);
            else {
                in->kl = malloc(l.shape[0] * sizeof *in->kl);
                for (size_t b = 0; in->kl && b < l.shape[0]; b++) {
                    int64_t x = l.dtype == NPY_I32 ? ((const int32_t *)l.data)[b]
                                                   : ((const int64_t *)l.data)[b];
                    in->kl[b] = (int32_t)(x < 0 ? -1 : x > INT32_MAX ? INT32_MAX : x);
                }
            }
            npy_free(&l);
        }
        for (int i = 0; i < 3 && !rc; i++)
            for (int j = 0; j < 4; j++)
                hdr[2 + i * 4 + j] = (int64_t)a[i].shape[j];
    }
    hdr[0] = rc;
    if (shard) { /* global lengths: the sums of the shards' rows */
        int64_t nq = hdr[2 + 2], nk = hdr[2 + 6], bad = rc != 0, sums[3];
        int64_t mine[3] = {nq, nk, bad};
        MPI_Allreduce(mine, sums, 3, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        if (sums[2]) {
            rc = agree_rc(rc ? rc : EXIT_USAGE);
        } else {
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++)
                    (i == 0 ? in->qshape : i == 1 ? in->kshape : in->vshape)[j] =
                        (size_t)hdr[2 + i * 4 + j];
            in->qshape[2] = (size_t)sums[0];
            in->kshape[2] = in->vshape[2] = (size_t)sums[1];
            in->q = a[0].data, in->k = a[1].data, in->v = a[2].data;
            a[0].data = a[1].data = a[2].data = NULL;
            /* key lengths: rank 0's file (every rank reads its own with --shard: must agree) */
        }
    } else {
        hdr[1] = in->kl != NULL;
        MPI_Bcast(hdr, 14, MPI_INT64_T, 0, MPI_COMM_WORLD);
        rc = (int)hdr[0];
        if (!rc)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++)
                    (i == 0 ? in->qshape : i == 1 ? in->kshape : in->vshape)[j] =
                        (size_t)hdr[2 + i * 4 + j];
        if (!rc && hdr[1]) {
            if (!in->kl)
                in->kl = malloc(in->qshape[0] * sizeof *in->kl);
            MPI_Bcast(in->kl, (int)in->qshape[0], MPI_INT32_T, 0, MPI_COMM_WORLD);
        }
    }
    size_t R = (size_t)g_size;
    if (!rc && (clattn_ring_shard(in->qshape[2], R, (size_t)g_rank, lay, in->qs, in->qc) ||
                clattn_ring_shard(in->kshape[2], R, (size_t)g_rank, lay, in->ks, in->kc))) {
        if (g_rank == 0)
            fail(EXIT_USAGE,
                 "run --distributed: Nq %zu / Nk %zu: each of the %zu ranks needs a row",
                 in->qshape[2], in->kshape[2], R);
        rc = EXIT_USAGE;
    }
    if (!rc && !shard) { /* rank 0 sends every rank its rows of q, k and v */
        const size_t *shp[3] = {in->qshape, in->kshape, in->vshape};
        float **mine[3] = {&in->q, &in->k, &in->v};
        for (int i = 0; i < 3; i++) {
            const size_t *sh = shp[i];
            for (int r = 0; r < g_size; r++) {
                if (g_rank != 0 && g_rank != r)
                    continue;
                size_t s[2], c[2];
                clattn_ring_shard(sh[2], R, (size_t)r, lay, s, c);
                size_t cnt = sh[0] * sh[1] * (c[0] + c[1]) * sh[3];
                float *part = malloc(cnt * sizeof *part);
                if (!part) {
                    MPI_Abort(MPI_COMM_WORLD, EXIT_RUNTIME); /* no way to agree without memory */
                    return EXIT_RUNTIME;
                }
                if (g_rank == 0) {
                    move_rows(a[i].data, part, sh[0], sh[1], sh[2], sh[3], s, c, 1);
                    if (r == 0)
                        *mine[i] = part;
                    else {
                        MPI_Send(part, (int)cnt, MPI_FLOAT, r, i, MPI_COMM_WORLD);
                        free(part);
                    }
                } else {
                    MPI_Recv(part, (int)cnt, MPI_FLOAT, 0, i, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    *mine[i] = part;
                }
            }
        }
    }
    for (int i = 0; i < 3; i++)
        npy_free(&a[i]);
    return rc;
}

/* Rank 0 collects every rank's rows of x (local dense [B, H, n, W]) into full [B, H, N, W]. */
static float *gather_rows(const float *mine, size_t B, size_t H, size_t N, size_t W,
                          clattn_ring_layout lay)
{
    size_t R = (size_t)g_size;
    if (g_rank != 0) {
        size_t s[2], c[2];
        clattn_ring_shard(N, R, (size_t)g_rank, lay, s, c);
        MPI_Send(mine, (int)(B * H * (c[0] + c[1]) * W), MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
        return NULL;
    }
    float *full = malloc(B * H * N * W * sizeof *full);
    for (int r = 0; r < g_size; r++) {
        size_t s[2], c[2];
        clattn_ring_shard(N, R, (size_t)r, lay, s, c);
        size_t cnt = B * H * (c[0] + c[1]) * W;
        float *part = r == 0 ? (float *)mine : malloc(cnt * sizeof *part);
        if (r != 0)
            MPI_Recv(part, (int)cnt, MPI_FLOAT, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (full)
            move_rows(full, part, B, H, N, W, s, c, 0);
        if (r != 0)
            free(part);
    }
    return full;
}

int cli_run_distributed(int argc, char **argv)
{
    const int linear = strcmp(argv[1], "linear") == 0;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "run %s --distributed", argv[1]);
    if (!linear && strcmp(argv[1], "softmax") != 0)
        return fail(EXIT_USAGE, "run %s: --distributed is for softmax and linear", argv[1]);
    const char *qp = NULL, *kp = NULL, *vp = NULL, *op = NULL, *lsep = NULL, *klp = NULL;
    const char *scale = NULL, *algo = NULL, *device = NULL, *dist = NULL, *tmo = NULL;
    const char *fmap = NULL, *eps = NULL;
    int causal = 0, shard = 0, help = 0;
    opt_spec specs[] = {
        {"--q", NULL, &qp, NULL},          {"--k", NULL, &kp, NULL},
        {"--v", NULL, &vp, NULL},          {"--out", "-o", &op, NULL},
        {"--lse", NULL, &lsep, NULL},      {"--key-lengths", NULL, &klp, NULL},
        {"--scale", NULL, &scale, NULL},   {"--algo", NULL, &algo, NULL},
        {"--device", NULL, &device, NULL}, {"--distributed", NULL, &dist, NULL},
        {"--timeout", NULL, &tmo, NULL},   {"--feature-map", NULL, &fmap, NULL},
        {"--eps", NULL, &eps, NULL},       {"--causal", NULL, NULL, &causal},
        {"--shard", NULL, NULL, &shard},
    };
    int rc = start_mpi();
    if (rc)
        return rc;
    rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    const char *missing = !qp ? "--q" : !kp ? "--k" : !vp ? "--v" : !op ? "-o" : NULL;
    clattn_ring_layout lay = CLATTN_RING_CONTIGUOUS;
    if (!rc && missing)
        rc = fail(EXIT_USAGE, "%s: missing %s", cmd, missing);
    if (!rc && strcmp(dist, "ring") != 0 && strcmp(dist, "zigzag") != 0)
        rc = fail(EXIT_USAGE, "%s: '%s': expected ring or zigzag", cmd, dist);
    if (!rc && strcmp(dist, "zigzag") == 0)
        lay = CLATTN_RING_ZIGZAG;
    if (!rc && (cli_get_in_dtype() >= 0 && cli_get_in_dtype() != CLATTN_F32))
        rc = fail(EXIT_USAGE, "%s: distributed runs are float32 (no --dtype)", cmd);
    if (!rc && cli_get_out_dtype() != CLATTN_F32)
        rc = fail(EXIT_USAGE, "%s: distributed runs write float32 (no --out-dtype)", cmd);
    if (!rc && linear && (lsep || klp || scale || algo))
        rc = fail(EXIT_USAGE, "%s: --lse, --key-lengths, --scale and --algo are softmax options",
                  cmd);
    if (!rc && !linear && (fmap || eps))
        rc = fail(EXIT_USAGE, "%s: --feature-map and --eps are linear options", cmd);
    if (!rc && linear && !causal)
        rc = fail(EXIT_USAGE, "%s: the distributed linear form is causal (add --causal)", cmd);
    double timeout = 60;
    float tf = 60.0f;
    if (!rc && tmo && !(rc = float_option(cmd, "--timeout", tmo, 0.0f, 86400.0f, 1, &tf)))
        timeout = tf;
    clattn_ring_softmax_desc sd;
    clattn_ring_softmax_desc_init(&sd);
    sd.layout = lay;
    sd.attn.causal = causal;
    sd.timeout_s = timeout;
    if (!rc && scale)
        rc = float_option(cmd, "--scale", scale, -INFINITY, INFINITY, 0, &sd.attn.scale);
    if (!rc && algo) {
        const char *names[] = {"auto", "cpu", "gpu", "naive", "gpu-rows"};
        const clattn_softmax_algo al[] = {CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU,
                                          CLATTN_SOFTMAX_TILED_GPU, CLATTN_SOFTMAX_NAIVE,
                                          CLATTN_SOFTMAX_TILED_GPU_ROWS};
        int found = 0;
        for (int i = 0; i < 5; i++)
            if (strcmp(algo, names[i]) == 0)
                sd.attn.algorithm = al[i], found = 1;
        if (!found)
            rc = fail(EXIT_USAGE, "%s: --algo '%s': expected auto, cpu, gpu, gpu-rows or naive",
                      cmd, algo);
    }
    clattn_linear_desc ld;
    clattn_linear_desc_init(&ld);
    ld.causal = 1;
    if (!rc && fmap) {
        if (strcmp(fmap, "elu") == 0)
            ld.feature_map = CLATTN_LINEAR_FEATURE_ELU;
        else if (strcmp(fmap, "relu") == 0)
            ld.feature_map = CLATTN_LINEAR_FEATURE_RELU;
        else if (strcmp(fmap, "identity") == 0)
            ld.feature_map = CLATTN_LINEAR_FEATURE_IDENTITY;
        else
            rc = fail(EXIT_USAGE, "%s: --feature-map '%s': expected elu, relu or identity", cmd,
                      fmap);
    }
    if (!rc && eps)
        rc = float_option(cmd, "--eps", eps, 0.0f, INFINITY, 0, &ld.eps);
    if (help) {
        if (g_rank == 0)
            cli_usage_ring(stdout);
        MPI_Finalize();
        return 0;
    }
    if (rc) {
        MPI_Finalize();
        return rc;
    }
    dist_in in;
    memset(&in, 0, sizeof in);
    rc = distribute(qp, kp, vp, klp, shard, lay, &in);
    clattn_context *ctx = NULL;
    if (!rc)
        rc = agree_rc(open_context(device, &ctx));
    clattn_ring *ring = NULL;
    clattn_ring_transport tr;
    if (!rc && (clattn_ring_transport_mpi(MPI_COMM_WORLD, &tr) != CLATTN_SUCCESS ||
                clattn_ring_create(ctx, &tr, &ring) != CLATTN_SUCCESS))
        rc = agree_rc(fail(EXIT_RUNTIME, "%s: cannot set up the MPI transport", cmd));
    const size_t B = in.qshape[0], hq = in.qshape[1], hk = in.kshape[1], D = in.qshape[3];
    const size_t Dv = in.vshape[3], nq = in.qc[0] + in.qc[1], nk = in.kc[0] + in.kc[1];
    float *out = NULL, *lse = NULL;
    if (!rc) {
        out = malloc(B * hq * nq * Dv * sizeof *out);
        lse = malloc(B * hq * nq * sizeof *lse);
        cli_io io;
        cli_io_init(&io, ctx);
        cl_mem bq = cli_io_in(&io, in.q, B * hq * nq * D * 4);
        cl_mem bk = cli_io_in(&io, in.k, B * hk * nk * D * 4);
        cl_mem bv = cli_io_in(&io, in.v, B * hk * nk * Dv * 4);
        cl_mem bo = cli_io_out(&io, out, B * hq * nq * Dv * 4);
        cl_mem bl = cli_io_out(&io, lse, B * hq * nq * 4);
        rc = agree_rc(out && lse ? cli_io_check(&io) : fail(EXIT_RUNTIME, "out of memory"));
        if (!rc) {
            clattn_tensor tq = clattn_tensor_make(bq, B, hq, nq, D);
            clattn_tensor tk = clattn_tensor_make(bk, B, hk, nk, D);
            clattn_tensor tv = clattn_tensor_make(bv, B, hk, nk, Dv);
            clattn_tensor to = clattn_tensor_make(bo, B, hq, nq, Dv);
            clattn_tensor tl = clattn_tensor_make(bl, B, hq, nq, 1);
            sd.key_lengths = in.kl;
            clattn_status st =
                linear ? clattn_ring_linear(ring, &ld, lay, timeout, &tq, &tk, &tv, &to)
                       : clattn_ring_softmax(ring, &sd, &tq, &tk, &tv, &to, lsep ? &tl : NULL);
            if (st) { /* the same status on every rank: rank 0 reports it */
                rc = status_exit_code(st);
                if (g_rank == 0)
                    fail(rc, "%s: %s (%s)", cmd, clattn_ring_last_error(ring),
                         clattn_status_string(st));
                cli_io_end(&io);
            } else {
                rc = agree_rc(cli_io_read(&io, CLATTN_SUCCESS, NULL, "reading the result"));
                cli_io_end(&io);
            }
        } else {
            cli_io_end(&io);
        }
    }
    if (!rc) {
        size_t oshape[4] = {B, hq, in.qshape[2], Dv};
        float *full = gather_rows(out, B, hq, in.qshape[2], Dv, lay);
        float *fl = lsep ? gather_rows(lse, B, hq, in.qshape[2], 1, lay) : NULL;
        int wrc = 0;
        if (g_rank == 0) {
            if (!full || (lsep && !fl))
                wrc = fail(EXIT_RUNTIME, "out of memory");
            if (!wrc)
                wrc = write_f32(op, full, 4, oshape);
            if (!wrc && lsep)
                wrc = write_f32(lsep, fl, 3, oshape);
        }
        free(full);
        free(fl);
        rc = agree_rc(wrc);
        if (!rc && g_rank == 0) {
            char extra[128];
            snprintf(extra, sizeof extra, "distributed %s over %d ranks", dist, g_size);
            cli_run_summary_with(ctx, linear ? "linear" : "softmax", NULL, extra);
        }
    }
    clattn_ring_destroy(ring);
    clattn_context_destroy(ctx);
    free(in.q), free(in.k), free(in.v), free(in.kl), free(out), free(lse);
    MPI_Finalize();
    return rc;
}

/* ---- bench ring ---- */

typedef struct ring_call {
    clattn_ring *ring;
    clattn_ring_softmax_desc desc;
    clattn_tensor q, k, v, out;
    clattn_status st;
} ring_call;

/* Median over reps (after one warm-up) of the slowest rank's wall time of fn. */
static double timed(void (*fn)(void *), void *arg, size_t reps)
{
    double *t = malloc((reps + 1) * sizeof *t);
    if (!t)
        return NAN;
    for (size_t i = 0; i <= reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_ms();
        fn(arg);
        double dt = now_ms() - t0, mx = dt;
        MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        t[i] = mx;
    }
    double m = median(t + 1, reps);
    free(t);
    return m;
}

static void run_ring(void *arg)
{
    ring_call *c = arg;
    clattn_status st = clattn_ring_softmax(c->ring, &c->desc, &c->q, &c->k, &c->v, &c->out, NULL);
    if (st && !c->st)
        c->st = st;
}

typedef struct comm_call {
    unsigned char *buf[2];
    size_t *bytes; /* per rank: its shard's K+V bytes */
} comm_call;

/* The ring's transfers alone: R - 1 steps of send-to-next / receive-from-previous. */
static void run_comm(void *arg)
{
    comm_call *c = arg;
    int R = g_size, me = g_rank;
    for (int s = 0; s + 1 < R; s++) {
        int src = ((me - s) % R + R) % R, nsrc = ((src - 1) % R + R) % R;
        MPI_Request rq[2];
        MPI_Irecv(c->buf[(s + 1) & 1], (int)c->bytes[nsrc], MPI_BYTE, (me - 1 + R) % R, s,
                  MPI_COMM_WORLD, &rq[0]);
        MPI_Isend(c->buf[s & 1], (int)c->bytes[src], MPI_BYTE, (me + 1) % R, s, MPI_COMM_WORLD,
                  &rq[1]);
        MPI_Waitall(2, rq, MPI_STATUSES_IGNORE);
    }
}

typedef struct single_call {
    clattn_plan *plan;
    clattn_tensor q, k, v, out;
} single_call;

static clattn_status run_single(void *arg)
{
    single_call *c = arg;
    return clattn_softmax_plan_enqueue(c->plan, &c->q, &c->k, &c->v, &c->out, NULL, 0, NULL, NULL);
}

int cli_bench_ring(int argc, char **argv)
{
    const char *cmd = "bench ring";
    const char *ns = NULL, *nqs = NULL, *ds = NULL, *hs = NULL, *hks = NULL, *bs = NULL;
    const char *lays = NULL, *reps_s = NULL, *device = NULL;
    int causal = 0, csv = 0, help = 0;
    opt_spec specs[] = {
        {"--n", NULL, &ns, NULL},         {"--nq", NULL, &nqs, NULL},
        {"--d", NULL, &ds, NULL},         {"--heads", NULL, &hs, NULL},
        {"--kv-heads", NULL, &hks, NULL}, {"--batch", NULL, &bs, NULL},
        {"--shards", NULL, &lays, NULL},  {"--reps", NULL, &reps_s, NULL},
        {"--device", NULL, &device, NULL}, {"--causal", NULL, NULL, &causal},
        {"--csv", NULL, NULL, &csv},
    };
    int rc = start_mpi();
    if (rc)
        return rc;
    rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    size_t N = 4096, Nq = 0, D = 64, H = 8, HK = 0, B = 1, reps = 3;
    if (!rc && ns)
        rc = size_option(cmd, "--n", ns, 1, (size_t)1 << 24, &N);
    if (!rc && nqs)
        rc = size_option(cmd, "--nq", nqs, 1, (size_t)1 << 24, &Nq);
    if (!rc && ds)
        rc = size_option(cmd, "--d", ds, 1, 256, &D);
    if (!rc && hs)
        rc = size_option(cmd, "--heads", hs, 1, 1024, &H);
    if (!rc && hks)
        rc = size_option(cmd, "--kv-heads", hks, 1, 1024, &HK);
    if (!rc && bs)
        rc = size_option(cmd, "--batch", bs, 1, 1024, &B);
    if (!rc && reps_s)
        rc = size_option(cmd, "--reps", reps_s, 1, 1000, &reps);
    clattn_ring_layout lay = CLATTN_RING_CONTIGUOUS;
    if (!rc && lays) {
        if (strcmp(lays, "zigzag") == 0)
            lay = CLATTN_RING_ZIGZAG;
        else if (strcmp(lays, "contiguous") != 0)
            rc = fail(EXIT_USAGE, "%s: --shards '%s': expected contiguous or zigzag", cmd, lays);
    }
    if (!HK)
        HK = H;
    if (!Nq)
        Nq = N;
    if (!rc && H % HK)
        rc = fail(EXIT_USAGE, "%s: --heads %zu is not a multiple of --kv-heads %zu", cmd, H, HK);
    if (!rc && (N < (size_t)g_size || Nq < (size_t)g_size))
        rc = fail(EXIT_USAGE, "%s: --n %zu / --nq %zu: fewer rows than the %d ranks", cmd, N, Nq,
                  g_size);
    if (help) {
        if (g_rank == 0)
            cli_usage_ring(stdout);
        MPI_Finalize();
        return 0;
    }
    if (rc) {
        MPI_Finalize();
        return rc;
    }
    clattn_context *ctx = NULL;
    rc = agree_rc(g_rank == 0 ? bench_open(device, &ctx) : open_context(device, &ctx));
    if (rc) {
        clattn_context_destroy(ctx);
        MPI_Finalize();
        return rc;
    }
    size_t R = (size_t)g_size, qs[2], qc[2], ks[2], kc[2];
    clattn_ring_shard(Nq, R, (size_t)g_rank, lay, qs, qc);
    clattn_ring_shard(N, R, (size_t)g_rank, lay, ks, kc);
    size_t nq = qc[0] + qc[1], nk = kc[0] + kc[1];
    const size_t row = B * HK * 2 * D * 4; /* K and V bytes per key row (Dv = D) */

    /* 1. single process: rank 0, the whole problem */
    double t_single = NAN;
    if (g_rank == 0) {
        cl_mem b[4];
        size_t qe = B * H * Nq * D, ke = B * HK * N * D;
        single_call sc;
        memset(&sc, 0, sizeof sc);
        cl_int e = make_buffers(ctx, b, 1, 1, qe);
        if (!e)
            e = make_buffers(ctx, b + 1, 2, 2, ke);
        if (!e)
            e = make_buffers(ctx, b + 3, 1, 0, qe);
        clattn_softmax_desc d;
        clattn_softmax_desc_init(&d);
        d.causal = causal;
        size_t qsh[4] = {B, H, Nq, D}, ksh[4] = {B, HK, N, D};
        if (!e && clattn_softmax_plan_create(ctx, &d, qsh, ksh, ksh, &sc.plan) == CLATTN_SUCCESS) {
            sc.q = clattn_tensor_make(b[0], B, H, Nq, D);
            sc.k = clattn_tensor_make(b[1], B, HK, N, D);
            sc.v = clattn_tensor_make(b[2], B, HK, N, D);
            sc.out = clattn_tensor_make(b[3], B, H, Nq, D);
            if (time_median(ctx, run_single, &sc, reps, &t_single) != CLATTN_SUCCESS)
                t_single = NAN;
            clattn_plan_destroy(sc.plan);
        } else {
            fprintf(stderr, "clattn: note: the single-process run did not fit or failed\n");
        }
        if (!e)
            release_buffers(b, 4);
    }
    quiet_barrier();

    /* 2. the ring, with and without its transfers */
    cl_mem b[4];
    cl_int e = make_buffers(ctx, b, 1, 1, B * H * nq * D);
    if (!e)
        e = make_buffers(ctx, b + 1, 2, 2, B * HK * nk * D);
    if (!e)
        e = make_buffers(ctx, b + 3, 1, 0, B * H * nq * D);
    rc = agree_rc(e ? fail(EXIT_RUNTIME, "%s: cannot allocate the shards (OpenCL error %d)", cmd,
                           e)
                    : 0);
    ring_call rcall;
    memset(&rcall, 0, sizeof rcall);
    clattn_ring_transport tr;
    if (!rc && (clattn_ring_transport_mpi(MPI_COMM_WORLD, &tr) != CLATTN_SUCCESS ||
                clattn_ring_create(ctx, &tr, &rcall.ring) != CLATTN_SUCCESS))
        rc = agree_rc(fail(EXIT_RUNTIME, "%s: cannot set up the MPI transport", cmd));
    double t_ring = NAN, t_local = NAN, t_comm = NAN;
    clattn_ring_stats stats;
    memset(&stats, 0, sizeof stats);
    if (!rc) {
        clattn_ring_softmax_desc_init(&rcall.desc);
        rcall.desc.attn.causal = causal;
        rcall.desc.layout = lay;
        rcall.q = clattn_tensor_make(b[0], B, H, nq, D);
        rcall.k = clattn_tensor_make(b[1], B, HK, nk, D);
        rcall.v = clattn_tensor_make(b[2], B, HK, nk, D);
        rcall.out = clattn_tensor_make(b[3], B, H, nq, D);
        t_ring = timed(run_ring, &rcall, reps);
        clattn_ring_get_stats(rcall.ring, &stats);
        rcall.desc.flags = CLATTN_RING_BENCH_NO_TRANSFER;
        t_local = timed(run_ring, &rcall, reps);
        if (rcall.st) {
            if (g_rank == 0)
                fail(EXIT_RUNTIME, "%s: %s", cmd, clattn_ring_last_error(rcall.ring));
            rc = EXIT_RUNTIME;
        }
    }
    /* 3. the transfers alone */
    size_t *bytes = calloc(R, sizeof *bytes);
    comm_call cc;
    memset(&cc, 0, sizeof cc);
    size_t nk_max = 0;
    for (size_t r = 0; bytes && r < R; r++) {
        size_t s[2], c[2];
        clattn_ring_shard(N, R, r, lay, s, c);
        bytes[r] = (c[0] + c[1]) * row;
        nk_max = c[0] + c[1] > nk_max ? c[0] + c[1] : nk_max;
    }
    cc.bytes = bytes;
    cc.buf[0] = calloc(1, nk_max * row + 1);
    cc.buf[1] = calloc(1, nk_max * row + 1);
    if (!rc && bytes && cc.buf[0] && cc.buf[1])
        t_comm = timed(run_comm, &cc, reps);

    /* 4. report: rank 0 prints, every rank's volume gathered */
    double mine[6] = {(double)stats.bytes_sent, (double)stats.bytes_received, stats.comm_wait_ms,
                      stats.compute_ms, (double)stats.blocks, (double)stats.blocks_skipped};
    double *all = g_rank == 0 ? calloc(6 * R, sizeof *all) : NULL;
    MPI_Gather(mine, 6, MPI_DOUBLE, all, 6, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (!rc && g_rank == 0 && all && bytes) {
        double even = (double)(R - 1) / (double)R * (double)N * (double)row;
        double hidden = (t_local + t_comm - t_ring) / t_comm;
        hidden = hidden < 0 ? 0 : hidden > 1 ? 1 : hidden;
        if (csv) {
            printf("key,value\nranks,%zu\nbatch,%zu\nheads,%zu\nkv_heads,%zu\nnq,%zu\nnk,%zu\n"
                   "d,%zu\ncausal,%d\nshards,%s\n",
                   R, B, H, HK, Nq, N, D, causal, lay ? "zigzag" : "contiguous");
            printf("single_ms,%.4f\nring_ms,%.4f\nring_no_transfer_ms,%.4f\ntransfers_ms,%.4f\n"
                   "overlap_hidden,%.3f\n",
                   t_single, t_ring, t_local, t_comm, hidden);
            for (size_t r = 0; r < R; r++)
                printf("rank%zu_sent_bytes,%.0f\nrank%zu_formula_bytes,%zu\n", r, all[6 * r], r,
                       (N - bytes[(r + 1) % R] / row) * row);
        } else {
            printf("ring attention: %zu ranks, B %zu, heads %zu (kv %zu), Nq %zu, Nk %zu, D %zu, "
                   "%s, %s shards, median of %zu\n",
                   R, B, H, HK, Nq, N, D, causal ? "causal" : "non-causal",
                   lay ? "zigzag" : "contiguous", reps);
            printf("  single process (rank 0, whole problem)  %10.3f ms\n", t_single);
            printf("  ring, %zu ranks (slowest rank)           %10.3f ms   (x%.2f vs single)\n", R,
                   t_ring, t_single / t_ring);
            printf("  ring without transfers                   %10.3f ms\n", t_local);
            printf("  transfers alone                          %10.3f ms\n", t_comm);
            printf("  transfer time hidden behind compute      %9.0f %%   ((no-transfer + "
                   "transfers - ring) / transfers)\n",
                   100 * hidden);
            printf("  rank  sent bytes  formula (Nk-n_next)*row  even (R-1)/R*N*row  received  "
                   "wait ms  device ms  blocks (skipped)\n");
            for (size_t r = 0; r < R; r++)
                printf("  %4zu  %10.0f  %23zu  %18.0f  %8.0f  %7.2f  %9.2f  %.0f (%.0f)\n", r,
                       all[6 * r], (N - bytes[(r + 1) % R] / row) * row, even, all[6 * r + 1],
                       all[6 * r + 2], all[6 * r + 3], all[6 * r + 4], all[6 * r + 5]);
        }
    }
    free(all), free(bytes), free(cc.buf[0]), free(cc.buf[1]);
    clattn_ring_destroy(rcall.ring);
    if (!e)
        release_buffers(b, 4);
    clattn_context_destroy(ctx);
    MPI_Finalize();
    return rc;
}

#endif
