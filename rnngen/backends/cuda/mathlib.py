"""The CUDA math library every generated CUDA module imports: numerically stable pointwise
functions and the register tiles and warp sums of the persistent kernels' GEMM slices, as device functions
inlined into the kernels.

numba-cuda compiles a kernel on its first launch, from the current source of these functions; the
bytes of this file are in the sha256 of every generated module all the same (as for the CPU math
library, whose kernels Numba caches), so that `rnngen build --check` sees a change here.
"""
import math

import numpy as np

from . import simwarp
from .compat import import_cuda, simulator_enabled

cuda = import_cuda()          # numba.cuda, after the numpy 2.5 shim numba-cuda 0.30.4 needs


@cuda.jit(device=True, inline="always")
def sigmoid(v):
    one = type(v)(1)
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@cuda.jit(device=True, inline="always")
def tanh(v):
    # tanh|v| = -m / (2 + m) with m = expm1(-2|v|): no overflow, full relative accuracy near 0
    two = type(v)(2)
    m = math.expm1(-two * abs(v))
    r = -m / (two + m)
    return r if v >= 0 else -r


@cuda.jit(device=True, inline="always")
def relu(v):
    zero = type(v)(0)
    return v if v > zero else zero


@cuda.jit(device=True, inline="always")
def step(v):
    return type(v)(1) if v > 0 else type(v)(0)


@cuda.jit(device=True, inline="always")
def softplus(v):
    zero = type(v)(0)
    return max(v, zero) + math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True, inline="always")
def log_sigmoid(v):
    # min(v, 0) - log(1 + exp(-|v|)): exp of a non-positive argument only
    zero = type(v)(0)
    return min(v, zero) - math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True, inline="always")
def maximum(a, b):
    # the larger argument, the first on a tie (the derivative rnngen takes goes to the same one)
    return a if a >= b else b


@cuda.jit(device=True, inline="always")
def exp_nonpositive(v):
    # exp(v) for v <= 0 (v - max(v, w), the sLSTM stabiliser); a positive v is clamped to 0
    return math.exp(min(v, type(v)(0)))


# -- the GEMM slices of the persistent kernels: lanes over k, warp-shuffle sums -------------------
FULL_MASK = np.uint32(0xFFFFFFFF)      # every lane of the warp takes part in the shuffles


@cuda.jit(device=True, inline="always")
def lane_tile(v0, v1, w0, w1, w2, w3, n, lane, lanes, zero):
    """One lane's part of a 2x4 register tile of a GEMM slice: the dot products of input rows v0,
    v1 with weight vectors w0..w3 over k = lane, lane + lanes, ... < n, as (v0.w0, v0.w1, v0.w2,
    v0.w3, v1.w0, ..., v1.w3). Consecutive lanes read consecutive k: one coalesced load per input
    row and warp, conflict-free shared-memory loads of the weights. A while loop: Numba's range()
    loop compiles to ~20 integer instructions per iteration."""
    a00 = zero
    a01 = zero
    a02 = zero
    a03 = zero
    a10 = zero
    a11 = zero
    a12 = zero
    a13 = zero
    k = lane
    while k < n:
        x0 = v0[k]
        x1 = v1[k]
        y0 = w0[k]
        y1 = w1[k]
        y2 = w2[k]
        y3 = w3[k]
        a00 += x0 * y0
        a01 += x0 * y1
        a02 += x0 * y2
        a03 += x0 * y3
        a10 += x1 * y0
        a11 += x1 * y1
        a12 += x1 * y2
        a13 += x1 * y3
        k += lanes
    return a00, a01, a02, a03, a10, a11, a12, a13


@cuda.jit(device=True, inline="always")
def lane_tile_heads(v0, v1, w0, w1, w2, w3, o0, o1, o2, o3, n, lane, lanes, zero):
    """lane_tile for a block-diagonal (heads) weight: weight vector w_c (a row of its head, n
    long) against the input rows at its head's offset o_c (v0[o_c + k], v1[o_c + k]); the tile's
    four columns may lie in different heads."""
    a00 = zero
    a01 = zero
    a02 = zero
    a03 = zero
    a10 = zero
    a11 = zero
    a12 = zero
    a13 = zero
    k = lane
    while k < n:
        y0 = w0[k]
        y1 = w1[k]
        y2 = w2[k]
        y3 = w3[k]
        a00 += v0[o0 + k] * y0
        a01 += v0[o1 + k] * y1
        a02 += v0[o2 + k] * y2
        a03 += v0[o3 + k] * y3
        a10 += v1[o0 + k] * y0
        a11 += v1[o1 + k] * y1
        a12 += v1[o2 + k] * y2
        a13 += v1[o3 + k] * y3
        k += lanes
    return a00, a01, a02, a03, a10, a11, a12, a13


@cuda.jit(device=True, inline="always")
def lane_tile_heads_t(d0, d1, w0, w1, w2, w3, o0, o1, o2, o3, gates, H, DH, lane, lanes, zero):
    """The backward tile of a block-diagonal (heads) weight: for column c (a unit of head offset
    o_c), the dot products of the gradient rows d0, d1 (gates*H long) with w_c, the unit's weight
    column in its head (gates*DH long: element g*DH + e pairs with d[g*H + o_c + e])."""
    a00 = zero
    a01 = zero
    a02 = zero
    a03 = zero
    a10 = zero
    a11 = zero
    a12 = zero
    a13 = zero
    q = lane
    while q < gates * DH:
        g = q // DH
        k = q + g * (H - DH)          # g*H + (q - g*DH)
        y0 = w0[q]
        y1 = w1[q]
        y2 = w2[q]
        y3 = w3[q]
        a00 += d0[o0 + k] * y0
        a01 += d0[o1 + k] * y1
        a02 += d0[o2 + k] * y2
        a03 += d0[o3 + k] * y3
        a10 += d1[o0 + k] * y0
        a11 += d1[o1 + k] * y1
        a12 += d1[o2 + k] * y2
        a13 += d1[o3 + k] * y3
        q += lanes
    return a00, a01, a02, a03, a10, a11, a12, a13


def _gpu_lane_sum8(p, lanes):
    """The sums over the warp's lanes of the 8 values of a lane_tile (butterfly of shfl.sync.bfly:
    every lane gets the sums, in the same fixed order: bit-reproducible)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = p
    o = lanes >> 1
    while o > 0:
        a0 += cuda.shfl_xor_sync(FULL_MASK, a0, o)
        a1 += cuda.shfl_xor_sync(FULL_MASK, a1, o)
        a2 += cuda.shfl_xor_sync(FULL_MASK, a2, o)
        a3 += cuda.shfl_xor_sync(FULL_MASK, a3, o)
        a4 += cuda.shfl_xor_sync(FULL_MASK, a4, o)
        a5 += cuda.shfl_xor_sync(FULL_MASK, a5, o)
        a6 += cuda.shfl_xor_sync(FULL_MASK, a6, o)
        a7 += cuda.shfl_xor_sync(FULL_MASK, a7, o)
        o >>= 1
    return a0, a1, a2, a3, a4, a5, a6, a7


def _gpu_lane_sum(a, lanes):
    """The sum over the warp's lanes of one value (butterfly, as _gpu_lane_sum8)."""
    o = lanes >> 1
    while o > 0:
        a += cuda.shfl_xor_sync(FULL_MASK, a, o)
        o >>= 1
    return a


def _sim_lane_sum8(p, lanes):
    return simwarp.butterfly(p, lanes)


def _sim_lane_sum(a, lanes):
    return simwarp.butterfly((a,), lanes)[0]


if simulator_enabled(cuda):      # the simulator has no shuffles: the same sums through a barrier
    lane_sum8 = cuda.jit(device=True)(_sim_lane_sum8)
    lane_sum = cuda.jit(device=True)(_sim_lane_sum)
else:
    lane_sum8 = cuda.jit(device=True, inline="always")(_gpu_lane_sum8)
    lane_sum = cuda.jit(device=True, inline="always")(_gpu_lane_sum)
