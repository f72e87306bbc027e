"""clattn.Context: the operators, plans, decoding states and the tuner of one device."""

import ctypes

import numpy as np

from . import _lib, _core, _ops, _states, _mgk, _deq
from ._lib import lib
from ._core import Error
from ._ops import (make_desc, _bake, _oneshot, _shape4, _upload, Plan, RoutingPlan,
                   _softmax_call, _linear_call, _rpe_call, _lsh_call, _routing_call,
                   oneshot_dtypes, desc_dtypes)

byref = ctypes.byref


def _shape(a):
    return tuple(int(s) for s in a.shape)


class Context(_core.Context):
    __doc__ = _core.Context.__doc__

    # ---- softmax ----
    def softmax_plan(self, q_shape, k_shape, v_shape=None, *, key_lengths=None, bias=None,
                     mask=None, alibi_slopes=None, sinks=None, block_mask=None, window=None,
                     block=None, q_lengths=None, q_offsets=None, block_table=None, **desc):
        """A plan for exact softmax attention on fixed shapes (q [B, Hq, Nq, D], k [B, Hk, Nk, D],
        v [B, Hk, Nk, Dv], Dv may differ from D); desc fields: causal, scale, algorithm ("auto",
        "tiled_cpu", "tiled_gpu", "naive"); element types q_dtype, k_dtype, v_dtype, out_dtype
        ("f32", "f16", "bf16" or numpy types; dtype= sets q, k and v; default float32). key_lengths
        (int32 [B]) is baked into the plan. Options (include/clattn/softmax.h, all composable):
        bias (float array broadcastable to [B, Hq, Nq, Nk] by size-1 axes like numpy; -inf
        masks), mask (bool/uint8, same broadcasting, nonzero = attend), alibi=True (standard
        slopes) or alibi_slopes (float32 [Hq]), window=(left, right) (None or -1 = unbounded;
        also window_left=, window_right=), softcap (> 0), sinks (float32 [Hq]), block_mask
        (bool/uint8 broadcastable to [B, Hq, ceil(Nq/bq), ceil(Nk/bk)]) with block=(bq, bk)
        (also block_q=, block_k=). Serving (softmax.h's "Serving and decoding"): q_lengths
        (int [B]: sequence b's first q_lengths[b] rows are its queries, the rest padding),
        q_offsets (int [B + 1], cu_seqlens: q/out packed as [1, Hq, T, D]), block_table (int
        [B, max_pages]) with page_size= (k/v are the page pools [num_pages, Hk, page_size, D]).
        Their arrays are copied to the device once, here (a serving engine that updates lengths
        on the device uses the C API).
        Call it as plan(q, k, v, lse=False, out=None)."""
        v_shape = k_shape if v_shape is None else v_shape
        d, keep = make_desc("softmax", desc)
        buf = None
        if key_lengths is not None:
            buf = _upload(self, key_lengths, _ops.I32, "key_lengths")
            d.key_lengths = buf
        bufs = []
        try:
            shapes = (_shape4(q_shape, "q"), _shape4(k_shape, "k"), _shape4(v_shape, "v"))
            bufs = _ops.softmax_options(self, d, shapes[0], shapes[1], {
                "bias": bias, "mask": mask, "alibi_slopes": alibi_slopes, "sinks": sinks,
                "block_mask": block_mask, "window": window, "block": block,
                "alibi": desc.get("alibi"), "q_lengths": q_lengths, "q_offsets": q_offsets,
                "block_table": block_table, "page_size": desc.get("page_size")})
            return _bake(self, "softmax", lambda p: lib.clattn_softmax_plan_create(
                self.ptr, byref(d), *shapes, p), _softmax_call, [tuple(s) for s in shapes], d)
        finally:
            if buf:
                _lib.cl.clReleaseMemObject(buf)  # the plan retains it
            _ops.release_buffers(bufs)  # and these

    def softmax(self, q, k, v, *, causal=False, scale=None, lse=False, key_lengths=None,
                algorithm=None, out=None, out_dtype=None, dtype=None, bias=None, mask=None,
                alibi=None, alibi_slopes=None, window=None, softcap=None, sinks=None,
                block_mask=None, block=None, position_offset=None, q_lengths=None,
                q_offsets=None, block_table=None, page_size=None):
        """out = softmax(scale q k^T + mask) v; with lse=True returns (out, lse [B, Hq, Nq]).
        q, k, v: float32, float16 or bfloat16 arrays (each its own type; dtype="bf16" reads
        uint16 arrays as bfloat16 bits); v may have its own head dim Dv (out [B, Hq, Nq, Dv]);
        out_dtype: the output's type (default float32, or out's dtype); lse is always float32.
        bias, mask, alibi, alibi_slopes, window, softcap, sinks, block_mask, block: the options
        of softmax_plan. position_offset shifts every query's aligned position (a block of a
        longer sequence: queries at positions [qa, qa + Nq), keys at [ka, ka + Nk) take
        (qa - ka) - (Nk - Nq)); blocks' (out, lse) merge exactly by their lse. q_lengths,
        q_offsets, block_table, page_size: the serving fields of softmax_plan."""
        kw = oneshot_dtypes("softmax", {"dtype": dtype}, {"q": q, "k": k, "v": v}, out,
                            out_dtype)
        plan = self.softmax_plan(_shape(q), _shape(k), _shape(v), key_lengths=key_lengths,
                                 causal=causal, scale=scale, algorithm=algorithm, bias=bias,
                                 mask=mask, alibi=alibi, alibi_slopes=alibi_slopes,
                                 window=window, softcap=softcap, sinks=sinks,
                                 block_mask=block_mask, block=block,
                                 position_offset=position_offset, q_lengths=q_lengths,
                                 q_offsets=q_offsets, block_table=block_table,
                                 page_size=page_size, **kw)
        return _oneshot(plan, q, k, v, lse=lse, out=out)

    # ---- linear ----
    def linear_plan(self, q_shape, k_shape, v_shape, **desc):
        """A plan for linear attention (desc fields of clattn_linear_desc: feature_map, causal,
        eps, features, projection, seed, scaling, momentum, mu, step_size, algorithm; element
        types q_dtype, k_dtype, v_dtype, out_dtype, dtype= as softmax_plan).
        Call it as plan(q, k, v, out=None)."""
        d, keep = make_desc("linear", desc)
        shapes = (_shape4(q_shape, "q"), _shape4(k_shape, "k"), _shape4(v_shape, "v"))
        return _bake(self, "linear", lambda p: lib.clattn_linear_plan_create(
            self.ptr, byref(d), *shapes, p), _linear_call, [tuple(s) for s in shapes], d)

    def linear(self, q, k, v, *, out=None, **desc):
        """Linear (kernelized) attention [B, Hq, Nq, Dv]; desc fields as linear_plan; q, k, v
        of their own element types, out_dtype= the output's (default float32)."""
        desc = oneshot_dtypes("linear", desc, {"q": q, "k": k, "v": v}, out)
        return _oneshot(self.linear_plan(_shape(q), _shape(k), _shape(v), **desc), q, k, v,
                        out=out)

    def linear_state(self, batch, heads, d, dv, **desc):
        """A recurrent decoding state of causal linear attention (prefill, step, reset, read,
        write, save, load, copy_from). Element types (q_dtype ... out_dtype, dtype=) are the
        state's: every prefill's and step's arrays must have them (S and z stay float32)."""
        return _states.LinearState(self, batch, heads, d, dv, desc)

    # ---- rpe ----
    def rpe_plan(self, q_shape, k_shape, v_shape, **desc):
        """A plan for kernelized attention with relative positional encoding (desc: causal,
        algorithm "auto"/"fft"/"direct", and the linear feature fields). plan(q, k, v, bias)
        with bias [Hq, 2N - 1]; element types q_dtype, k_dtype, v_dtype, bias_dtype,
        out_dtype (dtype= the inputs')."""
        d, keep = make_desc("rpe", desc)
        shapes = (_shape4(q_shape, "q"), _shape4(k_shape, "k"), _shape4(v_shape, "v"))
        return _bake(self, "rpe", lambda p: lib.clattn_rpe_plan_create(
            self.ptr, byref(d), *shapes, p), _rpe_call, [tuple(s) for s in shapes], d)

    def rpe(self, q, k, v, bias, *, out=None, **desc):
        desc = oneshot_dtypes("rpe", desc, {"q": q, "k": k, "v": v, "bias": bias}, out)
        return _oneshot(self.rpe_plan(_shape(q), _shape(k), _shape(v), **desc), q, k, v, bias,
                        out=out)

    # ---- lsh ----
    def lsh_plan(self, q_shape, v_shape, **desc):
        """A plan for Reformer LSH attention (desc: n_hashes, n_buckets, chunk_size, causal,
        attend_across_buckets, seed, rotations; element types q_dtype, v_dtype, out_dtype).
        plan(q, v, lse=False, buckets=False)."""
        d, keep = make_desc("lsh", desc)
        shapes = (_shape4(q_shape, "q"), _shape4(v_shape, "v"))
        return _bake(self, "lsh", lambda p: lib.clattn_lsh_plan_create(
            self.ptr, byref(d), *shapes, p), _lsh_call,
            [tuple(shapes[0]), tuple(shapes[1]), int(d.n_hashes)], d)

    def lsh(self, q, v, *, lse=False, buckets=False, out=None, **desc):
        desc = oneshot_dtypes("lsh", desc, {"q": q, "v": v}, out)
        return _oneshot(self.lsh_plan(_shape(q), _shape(v), **desc), q, v, lse=lse,
                        buckets=buckets, out=out)

    # ---- routing ----
    def routing_plan(self, q_shape, k_shape, v_shape, centroids_shape, **desc):
        """A plan for Routing Transformer attention (desc: window, causal, scale, decay;
        element types q_dtype, k_dtype, v_dtype, out_dtype; centroids stay float32);
        centroids_shape [1, Hk, C, D]. plan(q, k, v, centroids); plan.draw_centroids(q, k, seed)
        and plan.update_centroids(q, k, centroids)."""
        cs = tuple(int(x) for x in centroids_shape)
        if len(cs) == 3:
            cs = (1,) + cs
        d, keep = make_desc("routing", desc)
        shapes = (_shape4(q_shape, "q"), _shape4(k_shape, "k"), _shape4(v_shape, "v"),
                  _shape4(cs, "centroids"))
        p = ctypes.c_void_p()
        self.check(lib.clattn_routing_plan_create(self.ptr, byref(d), *shapes, byref(p)))
        return RoutingPlan(self, "routing", p.value, _routing_call, [tuple(s) for s in shapes],
                           desc_dtypes("routing", d))

    def routing(self, q, k, v, centroids=None, *, clusters=None, seed=0, out=None, **desc):
        """Routing attention; centroids [Hk, C, D] (or [1, Hk, C, D]), or None to draw
        `clusters` of them by k-means++ from q and k with `seed`."""
        if centroids is None:
            if not clusters:
                raise Error("CLATTN_INVALID_ARGUMENT", "routing: give centroids or clusters")
            cs = (1, _shape(k)[1], int(clusters), _shape(q)[3])
        else:
            cs = _shape(centroids)
        desc = oneshot_dtypes("routing", desc, {"q": q, "k": k, "v": v}, out)
        plan = self.routing_plan(_shape(q), _shape(k), _shape(v), cs, **desc)
        try:
            if centroids is None:
                centroids = plan.draw_centroids(q, k, seed)
            return plan(q, k, v, centroids, out=out)
        finally:
            plan.close()

    # ---- ssm / gss ----
    def ssm_model(self, A, Ct, log_dt, D=None):
        """A diagonal SSM handle (clattn_ssm) from A, Ct (complex [H, N], or float32 [H, N, 2]),
        log_dt [H] and the skip D [H] (or None)."""
        return _states.Ssm(self, A, Ct, log_dt, D)

    def ssm_s4(self, Lambda, P, B, C, log_dt, Q=None, D=None, *, max_length=None):
        """A full S4 handle (diagonal plus low rank, bilinear): the same Ssm object as
        ssm_model gives (kernel(L), plan, state), for kernels of L <= max_length. Lambda, P, B,
        C, Q (default P): complex [H, N] or [N] (every channel); log_dt [H]; D [H] or None."""
        return _states.Ssm.s4(self, Lambda, P, B, C, log_dt, Q=Q, D=D, max_length=max_length)

    def ssm_conv_plan(self, u_shape, algorithm=None, **dtypes):
        """The long convolution alone for u [B, H, L]: plan(u, kernel [H, L], d=None); element
        types u_dtype, y_dtype (or out_dtype; kernel and d stay float32)."""
        B, H, L = (int(x) for x in u_shape)
        d, keep = make_desc("ssm", dict(dtypes, algorithm=algorithm))
        shape = _shape4((B, H, L, 1), "u")
        return _bake(self, "ssm", lambda p: lib.clattn_ssm_conv_plan_create(
            self.ptr, byref(d), shape, p), _states.ssm_conv_call, [(B, H, L)], d)

    def ssm(self, u, A=None, Ct=None, log_dt=None, D=None, *, kernel=None, d=None,
            algorithm=None, out=None, out_dtype=None, dtype=None):
        """y = K * u + D u along L for u [B, H, L]: either with the SSM's parameters (A, Ct,
        log_dt, D) or with a given kernel [H, L] and skip d [H]. u float32, float16 or
        bfloat16; out_dtype the type of y (default float32)."""
        if kernel is not None:
            kw = oneshot_dtypes("ssm", {"dtype": dtype}, {"u": u}, out, out_dtype)
            return _oneshot(self.ssm_conv_plan(_shape(u), algorithm, **kw), u, kernel, d,
                            out=out)
        model = self.ssm_model(A, Ct, log_dt, D)
        try:
            return model(u, algorithm=algorithm, out=out, out_dtype=out_dtype, dtype=dtype)
        finally:
            model.close()

    # ---- mgk ----
    def mgk_plan(self, q_shape, k_shape, *, key_lengths=None, sigma=None, linear=False,
                 causal=False, eps=None, algorithm=None, **dtypes):
        """A Transformer-MGK plan: q [B, H, Nq, D], k [B, H, R, Nk, D] (or [B, H * R, Nk, D]).
        sigma: a float or R values (default D^(1/4)); linear=True: the kernelised form; eps
        (linear); algorithm "auto", "tiled_cpu", "tiled_gpu", "linear_scan"; key_lengths
        (int32 [B], softmax form). Call it as plan(q, k, v, pi, lse=False, out=None) with
        pi [H, R, Nk] (or a scalar, [R], [R, Nk]: broadcast without a copy). Element types
        q_dtype, k_dtype, v_dtype, pi_dtype, out_dtype (dtype= the inputs')."""
        return _mgk.mgk_plan(self, q_shape, k_shape, key_lengths, sigma=sigma, linear=linear,
                             causal=causal, eps=eps, algorithm=algorithm, **dtypes)

    def mgk(self, q, k, v, pi, *, sigma=None, linear=False, causal=False, lse=False, eps=None,
            key_lengths=None, algorithm=None, out=None, out_dtype=None, dtype=None):
        """Mixture-of-Gaussian-keys attention (include/clattn/mgk.h); with lse=True (softmax
        form) returns (out, lse [B, H, Nq]). Inputs of their own element types, out_dtype the
        output's (default float32)."""
        kw = oneshot_dtypes("mgk", {"dtype": dtype}, {"q": q, "k": k, "v": v, "pi": pi}, out,
                            out_dtype)
        plan = self.mgk_plan(_shape(q), _shape(k), key_lengths=key_lengths, sigma=sigma,
                             linear=linear, causal=causal, eps=eps, algorithm=algorithm, **kw)
        return _oneshot(plan, q, k, v, pi, lse=lse, out=out)

    def mgk_state(self, batch, heads, components, d, *, eps=None, **dtypes):
        """Linear MGK's decoding state: .step(q, k, v, pi) -> out of that position, .reset().
        Element types (q_dtype ... out_dtype, dtype=) are the state's: every step's arrays
        must have them."""
        return _mgk.MgkState(self, batch, heads, components, d, eps, **dtypes)

    # ---- deq ----
    def deq_cell(self, wq, wk, wv, wo, *, heads=1, causal=False, attention="softmax"):
        """The DEQ attention cell f(z, x) = LayerNorm(z + Attn(z Wq, z Wk, z Wv) Wo + x) with
        W* [D, D]: cell(z, x) evaluates f, cell.solve(x, ...) finds its fixed point."""
        return _deq.DeqCell(self, wq, wk, wv, wo, heads, causal, attention)

    def deq_solve(self, f, z0, *, solver="anderson", tol=1e-5, max_iter=50, **opts):
        """z* = f(z*) for a Python callable f on float32 numpy arrays of z0's shape (a host
        round trip per evaluation). Returns (z, DeqResult); raises clattn.NotConverged."""
        return _deq.deq_solve(self, f, z0, solver=solver, tol=tol, max_iter=max_iter, **opts)

    def deq_solve_adjoint(self, vjp, b, g0=None, *, solver="anderson", tol=1e-5, max_iter=50,
                          **opts):
        """The implicit backward g = vjp(g) + b for a Python vjp (numpy -> numpy); g0 defaults
        to b. Returns (g, DeqResult); raises clattn.NotConverged."""
        return _deq.deq_solve_adjoint(self, vjp, b, g0, solver=solver, tol=tol,
                                      max_iter=max_iter, **opts)

    def gss_plan(self, dss, ffn_dim, x_shape, **desc):
        """The GSS layer for x [B, L, E] with the DSS handle `dss` (ssm_model) and gated width
        ffn_dim: plan(x, weights) with weights a dict of w_v [E, F], w_u [E, H], w_o1 [H, F],
        w_o2 [F, E] and optional b_v, b_u, b_o1, b_o2, ln_gamma, ln_beta (float32); element
        types x_dtype, out_dtype."""
        B, L, E = (int(x) for x in x_shape)
        d, keep = make_desc("gss", desc)
        shape = _shape4((B, 1, L, E), "x")
        return _bake(self, "gss", lambda p: lib.clattn_gss_plan_create(
            self.ptr, byref(d), dss.ptr, int(ffn_dim), shape, p), _states.gss_call,
            [(B, L, E), int(ffn_dim)], d)

    def gss(self, x, dss, weights, *, out=None, **desc):
        desc = oneshot_dtypes("gss", desc, {"x": x}, out)
        ffn = np.shape(weights["w_v"])[1]
        return _oneshot(self.gss_plan(dss, ffn, _shape(x), **desc), x, weights, out=out)

    # ---- tuning ----
    def tune(self, op, q_shape, k_shape=None, v_shape=None, *, budget=10.0, **desc):
        """Runs clattn_tune for operator `op` ("softmax", "linear", "lsh") on one shape class
        and returns its report as a dict. Blocking."""
        code = _lib.OPERATORS.get(op)
        if code is None:
            raise Error("CLATTN_INVALID_ARGUMENT", "unknown operator %r" % op)
        d, keep = make_desc(op, desc) if op in _lib.DESCS else (None, [])
        rep = _lib.TuneReport()
        vs = None if v_shape is None else _shape4(v_shape, "v")
        ks = _shape4(q_shape if k_shape is None else k_shape, "k")
        self.check(lib.clattn_tune(self.ptr, code, byref(d) if d is not None else None,
                                   _shape4(q_shape, "q"), ks, vs, float(budget), byref(rep)))
        return _core._info_dict(rep)

    @staticmethod
    def tune_supported(op):
        return bool(lib.clattn_tune_supported(_lib.OPERATORS.get(op, 0)))

    def tuning_db_path(self):
        buf = ctypes.create_string_buffer(4096)
        self.check(lib.clattn_tuning_db_path(self.ptr, buf, len(buf)))
        return _core._text(buf.value)

    def tuning_db_list(self):
        n = ctypes.c_size_t()
        self.check(lib.clattn_tuning_db_list(self.ptr, None, 0, byref(n)))
        arr = (_lib.TuningEntry * max(n.value, 1))()
        self.check(lib.clattn_tuning_db_list(self.ptr, arr, n.value, byref(n)))
        res = []
        for e in arr[:n.value]:
            d = _core._info_dict(e)
            d["params"] = {_core._text(p.name): p.value for p in e.params[:e.num_params]}
            res.append(d)
        return res

    def tuning_db_reset(self):
        self.check(lib.clattn_tuning_db_reset(self.ptr))

    def tuning_db_warning(self):
        buf = ctypes.create_string_buffer(1024)
        lib.clattn_tuning_db_warning(self.ptr, buf, len(buf))
        return _core._text(buf.value)


__all__ = ["Context", "Plan"]
