"""The training forward and the backward of a small call in one compiled call each
(rnngen/backends/cpu/entry.py, the modules' _forward_entry and _backward_entry): the same results
as the wrapper's own Python lines, bit for bit where those run the same products (the panels,
rows added in order), for every built-in cell that has them; used exactly for the calls
mathlib.one_call admits without shared panels; none for the cells whose lines read their masks
(at rate 0 they run entries of the kernels without them), no backward entry for a
block-diagonal weight's head GEMMs. The float64 finite-difference checks of every cell
(test_cpu_gradients.py) run at sizes one_call admits, so through these entries."""
import itertools

import numpy as np
import pytest

import rnngen
from helpers import without_entries
from rnngen.backends.cpu import entry_ops, host_gemm, mathlib
from rnngen.backends.cpu.entry import backward_entry, forward_entry
from rnngen.backends.cpu.host_gemm import SharedPanels

MASKED = {"lstm_vd", "lstm_weightdrop", "lstm_zoneout"}
HEADS = {"slstm"}           # the gradient of its block-diagonal weight is numpy's batched GEMMs


def _rows_in_order(a):
    """The column sum with the rows added in order, as entry_ops.column_sum adds them."""
    out = np.zeros(a.shape[1], a.dtype)
    for row in a:
        out += row
    return out


@pytest.fixture
def python_path(monkeypatch):
    """A function running `fn` on a module's Python lines, with the products the entries run
    (the panels at every size, the column sum's rows in order)."""
    monkeypatch.setattr(host_gemm, "PANELS", True)
    monkeypatch.setattr(host_gemm, "MIN_PANEL_WORK", 0)

    def run(m, fn):
        with monkeypatch.context() as patch:
            without_entries(patch, m)
            patch.setattr(m, "_column_sum", _rows_in_order, raising=False)
            return fn()
    return run


def _same(a, b):
    if isinstance(a, dict):
        assert list(a) == list(b)
        a, b = list(a.values()), list(b.values())
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        assert type(a) is type(b)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", rnngen.available())
def test_the_entries_compute_what_the_python_lines_do(cell, python_path):
    m = rnngen.load(cell)
    assert hasattr(m, "_forward_entry") == (cell not in MASKED)
    assert hasattr(m, "_backward_entry") == (cell not in MASKED | HEADS)
    if cell in MASKED:
        return
    sizes = {name: 2 for name in m.SIZES}
    cases = itertools.product((np.float32, np.float64), (False, True), ("none", "first", "last", "all"),
                              ("none", "first", "rest"))
    for dtype, reverse, given, d_given in cases:
        T, B, I, H = 6, 4, 3, 4
        params = m.init_params(I, H, dtype, 1, **sizes)
        rng = np.random.default_rng(2)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        lengths = np.array([6, 2, 0, 5], np.int64)
        finals = m.forward(x, params, None, lengths, not reverse, need_grad=False)[1]
        none = (None,) * (len(finals) - 1)
        state0 = {"none": None, "first": (finals[0],) + none, "last": none + (finals[-1],), "all": finals}[given]
        kept = None if state0 is None else [None if s is None else s.copy() for s in state0]
        y, final, saved = m.forward(x, params, state0, lengths, reverse)
        py_y, py_final, py_saved = python_path(m, lambda: m.forward(x, params, state0, lengths, reverse))
        _same((y, final), (py_y, py_final))
        assert set(vars(saved)) == set(vars(py_saved))     # (their rows past a length are never written)
        dy = rng.standard_normal(y.shape).astype(dtype)
        d_final = [rng.standard_normal(f.shape).astype(dtype) for f in final]
        d_final = {"none": None, "first": (d_final[0],) + none, "rest": (None,) + tuple(d_final[1:])}[d_given]
        d_kept = None if d_final is None else [None if d is None else d.copy() for d in d_final]
        grads = m.backward(dy, d_final, saved) if cell not in HEADS else \
            python_path(m, lambda: m.backward(dy, d_final, saved))     # from what the forward entry saved
        _same(grads, python_path(m, lambda: m.backward(dy, d_final, py_saved)))
        for given_arrays, copies in ((state0, kept), (d_final, d_kept)):   # only read
            for s, k in zip(given_arrays or (), copies or ()):
                assert s is None or np.array_equal(s, k)


@pytest.mark.parametrize("cell", ["lstm", "gru", "lstm_proj"])
def test_the_entries_products_across_the_panels_blocks(cell, python_path):
    """Sizes whose products run over more than one block of the panels (KC, MC = 256 rows)."""
    m = rnngen.load(cell)
    sizes = {name: 3 for name in m.SIZES}
    rng = np.random.default_rng(6)
    for T, B, I, H in [(3, 100, 600, 5), (2, 2, 300, 4)]:
        assert mathlib.one_call(T, B, I, H)
        params = m.init_params(I, H, np.float32, 4, **sizes)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        lengths = rng.integers(0, T + 1, B)
        y, final, saved = m.forward(x, params, None, lengths, True)
        py = python_path(m, lambda: m.forward(x, params, None, lengths, True))
        _same((y, final), py[:2])
        dy = rng.standard_normal(y.shape).astype(np.float32)
        _same(m.backward(dy, None, saved), python_path(m, lambda: m.backward(dy, None, py[2])))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "lstm_proj"])
def test_the_entries_agree_with_blas_products_and_run_from_any_saved_forward(cell):
    """Without the patch the Python lines' products of a small call go to BLAS: equal up to
    rounding. A backward entry runs on what either forward saved."""
    m = rnngen.load(cell)
    sizes = {name: 3 for name in m.SIZES}
    rng = np.random.default_rng(5)
    for T, B, I, H in [(10, 10, 3, 5), (4, 3, 40, 16), (1, 1, 1, 1)]:
        params = m.init_params(I, H, np.float32, 3, **sizes)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        y, final, saved = m.forward(x, params)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        grads = m.backward(dy, None, saved)
        with pytest.MonkeyPatch.context() as patch:
            without_entries(patch, m)
            py_y, py_final, py_saved = m.forward(x, params)
            py_grads = m.backward(dy, None, py_saved)
        grads_of_py_saved = m.backward(dy, None, py_saved)
        for a, b in [(y, py_y), *zip(final, py_final), (grads[0], py_grads[0]), *zip(grads[1], py_grads[1]),
                     *((grads[2][k], py_grads[2][k]) for k in m.PARAMS),
                     *((grads[2][k], grads_of_py_saved[2][k]) for k in m.PARAMS)]:
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_the_wrappers_call_the_entries_for_small_calls_without_shared_panels(monkeypatch):
    m = rnngen.load("lstm")
    calls = []
    for name in ("_forward_entry", "_backward_entry"):
        entry = getattr(m, name)
        monkeypatch.setattr(m, name, lambda *a, entry=entry, name=name: calls.append(name) or entry(*a))
    rng = np.random.default_rng(0)
    for (T, B, I, H), shared, used in [((10, 10, 3, 5), None, True), ((10, 10, 3, 5), SharedPanels(), False),
                                       ((64, 32, 8, 16), None, False),        # T * B * H = ONE_CALL_WORK
                                       ((2, 2, 300, 4), None, True), ((2, 2, 300, 200), None, False)]:
        assert mathlib.one_call(T, B, I, H) == (used or shared is not None)
        params = m.init_params(I, H, np.float32, 0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        calls.clear()
        y, _, saved = m.forward(x, params, shared_panels=shared)
        m.backward(np.ones_like(y), None, saved, shared_panels=shared)
        assert calls == (["_forward_entry", "_backward_entry"] if used else [])
        calls.clear()
        m.forward(x, params, need_grad=False, shared_panels=shared)
        assert calls == []
    net = rnngen.RNN("lstm", 3, 5, num_layers=2, bidirectional=True)      # rnngen.RNN's course call
    calls.clear()
    y = net.forward(rng.standard_normal((10, 10, 3)).astype(np.float32))[0]
    net.backward(np.ones_like(y))
    assert calls == ["_forward_entry"] * 4 + ["_backward_entry"] * 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_entries_operations_against_numpy(dtype):
    rng = np.random.default_rng(1)
    for R, K, N in [(100, 3, 20), (7, 40, 33), (1, 1, 1), (0, 4, 5), (6, 0, 5), (300, 270, 17)]:
        a, b = rng.standard_normal((R, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
        c = rng.standard_normal((R, N)).astype(dtype)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for got, want in [(entry_ops.matmul(a, b.T), a @ b.T), (entry_ops.matmul_tn(a, c), a.T @ c),
                          (entry_ops.column_sum(c), c.sum(axis=0))]:
            assert got.shape == want.shape and got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(K, R, 1))
        np.testing.assert_array_equal(entry_ops.column_sum(c), _rows_in_order(c) if R else np.zeros(N, dtype))
    x = rng.standard_normal((5, 3, 2)).astype(dtype)
    lengths = np.array([5, 0, 3])
    np.testing.assert_array_equal(entry_ops.loop_order(x, lengths), mathlib.loop_order(x, lengths))
    want = np.zeros_like(x)
    want[:3, 2] = x[2::-1, 2]
    want[:, 0] = x[::-1, 0]
    np.testing.assert_array_equal(entry_ops.loop_order(x, lengths), want)


@pytest.mark.parametrize("cell", ["lstm_vd", "lstm_zoneout"])
def test_a_masked_cell_at_rate_0_runs_its_entries_and_equals_lstm(cell, monkeypatch, python_path):
    """At rate 0 a masked cell runs the kernels compiled without its masks: through their entries
    for a small call, bit for bit lstm's (and its own Python lines')."""
    m, lstm = rnngen.load(cell), rnngen.load("lstm")
    assert not hasattr(m, "_forward_entry") and not hasattr(m, "_backward_entry")
    calls = []
    for name in ("_infer_entry_rate0", "_forward_entry_rate0", "_backward_entry_rate0"):
        entry = getattr(m, name)
        monkeypatch.setattr(m, name, lambda *a, entry=entry, name=name: calls.append(name) or entry(*a))
    rng = np.random.default_rng(3)
    params = lstm.init_params(3, 5, np.float32, 2)
    x = rng.standard_normal((7, 4, 3)).astype(np.float32)
    lengths = np.array([7, 0, 3, 5])
    results = []
    for mod in (m, lstm):
        y, final, saved = mod.forward(x, params, None, lengths, True)
        grads = mod.backward(np.cos(y), None, saved)
        results.append((y, final, grads, mod.forward(x, params, None, lengths, True, need_grad=False)[:2]))
    assert calls == ["_forward_entry_rate0", "_backward_entry_rate0", "_infer_entry_rate0"]
    _same(results[0], results[1])
    y, final, saved = python_path(m, lambda: m.forward(x, params, None, lengths, True))
    _same((y, final), results[0][:2])
    _same(python_path(m, lambda: m.backward(np.cos(y), None, saved)), results[0][2])


_SETUP = ['dz_hh = np.zeros((T, B, 4 * H), dtype)', 'dv_hh = np.empty((B, H), dtype)   # dv = dz @ W',
          'panels_hh_adj = _panels_of(shared_panels, "panels_hh_adj", params["weight_hh"])   # packed once per call']
_CALL = ["lengths", "reverse", "dy", "zx_ih", "dz_hh", "dv_hh", "panels_hh_adj"]
_RESULT = ['d_params["weight_ih"] = _matmul_tn(dz_hh.reshape(T * B, 4 * H), x2d)',
           'dx = _matmul(dz_hh.reshape(T * B, 4 * H), params["weight_ih"])',
           'd_params["bias"] = _column_sum(dz_hh.reshape(T * B, 4 * H))',
           'd_params["weight_hh"] = _matmul_tn(dz_hh.reshape(T * B, 4 * H), s_h[:T].reshape(T * B, proj_size))',
           'd_state0 = (d_h,)']
_PARAMS = ["weight_ih", "bias", "weight_hh"]


def test_a_backward_entry_is_the_lines_with_parameters_and_gradients_as_locals():
    e = backward_entry(_SETUP, _CALL, _RESULT, ["zx_ih", "s_h"], ("proj_size", "heads"), _PARAMS)
    assert e.args == ["dy", "d_final", "x", "lengths", "reverse", "H", "proj_size", "zx_ih", "s_h",
                      "weight_hh", "weight_ih"]
    assert e.call[-2:] == ['params["weight_hh"]', 'params["weight_ih"]']
    assert e.setup[-1] == "panels_hh_adj = _panels(weight_hh)   # packed once per call"
    assert e.result[:3] == ["grad_weight_ih = _entry_matmul_tn(dz_hh.reshape(T * B, 4 * H), x2d)",
                            "dx = _entry_matmul(dz_hh.reshape(T * B, 4 * H), weight_ih)",
                            "grad_bias = _entry_column_sum(dz_hh.reshape(T * B, 4 * H))"]
    assert e.returned == ["grad_weight_ih", "grad_bias", "grad_weight_hh"]
    assert e.loop_call == _CALL


def test_no_training_entry_for_lines_that_numba_cannot_take():
    args = (_CALL, _RESULT, ["zx_ih", "s_h"], (), _PARAMS)
    assert backward_entry(_SETUP, *args) is not None
    for extra in ('mask_m_h = masks["m_h"]', 'w = checks.drop_weight(params["weight_hh"], m)',
                  'dv = _head_weight_grad(dz_hh, s_h, 2)', 'dv = np.einsum("ij->j", dz_hh)',
                  'weight_hh = 1', 'grad_bias = 0', 'keep = saved.x',
                  'weight_ih, d_h = d_final', 'weight_hh *= 2', 'for weight_ih in (1, 2): pass',   # rebinds a parameter
                  'dv = my_params["weight_hh"]', 'w = params["np"]', 'w = params["_panels"]', 'if T:'):
        assert backward_entry(_SETUP + [extra], *args) is None, extra
    commented = backward_entry(_SETUP + ['dv = dv_hh   # not params["bias_x"] nor heads'], _CALL, _RESULT,
                               ["zx_ih", "s_h"], ("heads",), _PARAMS)
    assert "bias_x" not in commented.args and "heads" not in commented.args
    read_only = [line.replace('d_params["bias"] = ', "dbias = ") for line in _RESULT] + ['dx = d_params["bias"]']
    assert backward_entry(_SETUP, _CALL, read_only, ["zx_ih", "s_h"], (), _PARAMS) is None   # bias only read
    into_loop = backward_entry(_SETUP, _CALL + ['d_params["bias"]'], _RESULT, ["zx_ih", "s_h"], (), _PARAMS)
    assert into_loop.loop_call[-1] == "grad_bias" and "bias" not in into_loop.args
    assert backward_entry(_SETUP, _CALL, _RESULT[1:], ["zx_ih", "s_h"], (), _PARAMS) is None   # no weight_ih grad
    assert backward_entry(_SETUP, _CALL + ["masks"], *args[1:]) is None
    fwd = ['zx_ih = _matmul(x2d, params["weight_ih"].T).reshape(T, B, 4 * H)', 's_h = np.empty((T + 1, B, H), dtype)',
           's_h[0] = state0[0]']
    f = forward_entry(fwd, ["lengths", "reverse", "y", "zx_ih", "s_h"], ["final_states = (s_h[T].copy(),)"],
                      ["zx_ih", "s_h"], (), "H")
    assert f.args == ["x", "lengths", "reverse", "H", "state0", "weight_ih"]
    assert f.setup[0] == "zx_ih = _entry_matmul(x2d, weight_ih.T).reshape(T, B, 4 * H)"
    assert f.returned == ["zx_ih", "s_h"]
    assert forward_entry(fwd + ['w = checks.drop_weight(params["weight_hh"], m)'], ["lengths"], [], [], (), "H") is None
