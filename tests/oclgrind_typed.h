/* The half-storage cases of test_oclgrind (tests/oclgrind_typed.c); each returns 0 on success. */
#ifndef CLATTN_OCLGRIND_TYPED_H
#define CLATTN_OCLGRIND_TYPED_H
#include "clattn.h"

int run_linear_f16(clattn_context *ctx, size_t n, size_t d, size_t dv);
int run_lsh_half(clattn_context *ctx);
int run_routing_half(clattn_context *ctx);
int run_ssm_f16(clattn_context *ctx);
int run_rpe_f16(clattn_context *ctx, clattn_rpe_algo algo, size_t n, size_t d, size_t dv,
                int causal);
int run_mgk_half(clattn_context *ctx, clattn_mgk_form form, clattn_mgk_algo algo);
int run_softmax_typed(clattn_context *ctx, clattn_softmax_algo algo, size_t nq, size_t nk,
                      size_t d, int causal, const clattn_dtype dt[4]);

#endif
