"""Bad input to forward/backward raises ValueError naming the argument; nothing is broadcast."""
import numpy as np
import pytest

import rnngen
from helpers import random_problem


@pytest.fixture
def lstm():
    m = rnngen.load("lstm")
    x, params, state0 = random_problem(m, T=4, B=2, I=3, H=5, dtype=np.float32)
    return m, x, params, state0


def fails(words, fn, *args, **kw):
    with pytest.raises(ValueError) as info:
        fn(*args, **kw)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_forward_bad_inputs(lstm):
    m, x, params, state0 = lstm
    fails(["x", "3 dimensions"], m.forward, x[0], params)
    fails(["x", "float32 or float64"], m.forward, x.astype(np.int32), params)
    fails(["params['weight_ih']", "float64", "float32"], m.forward, x.astype(np.float64), params)
    fails(["params", "missing", "bias_hh"], m.forward, x, {k: v for k, v in params.items() if k != "bias_hh"})
    fails(["params", "unknown", "weight_xx"], m.forward, x, {**params, "weight_xx": params["bias_hh"]})
    bad = dict(params, weight_hh=params["weight_hh"][:, :4])
    fails(["params['weight_hh']", "(20, 5)", "(20, 4)"], m.forward, x, bad)
    bad = dict(params, bias_ih=params["bias_ih"][None, :])
    fails(["params['bias_ih']", "1 dimensions"], m.forward, x, bad)
    fails(["state0", "tuple of 2"], m.forward, x, params, state0[:1])
    fails(["state0[1] (c)", "(2, 5)"], m.forward, x, params, (state0[0], state0[1][:1]))
    fails(["state0[0]", "float32"], m.forward, x, params, (state0[0].astype(np.float64), state0[1]))
    fails(["lengths", "(2,)"], m.forward, x, params, lengths=[4])
    fails(["lengths", "[0, T=4]"], m.forward, x, params, lengths=[5, 1])
    fails(["lengths", "[0, T=4]"], m.forward, x, params, lengths=[-1, 1])
    fails(["lengths", "integers"], m.forward, x, params, lengths=[1.5, 1])
    xn = x.copy()
    xn[1, 1, 1] = np.nan
    fails(["x", "NaN"], m.forward, xn, params)
    xn[1, 1, 1] = np.inf
    fails(["x", "NaN or inf"], m.forward, xn, params)
    fails(["reverse", "bool"], m.forward, x, params, reverse="yes")


def test_backward_bad_inputs(lstm):
    m, x, params, state0 = lstm
    y, final, saved = m.forward(x, params, state0)
    fails(["dy", "(4, 2, 5)"], m.backward, y[:2], None, saved)
    fails(["dy", "float32"], m.backward, y.astype(np.float64), None, saved)
    fails(["d_final", "tuple of 2"], m.backward, y, final[:1], saved)
    fails(["d_final[1] (c)", "(2, 5)"], m.backward, y, (final[0], final[1].T), saved)
    fails(["saved", "lstm"], m.backward, y, None, {"x": x})
    _, _, gru_saved = rnngen.load("gru").forward(x, rnngen.load("gru").init_params(3, 5))
    fails(["saved", "lstm"], m.backward, y, None, gru_saved)


def test_inputs_are_not_modified(lstm):
    m, x, params, state0 = lstm
    copies = [x.copy(), {k: v.copy() for k, v in params.items()}, [s.copy() for s in state0]]
    y, final, saved = m.forward(x, params, state0)
    d_final = tuple(np.ones_like(f) for f in final)
    d_copy = [d.copy() for d in d_final]
    m.backward(np.ones_like(y), d_final, saved)
    np.testing.assert_array_equal(x, copies[0])
    for k in params:
        np.testing.assert_array_equal(params[k], copies[1][k])
    for a, b in zip(state0 + d_final, copies[2] + d_copy):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_inputs_work(lstm):
    m, x, params, state0 = lstm
    y, _, _ = m.forward(x, params, state0)
    xf = np.asfortranarray(x)
    pf = {k: np.asfortranarray(v) for k, v in params.items()}
    y2, _, _ = m.forward(xf, pf, state0)
    np.testing.assert_array_equal(y, y2)
