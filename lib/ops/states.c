/* Sequence selections of the batched decoding states (states.h). */
#include "states.h"

bool clattn__seq_select_all(const clattn_seq_select *sel)
{
    return !sel || sel->kind == CLATTN_SEQ_ALL;
}

clattn_status clattn__seq_select_check(clattn_context *ctx, const clattn_seq_select *sel, size_t nb,
                                  const char *what, size_t *slots)
{
    clattn_status status = CLATTN_SUCCESS;
    *slots = nb;
    if (!sel || sel->kind == CLATTN_SEQ_ALL)
        goto cleanup;
    CLATTN_CHECK((int)sel->kind >= (int)CLATTN_SEQ_MASK_U8 && (int)sel->kind <= (int)CLATTN_SEQ_LIST_I32,
                 CLATTN_INVALID_ARGUMENT, "%s: selection kind %d is not a clattn_seq_kind", what,
                 (int)sel->kind);
    CLATTN_CHECK(sel->buffer != NULL, CLATTN_NULL_POINTER, "%s: selection buffer is NULL", what);
    size_t n = sel->kind == CLATTN_SEQ_LIST_I32 ? sel->count : nb;
    size_t elem = sel->kind == CLATTN_SEQ_MASK_U8 ? 1 : 4, size = 0;
    CLATTN_CHECK(sel->kind != CLATTN_SEQ_LIST_I32 || sel->count <= nb, CLATTN_INVALID_ARGUMENT,
                 "%s: an index list of %zu entries for a batch of %zu (entries must be distinct)",
                 what, sel->count, nb);
    CLATTN_CL(clGetMemObjectInfo(sel->buffer, CL_MEM_SIZE, sizeof size, &size, NULL));
    CLATTN_CHECK(sel->offset <= size / elem && n <= size / elem - sel->offset,
                 CLATTN_INVALID_ARGUMENT,
                 "%s: selection of %zu entries at offset %zu exceeds its buffer (%zu bytes)", what,
                 n, sel->offset, size);
    *slots = n;
cleanup:
    return status;
}

void clattn__seq_select_args(clattn__args *a, const clattn_seq_select *sel, cl_mem dummy, size_t nb)
{
    cl_int kind = sel ? (cl_int)sel->kind : 0;
    cl_mem buf = kind ? sel->buffer : dummy;
    cl_ulong off = kind ? (cl_ulong)sel->offset : 0;
    CLATTN_ARG(a, kind);
    CLATTN_ARG(a, buf);
    CLATTN_ARG(a, off);
    cl_uint unb = (cl_uint)nb;
    CLATTN_ARG(a, unb);
}

