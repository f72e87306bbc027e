/* The MPI transport of ring attention (include: mpi/include/clattn/ring_mpi.h). Point-to-point
 * messages are MPI_Isend / MPI_Irecv of bytes on a duplicate communicator with MPI_ERRORS_RETURN;
 * waits and the all-gather (MPI_Iallgather) poll with MPI_Test until their timeout, so no wait is
 * unbounded. Messages longer than INT_MAX bytes are refused (MPI counts are int). */
#include "clattn/ring_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mpi_transport {
    MPI_Comm comm, user; /* the duplicate, and the caller's (for abort) */
    char msg[256];
} mpi_transport;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mpi_fail(mpi_transport *t, const char *what, int code)
{
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", code);
    snprintf(t->msg, sizeof t->msg, "%.60s: %.180s", what, s);
    return code ? code : -1;
}

static int count_ok(mpi_transport *t, size_t bytes)
{
    if (bytes > (size_t)INT_MAX) {
        snprintf(t->msg, sizeof t->msg, "message of %zu bytes exceeds MPI's int count", bytes);
        return 0;
    }
    return 1;
}

/* A request handle for the non-blocking calls (freed when it completes or fails to start). */
static MPI_Request *new_request(mpi_transport *t)
{
    MPI_Request *r = malloc(sizeof *r);
    if (!r)
        snprintf(t->msg, sizeof t->msg, "out of host memory");
    return r;
}

static int t_isend(void *self, const void *buf, size_t bytes, int peer, int tag, void **request)
{
    mpi_transport *t = self;
    if (!count_ok(t, bytes))
        return -1;
    MPI_Request *r = new_request(t);
    if (!r)
        return -1;
    int rc = MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, tag, t->comm, r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_fail(t, "MPI_Isend", rc);
    }
    *request = r;
    return 0;
}

static int t_irecv(void *self, void *buf, size_t bytes, int peer, int tag, void **request)
{
    mpi_transport *t = self;
    if (!count_ok(t, bytes))
        return -1;
    MPI_Request *r = new_request(t);
    if (!r)
        return -1;
    int rc = MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, t->comm, r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_fail(t, "MPI_Irecv", rc);
    }
    *request = r;
    return 0;
}

/* Polls *r until done or the deadline: 0 done, 1 timed out, else an MPI error code. */
static int poll_request(mpi_transport *t, MPI_Request *r, double timeout_s, const char *what)
{
    double end = now_s() + timeout_s;
    unsigned spins = 0;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_fail(t, what, rc);
        if (done)
            return 0;
        if (now_s() > end) {
            snprintf(t->msg, sizeof t->msg, "%s timed out after %.3g s", what, timeout_s);
            return 1;
        }
        /* spin briefly, then yield the core (ranks may share cores with the device's threads) */
        if (++spins > 64) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

static int t_wait(void *self, void *request, double timeout_s)
{
    mpi_transport *t = self;
    MPI_Request *r = request;
    int rc = poll_request(t, r, timeout_s, "MPI point-to-point wait");
    if (rc != 1)
        free(r);
    return rc;
}

static void t_cancel(void *self, void *request)
{
    (void)self;
    MPI_Request *r = request;
    if (!r)
        return;
    if (*r != MPI_REQUEST_NULL) {
        MPI_Cancel(r);
        MPI_Request_free(r);
    }
    free(r);
}

static int t_allgather(void *self, const void *in, void *out, size_t bytes, double timeout_s)
{
    mpi_transport *t = self;
    if (!count_ok(t, bytes))
        return -1;
    MPI_Request r;
    int rc = MPI_Iallgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, t->comm, &r);
    if (rc != MPI_SUCCESS)
        return mpi_fail(t, "MPI_Iallgather", rc);
    /* a timed-out collective cannot be cancelled: the ring is then broken (see ring.h) */
    return poll_request(t, &r, timeout_s, "MPI_Iallgather");
}

static void t_abort(void *self, int code)
{
    mpi_transport *t = self;
    MPI_Abort(t->user, code);
}

static const char *t_error(void *self) { return ((mpi_transport *)self)->msg; }

static void t_destroy(void *self)
{
    mpi_transport *t = self;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin)
        MPI_Comm_free(&t->comm);
    free(t);
}

clattn_status clattn_ring_transport_mpi(MPI_Comm comm, clattn_ring_transport *transport)
{
    if (!transport)
        return CLATTN_NULL_POINTER;
    memset(transport, 0, sizeof *transport);
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin || comm == MPI_COMM_NULL)
        return CLATTN_INVALID_ARGUMENT;
    mpi_transport *t = calloc(1, sizeof *t);
    if (!t)
        return CLATTN_OUT_OF_HOST_MEMORY;
    t->user = comm;
    if (MPI_Comm_dup(comm, &t->comm) != MPI_SUCCESS) {
        free(t);
        return CLATTN_IO_ERROR;
    }
    MPI_Comm_set_errhandler(t->comm, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    MPI_Comm_rank(t->comm, &rank);
    MPI_Comm_size(t->comm, &size);
    transport->self = t;
    transport->rank = rank;
    transport->size = size;
    transport->isend = t_isend;
    transport->irecv = t_irecv;
    transport->wait = t_wait;
    transport->cancel = t_cancel;
    transport->allgather = t_allgather;
    transport->abort = t_abort;
    transport->error = t_error;
    transport->destroy = t_destroy;
    return CLATTN_SUCCESS;
}
