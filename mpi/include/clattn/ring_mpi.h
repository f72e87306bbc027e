/* clattn ring attention's MPI transport (see <clattn/ring.h>). Link clattn_mpi. */
#ifndef CLATTN_RING_MPI_H
#define CLATTN_RING_MPI_H

#include <clattn/ring.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fills *transport with an MPI implementation over a duplicate of `comm` (MPI_Comm_dup: collective
 * over comm; the ring's messages never meet the caller's) whose error handler is
 * MPI_ERRORS_RETURN, so MPI failures come back as codes instead of ending the job. Waits poll
 * (MPI_Test) until their timeout. abort is MPI_Abort(comm). The duplicate is freed by the
 * transport's destroy (clattn_ring_destroy), which must run before MPI_Finalize. MPI must be
 * initialised. Status: NULL_POINTER, INVALID_ARGUMENT (MPI not initialised or finalised, or
 * MPI_COMM_NULL), CLATTN_IO_ERROR (MPI_Comm_dup failed), OUT_OF_HOST_MEMORY. */
CLATTN_API clattn_status clattn_ring_transport_mpi(MPI_Comm comm,
                                                   clattn_ring_transport *transport);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_RING_MPI_H */
