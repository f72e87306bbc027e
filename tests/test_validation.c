/* test_validation.c - the library-wide entry points' invalid paths on a real device: context
 * creation (selectors that match nothing, a caller's mismatched OpenCL objects, NULL pointers),
 * device listing, and the NULL-safety of destroy and accessor functions. Each refused call returns
 * its documented status with its own message (tests/test_util.h's tu_expect_fresh_status).
 * Softmax attention's entry points are in test_softmax_validation.c.
 *
 * The device comes from CLATTN_DEVICE (or the default order). A missing device is a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"
#include "test_util.h"

typedef struct fixture {
    clattn_context *ctx;
} fixture;

/* Runs `call` (stale messages set first), expecting `want` and a fresh message on the context
 * (on_ctx) or the thread. */
#define EXPECT(f, want, on_ctx, call)                                                              \
    do {                                                                                           \
        char what_[300];                                                                           \
        snprintf(what_, sizeof what_, "line %d: %.260s", __LINE__, #call);                        \
        tu_stale_messages((f)->ctx);                                                               \
        clattn_status st_ = (call);                                                                \
        tu_expect_fresh_status((on_ctx) ? (f)->ctx : NULL, st_, (want), what_);                    \
    } while (0)

static void test_context_create_no_match(void **state)
{
    fixture *f = *state;
    static const char *sels[] = {"no-such-device", "9:9", "0:999", "999:0"};
    for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i++) {
        clattn_context *c = (clattn_context *)(uintptr_t)1;
        EXPECT(f, CLATTN_NO_DEVICE, 0, clattn_context_create(sels[i], &c));
        assert_null(c);
        if (!strstr(clattn_context_last_error(NULL), sels[i]))
            fail_msg("the message for selector '%s' does not quote it: %s", sels[i],
                     clattn_context_last_error(NULL));
    }
}

static void test_context_create_from_cl(void **state)
{
    fixture *f = *state;
    cl_device_id dev = clattn_context_get_cl_device(f->ctx);
    cl_int err;
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue other_q = clCreateCommandQueue(other, dev, 0, &err);
    assert_int_equal(err, CL_SUCCESS);

    clattn_context *c = (clattn_context *)(uintptr_t)1;
    EXPECT(f, CLATTN_INVALID_CONTEXT, 0,
           clattn_context_create_from_cl(clattn_context_get_cl_context(f->ctx), dev, other_q, &c));
    assert_null(c);
    c = (clattn_context *)(uintptr_t)1;
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(NULL, dev, other_q, &c));
    assert_null(c);
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, NULL, other_q, &c));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, dev, NULL, &c));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_create_from_cl(other, dev, other_q, NULL));

    /* the matching triple works, and destroying it leaves the caller's references alone */
    cl_uint before = 0, after = 0;
    clGetContextInfo(other, CL_CONTEXT_REFERENCE_COUNT, sizeof before, &before, NULL);
    c = NULL;
    assert_int_equal(clattn_context_create_from_cl(other, dev, other_q, &c), CLATTN_SUCCESS);
    assert_non_null(c);
    assert_ptr_equal(clattn_context_get_cl_context(c), other);
    assert_ptr_equal(clattn_context_get_cl_queue(c), other_q);
    clattn_context_destroy(c);
    clGetContextInfo(other, CL_CONTEXT_REFERENCE_COUNT, sizeof after, &after, NULL);
    assert_int_equal(before, after);

    clReleaseCommandQueue(other_q);
    clReleaseContext(other);
}

static void test_list_devices_and_null_safety(void **state)
{
    fixture *f = *state;
    size_t n = 0;
    assert_int_equal(clattn_list_devices(NULL, 0, &n), CLATTN_SUCCESS);
    assert_true(n >= 1);
    clattn_device_info *infos = calloc(n, sizeof *infos);
    assert_non_null(infos);
    size_t n2 = 0;
    assert_int_equal(clattn_list_devices(infos, n, &n2), CLATTN_SUCCESS);
    assert_int_equal(n, n2);
    clattn_device_info mine;
    assert_int_equal(clattn_context_get_device_info(f->ctx, &mine), CLATTN_SUCCESS);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(infos[i].name[0] != '\0');
        if (infos[i].platform_index == mine.platform_index &&
            infos[i].device_index == mine.device_index) {
            assert_string_equal(infos[i].name, mine.name);
            found = 1;
        }
    }
    assert_true(found);
    free(infos);
    /* a capacity smaller than the count still reports the count */
    clattn_device_info one;
    assert_int_equal(clattn_list_devices(&one, 1, &n2), CLATTN_SUCCESS);
    assert_int_equal(n2, n);

    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_list_devices(NULL, 0, NULL));
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_list_devices(NULL, 1, &n));

    /* "P:D" of our own device selects it */
    char sel[32];
    snprintf(sel, sizeof sel, "%u:%u", mine.platform_index, mine.device_index);
    clattn_context *c = NULL;
    assert_int_equal(clattn_context_create(sel, &c), CLATTN_SUCCESS);
    clattn_device_info again;
    clattn_context_get_device_info(c, &again);
    assert_string_equal(again.name, mine.name);
    clattn_context_destroy(c);

    clattn_context_destroy(NULL);
    clattn_plan_destroy(NULL);
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_context_finish(NULL));
    clattn_plan_info pi;
    EXPECT(f, CLATTN_NULL_POINTER, 0, clattn_plan_get_info(NULL, &pi));
    size_t s[4] = {1, 1, 4, 8};
    clattn_plan *plan = NULL;
    tu_expect_status(f->ctx, clattn_softmax_plan_create(f->ctx, NULL, s, s, s, &plan),
                     CLATTN_SUCCESS, "a softmax plan");
    EXPECT(f, CLATTN_NULL_POINTER, 1, clattn_plan_get_info(plan, NULL));
    clattn_plan_destroy(plan);
    assert_null(clattn_context_get_cl_context(NULL));
    assert_null(clattn_context_get_cl_device(NULL));
    assert_null(clattn_context_get_cl_queue(NULL));
    unsigned a = 7, b = 7, h = 7;
    clattn_context_cache_stats(NULL, &a, &b, &h);
    assert_int_equal(a + b + h, 0);
    clattn_context_cache_stats(f->ctx, NULL, NULL, NULL);
}

static int group_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    clattn_status st = clattn_context_create(NULL, &f->ctx);
    if (st != CLATTN_SUCCESS) {
        print_error("no device: clattn_context_create(NULL) = %s: %s (CLATTN_DEVICE=%s)\n",
                    clattn_status_string(st), clattn_context_last_error(NULL),
                    getenv("CLATTN_DEVICE") ? getenv("CLATTN_DEVICE") : "(unset)");
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    if (f)
        clattn_context_destroy(f->ctx);
    free(f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context_create_no_match),
        cmocka_unit_test(test_context_create_from_cl),
        cmocka_unit_test(test_list_devices_and_null_safety),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
