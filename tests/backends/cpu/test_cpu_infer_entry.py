"""The inference forward of a small call in one compiled call (rnngen/backends/cpu/entry.py, the
modules' _infer_entry): the same results as the wrapper's own Python set-up and as the training
forward, bit for bit, for every built-in cell that has one; used exactly for the calls
mathlib.one_call admits without shared panels; none for the cells whose set-up reads their masks."""
import itertools

import numpy as np
import pytest

import rnngen
from rnngen.backends.cpu import mathlib
from rnngen.backends.cpu.entry import infer_entry
from rnngen.backends.cpu.host_gemm import SharedPanels

MASKED = {"lstm_vd", "lstm_weightdrop", "lstm_zoneout"}


def _same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert len(a[1]) == len(b[1])
    for u, v in zip(a[1], b[1]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("cell", rnngen.available())
def test_the_entry_computes_what_the_python_set_up_and_the_training_forward_do(cell):
    m = rnngen.load(cell)
    assert hasattr(m, "_infer_entry") == (cell not in MASKED)
    if cell in MASKED:
        return
    sizes = {name: 2 for name in m.SIZES}
    for dtype, reverse, given in itertools.product((np.float32, np.float64), (False, True), ("none", "first", "all")):
        T, B, I, H = 6, 4, 3, 4
        params = m.init_params(I, H, dtype, 1, **sizes)
        rng = np.random.default_rng(2)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        lengths = np.array([6, 2, 0, 5], np.int64)
        finals = m.forward(x, params, None, lengths, not reverse, need_grad=False)[1]
        state0 = {"none": None, "first": (finals[0],) + (None,) * (len(finals) - 1), "all": finals}[given]
        kept = None if state0 is None else [None if s is None else s.copy() for s in state0]
        entry = m.forward(x, params, state0, lengths, reverse, need_grad=False)
        _same(entry, m.forward(x, params, state0, lengths, reverse, need_grad=False, shared_panels=SharedPanels()))
        _same(entry, m.forward(x, params, state0, lengths, reverse))
        assert entry[2] is None
        if state0 is not None:                                       # only read
            for s, k in zip(state0, kept):
                assert s is None or np.array_equal(s, k)


def test_the_wrapper_calls_the_entry_for_small_calls_without_shared_panels(monkeypatch):
    m = rnngen.load("lstm")
    calls = []
    entry = m._infer_entry
    monkeypatch.setattr(m, "_infer_entry", lambda *a: calls.append(a[0].shape) or entry(*a))
    rng = np.random.default_rng(0)
    for (T, B, I, H), shared, used in [((10, 10, 3, 5), None, True), ((10, 10, 3, 5), SharedPanels(), False),
                                       ((64, 32, 8, 16), None, False),        # T * B * H = ONE_CALL_WORK
                                       ((2, 2, 300, 4), None, True), ((2, 2, 300, 200), None, False)]:
        assert mathlib.one_call(T, B, I, H) == (used or shared is not None)
        params = m.init_params(I, H, np.float32, 0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        calls.clear()
        y, fin, _ = m.forward(x, params, need_grad=False, shared_panels=shared)
        assert calls == ([(T, B, I)] if used else [])
        _same((y, fin), m.forward(x, params, need_grad=False, shared_panels=SharedPanels())[:2])
        np.testing.assert_allclose(y, m.forward(x, params)[0], rtol=1e-5, atol=1e-6)   # BLAS's sums
    calls.clear()
    net = rnngen.RNN("lstm", 3, 5, num_layers=2, bidirectional=True)      # rnngen.RNN's course call
    net.forward(rng.standard_normal((10, 10, 3)).astype(np.float32), need_grad=False)
    assert calls == [(10, 10, 3)] * 2 + [(10, 10, 10)] * 2


def test_no_entry_for_a_set_up_that_reads_what_numba_cannot_take():
    base = ['x_chunk = np.empty((TC, B, I), dtype)   # x\'s rows', 's_h = np.empty((2, B, H), dtype)', 's_h[0] = state0[0]',
            'panels_hh = _panels_of(shared_panels, "panels_hh", params["weight_hh"].T)   # packed once per call']
    call = ["lengths", "reverse", "y", "x", "s_h", 'params["bias"]', "panels_hh"]
    e = infer_entry(['TC = _chunk_steps(T, B, [params["weight_hh"]], shared_panels is not None)'] + base, call,
                    "TC", ("proj_size", "heads"), "proj_size")
    assert e.args == ["x", "lengths", "reverse", "TC", "H", "proj_size", "state0", "weight_hh", "bias"]
    assert e.call[-2:] == ['params["weight_hh"]', 'params["bias"]'] and e.chunk[0].startswith("TC = _chunk_steps(")
    assert e.setup[-1] == "panels_hh = _panels(weight_hh.T)   # packed once per call"
    assert e.loop_call[-2:] == ["bias", "panels_hh"]
    for extra in ('mask_m_h = masks["m_h"]', 'w = checks.drop_weight(params["weight_hh"], m)',
                  's_h = np.empty((2, B, H), dtype)\nweight_hh = 1'.split("\n")[1]):
        assert infer_entry(base + [extra], call, "TC", (), "H") is None, extra
    assert infer_entry(base, call + ["masks"], "TC", (), "H") is None
