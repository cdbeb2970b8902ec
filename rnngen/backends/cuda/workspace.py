"""Device memory of the generated CUDA modules without an allocation per call.

- `arena(dtype, *shapes)`: the arrays a call returns or keeps for backward (y, the state
  sequences, `saved`, the gradients), carved out of ONE device allocation (each view starts on a
  256-byte boundary). The views keep the allocation alive; nothing is reused, so results of
  earlier calls stay valid.
- `scratch(tag, shape, dtype)`: a workspace only the call itself uses (this step's GEMM output, the
  gradients of the pre-activations before the weight-gradient GEMMs, the accumulators of the bias
  sums): allocated on the first call with that shape and reused by later ones (the kernels write
  every element they read). Keyed by tag, shape, dtype, CUDA context and host thread, so that two
  host threads never share one; calls on one thread run in stream order, so a call cannot
  overwrite a workspace an earlier, still running call reads.
- `zeros(shape, dtype)`: a cached array of zeros that nothing writes (a state0 or d_final not given).

At most CACHED workspaces are kept (least recently used first out); `release()` drops them all.
"""
import collections
import threading

import numpy as np

from . import config, elementwise

CACHED = 64
ALIGN = 256                     # bytes: each view of an arena starts on such a boundary
_CACHE = collections.OrderedDict()


def _key(tag, shape, dtype):
    return (tag, tuple(int(s) for s in shape), np.dtype(dtype).str, config.context_id(), threading.get_ident())


def _cached(key, make):
    arr = _CACHE.get(key)
    if arr is None:
        arr = _CACHE[key] = make()
        while len(_CACHE) > CACHED:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return arr


def scratch(tag, shape, dtype):
    """A workspace of `shape` for `tag` (uninitialized on its first use; reused afterwards)."""
    return _cached(_key(tag, shape, dtype), lambda: elementwise.empty(tuple(shape), dtype))


def zeros(shape, dtype):
    """Cached zeros of `shape`: read-only by contract (the kernels only read them)."""
    return _cached(_key("zeros", shape, dtype), lambda: elementwise.zeros(tuple(shape), dtype))


def release():
    """Drop every cached workspace (their memory is freed once nothing else holds them)."""
    _CACHE.clear()


def _size(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def arena(dtype, *shapes):
    """One device allocation holding a C-contiguous array of each shape: a list of views."""
    step = max(1, ALIGN // np.dtype(dtype).itemsize)
    offsets, total = [], 0
    for shape in shapes:
        offsets.append(total)
        total += -(-_size(shape) // step) * step
    whole = elementwise.empty((max(total, 1),), dtype)
    return [whole[o:o + _size(s)].reshape(tuple(int(d) for d in s)) for o, s in zip(offsets, shapes)]
