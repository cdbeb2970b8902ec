"""Block-diagonal (heads) linears and the built-in slstm: finite differences in float64 with
several heads (lengths, reverse), an independent numpy reference, the block-diagonal kernel equals
a dense GEMM with the off-diagonal blocks zero, the initial m, outputs finite for pre-activations
up to +-1e4 in float32, the `heads` size through init_params, RNN and the bridge, and its errors."""
import numpy as np
import pytest

import rnngen
from helpers import build_spec_text, numeric_gradient
from rnngen.errors import SpecError


def log_sigmoid(v):
    return np.minimum(v, 0) - np.log1p(np.exp(-np.abs(v)))


def sig(v):
    return 1 / (1 + np.exp(-v))


def dense(weight_hh):
    """The (4H, H) dense matrix of a heads weight (NH, 4*DH, DH): zero off the diagonal blocks."""
    NH, rows, DH = weight_hh.shape
    H = NH * DH
    W = np.zeros((4 * H, H), weight_hh.dtype)
    for n in range(NH):
        for g in range(4):
            W[g * H + n * DH:g * H + (n + 1) * DH, n * DH:(n + 1) * DH] = weight_hh[n, g * DH:(g + 1) * DH]
    return W


def slstm_reference(x, p, state=None):
    """xLSTM's sLSTM step in plain numpy over a dense recurrent matrix, m starting at -inf."""
    T, B, _ = x.shape
    W = dense(p["weight_hh"])
    H = W.shape[1]
    h, c, n = (np.zeros((B, H)) for _ in range(3))
    m = np.full((B, H), -np.inf)
    if state is not None:
        h, c, n, m = state
    ys = []
    for t in range(T):
        z = x[t] @ p["weight_ih"].T + p["bias_ih"] + h @ W.T
        it, ft, zt, ot = np.split(z, 4, axis=1)
        m_new = np.maximum(log_sigmoid(ft) + m, it)
        i, f = np.exp(it - m_new), np.exp(log_sigmoid(ft) + m - m_new)
        c, n = f * c + i * np.tanh(zt), f * n + i
        h, m = sig(ot) * c / n, m_new
        ys.append(h)
    return np.stack(ys), (h, c, n, m)


@pytest.fixture(scope="module")
def slstm():
    return rnngen.load("slstm")


def test_parameters_and_sizes(slstm):
    assert slstm.STATES == ("h", "c", "n", "m") and slstm.SIZES == ("heads",)
    assert slstm.PARAMS == {"weight_ih": ("4*H", "I"), "bias_ih": ("4*H",),
                            "weight_hh": ("heads", "4*H/heads", "H/heads")}
    p = slstm.init_params(3, 8, heads=4)
    assert p["weight_hh"].shape == (4, 8, 2) and p["weight_ih"].shape == (32, 3)
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by heads=4"):
        slstm.init_params(3, 10, heads=4)
    assert slstm.SIZE_DEFAULTS == {"heads": 1}
    assert slstm.init_params(3, 8)["weight_hh"].shape == (1, 32, 8)        # one head: a dense matrix
    with pytest.raises(ValueError, match="heads must be a positive integer"):
        slstm.init_params(3, 8, heads=0)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_matches_an_independent_numpy_reference(slstm, heads):
    rng = np.random.default_rng(heads)
    p = {k: 2 * v for k, v in slstm.init_params(3, 8, np.float64, seed=1, heads=heads).items()}
    x = rng.standard_normal((6, 3, 3))
    y, fin, _ = slstm.forward(x, p)
    ry, rfin = slstm_reference(x, p)
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-13)
    for a, b in zip(fin, rfin):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_first_step_from_the_default_initial_state(slstm):
    p = slstm.init_params(2, 4, np.float64, heads=2)
    x = np.random.default_rng(0).standard_normal((1, 2, 2)) * 30 - 60     # i~ << 0: m = 0 would give 0/0
    y, (h, c, n, m), _ = slstm.forward(x, p)
    it = (x[0] @ p["weight_ih"].T + p["bias_ih"])[:, :4]
    np.testing.assert_allclose(m, it, rtol=1e-12)
    np.testing.assert_allclose(n, 1.0, rtol=1e-12)
    assert np.isfinite(y).all()


def test_block_diagonal_kernel_equals_a_dense_gemm(tmp_path):
    """A cell with a heads linear against the same cell with a dense linear whose off-diagonal
    blocks are zero: the same outputs and, on the diagonal blocks, the same weight gradient."""
    text = """
        from rnngen.spec import Cell, sigmoid, tanh
        cell = Cell("{name}", states=("h",), output="h")
        (xa, xb) = cell.linear("ih", cell.x, gates=2)
        (ha, hb) = cell.linear("hh", cell.h, gates=2{heads})
        cell.update(h=sigmoid(xa + ha) * tanh(xb + hb) + 0.5 * cell.h)
    """
    blocked = build_spec_text(tmp_path, "blocked", text.format(name="blocked", heads=", heads=True"))
    full = build_spec_text(tmp_path, "full", text.format(name="full", heads=""))
    p = blocked.init_params(3, 6, np.float64, seed=2, heads=3)
    NH, _, DH = p["weight_hh"].shape
    Wd = np.zeros((12, 6))
    for n in range(NH):
        for g in range(2):
            Wd[g * 6 + n * DH:g * 6 + (n + 1) * DH, n * DH:(n + 1) * DH] = p["weight_hh"][n, g * DH:(g + 1) * DH]
    q = dict(p, weight_hh=Wd)
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    lengths = np.array([5, 3])
    yb, fb, sb = blocked.forward(x, p, lengths=lengths, reverse=True)
    yf, ff, sf = full.forward(x, q, lengths=lengths, reverse=True)
    np.testing.assert_allclose(yb, yf, rtol=1e-12, atol=1e-14)
    dy = np.random.default_rng(4).standard_normal(yb.shape)
    db, df = blocked.backward(dy, None, sb), full.backward(dy, None, sf)
    np.testing.assert_allclose(db[0], df[0], rtol=1e-12, atol=1e-14)
    for n in range(NH):
        for g in range(2):
            np.testing.assert_allclose(db[2]["weight_hh"][n, g * DH:(g + 1) * DH],
                                       df[2]["weight_hh"][g * 6 + n * DH:g * 6 + (n + 1) * DH, n * DH:(n + 1) * DH],
                                       rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("heads", [2, 3])
@pytest.mark.parametrize("reverse", [False, True])
def test_finite_differences(slstm, heads, reverse):
    rng = np.random.default_rng(7)
    H = 6
    p = {k: 2 * v for k, v in slstm.init_params(2, H, np.float64, seed=3, heads=heads).items()}
    x = rng.standard_normal((5, 3, 2))
    state0 = (0.5 * rng.standard_normal((3, H)), 0.5 * rng.standard_normal((3, H)),
              1 + rng.random((3, H)), rng.standard_normal((3, H)))
    lengths = np.array([5, 0, 3])
    dy = rng.standard_normal((5, 3, H))
    dfin = tuple(rng.standard_normal((3, H)) for _ in range(4))

    def loss():
        y, fin, _ = slstm.forward(x, p, state0, lengths, reverse)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(fin, dfin)))
    _, _, saved = slstm.forward(x, p, state0, lengths, reverse)
    dx, ds0, dp = slstm.backward(dy, dfin, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(ds0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    for name in p:
        np.testing.assert_allclose(dp[name], numeric_gradient(loss, p[name]), atol=1e-7, rtol=1e-6)


def test_float32_pre_activations_up_to_1e4_stay_finite(slstm):
    rng = np.random.default_rng(5)
    p = slstm.init_params(4, 8, np.float32, heads=2)
    x = rng.standard_normal((8, 3, 4)).astype(np.float32)
    w = rng.standard_normal(p["weight_ih"].shape)
    w *= 1e4 / np.abs(np.einsum("tbi,gi->tbg", x, w)).max()          # pre-activations up to +-1e4
    p["weight_ih"] = w.astype(np.float32)
    y, fin, saved = slstm.forward(x, p)
    dx, ds0, dp = slstm.backward(np.ones_like(y), None, saved)
    assert all(np.isfinite(v).all() for v in (y, *fin, dx, *ds0, *dp.values()))
    assert np.abs(y).max() <= 1


def test_rnn_and_bridge_take_heads(slstm):
    net = rnngen.RNN("slstm", 3, 8, heads=4, num_layers=2, bidirectional=True, dtype=np.float64)
    assert "heads=4" in repr(net) and net.params["weight_hh_l1_reverse"].shape == (4, 8, 2)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, fin = net.forward(x, lengths=np.array([5, 3]))
    net.backward(np.ones_like(y))
    assert np.isfinite(y).all() and net.grads["weight_hh_l0"].shape == (4, 8, 2)
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        rnngen.RNN("slstm", 3, 8, heads=3)
    with pytest.raises(ValueError, match="unknown keyword heads="):
        rnngen.RNN("lstm", 3, 8, heads=2)
    torch = pytest.importorskip("torch")
    import rnngen.torch as rt
    mod = rt.RNN("slstm", 3, 8, heads=2, dtype=torch.float64)
    assert dict(mod.named_parameters())["weight_hh_l0"].shape == (2, 16, 4)
    xt = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: mod(v)[0], (xt,))


def test_heads_on_a_linear_of_x_is_a_spec_error():
    from rnngen.spec import Cell
    cell = Cell("bad", states=("h",), output="h")
    with pytest.raises(SpecError, match="heads=True needs a recurrent linear"):
        cell.linear("ih", cell.x, heads=True)
