/* Status names and messages (one X-macro table drives the enum, names and messages), the
 * per-context error message, and the library version. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

unsigned clattn_version(void) { return CLATTN_VERSION_NUMBER; }

#define CLATTN_STR_(x) #x
#define CLATTN_XSTR_(x) CLATTN_STR_(x)
const char *clattn_version_string(void)
{
    return CLATTN_XSTR_(CLATTN_VERSION_MAJOR) "." CLATTN_XSTR_(
        CLATTN_VERSION_MINOR) "." CLATTN_XSTR_(CLATTN_VERSION_PATCH);
}

#define CL_ERRORS(X)                                                                               \
    X(CL_DEVICE_NOT_FOUND) X(CL_DEVICE_NOT_AVAILABLE) X(CL_COMPILER_NOT_AVAILABLE)                 \
    X(CL_MEM_OBJECT_ALLOCATION_FAILURE) X(CL_OUT_OF_RESOURCES) X(CL_OUT_OF_HOST_MEMORY)            \
    X(CL_PROFILING_INFO_NOT_AVAILABLE) X(CL_MEM_COPY_OVERLAP) X(CL_IMAGE_FORMAT_MISMATCH)          \
    X(CL_IMAGE_FORMAT_NOT_SUPPORTED) X(CL_BUILD_PROGRAM_FAILURE) X(CL_MAP_FAILURE)                 \
    X(CL_MISALIGNED_SUB_BUFFER_OFFSET) X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)             \
    X(CL_COMPILE_PROGRAM_FAILURE) X(CL_LINKER_NOT_AVAILABLE) X(CL_LINK_PROGRAM_FAILURE)            \
    X(CL_DEVICE_PARTITION_FAILED) X(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) X(CL_INVALID_VALUE)          \
    X(CL_INVALID_DEVICE_TYPE) X(CL_INVALID_PLATFORM) X(CL_INVALID_DEVICE) X(CL_INVALID_CONTEXT)    \
    X(CL_INVALID_QUEUE_PROPERTIES) X(CL_INVALID_COMMAND_QUEUE) X(CL_INVALID_HOST_PTR)              \
    X(CL_INVALID_MEM_OBJECT) X(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) X(CL_INVALID_IMAGE_SIZE)        \
    X(CL_INVALID_SAMPLER) X(CL_INVALID_BINARY) X(CL_INVALID_BUILD_OPTIONS) X(CL_INVALID_PROGRAM)   \
    X(CL_INVALID_PROGRAM_EXECUTABLE) X(CL_INVALID_KERNEL_NAME) X(CL_INVALID_KERNEL_DEFINITION)     \
    X(CL_INVALID_KERNEL) X(CL_INVALID_ARG_INDEX) X(CL_INVALID_ARG_VALUE) X(CL_INVALID_ARG_SIZE)    \
    X(CL_INVALID_KERNEL_ARGS) X(CL_INVALID_WORK_DIMENSION) X(CL_INVALID_WORK_GROUP_SIZE)           \
    X(CL_INVALID_WORK_ITEM_SIZE) X(CL_INVALID_GLOBAL_OFFSET) X(CL_INVALID_EVENT_WAIT_LIST)         \
    X(CL_INVALID_EVENT) X(CL_INVALID_OPERATION) X(CL_INVALID_GL_OBJECT)                            \
    X(CL_INVALID_BUFFER_SIZE) X(CL_INVALID_MIP_LEVEL) X(CL_INVALID_GLOBAL_WORK_SIZE)               \
    X(CL_INVALID_PROPERTY) X(CL_INVALID_IMAGE_DESCRIPTOR) X(CL_INVALID_COMPILER_OPTIONS)           \
    X(CL_INVALID_LINKER_OPTIONS) X(CL_INVALID_DEVICE_PARTITION_COUNT)

const char *clattn__cl_error_name(cl_int err)
{
    switch (err) {
#define CASE_(name)                                                                                \
    case name:                                                                                     \
        return #name;
        CL_ERRORS(CASE_)
#undef CASE_
    default:
        return NULL;
    }
}

const char *clattn_status_string(clattn_status status)
{
    switch ((int)status) {
#define CASE_(name, value, msg)                                                                    \
    case value:                                                                                    \
        return "CLATTN_" #name;
        CLATTN_STATUS_MAP(CASE_)
#undef CASE_
    default: {
        const char *cl = clattn__cl_error_name((cl_int)status);
        return cl ? cl : "unknown status";
    }
    }
}

const char *clattn_status_message(clattn_status status)
{
    switch ((int)status) {
#define CASE_(name, value, msg)                                                                    \
    case value:                                                                                    \
        return msg;
        CLATTN_STATUS_MAP(CASE_)
#undef CASE_
    default:
        if ((int)status < 0 && (int)status > -1000)
            return clattn__cl_error_name((cl_int)status) ? "OpenCL error" : "unknown OpenCL error";
        return "unknown status";
    }
}

/* Messages of failed context creations have no context to live in: keep them per thread. */
static _Thread_local char creation_msg[CLATTN__MSG_LEN];

clattn_status clattn__fail(clattn_context *ctx, clattn_status status, const char *fmt, ...)
{
    char buf[CLATTN__MSG_LEN - 64]; /* room for the status name in front */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ctx) {
        pthread_mutex_lock(&ctx->lock);
        snprintf(ctx->msg, sizeof ctx->msg, "%s: %s", clattn_status_string(status), buf);
        pthread_mutex_unlock(&ctx->lock);
    } else {
        snprintf(creation_msg, sizeof creation_msg, "%s: %s", clattn_status_string(status), buf);
    }
    return status;
}

const char *clattn_context_last_error(const clattn_context *ctx)
{
    return ctx ? ctx->msg : creation_msg;
}
