"""The large GEMMs of the generated CPU wrappers, outside the time loops: the hoisted input product
x @ W.T, the weight gradients dZ.T @ v and the input gradient dZ @ W (`matmul`, `matmul_tn`).

They go to numpy's BLAS, except where rnngen's own register-tiled GEMM (stepgemm.py, 512-bit
FMAs) is the faster one: on a CPU with AVX-512 whose BLAS is OpenBLAS running a kernel without
AVX-512 (Haswell, Zen: an OPENBLAS_CORETYPE setting, or a build that does not know the CPU), where
BLAS gets at most half the CPU's vector width. `PANELS` says which (read once, at import, from
threadpoolctl's view of the loaded BLAS libraries and LLVM's of the CPU). Measured on an AMD EPYC
(Zen 5, AVX-512) with OPENBLAS_CORETYPE=Haswell, one thread, float32 (`python
benchmarks/probes/host_gemm.py`): the panels run the bench sizes' GEMMs at 1.2-2.8x BLAS's rate.
On Intel's AVX-512 CPUs with OpenBLAS's SkylakeX kernel the two were on par (BENCHMARKS.md), and
BLAS stays. Any other BLAS (MKL, BLIS, Accelerate) stays too.

The two give the same products up to rounding (the panels sum each element over k in order, in
blocks of 256; BLAS in its own blocked order): ~1e-7 relative in float32.
"""
import numpy as np
import threadpoolctl

from .stepgemm import _has_avx512, matmul_panels, matmul_tn_panels

#: OpenBLAS kernels (its `architecture` as threadpoolctl reads it) that use AVX-512
AVX512_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


def panels_beat_blas(cpu_has_avx512, libraries):
    """Whether the panels run: the CPU has AVX-512 and every BLAS library (threadpoolctl's info
    dicts) is an OpenBLAS whose kernel lacks it."""
    blas = [lib for lib in libraries if lib.get("user_api") == "blas"]
    return bool(cpu_has_avx512 and blas and all(
        lib.get("internal_api") == "openblas" and str(lib.get("architecture", "")).lower() not in AVX512_KERNELS
        and lib.get("architecture") for lib in blas))


PANELS = panels_beat_blas(_has_avx512(), threadpoolctl.threadpool_info())


def _float_pair(a, b):
    return a.ndim == b.ndim == 2 and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)


def matmul(a, b):
    """a @ b, both 2-D (b may be a transposed view)."""
    if PANELS and _float_pair(a, b):
        return matmul_panels(np.ascontiguousarray(a), b)
    return a @ b


def matmul_tn(a, b):
    """a.T @ b, both 2-D with the rows (time steps and batch rows) first."""
    if PANELS and _float_pair(a, b):
        return matmul_tn_panels(np.ascontiguousarray(a), b)
    return a.T @ b
