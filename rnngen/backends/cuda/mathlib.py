"""The CUDA math library every generated CUDA module imports: numerically stable pointwise
functions and the 2x2 register tile of the persistent kernels' GEMM slices, as device functions
inlined into the kernels.

numba-cuda compiles a kernel on its first launch, from the current source of these functions; the
bytes of this file are in the sha256 of every generated module all the same (as for the CPU math
library, whose kernels Numba caches), so that `rnngen build --check` sees a change here.
"""
import math

from .compat import import_cuda

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


@cuda.jit(device=True, inline="always")
def tile(v0, v1, w0, w1, n, zero):
    """The 2x2 register tile of a GEMM slice: the dot products of input rows v0, v1 with weight
    vectors w0, w1 over k < n, as (v0.w0, v0.w1, v1.w0, v1.w1). A while loop: Numba's range() loop
    compiles to ~20 integer instructions per iteration."""
    a00 = zero
    a01 = zero
    a10 = zero
    a11 = zero
    k = 0
    while k < n:
        x0 = v0[k]
        x1 = v1[k]
        y0 = w0[k]
        y1 = w1[k]
        a00 += x0 * y0
        a01 += x0 * y1
        a10 += x1 * y0
        a11 += x1 * y1
        k += 1
    return a00, a01, a10, a11
