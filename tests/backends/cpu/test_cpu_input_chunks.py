"""The inference loop's input GEMMs in chunks of steps (rnngen/backends/cpu/input_chunks.py): the
rule picking the chunk, the gather of x's rows in loop order against plain numpy, and every built-in
cell's need_grad=False forward against its training forward, whatever the chunk."""
import numpy as np
import pytest

import rnngen
from helpers import random_problem
from rnngen.backends.cpu import input_chunks
from rnngen.backends.cpu.input_chunks import chunk_steps, gather_steps, steps_rows


def test_the_rule_that_picks_the_chunk(monkeypatch):
    small = [np.zeros((512, 128), np.float32), np.zeros((512, 128), np.float32)]       # 512 KB of weights
    large = [np.zeros((2048, 512), np.float32), np.zeros((2048, 512), np.float32)]     # 8 MB
    step = 16 * 512 * 4                                                                # B16, 4*H = 512, float32
    assert chunk_steps(256, step, small) == input_chunks.CHUNK_BYTES // step == 8
    assert chunk_steps(5, step, small) == 5                  # no more steps than the sequence has
    assert chunk_steps(256, 10 * input_chunks.CHUNK_BYTES, small) == 1     # one step over the budget
    assert chunk_steps(100, step, large) == 100              # weights beyond the L2 cache: one chunk of every step
    assert chunk_steps(100, step, large, shared=True) == 8   # ... unless the call's slices share them
    assert chunk_steps(256, step, small, shared=True) == 8
    assert chunk_steps(0, step, small) == 1 and chunk_steps(0, step, large) == 1
    assert chunk_steps(0, step, large, shared=True) == 1
    monkeypatch.setattr(input_chunks, "MAX_WEIGHT_BYTES", 1 << 30)
    assert chunk_steps(100, step, large) == 8


def _gathered(x, lengths, reverse, step, TC):
    """Plain numpy: the rows of steps step .. step + TC - 1 in loop order, zeros past each length."""
    T, B, I = x.shape
    out = np.zeros((TC, B, I), x.dtype)
    for k in range(min(TC, T - step)):
        for b in range(B):
            if step + k < lengths[b]:
                out[k, b] = x[lengths[b] - 1 - (step + k) if reverse else step + k, b]
    return out


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("TC", [1, 3, 7, 9])
def test_gather_steps_puts_rows_in_loop_order(reverse, TC):
    rng = np.random.default_rng(TC)
    x = rng.standard_normal((7, 4, 5))
    lengths = np.array([7, 0, 3, 6])
    for step in range(0, 7, TC):
        out = np.full((TC, 4, 5), np.nan)
        n = gather_steps(x, lengths, reverse, step, out)
        assert n == min(TC, 7 - step)
        np.testing.assert_array_equal(out[:n], _gathered(x, lengths, reverse, step, TC)[:n])
        assert steps_rows(out, n).shape == (n * 4, 5)
        np.testing.assert_array_equal(steps_rows(out, n), out[:n].reshape(n * 4, 5))


def _mask_choices(m, T, B, H, dtype, params):
    """None (a masked cell then runs its kernels at rate 0), and for a masked cell masks at rate 0.3."""
    if not m.MASKS:
        return [None]
    return [None, m.draw_masks(T, B, H, {k: 0.3 for k in m.RATES}, rng=3, dtype=dtype, params=params)]


@pytest.mark.parametrize("name", rnngen.available())
def test_inference_forward_matches_the_training_forward_for_every_chunk(name, monkeypatch):
    """Chunks of 1, 3 (T = 7 leaves a partial last chunk) and all 7 steps, forward and reversed,
    with lengths 0 to T, masked cells with and without masks: y and the final states as the
    training forward's (its input GEMM hoisted)."""
    m = rnngen.load(name)
    T, B, I, H = 7, 5, 6, 8
    lengths = np.array([7, 0, 3, 7, 1])
    calls = []
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        x, params, state0 = random_problem(m, T=T, B=B, I=I, H=H, dtype=dtype, seed=5)
        for masks, reverse in [(mk, r) for mk in _mask_choices(m, T, B, H, dtype, params) for r in (False, True)]:
            y0, f0, _ = m.forward(x, params, state0, lengths, reverse, masks=masks)
            for TC in (1, 3, T, None):            # None: the module's own rule
                if TC is None:
                    monkeypatch.undo()
                else:
                    monkeypatch.setattr(m, "_chunk_steps", lambda T_, step_bytes, weights, shared=False, TC=TC:
                                        calls.append((TC, shared)) or TC)
                y1, f1, saved = m.forward(x, params, state0, lengths, reverse, need_grad=False, masks=masks)
                assert TC is None or calls[-1] == (TC, False)   # the wrapper took the chunk given; nothing shared
                assert saved is None
                np.testing.assert_allclose(y1, y0, rtol=tol, atol=tol)
                for a, b in zip(f1, f0):
                    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_the_chunks_run_at_a_size_that_chunks(monkeypatch):
    """lstm at T40 B16 I=H=64 float32 picks chunks of several steps by itself (not the whole
    sequence), and the result is the training forward's."""
    m = rnngen.load("lstm")
    x, params, state0 = random_problem(m, T=40, B=16, I=64, H=64, dtype=np.float32, seed=1, scale=0.5)
    TC = chunk_steps(40, 16 * 4 * 64 * 4, list(params.values()))
    assert 1 < TC < 40
    lengths = np.full(16, 40)
    y0, f0, _ = m.forward(x, params, state0, lengths, True)
    y1, f1, _ = m.forward(x, params, state0, lengths, True, need_grad=False)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip(f1, f0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
