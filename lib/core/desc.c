/* Descriptor reading, one rule for every operator (internal.h). */
#include "internal.h"

#include <string.h>

clattn_status clattn__desc_read(clattn_context *ctx, const void *in, void *out, size_t out_size,
                                size_t min_size, const char *what)
{
    if (!in)
        return CLATTN_SUCCESS; /* the defaults _init wrote */
    size_t given;
    memcpy(&given, in, sizeof given); /* struct_size is every descriptor's first field */
    if (given < min_size || given > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "%s: struct_size %zu is not valid (call its _desc_init first)", what,
                            given);
    memcpy(out, in, given < out_size ? given : out_size);
    memcpy(out, &out_size, sizeof out_size);
    return CLATTN_SUCCESS;
}

clattn_status clattn__check_flag(clattn_context *ctx, int value, const char *what)
{
    if (value != 0 && value != 1)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "%s must be 0 or 1 (got %d)", what,
                            value);
    return CLATTN_SUCCESS;
}
