/* clattn: paged KV caches. Part of the public API: include <clattn.h>, which includes this file
 * (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_KVCACHE_H
#define CLATTN_KVCACHE_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/kvcache.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Paged KV caches                                                                                */
/* ---------------------------------------------------------------------------------------------- */

/* The layout (the one vLLM popularised). Keys and values live in page pools, tensors of shape
 *   k_pool [num_pages, Hk, page_size, D]      v_pool [num_pages, Hk, page_size, Dv]
 * (any strides, any element type; in separate buffers or non-overlapping ranges of one), and each
 * sequence b owns a row of an int32 block table [B, max_pages_per_seq] (a clattn_tensor view of
 * shape [1, 1, B, max_pages_per_seq], dtype left 0): token position p of sequence b is slot
 * p % page_size of page block_table[b][p / page_size]. Pages may appear in any order and in several
 * rows (prefix sharing: several sequences reading one page). The caller owns the pools, the table
 * and the position counters and decides which pages are free; the library only reads the table.
 *
 * Page ids are device data the library cannot check without a round trip, so every kernel treats
 * an id outside [0, num_pages) -- and a position beyond the table's row -- as masked: nothing is
 * read or written for it, never outside the pools. clattn_kvcache_validate checks a table on the
 * host when the caller asks. */

typedef struct clattn_kvcache_desc {
    size_t struct_size;
    size_t page_size; /* tokens per page: 16, 32, 64, 128 or 256. Default 16. */
    /* 1: after appending, positions[b] += the rows appended for sequence b, on the device, so the
     * next token's enqueue needs no host work. Default 0 (positions are only read). */
    int advance;
    clattn_dtype k_pool_dtype, v_pool_dtype; /* element types of the pools (default f32) */
    clattn_dtype k_new_dtype, v_new_dtype;   /* element types of the new rows (default f32);
                                              * converted (rounded to nearest even) on append */
} clattn_kvcache_desc;

CLATTN_API void clattn_kvcache_desc_init(clattn_kvcache_desc *desc);

/* Bakes a plan appending up to T new key/value rows per sequence into paged pools:
 *   new_k_shape = {B, Hk, T, D}, new_v_shape = {B, Hk, T, Dv}, pools of num_pages pages, tables
 *   of max_pages_per_seq columns; 1 <= D, Dv; every size >= 1.
 * Status: NULL_POINTER, INVALID_SHAPE (a zero size), SHAPE_MISMATCH (B or Hk or T differ between
 * k and v), INVALID_ARGUMENT (page_size not one of 16..256, advance not 0 or 1, unknown dtype,
 * struct_size), SIZE_OVERFLOW, BUILD_FAILED, OpenCL codes. *plan is NULL on failure. */
CLATTN_API clattn_status clattn_kvcache_append_plan_create(clattn_context *ctx,
                                                           const clattn_kvcache_desc *desc,
                                                           const size_t new_k_shape[4],
                                                           const size_t new_v_shape[4],
                                                           size_t num_pages,
                                                           size_t max_pages_per_seq,
                                                           clattn_plan **plan);

/* Enqueues the append: for every sequence b, with p0 = positions[b] and n = new_lengths[b]
 * clamped to [0, T] (T when new_lengths is NULL), row t < n of k_new/v_new [b, h] is written to
 * token position p0 + t of sequence b (page block_table[b][(p0 + t) / page_size], slot
 * (p0 + t) % page_size) in k_pool/v_pool, converted to the pools' element type. A negative p0, a
 * position whose page index reaches max_pages_per_seq, or a page id outside [0, num_pages) writes
 * nothing for that row (see above); other rows still go in. With desc.advance, positions[b]
 * becomes p0 + n afterwards (unchanged when p0 < 0).
 * Tensors: k_new [B, Hk, T, D], v_new [B, Hk, T, Dv] (the plan's types), k_pool
 * [num_pages, Hk, page_size, D], v_pool [num_pages, Hk, page_size, Dv] (the plan's pool types),
 * block_table int32 [1, 1, B, max_pages_per_seq], positions int32 [1, 1, 1, B], new_lengths int32
 * [1, 1, 1, B] or NULL. Validation as every enqueue: shapes, types (DTYPE_MISMATCH), views inside
 * their buffers, the pools not overlapping each other or any input (and positions not overlapping
 * anything when it is written). */
CLATTN_API clattn_status clattn_kvcache_append_plan_enqueue(
    clattn_plan *plan, const clattn_tensor *k_new, const clattn_tensor *v_new,
    const clattn_tensor *k_pool, const clattn_tensor *v_pool, const clattn_tensor *block_table,
    const clattn_tensor *positions, const clattn_tensor *new_lengths, cl_uint num_wait,
    const cl_event *wait, cl_event *event);

/* Checks a block table on the host: every page a sequence uses must be an id in [0, num_pages).
 * With lengths (int32 [batch], tokens each sequence holds; may be NULL) only the first
 * ceil(lengths[b] / page_size) entries of row b are used and must fit in the row; without, every
 * entry is checked. SUCCESS, or INVALID_ARGUMENT with a message naming the first bad sequence,
 * column and id (ctx may be NULL: the message then stays on the thread). NULL_POINTER,
 * INVALID_SHAPE (zero sizes), INVALID_ARGUMENT (negative length, page_size 0). */
CLATTN_API clattn_status clattn_kvcache_validate(clattn_context *ctx, const int32_t *block_table,
                                                 size_t batch, size_t max_pages_per_seq,
                                                 size_t num_pages, size_t page_size,
                                                 const int32_t *lengths);

#endif /* CLATTN_KVCACHE_H */
