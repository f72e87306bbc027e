/* Shared by the batched decoding states (lib/ops/linear_state.c, lib/ops/ssm_state.c): checking
 * a clattn_seq_select and passing it to kernels_cl/states.cl-style kernels (kind, buffer, offset,
 * batch; clattn_seq_pick reads them). */
#ifndef CLATTN_OPS_STATES_H
#define CLATTN_OPS_STATES_H

#include "../core/internal.h"

/* Checks a selection against a batch of nb sequences; *slots receives the work-item slots it
 * spans (nb for all and masks, count for lists, which may not exceed nb). */
clattn_status clattn__seq_select_check(clattn_context *ctx, const clattn_seq_select *sel,
                                       size_t nb, const char *what, size_t *slots);
/* The selection's four kernel arguments (dummy: any valid buffer, for CLATTN_SEQ_ALL). */
void clattn__seq_select_args(clattn__args *a, const clattn_seq_select *sel, cl_mem dummy,
                             size_t nb);
/* True when sel selects every sequence (NULL or CLATTN_SEQ_ALL). */
bool clattn__seq_select_all(const clattn_seq_select *sel);

#endif
