"""States that a spec starts somewhere other than zero (`Cell(..., initial={"m": "lowest"})`):
state0=None gives them in the generated module, in rnngen.RNN (stacks, bidirectional, step) and
in the PyTorch bridge; a bad declaration is a SpecError."""
import numpy as np
import pytest

import rnngen
from helpers import build_spec_text
from rnngen.errors import SpecError

SPEC = """
    from rnngen.spec import Cell, exp, log_sigmoid, maximum, tanh

    cell = Cell("start", states=("h", "m", "k"), output="h", initial={"m": "lowest", "k": 0.5})
    xa, xb = cell.linear("ih", cell.x, gates=2)
    ha, hb = cell.linear("hh", cell.h, gates=2)
    m_new = maximum(log_sigmoid(xb + hb) + cell.m, xa + ha)
    cell.update(h=exp(xa + ha - m_new) * tanh(xb + hb) + cell.k * cell.h, m=m_new, k=0.9 * cell.k)
"""


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    return build_spec_text(tmp_path_factory.mktemp("start"), "start", SPEC)


def _explicit(dtype, B, H, L=1):
    return (np.zeros((L, B, H), dtype), np.full((L, B, H), np.finfo(dtype).min, dtype),
            np.full((L, B, H), 0.5, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_state0_none_starts_at_the_declared_values(start, dtype):
    assert start.INITIAL == {"m": "lowest", "k": 0.5}
    rng = np.random.default_rng(0)
    params = start.init_params(2, 3, dtype)
    x = rng.standard_normal((1, 2, 2)).astype(dtype)
    y, (h, m, k), saved = start.forward(x, params)
    xa = x[0] @ params["weight_ih"][:3].T + params["bias_ih"][:3] + params["bias_hh"][:3]
    np.testing.assert_allclose(m, xa, rtol=1e-6)          # m' = max(lowest + ..., a) = a
    np.testing.assert_allclose(k, 0.45, rtol=1e-6)
    # a state given explicitly replaces its default; the others keep theirs
    y2, (_, m2, _), _ = start.forward(x, params, (None, np.full((2, 3), 1e3, dtype), None))
    assert (m2 > 900).all()
    want = [s[0] for s in _explicit(dtype, 2, 3)]
    y3, fin3, _ = start.forward(x, params, tuple(want))
    np.testing.assert_array_equal(y, y3)
    dx, ds0, dp = start.backward(np.ones_like(y), None, saved)
    assert all(np.isfinite(d).all() for d in (dx, *ds0, *dp.values()))


def test_rnn_stacks_bidirectional_and_step_use_the_defaults(start):
    rng = np.random.default_rng(1)
    net = rnngen.RNN(start, 2, 3, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    x = rng.standard_normal((4, 2, 2))
    lengths = np.array([4, 2])
    y, fin = net.forward(x, lengths=lengths)
    y2, fin2 = net.forward(x, _explicit(np.float64, 2, 3, 4), lengths=lengths)
    np.testing.assert_array_equal(y, y2)
    for a, b in zip(fin, fin2):
        np.testing.assert_array_equal(a, b)
    one = rnngen.RNN(start, 2, 3, dtype=np.float64, seed=3)
    yt, st = one.step(x[0])
    np.testing.assert_allclose(yt, one.forward(x[:1])[0][0])


def test_torch_bridge_uses_the_defaults(start):
    torch = pytest.importorskip("torch")
    import rnngen.torch as rt
    mod = rt.RNN(start, 2, 3, num_layers=1, bidirectional=True, dtype=torch.float64)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    y, fin = mod(x)
    y2, fin2 = mod(x, tuple(torch.from_numpy(s) for s in _explicit(np.float64, 2, 3, 2)))
    torch.testing.assert_close(y, y2)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("initial, words", [({"q": 1.0}, "undeclared state"), ({"m": "inf"}, "finite number"),
                                             ({"m": float("nan")}, "finite number"), ("lowest", "dict")])
def test_bad_initial_values_are_spec_errors(initial, words):
    from rnngen.spec import Cell
    with pytest.raises(SpecError, match=words):
        Cell("bad", states=("h", "m"), output="h", initial=initial)
