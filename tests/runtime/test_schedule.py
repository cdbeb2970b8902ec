"""The CPU schedules (rnngen/runtime/schedule.py) against the serial run, and the inference forward
(need_grad=False). Correctness only: no timings here (benchmarks/, `rnngen bench`)."""
import numpy as np
import pytest
import threadpoolctl

import rnngen
from rnngen.runtime import schedule, threads

CELLS = ["lstm", "gru", "gru_classic", "rnn_tanh", "lstm_peephole", "indrnn", "mingru"]


@pytest.fixture
def serial_then_default():
    yield
    rnngen.set_num_threads(None)


def _run(net, x, lengths, state0, n, seed=0):
    rnngen.set_num_threads(n)
    y, finals = net.forward(x, state0=state0, lengths=lengths)
    plan = net._cache[-1]
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    d_final = tuple(np.random.default_rng(seed + 1 + k).standard_normal(f.shape).astype(f.dtype)
                    for k, f in enumerate(finals))
    dx, d_state0 = net.backward(dy, d_final)
    return plan, [y, *finals, dx, *d_state0] + [net.grads[k] for k in sorted(net.grads)]


def _close(a, b, rtol):
    """Relative error in the 2-norm: ||a - b|| <= rtol * ||a||."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a - b)) <= rtol * max(float(np.linalg.norm(a)), 1e-300)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_schedules_match_serial(cell, layers, bidirectional, dtype, serial_then_default):
    rng = np.random.default_rng(3)
    T, B, I, H = 40, 27, 6, 40          # 27 rows: uneven slices; T*B*H above MIN_WORK
    net = rnngen.RNN(cell, I, H, num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, B)
    lengths[:3] = (0, T, 1)
    L = layers * net.num_directions
    state0 = tuple(rng.standard_normal((L, B, H)).astype(dtype) for _ in net.states)
    serial_plan, serial = _run(net, x, lengths, state0, 1)
    assert not serial_plan.parallel
    for n in (2, 3):
        plan, par = _run(net, x, lengths, state0, n)
        assert plan.parallel
        assert plan.parallel_directions == bidirectional
        for a, b in zip(serial, par):
            if not plan.slices > 1:       # the directions at the same time: the serial arithmetic
                assert np.array_equal(a, b)
            else:                         # batch slices: rows identical up to BLAS's blocking,
                assert _close(a, b, 1e-6 if dtype == np.float32 else 1e-13)   # weight grads summed


def test_slices_of_one_direction_with_reverse_and_lengths():
    gen = rnngen.load("lstm")
    rng = np.random.default_rng(0)
    T, B, I, H = 30, 19, 5, 12
    x = rng.standard_normal((T, B, I))
    p = gen.init_params(I, H, np.float64)
    lengths = rng.integers(0, T + 1, B)
    for reverse in (False, True):
        y1, f1, s1 = gen.forward(x, p, None, lengths, reverse)
        y3, f3, s3 = schedule.forward(gen, x, p, None, lengths, reverse, True, 3)
        assert isinstance(s3, schedule.SlicedSaved) and len(s3.parts) == 3
        np.testing.assert_allclose(y3, y1, rtol=1e-13, atol=1e-15)
        for a, b in zip(f1, f3):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)
        dy = rng.standard_normal(y1.shape)
        g1 = gen.backward(dy, None, s1)
        g3 = schedule.backward(gen, dy, None, s3)
        np.testing.assert_allclose(g3[0], g1[0], rtol=1e-12, atol=1e-14)
        for name in gen.PARAMS:
            np.testing.assert_allclose(g3[2][name], g1[2][name], rtol=1e-12, atol=1e-13)


def test_an_error_in_a_worker_is_raised():
    gen = rnngen.load("gru")
    x = np.zeros((4, 16, 3))
    x[2, 12, 1] = np.nan                  # in the second slice: raised by a pool thread
    p = gen.init_params(3, 4, np.float64)
    with pytest.raises(ValueError, match="NaN"):
        schedule.forward(gen, x, p, None, None, False, True, 2)


def test_plan_rules():
    assert not schedule.plan(10, 10, 5, 1, threads=2).parallel            # course size: serial
    assert not schedule.plan(256, 32, 128, 1, threads=1).parallel
    p = schedule.plan(256, 32, 128, 1, threads=2)
    assert p.slices == 2 and not p.parallel_directions
    p = schedule.plan(256, 32, 128, 2, threads=2)
    assert p.parallel_directions and p.slices == 1
    assert schedule.plan(1000, 4, 512, 1, threads=4).slices == 1          # 4 rows: not split
    assert schedule.plan(100, 64, 512, 1, threads=4).slices == 4


def test_thread_settings(serial_then_default):
    rnngen.set_num_threads(3)
    assert rnngen.get_num_threads() == 3
    rnngen.set_num_threads(None)
    with threadpoolctl.threadpool_limits(1):     # the user's own BLAS setting: rnngen runs serially
        assert rnngen.get_num_threads() == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="thread count"):
            rnngen.set_num_threads(bad)


def test_blas_threads_restored_after_a_parallel_call(serial_then_default):
    before = threads.threads()
    rnngen.set_num_threads(2)
    net = rnngen.RNN("lstm", 8, 64, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((64, 16, 8)).astype(np.float32)
    y, _ = net.forward(x)
    assert net._cache[-1].parallel
    net.backward(np.ones_like(y))
    assert threads.threads() == before


def test_the_slices_of_a_call_share_one_packed_weight(serial_then_default, monkeypatch):
    """Two batch slices: forward and backward each pack weight_hh (2 MB, past host_gemm.MIN_SHARED_BYTES)
    once for both slices, and give the serial run's results."""
    from rnngen.backends.cpu import host_gemm
    rng = np.random.default_rng(3)
    net = rnngen.RNN("lstm", 8, 256, dtype=np.float64)
    x = rng.standard_normal((5, 16, 8))
    lengths = np.array([5, 0, 3, 5, 1, 2, 5, 4] * 2)
    _, serial = _run(net, x, lengths, None, 1)
    shapes = []
    real = host_gemm.packed
    monkeypatch.setattr(host_gemm, "packed", lambda w: shapes.append(w.shape) or real(w))
    monkeypatch.setattr(schedule, "plan", lambda *a, **k: schedule.Plan(False, 2, one_blas_thread=True))
    plan, sliced = _run(net, x, lengths, None, 2)
    assert plan.slices == 2
    assert shapes.count((256, 1024)) == 1 and shapes.count((1024, 256)) == 1    # weight_hh.T forward, weight_hh backward
    for a, b in zip(serial, sliced):
        assert _close(a, b, 1e-12)


def test_sliced_inference_tells_the_chunk_rule_its_weights_are_shared(serial_then_default, monkeypatch):
    """need_grad=False in two slices: each slice's wrapper asks input_chunks.chunk_steps with
    shared=True (so 8 MB of weights still run in chunks), a serial call with shared=False; the
    results are the serial run's."""
    from rnngen.backends.cpu import input_chunks
    rng = np.random.default_rng(4)
    net = rnngen.RNN("lstm", 512, 512, dtype=np.float32)
    x = rng.standard_normal((6, 16, 512)).astype(np.float32)
    lengths = np.array([6, 0, 2, 5, 1, 6, 3, 6] * 2)
    asked = []
    real = input_chunks.chunk_steps

    def spy(T, step_bytes, weights, shared=False):
        asked.append((shared, real(T, step_bytes, weights, shared)))
        return asked[-1][1]
    monkeypatch.setattr(net.cell, "_chunk_steps", spy)
    rnngen.set_num_threads(1)
    y0, f0 = net.forward(x, lengths=lengths, need_grad=False)
    assert asked == [(False, 6)]                 # alone, 8 MB of weights: TC = T
    monkeypatch.setattr(schedule, "plan", lambda *a, **k: schedule.Plan(False, 2, one_blas_thread=True))
    rnngen.set_num_threads(2)
    y1, f1 = net.forward(x, lengths=lengths, need_grad=False)
    assert asked[1:] == [(True, 4), (True, 4)]   # two slices, chunks of 256 KB (8 rows of 8 KB a step)
    assert _close(y0, y1, 1e-6)
    for a, b in zip(f0, f1):
        assert _close(a, b, 1e-6)


# -- need_grad=False -------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_equals_training_forward(cell):
    rng = np.random.default_rng(1)
    net = rnngen.RNN(cell, 4, 9, num_layers=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((13, 5, 4))
    lengths = np.array([13, 0, 4, 1, 9])
    y1, f1 = net.forward(x, lengths=lengths)
    y2, f2 = net.forward(x, lengths=lengths, need_grad=False)
    # the inference loop runs its input GEMM itself (input_chunks.py), the training forward through
    # mathlib.matmul (BLAS for this size): the same products, summed in another order
    assert _close(y1, y2, 1e-13)
    for a, b in zip(f1, f2):
        assert _close(a, b, 1e-13)


def test_backward_after_an_inference_forward_is_an_error():
    net = rnngen.RNN("lstm", 3, 5)
    x = np.ones((4, 2, 3), np.float32)
    y, _ = net.forward(x, need_grad=False)
    with pytest.raises(ValueError, match="need_grad=False"):
        net.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="need_grad"):
        net.forward(x, need_grad="no")
    y, _ = net.forward(x)                 # a training forward makes backward possible again
    net.backward(np.ones_like(y))


@pytest.mark.parametrize("cell", ["lstm", "gru_classic"])
def test_inference_forward_keeps_no_sequence(cell):
    """The generated module's need_grad=False: nothing saved, and its peak memory lacks the (T+1)-row
    state sequences and per-step buffers of the training forward."""
    import tracemalloc
    gen = rnngen.load(cell)
    T, B, I, H = 300, 4, 3, 64
    x = np.random.default_rng(0).standard_normal((T, B, I))
    p = gen.init_params(I, H, np.float64)
    gen.forward(x, p, need_grad=False)
    peaks = {}
    for need_grad in (True, False):
        tracemalloc.start()
        y, finals, saved = gen.forward(x, p, need_grad=need_grad)
        peaks[need_grad] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert (saved is None) == (not need_grad)
    states = len(gen.STATES) * (T + 1) * B * H * 8
    assert peaks[False] < peaks[True] - 0.9 * states
    with pytest.raises(ValueError, match="need_grad=False"):
        gen.backward(np.ones_like(y), None, None)


def test_the_calls_that_run_as_one_compiled_call_are_serial_ones():
    """A small call's passes run as one compiled call each (mathlib.one_call, the modules' entries)
    only where the schedule runs the call serially anyway (below MIN_WORK), at any thread count."""
    from rnngen.backends.cpu import mathlib
    assert mathlib.ONE_CALL_WORK <= schedule.MIN_WORK
    for T, B, I, H in [(10, 10, 3, 5), (8, 64, 8, 63), (1, 16, 3, 200), (64, 32, 8, 16), (300, 2, 1, 54)]:
        for directions in (1, 2):
            small = schedule.plan(T, B, H, directions, threads=2) is schedule.SERIAL
            assert small or not mathlib.one_call(T, B, I, H)
            assert small == (T * B * H < schedule.MIN_WORK)
