"""Generated kernels against the independent plain-numpy reference, float32 and float64."""
import numpy as np
import pytest

import rnngen
import reference
from helpers import random_problem


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(reference.STEPS))
def test_forward_matches_numpy_reference(name, reverse, dtype, tol):
    m = rnngen.load(name)
    x, params, state0 = random_problem(m, T=7, B=4, I=5, H=6, dtype=dtype, seed=11)
    lengths = np.array([7, 3, 1, 5])
    y, final, _ = m.forward(x, params, state0, lengths, reverse)
    # the reference computes in float64 from the same (rounded) inputs
    up = lambda a: a.astype(np.float64)
    ry, rfinal = reference.run(name, up(x), {k: up(v) for k, v in params.items()},
                               tuple(up(s) for s in state0), lengths, reverse)
    assert y.dtype == dtype and all(f.dtype == dtype for f in final)
    np.testing.assert_allclose(y, ry, atol=tol, rtol=0)
    for f, rf in zip(final, rfinal):
        np.testing.assert_allclose(f, rf, atol=tol, rtol=0)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(reference.STEPS)), T=st.integers(1, 6), B=st.integers(1, 4),
       I=st.integers(1, 4), H=st.integers(1, 5), reverse=st.booleans(), data=st.data())
def test_any_shape_and_lengths_match_reference(name, T, B, I, H, reverse, data):
    m = rnngen.load(name)
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    x, params, state0 = random_problem(m, T=T, B=B, I=I, H=H, seed=T * 100 + B * 10 + H)
    y, final, _ = m.forward(x, params, state0, lengths, reverse)
    ry, rfinal = reference.run(name, x, params, state0, lengths, reverse)
    np.testing.assert_allclose(y, ry, atol=1e-12, rtol=0)
    for f, rf in zip(final, rfinal):
        np.testing.assert_allclose(f, rf, atol=1e-12, rtol=0)
