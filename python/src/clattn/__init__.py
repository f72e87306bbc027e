"""clattn: Python bindings (ctypes) of the clattn C library — attention and long-sequence
operators as runtime-compiled OpenCL kernels.

    import numpy as np, clattn
    ctx = clattn.Context()                      # or Context("0:0"), Context(queue=pyopencl_queue)
    out = ctx.softmax(q, k, v, causal=True)     # float32 [B, H, N, D] in, float32 out
    out = ctx.softmax(q16, k16, v16, out_dtype=np.float16)  # float16 (or bfloat16) storage
    plan = ctx.softmax_plan(q.shape, k.shape)   # bake once ...
    out = plan(q, k, v)                         # ... call many times

Every failure raises clattn.Error with .status (the C status name) and the library's message.
The C library is found through $CLATTN_LIBRARY, next to this package (pip install ./python),
or by ctypes.util.find_library("clattn") (an installed libclattn.so).
"""

from ._lib import library_path, lib as _clib
from ._core import Error, DTypeError, devices, status_name
from ._ops import Plan, RoutingPlan
from ._states import LinearState, Ssm, SsmState, s4d_zoh, s4_hippo_legs
from ._mgk import MgkState
from ._deq import DeqCell, DeqResult, NotConverged
from ._context import Context

__all__ = ["Context", "Error", "DTypeError", "Plan", "RoutingPlan", "LinearState", "Ssm",
           "SsmState", "devices", "s4d_zoh", "version", "library_path", "status_name",
           "lsh_rotations", "favor_projection", "s4_hippo_legs", "MgkState", "DeqCell",
           "DeqResult", "NotConverged"]


def version():
    """The linked C library's version string."""
    return _clib.clattn_version_string().decode()


def lsh_rotations(n_hashes, d, n_buckets, seed=0):
    """The rotations [n_hashes, d, n_buckets / 2] an LSH plan draws from `seed`."""
    import ctypes
    import numpy as np
    from ._core import check
    rot = np.empty((n_hashes, d, n_buckets // 2), np.float32)
    check(_clib.clattn_lsh_rotations(n_hashes, d, n_buckets, seed,
                                     rot.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
    return rot


def favor_projection(m, d, seed=0, scaling="gaussian_norms"):
    """FAVOR+'s projection W [m, d] drawn from `seed` (clattn_linear_favor_draw)."""
    import ctypes
    import numpy as np
    from ._core import check
    from ._lib import ENUMS
    w = np.empty((m, d), np.float32)
    check(_clib.clattn_linear_favor_draw(m, d, seed, ENUMS["linear.scaling"][scaling],
                                         w.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
    return w
