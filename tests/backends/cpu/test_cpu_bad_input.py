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


BAD_LENGTHS = [                     # (lengths for B=2, T=4, the offending value as reported)
    ([1e300, 1], "lengths[0] = 1e+300"),
    ([2**64 - 1, 1], "lengths[0] = 18446744073709551615"),
    (np.array([1, 2**64 - 1], np.uint64), "lengths[1] = 18446744073709551615"),
    ([2**70, 1], "lengths[0] = 1180591620717411303424"),
    ([1, -1], "lengths[1] = -1"),
    (np.array([3, -2**63]), "lengths[1] = -9223372036854775808"),
    ([1.5, 1], "lengths[0] = 1.5"),
    (np.array([2.0, np.nan]), "lengths[1] = nan"),
    (np.array([np.inf, 1.0]), "lengths[0] = inf"),
    ([5, 1], "lengths[0] = 5"),
    ([1, True], "lengths[1] = True"),
    ([1, "2"], "lengths[1] = '2'"),
    (np.array([True, False]), "dtype bool"),
    (np.array(["1", "2"]), "dtype <U1"),
]


@pytest.mark.parametrize("lengths, reported", BAD_LENGTHS)
def test_bad_lengths_name_the_value_given_and_its_index(lstm, lengths, reported):
    m, x, params, _ = lstm
    fails(["lengths must be integers in [0, T=4]", reported], m.forward, x, params, lengths=lengths)
    fails(["lengths must be integers in [0, T=4]", reported],
          rnngen.RNN("lstm", 3, 5).forward, x, lengths=lengths)


@pytest.mark.parametrize("lengths", [[4, 0], (3, 1), np.array([4.0, 2.0]), np.array([4, 2], np.uint8),
                                     np.array([4, 2], object)])
def test_integral_lengths_of_any_type_are_accepted(lstm, lengths):
    m, x, params, _ = lstm
    y, _, _ = m.forward(x, params, lengths=lengths)
    assert not y[int(lengths[1]):, 1].any() and y[:int(lengths[1]), 1].all()


@pytest.mark.parametrize("cell", rnngen.available())
def test_x_with_the_wrong_feature_size_is_blamed_on_x(cell):
    """Not on the parameter: x's feature size and the input size the parameters were made for."""
    m = rnngen.load(cell)
    params = m.init_params(7, 3)
    for bad in (4, 1, 8):
        x = np.zeros((2, 2, bad), np.float32)
        fails([f"x has feature size {bad} (shape (T, B, I) = (2, 2, {bad}))",
               "the parameters expect input size 7"], m.forward, x, params)
    net = rnngen.RNN(cell, 7, 3, num_layers=2)
    fails(["x has feature size 4", "input_size=7"], net.forward, np.zeros((2, 2, 4), np.float32))


def test_a_wrong_parameter_is_still_blamed_on_the_parameter(lstm):
    m, x, params, _ = lstm
    fails(["params['weight_hh']", "(20, 5)", "(20, 4)"], m.forward, x,
          dict(params, weight_hh=np.zeros((20, 4), np.float32)))
    fails(["params['weight_ih']", "4*H rows", "got 19"], m.forward, x,
          dict(params, weight_ih=np.zeros((19, 3), np.float32)))


@pytest.mark.parametrize("cell", rnngen.available())
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_a_parameter_is_refused_as_in_x(cell, bad):
    m = rnngen.load(cell)
    x = np.ones((2, 2, 3), np.float64)
    for name in m.PARAMS:
        params = m.init_params(3, 4, np.float64)
        params[name].reshape(-1)[-1] = bad
        fails([f"params[{name!r}]", "NaN or inf"], m.forward, x, params)
    net = rnngen.RNN(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    name = f"{list(m.PARAMS)[-1]}_l1_reverse"
    net.params[name].reshape(-1)[0] = bad           # as a diverged in-place update would
    fails([f"parameter {name}", "NaN or inf"], net.forward, x)
    uni = rnngen.RNN(cell, 3, 4, dtype=np.float64)
    uni.params[f"{list(m.PARAMS)[0]}_l0"][0] = bad
    fails([f"parameter {list(m.PARAMS)[0]}_l0", "NaN or inf"], uni.step, x[0])


def test_the_cuda_modules_share_the_checks():
    """The same checker runs for device arrays (CUDA simulator, in a process of its own; nothing is
    launched: the checks fail first)."""
    pytest.importorskip("numba.cuda")
    code = """
import numpy as np
from numba import cuda
import rnngen
m = rnngen.load("gru")
params = {k: cuda.to_device(v) for k, v in m.init_params(7, 3).items()}
for x, lengths in ((np.zeros((2, 2, 4), np.float32), None), (np.zeros((2, 2, 7), np.float32), [1e300, 1]),
                   (np.zeros((2, 2, 7), np.float32), np.array([1, -1]))):
    try:
        m.forward(cuda.to_device(x), params, lengths=lengths)
    except ValueError as exc:
        print(exc)
"""
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"))
    lines = out.stdout.splitlines()
    assert lines == [
        "x has feature size 4 (shape (T, B, I) = (2, 2, 4)), but the parameters expect input size 7 "
        "(params['weight_ih'] has shape (9, 7): 3*H, I with I=7, H=3)",
        "lengths must be integers in [0, T=2], got lengths[0] = 1e+300",
        "lengths must be integers in [0, T=2], got lengths[1] = -1"], out.stdout + out.stderr
