"""ctypes declarations of the public C API (include/clattn.h and include/clattn/*.h).

One table (_FUNCTIONS) declares every entry point the package calls: a new operator's functions
are a few lines there plus its desc structure below. Nothing here computes anything; it only
finds the shared library and describes its types.
"""

import ctypes
import ctypes.util
import os
import sys

c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_float = ctypes.c_float
c_double = ctypes.c_double
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_uint64 = ctypes.c_uint64
c_int32 = ctypes.c_int32
P = ctypes.POINTER

cl_mem = c_void_p
cl_event = c_void_p
cl_uint = c_uint
size4 = c_size_t * 4


class Tensor(ctypes.Structure):
    _fields_ = [("buffer", cl_mem), ("offset", c_size_t), ("shape", c_size_t * 4),
                ("strides", c_size_t * 4), ("dtype", c_int)]


class DeviceInfo(ctypes.Structure):
    _fields_ = [("platform_index", c_uint), ("device_index", c_uint),
                ("platform_name", ctypes.c_char * 128), ("platform_version", ctypes.c_char * 128),
                ("name", ctypes.c_char * 128), ("vendor", ctypes.c_char * 128),
                ("driver_version", ctypes.c_char * 128), ("device_version", ctypes.c_char * 128),
                ("device_class", c_int), ("vendor_id", cl_uint),
                ("global_mem_size", c_uint64), ("max_alloc_size", c_uint64),
                ("local_mem_size", c_uint64), ("local_mem_emulated", c_int),
                ("max_work_group_size", c_size_t), ("max_work_item_sizes", c_size_t * 3),
                ("compute_units", cl_uint), ("max_clock_mhz", cl_uint),
                ("preferred_vector_width_float", cl_uint), ("native_vector_width_float", cl_uint),
                ("has_fp16", c_int), ("has_fp64", c_int), ("loop_iteration_cap", c_uint64),
                ("simt_cpu", c_int)]


class ContextStats(ctypes.Structure):
    _fields_ = [("program_lookups", c_uint), ("source_builds", c_uint), ("disk_loads", c_uint),
                ("memory_hits", c_uint), ("kernels_created", c_uint)]


class PlanKernel(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 64), ("program", ctypes.c_char * 32),
                ("build_options", ctypes.c_char * 256), ("local_size", c_size_t),
                ("chosen_by", ctypes.c_char * 16)]


MAX_KERNELS = 24


class PlanInfo(ctypes.Structure):
    _fields_ = [("op", c_int), ("algorithm", c_int), ("algorithm_name", ctypes.c_char * 32),
                ("launch", ctypes.c_char * 160), ("variant", ctypes.c_char * 64),
                ("tile_q", c_uint), ("tile_kv", c_uint), ("rows_per_item", c_uint),
                ("local_size", c_size_t), ("local_mem_bytes", c_size_t),
                ("scratch_bytes", c_size_t), ("build_options", ctypes.c_char * 256),
                ("from_tuning_db", c_int), ("num_kernels", c_uint),
                ("kernels", PlanKernel * MAX_KERNELS)]


class TuneReport(ctypes.Structure):
    _fields_ = [("default_plan", ctypes.c_char * 96), ("tuned_plan", ctypes.c_char * 96),
                ("default_ms", c_double), ("tuned_ms", c_double), ("noise_ms", c_double),
                ("seconds", c_double), ("candidates", c_uint), ("tried", c_uint),
                ("failed", c_uint), ("rejected", c_uint), ("budget_exhausted", c_int),
                ("kept_default", c_int), ("db_written", c_int), ("notes", ctypes.c_char * 1024)]


class TuningParam(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 16), ("value", ctypes.c_longlong)]


class TuningEntry(ctypes.Structure):
    _fields_ = [("op", ctypes.c_char * 16), ("variant", ctypes.c_char * 32),
                ("head_dim", c_uint), ("head_dim_v", c_uint), ("nq_bucket", c_size_t),
                ("nk_bucket", c_size_t), ("causal", c_int), ("num_params", c_uint),
                ("params", TuningParam * 8), ("default_ms", c_double), ("tuned_ms", c_double)]


# ---- element types (include/clattn.h: clattn_dtype) ----

DTYPE_CODES = {"f32": 0, "f16": 1, "bf16": 2}
DTYPE_NAMES = {v: k for k, v in DTYPE_CODES.items()}

# The per-tensor element-type fields of each operator's desc (clattn_dtype, a C int), appended
# at the END of the struct in this order. The one place that names them: the desc mirrors below,
# make_desc's keywords and the package's marshalling (role = the name less "_dtype") all read
# this table.
DTYPE_FIELDS = {
    "softmax": ("q_dtype", "k_dtype", "v_dtype", "out_dtype"),
    "linear": ("q_dtype", "k_dtype", "v_dtype", "out_dtype"),
    "rpe": ("q_dtype", "k_dtype", "v_dtype", "bias_dtype", "out_dtype"),
    "lsh": ("q_dtype", "v_dtype", "out_dtype"),
    "routing": ("q_dtype", "k_dtype", "v_dtype", "out_dtype"),
    "ssm": ("u_dtype", "y_dtype"),
    "gss": ("x_dtype", "out_dtype"),
    "mgk": ("q_dtype", "k_dtype", "v_dtype", "pi_dtype", "out_dtype"),
}


def _dt(op):
    return [(f, c_int) for f in DTYPE_FIELDS[op]]


# clattn_dtype of uint8 masks (CLATTN_U8: the mask and block_mask tensors only).
DT_U8 = 3

# Fields a desc has AFTER its dtype block, in the header's order: clattn_softmax_desc's options
# of issue 16 (include/clattn/softmax.h). A library from before them has the desc without this
# block (see has_options).
OPTION_FIELDS = {
    "softmax": [("bias", Tensor), ("mask", Tensor), ("alibi", c_int), ("alibi_slopes", cl_mem),
                ("alibi_slopes_offset", c_size_t), ("window_left", c_int),
                ("window_right", c_int), ("softcap", c_float), ("sinks", cl_mem),
                ("sinks_offset", c_size_t), ("block_mask", Tensor), ("block_q", c_uint),
                ("block_k", c_uint)],
}


# Fields after the options: clattn_softmax_desc's serving fields of issue 17 (q_lengths,
# q_offsets, the paged cache's block table and page size). A library from before them has the desc
# without this block (see desc_mismatches).
SERVING_FIELDS = {
    "softmax": [("q_lengths", cl_mem), ("q_lengths_offset", c_size_t), ("q_offsets", cl_mem),
                ("q_offsets_offset", c_size_t), ("block_table", Tensor), ("page_size", c_size_t)],
}


# Fields after the serving block: clattn_softmax_desc's position_offset (issue 18: a block of a
# longer sequence). A library from before it has the desc without this block.
PIECE_FIELDS = {
    "softmax": [("position_offset", ctypes.c_int64)],
}


# ---- operator descriptors (field order exactly as in include/clattn/<op>.h) ----

class SoftmaxDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("scale", c_float), ("causal", c_int),
                ("key_lengths", cl_mem), ("key_lengths_offset", c_size_t), ("algorithm", c_int)]
    _fields_ += (_dt("softmax") + OPTION_FIELDS["softmax"] + SERVING_FIELDS["softmax"] +
                 PIECE_FIELDS["softmax"])


_LINEAR_FIELDS = [("struct_size", c_size_t), ("feature_map", c_int), ("causal", c_int),
                  ("eps", c_float), ("features", c_size_t), ("projection", P(c_float)),
                  ("projection_shape", c_size_t * 2), ("seed", c_uint64), ("scaling", c_int),
                  ("momentum", c_int), ("mu", c_float), ("step_size", c_float),
                  ("algorithm", c_int)]


class LinearDesc(ctypes.Structure):
    _fields_ = _LINEAR_FIELDS + _dt("linear")


class _LinearDescF32(ctypes.Structure):
    """clattn_linear_desc of a library from before the dtype fields (only RpeDesc's embedded
    copy needs the library's exact size: see _rpe_desc)."""
    _fields_ = _LINEAR_FIELDS


def _rpe_desc(linear):
    class RpeDesc(ctypes.Structure):
        _fields_ = [("struct_size", c_size_t), ("linear", linear), ("causal", c_int),
                    ("algorithm", c_int)] + _dt("rpe")
    return RpeDesc


# clattn_rpe_desc embeds a whole clattn_linear_desc: its layout follows the library's linear desc
# (re-made by _fit_descs once the library is loaded).
RpeDesc = _rpe_desc(LinearDesc)


class LshDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_hashes", c_size_t), ("n_buckets", c_size_t),
                ("chunk_size", c_size_t), ("causal", c_int), ("attend_across_buckets", c_int),
                ("seed", c_uint64), ("rotations", P(c_float)), ("rotations_shape", c_size_t * 3)]
    _fields_ += _dt("lsh")


class RoutingDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("clusters", c_size_t), ("window", c_size_t),
                ("causal", c_int), ("scale", c_float), ("decay", c_float), ("seed", c_uint64)]
    _fields_ += _dt("routing")


class SsmDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("algorithm", c_int)] + _dt("ssm")


class GssDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("ln_eps", c_float), ("algorithm", c_int)]
    _fields_ += _dt("gss")


class GssWeights(ctypes.Structure):
    _fields_ = [(n, cl_mem) for n in ("ln_gamma", "ln_beta", "w_v", "b_v", "w_u", "b_u", "w_o1",
                                      "b_o1", "w_o2", "b_o2")]


class MgkDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("form", c_int), ("sigma", c_float * 8),
                ("causal", c_int), ("key_lengths", cl_mem), ("key_lengths_offset", c_size_t),
                ("eps", c_float), ("algorithm", c_int)]
    _fields_ += _dt("mgk")


MGK_MAX_COMPONENTS = 8


class DeqDesc(ctypes.Structure):
    # "lam" is the C field `lambda` (a Python keyword)
    _fields_ = [("struct_size", c_size_t), ("method", c_int), ("max_iter", c_uint),
                ("tol", c_double), ("memory", c_uint), ("beta", c_float), ("lam", c_float),
                ("broyden_memory", c_uint)]


class DeqResult(ctypes.Structure):
    _fields_ = [("iterations", c_uint), ("f_evals", c_uint), ("residual", c_double),
                ("converged", c_int)]


class DeqCellDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("heads", c_uint), ("causal", c_int),
                ("attention", c_int)]


# Enum values by name (lower case), per descriptor field.
ENUMS = {
    "softmax.algorithm": {"auto": 0, "tiled_cpu": 1, "tiled_gpu": 2, "naive": 3},
    "linear.feature_map": {"elu": 0, "relu": 1, "identity": 2, "favor": 3},
    "linear.momentum": {"none": 0, "fixed": 1, "adaptive": 2},
    "linear.algorithm": {"auto": 0, "fused": 1, "gemm": 2},
    "linear.scaling": {"gaussian_norms": 0, "sqrt_d": 1},
    "rpe.algorithm": {"auto": 0, "fft": 1, "direct": 2},
    "ssm.algorithm": {"auto": 0, "fft": 1, "direct": 2},
    "gss.algorithm": {"auto": 0, "fft": 1, "direct": 2},
    "mgk.form": {"softmax": 0, "linear": 1},
    "mgk.algorithm": {"auto": 0, "tiled_cpu": 1, "tiled_gpu": 2, "linear_scan": 3},
    "deq.method": {"iterate": 0, "anderson": 1, "broyden": 2},
    "deq_cell.attention": {"softmax": 0, "linear": 1},
}
OPERATORS = {"softmax": 1, "linear": 2, "rpe": 3, "lsh": 4, "routing": 5, "ssm": 6, "gss": 7,
             "mgk": 8, "deq": 9, "kvcache": 10}
DESCS = {"softmax": SoftmaxDesc, "linear": LinearDesc, "rpe": RpeDesc, "lsh": LshDesc,
         "routing": RoutingDesc, "ssm": SsmDesc, "gss": GssDesc, "mgk": MgkDesc, "deq": DeqDesc,
         "deq_cell": DeqCellDesc}
ROUTING_WINDOW_AUTO = ctypes.c_size_t(-1).value

St = c_int  # clattn_status
pT = P(Tensor)
WAIT = [cl_uint, P(cl_event), P(cl_event)]  # num_wait, wait, event
# clattn_deq_fn: (user, z, out, num_wait, wait, event) -> status
DEQ_FN = ctypes.CFUNCTYPE(c_int, c_void_p, pT, pT, cl_uint, P(cl_event), P(cl_event))

# The declaration table: name -> (restype, argtypes). A new operator adds its lines here.
_FUNCTIONS = {
    "clattn_version": (c_uint, []),
    "clattn_version_string": (c_char_p, []),
    "clattn_status_string": (c_char_p, [c_int]),
    "clattn_status_message": (c_char_p, [c_int]),
    "clattn_list_devices": (St, [P(DeviceInfo), c_size_t, P(c_size_t)]),
    "clattn_context_create": (St, [c_char_p, P(c_void_p)]),
    "clattn_context_create_from_cl": (St, [c_void_p, c_void_p, c_void_p, P(c_void_p)]),
    "clattn_context_destroy": (None, [c_void_p]),
    "clattn_context_last_error": (c_char_p, [c_void_p]),
    "clattn_context_get_device_info": (St, [c_void_p, P(DeviceInfo)]),
    "clattn_context_get_cl_context": (c_void_p, [c_void_p]),
    "clattn_context_get_cl_device": (c_void_p, [c_void_p]),
    "clattn_context_get_cl_queue": (c_void_p, [c_void_p]),
    "clattn_context_finish": (St, [c_void_p]),
    "clattn_context_get_stats": (St, [c_void_p, P(ContextStats)]),
    "clattn_operator_name": (c_char_p, [c_int]),
    "clattn_tensor_make": (Tensor, [cl_mem, c_size_t, c_size_t, c_size_t, c_size_t]),
    "clattn_plan_get_info": (St, [c_void_p, P(PlanInfo)]),
    "clattn_plan_destroy": (None, [c_void_p]),
    "clattn_measure_peak_gflops": (St, [c_void_p, P(c_double)]),
    # tuning
    "clattn_tune_supported": (c_int, [c_int]),
    "clattn_tune": (St, [c_void_p, c_int, c_void_p, size4, size4, P(c_size_t), c_double,
                         P(TuneReport)]),
    "clattn_tuning_db_path": (St, [c_void_p, ctypes.c_char_p, c_size_t]),
    "clattn_tuning_db_list": (St, [c_void_p, P(TuningEntry), c_size_t, P(c_size_t)]),
    "clattn_tuning_db_reset": (St, [c_void_p]),
    "clattn_tuning_db_warning": (None, [c_void_p, ctypes.c_char_p, c_size_t]),
    # softmax
    "clattn_softmax_desc_init": (None, [P(SoftmaxDesc)]),
    "clattn_softmax_plan_create": (St, [c_void_p, P(SoftmaxDesc), size4, size4, size4,
                                        P(c_void_p)]),
    "clattn_softmax_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT, pT] + WAIT),
    "clattn_softmax_enqueue": (St, [c_void_p, P(SoftmaxDesc), pT, pT, pT, pT, pT] + WAIT),
    # linear
    "clattn_linear_desc_init": (None, [P(LinearDesc)]),
    "clattn_linear_feature_count": (c_size_t, [P(LinearDesc), c_size_t]),
    "clattn_linear_favor_draw": (St, [c_size_t, c_size_t, c_uint64, c_int, P(c_float)]),
    "clattn_linear_plan_create": (St, [c_void_p, P(LinearDesc), size4, size4, size4,
                                       P(c_void_p)]),
    "clattn_linear_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT] + WAIT),
    "clattn_linear_enqueue": (St, [c_void_p, P(LinearDesc), pT, pT, pT, pT] + WAIT),
    "clattn_linear_state_create": (St, [c_void_p, P(LinearDesc), c_size_t, c_size_t, c_size_t,
                                        c_size_t, P(c_void_p)]),
    "clattn_linear_state_destroy": (None, [c_void_p]),
    "clattn_linear_state_get_shape": (St, [c_void_p, size4]),
    "clattn_linear_state_reset": (St, [c_void_p] + WAIT),
    "clattn_linear_state_copy": (St, [c_void_p, c_void_p] + WAIT),
    "clattn_linear_state_read": (St, [c_void_p, P(c_float), P(c_float)]),
    "clattn_linear_state_write": (St, [c_void_p, P(c_float), P(c_float)]),
    "clattn_linear_state_save_size": (St, [c_void_p, P(c_size_t)]),
    "clattn_linear_state_save": (St, [c_void_p, c_void_p, c_size_t]),
    "clattn_linear_state_load": (St, [c_void_p, c_void_p, c_size_t]),
    "clattn_linear_prefill": (St, [c_void_p, pT, pT, pT, pT] + WAIT),
    "clattn_linear_step": (St, [c_void_p, pT, pT, pT, pT] + WAIT),
    # rpe
    "clattn_rpe_desc_init": (None, [P(RpeDesc)]),
    "clattn_rpe_plan_create": (St, [c_void_p, P(RpeDesc), size4, size4, size4, P(c_void_p)]),
    "clattn_rpe_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT, pT] + WAIT),
    # lsh
    "clattn_lsh_desc_init": (None, [P(LshDesc)]),
    "clattn_lsh_rotations": (St, [c_size_t, c_size_t, c_size_t, c_uint64, P(c_float)]),
    "clattn_lsh_plan_create": (St, [c_void_p, P(LshDesc), size4, size4, P(c_void_p)]),
    "clattn_lsh_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT, pT] + WAIT),
    # routing
    "clattn_routing_desc_init": (None, [P(RoutingDesc)]),
    "clattn_routing_plan_create": (St, [c_void_p, P(RoutingDesc), size4, size4, size4, size4,
                                        P(c_void_p)]),
    "clattn_routing_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT, pT] + WAIT),
    "clattn_routing_centroids_draw": (St, [c_void_p, pT, pT, c_uint64, pT]),
    "clattn_routing_update_centroids": (St, [c_void_p, pT, pT, pT] + WAIT),
    # ssm / gss
    "clattn_ssm_desc_init": (None, [P(SsmDesc)]),
    "clattn_ssm_s4d_zoh": (St, [c_size_t, c_size_t, P(c_float), P(c_float), P(c_float),
                                P(c_float), c_int, P(c_float)]),
    "clattn_ssm_create": (St, [c_void_p, c_size_t, c_size_t, P(c_float), P(c_float), P(c_float),
                               P(c_float), P(c_void_p)]),
    "clattn_ssm_destroy": (None, [c_void_p]),
    "clattn_ssm_kernel_enqueue": (St, [c_void_p, pT] + WAIT),
    "clattn_ssm_plan_create": (St, [c_void_p, P(SsmDesc), c_void_p, size4, P(c_void_p)]),
    "clattn_ssm_plan_enqueue": (St, [c_void_p, pT, pT] + WAIT),
    "clattn_ssm_conv_plan_create": (St, [c_void_p, P(SsmDesc), size4, P(c_void_p)]),
    "clattn_ssm_conv_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT] + WAIT),
    "clattn_ssm_state_create": (St, [c_void_p, c_size_t, P(c_void_p)]),
    "clattn_ssm_state_destroy": (None, [c_void_p]),
    "clattn_ssm_state_reset": (St, [c_void_p] + WAIT),
    "clattn_ssm_state_read": (St, [c_void_p, P(c_float)]),
    "clattn_ssm_state_write": (St, [c_void_p, P(c_float)]),
    "clattn_ssm_step": (St, [c_void_p, pT, pT] + WAIT),
    "clattn_gss_desc_init": (None, [P(GssDesc)]),
    "clattn_gss_plan_create": (St, [c_void_p, P(GssDesc), c_void_p, c_size_t, size4,
                                    P(c_void_p)]),
    "clattn_gss_plan_enqueue": (St, [c_void_p, P(GssWeights), pT, pT] + WAIT),
    # full S4
    "clattn_ssm_s4_hippo_legs": (St, [c_size_t, P(c_float), P(c_float), P(c_float)]),
    "clattn_ssm_s4_create": (St, [c_void_p, c_size_t, c_size_t, c_size_t, P(c_float),
                                  P(c_float), P(c_float), P(c_float), P(c_float), P(c_float),
                                  P(c_float), P(c_void_p)]),
    # mgk
    "clattn_mgk_desc_init": (None, [P(MgkDesc)]),
    "clattn_mgk_plan_create": (St, [c_void_p, P(MgkDesc), size4, size4, P(c_void_p)]),
    "clattn_mgk_plan_enqueue": (St, [c_void_p, pT, pT, pT, pT, pT, pT] + WAIT),
    "clattn_mgk_state_create": (St, [c_void_p, P(MgkDesc), c_size_t, c_size_t, c_size_t,
                                     c_size_t, P(c_void_p)]),
    "clattn_mgk_state_destroy": (None, [c_void_p]),
    "clattn_mgk_state_reset": (St, [c_void_p] + WAIT),
    "clattn_mgk_state_step": (St, [c_void_p, pT, pT, pT, pT, pT] + WAIT),
    # deq
    "clattn_deq_desc_init": (None, [P(DeqDesc)]),
    "clattn_deq_plan_create": (St, [c_void_p, P(DeqDesc), size4, P(c_void_p)]),
    "clattn_deq_solve": (St, [c_void_p, DEQ_FN, c_void_p, pT, P(DeqResult)]),
    "clattn_deq_solve_adjoint": (St, [c_void_p, DEQ_FN, c_void_p, pT, pT, P(DeqResult)]),
    "clattn_deq_cell_desc_init": (None, [P(DeqCellDesc)]),
    "clattn_deq_cell_create": (St, [c_void_p, P(DeqCellDesc), c_size_t, c_size_t, c_size_t,
                                    cl_mem, cl_mem, cl_mem, cl_mem, P(c_void_p)]),
    "clattn_deq_cell_set_input": (St, [c_void_p, pT]),
    "clattn_deq_cell_eval": (St, [c_void_p, pT, pT] + WAIT),
}

# The few OpenCL entry points the package uses to move numpy arrays (libOpenCL, the ICD loader
# libclattn itself links).
CL_MEM_READ_WRITE = 1 << 0
CL_MEM_COPY_HOST_PTR = 1 << 5
_CL_FUNCTIONS = {
    "clCreateBuffer": (c_void_p, [c_void_p, ctypes.c_uint64, c_size_t, c_void_p, P(c_int32)]),
    "clReleaseMemObject": (c_int32, [c_void_p]),
    "clEnqueueReadBuffer": (c_int32, [c_void_p, c_void_p, c_uint, c_size_t, c_size_t, c_void_p,
                                      c_uint, P(cl_event), P(cl_event)]),
    "clEnqueueWriteBuffer": (c_int32, [c_void_p, c_void_p, c_uint, c_size_t, c_size_t, c_void_p,
                                       c_uint, P(cl_event), P(cl_event)]),
    "clFinish": (c_int32, [c_void_p]),
    "clReleaseEvent": (c_int32, [c_void_p]),
    "clRetainEvent": (c_int32, [c_void_p]),
    "clWaitForEvents": (c_int32, [c_uint, P(cl_event)]),
    "clGetMemObjectInfo": (c_int32, [c_void_p, c_uint, c_size_t, c_void_p, P(c_size_t)]),
}


def _candidates():
    env = os.environ.get("CLATTN_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libclattn.so", "libclattn.so.0", "libclattn.dylib", "clattn.dll"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            yield path
    found = ctypes.util.find_library("clattn")
    if found:
        yield found
    yield "libclattn.so.0"


# struct_size that each operator's clattn_<op>_desc_init writes in the loaded library.
LIB_DESC_SIZES = {}


def _probe_desc_size(lib, op):
    fn = getattr(lib, "clattn_%s_desc_init" % op, None)
    if fn is None:
        return 0
    buf = (c_size_t * 512)()  # larger than any desc, aligned
    fn.restype = None
    fn.argtypes = [c_void_p]
    fn(ctypes.cast(buf, c_void_p))
    return int(buf[0])


def _fit_descs(lib):
    """Reads each desc's size in the library and makes RpeDesc embed a clattn_linear_desc of the
    library's layout (with or without the dtype fields), before any argtypes are set."""
    global RpeDesc
    for op in DESCS:
        LIB_DESC_SIZES[op] = _probe_desc_size(lib, op)
    if LIB_DESC_SIZES["linear"] == ctypes.sizeof(_LinearDescF32):
        RpeDesc = _rpe_desc(_LinearDescF32)
        DESCS["rpe"] = RpeDesc
        _FUNCTIONS["clattn_rpe_desc_init"] = (None, [P(RpeDesc)])
        res, args = _FUNCTIONS["clattn_rpe_plan_create"]
        _FUNCTIONS["clattn_rpe_plan_create"] = (res, [args[0], P(RpeDesc)] + args[2:])


def has_dtypes(op):
    """Whether the loaded library's desc of `op` has the dtype fields (DTYPE_FIELDS[op]): a
    library from before per-tensor element types takes float32 only."""
    fields = DTYPE_FIELDS.get(op)
    if not fields:
        return False
    end = getattr(DESCS[op], fields[-1]).offset + ctypes.sizeof(c_int)
    return LIB_DESC_SIZES.get(op, 0) >= end


def has_options(op):
    """Whether the loaded library's desc of `op` has the fields of OPTION_FIELDS[op] (softmax:
    bias, masks, ALiBi, window, softcap, sinks, block mask; issue 16)."""
    fields = OPTION_FIELDS.get(op)
    if not fields:
        return False
    last = getattr(DESCS[op], fields[-1][0])
    return LIB_DESC_SIZES.get(op, 0) >= last.offset + last.size


def _older_size(cls, first_field):
    """The size of `cls` cut before `first_field` (with the tail padding C gives it)."""
    first, align = getattr(cls, first_field).offset, ctypes.alignment(cls)
    return (first + align - 1) // align * align


def desc_mismatches():
    """Operators whose desc mirror (this module) and the library's struct_size disagree, as
    {op: (library size, mirror size)}; the size without the dtype block, or without the option
    block (older libraries), is not a mismatch."""
    bad = {}
    for op, cls in DESCS.items():
        lib_size, size = LIB_DESC_SIZES.get(op, 0), ctypes.sizeof(cls)
        if lib_size in (0, size):
            continue
        if op in DTYPE_FIELDS and not has_dtypes(op):
            if lib_size == _older_size(cls, DTYPE_FIELDS[op][0]):
                continue  # the older layout (with its tail padding)
        if op in OPTION_FIELDS and not has_options(op):
            if lib_size == _older_size(cls, OPTION_FIELDS[op][0][0]):
                continue  # from before the options
        if op in SERVING_FIELDS and lib_size == _older_size(cls, SERVING_FIELDS[op][0][0]):
            continue  # from before the serving fields
        if op in PIECE_FIELDS and lib_size == _older_size(cls, PIECE_FIELDS[op][0][0]):
            continue  # from before position_offset
        bad[op] = (lib_size, size)
    return bad


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    else:
        raise ImportError("clattn: cannot load the C library (set CLATTN_LIBRARY to "
                          "libclattn.so's path, or install it): " + "; ".join(errors))
    _fit_descs(lib)
    for name, (res, args) in _FUNCTIONS.items():
        fn = getattr(lib, name, None)
        if fn is None:  # an older library: the entry point is missing, calls raise
            continue
        fn.restype = res
        fn.argtypes = args
    return lib


def _load_opencl():
    names = ["libOpenCL.so.1", "libOpenCL.so", ctypes.util.find_library("OpenCL") or ""]
    if sys.platform == "darwin":
        names = ["/System/Library/Frameworks/OpenCL.framework/OpenCL"]
    for n in names:
        if not n:
            continue
        try:
            cl = ctypes.CDLL(n)
            break
        except OSError:
            continue
    else:
        raise ImportError("clattn: cannot load the OpenCL ICD loader (libOpenCL.so.1)")
    for name, (res, args) in _CL_FUNCTIONS.items():
        fn = getattr(cl, name)
        fn.restype = res
        fn.argtypes = args
    return cl


lib = _load()
cl = _load_opencl()
library_path = getattr(lib, "_name", "")
