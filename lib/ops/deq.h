/* Internal to the DEQ family (lib/ops/deq.c: solvers, lib/ops/deq_cell.c: the attention cell):
 * both are plans of CLATTN_OP_DEQ, told apart by the kind right after the base. */
#ifndef CLATTN_OPS_DEQ_H
#define CLATTN_OPS_DEQ_H

#include "internal.h"
#include "../sched/sched.h"

typedef enum deq_kind { CLATTN__DEQ_SOLVER = 1, CLATTN__DEQ_CELL = 2 } clattn__deq_kind;

typedef struct clattn__deq_head {
    clattn_plan base;
    clattn__deq_kind kind;
} clattn__deq_head;

/* A DEQ plan of `kind`, or NULL_POINTER / INVALID_ARGUMENT with a message naming `fn`. */
clattn_status clattn__deq_check(const clattn_plan *plan, clattn__deq_kind kind, const char *fn);

/* A dense row-major view (strides of the shape) of `shape` in buffer t; INVALID_SHAPE,
 * SHAPE_MISMATCH, BUFFER_TOO_SMALL (tensor_check) or UNSUPPORTED (not dense). */
clattn_status clattn__deq_dense(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                const size_t shape[4]);

#endif
