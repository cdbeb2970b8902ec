"""The wrappers' operations outside the time loops as Numba functions, for the compiled entries
of a small call (entry.py: the modules' _forward_entry and _backward_entry): the hoisted input
product x @ W.T, the weight gradients dZ.T @ v, the input gradient dZ @ W, a bias gradient (the
column sum) and the loop order of a reversed run. mathlib exports them as entry_matmul,
entry_matmul_tn, entry_column_sum and entry_loop_order; the wrapper's Python lines for a large
call use host_gemm.matmul, matmul_tn, mathlib.column_sum and loop_order in their place
(mathlib.loop_order with `reorder` from here, into an array numpy allocates).

The products run on rnngen's own panels (stepgemm.py) at every size: called from compiled code
they cost no Python (host_gemm.MIN_PANEL_WORK, below which the Python wrapper goes to BLAS,
is the panels' Python-side cost). Each out[m, n] is the panels' sum over k in order, so an entry
gives the same products, bit for bit, as the Python wrapper where that uses the panels; BLAS's
differ from them by rounding (~1e-7 relative in float32). The column sum adds the rows in order,
where mathlib.column_sum's BLAS product adds them in its blocked order."""
import numpy as np
from numba import njit

from .numba_cache import register
from .stepgemm import gemm_panels, gemm_panels_tn, panels

register()


@njit(cache=True, nogil=True)
def matmul(a, b):
    """a (M, K) @ b (K, N), any layouts (b may be a transposed view)."""
    M, K = a.shape
    if K == 0:      # (no module passes it) the panels' blocks run over k: no block, nothing stored
        return np.zeros((M, b.shape[1]), a.dtype)
    out = np.empty((M, b.shape[1]), a.dtype)
    gemm_panels(np.ascontiguousarray(a), panels(b), out)
    return out


@njit(cache=True, nogil=True)
def matmul_tn(a, b):
    """a.T @ b for a (R, M) and b (R, N), the rows (time steps and batch rows) first."""
    R, M = a.shape
    if R == 0:
        return np.zeros((M, b.shape[1]), a.dtype)
    out = np.empty((M, b.shape[1]), a.dtype)
    gemm_panels_tn(np.ascontiguousarray(a), panels(b), out)
    return out


@njit(cache=True, nogil=True)
def column_sum(a):
    """The sum of the rows of a (R, n), added in order: a bias gradient."""
    out = np.zeros(a.shape[1], a.dtype)
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[r, j]
    return out


@njit(cache=True, nogil=True)
def reorder(a, lengths, out):
    """out[i, b] = a[lengths[b] - 1 - i, b] for i < lengths[b] (out's other rows are left as they are)."""
    for b in range(a.shape[1]):
        for i in range(lengths[b]):
            out[i, b] = a[lengths[b] - 1 - i, b]


@njit(cache=True, nogil=True)
def loop_order(a, lengths):
    """mathlib.loop_order: (T, B, n) in time order -> the loop order of a reversed run, zero past
    each sequence's length (its own inverse)."""
    out = np.zeros_like(a)
    reorder(a, lengths, out)
    return out
