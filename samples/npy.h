/* npy.h - strict, small reader/writer for NumPy .npy files.
 *
 * Used by the clattn command-line tool to load inputs and save outputs. Only
 * what attention needs is supported: little-endian float32, float16, uint16 / 2-byte void
 * (bfloat16), int32 and int64, and 1-byte uint8 / bool (masks)
 * arrays in C order, .npy format versions 1.0, 2.0 and 3.0. Anything else is
 * rejected with a one-line message naming the file and the problem, never
 * silently converted.
 */
#ifndef CLATTN_SAMPLES_NPY_H
#define CLATTN_SAMPLES_NPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* NPY_F16: '<f2' (IEEE half); NPY_U16: '<u2' (a bfloat16 file as numpy stores it without
 * ml_dtypes); NPY_V2: '|V2' (the 2-byte void dtype ml_dtypes writes for bfloat16). The 16-bit
 * kinds keep their raw uint16 words in data. NPY_U8: '|u1'; NPY_B1: '|b1' (numpy bool, one byte
 * per element, 0 or 1): the bytes as they are. */
typedef enum {
    NPY_F32 = 1,
    NPY_I32 = 2,
    NPY_I64 = 3,
    NPY_F16 = 4,
    NPY_U16 = 5,
    NPY_V2 = 6,
    NPY_U8 = 7,
    NPY_B1 = 8
} npy_dtype;

typedef struct npy_array {
    npy_dtype dtype;
    int ndim;                 /* 0..8 */
    size_t shape[8];
    size_t count;             /* product of shape (1 for ndim 0) */
    void *data;               /* malloc'd, little-endian native, C order */
} npy_array;

/* Reads a whole .npy file into *out (the caller frees it with npy_free).
 * Accepts descr '<f4', '<f2', '<u2', '|V2', '<i4', '<i8', '|u1', '|b1' (also with '|' / '<' or no
 * byte-order mark),
 * fortran_order False, 0..8 dimensions, and exactly as many data bytes as the
 * shape needs. A zero-sized array gets a non-NULL 1-byte allocation.
 * Returns 0 on success; on failure returns -1, writes a one-line human message
 * (no trailing newline) into err (errlen bytes; err may be NULL) and leaves
 * *out zeroed. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);

/* Reads member `name` (".npy" appended: "wq" reads "wq.npy") of an .npz archive as npy_read
 * does. Only uncompressed archives (np.savez) are read: a compressed member (np.savez_compressed)
 * is refused with a message saying so. ZIP64 records (numpy writes them) are understood.
 * Returns 0, or -1 with a one-line message in err. */
int npz_read(const char *path, const char *name, npy_array *out, char *err, size_t errlen);

/* Writes a float32 C-order array with a version 1.0 header laid out as
 * numpy >= 1.23 writes it (data starts at a multiple of 64 bytes).
 * Writes atomically: to "<path>.tmp.<pid>" then rename(); on any failure
 * removes the temp file, never leaves a partial file at path.
 * data may be NULL only when the shape holds no element.
 * Returns 0, or -1 and a one-line message in err as npy_read does. */
int npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape,
                  char *err, size_t errlen);

/* The same for any of NPY_F32 ('<f4'), NPY_F16 ('<f2'), NPY_U16 ('<u2'), NPY_I32 ('<i4'),
 * NPY_U8 ('|u1') and NPY_B1 ('|b1'). */
int npy_write(const char *path, npy_dtype dtype, const void *data, int ndim,
              const size_t *shape, char *err, size_t errlen);

/* Releases a->data and zeroes *a. NULL-safe; safe on a zeroed array. */
void npy_free(npy_array *a);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_SAMPLES_NPY_H */
