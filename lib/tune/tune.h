/* The autotuner's internal interface: the per-device tuning database (lib/tune/db.c) and the plan
 * entry point the tuner bakes candidates through (lib/ops/tiled.c). */
#ifndef CLATTN_TUNE_H
#define CLATTN_TUNE_H

#include "../core/internal.h"
#include "../sched/sched.h"

#define CLATTN__TUNE_FORMAT 1
#define CLATTN__TUNE_MAGIC "clattn-tuning-db"

/* The entries of one database file, in file order. Entries are clattn_tuning_entry records whose
 * nq_bucket / nk_bucket are already rounded to powers of two. */
typedef struct clattn__tune_db {
    clattn_tuning_entry *entries;
    size_t count, cap;
} clattn__tune_db;

void clattn__tune_db_free(clattn__tune_db *db);
/* Adds or replaces (same op, D, buckets, causal and family) one entry. False when out of memory. */
bool clattn__tune_db_put(clattn__tune_db *db, const clattn_tuning_entry *e);
const clattn_tuning_entry *clattn__tune_db_find(const clattn__tune_db *db,
                                                const clattn_tuning_entry *key);

/* Zeroes *e and fills its key fields (op, D, buckets, causal, family) for a problem. */
void clattn__tune_entry_key(const clattn__softmax_problem *prob, clattn_softmax_algo family,
                            clattn_tuning_entry *e);
/* The shape class of a problem: next power of two of Nq and of Nk. */
size_t clattn__tune_bucket(size_t n);
/* Identifies the device's database: a hash of platform name and version, device name and driver
 * version. */
uint64_t clattn__tune_device_hash(const clattn_device_info *info);
/* "<dir>/tune-<hash>.txt". */
void clattn__tune_db_path(const char *dir, uint64_t device, char *out, size_t size);

/* Parses a database file's text into `db` (appending). Problems are never fatal: a bad header,
 * a foreign format or library version, another device, an empty file ignore the whole file;
 * an unreadable or truncated line ignores that line. Each writes a warning into `warn` (the first
 * one kept, later ones counted). Returns the number of warnings. */
unsigned clattn__tune_db_parse(const char *text, size_t len, uint64_t device, clattn__tune_db *db,
                               char *warn, size_t wlen);
/* The text of a database (header line, then one line per entry). Caller frees; NULL when out of
 * memory. */
char *clattn__tune_db_format(const clattn__tune_db *db, uint64_t device);

/* Reads a file into `db`. A missing file is an empty database without warning. */
unsigned clattn__tune_db_load(const char *path, uint64_t device, clattn__tune_db *db, char *warn,
                              size_t wlen);
/* Merges `n` entries into the file: under an exclusive flock on "<path>.lock", re-reads it, puts
 * the entries, writes a temporary file and renames it over the database, so concurrent writers
 * (threads or processes) each see the others' entries and readers never see a partial file.
 * Creates the folder. IO_ERROR with a message in `warn` on failure. */
clattn_status clattn__tune_db_store(const char *path, uint64_t device,
                                    const clattn_tuning_entry *add, size_t n, char *warn,
                                    size_t wlen);
/* Removes the file, under the same lock. A missing file is success. */
clattn_status clattn__tune_db_remove(const char *path);

/* ---- the context's cached copy (ctx->tune_lock) ---- */
/* The launch the database holds for this problem and family, validated against the device, or
 * false (no entry, CLATTN_TUNING=off, no cache folder, entry invalid here). Loads the database on
 * first use. */
bool clattn__tune_launch(clattn_context *ctx, const clattn__softmax_problem *prob,
                         clattn_softmax_algo family, clattn__softmax_launch *out);
/* Drops the context's cached copy so the next lookup re-reads the file. */
void clattn__tune_forget(clattn_context *ctx);

/* ---- lib/ops/tiled.c ---- */
/* clattn_softmax_plan_create with the launch given instead of chosen (no database, no
 * scheduler); v has k's shape. */
clattn_status clattn__softmax_plan_create_launch(clattn_context *ctx,
                                                   const clattn_softmax_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   const clattn__softmax_launch *launch,
                                                   clattn_plan **plan);

#endif
