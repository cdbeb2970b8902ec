"""Elementwise device kernels: allocation and copies, what rnngen.RNN(device="cuda") runs
between layers (concatenating directions, dropout masks, summing gradients, batch_first), and
the loop-order permutation of a reversed run the generated modules apply to x and dx."""
import functools
import math

import numpy as np

from . import config

cuda = config.cuda


# -- memory --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _elementwise(dtype):
    nt = config.numba_type(dtype)

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


def grid1d(n):
    threads = 32 if config.SIMULATOR else 256
    return max(1, min(math.ceil(n / threads), 4 if config.SIMULATOR else 4096)), threads


def empty(shape, dtype):
    return config.device_array(shape, dtype)


def zeros(shape, dtype):
    out = config.device_array(shape, dtype)
    flat = out.reshape(out.size)
    fill, _ = _elementwise(np.dtype(dtype))
    config.launched("fill")
    with config.timed("zeros"):
        fill[grid1d(out.size)](flat, np.dtype(dtype).type(0))   # typed: no f64 in float32
    return out


def copy(src, dst=None):
    """Device-to-device copy of a C-contiguous array (into `dst`, or a new array); None: zeros."""
    if src is None:
        fill, _ = _elementwise(np.dtype(dst.dtype))
        config.launched("fill")
        with config.timed("zeros"):
            fill[grid1d(dst.size)](dst.reshape(dst.size), np.dtype(dst.dtype).type(0))
        return dst
    if dst is None:
        dst = config.device_array(src.shape, src.dtype)
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"copy: shapes differ {src.shape} -> {dst.shape}")
    _, copy1d = _elementwise(np.dtype(dst.dtype))
    config.launched("copy")
    with config.timed("copy"):
        copy1d[grid1d(dst.size)](src.reshape(src.size), dst.reshape(dst.size))
    return dst


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


def flat_grid(n):
    if config.SIMULATOR:      # each simulated thread costs ~1 ms: a few threads, grid-stride loops
        return 1, max(1, min(n, config.SIM_THREADS))
    return grid1d(n)


def concat_last(parts):
    """(T, B, H_k) device arrays -> one (T, B, sum H_k) array, concatenated along the last axis."""
    T, B, _ = parts[0].shape
    out = empty((T, B, sum(p.shape[2] for p in parts)), parts[0].dtype)
    offset = 0
    with config.timed("concat"):
        for p in parts:
            config.launched("concat")
            _into_last[flat_grid(p.size)](p, out, offset)
            offset += p.shape[2]
    return out


def take_last(src, offset, width):
    """A new C-contiguous (T, B, width) copy of src[:, :, offset:offset + width]."""
    T, B, _ = src.shape
    out = empty((T, B, width), src.dtype)
    config.launched("take")
    with config.timed("take"):
        _from_last[flat_grid(out.size)](src, out, offset)
    return out


def _elementwise2(kernel, name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: shapes differ {tuple(a.shape)} and {tuple(b.shape)}")
    out = empty(a.shape, a.dtype)
    config.launched(name)
    with config.timed(name):
        kernel[flat_grid(out.size)](a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
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
    config.launched("swap01")
    with config.timed("swap01"):
        _swap01[flat_grid(out.size)](src, out)
    return out


@cuda.jit
def _loop_order(src, lengths, dst, zero):
    """dst[i, b] = src[lengths[b] - 1 - i, b] for i < lengths[b], `zero` past it (every element
    written; `zero` is typed as the arrays: no f64 in float32)."""
    T, B, F = src.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        i = e // (B * F)
        r = e - i * (B * F)
        b = r // F
        k = r - b * F
        if i < lengths[b]:
            dst[i, b, k] = src[lengths[b] - 1 - i, b, k]
        else:
            dst[i, b, k] = zero


def loop_order(a, lengths, out=None):
    """(T, B, n) in time order -> the loop order of a reversed run: row i of sequence b is
    a[lengths[b] - 1 - i, b], zero past its length (into `out`, or a new device array; the map is
    its own inverse). One launch."""
    if out is None:
        out = empty(a.shape, a.dtype)
    config.launched("loop_order")
    with config.timed("loop_order"):
        _loop_order[flat_grid(a.size)](a, lengths, out, np.dtype(a.dtype).type(0))
    return out
