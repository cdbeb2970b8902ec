"""DropConnect on a recurrent weight (`cell.linear(..., dropconnect="rate")`, the built-in
lstm_weightdrop): one inverted keep-mask of the weight per forward call, backward with the same
mask (finite differences with lengths and reverse), rate 0 and eval are lstm with nothing drawn,
mask statistics, the rate through RNN and the bridge, and the spec's errors."""
import numpy as np
import pytest

import rnngen
from helpers import numeric_gradient, random_problem
from rnngen.errors import SpecError


@pytest.fixture(scope="module")
def wd():
    return rnngen.load("lstm_weightdrop")


def test_module_lists_the_weight_mask(wd):
    assert wd.MASKS == {"weight_hh": ("weight_drop", "weight", True)} and wd.RATES == ("weight_drop",)
    assert wd.PARAMS == rnngen.load("lstm").PARAMS


def test_the_weight_is_multiplied_by_one_inverted_mask(wd):
    lstm = rnngen.load("lstm")
    x, params, state0 = random_problem(wd, T=5, B=3, I=4, H=5, seed=2)
    masks = wd.draw_masks(5, 3, 5, {"weight_drop": 0.5}, rng=1, dtype=np.float64, params=params)
    m = masks["weight_hh"]
    assert m.shape == (20, 5) and set(np.unique(m)) == {0.0, 2.0}
    y, fin, _ = wd.forward(x, params, state0, masks=masks)
    want, wfin, _ = lstm.forward(x, dict(params, weight_hh=params["weight_hh"] * m), state0)
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-14)
    # rate 0 and eval: no mask, the weight itself, nothing drawn
    for rates, training in [({"weight_drop": 0.0}, True), ({"weight_drop": 0.5}, False)]:
        rng = np.random.default_rng(0)
        state = rng.bit_generator.state
        masks = wd.draw_masks(5, 3, 5, rates, training, rng, np.float64, params)
        assert masks == {"weight_hh": None} and rng.bit_generator.state == state
        np.testing.assert_array_equal(wd.forward(x, params, state0, masks=masks)[0], lstm.forward(x, params, state0)[0])


@pytest.mark.parametrize("reverse", [False, True])
def test_finite_differences_with_the_mask_fixed(wd, reverse):
    T, B, H = 5, 3, 3
    x, params, state0 = random_problem(wd, T=T, B=B, I=2, H=H, seed=8)
    lengths = np.array([5, 0, 3])
    masks = wd.draw_masks(T, B, H, {"weight_drop": 0.4}, rng=np.random.default_rng(2), dtype=np.float64,
                          params=params)
    dy = np.random.default_rng(1).standard_normal((T, B, H))

    def loss():
        return float((wd.forward(x, params, state0, lengths, reverse, masks=masks)[0] * dy).sum())
    _, _, saved = wd.forward(x, params, state0, lengths, reverse, masks=masks)
    dx, ds0, dp = wd.backward(dy, None, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(ds0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    for name in params:
        np.testing.assert_allclose(dp[name], numeric_gradient(loss, params[name]), atol=1e-7, rtol=1e-6)
    assert np.all(dp["weight_hh"][masks["weight_hh"] == 0] == 0)      # a dropped weight gets no gradient


def test_mask_statistics(wd):
    p = 0.3
    params = wd.init_params(4, 50)
    m = wd.draw_masks(2, 2, 50, {"weight_drop": p}, rng=5, params=params)["weight_hh"]
    assert m.shape == (200, 50) and m.dtype == np.float32
    assert abs(np.mean(m == 0) - p) < 3 * np.sqrt(p * (1 - p) / m.size)
    np.testing.assert_allclose(np.unique(m), [0, 1 / (1 - p)], rtol=1e-6)


def test_rnn_draws_one_mask_per_forward_and_backward_uses_it():
    net = rnngen.RNN("lstm_weightdrop", 2, 3, num_layers=2, bidirectional=True, rates={"weight_drop": 0.5},
                     dtype=np.float64, seed=1)
    x = np.random.default_rng(3).standard_normal((4, 2, 2))

    def loss():
        net.mask_rng = np.random.default_rng(4)
        return float(net.forward(x, lengths=[4, 2])[0].sum())
    loss()
    dx, _ = net.backward(np.ones((4, 2, 6)))
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    y1, y2 = net.forward(x)[0], net.forward(x)[0]
    assert not np.array_equal(y1, y2)
    plain = rnngen.RNN("lstm", 2, 3, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    np.testing.assert_array_equal(net.eval().forward(x)[0], plain.forward(x)[0])


def test_torch_bridge_gradcheck_with_the_mask_fixed_by_the_seed():
    torch = pytest.importorskip("torch")
    import rnngen.torch as rt
    mod = rt.RNN("lstm_weightdrop", 2, 3, dtype=torch.float64, rates={"weight_drop": 0.3})
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        mod.mask_rng = np.random.default_rng(6)
        return mod(x)[0]
    w = mod.weight_hh_l0
    assert torch.autograd.gradcheck(f, (x, w))


def test_dropconnect_on_a_linear_of_x_is_a_spec_error():
    from rnngen.spec import Cell
    cell = Cell("bad", states=("h",), output="h")
    with pytest.raises(SpecError, match="dropconnect needs a recurrent linear"):
        cell.linear("ih", cell.x, dropconnect="p")
    with pytest.raises(SpecError, match="rate name must be a Python identifier"):
        cell.linear("hh", cell.h, dropconnect="not a name")


def test_dropconnect_beside_step_masks_at_rate_zero(tmp_path):
    """A cell with a step mask and DropConnect: with the step mask's rate 0 and DropConnect drawn,
    the kernels at rate 0 (no step mask read) still use the call's masked weight; they agree with
    the cell's own kernels given a step mask of ones and the same weight mask."""
    from helpers import build_spec_text
    m = build_spec_text(tmp_path, "zoned_wd", """
        from rnngen.spec import Cell, tanh
        cell = Cell("zoned_wd", states=("h",), output="h")
        (xa,) = cell.linear("ih", cell.x)
        (ha,) = cell.linear("hh", cell.h, dropconnect="weight_drop")
        keep = cell.mask("keep", rate="zoneout")
        cell.update(h=keep * tanh(xa + ha) + (1 - keep) * cell.h)
    """)
    x, params, state0 = random_problem(m, T=5, B=3, I=4, H=5, seed=4)
    drawn = m.draw_masks(5, 3, 5, {"zoneout": 0.0, "weight_drop": 0.5}, rng=1, dtype=np.float64, params=params)
    assert drawn["keep"] is None and drawn["weight_hh"] is not None
    ones = dict(drawn, keep=np.ones((5, 3, 5)))
    dy = np.random.default_rng(5).standard_normal((5, 3, 5))
    out = []
    for masks in (drawn, ones):
        y, fin, saved = m.forward(x, params, state0, np.array([5, 2, 0]), True, masks=masks)
        assert getattr(saved, "rate0", False) == (masks is drawn)
        out.append((y, *fin, *m.backward(dy, None, saved)[2].values()))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    plain, _, _ = m.forward(x, params, state0, np.array([5, 2, 0]), True)       # no weight mask either
    assert not np.allclose(plain, out[0][0])
