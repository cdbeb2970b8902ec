"""The large GEMMs of the generated CPU wrappers, outside the time loops: the hoisted input product
x @ W.T, the weight gradients dZ.T @ v and the input gradient dZ @ W (`matmul`, `matmul_tn`).

They go to numpy's BLAS, except where rnngen's own register-tiled GEMM (stepgemm.py, 512-bit
FMAs) is the faster one: on a CPU with AVX-512 whose BLAS is OpenBLAS running a kernel without
AVX-512 (Haswell, Zen: an OPENBLAS_CORETYPE setting, or a build that does not know the CPU), where
BLAS gets at most half the CPU's vector width. `PANELS` says which (read once, at import, from
threadpoolctl's view of the loaded BLAS libraries and LLVM's of the CPU). Measured on an AMD EPYC
(Zen 5, AVX-512) with OPENBLAS_CORETYPE=Haswell, one thread (`python
benchmarks/probes/host_gemm.py`, 2026-12-07): the panels run the bench sizes' GEMMs at 1.6-2.3x
BLAS's rate in float32, 1.5-2.2x in float64. On Intel's AVX-512 CPUs with OpenBLAS's SkylakeX
kernel the two were on par (BENCHMARKS.md), and BLAS stays. Any other BLAS (MKL, BLIS, Accelerate) stays too.

The two give the same products up to rounding (the panels sum each element over k in order, in
blocks of 256; BLAS in its own blocked order): ~1e-7 relative in float32.
"""
import threading

import numpy as np
import threadpoolctl

from .stepgemm import _has_avx512, gemm_panels, gemm_panels_tn, pack, panel_shape

#: OpenBLAS kernels (its `architecture` as threadpoolctl reads it) that use AVX-512
AVX512_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


def panels_beat_blas(cpu_has_avx512, libraries):
    """Whether the panels run (for products of MIN_PANEL_WORK and more): the CPU has AVX-512 and
    every BLAS library (threadpoolctl's info dicts) is an OpenBLAS whose kernel lacks it."""
    blas = [lib for lib in libraries if lib.get("user_api") == "blas"]
    return bool(cpu_has_avx512 and blas and all(
        lib.get("internal_api") == "openblas" and str(lib.get("architecture", "")).lower() not in AVX512_KERNELS
        and lib.get("architecture") for lib in blas))


def _blas_libraries():
    try:
        return threadpoolctl.threadpool_info()
    except Exception:       # a library threadpoolctl cannot read: BLAS, as without the panels
        return []


PANELS = panels_beat_blas(_has_avx512(), _blas_libraries())


#: M * K * N below which a product goes to BLAS even with PANELS: the panels' Python-side calls
#: (pack, allocate, the kernel: ~5 us) cost more than a small product's arithmetic (at the course
#: size, T10 B10 I3 H5, an LSTM forward+backward took 66 us with them and 60 without in a scratch
#: loop; `python benchmarks/probes/course_call.py` times that call)
MIN_PANEL_WORK = 1 << 18


def _for_panels(a, b, k_axis):
    """Whether a product of a and b (contracted over a's axis k_axis and b's rows) goes to the
    panels: PANELS, 2-D arrays of one float dtype whose shapes agree (numpy raises for the rest),
    at least MIN_PANEL_WORK multiply-adds."""
    return (PANELS and a.ndim == b.ndim == 2 and a.size * b.shape[1] >= MIN_PANEL_WORK and a.dtype == b.dtype
            and a.dtype in (np.float32, np.float64) and a.shape[k_axis] == b.shape[0])


def packed(w):
    """panels(w) (stepgemm.py) in an array numpy allocates: a large one gets transparent huge
    pages (numpy asks the kernel for them; Numba's allocator does not), which page-faults 512x
    less (a fastrnns hoisted GEMM into a Numba-allocated 52 MB output: 156 -> 203 GFLOP/s)."""
    p = np.empty(panel_shape(*w.shape, w.dtype), w.dtype)
    pack(w, p)
    return p


class SharedPanels:
    """The weights of one call packed once for all its batch slices (rnngen/runtime/schedule.py):
    the first slice to ask packs, the others wait for it and read the same copy. With a copy each,
    the two workers stream twice the panels through the shared L3 cache at every step (lstm
    T100 B64 I=H=512 inference at default threads, a copy each -> shared: 86.1 -> 76.9 and 76.8 ->
    71.8 ms in two runs of `python benchmarks/probes/shared_panels.py`, 2026-12-07)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._packed = {}

    def get(self, name, w):
        with self._lock:
            if name not in self._packed:
                self._packed[name] = packed(w)
            return self._packed[name]


#: bytes of a weight below which each slice packs its own copy: it stays in the core's L2 cache.
#: Sharing such a weight read slower in two runs of `benchmarks/probes/network_before_after.py`
#: (gru T256 B32 H128 inference 5.6-5.9 -> 6.1-6.3 ms) and faster in two of
#: `benchmarks/probes/shared_panels.py` (9.36 -> 7.78, 6.23 -> 6.01): within this machine's noise
MIN_SHARED_BYTES = 1 << 20


def panels_of(shared, name, w):
    """packed(w); with `shared` (a SharedPanels), the copy it holds under `name` (the slices of one
    call pack the same weight under the same name) where w has MIN_SHARED_BYTES or more."""
    return packed(w) if shared is None or w.nbytes < MIN_SHARED_BYTES else shared.get(name, w)


def panel_product(a, b, tn=False):
    """a @ b (a.T @ b with tn) through the panels, the output allocated by numpy (see packed)."""
    a = np.ascontiguousarray(a)
    out = np.empty((a.shape[1] if tn else a.shape[0], b.shape[1]), a.dtype)
    (gemm_panels_tn if tn else gemm_panels)(a, packed(b), out)
    return out


def matmul(a, b):
    """a @ b, both 2-D (b may be a transposed view)."""
    if _for_panels(a, b, 1):
        return panel_product(a, b)
    return a @ b


def matmul_tn(a, b):
    """a.T @ b, both 2-D with the rows (time steps and batch rows) first."""
    if _for_panels(a, b, 0):
        return panel_product(a, b, tn=True)
    return a.T @ b
