"""The CUDA backend's run-time settings and counters (tests and benchmarks set the knobs; the
defaults are what a user gets), and what every part of it uses: numba.cuda through compat
(the numpy 2.5 shim), counted allocations and launches, timing.

What a check reads after a run: LAST_PLAN and PLACEMENT (each persistent launch's grid, threads,
shared memory, whether the recurrent weights stayed on chip and why not), SHARED_OPTIN (the
> 48 KiB opt-in and the carveout, as read back from the driver), COUNTS (launches and
allocations), and the CUDA-event times EVENTS collects. Under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1), which runs a grid's blocks one after another, a persistent launch uses
one block unless SIM_UNITS says otherwise.
"""
import collections
import functools
import time

import numba
import numpy as np

from . import compat

cuda = compat.import_cuda()         # numba.cuda, after the numpy 2.5 shim
SIMULATOR = compat.simulator_enabled(cuda)

# Knobs (tests and benchmarks set them; defaults are what a user gets)
FORCE_GLOBAL_WEIGHTS = False     # skip the shared-memory copy of the recurrent weights (fallback path)
THREADS = 512                    # most threads per block of the persistent kernels
UNITS = None                     # hidden units per block (None: ceil(H / SMs), one block per SM)
SIM_THREADS = 4                  # ... under the simulator (each simulated thread costs ~1 ms)
SIM_UNITS = None                 # units per block under the simulator (None: all H in one block;
#                                  several blocks need a scheduler that honours grid.sync(), as the
#                                  one in tests/backends/cuda/cuda_sim_check.py)
SIM_GEMM_TILES = (4, 4, 2, 2, 2)  # the tiled GEMM's tiles under the simulator (gemm.py)
DIRECT_LAUNCH = True             # persistent kernels launched through the compiled kernel (launch.py)
GEMM_LIBRARY = "auto"            # GEMMs outside the persistent kernels: "auto" (cuBLAS through torch,
#                                  then cupy, then the tiled kernel), "torch", "cupy", "tiled" (blas.py)
GEMM_CHOICE = {}                 # what blas.choose() chose last and why

PROFILE = None                   # a dict to collect {operation: [seconds, ...]} (synchronizes each op)
EVENTS = None                    # a list to collect (operation, start event, end event): CUDA-event times
LAST_PLAN = {}                   # (grid, threads, units, shared bytes, on_chip) of the last launches
PLACEMENT = {}                   # launch name -> where its recurrent weights are and why (see plan())
SHARED_OPTIN = {}                # kernel -> the shared-memory opt-in and carveout asked for and granted
COUNTS = collections.Counter()   # "launches", "launch <name>", "allocations", "allocated bytes"
LAUNCH_HOOK = None               # callable(name, detail), called before every kernel launch (the GPU
#                                  check prints "launching <name>" before each first launch)

def launched(name, **detail):
    """Count one kernel launch (called just before it); `detail` (kernel, grid, ...) goes to the hook."""
    COUNTS["launches"] += 1
    COUNTS[f"launch {name}"] += 1
    if LAUNCH_HOOK is not None:
        LAUNCH_HOOK(name, detail)


def allocated(arr):
    """Count one device allocation; returns it."""
    COUNTS["allocations"] += 1
    COUNTS["allocated bytes"] += int(arr.size) * np.dtype(arr.dtype).itemsize
    return arr


def device_array(shape, dtype):
    return allocated(cuda.device_array(shape, np.dtype(dtype)))


def to_device(host):
    return allocated(cuda.to_device(host))


class timed:
    """With PROFILE set, synchronize around an operation and record its wall time; with EVENTS set,
    record CUDA events around it (no synchronization)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        if PROFILE is not None:
            cuda.synchronize()
            self.start = time.perf_counter()
        if EVENTS is not None:
            self.event = cuda.event()
            self.event.record()

    def __exit__(self, *exc):
        if exc[0] is not None:
            return
        if EVENTS is not None:
            end = cuda.event()
            end.record()
            EVENTS.append((self.name, self.event, end))
        if PROFILE is not None:
            cuda.synchronize()
            PROFILE.setdefault(self.name, []).append(time.perf_counter() - self.start)


def event_times(events):
    """{operation: [milliseconds, ...]} from the (name, start, end) triples EVENTS collected
    (synchronizes)."""
    out = {}
    for name, start, end in events:
        end.synchronize()
        out.setdefault(name, []).append(start.elapsed_time(end))
    return out


def context_id():
    if SIMULATOR:
        return 0
    return id(cuda.current_context())


@functools.lru_cache(maxsize=None)
def device_limits():
    """(multiprocessors, the most dynamic shared memory a block may opt in to) of the current GPU."""
    dev = cuda.get_current_device()
    sms = dev.MULTIPROCESSOR_COUNT
    try:
        optin = dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    except Exception:  # an old driver binding: the default limit
        optin = 48 * 1024
    return sms, optin


def numba_type(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return numba.float32
    if dtype == np.float64:
        return numba.float64
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")
