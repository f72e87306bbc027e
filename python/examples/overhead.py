"""Overhead of a Python call over the C call, softmax attention (issue 14, section 4).

    python python/examples/overhead.py --n 128,4096 [--d 64] [--heads 8] [--reps 50]

For each N, the median wall time (ms) of:
  c_enqueue    clattn_softmax_plan_enqueue + clattn_context_finish on device buffers made once,
               called through ctypes (the C call; `clattn bench softmax --variants tiled` times
               the same from C)
  py_device    plan(q, k, v) on pyopencl arrays (no host transfer), then the queue finished
  py_numpy     plan(q, k, v) on numpy arrays: upload, enqueue, read back
  py_oneshot   ctx.softmax(q, k, v): plan baked (cached programs), called and released
and the Python overheads py_* - c_enqueue. Time it on a quiet machine.
"""

import argparse
import ctypes
import statistics
import time

import numpy as np

import clattn
from clattn._lib import lib, cl
from clattn._ops import _upload


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="128,4096")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default=None)
    a = ap.parse_args()
    ctx = clattn.Context(a.device)
    print("device: %s" % ctx.device_name)
    print("%6s %12s %12s %12s %12s" % ("N", "c_enqueue", "py_device", "py_numpy", "py_oneshot"))
    rng = np.random.default_rng(0)
    for n in (int(x) for x in a.n.split(",")):
        shape = (a.batch, a.heads, n, a.d)
        q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
        plan = ctx.softmax_plan(shape, shape)
        bufs = [_upload(ctx, x) for x in (q, k, v, q)]
        ts = [lib.clattn_tensor_make(b, *shape) for b in bufs]

        def c_call():
            st = lib.clattn_softmax_plan_enqueue(plan.ptr, *(ctypes.byref(t) for t in ts), None,
                                                 0, None, None)
            assert st == 0
            lib.clattn_context_finish(ctx.ptr)

        c_ms = median_ms(c_call, a.reps)
        try:
            import pyopencl.array as cla
            queue = ctx.pyopencl_queue
            dq, dk, dv = (cla.to_device(queue, x) for x in (q, k, v))

            def dev_call():
                plan(dq, dk, dv)
                queue.finish()
            dev_ms = "%12.3f" % median_ms(dev_call, a.reps)
        except ImportError:
            dev_ms = "%12s" % "-"
        np_ms = median_ms(lambda: plan(q, k, v), a.reps)
        one_ms = median_ms(lambda: ctx.softmax(q, k, v), a.reps)
        print("%6d %12.3f %s %12.3f %12.3f" % (n, c_ms, dev_ms, np_ms, one_ms))
        for b in bufs:
            cl.clReleaseMemObject(b)
        plan.close()


if __name__ == "__main__":
    main()
