"""Float64 finite-difference checks of every built-in cell: x, initial states, every parameter."""
import numpy as np
import pytest

import rnngen
from helpers import numeric_gradient, random_problem

CELLS = rnngen.available()


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_gradients_match_finite_differences(name, reverse):
    m = rnngen.load(name)
    T, B, H = 5, 3, 3
    x, params, state0 = random_problem(m, T=T, B=B, H=H, seed=7)
    lengths = np.array([5, 2, 3])
    rng = np.random.default_rng(3)
    wy = rng.standard_normal((T, B, H))
    wf = tuple(rng.standard_normal((B, H)) for _ in m.STATES)

    def loss():
        y, final, _ = m.forward(x, params, state0, lengths, reverse)
        return float((y * wy).sum() + sum((f * w).sum() for f, w in zip(final, wf)))

    _, _, saved = m.forward(x, params, state0, lengths, reverse)
    dx, d_state0, d_params = m.backward(wy, wf, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(d_state0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    assert set(d_params) == set(m.PARAMS)
    for name_p, p in params.items():
        assert d_params[name_p].shape == p.shape
        np.testing.assert_allclose(d_params[name_p], numeric_gradient(loss, p), atol=1e-7, rtol=1e-6,
                                   err_msg=name_p)


@pytest.mark.parametrize("name", CELLS)
def test_padding_is_ignored_and_zero_length_carries_state(name):
    m = rnngen.load(name)
    x, params, state0 = random_problem(m, T=4, B=2, seed=1)
    lengths = np.array([2, 0])
    y, final, saved = m.forward(x, params, state0, lengths)
    x2 = x.copy()
    x2[2:, 0] = 123.0                       # padding past the length
    x2[:, 1] = -7.0
    y2, final2, _ = m.forward(x2, params, state0, lengths)
    np.testing.assert_array_equal(y, y2)
    assert np.all(y[2:, 0] == 0) and np.all(y[:, 1] == 0)
    for s0, f in zip(state0, final):
        np.testing.assert_array_equal(f[1], s0[1])   # zero-length row: state carried
    dx, d_state0, _ = m.backward(np.ones_like(y), None, saved)
    assert np.all(dx[2:, 0] == 0) and np.all(dx[:, 1] == 0)
