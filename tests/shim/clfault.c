/* clfault: an LD_PRELOAD shim over the OpenCL host calls that can fail (object creation, builds,
 * enqueues, waits), for fault-injection sweeps and call counting.
 *
 *   CLFAULT_AT=k      the k-th wrapped call of the process (counting from 1, all functions
 *                     together) fails with a realistic error for its function, without reaching
 *                     the driver; every other call passes through. The failure is logged at once
 *                     (so a crash afterwards still leaves it): "fail K FUNCTION ERROR OBJECT
 *                     SYMBOL", the object (file name) that made the call and the nearest exported
 *                     symbol before the call site (dladdr; "?" when unknown).
 *   CLFAULT_COUNT=1   at exit, logs "calls N" (every wrapped call) and "FUNCTION n" per function
 *                     that was called.
 *   CLFAULT_REPORT=f  the log goes to file f (appended) instead of stderr.
 *
 * Errors by function: buffer creation and the memory commands give
 * CL_MEM_OBJECT_ALLOCATION_FAILURE, builds CL_BUILD_PROGRAM_FAILURE, everything else
 * CL_OUT_OF_RESOURCES.
 *
 * In-process use: a test run with this library preloaded finds, with dlsym(RTLD_DEFAULT, ...),
 *   unsigned long clfault_count(const char *fn)   calls of `fn` so far (NULL: of every wrapped
 *       function), e.g. to assert that enqueueing a baked plan creates no program or kernel;
 *   void clfault_fail_next(const char *fn, unsigned long nth)   the nth next call of `fn` (NULL:
 *       of any wrapped function) fails as above; nth 0 disarms.
 * tests/shim/clfault.h wraps the lookups.
 *
 * Only the application's and its libraries' calls into the ICD loader are seen: the driver,
 * reached through the loader's dispatch table, is not wrapped. */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLFAULT_EXPORT __attribute__((visibility("default")))

/* Every wrapped function: name, and the error its injected failure returns. */
#define CLFAULT_FUNCS(X)                                                                           \
    X(clCreateContext, CL_OUT_OF_RESOURCES)                                                        \
    X(clCreateCommandQueue, CL_OUT_OF_RESOURCES)                                                   \
    X(clCreateCommandQueueWithProperties, CL_OUT_OF_RESOURCES)                                     \
    X(clCreateBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                            \
    X(clCreateSubBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                         \
    X(clCreateUserEvent, CL_OUT_OF_RESOURCES)                                                      \
    X(clCreateProgramWithSource, CL_OUT_OF_RESOURCES)                                              \
    X(clCreateProgramWithBinary, CL_OUT_OF_RESOURCES)                                              \
    X(clBuildProgram, CL_BUILD_PROGRAM_FAILURE)                                                    \
    X(clGetProgramInfo, CL_OUT_OF_RESOURCES)                                                       \
    X(clGetProgramBuildInfo, CL_OUT_OF_RESOURCES)                                                  \
    X(clCreateKernel, CL_OUT_OF_RESOURCES)                                                         \
    X(clGetKernelWorkGroupInfo, CL_OUT_OF_RESOURCES)                                               \
    X(clSetKernelArg, CL_OUT_OF_RESOURCES)                                                         \
    X(clEnqueueNDRangeKernel, CL_OUT_OF_RESOURCES)                                                 \
    X(clEnqueueReadBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                       \
    X(clEnqueueWriteBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                      \
    X(clEnqueueCopyBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                       \
    X(clEnqueueFillBuffer, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                       \
    X(clEnqueueReadBufferRect, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                   \
    X(clEnqueueWriteBufferRect, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                  \
    X(clEnqueueCopyBufferRect, CL_MEM_OBJECT_ALLOCATION_FAILURE)                                   \
    X(clEnqueueMarkerWithWaitList, CL_OUT_OF_RESOURCES)                                            \
    X(clEnqueueBarrierWithWaitList, CL_OUT_OF_RESOURCES)                                           \
    X(clFlush, CL_OUT_OF_RESOURCES)                                                                \
    X(clFinish, CL_OUT_OF_RESOURCES)                                                               \
    X(clWaitForEvents, CL_OUT_OF_RESOURCES)

#define CLFAULT_ID(name, err) ID_##name,
enum { CLFAULT_FUNCS(CLFAULT_ID) ID_COUNT };
#define CLFAULT_NAME(name, err) #name,
static const char *const fn_names[ID_COUNT] = {CLFAULT_FUNCS(CLFAULT_NAME)};
#define CLFAULT_ERR(name, err) err,
static const cl_int fn_errors[ID_COUNT] = {CLFAULT_FUNCS(CLFAULT_ERR)};

static unsigned long counts[ID_COUNT]; /* atomics (__atomic builtins) */
static unsigned long total;
static unsigned long fail_at; /* 0: never */
static int count_at_exit;
static void *real[ID_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    const char *path = getenv("CLFAULT_REPORT");
    int fd = path && *path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 2;
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, (size_t)n); /* one write: lines of threads stay whole */
    (void)w;
    if (fd != 2)
        close(fd);
}

static void setup(void)
{
    const char *at = getenv("CLFAULT_AT");
    if (at && *at)
        fail_at = strtoul(at, NULL, 10);
    const char *c = getenv("CLFAULT_COUNT");
    count_at_exit = c && *c && strcmp(c, "0") != 0;
    for (int i = 0; i < ID_COUNT; i++)
        real[i] = dlsym(RTLD_NEXT, fn_names[i]);
}

/* An in-process fault armed by clfault_fail_next (guarded by arm_lock; `armed` is read first
 * without it so that unarmed calls stay lock-free). */
static pthread_mutex_t arm_lock = PTHREAD_MUTEX_INITIALIZER;
static int armed, arm_id; /* arm_id -1: any function */
static unsigned long arm_left;

static int armed_fault(int id)
{
    int fail = 0;
    if (!__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&arm_lock);
    if (armed && (arm_id < 0 || arm_id == id) && --arm_left == 0) {
        fail = 1;
        __atomic_store_n(&armed, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&arm_lock);
    return fail;
}

/* Counts a call of function `id` made from code at `caller`; true when it is the one that must
 * fail. The log names the object the call came from (the program, libclblast, libclFFT ...) and
 * the nearest exported symbol before the call site. */
static int tick(int id, const void *caller)
{
    pthread_once(&once, setup);
    __atomic_add_fetch(&counts[id], 1, __ATOMIC_RELAXED);
    unsigned long n = __atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
    if (n != fail_at && !armed_fault(id))
        return 0;
    Dl_info info;
    const char *from = "?", *sym = "?";
    if (dladdr(caller, &info)) {
        if (info.dli_fname) {
            from = strrchr(info.dli_fname, '/');
            from = from ? from + 1 : info.dli_fname;
        }
        if (info.dli_sname)
            sym = info.dli_sname;
    }
    log_line("fail %lu %s %d %s %s\n", n, fn_names[id], (int)fn_errors[id], from, sym);
    return 1;
}

CLFAULT_EXPORT void clfault_fail_next(const char *fn, unsigned long nth)
{
    int id = -1;
    pthread_once(&once, setup);
    if (fn)
        for (int i = 0; i < ID_COUNT; i++)
            if (strcmp(fn, fn_names[i]) == 0)
                id = i;
    pthread_mutex_lock(&arm_lock);
    arm_id = id;
    arm_left = nth;
    __atomic_store_n(&armed, nth > 0 && (id >= 0 || !fn), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&arm_lock);
}

static void *next(int id)
{
    if (!real[id]) {
        /* The application called a function the ICD loader does not export: fail loudly rather
         * than jump to NULL. */
        log_line("clfault: %s not found after the shim\n", fn_names[id]);
        abort();
    }
    return real[id];
}

__attribute__((destructor)) static void report(void)
{
    if (!count_at_exit || total == 0)
        return;
    log_line("calls %lu\n", total);
    for (int i = 0; i < ID_COUNT; i++)
        if (counts[i])
            log_line("%s %lu\n", fn_names[i], counts[i]);
}

CLFAULT_EXPORT unsigned long clfault_count(const char *fn)
{
    if (!fn)
        return __atomic_load_n(&total, __ATOMIC_RELAXED);
    for (int i = 0; i < ID_COUNT; i++)
        if (strcmp(fn, fn_names[i]) == 0)
            return __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
    return 0;
}

/* Wrappers: a function returning cl_int fails by returning its error; one returning an object
 * fails by returning NULL with the error in *errcode_ret. */
#define RET_ERR(name)                                                                              \
    if (tick(ID_##name, __builtin_return_address(0)))                                              \
    return fn_errors[ID_##name]
#define RET_NULL(name)                                                                             \
    do {                                                                                           \
        if (tick(ID_##name, __builtin_return_address(0))) {                                       \
            if (errcode_ret)                                                                       \
                *errcode_ret = fn_errors[ID_##name];                                               \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)
#define REAL(name) ((__typeof__(&name))next(ID_##name))

CLFAULT_EXPORT cl_context clCreateContext(const cl_context_properties *properties,
                                          cl_uint num_devices, const cl_device_id *devices,
                                          void(CL_CALLBACK *pfn_notify)(const char *, const void *,
                                                                        size_t, void *),
                                          void *user_data, cl_int *errcode_ret)
{
    RET_NULL(clCreateContext);
    return REAL(clCreateContext)(properties, num_devices, devices, pfn_notify, user_data,
                                 errcode_ret);
}

CLFAULT_EXPORT cl_command_queue clCreateCommandQueue(cl_context context, cl_device_id device,
                                                     cl_command_queue_properties properties,
                                                     cl_int *errcode_ret)
{
    RET_NULL(clCreateCommandQueue);
    return REAL(clCreateCommandQueue)(context, device, properties, errcode_ret);
}

CLFAULT_EXPORT cl_command_queue
clCreateCommandQueueWithProperties(cl_context context, cl_device_id device,
                                   const cl_queue_properties *properties, cl_int *errcode_ret)
{
    RET_NULL(clCreateCommandQueueWithProperties);
    return REAL(clCreateCommandQueueWithProperties)(context, device, properties, errcode_ret);
}

CLFAULT_EXPORT cl_mem clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size,
                                     void *host_ptr, cl_int *errcode_ret)
{
    RET_NULL(clCreateBuffer);
    return REAL(clCreateBuffer)(context, flags, size, host_ptr, errcode_ret);
}

CLFAULT_EXPORT cl_mem clCreateSubBuffer(cl_mem buffer, cl_mem_flags flags,
                                        cl_buffer_create_type type, const void *info,
                                        cl_int *errcode_ret)
{
    RET_NULL(clCreateSubBuffer);
    return REAL(clCreateSubBuffer)(buffer, flags, type, info, errcode_ret);
}

CLFAULT_EXPORT cl_event clCreateUserEvent(cl_context context, cl_int *errcode_ret)
{
    RET_NULL(clCreateUserEvent);
    return REAL(clCreateUserEvent)(context, errcode_ret);
}

CLFAULT_EXPORT cl_program clCreateProgramWithSource(cl_context context, cl_uint count,
                                                    const char **strings, const size_t *lengths,
                                                    cl_int *errcode_ret)
{
    RET_NULL(clCreateProgramWithSource);
    return REAL(clCreateProgramWithSource)(context, count, strings, lengths, errcode_ret);
}

CLFAULT_EXPORT cl_program clCreateProgramWithBinary(cl_context context, cl_uint num_devices,
                                                    const cl_device_id *device_list,
                                                    const size_t *lengths,
                                                    const unsigned char **binaries,
                                                    cl_int *binary_status, cl_int *errcode_ret)
{
    RET_NULL(clCreateProgramWithBinary);
    return REAL(clCreateProgramWithBinary)(context, num_devices, device_list, lengths, binaries,
                                           binary_status, errcode_ret);
}

CLFAULT_EXPORT cl_int clBuildProgram(cl_program program, cl_uint num_devices,
                                     const cl_device_id *device_list, const char *options,
                                     void(CL_CALLBACK *pfn_notify)(cl_program, void *),
                                     void *user_data)
{
    RET_ERR(clBuildProgram);
    return REAL(clBuildProgram)(program, num_devices, device_list, options, pfn_notify, user_data);
}

CLFAULT_EXPORT cl_int clGetProgramInfo(cl_program program, cl_program_info param_name,
                                       size_t param_value_size, void *param_value,
                                       size_t *param_value_size_ret)
{
    RET_ERR(clGetProgramInfo);
    return REAL(clGetProgramInfo)(program, param_name, param_value_size, param_value,
                                  param_value_size_ret);
}

CLFAULT_EXPORT cl_int clGetProgramBuildInfo(cl_program program, cl_device_id device,
                                            cl_program_build_info param_name,
                                            size_t param_value_size, void *param_value,
                                            size_t *param_value_size_ret)
{
    RET_ERR(clGetProgramBuildInfo);
    return REAL(clGetProgramBuildInfo)(program, device, param_name, param_value_size, param_value,
                                       param_value_size_ret);
}

CLFAULT_EXPORT cl_kernel clCreateKernel(cl_program program, const char *kernel_name,
                                        cl_int *errcode_ret)
{
    RET_NULL(clCreateKernel);
    return REAL(clCreateKernel)(program, kernel_name, errcode_ret);
}

CLFAULT_EXPORT cl_int clGetKernelWorkGroupInfo(cl_kernel kernel, cl_device_id device,
                                               cl_kernel_work_group_info param_name,
                                               size_t param_value_size, void *param_value,
                                               size_t *param_value_size_ret)
{
    RET_ERR(clGetKernelWorkGroupInfo);
    return REAL(clGetKernelWorkGroupInfo)(kernel, device, param_name, param_value_size,
                                          param_value, param_value_size_ret);
}

CLFAULT_EXPORT cl_int clSetKernelArg(cl_kernel kernel, cl_uint arg_index, size_t arg_size,
                                     const void *arg_value)
{
    RET_ERR(clSetKernelArg);
    return REAL(clSetKernelArg)(kernel, arg_index, arg_size, arg_value);
}

CLFAULT_EXPORT cl_int clEnqueueNDRangeKernel(cl_command_queue queue, cl_kernel kernel,
                                             cl_uint work_dim, const size_t *global_work_offset,
                                             const size_t *global_work_size,
                                             const size_t *local_work_size,
                                             cl_uint num_events_in_wait_list,
                                             const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueNDRangeKernel);
    return REAL(clEnqueueNDRangeKernel)(queue, kernel, work_dim, global_work_offset,
                                        global_work_size, local_work_size,
                                        num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueReadBuffer(cl_command_queue queue, cl_mem buffer,
                                          cl_bool blocking_read, size_t offset, size_t size,
                                          void *ptr, cl_uint num_events_in_wait_list,
                                          const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueReadBuffer);
    return REAL(clEnqueueReadBuffer)(queue, buffer, blocking_read, offset, size, ptr,
                                     num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueWriteBuffer(cl_command_queue queue, cl_mem buffer,
                                           cl_bool blocking_write, size_t offset, size_t size,
                                           const void *ptr, cl_uint num_events_in_wait_list,
                                           const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueWriteBuffer);
    return REAL(clEnqueueWriteBuffer)(queue, buffer, blocking_write, offset, size, ptr,
                                      num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueCopyBuffer(cl_command_queue queue, cl_mem src_buffer,
                                          cl_mem dst_buffer, size_t src_offset, size_t dst_offset,
                                          size_t size, cl_uint num_events_in_wait_list,
                                          const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueCopyBuffer);
    return REAL(clEnqueueCopyBuffer)(queue, src_buffer, dst_buffer, src_offset, dst_offset, size,
                                     num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueFillBuffer(cl_command_queue queue, cl_mem buffer,
                                          const void *pattern, size_t pattern_size, size_t offset,
                                          size_t size, cl_uint num_events_in_wait_list,
                                          const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueFillBuffer);
    return REAL(clEnqueueFillBuffer)(queue, buffer, pattern, pattern_size, offset, size,
                                     num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueReadBufferRect(
    cl_command_queue queue, cl_mem buffer, cl_bool blocking_read, const size_t *buffer_origin,
    const size_t *host_origin, const size_t *region, size_t buffer_row_pitch,
    size_t buffer_slice_pitch, size_t host_row_pitch, size_t host_slice_pitch, void *ptr,
    cl_uint num_events_in_wait_list, const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueReadBufferRect);
    return REAL(clEnqueueReadBufferRect)(queue, buffer, blocking_read, buffer_origin, host_origin,
                                         region, buffer_row_pitch, buffer_slice_pitch,
                                         host_row_pitch, host_slice_pitch, ptr,
                                         num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueWriteBufferRect(
    cl_command_queue queue, cl_mem buffer, cl_bool blocking_write, const size_t *buffer_origin,
    const size_t *host_origin, const size_t *region, size_t buffer_row_pitch,
    size_t buffer_slice_pitch, size_t host_row_pitch, size_t host_slice_pitch, const void *ptr,
    cl_uint num_events_in_wait_list, const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueWriteBufferRect);
    return REAL(clEnqueueWriteBufferRect)(queue, buffer, blocking_write, buffer_origin,
                                          host_origin, region, buffer_row_pitch,
                                          buffer_slice_pitch, host_row_pitch, host_slice_pitch,
                                          ptr, num_events_in_wait_list, event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueCopyBufferRect(
    cl_command_queue queue, cl_mem src_buffer, cl_mem dst_buffer, const size_t *src_origin,
    const size_t *dst_origin, const size_t *region, size_t src_row_pitch, size_t src_slice_pitch,
    size_t dst_row_pitch, size_t dst_slice_pitch, cl_uint num_events_in_wait_list,
    const cl_event *event_wait_list, cl_event *event)
{
    RET_ERR(clEnqueueCopyBufferRect);
    return REAL(clEnqueueCopyBufferRect)(queue, src_buffer, dst_buffer, src_origin, dst_origin,
                                         region, src_row_pitch, src_slice_pitch, dst_row_pitch,
                                         dst_slice_pitch, num_events_in_wait_list,
                                         event_wait_list, event);
}

CLFAULT_EXPORT cl_int clEnqueueMarkerWithWaitList(cl_command_queue queue,
                                                  cl_uint num_events_in_wait_list,
                                                  const cl_event *event_wait_list,
                                                  cl_event *event)
{
    RET_ERR(clEnqueueMarkerWithWaitList);
    return REAL(clEnqueueMarkerWithWaitList)(queue, num_events_in_wait_list, event_wait_list,
                                             event);
}

CLFAULT_EXPORT cl_int clEnqueueBarrierWithWaitList(cl_command_queue queue,
                                                   cl_uint num_events_in_wait_list,
                                                   const cl_event *event_wait_list,
                                                   cl_event *event)
{
    RET_ERR(clEnqueueBarrierWithWaitList);
    return REAL(clEnqueueBarrierWithWaitList)(queue, num_events_in_wait_list, event_wait_list,
                                              event);
}

CLFAULT_EXPORT cl_int clFlush(cl_command_queue queue)
{
    RET_ERR(clFlush);
    return REAL(clFlush)(queue);
}

CLFAULT_EXPORT cl_int clFinish(cl_command_queue queue)
{
    RET_ERR(clFinish);
    return REAL(clFinish)(queue);
}

CLFAULT_EXPORT cl_int clWaitForEvents(cl_uint num_events, const cl_event *event_list)
{
    RET_ERR(clWaitForEvents);
    return REAL(clWaitForEvents)(num_events, event_list);
}
