"""The CPU math library every generated CPU module imports: numerically stable pointwise functions
(exact for float32 and float64 alike) and the loop-order permutation of a reversed run.

Written in branch-free arithmetic so that LLVM vectorizes the fused gate loops: a call to
math.exp/math.tanh is a scalar libm call (~25 ns) that stops the loop from vectorizing.

Loop remainders: a fused loop over j runs H // W vector iterations (W = 8 or 16 lanes) and then, by
LLVM's default, the H % W elements left one by one, each at the cost of a whole vector iteration
(~50 ns for an LSTM element). At import this module sets LLVM's option
`-epilogue-vectorization-force-VF=4` (Numba has no per-function LLVM options, so it holds for
every loop Numba compiles in this process afterwards): the remainder runs 4 lanes at a time. It
changes how loops are vectorized, not what they compute (bit-identical results); at H = 5 an LSTM
element costs ~22 ns instead of ~50.

Numba's cache (cache=True) of a generated kernel is checked against the timestamp of the kernel's
own file only, not of the functions it calls here. The bytes of this file therefore go into the
sha256 in the header of every generated module (rnngen/compiler/driver.py): a change here changes
every generated file, which `rnngen build` rewrites, and that invalidates their cached kernels.
"""
import math

import numpy as np
from numba import float32, njit

from .numba_cache import register
from .pointers import at  # noqa: F401  (the kernels' _at)
from .stepgemm import gemm_panels, panels  # noqa: F401  (the kernels' per-step GEMM; panels: older modules)
from .host_gemm import matmul, matmul_tn, panels_of  # noqa: F401  (the wrappers' GEMMs, the loops' packed weights)
from .input_chunks import chunk_steps, gather_steps, steps_rows  # noqa: F401  (the inference loop's input GEMMs)
from .entry_ops import column_sum as entry_column_sum, loop_order as entry_loop_order  # noqa: F401
from .entry_ops import matmul as entry_matmul, matmul_tn as entry_matmul_tn, reorder  # noqa: F401  (the entries')

register()      # before the decorators below: an installed rnngen caches them in a per-user folder


#: how the pointwise functions compile: numpy's error model (no zero-division branch, so the
#: loops vectorize) and floating-point contraction, a*b + c as one fused multiply-add (FMA), which
#: rounds once instead of twice: about half the instructions of a polynomial (inference forward
#: 0.84-0.96x, `python benchmarks/probes/modules_before_after.py --before 7458b38`); results stay
#: within a few ulp, as tests/backends/cpu/test_cpu_mathlib.py checks.
#: Nothing is reassociated. The generated loops compile with the same two options.
pointwise = njit(cache=True, error_model="numpy", fastmath={"contract"})


def vectorize_loop_remainders():
    """LLVM's epilogue vectorization at 4 lanes for the loops compiled from now on (see above)."""
    import llvmlite.binding as llvm
    llvm.set_option("rnngen", "-epilogue-vectorization-force-VF=4")


vectorize_loop_remainders()


@pointwise
def exp_neg(v):
    """exp(v) for v <= 0: v = k*ln2 + r with |r| <= ln2/2, exp(r) by a Cephes polynomial (float32)
    or rational (float64) form, times 2**k built from exponent bits in two factors, so that results
    down to the smallest subnormal stay correct (relative error a few ulp)."""
    f = type(v)
    if isinstance(v, float32):
        w = max(v, f(-104))
        k = np.floor(w * f(1.44269504088896341) + f(0.5))
        r = w - k * f(0.693359375) + k * f(2.12194440e-4)
        p = (((((f(1.9875691500e-4) * r + f(1.3981999507e-3)) * r + f(8.3334519073e-3)) * r
              + f(4.1665795894e-2)) * r + f(1.6666665459e-1)) * r + f(5.0000001201e-1)) * (r * r) + r + f(1)
        k1 = np.int32(k) >> 1
        k2 = np.int32(k) - k1
        return (p * np.int32((k1 + 127) << 23).view(np.float32)
                * np.int32((k2 + 127) << 23).view(np.float32))
    w = max(v, f(-745.2))
    k = np.floor(w * f(1.4426950408889634073599) + f(0.5))
    r = w - k * f(6.93145751953125e-1) - k * f(1.42860682030941723212e-6)
    rr = r * r
    pr = r * ((f(1.26177193074810590878e-4) * rr + f(3.02994407707441961300e-2)) * rr
              + f(9.99999999999999999910e-1))
    qr = ((f(3.00198505138664455042e-6) * rr + f(2.52448340349684104192e-3)) * rr
          + f(2.27265548208155028766e-1)) * rr + f(2.00000000000000000009e0)
    p = f(1) + f(2) * pr / (qr - pr)
    k1 = np.int64(k) >> 1
    k2 = np.int64(k) - k1
    return (p * np.int64((k1 + 1023) << 52).view(np.float64)
            * np.int64((k2 + 1023) << 52).view(np.float64))


@pointwise
def sigmoid(v):
    # 1 / (1 + exp(-v)) for v >= 0, exp(v) / (1 + exp(v)) below: no overflow, full relative accuracy
    one = type(v)(1)
    e = exp_neg(-abs(v))
    r = one / (one + e)
    return r if v >= 0 else e * r


@pointwise
def tanh(v):
    # |v| >= 0.625: (1 - e) / (1 + e) with e = exp(-2|v|) (no overflow, no cancellation);
    # below, an odd polynomial (float32) or rational (float64) form keeps relative accuracy near 0.
    # Both are computed and one is selected, so the loop has no branch.
    f = type(v)
    a = abs(v)
    e = exp_neg(f(-2) * a)
    big = (f(1) - e) / (f(1) + e)
    big = big if v >= 0 else -big
    s = v * v
    if isinstance(v, float32):
        small = ((((f(-5.70498872745e-3) * s + f(2.06390887954e-2)) * s - f(5.37397155531e-2)) * s
                  + f(1.33314422036e-1)) * s - f(3.33332819422e-1)) * s * v + v
    else:
        small = v + v * s * (((f(-9.64399179425052238628e-1) * s - f(9.92877231001918586564e1)) * s
                              - f(1.61468768441708447952e3))
                             / (((s + f(1.12811678491632931402e2)) * s + f(2.23548839060100448583e3)) * s
                                + f(4.84406305325125486048e3)))
    return small if a < f(0.625) else big


@pointwise
def relu(v):
    zero = type(v)(0)
    return v if v > zero else zero


@pointwise
def step(v):
    return type(v)(1) if v > 0 else type(v)(0)


@pointwise
def softplus(v):
    zero = type(v)(0)
    return max(v, zero) + math.log1p(math.exp(-abs(v)))


@pointwise
def log1p_unit(u):
    """log(1 + u) for 0 <= u <= 1 without a libm call (so that a loop using it vectorizes):
    w = 1 + u, halved when above sqrt(2) (adding ln 2), log w = 2 atanh(s) with s = (w - 1)/(w + 1),
    |s| <= 0.172, by its series (float32: to s^10, float64: to s^20); times u / (w - 1), which
    undoes the rounding of 1 + u (u itself when 1 + u rounds to 1). Relative error a few ulp."""
    f = type(u)
    one = f(1)
    w = one + u
    big = w > f(1.4142135623730951)
    wr = w * f(0.5) if big else w
    k = f(0.6931471805599453) if big else f(0)
    s = (wr - one) / (wr + one)
    z = s * s
    if isinstance(u, float32):
        p = f(1) + z * (f(1 / 3) + z * (f(1 / 5) + z * (f(1 / 7) + z * (f(1 / 9) + z * f(1 / 11)))))
    else:
        p = f(1 / 19) + z * f(1 / 21)
        p = f(1 / 15) + z * (f(1 / 17) + z * p)
        p = f(1 / 11) + z * (f(1 / 13) + z * p)
        p = f(1 / 7) + z * (f(1 / 9) + z * p)
        p = f(1) + z * (f(1 / 3) + z * (f(1 / 5) + z * p))
    log_w = k + f(2) * s * p
    d = w - one
    return u if d == 0 else log_w * (u / d)


@pointwise
def log_sigmoid(v):
    # log(1 / (1 + exp(-v))) = min(v, 0) - log(1 + exp(-|v|)): exp of a non-positive argument only,
    # and no libm call (the fused loops vectorize)
    zero = type(v)(0)
    return min(v, zero) - log1p_unit(exp_neg(-abs(v)))


@pointwise
def maximum(a, b):
    # the larger argument, the first on a tie (the derivative rnngen takes goes to the same one)
    return a if a >= b else b


@pointwise
def exp_nonpositive(v):
    # exp(v) for v <= 0 (v - max(v, w), the sLSTM stabiliser): never overflows; a positive v
    # (which the spec's form rules out) is clamped to 0
    return exp_neg(min(v, type(v)(0)))


#: the calls whose passes run as one compiled call each (entry.py, the modules' _infer_entry,
#: _forward_entry and _backward_entry): T * B * H below ONE_CALL_WORK (where the wrapper's Python
#: costs about what the loop does; the runtime's MIN_WORK, below which a call is serial, is the
#: same, tests/runtime/test_schedule.py) and weights of (I + H) * H per gate matrix at most
#: ONE_CALL_WEIGHTS (Numba's allocation of their packed copy gets no huge pages)
ONE_CALL_WORK = 1 << 15
ONE_CALL_WEIGHTS = 1 << 16


def one_call(T, B, I, H):
    """Whether a forward (with or without need_grad) or backward over (T, B, I) with H units runs
    as one compiled call."""
    return T * B * H < ONE_CALL_WORK and (I + H) * H <= ONE_CALL_WEIGHTS


def column_sum(a):
    """The sum of the rows of a (R, n): a bias gradient, as a matrix-vector product through BLAS,
    faster than numpy's a.sum(axis=0) (`python benchmarks/probes/column_sum.py`, 2026-12-03, the
    2-core KVM guest of BENCHMARKS.md, load 0.7, BLAS at its default threads: 0.71x at (100, 20),
    0.18-0.33x at (8192, 512) and (6400, 2048)); the rows are added in BLAS's blocked order
    instead of numpy's, equal to ~1e-6 of the sum.
    """
    return np.ones(a.shape[0], a.dtype) @ a


def head_weight_grad(d, v, heads):
    """The gradient of a block-diagonal weight (heads, gates*DH, DH): for head n, the rows of d
    (R, gates*H) at columns g*H + n*DH + i (gate g, unit i of the head) times the head's inputs
    v[:, n*DH:(n+1)*DH] (R, H), summed over the R rows: `heads` batched GEMMs (numpy, after the loop)."""
    R, H = v.shape
    gates, DH = d.shape[1] // H, H // heads
    dh = d.reshape(R, gates, heads, DH).transpose(2, 1, 3, 0).reshape(heads, gates * DH, R)
    return dh @ v.reshape(R, heads, DH).transpose(1, 0, 2)


def loop_order(a, lengths):
    """(T, B, n) in time order -> the loop order of a reversed run: row i of sequence b is
    a[lengths[b] - 1 - i, b], zero past its length. The map is its own inverse. The result is
    allocated by numpy (huge pages for a large one, see host_gemm.packed); entry_loop_order is the
    compiled entries' (entry_ops.py)."""
    out = np.zeros_like(a)
    reorder(a, lengths, out)
    return out
