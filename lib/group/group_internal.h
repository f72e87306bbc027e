/* Internal declarations of device groups (include/clattn/group.h), shared by lib/group/group.c
 * (the handle, weights, calibration, shares), group_softmax.c and group_linear.c. */
#ifndef CLATTN_GROUP_INTERNAL_H
#define CLATTN_GROUP_INTERNAL_H

#include "../core/internal.h"

#define CLATTN__GROUP_MAX 64
#define CLATTN__GROUP_MSG 1024

struct clattn_group {
    size_t n;
    clattn_context *ctx[CLATTN__GROUP_MAX];
    double w[CLATTN__GROUP_MAX]; /* normalised, sum 1 */
    clattn_group_weights source;
    clattn_group_split split;
    char name[CLATTN__GROUP_MAX][96]; /* "platform device" for messages */
    char msg[CLATTN__GROUP_MSG];
    clattn_group_run_info info;
    /* Test hook (clattn__group_inject_failure): device index + 1 whose next part fails with
     * `inject_status` after its work was enqueued; 0: none. One-shot. */
    size_t inject;
    clattn_status inject_status;
};

/* True when the elements of every one of the shapes (4 sizes each), times 4 bytes, fit size_t. */
static inline bool clattn__group_sizes_ok(const size_t *const *shapes, int n)
{
    for (int i = 0; i < n; i++) {
        size_t e = 4;
        for (int a = 0; a < 4; a++)
            if (!clattn__mul_ok(e, shapes[i][a], &e))
                return false;
    }
    return true;
}

/* Records "<STATUS>: <message>" on the group and returns status. */
clattn_status clattn__group_fail(clattn_group *g, clattn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A device's failure: "<STATUS>: device r (<name>): <the context's message>". */
clattn_status clattn__group_device_fail(clattn_group *g, size_t r, clattn_status status,
                                        const char *what);
/* A buffer of `bytes` (at least 4) on device r's context, filled from `init` when not NULL. On
 * failure: NULL, *st set through clattn__group_device_fail (the message names the device). */
cl_mem clattn__group_buffer(clattn_group *g, size_t r, size_t bytes, const void *init,
                            clattn_status *st);
/* Releases the n buffers *m[i] that are set, and clears them. */
void clattn__group_release(cl_mem *const *m, int n);
/* Cuts [0, n) into one contiguous range per device in proportion to the weights, each cut where
 * the cumulative cost (cost[j] of item j; NULL: 1 each) first reaches the device's cumulative
 * weight: start[r], count[r]. Devices of weight 0 get 0 items. */
void clattn__group_cut(const clattn_group *g, const double *cost, size_t n, size_t *start,
                       size_t *count);
/* The call's split for AUTO: the group's default or the documented rule. */
clattn_group_split clattn__group_pick(const clattn_group *g, clattn_group_split split,
                                      size_t pairs, size_t nk);
/* True when the two contexts share one cl_context (no host copy between them). */
int clattn__group_same_cl(clattn_context *a, clattn_context *b);
/* The test hook's check: the injected status when device r is the armed one (then disarmed). */
clattn_status clattn__group_injected(clattn_group *g, size_t r);
/* Test hook: the next group call's part on device `r` fails with `status` after enqueueing. */
void clattn__group_inject_failure(clattn_group *g, size_t r, clattn_status status);

#endif
