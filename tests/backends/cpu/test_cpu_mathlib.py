"""The CPU math library (rnngen/backends/cpu/mathlib.py): the vectorizable sigmoid/tanh keep
relative accuracy over the whole range, softplus and the rest stay finite at extreme inputs, and
loop_order is its own inverse."""
import numpy as np
import pytest
from numba import njit

from rnngen.backends.cpu import mathlib


@njit
def _apply(f, a):
    out = np.empty_like(a)
    for k in range(a.size):
        out[k] = f(a[k])
    return out


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 4), (np.float64, 4)])
def test_sigmoid_and_tanh_keep_relative_accuracy(dtype, ulps):
    v = np.concatenate([np.linspace(-30, 30, 20001), np.geomspace(1e-30, 800, 4001),
                        -np.geomspace(1e-30, 800, 4001), [0.0, 1e4, -1e4, 745, -745, -103, -88]])
    x = v.astype(dtype)
    xl = x.astype(np.longdouble)
    e = np.exp(-np.abs(xl))
    ref = {"sigmoid": np.where(xl >= 0, 1 / (1 + e), e / (1 + e)), "tanh": np.tanh(xl)}
    tiny, eps = np.finfo(dtype).tiny, np.finfo(dtype).eps
    for what, f in (("sigmoid", mathlib.sigmoid), ("tanh", mathlib.tanh)):
        got = _apply(f, x)
        assert got.dtype == dtype and np.isfinite(got).all()
        r = ref[what]
        err = np.abs(got.astype(np.longdouble) - r)
        bad = np.where(np.abs(r) >= tiny, err > ulps * eps * np.abs(r), err > tiny)
        assert not bad.any(), (what, x[bad][:5], got[bad][:5], r[bad][:5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_functions_are_stable(dtype):
    for v in (-1e4, -50.0, -1e-8, 0.0, 1e-8, 50.0, 1e4):
        v = dtype(v)
        s, t, sp_ = mathlib.sigmoid(v), mathlib.tanh(v), mathlib.softplus(v)
        assert np.isfinite([s, t, sp_]).all()
        with np.errstate(over="ignore"):
            expected = 1 / (1 + np.exp(-np.float64(v)))
        assert abs(s - expected) <= 4 * np.finfo(dtype).eps
        assert abs(t - np.tanh(np.float64(v))) <= 4 * np.finfo(dtype).eps * max(1e-300, abs(np.tanh(v)))
        assert abs(sp_ - np.logaddexp(0, np.float64(v))) <= 4 * np.finfo(dtype).eps * max(1.0, abs(v))
    tiny = dtype(1e-20)
    assert mathlib.tanh(tiny) == tiny and mathlib.sigmoid(dtype(-1e4)) == 0 and mathlib.softplus(dtype(-1e4)) == 0
    assert mathlib.relu(dtype(-2)) == 0 and mathlib.relu(dtype(3)) == 3
    assert mathlib.step(dtype(-2)) == 0 and mathlib.step(dtype(3)) == 1


def test_loop_order_reverses_each_sequence_and_is_its_own_inverse():
    a = np.arange(4 * 3 * 2, dtype=np.float64).reshape(4, 3, 2) + 1
    lengths = np.array([4, 2, 0])
    out = mathlib.loop_order(a, lengths)
    np.testing.assert_array_equal(out[:, 0], a[::-1, 0])
    np.testing.assert_array_equal(out[:2, 1], a[1::-1, 1])
    assert not out[2:, 1].any() and not out[:, 2].any()
    np.testing.assert_array_equal(mathlib.loop_order(out, lengths)[:2, 1], a[:2, 1])


@njit
def _through_pointers(a, b, lo, n):
    """Adds 1 to a[b, lo:lo + n] and 2 to a[b + 1, lo:lo + n] through mathlib.at pointers (2-D), and
    returns the sum of a[0, :n] read through a pointer."""
    p = mathlib.at(a, (b, lo))
    q = mathlib.at(a, (b + 1, np.int32(lo)))       # mixed integer types in the index
    s = a.dtype.type(0)
    r = mathlib.at(a, (0, 0))
    for j in range(n):
        p[j] += 1
        q[j] = q[j] + 2
        s += r[j]
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_at_points_at_the_element_and_writes_through(dtype):
    a = np.arange(4 * 12, dtype=dtype).reshape(4, 12)
    want = a.copy()
    want[1, 5:9] += 1
    want[2, 5:9] += 2
    s = _through_pointers(a, 1, 5, 4)
    assert np.array_equal(a, want) and s == a[0, :4].sum()


@njit
def _at3(a, t, b, k):
    return mathlib.at(a, (t, b, k))[1]


def test_at_three_dimensions_and_refuses_what_it_cannot_index():
    a = np.random.default_rng(0).standard_normal((3, 4, 10)).astype(np.float32)
    assert _at3(a, 2, 3, 4) == a[2, 3, 5]
    from numba.core.errors import TypingError
    with pytest.raises(TypingError):
        _at3(a[:, :, ::2], 0, 0, 0)          # not C-contiguous: a pointer's j would not step by one
    with pytest.raises(TypingError):
        _at3(a[0], 0, 0, 0)                  # too few dimensions for the index
