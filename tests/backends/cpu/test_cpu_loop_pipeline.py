"""How the CPU time loops are compiled (rnngen/backends/cpu/loop_pipeline.py): with 512-bit vectors
preferred, and under a promise: no two array arguments of a loop call share memory. Every loop of
every built-in cell is wrapped and called through the module's wrappers and its compiled entries
for small calls (forward with and without need_grad, backward; masks at a rate and at rate 0,
lengths, reverse) and through rnngen.RNN's schedules (batch slices on two workers, a
bidirectional stack)."""
import itertools

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

import rnngen
from rnngen.backends.cpu.host_gemm import SharedPanels
from rnngen.backends.cpu.loop_pipeline import VECTOR_WIDTH, LoopPipeline

LOOPS = ("_forward_loop", "_backward_loop", "_infer_loop")
ENTRIES = ("_infer_entry", "_forward_entry", "_backward_entry")     # a small call's (entry.py)


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


def test_every_loop_is_compiled_with_the_loop_pipeline():
    for cell in rnngen.available():
        m = rnngen.load(cell)
        loops = [getattr(m, name) for name in dir(m) if name.startswith(LOOPS)]
        assert len(loops) >= 3, cell
        for loop in loops:
            assert loop._compiler.pipeline_class is LoopPipeline, (cell, loop)      # numba keeps it there


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_loops_prefer_512_bit_vectors(cell):
    m = rnngen.load(cell)
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    params = m.init_params(4, 40, np.float32, 0)
    m.forward(x, params)                                   # compiles the float32 loops
    sig = m._forward_loop.signatures[-1]
    # compiled again here, uncached (Numba cannot show the IR of cached code), with the loop's options
    options = {k: v for k, v in m._forward_loop.targetoptions.items() if k != "nopython"}
    loop = njit(**options, pipeline_class=m._forward_loop._compiler.pipeline_class)
    loop = loop(m._forward_loop.py_func)
    loop.compile(sig)
    llvm_ir = loop.inspect_llvm(sig)
    assert VECTOR_WIDTH in llvm_ir
    if llvm.get_host_cpu_features().get("avx512f"):        # the gate math then runs on zmm registers
        assert "zmm" in loop.inspect_asm(sig)


def test_the_pipeline_gives_the_results_of_numbas_own():
    from rnngen.backends.cpu.mathlib import sigmoid, tanh

    def lstm_elements(a, c, h):
        for j in range(a.shape[1]):
            i, f, g, o = sigmoid(a[0, j]), sigmoid(a[1, j]), tanh(a[2, j]), sigmoid(a[3, j])
            c[j] = c[j] * f + g * i
            h[j] = o * tanh(c[j])

    rng = np.random.default_rng(0)
    a = (3 * rng.standard_normal((4, 1003))).astype(np.float32)
    out = []
    for kw in ({}, {"pipeline_class": LoopPipeline}):
        c, h = np.linspace(-2, 2, 1003).astype(np.float32), np.empty(1003, np.float32)
        njit(error_model="numpy", fastmath={"contract"}, **kw)(lstm_elements)(a, c, h)
        out.append((c, h))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


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
        # the wrapper's own loop calls (shared panels), then a small call's through its compiled
        # entries, each run as Python (its py_func) so that the watched loops see their arrays
        for entries in (False, True):
            kw = {} if entries else {"shared_panels": SharedPanels()}
            with monkeypatch.context() as patch:
                for name in dir(m) if entries else ():
                    if name.startswith(ENTRIES):
                        patch.setattr(m, name, getattr(m, name).py_func)
                y, _, saved = m.forward(x, params, None, lengths, reverse, masks=masks, **kw)
                m.forward(x, params, None, lengths, reverse, need_grad=False, masks=masks, **kw)
                m.backward(rng.standard_normal(y.shape), None, saved, **kw)
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


def test_modules_generated_before_the_rename_still_import_their_pipeline():
    from rnngen.backends.cpu.noalias import DisjointArrays
    assert DisjointArrays is LoopPipeline
