"""The BLAS threads: read them, let the user set them, and let the runtime set them for a region.

numpy's and SciPy's OpenBLAS (SciPy's is the one Numba's `np.dot` calls inside the generated time
loops) each keep a thread pool. rnngen controls them through threadpoolctl (`user_api="blas"`);
nothing here touches torch's or Numba's own thread pools, nor the environment.

- `threads()`: the thread count of every loaded BLAS library.
- `limit_threads(n)`: the user's setting: every loaded BLAS library runs n threads from now on, and
  the runtime leaves them so. `limit_threads(None)` hands them back: the libraries' default counts,
  and the runtime may set them again.
- `with threads_limited(n): ...`: the runtime's setting for one region: n threads inside the block,
  the previous counts restored after it (also on an exception). It yields True when it set them and
  False when it left the user's setting alone.

Who owns the threads (the rule `threads_limited` follows; `user_setting()` says which case holds):
the BLAS threads are the USER's, and `threads_limited` changes nothing, when
  1. `limit_threads(n)` was called in this process (and not handed back with `limit_threads(None)`);
  2. OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS or BLIS_NUM_THREADS
     is set in the environment (read at each call); or
  3. a BLAS library runs a thread count other than its default: inside the user's own
     `threadpoolctl.threadpool_limits(...)` block, or after a global call of it. OpenBLAS's default
     is what it picks when no variable is set: its count of the CPUs this process may use
     (`openblas_get_num_procs`), capped by its build's MAX_THREADS; another library's default is
     the count it had when this module first looked at it. A setting equal to the default is
     indistinguishable from none: to pin that count, use 1. or 2.
Otherwise the threads are the runtime's. Inside the runtime's own `threads_limited` block the
counts it set are not the user's: a nested block sets its own n and restores the outer one's.

OpenBLAS (pthreads build) keeps ONE process-wide count, and threadpoolctl lets only the first
thread that sets it change it: enter `threads_limited` from one thread (the main one) around the
whole region, never from concurrent workers.
"""
import contextlib
import ctypes
import itertools
import os
import re

import threadpoolctl

#: environment variables the BLAS libraries read their thread count from (any one set: the user's)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                    "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_controller = None          # threadpoolctl controller of the BLAS libraries rnngen uses
_defaults = {}              # filepath -> the library's default thread count
_user_limit = None          # n of the user's limit_threads(n), or None
_owned_depth = 0            # how many threads_limited blocks of the runtime are open


def _load_blas():
    """Load the BLAS libraries rnngen calls: numpy's, and SciPy's that Numba's np.dot uses."""
    try:
        import numpy  # noqa: F401
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass


def _unique(lib_controllers):
    seen, out = set(), []
    for lib in lib_controllers:
        if lib.filepath not in seen:
            seen.add(lib.filepath)
            out.append(lib)
    return out


def _blas_controller(fresh=False):
    """threadpoolctl's controller of the loaded BLAS libraries (kept: building one scans every
    loaded library, ~2 ms; fresh=True rescans, for libraries loaded since)."""
    global _controller
    if _controller is None or fresh:
        _load_blas()
        ctl = threadpoolctl.ThreadpoolController().select(user_api="blas")
        ctl.lib_controllers = _unique(ctl.lib_controllers)
        for lib in ctl.lib_controllers:
            _defaults.setdefault(lib.filepath, _library_default(lib))
        _controller = ctl
    return _controller


def available_cpus():
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _openblas_symbol(lib, name):
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        fn = getattr(lib.dynlib, f"{prefix}{name}{suffix}", None)
        if fn is not None:
            return fn
    return None


def _library_default(lib):
    """The thread count the library picks with no variable set (see the module's rule 3)."""
    if lib.internal_api != "openblas":
        return lib.get_num_threads()
    procs = _openblas_symbol(lib, "openblas_get_num_procs")
    n = procs() if procs is not None else available_cpus()
    config = _openblas_symbol(lib, "openblas_get_config")
    if config is not None:
        config.restype = ctypes.c_char_p
        m = re.search(rb"MAX_THREADS=(\d+)", config() or b"")
        if m:
            n = min(n, int(m.group(1)))
    return n


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the BLAS thread count must be an integer >= 1, got {n!r}")
    return n


def threads():
    """The thread count of every loaded BLAS library (one entry per library file)."""
    return [lib.get_num_threads() for lib in _blas_controller(fresh=True).lib_controllers]


def info():
    """threadpoolctl's description of every loaded BLAS library (version, kernel, threads, file)."""
    return [lib.info() for lib in _blas_controller(fresh=True).lib_controllers]


def limit_threads(n=1):
    """The user's setting: every loaded BLAS library runs n threads (numpy's and SciPy's are loaded
    first), and the runtime's `threads_limited` leaves them so. `limit_threads(None)` restores the
    libraries' default counts and hands the threads back to the runtime. A library loaded after
    the call keeps its own count. Returns the thread counts before, one per library."""
    global _user_limit
    if n is not None:
        _check_n(n)
    ctl = _blas_controller(fresh=True)
    before = [lib.get_num_threads() for lib in ctl.lib_controllers]
    ctl.limit(limits={lib.filepath: n if n is not None else _defaults[lib.filepath]
                      for lib in ctl.lib_controllers})
    _user_limit = n
    return before


def user_setting():
    """Why the BLAS threads are the user's (a one-line reason, after the module's rule), or None
    when they are the runtime's to set."""
    if _user_limit is not None:
        return f"rnngen.blas.limit_threads({_user_limit}) was called"
    for name in THREAD_VARIABLES:
        if os.environ.get(name, "").strip():
            return f"{name}={os.environ[name]} is set"
    if _owned_depth:
        return None
    for lib in _blas_controller().lib_controllers:
        n, default = lib.get_num_threads(), _defaults[lib.filepath]
        if n is not None and default is not None and n != default:
            return (f"{os.path.basename(lib.filepath)} runs {n} threads, not its default {default} "
                    f"(threadpoolctl.threadpool_limits or another library set it)")
    return None


@contextlib.contextmanager
def threads_limited(n):
    """Run the block with n BLAS threads and restore the previous counts after it, unless the
    threads are the user's (see the module's rule): then change nothing. Yields True when it set
    the threads, False when it left them. Enter it from one thread only (see the module)."""
    global _owned_depth
    _check_n(n)
    if user_setting() is not None:
        yield False
        return
    _owned_depth += 1
    try:
        with _blas_controller().limit(limits=n):
            yield True
    finally:
        _owned_depth -= 1
