/* The plan base every operator's plan starts with (internal.h): its kernels, created once at bake
 * time and recorded for clattn_plan_get_info, its scratch and constant buffers, and the two entry
 * points that take a plan of any operator. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {"unknown", "softmax", "linear", "rpe",
                                       "lsh",     "routing", "ssm",    "gss",
                                       "mgk", "deq", "kvcache"};

const char *clattn_operator_name(clattn_operator op)
{
    return (int)op >= 1 && (int)op <= CLATTN_OP_KVCACHE ? op_names[op] : op_names[0];
}

clattn_status clattn__plan_alloc(clattn_context *ctx, size_t size, const clattn__plan_ops *ops,
                                 clattn_plan **out)
{
    *out = NULL;
    clattn_plan *p = calloc(1, size < sizeof *p ? sizeof *p : size);
    if (!p)
        return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "%s plan: out of host memory",
                            clattn_operator_name(ops->op));
    p->ctx = ctx;
    p->ops = ops;
    *out = p;
    return CLATTN_SUCCESS;
}

void clattn_plan_destroy(clattn_plan *plan)
{
    if (!plan)
        return;
    if (plan->ops && plan->ops->destroy)
        plan->ops->destroy(plan);
    for (unsigned i = 0; i < plan->num_kernels; i++)
        if (plan->kernels[i].kernel)
            clReleaseKernel(plan->kernels[i].kernel);
    for (unsigned i = 0; i < plan->num_scratch; i++)
        if (plan->scratch[i])
            clReleaseMemObject(plan->scratch[i]);
    free(plan);
}

clattn_status clattn__plan_kernel(clattn_plan *plan, const char *file, const char *options,
                                  const char *name, size_t local, const char *chosen_by,
                                  cl_kernel *out)
{
    clattn_context *ctx = plan->ctx;
    cl_program prog = NULL;
    *out = NULL;
    if (plan->num_kernels >= CLATTN__PLAN_MAX_KERNELS)
        return clattn__fail(ctx, CLATTN_INTERNAL_ERROR, "%s plan: more than %d kernels",
                            clattn_operator_name(plan->ops->op), CLATTN__PLAN_MAX_KERNELS);
    char opts[512];
    if (!options)
        options = "";
    if (plan->dtype_defines[0]) {
        int w = snprintf(opts, sizeof opts, "%s%s%s", options, options[0] ? " " : "",
                         plan->dtype_defines);
        if (w < 0 || (size_t)w >= sizeof opts)
            return clattn__fail(ctx, CLATTN_INTERNAL_ERROR, "%s plan: build options too long",
                                clattn_operator_name(plan->ops->op));
        options = opts;
    }
    clattn_status status = clattn__program_get(ctx, file, options, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, out);
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__plan_krec *k = &plan->kernels[plan->num_kernels++];
    k->kernel = *out;
    snprintf(k->info.name, sizeof k->info.name, "%s", name);
    snprintf(k->info.program, sizeof k->info.program, "%s", file);
    size_t olen = strlen(options);
    if (olen >= sizeof k->info.build_options)
        olen = sizeof k->info.build_options - 1;
    memcpy(k->info.build_options, options, olen);
    k->info.build_options[olen] = '\0';
    snprintf(k->info.chosen_by, sizeof k->info.chosen_by, "%s", chosen_by ? chosen_by : "fixed");
    k->info.local_size = local;
    return CLATTN_SUCCESS;
}

clattn_status clattn__plan_set_dtypes(clattn_plan *plan, const clattn__dtype_role *roles, int n)
{
    for (int i = 0; i < n; i++)
        if (clattn_dtype_size(roles[i].dtype) == 0)
            return clattn__fail(plan->ctx, CLATTN_INVALID_ARGUMENT,
                                "%s plan: dtype %d of %s is not a clattn_dtype",
                                clattn_operator_name(plan->ops->op), (int)roles[i].dtype,
                                roles[i].name);
    clattn__dtype_defines(plan->dtype_defines, sizeof plan->dtype_defines, roles, n);
    return CLATTN_SUCCESS;
}

clattn_status clattn__plan_cast_kernel(clattn_plan *plan, clattn_dtype src, clattn_dtype dst,
                                       cl_kernel *out)
{
    /* the cast program takes its own types, not the plan's roles */
    char saved[sizeof plan->dtype_defines], opts[64];
    memcpy(saved, plan->dtype_defines, sizeof saved);
    plan->dtype_defines[0] = '\0';
    snprintf(opts, sizeof opts, "-DSRC_DT=%d -DDST_DT=%d", (int)src, (int)dst);
    clattn_status st = clattn__plan_kernel(plan, "cast.cl", opts, "clattn_cast", 0, "fixed", out);
    memcpy(plan->dtype_defines, saved, sizeof saved);
    return st;
}

clattn_status clattn__cast_enqueue(clattn__seq *s, cl_kernel k, const clattn_tensor *t,
                                   cl_mem buf, size_t buf_off, bool to_view, bool last,
                                   cl_event *event)
{
    clattn__args a = {k, 0, CL_SUCCESS};
    cl_ulong off = buf_off;
    cl_uint4 shape;
    for (int i = 0; i < 4; i++)
        shape.s[i] = (cl_uint)t->shape[i];
    cl_uint dir = to_view ? 1u : 0u;
    clattn__arg_view(&a, t);
    CLATTN_ARG(&a, buf);
    CLATTN_ARG(&a, off);
    CLATTN_ARG(&a, shape);
    CLATTN_ARG(&a, dir);
    if (a.err != CL_SUCCESS)
        return clattn__fail(s->ctx, (clattn_status)a.err, "cast kernel arguments: %s",
                            clattn__cl_error_name(a.err));
    size_t global = t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
    return clattn__seq_kernel(s, k, 1, &global, last, event);
}

static clattn_status keep_buffer(clattn_plan *plan, cl_mem b, size_t bytes, cl_mem *out)
{
    if (plan->num_scratch >= CLATTN__PLAN_MAX_SCRATCH) {
        clReleaseMemObject(b);
        return clattn__fail(plan->ctx, CLATTN_INTERNAL_ERROR, "%s plan: more than %d buffers",
                            clattn_operator_name(plan->ops->op), CLATTN__PLAN_MAX_SCRATCH);
    }
    plan->scratch[plan->num_scratch++] = b;
    plan->scratch_bytes += bytes;
    *out = b;
    return CLATTN_SUCCESS;
}

clattn_status clattn__plan_scratch(clattn_plan *plan, size_t bytes, const char *what,
                                   cl_mem *out)
{
    cl_mem b = NULL;
    *out = NULL;
    clattn_status status = clattn__buffer_create(plan->ctx, bytes ? bytes : 4, what, &b);
    if (status != CLATTN_SUCCESS) {
        if (b)
            clReleaseMemObject(b);
        return status;
    }
    return keep_buffer(plan, b, bytes, out);
}

clattn_status clattn__plan_upload(clattn_plan *plan, const void *src, size_t bytes,
                                  const char *what, cl_mem *out)
{
    cl_mem b = NULL;
    *out = NULL;
    clattn_status status = clattn__buffer_upload(plan->ctx, src, bytes, &b);
    if (status != CLATTN_SUCCESS) {
        if (b)
            clReleaseMemObject(b);
        return clattn__fail(plan->ctx, status, "%s plan: uploading %s (%zu bytes) failed: %s",
                            clattn_operator_name(plan->ops->op), what, bytes,
                            clattn_status_string(status));
    }
    return keep_buffer(plan, b, bytes, out);
}

clattn_status clattn__plan_check(const clattn_plan *plan, clattn_operator op, const char *fn)
{
    if (!plan)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "%s: plan is NULL", fn);
    if (!plan->ops || plan->ops->op != op)
        return clattn__fail(plan->ctx, CLATTN_INVALID_ARGUMENT, "%s: the plan is a %s plan", fn,
                            clattn_operator_name(plan->ops ? plan->ops->op : (clattn_operator)0));
    return CLATTN_SUCCESS;
}

clattn_status clattn_plan_get_info(const clattn_plan *plan, clattn_plan_info *info)
{
    if (!plan || !info)
        return clattn__fail(plan ? plan->ctx : NULL, CLATTN_NULL_POINTER,
                            "clattn_plan_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    info->op = plan->ops->op;
    info->algorithm = plan->algorithm;
    snprintf(info->algorithm_name, sizeof info->algorithm_name, "%s", plan->algorithm_name);
    snprintf(info->launch, sizeof info->launch, "%s", plan->launch);
    info->from_tuning_db = plan->from_db;
    info->scratch_bytes = plan->scratch_bytes;
    info->num_kernels = plan->num_kernels;
    for (unsigned i = 0; i < plan->num_kernels; i++)
        info->kernels[i] = plan->kernels[i].info;
    /* The main kernel is the last one made unless the operator says otherwise. */
    if (plan->num_kernels > 0) {
        const clattn_plan_kernel *m = &plan->kernels[plan->num_kernels - 1].info;
        snprintf(info->variant, sizeof info->variant, "%s", m->name);
        snprintf(info->build_options, sizeof info->build_options, "%s", m->build_options);
        info->local_size = m->local_size;
    }
    if (plan->ops->info)
        plan->ops->info(plan, info);
    return CLATTN_SUCCESS;
}
