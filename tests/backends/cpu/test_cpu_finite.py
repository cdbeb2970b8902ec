"""The compiled NaN/inf check of the input checks (rnngen/backends/finite.py) against numpy's
isfinite: every kind of non-finite value, the largest and smallest finite ones, both float dtypes,
and the arrays that take numpy's path (strided views, other dtypes and byte orders, lists)."""
import numpy as np
import pytest

import rnngen
from rnngen.backends.finite import all_finite, all_finite_arrays


def _expected(a):
    return bool(np.isfinite(np.asarray(a)).all())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (10, 10, 3), (3, 5, 17)])
def test_every_position_and_kind_of_non_finite_value_is_found(dtype, shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    assert all_finite(a) is True
    info = np.finfo(dtype)
    for value in (info.max, -info.max, info.tiny, info.smallest_subnormal, -0.0, 0.0):
        b = a.copy()
        b.flat[rng.integers(b.size)] = value
        assert all_finite(b) is True, value
    nan_bits = np.array([np.nan], dtype).view(np.uint32 if dtype == np.float32 else np.uint64)
    odd_nan = (nan_bits | 1).view(dtype)[0]                  # a NaN with a payload
    for value in (np.nan, -np.nan, np.inf, -np.inf, odd_nan):
        for k in (0, a.size // 2, a.size - 1):
            b = a.copy()
            b.flat[k] = value
            assert all_finite(b) is False, (value, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_and_zero_dimensional_arrays(dtype):
    assert all_finite(np.empty((0, 3), dtype)) is True
    assert all_finite(np.array(1.5, dtype)) is True
    assert all_finite(np.array(np.inf, dtype)) is False


def test_arrays_numpy_checks_give_the_same_answer():
    a = np.zeros((6, 8), np.float32)
    a[1, 1] = np.nan                                         # outside the strided view below
    for value in (a[:, ::2], a[::2], a.T, a[:, 1:2]):
        assert all_finite(value) == _expected(value)
    assert all_finite(a.astype(">f4")) is False              # the other byte order
    assert all_finite(np.zeros(4, ">f8")) is True
    assert all_finite(np.array([1, 2], np.int64)) is True
    assert all_finite(np.array([1, np.inf], np.float16)) is False
    assert all_finite([1.0, float("nan")]) is False
    assert all_finite([[1.0, 2.0]]) is True

    class Sub(np.ndarray):
        pass
    b = np.zeros((3, 4), np.float32)
    assert all_finite(b.view(Sub)) is True
    b[2, 3] = -np.inf
    assert all_finite(b.view(Sub)) is False
    assert all_finite(np.ma.masked_array(b, mask=b < -1)) == _expected(np.ma.masked_array(b, mask=b < -1))


def test_a_network_call_names_the_non_finite_input():
    net = rnngen.RNN("lstm", 3, 5)
    x = np.zeros((4, 2, 3), np.float32)
    x[3, 1, 2] = np.inf
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        net.forward(x)
    net.params["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameter weight_hh_l0 contains NaN or inf"):
        net.forward(np.zeros((4, 2, 3), np.float32))


def test_all_finite_arrays_is_all_finite_of_each():
    good = [np.zeros((4, 3), np.float32), np.ones(5, np.float32), np.zeros((2, 6), np.float64)[:, ::2]]
    assert all_finite_arrays(good) is True
    assert all_finite_arrays([]) is True
    for k in range(len(good)):
        bad = [a.copy() for a in good]
        bad[k].flat[-1] = np.nan
        assert all_finite_arrays(bad) is False, k
        assert all_finite_arrays(bad[:k]) is True


def test_a_network_call_names_the_first_non_finite_parameter_of_a_stack():
    net = rnngen.RNN("gru", 3, 5, num_layers=2, bidirectional=True)
    x = np.zeros((4, 2, 3), np.float32)
    net.params["bias_hh_l1_reverse"][-1] = -np.inf
    with pytest.raises(ValueError, match="parameter bias_hh_l1_reverse contains NaN or inf"):
        net.forward(x)
    net.params["weight_ih_l1"][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameter weight_ih_l1 contains NaN or inf"):
        net.forward(x, need_grad=False)
