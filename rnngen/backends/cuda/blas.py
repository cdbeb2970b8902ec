"""cuBLAS for the GEMMs outside the persistent kernels (the input projection before the loop, the
weight gradients and dx after it), through torch or cupy when either is importable with a CUDA
device; otherwise (and under the CUDA simulator) the tiled kernel of gemm.py.

The arrays are shared, not copied: torch.as_tensor / cupy.asarray read numba's
__cuda_array_interface__, and the product is written into the caller's array (torch.mm(out=),
addmm_ for +=; cupy.cublas.gemm with beta). TF32 is off for the call (torch's matmul precision is
set to IEEE and put back; cupy uses TF32 only with CUPY_TF32=1). The calls run on the legacy
default stream, where numba launches the persistent kernels, so no synchronization is needed.

config.GEMM_LIBRARY chooses: "auto" (torch, then cupy, then the tiled kernel), "torch", "cupy" or
"tiled"; config.GEMM_CHOICE says what was chosen and why (the GPU check records it).
"""
import contextlib
import importlib
import importlib.util

from . import config

_CHOSEN = {}


def _probe_torch():
    if importlib.util.find_spec("torch") is None:
        return None, "torch is not installed"
    torch = importlib.import_module("torch")
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no CUDA device"
    return torch, f"cuBLAS through torch {torch.__version__}"


def _probe_cupy():
    if importlib.util.find_spec("cupy") is None:
        return None, "cupy is not installed"
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "cupy sees no CUDA device"
    except Exception as exc:      # a cupy built for another CUDA, no driver, ...
        return None, f"cupy cannot run here ({type(exc).__name__}: {exc})"
    return cupy, f"cuBLAS through cupy {cupy.__version__}"


PROBES = {"torch": _probe_torch, "cupy": _probe_cupy}


def choose():
    """(library name, module or None, reason): what gemm.gemm() uses for the current knob."""
    want = config.GEMM_LIBRARY
    if want not in ("auto", "torch", "cupy", "tiled"):
        raise ValueError(f"GEMM_LIBRARY must be 'auto', 'torch', 'cupy' or 'tiled', got {want!r}")
    key = (want, config.SIMULATOR)
    if key not in _CHOSEN:
        if config.SIMULATOR:
            choice = ("tiled", None, "the CUDA simulator runs the tiled kernel")
        elif want == "tiled":
            choice = ("tiled", None, "GEMM_LIBRARY is 'tiled'")
        else:
            reasons = []
            for name in (("torch", "cupy") if want == "auto" else (want,)):
                module, why = PROBES[name]()
                if module is not None:
                    choice = (name, module, why)
                    break
                reasons.append(why)
            else:
                choice = ("tiled", None, "the tiled kernel: " + "; ".join(reasons))
        _CHOSEN[key] = choice
        config.GEMM_CHOICE.update(library=choice[0], reason=choice[2], asked=want)
    return _CHOSEN[key]


@contextlib.contextmanager
def _ieee_fp32(torch):
    """TF32 off for the call (torch >= 2.9: fp32_precision; before: allow_tf32), put back after."""
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        before = m.fp32_precision
        m.fp32_precision = "ieee"
        try:
            yield
        finally:
            m.fp32_precision = before
    else:
        before = m.allow_tf32
        m.allow_tf32 = False
        try:
            yield
        finally:
            m.allow_tf32 = before


def torch_mm(torch, a, b, c, trans_a, trans_b, accumulate):
    """c (+)= op(a) @ op(b) on torch tensors, written into c (no new result tensor)."""
    A = a.t() if trans_a else a
    B = b.t() if trans_b else b
    if accumulate:
        c.addmm_(A, B)
    else:
        torch.mm(A, B, out=c)
    return c


def run(library, module, a, b, out, trans_a, trans_b, accumulate):
    """out (+)= op(a) @ op(b) through cuBLAS (library "torch" or "cupy"), on the device arrays
    themselves."""
    if library == "torch":
        torch = module
        ta, tb, tc = (torch.as_tensor(v, device="cuda") for v in (a, b, out))
        stream = torch.cuda.default_stream()
        same = torch.cuda.current_stream() == stream
        with _ieee_fp32(torch), (contextlib.nullcontext() if same else torch.cuda.stream(stream)):
            torch_mm(torch, ta, tb, tc, trans_a, trans_b, accumulate)
        return out
    cupy = module
    ca, cb, cc = (cupy.asarray(v) for v in (a, b, out))
    cupy.cublas.gemm("T" if trans_a else "N", "T" if trans_b else "N", ca, cb, out=cc,
                     alpha=1.0, beta=1.0 if accumulate else 0.0)
    return out
