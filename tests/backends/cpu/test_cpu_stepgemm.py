"""The per-step GEMM on packed weights (rnngen/backends/cpu/stepgemm.py) against numpy in float64."""
import numpy as np
import pytest

from rnngen.backends.cpu import stepgemm
from rnngen.backends.cpu.stepgemm import KC, gemm_panels, panels

SHAPES = [(1, 1, 1), (5, 5, 20), (10, 3, 20), (7, 128, 512), (8, 128, 512), (9, 128, 512), (16, 128, 512),
          (3, 40, 31), (3, 40, 33), (13, 100, 400), (17, KC, 64), (4, KC + 1, 64), (6, 2 * KC + 37, 48),
          (32, 512, 128), (2, 2048, 40)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, K, N", SHAPES)
def test_gemm_panels_is_the_product(dtype, M, K, N):
    rng = np.random.default_rng(M * 1000 + K + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)      # a weight (N, K): the forward multiplies by w.T
    out = np.full((M, N), np.nan, dtype)
    gemm_panels(a, panels(w.T), out)
    ref = a.astype(np.float64) @ w.T.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(w.T).astype(np.float64)   # the sum of |terms|
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(out - ref) <= 4 * K * eps * scale + 1e-30)
    # the adjoint's operand: a (M, N) @ w (N, K)
    d = rng.standard_normal((M, N)).astype(dtype)
    dv = np.full((M, K), np.nan, dtype)
    gemm_panels(d, panels(w), dv)
    ref = d.astype(np.float64) @ w.astype(np.float64)
    scale = np.abs(d).astype(np.float64) @ np.abs(w).astype(np.float64)
    assert np.all(np.abs(dv - ref) <= 4 * N * eps * scale + 1e-30)


def test_panels_layout():
    w = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)     # K = 3, N = 40: two panels of 32 columns
    p = panels(w)
    NR = stepgemm.NV * stepgemm.lanes(np.float32)
    assert NR == 32 and p.shape == (2, 3, 32) and p.dtype == np.float32
    assert np.array_equal(p[0], w[:, :32]) and np.array_equal(p[1, :, :8], w[:, 32:])
    assert not p[1, :, 8:].any()                                 # the padding is zero
    assert panels(np.ones((5, 20))).shape == (2, 5, 16)          # float64: 16 columns a panel


def test_rows_do_not_depend_on_the_tiling():
    """A row's result is the same whatever rows come with it (a batch slice is bit-identical)."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((29, 300)).astype(np.float32)
    p = panels(rng.standard_normal((300, 70)).astype(np.float32))
    whole = np.empty((29, 70), np.float32)
    gemm_panels(a, p, whole)
    for lo, hi in ((0, 1), (0, 13), (13, 29), (5, 6), (3, 27)):
        part = np.empty((hi - lo, 70), np.float32)
        gemm_panels(np.ascontiguousarray(a[lo:hi]), p, part)
        assert np.array_equal(part, whole[lo:hi])

