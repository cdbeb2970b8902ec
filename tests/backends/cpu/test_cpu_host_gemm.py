"""The wrappers' large GEMMs (rnngen/backends/cpu/host_gemm.py): rnngen's panels against numpy in
float64, the rule that picks them over BLAS, and whole modules run through either path."""
import numpy as np
import pytest

import rnngen
from helpers import numeric_gradient, random_problem, without_entries
from rnngen.backends.cpu import host_gemm
from rnngen.backends.cpu.host_gemm import packed, panel_product
from rnngen.backends.cpu.stepgemm import KC, MC, gemm_panels, gemm_panels_tn, panels

SHAPES = [(1, 1, 1), (7, 3, 20), (33, 129, 65), (MC + 9, KC + 3, 40), (300, 2 * KC + 1, 33)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_the_panels_give_the_products(dtype, M, K, N):
    rng = np.random.default_rng(M + K + N)
    a, w = rng.standard_normal((M, K)), rng.standard_normal((N, K))
    v = rng.standard_normal((K, N))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.sqrt(K)
    got = panel_product(a.astype(dtype), w.astype(dtype).T)          # x @ W.T (W.T a transposed view)
    assert got.dtype == dtype and got.shape == (M, N)
    np.testing.assert_allclose(got, a @ w.T, atol=tol * scale, rtol=tol)
    got = panel_product(a.T.copy().astype(dtype), v.astype(dtype), tn=True)   # dZ.T @ v, dZ (K, M) read in place
    np.testing.assert_allclose(got, a @ v, atol=tol * scale, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_is_panels(dtype):
    w = np.random.default_rng(2).standard_normal((37, 75)).astype(dtype)
    for v in (w, w.T, w[:, ::3]):
        np.testing.assert_array_equal(packed(v), panels(v))


def test_the_transposed_operand_gives_the_same_sums():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2 * KC + 5, 70)).astype(np.float32)      # K = 517 rows, M = 70
    p = panels(rng.standard_normal((2 * KC + 5, 45)).astype(np.float32))
    tn, nn = np.empty((70, 45), np.float32), np.empty((70, 45), np.float32)
    gemm_panels_tn(a, p, tn)
    gemm_panels(np.ascontiguousarray(a.T), p, nn)
    np.testing.assert_array_equal(tn, nn)


def _lib(api="openblas", arch="Haswell", user_api="blas"):
    return {"user_api": user_api, "internal_api": api, "architecture": arch}


@pytest.mark.parametrize("avx512,libs,expected", [
    (True, [_lib()], True),                                    # AVX-512 CPU, OpenBLAS on its AVX2 kernel
    (True, [_lib(arch="Zen"), _lib(arch="Haswell")], True),
    (True, [_lib(arch="SkylakeX")], False),                    # BLAS uses AVX-512 itself
    (True, [_lib(arch="SapphireRapids")], False),
    (True, [_lib(), _lib(arch="Cooperlake")], False),
    (False, [_lib()], False),                                  # no AVX-512: BLAS
    (True, [_lib(api="mkl", arch=None)], False),               # another BLAS: BLAS
    (True, [_lib(arch=None)], False),                          # a kernel threadpoolctl cannot name
    (True, [], False),
    (True, [_lib(api="openmp", user_api="openmp", arch=None), _lib()], True),   # not a BLAS: not counted
])
def test_the_rule_that_picks_the_panels(avx512, libs, expected):
    assert host_gemm.panels_beat_blas(avx512, libs) is expected


def test_small_products_go_to_blas(monkeypatch):
    monkeypatch.setattr(host_gemm, "PANELS", True)
    calls = []
    real = host_gemm.panel_product
    monkeypatch.setattr(host_gemm, "panel_product", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    rng = np.random.default_rng(3)
    small, big, v = rng.standard_normal((100, 3)), rng.standard_normal((512, 64)), rng.standard_normal((20, 3))
    np.testing.assert_allclose(host_gemm.matmul(small, v.T), small @ v.T, rtol=1e-12, atol=1e-12)
    assert calls == []                                          # 100 * 3 * 20 < MIN_PANEL_WORK: BLAS
    w = rng.standard_normal((64, 64))
    np.testing.assert_allclose(host_gemm.matmul(big, w), big @ w, rtol=1e-12, atol=1e-12)
    assert calls == [(512, 64)]                                  # 512 * 64 * 64 = 2**21: the panels


@pytest.mark.parametrize("panels_on", [False, True])
def test_shapes_that_do_not_agree_are_numpys_error(panels_on, monkeypatch):
    monkeypatch.setattr(host_gemm, "PANELS", panels_on)
    monkeypatch.setattr(host_gemm, "MIN_PANEL_WORK", 0)
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError):
        host_gemm.matmul(rng.standard_normal((64, 20)), rng.standard_normal((21, 30)))
    with pytest.raises(ValueError):
        host_gemm.matmul_tn(rng.standard_normal((64, 20)), rng.standard_normal((63, 30)))


@pytest.mark.parametrize("panels_on", [False, True])
def test_matmul_is_the_product_either_way(panels_on, monkeypatch):
    monkeypatch.setattr(host_gemm, "PANELS", panels_on)
    monkeypatch.setattr(host_gemm, "MIN_PANEL_WORK", 0)
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((50, 20)), rng.standard_normal((30, 20)), rng.standard_normal((50, 9))
    np.testing.assert_allclose(host_gemm.matmul(a, b.T), a @ b.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host_gemm.matmul_tn(a, c), a.T @ c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host_gemm.matmul(a[:, ::2], b[:, ::2].T), a[:, ::2] @ b[:, ::2].T, rtol=1e-12)


def _run(m, x, params, state0, lengths, reverse, wy):
    y, final, saved = m.forward(x, params, state0, lengths, reverse)
    return y, final, m.backward(wy, None, saved)


@pytest.mark.parametrize("name", rnngen.available())
def test_modules_agree_through_blas_and_panels(name, monkeypatch):
    monkeypatch.setattr(host_gemm, "MIN_PANEL_WORK", 0)                 # the test's small products too
    m = rnngen.load(name)
    without_entries(monkeypatch, m)                             # the wrappers' own products
    rng = np.random.default_rng(4)
    out, calls = {}, []
    real = host_gemm.panel_product                               # count the calls that take the panels
    monkeypatch.setattr(host_gemm, "panel_product", lambda *a, **k: calls.append(1) or real(*a, **k))
    for dtype in (np.float32, np.float64):
        x, params, state0 = random_problem(m, T=6, B=5, I=7, H=9, dtype=dtype, seed=2)
        y0 = m.forward(x, params, state0)[0]
        wy = rng.standard_normal(y0.shape).astype(dtype)
        for on in (False, True):
            monkeypatch.setattr(host_gemm, "PANELS", on)
            before = len(calls)
            out[on] = _run(m, x, params, state0, np.array([6, 2, 0, 5, 6]), True, wy)
            assert (len(calls) > before) == on
        tol = 2e-5 if dtype == np.float32 else 1e-12
        (y_b, f_b, (dx_b, ds_b, dp_b)), (y_p, f_p, (dx_p, ds_p, dp_p)) = out[False], out[True]
        np.testing.assert_allclose(y_p, y_b, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx_p, dx_b, rtol=tol, atol=tol)
        for k in dp_b:
            np.testing.assert_allclose(dp_p[k], dp_b[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "lstm_proj"])
def test_gradients_through_the_panels_match_finite_differences(name, monkeypatch):
    monkeypatch.setattr(host_gemm, "PANELS", True)
    monkeypatch.setattr(host_gemm, "MIN_PANEL_WORK", 0)
    m = rnngen.load(name)
    without_entries(monkeypatch, m)
    x, params, state0 = random_problem(m, T=4, B=3, H=3, seed=5)
    lengths = np.array([4, 1, 3])
    y, _, saved = m.forward(x, params, state0, lengths, True)
    wy = np.random.default_rng(6).standard_normal(y.shape)

    def loss():
        return float((m.forward(x, params, state0, lengths, True)[0] * wy).sum())

    dx, _, d_params = m.backward(wy, None, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, p in params.items():
        np.testing.assert_allclose(d_params[k], numeric_gradient(loss, p), atol=1e-7, rtol=1e-6, err_msg=k)


def test_shared_panels_pack_each_weight_once_for_all_slices(monkeypatch):
    import threading
    calls = []
    real = host_gemm.packed
    monkeypatch.setattr(host_gemm, "packed", lambda w: calls.append(w.shape) or real(w))
    shared = host_gemm.SharedPanels()
    big = np.random.default_rng(0).standard_normal((600, 512))            # 2.4 MB: shared
    small = np.random.default_rng(1).standard_normal((20, 30))              # each slice its own
    got = []
    threads = [threading.Thread(target=lambda: got.append(
        (host_gemm.panels_of(shared, "panels_hh", big.T), host_gemm.panels_of(shared, "panels_x", small)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.count((512, 600)) == 1 and calls.count((20, 30)) == 4
    assert all(g[0] is got[0][0] for g in got)
    np.testing.assert_array_equal(got[0][0], panels(big.T))
    np.testing.assert_array_equal(got[0][1], panels(small))
    assert host_gemm.panels_of(None, "panels_hh", big.T) is not got[0][0]      # no sharing without a SharedPanels
