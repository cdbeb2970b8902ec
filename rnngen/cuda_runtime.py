"""What every generated CUDA module shares: input checks for device arrays, allocation, a tiled
GEMM, a column sum, and the launch of the persistent kernels (grid size, shared memory); and the
elementwise kernels rnngen.RNN(device="cuda") runs between layers (concatenating directions,
dropout masks, summing gradients, batch_first).

Imported only when a device array reaches a generated module, so the CPU path never needs
numba-cuda (imported through cuda_compat.import_cuda(), which applies the numpy 2.5 shim). What a
check reads after a run: LAST_PLAN and PLACEMENT (each persistent launch's grid, threads, shared
memory, whether the recurrent weights stayed on chip and why not), SHARED_OPTIN (the > 48 KiB
opt-in and the carveout, as read back from the driver), COUNTS (launches and allocations), and
the CUDA-event times EVENTS collects. Runs under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which runs a grid's blocks one
after another: there a persistent launch uses one block unless SIM_UNITS says otherwise.
"""
import collections
import functools
import math
import warnings

import numpy as np
import numba

from . import cuda_compat
from .backends import checks
from .runtime.device import is_device_array  # noqa: F401  (re-exported)

cuda = cuda_compat.import_cuda()         # numba.cuda, after the numpy 2.5 shim
SIMULATOR = cuda_compat.simulator_enabled(cuda)

# Knobs (tests and benchmarks set them; defaults are what a user gets)
FORCE_GLOBAL_WEIGHTS = False     # skip the shared-memory copy of the recurrent weights (fallback path)
THREADS = 512                    # most threads per block of the persistent kernels
UNITS = None                     # hidden units per block (None: ceil(H / SMs), one block per SM)
SIM_THREADS = 4                  # ... under the simulator (each simulated thread costs ~1 ms)
SIM_UNITS = None                 # units per block under the simulator (None: all H in one block;
#                                  several blocks need a scheduler that honours grid.sync(), as the
#                                  one in tests/cuda_sim_check.py)

PROFILE = None                   # a dict to collect {operation: [seconds, ...]} (synchronizes each op)
EVENTS = None                    # a list to collect (operation, start event, end event): CUDA-event times
LAST_PLAN = {}                   # (grid, threads, units, shared bytes, on_chip) of the last launches
PLACEMENT = {}                   # launch name -> where its recurrent weights are and why (see plan())
SHARED_OPTIN = {}                # kernel -> the shared-memory opt-in and carveout asked for and granted
COUNTS = collections.Counter()   # "launches", "launch <name>", "allocations", "allocated bytes"
LAUNCH_HOOK = None               # callable(name, detail), called before every kernel launch (the GPU
#                                  check prints "launching <name>" before each first launch)

_warned = set()


def _launched(name, **detail):
    """Count one kernel launch (called just before it); `detail` (kernel, grid, ...) goes to the hook."""
    COUNTS["launches"] += 1
    COUNTS[f"launch {name}"] += 1
    if LAUNCH_HOOK is not None:
        LAUNCH_HOOK(name, detail)


def _allocated(arr):
    """Count one device allocation; returns it."""
    COUNTS["allocations"] += 1
    COUNTS["allocated bytes"] += int(arr.size) * np.dtype(arr.dtype).itemsize
    return arr


def _device_array(shape, dtype):
    return _allocated(cuda.device_array(shape, np.dtype(dtype)))


def _to_device(host):
    return _allocated(cuda.to_device(host))


class _timed:
    """With PROFILE set, synchronize around an operation and record its wall time; with EVENTS set,
    record CUDA events around it (no synchronization)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        if PROFILE is not None:
            import time
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
            import time
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


def numba_type(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return numba.float32
    if dtype == np.float64:
        return numba.float64
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")


# -- inputs --------------------------------------------------------------------------------
def _contiguous(name, arr):
    ok = getattr(arr, "is_c_contiguous", None)
    if ok is not None and not ok():
        raise ValueError(f"{name} must be C-contiguous on the device (call .contiguous() first)")
    return arr


def as_device(name, value, ndim=None, dtype=None):
    """A device view of `value` (no copy for device arrays; host arrays are copied over)."""
    if hasattr(value, "copy_to_host") and hasattr(value, "shape"):
        arr = value
    elif hasattr(value, "__cuda_array_interface__"):
        arr = cuda.as_cuda_array(value)
    else:
        try:
            arr = _to_device(np.ascontiguousarray(np.asarray(value)))
        except Exception as exc:
            raise ValueError(f"{name} must be an array: {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if dtype is None:
        if np.dtype(arr.dtype).type not in checks.DTYPES:
            raise ValueError(f"{name} must be float32 or float64, got {arr.dtype}")
    elif np.dtype(arr.dtype) != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)} (as x and the parameters), "
                         f"got {arr.dtype}")
    return _contiguous(name, arr)


def forward_inputs(x, params, state0, lengths, reverse, spec_params, states):
    """The checks of the CPU path (checks.check_forward) for device arrays. NaN is not checked;
    a state0 not given stays None (the kernel's copy fills zeros)."""
    x, params, state0, lengths, reverse, _ = checks.check_forward(
        x, params, state0, lengths, reverse, spec_params, states, array=as_device,
        lengths_of=_device_lengths, finite=None)
    return x, params, state0, lengths, reverse


_FULL_LENGTHS = {}


def _context_id():
    if SIMULATOR:
        return 0
    return id(cuda.current_context())


def _device_lengths(lengths, B, T):
    """`lengths` on the device, checked on a host copy by checks.check_lengths; None: a cached
    array of T; CheckedLengths for this (B, T) (a network checks once per call) are used as they
    are, their device copy if they have one (no round trip)."""
    if lengths is None:
        key = (T, B, _context_id())
        if key not in _FULL_LENGTHS:
            _FULL_LENGTHS[key] = _to_device(np.full(B, T, np.int64))
        return _FULL_LENGTHS[key]
    if isinstance(lengths, checks.CheckedLengths) and (lengths.B, lengths.T) == (B, T):
        if lengths.device is None:
            lengths.device = _to_device(lengths.host)
        return lengths.device
    if hasattr(lengths, "copy_to_host"):
        host = lengths.copy_to_host()
    elif hasattr(lengths, "__cuda_array_interface__"):
        host = cuda.as_cuda_array(lengths).copy_to_host()
    else:
        host = lengths
    return _to_device(checks.check_lengths(host, B, T))


def backward_inputs(dy, d_final, saved, cell_name, states):
    if not isinstance(saved, checks.Saved) or saved.cell != cell_name or not getattr(saved, "device", False):
        raise ValueError(f"saved must be what forward() of cell {cell_name!r} returned for device arrays")
    T, B, _ = saved.x.shape
    H = getattr(saved, f"s_{states[0]}").shape[2]
    dtype = saved.x.dtype
    dy = zeros((T, B, H), dtype) if dy is None else as_device("dy", dy, 3, dtype)
    if tuple(dy.shape) != (T, B, H):
        raise ValueError(f"dy must have shape (T, B, H) = ({T}, {B}, {H}), got {tuple(dy.shape)}")
    if d_final is None:
        d_final = (None,) * len(states)
    if not isinstance(d_final, (tuple, list)) or len(d_final) != len(states):
        raise ValueError(f"d_final must be None or a tuple of {len(states)} arrays {states}, each (B, H)")
    # backward accumulates into d_final: copies
    return dy, tuple(zeros((B, H), dtype) if d is None else
                     copy(checks.check_state(f"d_final[{k}] ({states[k]})", d, B, H, dtype, as_device, None))
                     for k, d in enumerate(d_final))


# -- small kernels -------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _elementwise(dtype):
    nt = numba_type(dtype)

    @cuda.jit
    def fill(out, value):
        v = nt(value)
        for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[e] = v

    @cuda.jit
    def copy1d(src, dst):
        for e in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[e] = src[e]

    return fill, copy1d


def _grid1d(n):
    threads = 32 if SIMULATOR else 256
    return max(1, min(math.ceil(n / threads), 4 if SIMULATOR else 4096)), threads


def empty(shape, dtype):
    return _device_array(shape, dtype)


def zeros(shape, dtype):
    out = _device_array(shape, dtype)
    flat = out.reshape(out.size)
    fill, _ = _elementwise(np.dtype(dtype))
    _launched("fill")
    with _timed("zeros"):
        fill[_grid1d(out.size)](flat, np.dtype(dtype).type(0))   # typed: no f64 in float32
    return out


def copy(src, dst=None):
    """Device-to-device copy of a C-contiguous array (into `dst`, or a new array); None: zeros."""
    if src is None:
        fill, _ = _elementwise(np.dtype(dst.dtype))
        _launched("fill")
        with _timed("zeros"):
            fill[_grid1d(dst.size)](dst.reshape(dst.size), np.dtype(dst.dtype).type(0))
        return dst
    if dst is None:
        dst = _device_array(src.shape, src.dtype)
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"copy: shapes differ {src.shape} -> {dst.shape}")
    _, copy1d = _elementwise(np.dtype(dst.dtype))
    _launched("copy")
    with _timed("copy"):
        copy1d[_grid1d(dst.size)](src.reshape(src.size), dst.reshape(dst.size))
    return dst


# -- GEMM: c (M, N) (+)= op(a) @ op(b), op = transpose or not ------------------------------
# (block rows, block cols, k step, rows and cols per thread): 256 threads each; ptxas for sm_90:
# 142 registers without spills for the large tile, 64 for the small one (used when the large
# tile would leave SMs idle)
GEMM_TILES = (128, 128, 8, 8, 8)
GEMM_TILES_SMALL = (64, 64, 16, 4, 4)
SIM_GEMM_TILES = (4, 4, 2, 2, 2)


def gemm_kernel_for(nt, bm, bn, bk, rm, rn):
    """A register-tiled GEMM: each block computes a (bm, bn) tile, each thread (rm, rn) of it."""
    tx_n = bn // rn
    ty_m = bm // rm
    pa, pb = bm + 1, bn + 1      # padded rows: the transposing stores hit different banks

    def gemm(a, b, c, trans_a, trans_b, accumulate):
        M, N = c.shape
        K = a.shape[0] if trans_a else a.shape[1]
        sa = cuda.shared.array((bk, pa), nt)
        sb = cuda.shared.array((bk, pb), nt)
        acc = cuda.local.array((rm, rn), nt)
        ra = cuda.local.array(rm, nt)
        rb = cuda.local.array(rn, nt)
        tid = cuda.threadIdx.x
        nthreads = cuda.blockDim.x
        tx = tid % tx_n
        ty = tid // tx_n
        m0 = cuda.blockIdx.x * bm       # M (T*B rows: millions) on grid.x, which allows 2**31 - 1
        n0 = cuda.blockIdx.y * bn       # N (a multiple of H) on grid.y, at most 65535 tiles
        zero = nt(0)
        for r in range(rm):
            for s in range(rn):
                acc[r, s] = zero
        for k0 in range(0, K, bk):
            for e in range(tid, bk * bm, nthreads):
                if trans_a:            # a is (K, M): consecutive threads read consecutive m
                    kk = e // bm
                    mm = e - kk * bm
                else:                  # a is (M, K): consecutive threads read consecutive k
                    mm = e // bk
                    kk = e - mm * bk
                m = m0 + mm
                k = k0 + kk
                v = zero
                if m < M and k < K:
                    v = a[k, m] if trans_a else a[m, k]
                sa[kk, mm] = v
            for e in range(tid, bk * bn, nthreads):
                if trans_b:            # b is (N, K)
                    nn = e // bk
                    kk = e - nn * bk
                else:                  # b is (K, N)
                    kk = e // bn
                    nn = e - kk * bn
                n = n0 + nn
                k = k0 + kk
                v = zero
                if n < N and k < K:
                    v = b[n, k] if trans_b else b[k, n]
                sb[kk, nn] = v
            cuda.syncthreads()
            for kk in range(bk):
                for r in range(rm):
                    ra[r] = sa[kk, ty + r * ty_m]
                for s in range(rn):
                    rb[s] = sb[kk, tx + s * tx_n]
                for r in range(rm):
                    for s in range(rn):
                        acc[r, s] += ra[r] * rb[s]
            cuda.syncthreads()
        for r in range(rm):
            m = m0 + ty + r * ty_m
            for s in range(rn):
                n = n0 + tx + s * tx_n
                if m < M and n < N:
                    if accumulate:
                        c[m, n] += acc[r, s]
                    else:
                        c[m, n] = acc[r, s]

    return gemm


@functools.lru_cache(maxsize=None)
def _gemm(dtype, tiles):
    return cuda.jit(gemm_kernel_for(numba_type(dtype), *tiles))


def gemm_tiles(M, N):
    if SIMULATOR:
        return SIM_GEMM_TILES
    bm, bn = GEMM_TILES[:2]
    if math.ceil(M / bm) * math.ceil(N / bn) >= _device_limits()[0]:
        return GEMM_TILES
    return GEMM_TILES_SMALL


def gemm(a, b, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (M, N) = op(a) @ op(b) (or += with accumulate); returns out."""
    M = a.shape[1] if trans_a else a.shape[0]
    K = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    if (b.shape[1] if trans_b else b.shape[0]) != K:
        raise ValueError(f"gemm: inner sizes differ: {a.shape}{'.T' if trans_a else ''} @ "
                         f"{b.shape}{'.T' if trans_b else ''}")
    if out is None:
        out = empty((M, N), a.dtype)
    tiles = gemm_tiles(M, N)
    bm, bn, bk, rm, rn = tiles
    kernel = _gemm(np.dtype(a.dtype), tiles)
    grid, threads = gemm_launch(M, N, tiles)
    _launched("gemm", kernel=f"gemm{tiles}[{np.dtype(a.dtype)}]", grid=grid, threads=threads)
    with _timed(f"gemm {M}x{N}x{K}"):
        kernel[grid, threads](a, b, out, bool(trans_a), bool(trans_b), bool(accumulate))
    return out


GRID_X_MAX = 2 ** 31 - 1
GRID_YZ_MAX = 65535


def gemm_launch(M, N, tiles):
    """(grid, threads) of the tiled GEMM for an (M, N) result: M tiles on grid.x (up to 2**31 - 1),
    N tiles on grid.y (up to 65535). A ValueError names the size that no launch can cover."""
    bm, bn, _, rm, rn = tiles
    grid = (math.ceil(M / bm), math.ceil(N / bn))
    if grid[0] > GRID_X_MAX or grid[1] > GRID_YZ_MAX:
        raise ValueError(f"gemm: an ({M}, {N}) result needs a grid of {grid} tiles of ({bm}, {bn}); "
                         f"CUDA allows at most ({GRID_X_MAX}, {GRID_YZ_MAX})")
    return (max(1, grid[0]), max(1, grid[1])), (bm // rm) * (bn // rn)


def column_sum_kernel_for(nt, cols, rows_per_pass):
    def column_sum(a, out, chunk):
        M, N = a.shape
        part = cuda.shared.array((rows_per_pass, cols), nt)
        tx = cuda.threadIdx.x % cols
        ty = cuda.threadIdx.x // cols
        n = cuda.blockIdx.x * cols + tx
        start = cuda.blockIdx.y * chunk
        acc = nt(0)
        if n < N:
            for m in range(start + ty, min(start + chunk, M), rows_per_pass):
                acc += a[m, n]
        part[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and n < N:
            for r in range(1, rows_per_pass):
                acc += part[r, tx]
            cuda.atomic.add(out, n, acc)

    return column_sum


@functools.lru_cache(maxsize=None)
def _column_sum(dtype):
    cols, rows = (2, 2) if SIMULATOR else (32, 8)
    return cuda.jit(column_sum_kernel_for(numba_type(dtype), cols, rows)), cols, rows


def column_sum(a):
    """Sum over the rows of a (M, N) device array: (N,)."""
    M, N = a.shape
    out = zeros((N,), a.dtype)
    kernel, cols, rows = _column_sum(np.dtype(a.dtype))
    chunk = max(rows, math.ceil(M / (1 if SIMULATOR else 64)))
    _launched("column_sum")
    with _timed("column_sum"):
        kernel[(math.ceil(N / cols), math.ceil(M / chunk)), cols * rows](a, out, chunk)
    return out


# -- what rnngen.RNN(device="cuda") needs between layers ----------------------------------
# Hand-written elementwise kernels (no cell math): concatenating the two directions, taking one
# direction's slice of a gradient, the dropout mask, summing the two directions' dx, batch_first.
@cuda.jit
def _into_last(src, dst, offset):
    """dst[t, b, offset + h] = src[t, b, h]"""
    T, B, H = src.shape
    for e in range(cuda.grid(1), T * B * H, cuda.gridsize(1)):
        t = e // (B * H)
        r = e - t * (B * H)
        b = r // H
        h = r - b * H
        dst[t, b, offset + h] = src[t, b, h]


@cuda.jit
def _from_last(src, dst, offset):
    """dst[t, b, h] = src[t, b, offset + h]"""
    T, B, H = dst.shape
    for e in range(cuda.grid(1), T * B * H, cuda.gridsize(1)):
        t = e // (B * H)
        r = e - t * (B * H)
        b = r // H
        h = r - b * H
        dst[t, b, h] = src[t, b, offset + h]


@cuda.jit
def _multiply(a, b, out):
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[e] = a[e] * b[e]


@cuda.jit
def _add(a, b, out):
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[e] = a[e] + b[e]


@cuda.jit
def _swap01(src, dst):
    """dst[j, i, k] = src[i, j, k]"""
    P, Q, F = src.shape
    for e in range(cuda.grid(1), P * Q * F, cuda.gridsize(1)):
        i = e // (Q * F)
        r = e - i * (Q * F)
        j = r // F
        k = r - j * F
        dst[j, i, k] = src[i, j, k]


def _flat_grid(n):
    if SIMULATOR:      # each simulated thread costs ~1 ms: a few threads, grid-stride loops
        return 1, max(1, min(n, SIM_THREADS))
    return _grid1d(n)


def concat_last(parts):
    """(T, B, H_k) device arrays -> one (T, B, sum H_k) array, concatenated along the last axis."""
    T, B, _ = parts[0].shape
    out = empty((T, B, sum(p.shape[2] for p in parts)), parts[0].dtype)
    offset = 0
    with _timed("concat"):
        for p in parts:
            _launched("concat")
            _into_last[_flat_grid(p.size)](p, out, offset)
            offset += p.shape[2]
    return out


def take_last(src, offset, width):
    """A new C-contiguous (T, B, width) copy of src[:, :, offset:offset + width]."""
    T, B, _ = src.shape
    out = empty((T, B, width), src.dtype)
    _launched("take")
    with _timed("take"):
        _from_last[_flat_grid(out.size)](src, out, offset)
    return out


def _elementwise2(kernel, name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: shapes differ {tuple(a.shape)} and {tuple(b.shape)}")
    out = empty(a.shape, a.dtype)
    _launched(name)
    with _timed(name):
        kernel[_flat_grid(out.size)](a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out


def multiply(a, b):
    """a * b elementwise (same shapes, C-contiguous): a new device array."""
    return _elementwise2(_multiply, "multiply", a, b)


def add(a, b):
    """a + b elementwise (same shapes, C-contiguous): a new device array."""
    return _elementwise2(_add, "add", a, b)


def swap01(src):
    """(P, Q, F) -> a new C-contiguous (Q, P, F) array (time-major <-> batch-first)."""
    P, Q, F = src.shape
    out = empty((Q, P, F), src.dtype)
    _launched("swap01")
    with _timed("swap01"):
        _swap01[_flat_grid(out.size)](src, out)
    return out


# -- the persistent kernels ----------------------------------------------------------------
def shared_elements(units, H, rows, num_linears, backward):
    """Shared-memory elements for `units` hidden units: rows of pitch H + 1 (forward) or columns of
    pitch rows_of_W + 1 (backward), so that neighbouring threads hit different banks."""
    if backward:
        return units * (rows * H + num_linears)
    return units * rows * (H + 1)


@functools.lru_cache(maxsize=None)
def _device_limits():
    dev = cuda.get_current_device()
    sms = dev.MULTIPROCESSOR_COUNT
    try:
        optin = dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    except Exception:  # an old driver binding: the default limit
        optin = 48 * 1024
    return sms, optin


DEFAULT_SHARED = 48 * 1024       # dynamic shared memory per block a kernel gets without the opt-in
SYSTEM_SHARED = 1024             # what the system keeps of an SM's shared memory per block (sm_80+)


def _kernel_key(kernel):
    """'<module>.<function>' of a dispatcher or compiled kernel, and the element type of a compiled
    one ('rnngen.generated._cuda_lstm.forward_kernel[float32]')."""
    fn = getattr(kernel, "py_func", None)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__name__', type(kernel).__name__)}"
    dtypes = [str(t.dtype) for t in getattr(kernel, "argument_types", ()) if hasattr(t, "dtype")
              and str(t.dtype).startswith("float")]
    return f"{name}[{dtypes[0]}]" if dtypes else name


def _allow_shared(kernel, nbytes):
    """Let `kernel` launch with `nbytes` of dynamic shared memory: above 48 KiB through the
    per-kernel opt-in (cuda_compat.allow_dynamic_shared, checked by reading the attribute back).
    Returns None when granted, else the reason (the plan then keeps the weights in global memory)."""
    if nbytes <= DEFAULT_SHARED:
        return None
    record = SHARED_OPTIN.setdefault(_kernel_key(kernel), {})
    if (record.get("granted") or 0) >= nbytes:
        return None
    try:
        granted = cuda_compat.allow_dynamic_shared(cuda_compat.kernel_function(kernel), nbytes)
    except Exception as exc:
        record.update(requested=nbytes, granted=None, error=f"{type(exc).__name__}: {exc}")
        return f"the opt-in to {nbytes} bytes of dynamic shared memory per block failed ({record['error']})"
    record.update(requested=nbytes, granted=granted, error=None)
    return None


def _prefer_carveout(kernel, percent):
    """Set the kernel's preferred L1 / shared-memory carveout (a hint to the driver); a failure
    warns once and leaves the driver's choice."""
    record = SHARED_OPTIN.setdefault(_kernel_key(kernel), {})
    if record.get("carveout_asked") == percent:         # set (or failed) already: no driver call
        return
    record["carveout_asked"] = percent
    try:
        got = cuda_compat.set_function_attribute(cuda_compat.kernel_function(kernel),
                                                 "PREFERRED_SHARED_MEMORY_CARVEOUT", percent)
        record.update(carveout=percent, carveout_read_back=got, carveout_error=None)
    except Exception as exc:
        record.update(carveout=None, carveout_error=f"{type(exc).__name__}: {exc}")
        _warn_once(("carveout", str(exc)), f"rnngen: cannot set the shared-memory carveout of "
                                           f"{_kernel_key(kernel)} ({exc}); the driver chooses")


def carveout_for(nbytes, grid, sms, optin):
    """The carveout decision of a persistent launch: the smallest that holds the blocks one SM
    runs (ceil(grid / SMs), one for a grid of one block per SM) with `nbytes` each, so that the
    rest of the SM's L1 / shared storage stays L1 cache for the kernel's global loads; 0 (all L1)
    with the weights in global memory."""
    return cuda_compat.carveout_percent(nbytes, math.ceil(grid / sms), optin + SYSTEM_SHARED,
                                        SYSTEM_SHARED)


def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def plan(kernel, H, B, rows, num_linears, backward, itemsize):
    """(grid, threads, units, shared bytes, on_chip) for a persistent launch (plan_details())."""
    d = plan_details(kernel, H, B, rows, num_linears, backward, itemsize)
    return d["grid"], d["threads"], d["units"], d["shared_bytes"], d["on_chip"]


def plan_details(kernel, H, B, rows, num_linears, backward, itemsize):
    """The launch of one persistent kernel, as a dict: grid, threads, units (hidden units per
    block), shared_bytes (dynamic), on_chip (the recurrent weights in shared memory), reason (why
    they are not, or None), carveout (percent, or None under the simulator).

    units = ceil(H / SMs) so that one block runs per SM; more units per block when the cooperative
    grid would not fit; weights in global memory when their slice does not fit in shared memory or
    the opt-in above 48 KiB fails (a RuntimeWarning names the reason, once).
    """
    if SIMULATOR:      # the stock simulator syncs a cooperative grid of ONE block only
        units = min(SIM_UNITS or H, H)
        on_chip = not FORCE_GLOBAL_WEIGHTS and rows > 0
        nbytes = shared_elements(units, H, rows, num_linears, backward) * itemsize if on_chip else 0
        return dict(grid=math.ceil(H / units), threads=SIM_THREADS, units=units, shared_bytes=nbytes,
                    on_chip=on_chip, reason=_offchip_reason(rows, None), carveout=None)
    sms, optin = _device_limits()
    most_threads, static = THREADS, 0
    try:      # what the kernel's registers allow, and the shared memory it declares itself
        attrs = cuda_compat.kernel_function(kernel).attrs
        most_threads = min(most_threads, attrs.maxthreads // 32 * 32)
        static = int(attrs.shared)
    except Exception:
        pass
    first_units = min(H, UNITS) if UNITS else max(1, math.ceil(H / sms))
    cooperative = getattr(kernel, "cooperative", False)
    reason = None
    for on_chip in ((True, False) if rows > 0 and not FORCE_GLOBAL_WEIGHTS else (False,)):
        units = first_units
        while units <= H:
            grid = math.ceil(H / units)
            work = B * units * max(rows, 1)          # dot products per block and step
            threads = max(32, min(most_threads, math.ceil(work / 32) * 32))
            nbytes = shared_elements(units, H, rows, num_linears, backward) * itemsize if on_chip else 0
            if on_chip and nbytes + static > optin:
                reason = reason or (f"the weight slice needs {nbytes} bytes of shared memory per block "
                                    f"(and the kernel {static} of its own), the device allows {optin}")
                break                                # more units only need more shared memory
            if on_chip:
                failed = _allow_shared(kernel, nbytes)
                if failed:
                    reason = failed
                    break
            carveout = carveout_for(nbytes + static, grid, sms, optin)
            _prefer_carveout(kernel, carveout)
            if not cooperative or kernel.max_cooperative_grid_blocks(threads, nbytes) >= grid:
                if not on_chip and rows > 0 and not FORCE_GLOBAL_WEIGHTS:
                    reason = reason or "no cooperative grid of blocks with their weight slice in shared memory fits"
                    _warn_once(("global", H, rows, backward, reason),
                               f"rnngen: the recurrent weights of H={H} "
                               f"({'backward' if backward else 'forward'}) are read from global memory "
                               f"(correct, slower): {reason}")
                return dict(grid=grid, threads=threads, units=units, shared_bytes=nbytes, on_chip=on_chip,
                            reason=_offchip_reason(rows, reason if not on_chip else None), carveout=carveout)
            units += 1
    raise RuntimeError(f"rnngen: no cooperative grid for H={H} fits this GPU")


def _offchip_reason(rows, reason):
    if rows == 0:
        return "the cell has no recurrent weight matrix"
    if FORCE_GLOBAL_WEIGHTS:
        return "FORCE_GLOBAL_WEIGHTS is set"
    return reason


_PLANS = {}


def launch_persistent(dispatcher, H, B, rows, num_linears, backward, args):
    """Compile (once per signature), size and launch one persistent kernel. PLACEMENT[name] and
    LAST_PLAN[name] say how it ran (name: "persistent forward" or "persistent backward")."""
    itemsize = np.dtype(args[2].dtype).itemsize
    key = (id(dispatcher), H, B, rows, num_linears, backward, itemsize, FORCE_GLOBAL_WEIGHTS, THREADS, UNITS,
           SIM_UNITS, SIM_THREADS, _context_id())
    if key not in _PLANS:
        kernel = None
        if not SIMULATOR:
            probe = tuple(args) + (1, True)
            kernel = dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in probe))
        _PLANS[key] = kernel, plan_details(kernel, H, B, rows, num_linears, backward, itemsize)
    kernel, d = _PLANS[key]
    grid, threads, units, nbytes, on_chip = d["grid"], d["threads"], d["units"], d["shared_bytes"], d["on_chip"]
    if not SIMULATOR:       # the kernel's attributes may have been set for another plan since
        _allow_shared(kernel, nbytes)
        _prefer_carveout(kernel, d["carveout"])
    name = "persistent backward" if backward else "persistent forward"
    LAST_PLAN[name] = (grid, threads, units, nbytes, on_chip)
    PLACEMENT[name] = dict(d, H=H, B=B, kernel=_kernel_key(kernel if kernel is not None else dispatcher))
    _launched(name, kernel=PLACEMENT[name]["kernel"], grid=grid, threads=threads, shared_bytes=nbytes,
              on_chip=on_chip)
    with _timed(name):
        dispatcher[grid, threads, 0, nbytes](*args, units, on_chip)
