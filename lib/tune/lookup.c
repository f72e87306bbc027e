/* The context's copy of the tuning database and the public database calls. A context reads the
 * file once, on its first lookup by a plan (or list), and keeps it under ctx->tune_lock; the tuner
 * and clattn_tuning_db_list refresh it. */
#include "tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool tuning_off(void)
{
    const char *v = getenv("CLATTN_TUNING");
    return v && strcmp(v, "off") == 0;
}

static bool db_file(const clattn_context *ctx, char *path, size_t size)
{
    if (ctx->cache_dir[0] == '\0')
        return false;
    clattn__tune_db_path(ctx->cache_dir, clattn__tune_device_hash(&ctx->info), path, size);
    return strlen(path) + 1 < size;
}

/* (Re)reads the file into the context; tune_lock held. */
static void load_locked(clattn_context *ctx)
{
    char path[1200];
    if (ctx->tune_db)
        clattn__tune_db_free(ctx->tune_db);
    else
        ctx->tune_db = calloc(1, sizeof *ctx->tune_db);
    ctx->tune_warning[0] = '\0';
    ctx->tune_loaded = true;
    if (!ctx->tune_db || !db_file(ctx, path, sizeof path))
        return;
    char warn[400] = "";
    unsigned n = clattn__tune_db_load(path, clattn__tune_device_hash(&ctx->info), ctx->tune_db,
                                      warn, sizeof warn);
    if (n > 1)
        snprintf(ctx->tune_warning, sizeof ctx->tune_warning, "%s (and %u more warnings)", warn,
                 n - 1);
    else if (n == 1)
        snprintf(ctx->tune_warning, sizeof ctx->tune_warning, "%s", warn);
}

void clattn__tune_release(clattn_context *ctx)
{
    if (ctx->tune_db) {
        clattn__tune_db_free(ctx->tune_db);
        free(ctx->tune_db);
        ctx->tune_db = NULL;
    }
    ctx->tune_loaded = false;
}

void clattn__tune_forget(clattn_context *ctx)
{
    pthread_mutex_lock(&ctx->tune_lock);
    clattn__tune_release(ctx);
    pthread_mutex_unlock(&ctx->tune_lock);
}

bool clattn__tune_find(clattn_context *ctx, const clattn_tuning_entry *key,
                       clattn_tuning_entry *out)
{
    if (tuning_off() || ctx->cache_dir[0] == '\0')
        return false;
    bool hit = false;
    pthread_mutex_lock(&ctx->tune_lock);
    if (!ctx->tune_loaded)
        load_locked(ctx);
    const clattn_tuning_entry *e = clattn__tune_db_find(ctx->tune_db, key);
    if (e) {
        *out = *e;
        hit = true;
    }
    pthread_mutex_unlock(&ctx->tune_lock);
    return hit;
}

clattn_status clattn_tuning_db_path(const clattn_context *ctx, char *path, size_t size)
{
    if (!ctx || !path || size == 0)
        return clattn__fail((clattn_context *)ctx, CLATTN_NULL_POINTER,
                            "clattn_tuning_db_path: NULL argument");
    char full[1200];
    path[0] = '\0';
    if (!db_file(ctx, full, sizeof full))
        return clattn__fail((clattn_context *)ctx, CLATTN_UNSUPPORTED,
                            "tuning database: no cache folder (set CLATTN_CACHE_DIR)");
    if (strlen(full) >= size)
        return clattn__fail((clattn_context *)ctx, CLATTN_BUFFER_TOO_SMALL,
                            "tuning database path needs %zu bytes", strlen(full) + 1);
    snprintf(path, size, "%s", full);
    return CLATTN_SUCCESS;
}

clattn_status clattn_tuning_db_list(clattn_context *ctx, clattn_tuning_entry *entries,
                                    size_t capacity, size_t *count)
{
    if (!ctx || !count || (capacity > 0 && !entries))
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "clattn_tuning_db_list: ctx and count are required (entries with "
                            "capacity > 0)");
    pthread_mutex_lock(&ctx->tune_lock);
    load_locked(ctx);
    size_t n = ctx->tune_db ? ctx->tune_db->count : 0;
    for (size_t i = 0; i < n && i < capacity; i++)
        entries[i] = ctx->tune_db->entries[i];
    pthread_mutex_unlock(&ctx->tune_lock);
    *count = n;
    return CLATTN_SUCCESS;
}

clattn_status clattn_tuning_db_reset(clattn_context *ctx)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_tuning_db_reset: ctx is NULL");
    char path[1200];
    clattn_status status = CLATTN_SUCCESS;
    if (db_file(ctx, path, sizeof path) && clattn__tune_db_remove(path) != CLATTN_SUCCESS)
        status = clattn__fail(ctx, CLATTN_IO_ERROR, "tuning database: cannot remove %s", path);
    clattn__tune_forget(ctx);
    return status;
}

void clattn_tuning_db_warning(clattn_context *ctx, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    buf[0] = '\0';
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->tune_lock);
    snprintf(buf, size, "%s", ctx->tune_warning);
    pthread_mutex_unlock(&ctx->tune_lock);
}
