"""Elementwise device kernels the generated CUDA modules call outside their persistent kernels."""
from ... import cuda_runtime as rt
from ...cuda_compat import import_cuda

cuda = import_cuda()          # numba.cuda, after the numpy 2.5 shim numba-cuda 0.30.4 needs


@cuda.jit
def _loop_order(src, lengths, dst):
    """dst[i, b] = src[lengths[b] - 1 - i, b] for i < lengths[b] (dst starts as zeros)."""
    T, B, F = src.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        i = e // (B * F)
        r = e - i * (B * F)
        b = r // F
        k = r - b * F
        if i < lengths[b]:
            dst[i, b, k] = src[lengths[b] - 1 - i, b, k]


def loop_order(a, lengths):
    """(T, B, n) in time order -> the loop order of a reversed run: row i of sequence b is
    a[lengths[b] - 1 - i, b], zero past its length (a new device array; the map is its own inverse)."""
    out = rt.zeros(a.shape, a.dtype)
    if rt.SIMULATOR:      # each simulated thread costs ~1 ms: a few threads, grid-stride loops
        grid = 1, max(1, min(a.size, rt.SIM_THREADS))
    else:
        grid = max(1, min((a.size + 255) // 256, 4096)), 256
    _loop_order[grid](a, lengths, out)
    return out
