"""Limit the threads of the OpenBLAS libraries numpy and scipy (hence Numba's np.dot) load.

The recurrent kernels make one small GEMM per time step. On a small machine, OpenBLAS's thread
pools (numpy and scipy each bring their own) spin against each other on such GEMMs: on a 2-core VM
shared with other jobs, `rnngen train`'s steps took 4.8 ms with one thread and a median 908 ms with
the default two (benchmarks/threads.py; the factor depends on the load). The
`rnngen train` / `sample` commands call limit_threads(1); library users may call it too (or set
OPENBLAS_NUM_THREADS=1 before importing numpy).
"""
import ctypes
import os

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads",
            "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")


def _loaded_openblas():
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:  # not Linux: only the environment variable can help
        return []
    libs = []
    for path in sorted(paths):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            pass
    return libs


def _call(lib, names, *args):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn(*args)
    return None


def limit_threads(n=1):
    """Set every loaded OpenBLAS to n threads (loading scipy's BLAS first, which Numba's np.dot
    uses). Returns the thread counts found before, one per library (empty where none was found)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))
    try:
        import numpy  # noqa: F401
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    before = []
    for lib in _loaded_openblas():
        old = _call(lib, _GETTERS)
        if _call(lib, _SETTERS, ctypes.c_int(int(n))) is not None or old is not None:
            before.append(old)
    return before


def threads():
    """The thread count of every loaded OpenBLAS."""
    return [t for t in (_call(lib, _GETTERS) for lib in _loaded_openblas()) if t is not None]
