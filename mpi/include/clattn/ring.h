/* clattn ring attention: one attention problem split over the ranks of a job (issue 18 section 2).
 * An optional component: library clattn_mpi (libclattn_mpi.so / .a, pkg-config clattn-mpi, CMake
 * find_package(clattn COMPONENTS mpi) -> clattn::clattn_mpi), built when MPI is found. This
 * header needs no MPI: the ranks talk through a transport table (clattn_ring_transport below);
 * <clattn/ring_mpi.h> makes one over an MPI communicator, and a user may fill one for another
 * collective library.
 *
 * Sharding. A sequence of n positions is split over R ranks in one of two layouts
 * (clattn_ring_shard gives the rows of a rank):
 *   CLATTN_RING_CONTIGUOUS  rank r holds positions [r * n / R ...) : n / R rows each, the first
 *                           n % R ranks one more;
 *   CLATTN_RING_ZIGZAG      the sequence cut into 2R chunks (n / 2R rows each, the first n % 2R
 *                           chunks one more); rank r holds chunk r followed by chunk 2R - 1 - r
 *                           (local rows: chunk r's, then chunk 2R - 1 - r's). Under a causal mask
 *                           every rank then does about the same work.
 * Every rank must hold at least one row: n >= R (INVALID_SHAPE otherwise).
 *
 * Softmax (exact). Each rank passes its shard of q [B, Hq, nq_r, D], k [B, Hk, nk_r, D],
 * v [B, Hk, nk_r, Dv] (device tensors of its context) and receives out [B, Hq, nq_r, Dv] and
 * optionally lse [B, Hq, nq_r, 1] of its queries over ALL keys of all ranks. The K/V shards travel
 * around the ring (R - 1 steps; in step s rank r holds the shard of rank (r - s) mod R): each step
 * posts the receive of the next shard and the send of the current one (host-staged) before it
 * enqueues the attention of its queries against the current shard, so the transfer overlaps the
 * computation, and uploads the received shard on a second queue of the context's device while that
 * step's attention still runs; every partial (out, lse) is merged into the accumulator on the
 * device by lse (clattn_softmax_merge_enqueue), each block with the position_offset of its place
 * in the whole sequence (blocks entirely above the causal diagonal, or outside a sliding window,
 * are skipped). Cross-attention (Nq != Nk, queries and keys sharded with the same layout, the
 * causal mask bottom-right aligned as in clattn_softmax_desc) is supported. Communication per
 * rank r: the K and V shards of every rank but r + 1 sent and as many received,
 * (Nk - n_(r+1)) * B * Hk * (D + Dv) * element size bytes each way ((R - 1) / R of K and V for
 * even shards).
 *
 * Linear (causal). Each rank computes the linear-attention state (S, z) of its chunks from zero
 * (clattn_linear_prefill without output), the states are all-gathered, each chunk's state is
 * replaced by the sum of the states of the chunks before it (an exclusive scan, summed in double in
 * one order on every rank), written back (clattn_linear_state_write) and the chunk is prefilled
 * again with output: the result equals the single-device causal form. Element-wise feature maps
 * (ELU, RELU, IDENTITY) without momentum: a momentum state cannot be rebuilt from S and z, and
 * FAVOR+'s would travel as true sums that can overflow float32 (both UNSUPPORTED).
 *
 * Failures. Every call is collective: every rank must make it, with the same desc and global
 * shapes. Each rank validates its arguments, then the ranks exchange their status; after the ring
 * they exchange it again. If any rank failed (bad arguments, a device error, a transport error),
 * every rank returns an error -- the failing rank's status, or CLATTN_IO_ERROR for a transport
 * failure -- with clattn_ring_last_error naming the rank and the cause, and no rank writes its
 * out or lse (results are computed in scratch and copied only after the final agreement). A rank
 * that fails keeps forwarding the shards of the ring so the others never wait for it. Every wait is
 * bounded by the desc's timeout: a peer that does not answer in time makes the call fail with
 * CLATTN_IO_ERROR ("timed out") and the ring is then broken (its transport may hold requests that
 * will never complete): later calls on it return CLATTN_INVALID_ARGUMENT; end the job (the MPI
 * transport's abort is MPI_Abort). Calls are blocking and must not run concurrently on one ring. */
#ifndef CLATTN_RING_H
#define CLATTN_RING_H

#include <clattn.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the transport table ----
 * Function pointers over an opaque `self`; each returns 0 on success and a nonzero code on failure
 * (the ring reports it as CLATTN_IO_ERROR with the transport's message, see error below). Point to
 * point messages are tagged byte buffers; a request handle returned by isend/irecv is owned by the
 * transport until wait or cancel has been called on it. */
typedef struct clattn_ring_transport {
    void *self;
    int rank; /* this process's rank, 0 <= rank < size */
    int size; /* number of ranks R >= 1 */
    /* Non-blocking send / receive of `bytes` bytes to / from rank `peer` with tag `tag`. */
    int (*isend)(void *self, const void *buf, size_t bytes, int peer, int tag, void **request);
    int (*irecv)(void *self, void *buf, size_t bytes, int peer, int tag, void **request);
    /* Waits at most timeout_s seconds for a request: 0 done (the handle is released), 1 timed out
     * (the handle stays valid), other values an error (the handle is released). */
    int (*wait)(void *self, void *request, double timeout_s);
    /* Gives up on a pending request (after a timeout or error): cancels and releases it. */
    void (*cancel)(void *self, void *request);
    /* Collective: every rank contributes `bytes` bytes of `in`; `out` receives size * bytes, rank
     * i's contribution at i * bytes. Bounded by timeout_s: 1 when it timed out. */
    int (*allgather)(void *self, const void *in, void *out, size_t bytes, double timeout_s);
    /* Ends every rank of the job (MPI_Abort); may be NULL. */
    void (*abort)(void *self, int code);
    /* A message for the last nonzero code (may be NULL). */
    const char *(*error)(void *self);
    /* Releases `self` (clattn_ring_destroy calls it; may be NULL). */
    void (*destroy)(void *self);
} clattn_ring_transport;

typedef enum clattn_ring_layout {
    CLATTN_RING_CONTIGUOUS = 0,
    CLATTN_RING_ZIGZAG = 1
} clattn_ring_layout;

/* The rows of a sequence of n positions that rank `rank` of `ranks` holds: two ranges
 * [start[i], start[i] + count[i]) of the global sequence, local rows in that order (contiguous:
 * count[1] = 0). Status: NULL_POINTER, INVALID_ARGUMENT (layout, rank >= ranks, ranks 0),
 * INVALID_SHAPE (n < ranks). */
CLATTN_API clattn_status clattn_ring_shard(size_t n, size_t ranks, size_t rank,
                                           clattn_ring_layout layout, size_t start[2],
                                           size_t count[2]);

/* A ring: a context and a transport (copied; the ring calls its destroy). Not collective. Status:
 * NULL_POINTER, INVALID_ARGUMENT (size < 1, rank out of range, a required function missing:
 * isend, irecv, wait, cancel, allgather), OUT_OF_HOST_MEMORY (the transport is then destroyed). */
typedef struct clattn_ring clattn_ring;
CLATTN_API clattn_status clattn_ring_create(clattn_context *ctx,
                                            const clattn_ring_transport *transport,
                                            clattn_ring **ring);
/* Releases the ring and its transport. NULL-safe. */
CLATTN_API void clattn_ring_destroy(clattn_ring *ring);
/* The message of the ring's last failure ("" when none). Never NULL. */
CLATTN_API const char *clattn_ring_last_error(const clattn_ring *ring);

/* What the last successful call moved and how long it took on this rank. */
typedef struct clattn_ring_stats {
    uint64_t bytes_sent, bytes_received; /* K/V shards (softmax) or states (linear) */
    uint64_t messages;                    /* point-to-point sends */
    double total_ms;                      /* the whole call */
    double comm_wait_ms;                  /* time blocked waiting for transfers after the compute
                                             of a step was enqueued (0: fully overlapped) */
    double compute_ms;                    /* time waiting for the device after the transfers */
    unsigned blocks, blocks_skipped;      /* attention blocks run / skipped by the causal mask */
} clattn_ring_stats;
CLATTN_API clattn_status clattn_ring_get_stats(const clattn_ring *ring, clattn_ring_stats *stats);

/* Ring softmax attention's options. Fill with clattn_ring_softmax_desc_init (defaults: the
 * softmax desc's, contiguous layout, no key lengths, timeout 60 s). */
typedef struct clattn_ring_softmax_desc {
    size_t struct_size;
    /* The attention: scale, causal, algorithm, and the position options window_left/right, alibi
     * (with alibi_slopes) and softcap, which are exact across blocks. Options indexed by local
     * rows or applied once per row are refused (INVALID_ARGUMENT): key_lengths (use the host
     * array below), bias, mask, block_mask, sinks, q_lengths, q_offsets, block_table, a nonzero
     * position_offset. The element types are the tensors' own. */
    clattn_softmax_desc attn;
    clattn_ring_layout layout;
    /* Host int32 [B] of GLOBAL key lengths (keys at global positions >= L[b] are left out),
     * values in [0, Nk] (INVALID_ARGUMENT otherwise), or NULL. Must be equal on every rank. */
    const int32_t *key_lengths;
    /* Bound of every wait on the transport, in seconds (> 0 and finite; default 60). */
    double timeout_s;
    /* 0, or CLATTN_RING_BENCH_NO_TRANSFER: for measuring overlap only (`clattn bench ring`):
     * no shard is sent or received; every step uploads and attends this rank's own staged K/V
     * (rows past its own read as zeros) in place of the shard it would have received, with the
     * same block geometry. The result is NOT attention over the whole sequence. Must be equal on
     * every rank. Other bits: INVALID_ARGUMENT. */
    unsigned flags;
} clattn_ring_softmax_desc;

#define CLATTN_RING_BENCH_NO_TRANSFER 1u

CLATTN_API void clattn_ring_softmax_desc_init(clattn_ring_softmax_desc *desc);

/* Collective ring softmax attention (see the top of this file). q, k, v, out (and lse, or NULL on
 * every rank) are this rank's shards, device tensors of the ring's context with unit stride along
 * D (any other strides: [B, H, N, D] or [B, N, H, D] layouts; UNSUPPORTED otherwise); their
 * row counts must be the layout's (clattn_ring_shard) for the global Nq = sum of the ranks' rows of
 * q and Nk = sum of rows of k (SHAPE_MISMATCH otherwise, reported on every rank). Blocking: returns
 * when out and lse are written (the context's queue finished). Status: NULL_POINTER,
 * INVALID_ARGUMENT, INVALID_SHAPE, SHAPE_MISMATCH, DTYPE_MISMATCH, ALIASING, BUFFER_TOO_SMALL,
 * UNSUPPORTED (as for clattn_softmax_enqueue and above), CLATTN_IO_ERROR (transport failure or
 * timeout), OpenCL codes; a failure on any rank is returned on every rank, nothing written. */
CLATTN_API clattn_status clattn_ring_softmax(clattn_ring *ring,
                                             const clattn_ring_softmax_desc *desc,
                                             const clattn_tensor *q, const clattn_tensor *k,
                                             const clattn_tensor *v, const clattn_tensor *out,
                                             const clattn_tensor *lse);

/* Collective causal linear attention (see the top of this file): desc as clattn_linear_desc with
 * causal = 1 (0 is refused: UNSUPPORTED, as is momentum); q [B, Hq, n_r, D], k [B, H, n_r, D],
 * v [B, H, n_r, Dv], out [B, Hq, n_r, Dv] this rank's shards in `layout` (Nq = Nk). Blocking.
 * Status as for clattn_ring_softmax and clattn_linear_prefill. */
CLATTN_API clattn_status clattn_ring_linear(clattn_ring *ring, const clattn_linear_desc *desc,
                                            clattn_ring_layout layout, double timeout_s,
                                            const clattn_tensor *q, const clattn_tensor *k,
                                            const clattn_tensor *v, const clattn_tensor *out);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_RING_H */
