"""Block-diagonal (heads) weights on the device, for the generated CUDA modules: the weight's
gradient from the diagonal blocks of one dense GEMM after the loop (the persistent kernels read
the weight itself, each head's slice: slices.py).

A head's weight W[n] (gates*DH, DH) holds, at row g*DH + d, gate g's weights of unit n*DH + d over
the head's inputs n*DH .. (n+1)*DH - 1; in the dense matrix that is row g*H + n*DH + d.
"""
from . import config, elementwise, gemm, workspace

cuda = config.cuda


@cuda.jit
def _blocks(dense, out):
    heads, rows, DH = out.shape
    H = heads * DH
    for e in range(cuda.grid(1), heads * rows * DH, cuda.gridsize(1)):
        n = e // (rows * DH)
        r = e - n * (rows * DH)
        i = r // DH
        k = r - i * DH
        g = i // DH
        out[n, i, k] = dense[g * H + n * DH + i - g * DH, n * DH + k]


def weight_grad(d, v, heads, out=None, tag=None):
    """The gradient of a (heads, gates*DH, DH) weight from d (R, gates*H) and its input v (R, H):
    the diagonal blocks of d.T @ v (into `out`, or a new array; the dense product in the
    workspace `tag`, or a new array)."""
    full = None if tag is None else workspace.scratch(tag, (d.shape[1], v.shape[1]), d.dtype)
    full = gemm.gemm(d, v, full, trans_a=True)
    GH, H = full.shape
    DH = H // heads
    if out is None:
        out = elementwise.empty((heads, GH // heads, DH), full.dtype)
    config.launched("heads_blocks")
    with config.timed("heads_blocks"):
        _blocks[elementwise.flat_grid(out.size)](full, out)
    return out
