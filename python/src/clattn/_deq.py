"""DEQ fixed-point solving (include/clattn/deq.h): the built-in attention cell and its solve, and
a generic solve of a Python f."""

import ctypes

import numpy as np

from . import _lib, _core
from ._lib import lib, cl
from ._core import Call, Error, run, F32, status_name
from ._ops import make_desc, _upload, _shape4

byref = ctypes.byref
NOT_CONVERGED = -4015
_CELL_EVAL = _lib.DEQ_FN(ctypes.cast(lib.clattn_deq_cell_eval, ctypes.c_void_p).value)


class DeqResult:
    """What a solve did: iterations, f_evals, residual (|f(z) - z| / |z| of the returned z),
    converged."""
    __slots__ = ("iterations", "f_evals", "residual", "converged")

    def __init__(self, r):
        self.iterations, self.f_evals = int(r.iterations), int(r.f_evals)
        self.residual, self.converged = float(r.residual), bool(r.converged)

    def __repr__(self):
        return ("DeqResult(iterations=%d, f_evals=%d, residual=%g, converged=%s)"
                % (self.iterations, self.f_evals, self.residual, self.converged))


class NotConverged(Error):
    """clattn.Error with status CLATTN_NOT_CONVERGED: .residual, .result (DeqResult) and .z (the
    best iterate, which the solver still returned)."""

    def __init__(self, message, result, z):
        super().__init__(status_name(NOT_CONVERGED), message, NOT_CONVERGED)
        self.result, self.residual, self.z = result, result.residual, z


def _solver_desc(solver, tol, max_iter, opts):
    kw = dict(opts)
    kw.update(method=solver, tol=tol, max_iter=max_iter)
    return make_desc("deq", kw)[0]


def _solver_plan(ctx, desc, shape):
    p = ctypes.c_void_p()
    ctx.check(lib.clattn_deq_plan_create(ctx.ptr, byref(desc), _shape4(shape, "z"), byref(p)))
    return p.value


def _solve(ctx, call, tz, fn, user, solver_ptr, before=None, solve=None):
    """Runs clattn_deq_solve on a built call (z is its in/out item); returns (z, DeqResult) or
    raises (NotConverged with the best iterate)."""
    res = _lib.DeqResult()
    if call.wait:  # pyopencl inputs: the solve's first command waits for nothing
        n, w, _, _ = call.wait_list()
        cl.clWaitForEvents(n, w)
    try:
        if before is not None:
            st = before()
            if st:
                ctx.check(st)
        if solve is None:
            st = lib.clattn_deq_solve(solver_ptr, fn, user, byref(tz), byref(res))
        else:
            st = solve(solver_ptr, byref(res))
    except BaseException:
        call.release()
        raise
    if st not in (0, NOT_CONVERGED):
        call.release()
        ctx.check(st)
    msg = _core._text(lib.clattn_context_last_error(ctx.ptr)) if st else ""
    z = call.finish(_lib.cl_event())[0]
    result = DeqResult(res)
    if st == NOT_CONVERGED:
        raise NotConverged(msg or "not converged: residual %g after %d evaluations"
                           % (result.residual, result.f_evals), result, z)
    return z, result


class DeqCell:
    """The built-in DEQ attention cell f(z, x) = LayerNorm(z + Attention(z Wq, z Wk, z Wv) Wo + x)
    on [B, N, D]. The C cell (clattn_deq_cell_create) is baked per (B, N) on first use and kept."""

    def __init__(self, ctx, wq, wk, wv, wo, heads=1, causal=False, attention="softmax"):
        self.ctx = ctx
        self.desc, _ = make_desc("deq_cell", {"heads": heads, "causal": causal,
                                              "attention": attention})
        ws = [np.asarray(w) for w in (wq, wk, wv, wo)]
        D = ws[0].shape[-1] if ws[0].ndim else 0
        for name, w in zip(("wq", "wk", "wv", "wo"), ws):
            if w.shape != (D, D):
                raise Error("CLATTN_SHAPE_MISMATCH", "deq_cell: %s has shape %s, expected "
                            "[D, D] = %s" % (name, w.shape, (D, D)))
        self.d = int(D)
        self._w = []
        self._cells = {}
        self._solver = None  # (key, ptr)
        try:
            self._w = [_upload(ctx, w, F32, n) for n, w in zip(("wq", "wk", "wv", "wo"), ws)]
        except BaseException:
            self.close()
            raise
        ctx._adopt(self)

    def _cell(self, B, N):
        if not self._w:
            raise Error("CLATTN_INVALID_ARGUMENT", "the DEQ cell was closed")
        p = self._cells.get((B, N))
        if p is None:
            c = ctypes.c_void_p()
            self.ctx.check(lib.clattn_deq_cell_create(self.ctx.ptr, byref(self.desc), B, N,
                                                      self.d, *self._w, byref(c)))
            p = self._cells[(B, N)] = c.value
        return p

    def _shape(self, x):
        s = tuple(int(n) for n in np.shape(x))
        if len(s) == 4 and s[1] == 1:
            s = (s[0], s[2], s[3])
        if len(s) != 3 or s[2] != self.d:
            raise Error("CLATTN_SHAPE_MISMATCH", "deq_cell: x has shape %s, expected [B, N, D=%d]"
                        % (s, self.d))
        return s

    def __call__(self, z, x, *, out=None):
        """One evaluation f(z, x) for z, x [B, N, D]."""
        B, N, D = self._shape(x)
        cell = self._cell(B, N)
        c = Call(self.ctx, [z, x, out])
        tx, tz = c.input("x", x, (B, 1, N, D)), c.input("z", z, (B, 1, N, D))
        to = c.output("out", (B, 1, N, D), out)

        def go(n, w, e):
            st = lib.clattn_deq_cell_set_input(cell, byref(tx))
            return st or lib.clattn_deq_cell_eval(cell, byref(tz), byref(to), n, w, e)
        o = run(self.ctx, c, go)[0]
        return o.reshape(B, N, D) if out is None else o

    def solve(self, x, z0=None, *, solver="anderson", tol=1e-5, max_iter=50, **opts):
        """z* = f(z*, x) for x [B, N, D] from z0 (default zeros; a numpy z0 is copied, a
        pyopencl z0 receives z* in place and is returned; x a pyopencl array: z0 defaults to a
        pyopencl array of zeros). solver: "anderson", "broyden"
        or "iterate"; opts: memory, beta, lam (the C field lambda), broyden_memory. Returns
        (z, DeqResult); raises NotConverged (a clattn.Error, status CLATTN_NOT_CONVERGED, with
        .residual, .result, .z) when max_iter evaluations do not reach tol."""
        B, N, D = self._shape(x)
        cell = self._cell(B, N)
        desc = _solver_desc(solver, tol, max_iter, opts)
        key = (B, N, bytes(desc))
        if self._solver is None or self._solver[0] != key:
            self._close_solver()
            self._solver = (key, _solver_plan(self.ctx, desc, (B, 1, N, D)))
        if z0 is None and _core.is_device_array(x):
            import pyopencl.array as cla
            z0 = cla.zeros(self.ctx.pyopencl_queue, (B, N, D), F32)
        elif z0 is None:
            z0 = np.zeros((B, 1, N, D), F32)
        elif not _core.is_device_array(z0):
            z0 = np.array(z0, dtype=F32, order="C")  # a copy: the solve writes it
        c = Call(self.ctx, [x, z0])
        tx = c.input("x", x, (B, 1, N, D))
        if _core.is_device_array(z0):
            tz = c.output("z", (B, 1, N, D), z0)
        else:
            tz = c.output("z", (B, 1, N, D), z0.reshape(B, 1, N, D))
        c.build()
        shape3 = lambda a: a.reshape(B, N, D) if isinstance(a, np.ndarray) else a
        try:
            z, res = _solve(self.ctx, c, tz, _CELL_EVAL, cell, self._solver[1],
                            before=lambda: lib.clattn_deq_cell_set_input(cell, byref(tx)))
        except NotConverged as e:
            e.z = shape3(e.z)
            raise
        return shape3(z), res

    def _close_solver(self):
        if self._solver is not None:
            lib.clattn_plan_destroy(self._solver[1])
            self._solver = None

    def close(self):
        self._close_solver()
        for p in self._cells.values():
            lib.clattn_plan_destroy(p)
        self._cells = {}
        for b in self._w:
            cl.clReleaseMemObject(b)
        self._w = []

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- a solve of a Python f ----

_CALLBACK_FAILED = -4000  # CLATTN_INVALID_ARGUMENT: the callback raised (re-raised after)


def _host_callback(ctx, f, shape, failure):
    """A clattn_deq_fn calling f on the host: reads z, writes f(z). Exceptions are kept in
    `failure` and become a failed status (never cross the C frames)."""
    nbytes = int(np.prod(shape)) * 4
    q = ctx.queue_ptr

    def callback(user, tz, tout, num_wait, wait, event):
        try:
            zt, ot = tz.contents, tout.contents
            zh = np.empty(shape, F32)
            st = cl.clEnqueueReadBuffer(q, zt.buffer, 1, zt.offset * 4, nbytes,
                                        zh.ctypes.data_as(ctypes.c_void_p), num_wait, wait, None)
            if st:
                raise Error(status_name(st), "deq_solve: reading z", st)
            fz = np.asarray(f(zh))
            if fz.shape != shape:
                raise Error("CLATTN_SHAPE_MISMATCH", "deq_solve: f returned shape %s, expected %s"
                            % (fz.shape, shape))
            fz = np.ascontiguousarray(fz, dtype=F32)
            st = cl.clEnqueueWriteBuffer(q, ot.buffer, 1, ot.offset * 4, nbytes,
                                         fz.ctypes.data_as(ctypes.c_void_p), 0, None,
                                         event if event else None)
            if st:
                raise Error(status_name(st), "deq_solve: writing f(z)", st)
            return 0
        except BaseException as e:
            failure.append(e)
            return _CALLBACK_FAILED

    return _lib.DEQ_FN(callback)


def _host_solve(ctx, f, z0, b, solver, tol, max_iter, opts):
    z0 = np.array(z0, dtype=F32, order="C")
    shape = z0.shape
    if not 1 <= z0.ndim <= 4:
        raise Error("CLATTN_INVALID_SHAPE", "deq_solve: z0 must have 1 to 4 dimensions, got %s"
                    % (shape,))
    s4 = (1,) * (4 - z0.ndim) + shape
    if b is not None:
        b = np.asarray(b)
        if b.shape != shape:
            raise Error("CLATTN_SHAPE_MISMATCH", "deq_solve_adjoint: b has shape %s, g0 %s"
                        % (b.shape, shape))
    desc = _solver_desc(solver, tol, max_iter, opts)
    plan = _solver_plan(ctx, desc, s4)
    failure = []
    fn = _host_callback(ctx, f, shape, failure)  # alive for the whole (blocking) solve
    try:
        c = Call(ctx, [z0, b])
        tb = None if b is None else c.input("b", b, s4)
        tz = c.output("z", s4, z0.reshape(s4))
        c.build()
        if tb is None:
            run_ = lambda p, r: lib.clattn_deq_solve(p, fn, None, byref(tz), r)
        else:
            run_ = lambda p, r: lib.clattn_deq_solve_adjoint(p, fn, None, byref(tb), byref(tz), r)
        try:
            z, res = _solve(ctx, c, tz, None, None, plan, solve=run_)
        except NotConverged as e:
            e.z = e.z.reshape(shape)
            raise
        except Error:
            if failure:
                raise failure[0]
            raise
        return z.reshape(shape), res
    finally:
        lib.clattn_plan_destroy(plan)


def deq_solve(ctx, f, z0, *, solver="anderson", tol=1e-5, max_iter=50, **opts):
    """z* = f(z*) for a Python callable f: numpy float32 array of z0's shape (up to 4-D) ->
    array of that shape. Each evaluation reads z from the device, calls f on the host and writes
    f(z) back (a host round trip per evaluation; for device-side layers use the C API). An
    exception in f stops the solve and is re-raised. Returns (z, DeqResult); raises NotConverged."""
    return _host_solve(ctx, f, z0, None, solver, tol, max_iter, opts)


def deq_solve_adjoint(ctx, vjp, b, g0=None, *, solver="anderson", tol=1e-5, max_iter=50,
                      **opts):
    """The implicit backward: g = vjp(g) + b (clattn_deq_solve_adjoint) for a Python vjp(g) =
    (df/dz at z*)^T g on numpy arrays of b's shape; g0 defaults to b. Returns (g, DeqResult)."""
    b = np.asarray(b)
    return _host_solve(ctx, vjp, b if g0 is None else g0, b, solver, tol, max_iter, opts)
