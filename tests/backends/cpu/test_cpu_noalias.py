"""The promise the CPU time loops are compiled under (rnngen/backends/cpu/noalias.py): no two array
arguments of a loop call share memory. Every loop of every built-in cell is wrapped and called
through the module's entries (forward with and without need_grad, backward; masks at a rate and at
rate 0, lengths, reverse) and through rnngen.RNN's schedules (batch slices on two workers, a
bidirectional stack)."""
import itertools

import numpy as np
import pytest

import rnngen
from rnngen.backends.cpu.noalias import DisjointArrays

LOOPS = ("_forward_loop", "_backward_loop", "_infer_loop")


def _watch(monkeypatch, m):
    """Wrap m's loops; returns the list of (loop, i, k) argument pairs found sharing memory and the
    names of the loops called."""
    overlaps, called = [], set()
    for name in dir(m):
        if not name.startswith(LOOPS):
            continue
        loop = getattr(m, name)

        def watched(*args, _loop=loop, _name=name):
            called.add(_name)
            arrays = [(i, a) for i, a in enumerate(args) if isinstance(a, np.ndarray)]
            for (i, a), (k, b) in itertools.combinations(arrays, 2):
                if np.shares_memory(a, b):
                    overlaps.append((_name, i, k))
            return _loop(*args)
        monkeypatch.setattr(m, name, watched)
    return overlaps, called


def test_every_loop_is_compiled_with_disjoint_arrays():
    for cell in rnngen.available():
        m = rnngen.load(cell)
        loops = [getattr(m, name) for name in dir(m) if name.startswith(LOOPS)]
        assert len(loops) >= 3, cell
        for loop in loops:
            assert loop._compiler.pipeline_class is DisjointArrays, (cell, loop)      # numba keeps it there


@pytest.mark.parametrize("cell", rnngen.available())
def test_no_two_array_arguments_of_a_loop_share_memory(cell, monkeypatch):
    m = rnngen.load(cell)
    overlaps, called = _watch(monkeypatch, m)
    T, B, I, H = 5, 4, 3, 4
    sizes = {name: 2 for name in m.SIZES}
    params = m.init_params(I, H, np.float64, 0, **sizes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([5, 2, 0, 4], np.int64)
    for reverse, rate in itertools.product((False, True), (0.3, 0.0)):
        masks = m.draw_masks(T, B, H, {r: rate for r in m.RATES}, True, np.random.default_rng(1),
                             np.float64, params) if m.MASKS else None
        y, _, saved = m.forward(x, params, None, lengths, reverse, masks=masks)
        m.forward(x, params, None, lengths, reverse, need_grad=False, masks=masks)
        m.backward(rng.standard_normal(y.shape), None, saved)
    assert {name.split("_loop")[0] + "_loop" for name in called} == set(LOOPS)
    assert overlaps == []
    # rnngen.RNN's schedules at two threads: batch slices (one direction), directions at once (two)
    T, B, H = 8, 64, 64                                   # T * B * H at schedule.MIN_WORK
    xb = rng.standard_normal((T, B, I))
    rnngen.set_num_threads(2)
    try:
        for bidirectional in (False, True):
            net = rnngen.RNN(cell, I, H, num_layers=2, bidirectional=bidirectional, dtype=np.float64,
                             **sizes)
            y, _ = net.forward(xb, lengths=np.arange(B) % (T + 1))
            assert net._cache[-1].parallel
            net.backward(np.ones_like(y))
            net.forward(xb, need_grad=False)
    finally:
        rnngen.set_num_threads(None)
    assert overlaps == []
