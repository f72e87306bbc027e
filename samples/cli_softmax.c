/* clattn run softmax / clattn bench softmax: exact attention. `run` goes through the plan API
 * (descriptor -> plan -> enqueue -> read back), so it doubles as an example of it. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SGEMM_SIZE 2048
/* bench softmax --variants window: the sliding window's width (window_left + 1). */
#define BENCH_WINDOW 4096

void cli_usage_softmax(FILE *f)
{
    fprintf(f,
            "  clattn run softmax --q Q.npy --k K.npy --v V.npy -o OUT.npy [--causal]\n"
            "         [--scale S] [--key-lengths L.npy] [--lse LSE.npy]\n"
            "         [--algo auto|cpu|gpu|gpu-rows|naive] [--device SEL]\n"
            "         [--bias B.npy] [--mask M.npy] [--alibi | --alibi-slopes S.npy]\n"
            "         [--window L,R] [--softcap C] [--sinks S.npy]\n"
            "         [--block-mask BM.npy --block BQ,BK]\n"
            "         [--block-table BT.npy --page P] [--q-lengths QL.npy | --q-offsets QO.npy]\n"
            "      exact attention on .npy arrays: q [B,Hq,Nq,D], k [B,Hk,Nk,D], v [B,Hk,Nk,Dv]\n"
            "      (Hq a multiple of Hk; D, Dv <= 512), each float32 '<f4', float16 '<f2' or,\n"
            "      with --dtype bf16, bfloat16 ('<u2'/'|V2'), read in their own types (--dtype\n"
            "      converts all three); key lengths int32/int64 [B] in [0, Nk]; writes OUT\n"
            "      [B,Hq,Nq,Dv] in --out-dtype (default f32) and optionally the float32\n"
            "      log-sum-exp LSE [B,Hq,Nq]. --scale defaults to 1/sqrt(D); --causal is\n"
            "      bottom-right aligned when Nq != Nk. Options of real models, all composable:\n"
            "      --bias: additive float bias (f32/f16/bf16, kept in its type; -inf masks),\n"
            "      --mask: uint8 '|u1' or bool '|b1' (nonzero = attend), both broadcast to\n"
            "      [B,Hq,Nq,Nk] by size-1 axes, aligned right as numpy does ([Nq,Nk] is\n"
            "      [1,1,Nq,Nk]; always [B,H,Nq,Nk] order, whatever --layout); --alibi: ALiBi with\n"
            "      the standard slopes of Hq heads, or float32 slopes [Hq] from --alibi-slopes;\n"
            "      --window L,R: keys i'-L..i'+R around the query's bottom-right aligned\n"
            "      position i' (-1: unbounded side); --softcap C > 0: logits C*tanh(s/C);\n"
            "      --sinks: float32 [Hq] sink logits (in the denominator and lse, no value);\n"
            "      --block-mask: uint8/bool [B,Hq,ceil(Nq/BQ),ceil(Nk/BK)] (broadcast as the\n"
            "      mask) with block sizes BQ,BK each 16, 32, 64, 128 or 256: zero blocks skipped\n"
            "      Serving (issue 17): --block-table BT.npy --page P reads k and v as page pools\n"
            "      [num_pages,Hk,P,D or Dv] (P 16, 32, 64, 128 or 256) via an int32/int64 table\n"
            "      [B,max_pages] of page ids (any order, shared; -1: no page, its keys masked):\n"
            "      sequence b's key j is slot j%%P of page BT[b][j/P], Nk = max_pages*P (key\n"
            "      lengths up to it); --q-lengths: int32/int64 [B] in [0,Nq], sequence b's\n"
            "      queries are its first QL[b] rows of q (the rest padding: written as rows\n"
            "      that see no key); --q-offsets: int32/int64 [B+1] from 0 up to T, packed\n"
            "      queries q [1,Hq,T,D] (cu_seqlens; not with --algo naive). With either, a\n"
            "      sequence's rows are aligned to its own key length (row i at i+kl-ql).\n"
            "  clattn bench softmax [--n 1024,2048,...] [--d 64] [--heads 8] [--batch 1]\n"
            "         [--causal] [--csv] [--reps 5] [--variants LIST] [--device SEL]\n"
            "         [--dtype f32,f16,bf16] [--nq N] [--algo auto|cpu|gpu|naive] [--block BQ,BK]\n"
            "      median wall time per variant: tiled (scheduler's choice), tiled-cpu,\n"
            "      tiled-gpu (register-tiled), tiled-gpu-rows (the previous GPU kernel, one\n"
            "      row per work-item), naive (CLBlast GEMMs + softmax), sgemm (CLBlast, M=N=K=%d),\n"
            "      peak (FMA throughput); default tiled,naive,sgemm,peak. Plan build time is\n"
            "      reported apart; the table's 'vs base' column is naive ms / variant ms.\n"
            "      --csv prints op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype,bytes,\n"
            "      footprint_bytes (sgemm rows: nq,nk,d = M,N,K; peak rows: sizes and ms 0).\n"
            "      Attention FLOPs are 4*B*H*Nq*Nk*D, halved with --causal. --dtype times each\n"
            "      listed element type of q/k/v/out (default f32; lse stays f32) in the same run;\n"
            "      --nq sets the query length (default: each --n, so --n 65536 --nq 1 is\n"
            "      single-query long-context attention). bytes: q+k+v+out+lse at their types\n"
            "      (a floor on what an enqueue moves); footprint: plan scratch + those buffers;\n"
            "      'vs f32' is the same variant's f32 ms / this row's ms.\n"
            "      Option variants (issue 16; not in the default list), each on its own shapes\n"
            "      (--n replaces its lengths; --algo picks their family, default auto; --d\n"
            "      their head dim, default 64; FLOPs count only the (query, key) pairs kept):\n"
            "        window: causal sliding window of %d keys (window_left %d, window_right 0)\n"
            "          at N = 16384,32768,65536, plus dense causal at the first N (variant\n"
            "          window-dense); the summary prints time/N normalised to the first N;\n"
            "        blocksparse: random block masks [1,1,Nq/BQ,Nk/BK] (--block, default 64,64)\n"
            "          of densities 10,25,50,100%% at N = 8192; summary: speed-up over 100%%;\n"
            "        bias: a float32 [1,1,N,N] bias (one for every batch and head, the common\n"
            "          case; a full [B,H,N,N] would not fit at large N) vs none at N = 4096;\n"
            "          summary: overhead ratio (biased ms / plain ms);\n"
            "        d512: D = Dv = 128, 256 and 512 at N = 2048 (--d is ignored), with the\n"
            "          peak row measured too; summary: GFLOP/s as fractions of peak.\n"
            "      Their summary follows the table (on stderr with --csv)\n",
            SGEMM_SIZE, BENCH_WINDOW, BENCH_WINDOW - 1);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn run softmax                                                                             */
/* ---------------------------------------------------------------------------------------------- */

/* Softmax attention takes D and Dv up to 512 (issue 16); the other operators keep MAX_HEAD_DIM. */
#define SOFTMAX_MAX_HEAD_DIM 512

typedef struct run_args {
    const char *q, *k, *v, *out, *lse, *scale, *key_lengths, *algo, *device;
    /* options of real models (issue 16) */
    const char *bias, *mask, *alibi_slopes, *window, *softcap, *sinks, *block_mask, *block;
    int causal, alibi;
    /* serving (issue 17): paged K/V, per-sequence query lengths, packed queries */
    const char *block_table, *page, *q_lengths, *q_offsets;
} run_args;

/* The serving inputs of a run (issue 17), read before any device work: the logical batch B (k's,
 * or the block table's rows) and key length Nk (k's, or max_pages * page), and the int32 arrays
 * (NULL when not given). */
typedef struct serving {
    size_t batch, nk, page, max_pages;
    int32_t *kl, *ql, *qo, *bt;
} serving;

/* The option files of a run, read before any device work: each tensor with its shape aligned
 * right to rank 4 (size-1 axes broadcast), slopes and sinks as Hq floats. */
typedef struct opt_files {
    npy_array bias, mask, slopes, sinks, bmask;
    size_t bias_shape[4], mask_shape[4], bmask_shape[4];
    clattn_dtype bias_dtype;
} opt_files;

static void opt_files_free(opt_files *of)
{
    npy_free(&of->bias);
    npy_free(&of->mask);
    npy_free(&of->slopes);
    npy_free(&of->sinks);
    npy_free(&of->bmask);
}

static int check_qkv_shapes(const run_args *ra, const npy_array *q, const npy_array *k,
                            const npy_array *v, const serving *sv)
{
    char ks[160], vs[160];
    format_shape(ks, sizeof ks, 4, k->shape);
    format_shape(vs, sizeof vs, 4, v->shape);
    if (memcmp(k->shape, v->shape, 3 * sizeof k->shape[0]) != 0)
        return fail(EXIT_USAGE, "%s (--k) shape %s and %s (--v) shape %s differ before the head "
                    "dim", ra->k, ks, ra->v, vs);
    if (sv->page && (k->shape[2] != sv->page || v->shape[2] != sv->page))
        return fail(EXIT_USAGE, "%s (--k) shape %s is not a page pool [num_pages, Hk, %zu, D] "
                    "(--page %zu)", ra->k, ks, sv->page, sv->page);
    if (ra->q_offsets && q->shape[0] != 1)
        return fail(EXIT_USAGE, "%s (--q): packed queries (--q-offsets) need shape [1, Hq, T, D], "
                    "got batch %zu", ra->q, q->shape[0]);
    if (!ra->q_offsets && q->shape[0] != sv->batch) {
        if (sv->page)
            return fail(EXIT_USAGE, "batch of %s (%zu) differs from the rows of %s (%zu) "
                        "(--block-table)", ra->q, q->shape[0], ra->block_table, sv->batch);
        return fail(EXIT_USAGE, "batch of %s (%zu) differs from batch of %s (%zu)", ra->q,
                    q->shape[0], ra->k, k->shape[0]);
    }
    if (q->shape[3] != k->shape[3])
        return fail(EXIT_USAGE, "head dim of %s (%zu) differs from head dim of %s (%zu)", ra->q,
                    q->shape[3], ra->k, k->shape[3]);
    if (q->shape[1] % k->shape[1] != 0)
        return fail(EXIT_USAGE, "heads of %s (%zu) are not a multiple of heads of %s (%zu)", ra->q,
                    q->shape[1], ra->k, k->shape[1]);
    if (q->shape[3] > SOFTMAX_MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dim %zu exceeds the supported maximum %d", ra->q,
                    q->shape[3], SOFTMAX_MAX_HEAD_DIM);
    if (v->shape[3] > SOFTMAX_MAX_HEAD_DIM)
        return fail(EXIT_USAGE, "%s: head dim %zu exceeds the supported maximum %d", ra->v,
                    v->shape[3], SOFTMAX_MAX_HEAD_DIM);
    return 0;
}

/* Aligns the shape of `a` (file `path` of option `opt`) right to rank 4 into shape[], as numpy
 * broadcasting does ([Nq, Nk] -> [1, 1, Nq, Nk]; axes beyond four must be 1); each axis must be 1
 * or full's. 0 or EXIT_USAGE after a message naming the file and both shapes. */
static int broadcast_shape(const char *path, const char *opt, const npy_array *a,
                           const size_t full[4], size_t shape[4])
{
    int ok = 1;
    for (int i = 0; i < 4; i++)
        shape[i] = 1;
    for (int i = 0; i < a->ndim; i++) {
        size_t n = a->shape[a->ndim - 1 - i];
        if (i < 4) {
            shape[3 - i] = n;
            ok &= n == 1 || n == full[3 - i];
        } else {
            ok &= n == 1;
        }
    }
    if (ok)
        return 0;
    char have[160], want[160];
    format_shape(have, sizeof have, a->ndim, a->shape);
    format_shape(want, sizeof want, 4, full);
    return fail(EXIT_USAGE, "%s (%s): shape %s does not broadcast to %s", path, opt, have, want);
}

/* --bias: float32, float16 or bfloat16 ('<u2'/'|V2' with --dtype bf16, as load_tensor reads
 * them), kept in the file's type whatever --dtype says (the plan takes any float bias). */
static int load_bias(const char *path, npy_array *a, clattn_dtype *dt)
{
    char err[512];
    if (npy_read(path, a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    switch (a->dtype) {
    case NPY_F32:
        *dt = CLATTN_F32;
        return 0;
    case NPY_F16:
        *dt = CLATTN_F16;
        return 0;
    case NPY_U16:
    case NPY_V2:
        if (cli_get_in_dtype() != CLATTN_BF16)
            return fail(EXIT_USAGE, "%s (--bias): dtype %s holds bfloat16 words only with --dtype "
                        "bf16 (pass it, or save the bias as float32 or float16)", path,
                        dtype_name(a->dtype));
        *dt = CLATTN_BF16;
        return 0;
    default:
        return fail(EXIT_USAGE, "%s (--bias): dtype %s, expected float32, float16 or bfloat16",
                    path, dtype_name(a->dtype));
    }
}

/* A uint8 '|u1' or bool '|b1' file broadcast to full (--mask, --block-mask). */
static int load_u8(const char *path, const char *opt, const size_t full[4], npy_array *a,
                   size_t shape[4])
{
    char err[512];
    if (npy_read(path, a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    if (a->dtype != NPY_U8 && a->dtype != NPY_B1)
        return fail(EXIT_USAGE, "%s (%s): dtype %s, expected uint8 '|u1' or bool '|b1'", path,
                    opt, dtype_name(a->dtype));
    return broadcast_shape(path, opt, a, full, shape);
}

/* float32 values of every query head (--alibi-slopes, --sinks): any rank, hq elements. */
static int load_per_head(const char *path, const char *opt, size_t hq, npy_array *a)
{
    int rc = load_f32(path, opt, 0, a);
    if (rc)
        return rc;
    if (a->count != hq) {
        char shp[160];
        format_shape(shp, sizeof shp, a->ndim, a->shape);
        return fail(EXIT_USAGE, "%s (%s): shape %s holds %zu values, expected %zu (one per "
                    "query head)", path, opt, shp, a->count, hq);
    }
    return 0;
}

/* Reads the option files for q [B,Hq,Nq,D] and k [B,Hk,Nk,D]: 0 or EXIT_USAGE after a message. */
static int load_opt_files(const run_args *ra, const clattn_softmax_desc *desc, const npy_array *q,
                          const serving *sv, opt_files *of)
{
    /* logical [B, Hq, Nq, Nk]: B and Nk from the serving inputs (pools, packed queries) */
    const size_t full[4] = {sv->batch, q->shape[1], q->shape[2], sv->nk};
    int rc = 0;
    if (ra->bias && ((rc = load_bias(ra->bias, &of->bias, &of->bias_dtype)) ||
                     (rc = broadcast_shape(ra->bias, "--bias", &of->bias, full, of->bias_shape))))
        return rc;
    if (ra->mask && (rc = load_u8(ra->mask, "--mask", full, &of->mask, of->mask_shape)))
        return rc;
    if (ra->alibi_slopes &&
        (rc = load_per_head(ra->alibi_slopes, "--alibi-slopes", full[1], &of->slopes)))
        return rc;
    if (ra->sinks && (rc = load_per_head(ra->sinks, "--sinks", full[1], &of->sinks)))
        return rc;
    if (ra->block_mask) {
        const size_t bfull[4] = {full[0], full[1], (full[2] + desc->block_q - 1) / desc->block_q,
                                 (full[3] + desc->block_k - 1) / desc->block_k};
        if ((rc = load_u8(ra->block_mask, "--block-mask", bfull, &of->bmask, of->bmask_shape)))
            return rc;
    }
    return 0;
}

/* "A,B": two decimal integers (an optional leading '-') in [lo, hi], nothing else: 0 or -1. */
static int parse_pair(const char *s, long lo, long hi, long out[2])
{
    const char *p = s;
    for (int i = 0; i < 2; i++) {
        const char *d = p + (*p == '-');
        if (*d < '0' || *d > '9')
            return -1;
        char *end = NULL;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno == ERANGE || x < lo || x > hi || *end != (i == 0 ? ',' : '\0'))
            return -1;
        out[i] = x;
        p = end + 1;
    }
    return 0;
}

/* The issue 16 options that need no file, into desc: 0 or EXIT_USAGE after a message. */
static int run_check_model_options(const run_args *ra, clattn_softmax_desc *desc)
{
    const char *cmd = "run softmax";
    int rc;
    long w[2], b[2];
    if (ra->window) {
        if (parse_pair(ra->window, -1, INT_MAX, w) != 0)
            return fail(EXIT_USAGE, "%s: --window '%s' is not L,R (two integers, each >= 0, or "
                        "-1 for an unbounded side)", cmd, ra->window);
        desc->window_left = (int)w[0];
        desc->window_right = (int)w[1];
    }
    if (ra->softcap &&
        (rc = float_option(cmd, "--softcap", ra->softcap, 0, INFINITY, 0, &desc->softcap)))
        return rc;
    if (ra->block && !ra->block_mask)
        return fail(EXIT_USAGE, "%s: --block needs --block-mask", cmd);
    if (ra->block_mask && !ra->block)
        return fail(EXIT_USAGE, "%s: --block-mask needs --block BQ,BK", cmd);
    if (ra->block) {
        if (parse_pair(ra->block, 1, 256, b) != 0 || (b[0] & (b[0] - 1)) || (b[1] & (b[1] - 1)) ||
            b[0] < 16 || b[1] < 16)
            return fail(EXIT_USAGE, "%s: --block '%s' is not BQ,BK with each of 16, 32, 64, 128 "
                        "or 256", cmd, ra->block);
        desc->block_q = (unsigned)b[0];
        desc->block_k = (unsigned)b[1];
    }
    desc->alibi = ra->alibi || ra->alibi_slopes;
    return 0;
}

/* "[a,b,c,d]" without spaces (the summary separates options with ", "). */
static void compact_shape(char *buf, size_t len, const size_t shape[4])
{
    snprintf(buf, len, "[%zu,%zu,%zu,%zu]", shape[0], shape[1], shape[2], shape[3]);
}

/* The options of a run for its summary line ("" when none). */
static void describe_options(const run_args *ra, const clattn_softmax_desc *desc,
                             const opt_files *of, const npy_array *q, const npy_array *v,
                             char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (n < len)                                                                               \
            n += (size_t)snprintf(buf + n, len - n, "%s", n ? ", " : "options ");                 \
        if (n < len)                                                                               \
            n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);                                  \
    } while (0)
    char shp[160];
    if (ra->bias) {
        compact_shape(shp, sizeof shp, of->bias_shape);
        ADD("bias %s %s %s", ra->bias, shp, clattn_dtype_name(of->bias_dtype));
    }
    if (ra->mask) {
        compact_shape(shp, sizeof shp, of->mask_shape);
        ADD("mask %s %s", ra->mask, shp);
    }
    if (desc->alibi)
        ADD("alibi %s", ra->alibi_slopes ? ra->alibi_slopes : "(standard slopes)");
    if (ra->window)
        ADD("window %d,%d", desc->window_left, desc->window_right);
    if (desc->softcap > 0)
        ADD("softcap %g", (double)desc->softcap);
    if (ra->sinks)
        ADD("sinks %s", ra->sinks);
    if (ra->block_mask) {
        compact_shape(shp, sizeof shp, of->bmask_shape);
        ADD("block-mask %s %s block %u,%u", ra->block_mask, shp, desc->block_q, desc->block_k);
    }
    if (v->shape[3] != q->shape[3])
        ADD("dv %zu", v->shape[3]);
#undef ADD
}

/* Reads int32 or int64 key lengths [B], each in [0, nk], into a malloc'd int32 array. */
static int load_key_lengths(const char *path, size_t batch, size_t nk, int32_t **out)
{
    npy_array a;
    char err[512];
    *out = NULL;
    if (npy_read(path, &a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    int rc = 0;
    char shp[160];
    format_shape(shp, sizeof shp, a.ndim, a.shape);
    if (a.dtype != NPY_I32 && a.dtype != NPY_I64)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): dtype %s, expected int32 or int64", path,
                  dtype_name(a.dtype));
    else if (a.ndim != 1 || a.shape[0] != batch)
        rc = fail(EXIT_USAGE, "%s (--key-lengths): shape %s, expected [%zu] (one per batch)", path,
                  shp, batch);
    int32_t *kl = rc ? NULL : malloc((batch ? batch : 1) * sizeof *kl);
    if (!rc && !kl)
        rc = fail(EXIT_RUNTIME, "out of memory");
    for (size_t b = 0; !rc && b < batch; b++) {
        int64_t x =
            a.dtype == NPY_I32 ? ((const int32_t *)a.data)[b] : ((const int64_t *)a.data)[b];
        if (x < 0 || (uint64_t)x > nk)
            rc = fail(EXIT_USAGE, "%s (--key-lengths): key_lengths[%zu] = %lld outside [0, %zu]",
                      path, b, (long long)x, nk);
        else
            kl[b] = (int32_t)x;
    }
    npy_free(&a);
    if (rc)
        free(kl);
    else
        *out = kl;
    return rc;
}

/* Reads an int32 or int64 file of rank 1 ([want[1]]) or 2 ([want[0] or any rows, want[1] or any
 * columns]) into a malloc'd int32 array, every value in [lo, hi] (a message naming `name` and the
 * first bad index otherwise; `expect` describes the shape wanted). shape[] gets the file's shape
 * (rank 1: {1, n}). 0 or EXIT_USAGE after a message. */
static int load_ints(const char *path, const char *opt, const char *name, int ndim,
                     const size_t want[2], const char *expect, long long lo, long long hi,
                     int32_t **out, size_t shape[2])
{
    npy_array a;
    char err[512], shp[160];
    *out = NULL;
    if (npy_read(path, &a, err, sizeof err) != 0)
        return fail(EXIT_USAGE, "%s", err);
    format_shape(shp, sizeof shp, a.ndim, a.shape);
    int rc = 0;
    shape[0] = ndim == 2 && a.ndim == 2 ? a.shape[0] : 1;
    shape[1] = a.ndim >= 1 ? a.shape[a.ndim - 1] : 0;
    if (a.dtype != NPY_I32 && a.dtype != NPY_I64)
        rc = fail(EXIT_USAGE, "%s (%s): dtype %s, expected int32 or int64", path, opt,
                  dtype_name(a.dtype));
    else if (a.ndim != ndim || shape[0] == 0 || shape[1] == 0 ||
             (ndim == 2 && want[0] && shape[0] != want[0]) || (want[1] && shape[1] != want[1]))
        rc = fail(EXIT_USAGE, "%s (%s): shape %s, expected %s", path, opt, shp, expect);
    size_t n = rc ? 0 : shape[0] * shape[1];
    int32_t *x = rc ? NULL : malloc(n * sizeof *x);
    if (!rc && !x)
        rc = fail(EXIT_RUNTIME, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        int64_t e = a.dtype == NPY_I32 ? ((const int32_t *)a.data)[i]
                                       : ((const int64_t *)a.data)[i];
        if (e < lo || e > hi) {
            char at[64];
            if (ndim == 2)
                snprintf(at, sizeof at, "[%zu][%zu]", i / shape[1], i % shape[1]);
            else
                snprintf(at, sizeof at, "[%zu]", i);
            rc = fail(EXIT_USAGE, "%s (%s): %s%s = %lld outside [%lld, %lld]", path, opt, name,
                      at, (long long)e, lo, hi);
        } else {
            x[i] = (int32_t)e;
        }
    }
    npy_free(&a);
    if (rc)
        free(x);
    else
        *out = x;
    return rc;
}

/* --page and --block-table: the table int32/int64 [B, max_pages], each id in [-1, num_pages) (-1:
 * no page, its keys masked as the library masks any id outside the pool); B and Nk follow. */
static int load_block_table(const run_args *ra, const npy_array *k, serving *sv)
{
    const size_t any[2] = {0, 0};
    size_t shape[2];
    if (k->shape[0] > INT32_MAX)
        return fail(EXIT_USAGE, "%s (--k): %zu pages, more than int32 ids can name", ra->k,
                    k->shape[0]);
    int rc = load_ints(ra->block_table, "--block-table", "block_table", 2, any,
                       "[B, max_pages] (a row of page ids per sequence)", -1,
                       (long long)k->shape[0] - 1, &sv->bt, shape);
    if (rc)
        return rc;
    if (shape[1] > ((size_t)1 << 31) / sv->page)
        return fail(EXIT_USAGE, "%s (--block-table): %zu pages of %zu keys per sequence, beyond "
                    "2^31 keys", ra->block_table, shape[1], sv->page);
    sv->batch = shape[0];
    sv->max_pages = shape[1];
    sv->nk = shape[1] * sv->page;
    return 0;
}

/* --q-lengths int32/int64 [B] in [0, Nq]; --q-offsets int32/int64 [B + 1], nondecreasing from 0
 * to T (cu_seqlens: every packed row belongs to one sequence). */
static int load_query_seqs(const run_args *ra, const npy_array *q, serving *sv)
{
    size_t shape[2], want[2] = {1, sv->batch};
    char expect[96];
    int rc = 0;
    if (ra->q_lengths) {
        snprintf(expect, sizeof expect, "[%zu] (one per sequence)", sv->batch);
        rc = load_ints(ra->q_lengths, "--q-lengths", "q_lengths", 1, want, expect, 0,
                       (long long)q->shape[2], &sv->ql, shape);
    }
    if (!rc && ra->q_offsets) {
        const size_t t = q->shape[2];
        want[1] = sv->batch + 1;
        snprintf(expect, sizeof expect, "[%zu] (B + 1 offsets)", sv->batch + 1);
        rc = load_ints(ra->q_offsets, "--q-offsets", "q_offsets", 1, want, expect, 0,
                       (long long)t, &sv->qo, shape);
        for (size_t b = 0; !rc && b < sv->batch; b++)
            if (sv->qo[b + 1] < sv->qo[b])
                rc = fail(EXIT_USAGE, "%s (--q-offsets): q_offsets[%zu] = %d is below "
                          "q_offsets[%zu] = %d (offsets must not decrease)", ra->q_offsets,
                          b + 1, (int)sv->qo[b + 1], b, (int)sv->qo[b]);
        if (!rc && (sv->qo[0] != 0 || (size_t)sv->qo[sv->batch] != t))
            rc = fail(EXIT_USAGE, "%s (--q-offsets): offsets run from %d to %d, expected 0 to "
                      "%zu (the packed rows of %s)", ra->q_offsets, (int)sv->qo[0],
                      (int)sv->qo[sv->batch], t, ra->q);
    }
    return rc;
}

/* The serving inputs for the summary line, after describe_options' text in buf. */
static void describe_serving(const run_args *ra, const serving *sv, char *buf, size_t len)
{
    size_t n = strlen(buf);
    const char *sep = n ? ", " : "options ";
    if (sv->bt && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%spaged %s [%zu,%zu] page %zu", sep,
                              ra->block_table, sv->batch, sv->max_pages, sv->page);
    sep = n ? ", " : "options ";
    if (sv->ql && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%sq-lengths %s", sep, ra->q_lengths);
    if (sv->qo && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%sq-offsets %s", sep, ra->q_offsets);
}

static void serving_free(serving *sv)
{
    free(sv->kl);
    free(sv->ql);
    free(sv->qo);
    free(sv->bt);
}

static int parse_algo(const char *s, clattn_softmax_algo *algo)
{
    static const struct {
        const char *name;
        clattn_softmax_algo algo;
    } names[] = {{"auto", CLATTN_SOFTMAX_AUTO},           {"cpu", CLATTN_SOFTMAX_TILED_CPU},
                 {"tiled-cpu", CLATTN_SOFTMAX_TILED_CPU}, {"gpu", CLATTN_SOFTMAX_TILED_GPU},
                 {"tiled-gpu", CLATTN_SOFTMAX_TILED_GPU}, {"naive", CLATTN_SOFTMAX_NAIVE},
                 {"gpu-rows", CLATTN_SOFTMAX_TILED_GPU_ROWS},
                 {"tiled-gpu-rows", CLATTN_SOFTMAX_TILED_GPU_ROWS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *algo = names[i].algo;
            return 0;
        }
    return -1;
}

/* Options that need no file: parsed before anything is read so that typos fail fast. */
static int run_check_options(const run_args *ra, clattn_softmax_desc *desc)
{
    const char *missing = !ra->q ? "--q" : !ra->k ? "--k" : !ra->v ? "--v" : !ra->out ? "-o" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "run softmax: missing required option %s (needs --q, --k, --v, -o)",
                    missing);
    if (ra->lse && strcmp(ra->lse, ra->out) == 0)
        return fail(EXIT_USAGE, "run softmax: --lse and -o name the same file '%s'", ra->out);
    clattn_softmax_desc_init(desc);
    desc->causal = ra->causal;
    int rc;
    if (ra->scale && (rc = float_option("run softmax", "--scale", ra->scale, -INFINITY, INFINITY,
                                        0, &desc->scale)))
        return rc;
    if (ra->algo && parse_algo(ra->algo, &desc->algorithm) != 0)
        return fail(EXIT_USAGE, "run softmax: --algo '%s' is not one of auto, cpu, gpu, naive",
                    ra->algo);
    /* serving (issue 17) */
    if (ra->block_table && !ra->page)
        return fail(EXIT_USAGE, "run softmax: --block-table needs --page P (tokens per page)");
    if (ra->page && !ra->block_table)
        return fail(EXIT_USAGE, "run softmax: --page needs --block-table BT.npy");
    if (ra->page) {
        size_t p = 0;
        if (parse_size(ra->page, 16, 256, &p) != 0 || (p & (p - 1)))
            return fail(EXIT_USAGE, "run softmax: --page '%s' is not 16, 32, 64, 128 or 256",
                        ra->page);
        desc->page_size = p;
    }
    if (ra->q_lengths && ra->q_offsets)
        return fail(EXIT_USAGE, "run softmax: --q-lengths and --q-offsets exclude each other "
                    "(padded or packed queries)");
    return run_check_model_options(ra, desc);
}

/* Uploads the inputs, bakes the plan, enqueues it and reads out (and lse) back: 0 or an exit code
 * after a message. */
static int run_on_device(clattn_context *ctx, clattn_softmax_desc *desc, const npy_array *q,
                         const npy_array *k, const npy_array *v, const serving *sv,
                         const opt_files *of, void *out, float *lse, clattn_plan **plan)
{
    cli_io io, oio; /* oio: the option tensors (inputs only) */
    cli_io_init(&io, ctx);
    cli_io_init(&oio, ctx);
    const size_t rows = q->count / q->shape[3], lse_shape[4] = {q->shape[0], q->shape[1],
                                                                q->shape[2], 1};
    const size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    size_t eq = clattn_dtype_size(desc->q_dtype), ek = clattn_dtype_size(desc->k_dtype),
           ev = clattn_dtype_size(desc->v_dtype), eo = clattn_dtype_size(desc->out_dtype);
    cl_mem bq = cli_io_in(&io, q->data, q->count * eq), bk = cli_io_in(&io, k->data, k->count * ek),
           bv = cli_io_in(&io, v->data, v->count * ev),
           bo = cli_io_out(&io, out, rows * oshape[3] * eo),
           bl = lse ? cli_io_out(&io, lse, rows * 4) : NULL;
    desc->key_lengths = sv->kl ? cli_io_in(&io, sv->kl, sv->batch * 4) : NULL;
    desc->q_lengths = sv->ql ? cli_io_in(&oio, sv->ql, sv->batch * 4) : NULL;
    desc->q_offsets = sv->qo ? cli_io_in(&oio, sv->qo, (sv->batch + 1) * 4) : NULL;
    if (sv->bt)
        desc->block_table = clattn_tensor_make(
            cli_io_in(&oio, sv->bt, sv->batch * sv->max_pages * 4), 1, 1, sv->batch,
            sv->max_pages);
    if (of->bias.data) {
        desc->bias = cli_tensor_typed(
            cli_io_in(&oio, of->bias.data, of->bias.count * clattn_dtype_size(of->bias_dtype)),
            of->bias_shape, of->bias_dtype);
    }
    if (of->mask.data)
        desc->mask = cli_tensor_typed(cli_io_in(&oio, of->mask.data, of->mask.count),
                                      of->mask_shape, CLATTN_U8);
    if (of->bmask.data)
        desc->block_mask = cli_tensor_typed(cli_io_in(&oio, of->bmask.data, of->bmask.count),
                                            of->bmask_shape, CLATTN_U8);
    desc->alibi_slopes = of->slopes.data ? cli_io_in(&oio, of->slopes.data, of->slopes.count * 4)
                                         : NULL;
    desc->sinks = of->sinks.data ? cli_io_in(&oio, of->sinks.data, of->sinks.count * 4) : NULL;
    int rc = cli_io_check(&io);
    if (!rc)
        rc = cli_io_check(&oio);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_softmax_plan_create(ctx, desc, q->shape, k->shape, v->shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tk = cli_tensor_typed(bk, k->shape, desc->k_dtype),
                  tv = cli_tensor_typed(bv, v->shape, desc->v_dtype),
                  to = cli_tensor_typed(bo, oshape, desc->out_dtype),
                  tl = cli_tensor(bl, lse_shape);
    cl_event done = NULL;
    st = clattn_softmax_plan_enqueue(*plan, &tq, &tk, &tv, &to, lse ? &tl : NULL, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "attention failed");
cleanup:
    cli_io_end(&io);
    cli_io_end(&oio);
    desc->key_lengths = desc->q_lengths = desc->q_offsets = NULL;
    desc->bias.buffer = desc->mask.buffer = desc->block_mask.buffer = NULL;
    desc->block_table.buffer = NULL;
    desc->alibi_slopes = desc->sinks = NULL;
    return rc;
}

static int run_softmax(const run_args *ra)
{
    clattn_softmax_desc desc;
    int rc = run_check_options(ra, &desc);
    if (rc)
        return rc;

    npy_array q, k, v;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    serving sv;
    memset(&sv, 0, sizeof sv);
    void *out = NULL;
    float *lse = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    opt_files of;
    memset(&of, 0, sizeof of);

    /* Half files stay half: the plan is baked for the types read (or --dtype's). */
    if ((rc = load_tensor(ra->q, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(ra->k, "--k", 4, &k, &desc.k_dtype)) ||
        (rc = load_tensor(ra->v, "--v", 4, &v, &desc.v_dtype)))
        goto cleanup;
    /* the logical batch and key length: k's, or the block table's over page pools */
    sv.page = desc.page_size;
    sv.batch = k.shape[0];
    sv.nk = k.shape[2];
    if ((sv.page && (rc = load_block_table(ra, &k, &sv))) ||
        (rc = check_qkv_shapes(ra, &q, &k, &v, &sv)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    if (ra->key_lengths && (rc = load_key_lengths(ra->key_lengths, sv.batch, sv.nk, &sv.kl)))
        goto cleanup;
    if ((rc = load_query_seqs(ra, &q, &sv)) || (rc = load_opt_files(ra, &desc, &q, &sv, &of)))
        goto cleanup;
    const size_t oshape[4] = {q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
    const size_t ocount = oshape[0] * oshape[1] * oshape[2] * oshape[3];

    out = malloc(ocount * clattn_dtype_size(desc.out_dtype));
    lse = ra->lse ? malloc(q.count / q.shape[3] * sizeof *lse) : NULL;
    if (!out || (ra->lse && !lse)) {
        rc = fail(EXIT_RUNTIME, "out of memory for the outputs");
        goto cleanup;
    }
    if ((rc = open_context(ra->device, &ctx)) ||
        (rc = run_on_device(ctx, &desc, &q, &k, &v, &sv, &of, out, lse, &plan)))
        goto cleanup;
    if ((rc = write_tensor(ra->out, out, desc.out_dtype, 4, oshape)))
        goto cleanup;
    if (ra->lse && (rc = write_f32(ra->lse, lse, 3, q.shape))) {
        remove(ra->out); /* no half-result left behind */
        goto cleanup;
    }
    char opts[1024];
    describe_options(ra, &desc, &of, &q, &v, opts, sizeof opts);
    describe_serving(ra, &sv, opts, sizeof opts);
    cli_run_summary_with(ctx, "softmax", plan, opts);
cleanup:
    opt_files_free(&of);
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    serving_free(&sv);
    free(out);
    free(lse);
    return rc;
}

int cli_run_softmax(int argc, char **argv)
{
    run_args ra;
    memset(&ra, 0, sizeof ra);
    const opt_spec specs[] = {
        {"--q", NULL, &ra.q, NULL},
        {"--k", NULL, &ra.k, NULL},
        {"--v", NULL, &ra.v, NULL},
        {"--out", "-o", &ra.out, NULL},
        {"--lse", NULL, &ra.lse, NULL},
        {"--scale", NULL, &ra.scale, NULL},
        {"--key-lengths", NULL, &ra.key_lengths, NULL},
        {"--algo", NULL, &ra.algo, NULL},
        {"--device", NULL, &ra.device, NULL},
        {"--causal", NULL, NULL, &ra.causal},
        {"--bias", NULL, &ra.bias, NULL},
        {"--mask", NULL, &ra.mask, NULL},
        {"--alibi", NULL, NULL, &ra.alibi},
        {"--alibi-slopes", NULL, &ra.alibi_slopes, NULL},
        {"--window", NULL, &ra.window, NULL},
        {"--softcap", NULL, &ra.softcap, NULL},
        {"--sinks", NULL, &ra.sinks, NULL},
        {"--block-mask", NULL, &ra.block_mask, NULL},
        {"--block", NULL, &ra.block, NULL},
        {"--block-table", NULL, &ra.block_table, NULL},
        {"--page", NULL, &ra.page, NULL},
        {"--q-lengths", NULL, &ra.q_lengths, NULL},
        {"--q-offsets", NULL, &ra.q_offsets, NULL},
    };
    int help = 0;
    int rc = parse_options(argc, argv, 2, "run softmax", specs, OPT_COUNT(specs), &help);
    if (rc)
        return rc;
    if (help) { /* the dispatcher answers --help first; kept for direct callers */
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_softmax, "run softmax");
        return 0;
    }
    return run_softmax(&ra);
}

/* ---------------------------------------------------------------------------------------------- */
/* clattn bench softmax                                                                           */
/* ---------------------------------------------------------------------------------------------- */

typedef enum variant_id {
    V_TILED,
    V_TILED_CPU,
    V_TILED_GPU,
    V_TILED_GPU_ROWS,
    V_NAIVE,
    V_SGEMM,
    V_PEAK,
    /* The option variants of issue 16: each a scenario on its own shapes (bench_options). */
    V_WINDOW,
    V_BLOCKSPARSE,
    V_BIAS,
    V_D512,
    V_COUNT
} variant_id;

static const char *const VARIANT_NAMES[V_COUNT] = {
    "tiled", "tiled-cpu", "tiled-gpu", "tiled-gpu-rows", "naive", "sgemm", "peak",
    "window", "blocksparse", "bias", "d512"};
static const clattn_softmax_algo VARIANT_ALGO[V_COUNT] = {
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_TILED_GPU,
    CLATTN_SOFTMAX_TILED_GPU_ROWS, CLATTN_SOFTMAX_NAIVE,
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO,
    CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO, CLATTN_SOFTMAX_AUTO};
#define IS_ATTENTION(v) ((v) <= V_NAIVE)
#define IS_OPTION_VARIANT(v) ((v) >= V_WINDOW)

typedef struct bench_config {
    size_t ns[MAX_SWEEP];
    size_t n_count;
    size_t d, heads, batch, reps;
    size_t nq; /* query length; 0: each n (Nq = Nk) */
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    int causal, csv;
    int order[V_COUNT];
    int n_variants;
    const char *device;
    /* The option variants: --algo (their family), whether --n was given (else each has its own
     * lengths), --block. */
    clattn_softmax_algo algo;
    int n_given;
    unsigned block_q, block_k;
} bench_config;

typedef struct plan_job {
    clattn_plan *plan;
    clattn_tensor t[5]; /* q, k, v, out, lse */
} plan_job;

/* A bench row with the columns softmax adds: the element type of q/k/v/out, the bytes an
 * enqueue must move at least (q, k, v, out at their types + the float32 lse: an analytic floor),
 * and the footprint (the plan's scratch_bytes + the q/k/v/out/lse buffers). */
typedef struct softmax_row {
    bench_row b;
    clattn_dtype dtype;
    double bytes, footprint;
} softmax_row;

/* Five buffers of one bench point: q [B,H,Nq,D], k, v [B,H,Nk,D] random in [-1, 1) rounded to dt,
 * out [B,H,Nq,D] of dt and lse [B,H,Nq] float32. CL_SUCCESS or the error (bufs all NULL). */
static cl_int typed_buffers(clattn_context *ctx, clattn_dtype dt, size_t nq_el, size_t nk_el,
                            size_t rows, cl_mem bufs[5])
{
    cl_context clctx = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    size_t es = clattn_dtype_size(dt), big = nq_el > nk_el ? nq_el : nk_el;
    const size_t sizes[5] = {nq_el * es, nk_el * es, nk_el * es, nq_el * es, rows * 4};
    float *host = malloc(big * sizeof *host);
    void *conv = malloc(big * es);
    cl_int err = host && conv ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
    for (int i = 0; i < 5; i++)
        bufs[i] = NULL;
    for (int i = 0; i < 5 && err == CL_SUCCESS; i++) {
        bufs[i] = clCreateBuffer(clctx, i < 3 ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE, sizes[i],
                                 NULL, &err);
        if (err == CL_SUCCESS && i < 3) {
            size_t n = sizes[i] / es;
            fill_random(host, n, (uint64_t)i + 1);
            if (clattn_convert_host(host, CLATTN_F32, conv, dt, n) != CLATTN_SUCCESS)
                err = CL_INVALID_VALUE;
            else
                err = clEnqueueWriteBuffer(queue, bufs[i], CL_TRUE, 0, sizes[i], conv, 0, NULL,
                                           NULL);
        }
    }
    free(host);
    free(conv);
    if (err != CL_SUCCESS)
        release_buffers(bufs, 5);
    return err;
}

/* The wall clock is used for every variant because the tiled CPU family runs a packing kernel
 * before the one whose event the plan returns. */
static clattn_status plan_enqueue(void *arg)
{
    plan_job *j = arg;
    return clattn_softmax_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], &j->t[4],
                                       0, NULL, NULL);
}

/* Bakes `desc` for q [B,H,nq,d], k and v [B,H,n,d] (its option tensors set by the caller) and
 * times it on bufs (typed_buffers of that shape); row `name` with FLOPs 4*B*H*pairs*d, pairs
 * being the (query, key) pairs the options keep. 0 with *sr filled, or -1 after a note. */
static int time_desc(clattn_context *ctx, const bench_config *cfg, const clattn_softmax_desc *desc,
                     size_t nq, size_t n, size_t d, double pairs, const char *name,
                     cl_mem bufs[5], const progress *prog, softmax_row *sr)
{
    bench_row *r = &sr->b;
    clattn_dtype dt = desc->q_dtype;
    const size_t qshape[4] = {cfg->batch, cfg->heads, nq, d};
    const size_t kshape[4] = {cfg->batch, cfg->heads, n, d};
    plan_job job;
    memset(&job, 0, sizeof job);

    double t0 = now_ms();
    clattn_status st = clattn_softmax_plan_create(ctx, desc, qshape, kshape, kshape, &job.plan);
    r->build_ms = now_ms() - t0;
    if (st != CLATTN_SUCCESS) {
        note(prog, "%s %s N=%zu D=%zu skipped: %s", name, clattn_dtype_name(dt), n, d,
             lib_error(ctx, st));
        return -1;
    }
    clattn_plan_info pi;
    size_t scratch = 0;
    if (clattn_plan_get_info(job.plan, &pi) == CLATTN_SUCCESS) {
        snprintf(r->kernel, sizeof r->kernel, "%s", pi.variant);
        scratch = pi.scratch_bytes;
    }
    job.t[0] = clattn_tensor_make_typed(bufs[0], dt, cfg->batch, cfg->heads, nq, d);
    job.t[1] = clattn_tensor_make_typed(bufs[1], dt, cfg->batch, cfg->heads, n, d);
    job.t[2] = clattn_tensor_make_typed(bufs[2], dt, cfg->batch, cfg->heads, n, d);
    job.t[3] = clattn_tensor_make_typed(bufs[3], dt, cfg->batch, cfg->heads, nq, d);
    job.t[4] = clattn_tensor_make(bufs[4], cfg->batch, cfg->heads, nq, 1);
    st = time_median(ctx, plan_enqueue, &job, cfg->reps, &r->ms);
    if (st != CLATTN_SUCCESS)
        note(prog, "%s %s N=%zu D=%zu failed: %s", name, clattn_dtype_name(dt), n, d,
             lib_error(ctx, st));
    clattn_plan_destroy(job.plan);
    if (st != CLATTN_SUCCESS)
        return -1;
    snprintf(r->op, sizeof r->op, "softmax");
    snprintf(r->variant, sizeof r->variant, "%s", name);
    r->batch = cfg->batch;
    r->heads = cfg->heads;
    r->nq = nq;
    r->nk = n;
    r->d = d;
    r->causal = desc->causal;
    r->gflops = 4.0 * (double)cfg->batch * (double)cfg->heads * pairs * (double)d / (r->ms * 1e6);
    double bh = (double)cfg->batch * (double)cfg->heads, es = (double)clattn_dtype_size(dt);
    double io = bh * ((2.0 * (double)nq + 2.0 * (double)n) * (double)d * es + 4.0 * (double)nq);
    sr->dtype = dt;
    sr->bytes = io;
    sr->footprint = io + (double)scratch;
    return 0;
}

/* Bakes and times one attention variant at length n; 0 with *r filled, or -1 after a note. */
static int bench_attention(clattn_context *ctx, const bench_config *cfg, size_t n, clattn_dtype dt,
                           variant_id var, cl_mem bufs[5], const progress *prog, softmax_row *sr)
{
    size_t nq = cfg->nq ? cfg->nq : n;
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = cfg->causal;
    desc.algorithm = VARIANT_ALGO[var];
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.out_dtype = dt;
    double pairs = (double)nq * (double)n;
    return time_desc(ctx, cfg, &desc, nq, n, cfg->d, cfg->causal ? pairs / 2 : pairs,
                     VARIANT_NAMES[var], bufs, prog, sr);
}

/* Every attention variant at one length and element type, sharing one set of inputs. Returns
 * rows added. */
static size_t bench_length(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, size_t n, clattn_dtype dt, progress *prog,
                           softmax_row *res)
{
    size_t nattn = 0, added = 0;
    for (int i = 0; i < cfg->n_variants; i++)
        nattn += IS_ATTENTION(cfg->order[i]);
    if (nattn == 0)
        return 0;
    size_t nq = cfg->nq ? cfg->nq : n;
    size_t bh = cfg->batch * cfg->heads; /* all bounded by the option ranges */
    size_t nq_el = bh * nq * cfg->d, nk_el = bh * n * cfg->d, big = nq_el > nk_el ? nq_el : nk_el;
    cl_mem bufs[5];
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (big * clattn_dtype_size(dt) <= info->max_alloc_size)
        err = typed_buffers(ctx, dt, nq_el, nk_el, bh * nq, bufs);
    if (err != CL_SUCCESS) {
        note(prog,
             "N=%zu %s skipped: cannot allocate its tensors (largest %zu bytes, max allocation "
             "%llu; OpenCL error %d)",
             n, clattn_dtype_name(dt), big * clattn_dtype_size(dt),
             (unsigned long long)info->max_alloc_size, (int)err);
        prog->step += nattn;
        return 0;
    }
    for (int i = 0; i < cfg->n_variants; i++) {
        variant_id v = (variant_id)cfg->order[i];
        if (!IS_ATTENTION(v))
            continue;
        progress_step(prog, "%s %s N=%zu", VARIANT_NAMES[v], clattn_dtype_name(dt), n);
        softmax_row *r = &res[added];
        memset(r, 0, sizeof *r);
        if (bench_attention(ctx, cfg, n, dt, v, bufs, prog, r) == 0)
            added++;
    }
    release_buffers(bufs, 5);
    return added;
}

/* ---- the option variants (issue 16): window, blocksparse, bias, d512 ---- */

/* q/k/v/out/lse buffers of one option-variant point (Nq = Nk = n, head dim d): 0, or -1 after a
 * note. */
static int point_buffers(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, size_t n, size_t d, clattn_dtype dt,
                         const progress *prog, cl_mem bufs[5])
{
    size_t bh = cfg->batch * cfg->heads, el = bh * n * d;
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (el * clattn_dtype_size(dt) <= info->max_alloc_size)
        err = typed_buffers(ctx, dt, el, el, bh * n, bufs);
    if (err == CL_SUCCESS)
        return 0;
    note(prog, "N=%zu D=%zu %s skipped: cannot allocate its tensors (%zu bytes each; OpenCL "
         "error %d)", n, d, clattn_dtype_name(dt), el * clattn_dtype_size(dt), (int)err);
    return -1;
}

/* A buffer of `bytes` bytes holding `host`: NULL after a note. */
static cl_mem host_buffer(clattn_context *ctx, const void *host, size_t bytes, const char *what,
                          const progress *prog)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx),
                              CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, (void *)host, &err);
    if (err != CL_SUCCESS) {
        note(prog, "%s skipped: cannot allocate it (%zu bytes; OpenCL error %d)", what, bytes,
             (int)err);
        return NULL;
    }
    return m;
}

/* A plain desc of the option variants: --algo, --causal (unless `causal` >= 0 forces it), dt. */
static void option_desc(const bench_config *cfg, clattn_dtype dt, int causal,
                        clattn_softmax_desc *desc)
{
    clattn_softmax_desc_init(desc);
    desc->algorithm = cfg->algo;
    desc->causal = causal >= 0 ? causal : cfg->causal;
    desc->q_dtype = desc->k_dtype = desc->v_dtype = desc->out_dtype = dt;
}

/* The variant's lengths: --n when given, else its default. */
static size_t option_lengths(const bench_config *cfg, const size_t *def, size_t ndef,
                             const size_t **ns)
{
    *ns = cfg->n_given ? cfg->ns : def;
    return cfg->n_given ? cfg->n_count : ndef;
}

static const size_t WINDOW_NS[] = {16384, 32768, 65536}, BLOCKSPARSE_NS[] = {8192},
                    BIAS_NS[] = {4096}, D512_NS[] = {2048}, D512_DS[] = {128, 256, 512};
static const unsigned DENSITIES[] = {10, 25, 50, 100};
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Rows (and progress steps) option variant v adds per element type. */
static size_t option_rows(const bench_config *cfg, variant_id v)
{
    const size_t *ns;
    switch (v) {
    case V_WINDOW:
        return option_lengths(cfg, WINDOW_NS, COUNT_OF(WINDOW_NS), &ns) + 1;
    case V_BLOCKSPARSE:
        return option_lengths(cfg, BLOCKSPARSE_NS, 1, &ns) * COUNT_OF(DENSITIES);
    case V_BIAS:
        return option_lengths(cfg, BIAS_NS, 1, &ns) * 2;
    case V_D512:
        return option_lengths(cfg, D512_NS, 1, &ns) * COUNT_OF(D512_DS);
    default:
        return 0;
    }
}

/* (query, key) pairs a causal window of `w` keys keeps in an n x n problem. */
static double window_pairs(size_t n, size_t w)
{
    double full = n < w ? (double)n : (double)w; /* rows 0..full-1 see i+1 keys, later ones w */
    return full * (full + 1) / 2 + ((double)n - full) * (double)w;
}

/* window: the causal sliding window at each length, and dense causal at the first. */
static size_t bench_window(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, clattn_dtype dt, progress *prog,
                           softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, WINDOW_NS, COUNT_OF(WINDOW_NS), &ns), added = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i];
        cl_mem bufs[5];
        if (point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            prog->step += 1 + (i == 0);
            continue;
        }
        clattn_softmax_desc desc;
        option_desc(cfg, dt, 1, &desc);
        desc.window_left = BENCH_WINDOW - 1;
        desc.window_right = 0;
        progress_step(prog, "window %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        added += time_desc(ctx, cfg, &desc, n, n, cfg->d, window_pairs(n, BENCH_WINDOW), "window",
                           bufs, prog, &res[added]) == 0;
        if (i == 0) {
            option_desc(cfg, dt, 1, &desc);
            progress_step(prog, "window-dense %s N=%zu", clattn_dtype_name(dt), n);
            memset(&res[added], 0, sizeof res[added]);
            added += time_desc(ctx, cfg, &desc, n, n, cfg->d, (double)n * (double)n / 2,
                               "window-dense", bufs, prog, &res[added]) == 0;
        }
        release_buffers(bufs, 5);
    }
    return added;
}

/* A uint8 block mask [nbq, nbk] with round(density% of the blocks), at least one, ones at random
 * places (fixed seed); returns the (query, key) pairs its live blocks keep (causal: bottom-right
 * aligned; Nq = Nk = n). */
static double block_layout(uint8_t *m, size_t n, unsigned bq, unsigned bk, unsigned density,
                           int causal)
{
    size_t nbq = (n + bq - 1) / bq, nbk = (n + bk - 1) / bk, total = nbq * nbk;
    size_t live = (total * density + 50) / 100 ? (total * density + 50) / 100 : 1, *perm = malloc(total * sizeof *perm);
    memset(m, 0, total);
    if (!perm)
        return 0;
    for (size_t i = 0; i < total; i++)
        perm[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15u + density; /* xorshift: a partial Fisher-Yates shuffle */
    for (size_t i = 0; i < live && i < total; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = i + (size_t)(x % (total - i)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        m[perm[i]] = 1;
    }
    free(perm);
    double pairs = 0;
    for (size_t b = 0; b < total; b++) {
        if (!m[b])
            continue;
        size_t i0 = b / nbk * bq, j0 = b % nbk * bk;
        size_t i1 = i0 + bq < n ? i0 + bq : n, j1 = j0 + bk < n ? j0 + bk : n;
        for (size_t i = i0; i < i1; i++) {
            size_t hi = causal ? (i + 1 < j1 ? i + 1 : j1) : j1; /* keys j < hi */
            pairs += hi > j0 ? (double)(hi - j0) : 0;
        }
    }
    return pairs;
}

/* blocksparse: one row per density at each length (the same inputs, one layout per density). */
static size_t bench_blocksparse(clattn_context *ctx, const clattn_device_info *info,
                                const bench_config *cfg, clattn_dtype dt, progress *prog,
                                softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, BLOCKSPARSE_NS, 1, &ns), added = 0;
    const unsigned bq = cfg->block_q, bk = cfg->block_k;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i], nbq = (n + bq - 1) / bq, nbk = (n + bk - 1) / bk;
        cl_mem bufs[5];
        uint8_t *layout = malloc(nbq * nbk);
        if (!layout || point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            free(layout);
            prog->step += COUNT_OF(DENSITIES);
            continue;
        }
        for (size_t di = 0; di < COUNT_OF(DENSITIES); di++) {
            unsigned density = DENSITIES[di];
            char name[24];
            snprintf(name, sizeof name, "blocksparse-%u%%", density);
            progress_step(prog, "%s %s N=%zu", name, clattn_dtype_name(dt), n);
            clattn_softmax_desc desc;
            option_desc(cfg, dt, -1, &desc);
            double pairs = block_layout(layout, n, bq, bk, density, desc.causal);
            cl_mem bm = host_buffer(ctx, layout, nbq * nbk, name, prog);
            if (!bm)
                continue;
            desc.block_mask = clattn_tensor_make_typed(bm, CLATTN_U8, 1, 1, nbq, nbk);
            desc.block_q = bq;
            desc.block_k = bk;
            memset(&res[added], 0, sizeof res[added]);
            if (time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, name, bufs, prog,
                          &res[added]) == 0) {
                res[added].bytes += (double)(nbq * nbk); /* the layout is read too */
                res[added].footprint += (double)(nbq * nbk);
                added++;
            }
            clReleaseMemObject(bm);
        }
        release_buffers(bufs, 5);
        free(layout);
    }
    return added;
}

/* bias: no bias, then one float32 [1,1,N,N] bias shared by every batch and head. */
static size_t bench_bias(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, clattn_dtype dt, progress *prog,
                         softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, BIAS_NS, 1, &ns), added = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i];
        double pairs = cfg->causal ? (double)n * (double)n / 2 : (double)n * (double)n;
        cl_mem bufs[5], bias = NULL;
        float *host = (size_t)n * n * sizeof(float) <= info->max_alloc_size
                          ? malloc((size_t)n * n * sizeof *host)
                          : NULL;
        if (host) {
            fill_random(host, (size_t)n * n, 11);
            bias = host_buffer(ctx, host, (size_t)n * n * sizeof *host, "bias [1,1,N,N]", prog);
            free(host);
        } else {
            note(prog, "bias N=%zu skipped: a [1,1,N,N] bias does not fit", n);
        }
        if (!bias || point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            if (bias)
                clReleaseMemObject(bias);
            prog->step += 2;
            continue;
        }
        clattn_softmax_desc desc;
        option_desc(cfg, dt, -1, &desc);
        progress_step(prog, "bias-none %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        added += time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, "bias-none", bufs, prog,
                           &res[added]) == 0;
        desc.bias = clattn_tensor_make(bias, 1, 1, n, n);
        progress_step(prog, "bias-1x1xNxN %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        if (time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, "bias-1x1xNxN", bufs, prog,
                      &res[added]) == 0) {
            res[added].bytes += (double)n * (double)n * 4; /* the bias is read too */
            res[added].footprint += (double)n * (double)n * 4;
            added++;
        }
        release_buffers(bufs, 5);
        clReleaseMemObject(bias);
    }
    return added;
}

/* d512: D = Dv = 128, 256, 512 at each length. */
static size_t bench_d512(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, clattn_dtype dt, progress *prog,
                         softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, D512_NS, 1, &ns), added = 0;
    for (size_t i = 0; i < count; i++)
        for (size_t di = 0; di < COUNT_OF(D512_DS); di++) {
            size_t n = ns[i], d = D512_DS[di];
            double pairs = cfg->causal ? (double)n * (double)n / 2 : (double)n * (double)n;
            cl_mem bufs[5];
            if (point_buffers(ctx, info, cfg, n, d, dt, prog, bufs) != 0) {
                prog->step++;
                continue;
            }
            clattn_softmax_desc desc;
            option_desc(cfg, dt, -1, &desc);
            progress_step(prog, "d512 %s N=%zu D=%zu", clattn_dtype_name(dt), n, d);
            memset(&res[added], 0, sizeof res[added]);
            added += time_desc(ctx, cfg, &desc, n, n, d, pairs, "d512", bufs, prog,
                               &res[added]) == 0;
            release_buffers(bufs, 5);
        }
    return added;
}

static size_t bench_option_variant(clattn_context *ctx, const clattn_device_info *info,
                                   const bench_config *cfg, variant_id v, clattn_dtype dt,
                                   progress *prog, softmax_row *res)
{
    switch (v) {
    case V_WINDOW:
        return bench_window(ctx, info, cfg, dt, prog, res);
    case V_BLOCKSPARSE:
        return bench_blocksparse(ctx, info, cfg, dt, prog, res);
    case V_BIAS:
        return bench_bias(ctx, info, cfg, dt, prog, res);
    case V_D512:
        return bench_d512(ctx, info, cfg, dt, prog, res);
    default:
        return 0;
    }
}

typedef struct sgemm_job {
    clattn_context *ctx;
    cl_mem bufs[3];
} sgemm_job;

static clattn_status sgemm_enqueue(void *arg)
{
    sgemm_job *j = arg;
    const size_t m = SGEMM_SIZE;
    return clattn_sgemm_enqueue(j->ctx, 0, m, m, m, 1.0f, j->bufs[0], 0, m, j->bufs[1], 0, m,
                                0.0f, j->bufs[2], 0, m, 0, NULL, NULL);
}

static int bench_sgemm(clattn_context *ctx, const bench_config *cfg, const progress *prog,
                       bench_row *r)
{ /* float32 only (CLBlast): its dtype column reads f32 */
    const size_t m = SGEMM_SIZE;
    sgemm_job job = {ctx, {NULL, NULL, NULL}};
    cl_int err = make_buffers(ctx, job.bufs, 3, 2, m * m);
    if (err != CL_SUCCESS) {
        note(prog, "sgemm skipped: cannot allocate its matrices (OpenCL error %d)", (int)err);
        return -1;
    }
    memset(r, 0, sizeof *r);
    clattn_status st = time_median(ctx, sgemm_enqueue, &job, cfg->reps, &r->ms);
    release_buffers(job.bufs, 3);
    if (st != CLATTN_SUCCESS) {
        note(prog, "sgemm failed: %s", lib_error(ctx, st));
        return -1;
    }
    snprintf(r->op, sizeof r->op, "sgemm");
    snprintf(r->variant, sizeof r->variant, "sgemm");
    r->batch = r->heads = 1;
    r->nq = r->nk = r->d = m;
    r->gflops = 2.0 * (double)m * (double)m * (double)m / (r->ms * 1e6);
    r->build_ms = NAN;
    snprintf(r->kernel, sizeof r->kernel, "CLBlast SGEMM %zux%zux%zu", m, m, m);
    return 0;
}

/* The first row of `variant` at length len (0: any), head dim d (0: any) and type dt. */
static const softmax_row *find_row(const softmax_row *res, size_t n, const char *variant,
                                   size_t len, size_t d, clattn_dtype dt)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(res[i].b.variant, variant) == 0 && (len == 0 || res[i].b.nk == len) &&
            (d == 0 || res[i].b.d == d) && res[i].dtype == dt)
            return &res[i];
    return NULL;
}

/* Runs the sweep; *res (malloc'd, caller frees) receives *count rows. Returns an exit code. */
static int bench_run(const bench_config *cfg, softmax_row **res, size_t *count)
{
    *res = NULL;
    *count = 0;
    clattn_context *ctx = NULL;
    int rc = bench_open(cfg->device, &ctx);
    if (rc)
        return rc;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);

    size_t nattn = 0, nopt = 0;
    int want_sgemm = 0, want_peak = 0;
    for (int i = 0; i < cfg->n_variants; i++) {
        nattn += IS_ATTENTION(cfg->order[i]);
        nopt += option_rows(cfg, (variant_id)cfg->order[i]);
        want_sgemm |= cfg->order[i] == V_SGEMM;
        want_peak |= cfg->order[i] == V_PEAK || cfg->order[i] == V_D512; /* d512's %peak */
    }
    /* The family variants sweep --n (when any is listed); the option variants follow, each on
     * its own lengths. */
    size_t sweep = nattn ? cfg->n_count * cfg->n_dtypes * nattn : 0;
    softmax_row *r = calloc(sweep + nopt * cfg->n_dtypes + 2, sizeof *r);
    if (!r) {
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    progress prog = {isatty(fileno(stderr)), 0,
                     sweep + nopt * cfg->n_dtypes + (size_t)want_sgemm + (size_t)want_peak};
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_count; i++)
        for (size_t t = 0; t < cfg->n_dtypes; t++)
            n += bench_length(ctx, &info, cfg, cfg->ns[i], cfg->dtypes[t], &prog, r + n);
    for (int i = 0; i < cfg->n_variants; i++)
        for (size_t t = 0; t < cfg->n_dtypes && IS_OPTION_VARIANT(cfg->order[i]); t++)
            n += bench_option_variant(ctx, &info, cfg, (variant_id)cfg->order[i], cfg->dtypes[t],
                                      &prog, r + n);
    if (want_sgemm) {
        progress_step(&prog, "sgemm M=N=K=%d", SGEMM_SIZE);
        n += bench_sgemm(ctx, cfg, &prog, &r[n].b) == 0;
    }
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        n += bench_peak_row(ctx, &prog, &r[n].b) == 0;
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    *res = r;
    *count = n;
    if (n == 0)
        return fail(EXIT_RUNTIME, "bench: no measurement succeeded");
    return 0;
}

/* The shared columns first (old parsers keep working; they end in dtype), then bytes and
 * footprint_bytes. */
static void print_csv(const softmax_row *res, size_t n)
{
    printf("%s,bytes,footprint_bytes\n", BENCH_CSV_HEADER); /* BENCH_CSV_HEADER ends in dtype */
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &res[i].b;
        printf("%s,%s,%zu,%zu,%zu,%zu,%zu,%d,%.4f,%.3f,%s,%.0f,%.0f\n", r->op, r->variant,
               r->batch, r->heads, r->nq, r->nk, r->d, r->causal, isnan(r->ms) ? 0.0 : r->ms,
               r->gflops, clattn_dtype_name(res[i].dtype), res[i].bytes, res[i].footprint);
    }
}

/* cli_print_table's columns plus dtype, bytes moved (MB) and footprint (MB); "vs base" compares
 * with naive at the same length and type, "vs f32" with the same variant in float32. */
static void print_table(const softmax_row *res, size_t n, double peak_gflops)
{
    printf("%-8s %-16s %-5s %5s %5s %7s %7s %4s %6s %10s %9s %9s %6s %8s %7s %9s %10s  %s\n",
           "op", "variant", "dtype", "batch", "heads", "nq", "nk", "d", "causal", "ms", "GFLOP/s",
           "build ms", "%peak", "vs base", "vs f32", "bytes MB", "footprint", "kernel");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &res[i].b;
        char ms[32] = "-", build[32] = "-", frac[32] = "-", speed[32] = "-", vf[32] = "-";
        char by[32] = "-", fp[32] = "-";
        if (!isnan(r->ms))
            snprintf(ms, sizeof ms, "%.3f", r->ms);
        if (!isnan(r->build_ms))
            snprintf(build, sizeof build, "%.1f", r->build_ms);
        if (peak_gflops > 0 && r->gflops > 0)
            snprintf(frac, sizeof frac, "%.1f%%", 100.0 * r->gflops / peak_gflops);
        bool attn = strcmp(r->op, "softmax") == 0;
        /* The option variants' comparisons are in the summary below the table. */
        bool family = false;
        for (int v = 0; v <= V_NAIVE; v++)
            family |= strcmp(r->variant, VARIANT_NAMES[v]) == 0;
        const softmax_row *nv =
            attn && family ? find_row(res, n, "naive", r->nk, r->d, res[i].dtype) : NULL;
        if (nv && strcmp(r->variant, "naive") != 0 && r->ms > 0 && !isnan(nv->b.ms))
            snprintf(speed, sizeof speed, "%.2fx", nv->b.ms / r->ms);
        const softmax_row *f32 =
            attn ? find_row(res, n, r->variant, r->nk, r->d, CLATTN_F32) : NULL;
        if (f32 && res[i].dtype != CLATTN_F32 && r->ms > 0 && !isnan(f32->b.ms))
            snprintf(vf, sizeof vf, "%.2fx", f32->b.ms / r->ms);
        if (attn) {
            snprintf(by, sizeof by, "%.2f", res[i].bytes / 1e6);
            snprintf(fp, sizeof fp, "%.2f", res[i].footprint / 1e6);
        }
        printf("%-8s %-16s %-5s %5zu %5zu %7zu %7zu %4zu %6d %10s %9.2f %9s %6s %8s %7s %9s %10s  "
               "%s\n",
               r->op, r->variant, attn ? clattn_dtype_name(res[i].dtype) : "f32", r->batch,
               r->heads, r->nq, r->nk, r->d, r->causal, ms, r->gflops, build, frac, speed, vf, by,
               fp, r->kernel);
    }
}

/* The ratios the option variants are judged by (issue 16), per element type: window time/N
 * normalised to the first N, block-sparse speed-ups over 100%, the bias overhead, d512's
 * fractions of peak. */
static void print_option_summary(FILE *f, const bench_config *cfg, const softmax_row *res,
                                 size_t n, double peak_gflops)
{
    for (size_t t = 0; t < cfg->n_dtypes; t++) {
        clattn_dtype dt = cfg->dtypes[t];
        const char *tn = clattn_dtype_name(dt);
        const softmax_row *first = NULL, *dense = NULL;
        for (size_t i = 0; i < n; i++) {
            const bench_row *r = &res[i].b;
            if (res[i].dtype != dt || !(r->ms > 0))
                continue;
            if (strcmp(r->variant, "window") == 0) {
                if (!first)
                    first = &res[i];
                double ratio = (r->ms / (double)r->nk) / (first->b.ms / (double)first->b.nk);
                fprintf(f, "window %s: N=%zu %.3f ms, time/N vs N=%zu %.2f (linear: 1.00)\n",
                        tn, r->nk, r->ms, first->b.nk, ratio);
            } else if (strcmp(r->variant, "window-dense") == 0) {
                dense = &res[i];
            } else if (strncmp(r->variant, "blocksparse-", 12) == 0) {
                const softmax_row *full =
                    find_row(res, n, "blocksparse-100%", r->nk, r->d, dt);
                if (full && full != &res[i] && full->b.ms > 0)
                    fprintf(f, "blocksparse %s: N=%zu block %ux%u %s speed-up over 100%% %.2fx%s\n",
                            tn, r->nk, cfg->block_q, cfg->block_k, r->variant + 12,
                            full->b.ms / r->ms,
                            strcmp(r->variant, "blocksparse-10%") == 0 ? " (target >= 5x)" : "");
            } else if (strcmp(r->variant, "bias-1x1xNxN") == 0) {
                const softmax_row *none = find_row(res, n, "bias-none", r->nk, r->d, dt);
                if (none && none->b.ms > 0)
                    fprintf(f, "bias %s: N=%zu [1,1,N,N] bias overhead %.2f (target <= 1.25)\n",
                            tn, r->nk, r->ms / none->b.ms);
            } else if (strcmp(r->variant, "d512") == 0) {
                char frac[32] = "no peak row";
                if (peak_gflops > 0)
                    snprintf(frac, sizeof frac, "%.1f%% of peak", 100.0 * r->gflops / peak_gflops);
                fprintf(f, "d512 %s: N=%zu D=Dv=%zu %.2f GFLOP/s (%s)\n", tn, r->nk, r->d,
                        r->gflops, frac);
            }
        }
        if (dense && first && dense->b.ms > 0)
            fprintf(f, "window %s: dense causal at N=%zu %.3f ms, the window %.2fx faster\n", tn,
                    dense->b.nk, dense->b.ms, dense->b.ms / first->b.ms);
    }
}

static void print_rows(const bench_config *cfg, const softmax_row *res, size_t n)
{
    const softmax_row *peak = NULL;
    bool options = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(res[i].b.variant, "peak") == 0)
            peak = &res[i];
    }
    for (int i = 0; i < cfg->n_variants; i++)
        options |= IS_OPTION_VARIANT(cfg->order[i]);
    if (cfg->csv)
        print_csv(res, n);
    else
        print_table(res, n, peak ? peak->b.gflops : 0);
    if (options) {
        if (!cfg->csv)
            printf("\n");
        print_option_summary(cfg->csv ? stderr : stdout, cfg, res, n, peak ? peak->b.gflops : 0);
    }
}

static void bench_defaults(bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const size_t ns[] = {1024, 2048, 4096};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg->ns[cfg->n_count++] = ns[i];
    cfg->d = 64;
    cfg->heads = 8;
    cfg->batch = 1;
    cfg->reps = 5;
    cfg->dtypes[0] = CLATTN_F32;
    cfg->n_dtypes = 1;
    cfg->algo = CLATTN_SOFTMAX_AUTO;
    cfg->block_q = cfg->block_k = 64;
    const variant_id def[] = {V_TILED, V_NAIVE, V_SGEMM, V_PEAK};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
        cfg->order[cfg->n_variants++] = def[i];
}

static int bench_parse(int argc, char **argv, bench_config *cfg, int *help)
{
    const char *cmd = "bench softmax";
    const char *n = NULL, *d = NULL, *heads = NULL, *batch = NULL, *reps = NULL, *vars = NULL;
    const char *dtypes = NULL, *nq = NULL, *algo = NULL, *block = NULL;
    bench_defaults(cfg);
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--nq", NULL, &nq, NULL},
        {"--dtype", NULL, &dtypes, NULL},
        {"--d", NULL, &d, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--device", NULL, &cfg->device, NULL},
        {"--causal", NULL, NULL, &cfg->causal},
        {"--csv", NULL, NULL, &cfg->csv},
        {"--algo", NULL, &algo, NULL},
        {"--block", NULL, &block, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    cfg->n_given = n != NULL;
    if (algo && parse_algo(algo, &cfg->algo) != 0)
        return fail(EXIT_USAGE, "%s: --algo '%s' is not one of auto, cpu, gpu, gpu-rows, naive",
                    cmd, algo);
    if (block) {
        size_t b[MAX_SWEEP], nb = 0;
        if ((rc = parse_list(cmd, "--block", block, 16, 256, b, &nb)))
            return rc;
        if (nb > 2)
            return fail(EXIT_USAGE, "%s: --block takes BQ,BK (or one size for both)", cmd);
        for (size_t i = 0; i < nb; i++)
            if (b[i] & (b[i] - 1))
                return fail(EXIT_USAGE, "%s: --block: %zu is not one of 16, 32, 64, 128, 256",
                            cmd, b[i]);
        cfg->block_q = (unsigned)b[0];
        cfg->block_k = (unsigned)b[nb - 1];
    }
    if ((n && (rc = parse_list(cmd, "--n", n, 1, (size_t)1 << 24, cfg->ns, &cfg->n_count))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, SOFTMAX_MAX_HEAD_DIM, &cfg->d))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &cfg->batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &cfg->reps))) ||
        (vars &&
         (rc = parse_variant_list(cmd, vars, VARIANT_NAMES, V_COUNT, cfg->order, &cfg->n_variants))) ||
        (nq && (rc = size_option(cmd, "--nq", nq, 1, (size_t)1 << 24, &cfg->nq))))
        return rc;
    if (dtypes && (rc = cli_dtype_list(cmd, dtypes, cfg->dtypes, &cfg->n_dtypes)))
        return rc;
    return 0;
}

int cli_bench_softmax(int argc, char **argv)
{
    bench_config cfg;
    int help = 0;
    int rc = bench_parse(argc, argv, &cfg, &help);
    if (rc)
        return rc;
    if (help) { /* the dispatcher answers --help first; kept for direct callers */
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_softmax, "bench softmax");
        return 0;
    }
    softmax_row *res = NULL;
    size_t n = 0;
    rc = bench_run(&cfg, &res, &n);
    if (n > 0)
        print_rows(&cfg, res, n);
    free(res);
    return rc;
}

int cli_softmax_demo(void)
{
    bench_config cfg;
    bench_defaults(&cfg);
    const size_t ns[] = {256, 512, 1024};
    cfg.n_count = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        cfg.ns[cfg.n_count++] = ns[i];
    cfg.heads = 4;
    cfg.reps = 3;
    printf("\n== clattn bench softmax --n 256,512,1024 --heads 4 --d 64 --reps 3 ==\n\n");
    fflush(stdout);
    softmax_row *res = NULL;
    size_t n = 0;
    int rc = bench_run(&cfg, &res, &n);
    if (n > 0) {
        print_rows(&cfg, res, n);
        printf("\ntiled speed-up over naive:");
        int any = 0;
        for (size_t i = 0; i < cfg.n_count; i++) {
            const softmax_row *t = find_row(res, n, "tiled", cfg.ns[i], 0, CLATTN_F32);
            const softmax_row *nv = find_row(res, n, "naive", cfg.ns[i], 0, CLATTN_F32);
            if (t && nv && t->b.ms > 0) {
                printf("%s N=%zu %.2fx", any ? "," : "", cfg.ns[i], nv->b.ms / t->b.ms);
                any = 1;
            }
        }
        printf("%s\n", any ? "" : " not measured");
    }
    free(res);
    return rc;
}
