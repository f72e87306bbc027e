"""Errors, devices, the context and the marshalling of arrays into clattn_tensor views."""

import ctypes
import weakref

import numpy as np

from . import _lib
from ._lib import lib, cl, Tensor

F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)
U16 = np.dtype(np.uint16)

try:  # bfloat16 arrays: ml_dtypes' type when it is installed (never required)
    import ml_dtypes as _ml_dtypes
    BF16 = np.dtype(_ml_dtypes.bfloat16)
except Exception:
    BF16 = None

# Element types of the float tensors (clattn_dtype): 0 float32, 1 float16, 2 bfloat16.
DT_F32, DT_F16, DT_BF16 = 0, 1, 2
ANY = -1  # an input of a call that takes its type from the array (decoding states)
_NAMES = {"f32": 0, "float32": 0, "float": 0, "f16": 1, "float16": 1, "half": 1, "bf16": 2,
          "bfloat16": 2}


def dtype_code(x, what="dtype"):
    """clattn_dtype of x: 0/1/2, "f32"/"float32", "f16"/"float16"/"half", "bf16"/"bfloat16",
    numpy's float32/float16 or ml_dtypes.bfloat16 (a type or a dtype)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        if int(x) in (0, 1, 2):
            return int(x)
    elif isinstance(x, str):
        if x.lower() in _NAMES:
            return _NAMES[x.lower()]
    else:
        try:
            code = array_code(np.dtype(x))
        except TypeError:
            code = None
        if code is not None:
            return code
    raise DTypeError("CLATTN_INVALID_ARGUMENT", "%s: %r is not an element type clattn takes "
                     "(float32, float16 or bfloat16)" % (what, x))


def array_code(dt):
    """The clattn_dtype of a numpy dtype, or None (uint16 is not taken for bfloat16 here)."""
    if dt == F32:
        return DT_F32
    if dt == F16:
        return DT_F16
    if BF16 is not None and dt == BF16:
        return DT_BF16
    return None


def np_dtype(code):
    """The numpy dtype of an output of type `code`: bfloat16 is ml_dtypes.bfloat16 when it is
    installed, else uint16 holding the raw bits."""
    return (F32, F16, BF16 if BF16 is not None else U16)[code]


def _accepted(code):
    if code == DT_BF16:
        return (BF16, U16) if BF16 is not None else (U16,)
    return (np_dtype(code),)


def dtype_name(code):
    return ("float32", "float16", "bfloat16")[code]


def f32_to_bf16_bits(a):
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays a (quiet) NaN."""
    u = np.ascontiguousarray(a, F32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    r = r.astype(np.uint16)
    nan = np.isnan(np.asarray(a, F32))
    if nan.any():
        r[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return r


def bf16_bits_to_f32(a):
    """bfloat16 bits (uint16 array) -> float32."""
    return (np.asarray(a, U16).astype(np.uint32) << np.uint32(16)).view(F32)


def convert(a, code):
    """a host array converted to element type `code` (its numpy representation)."""
    if code == DT_BF16:
        if BF16 is not None:
            return a.astype(BF16)
        return f32_to_bf16_bits(a.astype(F32))
    return a.astype(np_dtype(code))


class Error(Exception):
    """A clattn call failed. `.status` is the status name ("CLATTN_SHAPE_MISMATCH",
    "CL_OUT_OF_RESOURCES", ...), `.code` its value, `.message` the library's message."""

    def __init__(self, status, message, code=None):
        self.status = status
        self.code = code
        self.message = message
        if message and not message.startswith(status):
            message = "%s: %s" % (status, message)
        super().__init__(message or status)


class DTypeError(Error, TypeError):
    """An array of a dtype clattn does not take (float32, float16, bfloat16 for the float
    tensors), or of another type than the plan was made for (status CLATTN_DTYPE_MISMATCH)."""


def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


def status_name(code):
    return _text(lib.clattn_status_string(code))


def check(status, ctx_ptr=None):
    """Raise Error for a failed status, with the message of ctx_ptr (or of the thread)."""
    if status != 0:
        msg = _text(lib.clattn_context_last_error(ctx_ptr))
        if not msg:
            msg = _text(lib.clattn_status_message(status))
        raise Error(status_name(status), msg, status)


def _info_dict(info):
    out = {}
    for name, _ in info._fields_:
        v = getattr(info, name)
        if isinstance(v, bytes):
            v = _text(v)
        elif hasattr(v, "__len__") and not isinstance(v, (str, bytes)):
            v = list(v)
        out[name] = v
    return out


def devices():
    """Every OpenCL device the library sees, as dicts of clattn_device_info's fields, plus
    "selector" ("P:D", what Context(device=...) takes)."""
    count = ctypes.c_size_t(0)
    st = lib.clattn_list_devices(None, 0, ctypes.byref(count))
    if st != 0 or count.value == 0:
        return []
    arr = (_lib.DeviceInfo * count.value)()
    check(lib.clattn_list_devices(arr, count.value, ctypes.byref(count)))
    res = []
    for d in arr[:count.value]:
        info = _info_dict(d)
        info["selector"] = "%d:%d" % (d.platform_index, d.device_index)
        res.append(info)
    return res


_PYOPENCL_ARRAY = []


def _pyopencl_array_type():
    """pyopencl.array.Array, or None without pyopencl (looked up once)."""
    if not _PYOPENCL_ARRAY:
        try:
            import pyopencl.array as cla
            _PYOPENCL_ARRAY.append(cla.Array)
        except Exception:  # pyopencl is optional (ImportError, or a broken install)
            _PYOPENCL_ARRAY.append(None)
    return _PYOPENCL_ARRAY[0]


def is_device_array(a):
    t = _pyopencl_array_type()
    return t is not None and isinstance(a, t)


class Context:
    """A clattn context on one device: Context() (CLATTN_DEVICE or the default order),
    Context(device="0:0"), a substring of "platform device", or an index into devices();
    Context(queue=pyopencl_queue)
    wraps an application's pyopencl (or raw cl_command_queue int) queue and its context.

    `cast=True` converts inputs of other dtypes to float32 instead of refusing them."""

    def __init__(self, device=None, *, queue=None, cast=False):
        self._ptr = None
        self._children = weakref.WeakSet()
        self.cast = cast
        p = ctypes.c_void_p()
        if queue is not None:
            qptr, cptr, dptr = _queue_pointers(queue)
            st = lib.clattn_context_create_from_cl(cptr, dptr, qptr, ctypes.byref(p))
        else:
            if isinstance(device, int) and not isinstance(device, bool):
                devs = devices()
                if not 0 <= device < len(devs):
                    raise Error("CLATTN_NO_DEVICE", "device %d: there are %d devices"
                                % (device, len(devs)))
                device = devs[device]["selector"]
            sel = None if device is None else str(device).encode()
            st = lib.clattn_context_create(sel, ctypes.byref(p))
        check(st, None)
        self._ptr = p.value
        self._pyqueue = queue if (queue is not None and not isinstance(queue, int)) else None
        info = _lib.DeviceInfo()
        check(lib.clattn_context_get_device_info(self._ptr, ctypes.byref(info)), self._ptr)
        self.device_info = _info_dict(info)
        self.device_name = self.device_info["name"]
        self.queue_ptr = lib.clattn_context_get_cl_queue(self._ptr)
        self.cl_context_ptr = lib.clattn_context_get_cl_context(self._ptr)

    # ---- lifetime ----
    def close(self):
        """Destroys the context (and first every plan and state made from it). Idempotent."""
        if self._ptr:
            for child in list(self._children):
                child.close()
            lib.clattn_context_destroy(self._ptr)
            self._ptr = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def ptr(self):
        if not self._ptr:
            raise Error("CLATTN_INVALID_CONTEXT", "the context was closed")
        return self._ptr

    def _adopt(self, child):
        self._children.add(child)
        return child

    def check(self, status):
        check(status, self._ptr)

    # ---- information ----
    def stats(self):
        """Program-cache and kernel counters since creation (clattn_context_get_stats)."""
        s = _lib.ContextStats()
        self.check(lib.clattn_context_get_stats(self.ptr, ctypes.byref(s)))
        return _info_dict(s)

    def finish(self):
        self.check(lib.clattn_context_finish(self.ptr))

    def peak_gflops(self):
        """The device's measured float32 FMA throughput (about a second, blocking)."""
        g = ctypes.c_double()
        self.check(lib.clattn_measure_peak_gflops(self.ptr, ctypes.byref(g)))
        return g.value

    @property
    def pyopencl_queue(self):
        """The context's queue as a pyopencl CommandQueue (pyopencl needed)."""
        if self._pyqueue is None:
            import pyopencl as pcl
            self._pyqueue = pcl.CommandQueue.from_int_ptr(self.queue_ptr, retain=True)
        return self._pyqueue

    @property
    def pyopencl_context(self):
        return self.pyopencl_queue.context

    def __repr__(self):
        return "clattn.Context(%r)" % self.device_name


def _queue_pointers(queue):
    """(queue, context, device) int pointers of a pyopencl queue or a raw cl_command_queue."""
    if isinstance(queue, int):
        q = ctypes.c_void_p(queue)
        c, d = ctypes.c_void_p(), ctypes.c_void_p()
        # CL_QUEUE_CONTEXT 0x1090, CL_QUEUE_DEVICE 0x1091
        fn = cl.clGetCommandQueueInfo
        fn.restype = ctypes.c_int32
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.c_void_p]
        if fn(q, 0x1090, ctypes.sizeof(c), ctypes.byref(c), None) or \
                fn(q, 0x1091, ctypes.sizeof(d), ctypes.byref(d), None):
            raise Error("CLATTN_INVALID_ARGUMENT", "not a cl_command_queue")
        return q.value, c.value, d.value
    return queue.int_ptr, queue.context.int_ptr, queue.device.int_ptr


class _Item:
    __slots__ = ("name", "arr", "tensor", "lo", "hi", "is_out", "user", "buf", "group_lo")


class Call:
    """One call's arrays: numpy inputs become device buffers (arrays whose memory overlaps, e.g.
    q/k/v slices of one qkv array, share one buffer, and any non-negative strides are passed as
    clattn_tensor strides, without a copy on the host); pyopencl arrays are passed as views of
    their buffers. Outputs come back as numpy arrays (read after the call) or, when any input is
    a pyopencl array, as pyopencl arrays carrying the call's event (no host round trip)."""

    def __init__(self, ctx, arrays):
        self.ctx = ctx
        self.device_mode = any(is_device_array(a) for a in arrays if a is not None)
        self.items = []
        self.bufs = []
        self.wait = []
        self.outputs = []
        self.event = None  # the call's event as a pyopencl Event (device mode)

    # ---- registering ----
    # `dtype` of a tensor: an element-type code (DT_F32, DT_F16, DT_BF16: the float tensors,
    # the type the plan was made for), ANY (the array's own float type) or a numpy dtype (the
    # int32 tensors).
    def _check_dtype(self, name, a, dtype, host):
        """(the array, possibly converted, and the tensor's clattn_dtype) or DTypeError."""
        if isinstance(dtype, np.dtype):
            if a.dtype != dtype:
                if host and self.ctx.cast and a.dtype.kind in "fiub":
                    return a.astype(dtype), DT_F32
                raise DTypeError("CLATTN_INVALID_ARGUMENT",
                                 "%s: dtype %s, expected %s (Context(cast=True) converts)"
                                 % (name, a.dtype, dtype.name))
            return a, DT_F32
        code = dtype
        if code == ANY:
            code = array_code(a.dtype)
            if code is None:
                code = DT_F32
        if a.dtype in _accepted(code):
            return a, code
        have = array_code(a.dtype)
        if host and self.ctx.cast and (a.dtype.kind in "fiub" or have is not None):
            return convert(a, code), code
        if have is not None:
            raise DTypeError("CLATTN_DTYPE_MISMATCH",
                             "%s: a %s array, the plan takes %s (make the plan for it, e.g. "
                             "%s_dtype=%r, or Context(cast=True) converts)"
                             % (name, a.dtype, dtype_name(code), name, a.dtype.name))
        bf = " or uint16 bfloat16 bits" if code == DT_BF16 else ""
        raise DTypeError("CLATTN_INVALID_ARGUMENT",
                         "%s: dtype %s, expected %s%s (clattn takes float32, float16 and "
                         "bfloat16; Context(cast=True) converts)"
                         % (name, a.dtype, dtype_name(code), bf))

    def input(self, name, a, shape4=None, dtype=DT_F32):
        """Registers an input; returns its clattn_tensor (filled by build())."""
        if a is None:
            return None
        if is_device_array(a):
            return self._device_view(name, a, shape4, dtype)
        if not isinstance(a, np.ndarray):
            a = np.asarray(a)
        a, code = self._check_dtype(name, a, dtype, True)
        if any(s < 0 or s % a.itemsize for s in a.strides):
            a = np.ascontiguousarray(a)
        if shape4 is not None:
            a = _reshape(name, a, shape4)
        return self._host_item(name, a, False, code=code)

    def output(self, name, shape, out=None, dtype=DT_F32):
        """Registers an output of `shape` (4 entries for the tensor), optionally the caller's
        array `out` (numpy: written after the call; pyopencl: written by the call)."""
        shape = tuple(int(s) for s in shape)
        code = dtype if not isinstance(dtype, np.dtype) else DT_F32
        npdt = dtype if isinstance(dtype, np.dtype) else np_dtype(code)
        if out is not None:
            if is_device_array(out):
                self.outputs.append(out)
                return self._device_view(name, out, shape, dtype)
            if not isinstance(out, np.ndarray) or \
                    out.dtype not in ((npdt,) if isinstance(dtype, np.dtype) else
                                      _accepted(code)) or \
                    not out.flags.c_contiguous or not out.flags.writeable:
                raise DTypeError("CLATTN_INVALID_ARGUMENT",
                                 "%s: out must be a writeable C-contiguous %s array"
                                 % (name, npdt.name if isinstance(dtype, np.dtype)
                                    else dtype_name(code)))
            view = _reshape(name, out, shape)
            t = self._host_item(name, view, True, user=True, code=code)
            self.outputs.append(out)
            return t
        if self.device_mode:
            import pyopencl.array as cla
            arr = cla.empty(self.ctx.pyopencl_queue, shape, npdt)
            self.outputs.append(arr)
            return self._device_view(name, arr, shape, dtype)
        arr = np.empty(shape, npdt)
        self.outputs.append(arr)
        return self._host_item(name, arr, True, code=code)

    def _device_view(self, name, a, shape4, dtype):
        _, code = self._check_dtype(name, a, dtype, False)
        if a.context.int_ptr != self.ctx.cl_context_ptr:
            raise Error("CLATTN_INVALID_CONTEXT",
                        "%s: a pyopencl array of another OpenCL context" % name)
        isz = a.dtype.itemsize
        shape = tuple(a.shape)
        strides = tuple(a.strides)
        if any(s < 0 or s % isz for s in strides) or a.offset % isz:
            raise Error("CLATTN_INVALID_ARGUMENT", "%s: strides %s are not non-negative "
                        "multiples of the element size" % (name, strides))
        if shape4 is not None and tuple(shape4) != shape:
            shape, strides = _reshape_strides(name, shape, strides, isz, shape4)
        t = Tensor()
        t.buffer = a.base_data.int_ptr
        t.offset = a.offset // isz
        _fill(t, name, shape, [s // isz for s in strides], code)
        self.wait.extend(e for e in a.events)
        return t

    def _host_item(self, name, a, is_out, user=False, code=DT_F32):
        it = _Item()
        it.name, it.arr, it.is_out, it.user = name, a, is_out, user
        it.tensor = Tensor()
        _fill(it.tensor, name, a.shape, [s // a.itemsize for s in a.strides], code)
        base = a.__array_interface__["data"][0]
        span = a.itemsize + sum((n - 1) * s for n, s in zip(a.shape, a.strides))
        it.lo, it.hi = base, base + span
        self.items.append(it)
        return it.tensor

    # ---- running ----
    def build(self):
        """Creates one buffer per group of overlapping host arrays and points the views at it."""
        items = sorted(self.items, key=lambda i: i.lo)
        groups = []
        for it in items:
            if groups and it.lo < groups[-1][1]:
                g = groups[-1]
                g[1] = max(g[1], it.hi)
                g[2].append(it)
            else:
                groups.append([it.lo, it.hi, [it]])
        err = ctypes.c_int32(0)
        for lo, hi, members in groups:
            # Outputs this call allocated start empty; anything else is uploaded. A caller's
            # output overlapping an input lands in the input's buffer, so that the library sees
            # (and refuses) the aliasing as it would for device buffers.
            copy_in = not all(m.is_out and not m.user for m in members)
            host = ctypes.c_void_p(lo) if copy_in else None
            flags = _lib.CL_MEM_READ_WRITE | (_lib.CL_MEM_COPY_HOST_PTR if copy_in else 0)
            buf = cl.clCreateBuffer(self.ctx.cl_context_ptr, flags, max(hi - lo, 4), host,
                                    ctypes.byref(err))
            if err.value:
                raise Error(status_name(err.value), "clCreateBuffer of %d bytes" % (hi - lo),
                            err.value)
            self.bufs.append(buf)
            for m in members:
                if (m.lo - lo) % m.arr.itemsize:
                    raise Error("CLATTN_INVALID_ARGUMENT", "%s: overlaps another array at an "
                                "offset that is not a multiple of its element size" % m.name)
                m.tensor.buffer = buf
                m.tensor.offset = (m.lo - lo) // m.arr.itemsize
                m.buf, m.group_lo = buf, lo
        return self

    def wait_list(self):
        """(num_wait, wait array or None, event out) for an enqueue."""
        ev = _lib.cl_event()
        if self.wait:
            arr = (_lib.cl_event * len(self.wait))(*[e.int_ptr for e in self.wait])
            return len(self.wait), arr, ctypes.byref(ev), ev
        return 0, None, ctypes.byref(ev), ev

    def finish(self, ev):
        """After the enqueue: read host outputs back, attach the event to device outputs,
        release the temporary buffers. Returns the outputs."""
        self.event = None
        try:
            if ev.value and self.device_mode:
                import pyopencl as pcl
                pev = self.event = pcl.Event.from_int_ptr(ev.value, retain=True)
                for o in self.outputs:
                    if is_device_array(o):
                        o.add_event(pev)
            nev, evp = (1, ctypes.byref(ev)) if ev.value else (0, None)
            for it in self.items:
                if it.is_out:
                    st = cl.clEnqueueReadBuffer(
                        self.ctx.queue_ptr, it.buf, 1, it.lo - it.group_lo, it.hi - it.lo,
                        ctypes.c_void_p(it.lo), nev, evp, None)
                    if st:
                        raise Error(status_name(st), "reading %s back" % it.name, st)
        finally:
            if ev.value:
                cl.clReleaseEvent(ev)
            self.release()
        return self.outputs

    def release(self):
        for b in self.bufs:
            cl.clReleaseMemObject(b)
        self.bufs = []


def _fill(t, name, shape, strides, code=DT_F32):
    t.dtype = code
    if len(shape) != 4:
        raise Error("CLATTN_INVALID_SHAPE", "%s: expected 4 dimensions [B, H, N, D], got shape %s"
                    % (name, tuple(shape)))
    for i in range(4):
        t.shape[i] = int(shape[i])
        t.strides[i] = int(strides[i])


def _reshape(name, a, shape4):
    if tuple(a.shape) == tuple(shape4):
        return a
    if a.size != int(np.prod(shape4)):
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s does not fit %s"
                    % (name, a.shape, tuple(shape4)))
    return a.reshape(shape4)


def _reshape_strides(name, shape, strides, itemsize, shape4):
    """Strides of a pyopencl array viewed with an extra unit dimension (shape4 = shape with 1s)."""
    dims = [s for s in shape4]
    if [d for d in dims if d != 1] != [d for d in shape if d != 1]:
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s does not fit %s"
                    % (name, tuple(shape), tuple(shape4)))
    src = [(d, s) for d, s in zip(shape, strides) if d != 1]
    out = []
    for d in dims:
        if d == 1:
            out.append(itemsize)
        else:
            out.append(src.pop(0)[1])
    return tuple(shape4), tuple(out)


def run(ctx, call, enqueue, owner=None):
    """Builds the call's buffers, runs enqueue(num_wait, wait, event_ptr) and finishes the call:
    the outputs (numpy, read back; or pyopencl, with the event), or Error with the message.
    `owner` (a plan or state) orders its calls on out-of-order queues: each waits for the
    previous one's event, as the C API asks of calls sharing a plan's scratch or a state."""
    last = getattr(owner, "_last_event", None)
    if last is not None:
        call.wait.append(last)
    try:
        call.build()
        n, w, evp, ev = call.wait_list()
        st = enqueue(n, w, evp)
    except BaseException:
        call.release()
        raise
    if st != 0:
        call.release()
        ctx.check(st)
    outs = call.finish(ev)
    if owner is not None:
        owner._last_event = call.event  # None after a blocking (numpy) call: nothing pending
    return outs
