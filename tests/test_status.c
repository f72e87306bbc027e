/* test_status.c - device-free checks of the status table, the version functions and the small
 * value helpers of the public header (tensor_make strides, desc_init defaults). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"

typedef struct entry {
    const char *name; /* "CLATTN_" #name, built from the same X-macro as the enum */
    int value;
    const char *msg;
} entry;

static const entry table[] = {
#define ENTRY_(name, value, msg) {"CLATTN_" #name, value, msg},
    CLATTN_STATUS_MAP(ENTRY_)
#undef ENTRY_
};
#define NSTATUS (sizeof table / sizeof table[0])

static void test_every_status_has_its_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSTATUS; i++) {
        const char *s = clattn_status_string((clattn_status)table[i].value);
        assert_non_null(s);
        if (strcmp(s, table[i].name) != 0)
            fail_msg("status %d: name '%s', want '%s'", table[i].value, s, table[i].name);
    }
}

static void test_names_and_values_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSTATUS; i++)
        for (size_t j = i + 1; j < NSTATUS; j++) {
            if (table[i].value == table[j].value)
                fail_msg("%s and %s share value %d", table[i].name, table[j].name,
                         table[i].value);
            if (strcmp(clattn_status_string((clattn_status)table[i].value),
                       clattn_status_string((clattn_status)table[j].value)) == 0)
                fail_msg("%s and %s share a name", table[i].name, table[j].name);
        }
}

static void test_every_status_has_a_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSTATUS; i++) {
        const char *m = clattn_status_message((clattn_status)table[i].value);
        assert_non_null(m);
        assert_true(m[0] != '\0');
        assert_string_equal(m, table[i].msg);
        assert_string_not_equal(m, "unknown status");
    }
}

/* Library codes live at -4000 and below, success at 0, so they never collide with OpenCL's. */
static void test_library_codes_do_not_overlap_opencl(void **state)
{
    (void)state;
    assert_int_equal(CLATTN_SUCCESS, 0);
    for (size_t i = 0; i < NSTATUS; i++)
        if (table[i].value != 0)
            assert_true(table[i].value <= -4000);
}

static void test_opencl_codes_pass_through(void **state)
{
    (void)state;
    static const struct {
        cl_int code;
        const char *name;
    } cl[] = {
        {CL_DEVICE_NOT_FOUND, "CL_DEVICE_NOT_FOUND"},
        {CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES"},
        {CL_OUT_OF_HOST_MEMORY, "CL_OUT_OF_HOST_MEMORY"},
        {CL_MEM_OBJECT_ALLOCATION_FAILURE, "CL_MEM_OBJECT_ALLOCATION_FAILURE"},
        {CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE"},
        {CL_INVALID_VALUE, "CL_INVALID_VALUE"},
        {CL_INVALID_CONTEXT, "CL_INVALID_CONTEXT"},
        {CL_INVALID_MEM_OBJECT, "CL_INVALID_MEM_OBJECT"},
        {CL_INVALID_KERNEL_ARGS, "CL_INVALID_KERNEL_ARGS"},
        {CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE"},
        {CL_INVALID_BUFFER_SIZE, "CL_INVALID_BUFFER_SIZE"},
        {CL_INVALID_GLOBAL_WORK_SIZE, "CL_INVALID_GLOBAL_WORK_SIZE"},
    };
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
        clattn_status st = (clattn_status)cl[i].code;
        assert_string_equal(clattn_status_string(st), cl[i].name);
        const char *m = clattn_status_message(st);
        assert_non_null(m);
        assert_true(m[0] != '\0');
    }
}

static void test_unknown_values(void **state)
{
    (void)state;
    static const int unknown[] = {1, 7, -999, -1000, -1001, -3999, -4099, -5000, 12345,
                                  -0x7fffffff};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        clattn_status st = (clattn_status)unknown[i];
        const char *s = clattn_status_string(st);
        if (strcmp(s, "unknown status") != 0)
            fail_msg("value %d: name '%s', want 'unknown status'", unknown[i], s);
        const char *m = clattn_status_message(st);
        assert_non_null(m);
        assert_true(m[0] != '\0');
    }
}

static void test_version(void **state)
{
    (void)state;
    char want[64];
    assert_int_equal(clattn_version(), CLATTN_VERSION_NUMBER);
    assert_int_equal(CLATTN_VERSION_NUMBER, CLATTN_VERSION_MAJOR * 10000 +
                                                CLATTN_VERSION_MINOR * 100 +
                                                CLATTN_VERSION_PATCH);
    snprintf(want, sizeof want, "%d.%d.%d", CLATTN_VERSION_MAJOR, CLATTN_VERSION_MINOR,
             CLATTN_VERSION_PATCH);
    assert_non_null(clattn_version_string());
    assert_string_equal(clattn_version_string(), want);
}

static void test_tensor_make_is_dense_row_major(void **state)
{
    (void)state;
    cl_mem fake = (cl_mem)(uintptr_t)0x1234; /* never dereferenced */
    clattn_tensor t = clattn_tensor_make(fake, 2, 3, 5, 7);
    assert_ptr_equal(t.buffer, fake);
    assert_int_equal(t.offset, 0);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[2], 5);
    assert_int_equal(t.shape[3], 7);
    assert_int_equal(t.strides[3], 1);
    assert_int_equal(t.strides[2], 7);
    assert_int_equal(t.strides[1], 5 * 7);
    assert_int_equal(t.strides[0], 3 * 5 * 7);

    clattn_tensor one = clattn_tensor_make(NULL, 1, 1, 1, 1);
    assert_null(one.buffer);
    assert_int_equal(one.strides[3], 1);
    assert_int_equal(one.strides[2], 1);
    assert_int_equal(one.strides[1], 1);
    assert_int_equal(one.strides[0], 1);
}

static void test_desc_init_defaults(void **state)
{
    (void)state;
    clattn_softmax_desc d;
    memset(&d, 0xa5, sizeof d); /* garbage in every field, including padding */
    clattn_softmax_desc_init(&d);
    assert_int_equal(d.struct_size, sizeof d);
    assert_true(d.scale == 0.0f);
    assert_int_equal(d.causal, 0);
    assert_null(d.key_lengths);
    assert_int_equal(d.key_lengths_offset, 0);
    assert_int_equal(d.algorithm, CLATTN_SOFTMAX_AUTO);
    clattn_softmax_desc_init(NULL); /* must not crash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_has_its_name),
        cmocka_unit_test(test_names_and_values_are_distinct),
        cmocka_unit_test(test_every_status_has_a_message),
        cmocka_unit_test(test_library_codes_do_not_overlap_opencl),
        cmocka_unit_test(test_opencl_codes_pass_through),
        cmocka_unit_test(test_unknown_values),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_tensor_make_is_dense_row_major),
        cmocka_unit_test(test_desc_init_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
