"""maximum, log_sigmoid and exp of arguments bounded by a max (the sLSTM stabiliser): their
compact derivatives, the rewrite to the overflow-free exp, the math libraries at extreme inputs,
and finite differences of a cell that uses all three (lengths, reverse)."""
import math

import numpy as np
import pytest
import sympy as sp

from helpers import build_spec_text, numeric_gradient, random_problem
from rnngen.backends.cpu import mathlib
from rnngen.compiler.rewrite import stabilize
from rnngen.spec.functions import exp_nonpositive, log_sigmoid, maximum, sigmoid, step

a, b, c = sp.symbols("a b c")


def test_maximum_subgradient_goes_to_the_larger_and_ties_to_the_first():
    da, db = sp.diff(maximum(a, b), a), sp.diff(maximum(a, b), b)
    for va, vb, want in [(2, 1, (1, 0)), (1, 2, (0, 1)), (1.5, 1.5, (1, 0))]:
        got = [float(d.subs({a: va, b: vb}).replace(step, lambda v: sp.Integer(1) if v > 0 else sp.Integer(0)))
               for d in (da, db)]
        assert tuple(got) == want


def test_log_sigmoid_and_exp_nonpositive_derivatives_are_compact():
    assert sp.diff(log_sigmoid(a), a) == sigmoid(-a)
    assert sp.diff(exp_nonpositive(a), a) == exp_nonpositive(a)


def test_exp_of_an_argument_bounded_by_a_max_becomes_the_overflow_free_exp():
    m = maximum(log_sigmoid(b) + c, a)
    assert stabilize(sp.exp(a - m)) == exp_nonpositive(a - m)
    assert stabilize(sp.exp(log_sigmoid(b) + c - m)) == exp_nonpositive(log_sigmoid(b) + c - m)
    # not bounded: the max is not of the argument
    assert stabilize(sp.exp(b - m)) == sp.exp(b - m)
    assert stabilize(sp.exp(a + m)) == sp.exp(a + m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_library_at_extreme_inputs(dtype):
    f = dtype
    for v in [-1e4, -100.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 100.0, 1e4]:
        want = -math.log1p(math.exp(-v)) if v > -700 else v
        got = mathlib.log_sigmoid(f(v))
        assert np.isfinite(got) and got <= 0
        assert abs(got - want) <= 4 * np.finfo(dtype).eps * max(1.0, abs(want)) + np.finfo(dtype).tiny
    assert mathlib.log_sigmoid(f(1e4)) == 0 and mathlib.log_sigmoid(f(-1e4)) == f(-1e4)
    lowest = np.finfo(dtype).min
    for v in [lowest, -1e4, -200.0, -50.0, -1.0, -1e-3, 0.0]:
        got = mathlib.exp_nonpositive(f(v))
        assert got == 0 and v < -800 or abs(got - math.exp(v)) <= 8 * np.finfo(dtype).eps * math.exp(v) \
            + 2 * np.finfo(dtype).smallest_subnormal
    assert mathlib.exp_nonpositive(f(0)) == 1 and mathlib.exp_nonpositive(f(1e4)) == 1
    assert mathlib.maximum(f(1), f(2)) == 2 and mathlib.maximum(f(-1), lowest) == -1
    # log(1 + u) on [0, 1] without libm (log_sigmoid's, so that the fused loops vectorize)
    for u in [0.0, 1e-30, 1e-7, 3e-8, 1e-3, 0.25, 0.41421, 0.41422, 0.7, 1.0]:
        got, want = mathlib.log1p_unit(f(u)), math.log1p(float(f(u)))
        assert abs(got - want) <= 4 * np.finfo(dtype).eps * want + np.finfo(dtype).tiny


STAB = """
    from rnngen.spec import Cell, exp, log_sigmoid, maximum, tanh

    cell = Cell("stab", states=("h", "m"), output="h")
    xa, xb = cell.linear("ih", cell.x, gates=2)
    ha, hb = cell.linear("hh", cell.h, gates=2)
    a = xa + ha
    b = xb + hb
    m_new = maximum(log_sigmoid(b) + cell.m, a)
    i = exp(a - m_new)
    f = exp(log_sigmoid(b) + cell.m - m_new)
    cell.update(h=i * tanh(b) + f * cell.h, m=m_new)
"""


@pytest.fixture(scope="module")
def stab(tmp_path_factory):
    return build_spec_text(tmp_path_factory.mktemp("stab"), "stab", STAB)


def test_generated_code_uses_the_library_functions(stab):
    with open(stab.__file__) as fh:
        text = fh.read()
    assert "_maximum(" in text and "_log_sigmoid(" in text and "_exp_nonpositive(" in text
    assert "math.exp(" not in text


@pytest.mark.parametrize("reverse", [False, True])
def test_finite_differences_with_lengths(stab, reverse):
    x, params, state0 = random_problem(stab, T=5, B=3, I=2, H=3, seed=4)
    lengths = np.array([5, 0, 3])
    dy = np.random.default_rng(1).standard_normal((5, 3, 3))
    dfin = tuple(np.random.default_rng(2 + k).standard_normal((3, 3)) for k in range(2))

    def loss():
        y, fin, _ = stab.forward(x, params, state0, lengths, reverse)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(fin, dfin)))
    _, _, saved = stab.forward(x, params, state0, lengths, reverse)
    dx, ds0, dp = stab.backward(dy, dfin, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(ds0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    for name in params:
        np.testing.assert_allclose(dp[name], numeric_gradient(loss, params[name]), atol=1e-7, rtol=1e-6)


def test_extreme_pre_activations_stay_finite(stab):
    x, params, state0 = random_problem(stab, T=4, B=2, I=2, H=3, seed=5, dtype=np.float32)
    x = (x * 3e3).astype(np.float32)
    y, fin, saved = stab.forward(x, params, state0)
    dx, ds0, dp = stab.backward(np.ones_like(y), None, saved)
    assert all(np.isfinite(v).all() for v in [y, *fin, dx, *ds0, *dp.values()])
