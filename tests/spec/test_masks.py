"""Random keep-masks (`cell.mask`) and the built-ins lstm_zoneout and lstm_vd: finite differences
in training mode with the masks fixed by the seed (lengths, reverse), independent numpy references
(training with the same masks, and zoneout's eval-mode expectation), rate 0 is exactly lstm, mask
statistics, determinism, the run-time rates through rnngen.RNN and the bridge, and their errors."""
import numpy as np
import pytest

import rnngen
from helpers import numeric_gradient, random_problem


def sig(v):
    return 1 / (1 + np.exp(-v))


def lstm_reference(x, p, h, c, mask_h=None, mask_c=None, vd=None):
    """A plain numpy LSTM (gate order i, f, g, o): zoneout with per-step keep-masks mask_h, mask_c
    (arrays (T, B, H) or constants), or variational dropout of h before W_hh (vd (B, H))."""
    ys = []
    for t in range(x.shape[0]):
        hin = h if vd is None else h * vd
        z = x[t] @ p["weight_ih"].T + p["bias_ih"] + hin @ p["weight_hh"].T + p["bias_hh"]
        i, f, g, o = np.split(z, 4, axis=1)
        c_new = sig(f) * c + sig(i) * np.tanh(g)
        h_new = sig(o) * np.tanh(c_new)
        if mask_h is None:
            h, c = h_new, c_new
        else:
            mh = mask_h[t] if np.ndim(mask_h) == 3 else mask_h
            mc = mask_c[t] if np.ndim(mask_c) == 3 else mask_c
            h, c = mh * h_new + (1 - mh) * h, mc * c_new + (1 - mc) * c
        ys.append(h)
    return np.stack(ys), h, c


@pytest.fixture(scope="module")
def zoneout():
    return rnngen.load("lstm_zoneout")


@pytest.fixture(scope="module")
def vd():
    return rnngen.load("lstm_vd")


def test_modules_list_their_masks_and_rates(zoneout, vd):
    assert zoneout.RATES == ("zoneout",) and zoneout.MASKS == {"m_h": ("zoneout", "step", False),
                                                               "m_c": ("zoneout", "step", False)}
    assert vd.RATES == ("dropout_h",) and vd.MASKS == {"m_h": ("dropout_h", "sequence", True)}
    assert tuple(zoneout.PARAMS) == tuple(rnngen.load("lstm").PARAMS) == tuple(vd.PARAMS)


def test_training_masks_match_an_independent_reference(zoneout, vd):
    x, params, (h0, c0) = random_problem(zoneout, T=6, B=3, I=4, H=5, seed=1)
    masks = zoneout.draw_masks(6, 3, 5, {"zoneout": 0.4}, rng=np.random.default_rng(7), dtype=np.float64)
    assert set(np.unique(masks["m_h"])) == {0.0, 1.0} and not np.array_equal(masks["m_h"], masks["m_c"])
    y, (h, c), _ = zoneout.forward(x, params, (h0, c0), masks=masks)
    ry, rh, rc = lstm_reference(x, params, h0, c0, masks["m_h"], masks["m_c"])
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c, rc, rtol=1e-12, atol=1e-13)
    masks = vd.draw_masks(6, 3, 5, {"dropout_h": 0.5}, rng=3, dtype=np.float64)
    assert masks["m_h"].shape == (3, 5) and set(np.unique(masks["m_h"])) == {0.0, 2.0}
    y, _, _ = vd.forward(x, params, (h0, c0), masks=masks)
    np.testing.assert_allclose(y, lstm_reference(x, params, h0, c0, vd=masks["m_h"])[0], rtol=1e-12, atol=1e-13)


def test_zoneout_eval_is_the_expectation(zoneout):
    p = 0.25
    net = rnngen.RNN("lstm_zoneout", 4, 5, rates={"zoneout": p}, dtype=np.float64, seed=2).eval()
    x = np.random.default_rng(0).standard_normal((7, 3, 4))
    state = net.mask_rng.bit_generator.state
    y, (h, c) = net.forward(x)
    assert net.mask_rng.bit_generator.state == state          # eval mode draws nothing
    params = {k[:-3]: v for k, v in net.params.items()}
    z = np.zeros((3, 5))
    ry, rh, rc = lstm_reference(x, params, z, z, 1 - p, 1 - p)
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c[0], rc, rtol=1e-12, atol=1e-13)


def test_rate_zero_is_exactly_lstm():
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    want, wfin = rnngen.RNN("lstm", 4, 5, num_layers=2, bidirectional=True, seed=4).forward(x, lengths=lengths)
    # bit for bit: at rate 0 the modules run the kernels of the cell with its masks set to 1
    for cell, rates, tol in [("lstm_zoneout", None, 0), ("lstm_zoneout", {"zoneout": 0.0}, 0),
                             ("lstm_vd", {"dropout_h": 0}, 0)]:
        net = rnngen.RNN(cell, 4, 5, num_layers=2, bidirectional=True, seed=4, rates=rates)
        state = net.mask_rng.bit_generator.state
        y, fin = net.forward(x, lengths=lengths)
        np.testing.assert_allclose(y, want, rtol=0, atol=tol)
        for a, b in zip(fin, wfin):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol)
        assert net.mask_rng.bit_generator.state == state       # rate 0 draws nothing


@pytest.mark.parametrize("name", ["lstm_zoneout", "lstm_vd"])
def test_rate_zero_runs_the_kernels_compiled_without_the_masks(name):
    """No mask given (rate 0): the module's kernels of the cell with every mask 1, which read no
    mask; the same values and gradients as the cell's kernels with masks of ones, and as lstm."""
    m, lstm = rnngen.load(name), rnngen.load("lstm")
    assert all(v is None for v in m.draw_masks(6, 3, 5, {r: 0.0 for r in m.RATES}).values())
    x, params, state0 = random_problem(m, T=6, B=3, I=4, H=5, seed=2)
    lengths = np.array([6, 0, 3])
    ones = {k: np.ones((6, 3, 5) if per == "step" else (3, 5)) for k, (_, per, _) in m.MASKS.items()}
    dy = np.random.default_rng(3).standard_normal((6, 3, 5))
    results = []
    for mod, masks in [(m, None), (m, {k: None for k in m.MASKS}), (m, ones), (lstm, None)]:
        kw = {} if mod is lstm else {"masks": masks}
        y, fin, saved = mod.forward(x, params, state0, lengths, True, **kw)
        assert getattr(saved, "rate0", False) == (mod is m and masks is not ones)
        y_infer, fin_infer, _ = mod.forward(x, params, state0, lengths, True, need_grad=False, **kw)
        np.testing.assert_array_equal(y_infer, y)
        dx, ds, dp = mod.backward(dy, None, saved)
        results.append((y, *fin, dx, *ds, *dp.values()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    for a, b in zip(results[0], results[3]):          # exactly lstm
        np.testing.assert_array_equal(a, b)


def test_eval_mode_of_an_inverted_mask_draws_none_and_runs_at_rate_zero(vd, zoneout):
    drawn = vd.draw_masks(4, 2, 3, {"dropout_h": 0.5}, training=False)
    assert drawn == {"m_h": None}                                   # its expectation is 1
    kept = zoneout.draw_masks(4, 2, 3, {"zoneout": 0.25}, training=False)
    np.testing.assert_array_equal(kept["m_h"], np.full((4, 2, 3), 0.75, np.float32))
    x = np.random.default_rng(1).standard_normal((5, 2, 4)).astype(np.float32)
    want, _ = rnngen.RNN("lstm", 4, 3, seed=1).forward(x)
    net = rnngen.RNN("lstm_vd", 4, 3, seed=1, rates={"dropout_h": 0.5})
    net.eval()
    y, _ = net.forward(x)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("name, rates", [("lstm_zoneout", {"zoneout": 0.3}), ("lstm_vd", {"dropout_h": 0.4})])
@pytest.mark.parametrize("reverse", [False, True])
def test_finite_differences_in_training_mode(name, rates, reverse):
    m = rnngen.load(name)
    T, B, H = 5, 3, 3
    x, params, state0 = random_problem(m, T=T, B=B, I=2, H=H, seed=6)
    lengths = np.array([5, 0, 3])
    masks = m.draw_masks(T, B, H, rates, rng=np.random.default_rng(11), dtype=np.float64)
    dy = np.random.default_rng(1).standard_normal((T, B, H))
    dfin = tuple(np.random.default_rng(2 + k).standard_normal((B, H)) for k in range(2))

    def loss():
        y, fin, _ = m.forward(x, params, state0, lengths, reverse, masks=masks)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(fin, dfin)))
    _, _, saved = m.forward(x, params, state0, lengths, reverse, masks=masks)
    dx, ds0, dp = m.backward(dy, dfin, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(ds0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    for pname in params:
        np.testing.assert_allclose(dp[pname], numeric_gradient(loss, params[pname]), atol=1e-7, rtol=1e-6)


def test_rnn_backward_uses_the_forwards_masks():
    net = rnngen.RNN("lstm_zoneout", 2, 3, num_layers=2, bidirectional=True, rates={"zoneout": 0.5},
                     dtype=np.float64, seed=5)
    x = np.random.default_rng(3).standard_normal((4, 2, 2))
    lengths = np.array([4, 3])

    def loss():
        net.mask_rng = np.random.default_rng(9)
        return float(net.forward(x, lengths=lengths)[0].sum())
    loss()
    dx, _ = net.backward(np.ones((4, 2, 6)))
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    key = "weight_hh_l1_reverse"
    loss()
    net.backward(np.ones((4, 2, 6)))
    np.testing.assert_allclose(net.grads[key], numeric_gradient(loss, net.params[key]), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_statistics(zoneout, vd, p):
    T, B, H = 50, 20, 40
    masks = zoneout.draw_masks(T, B, H, {"zoneout": p}, rng=0)
    n = T * B * H
    for k in ("m_h", "m_c"):
        assert masks[k].shape == (T, B, H) and masks[k].dtype == np.float32
        dropped = 1 - masks[k].mean()
        assert abs(dropped - p) < 3 * np.sqrt(p * (1 - p) / n)
    assert abs(np.mean(masks["m_h"] == masks["m_c"]) - (p * p + (1 - p) ** 2)) < 3 * np.sqrt(0.25 / n)
    m = vd.draw_masks(T, 200, H, {"dropout_h": p}, rng=0)["m_h"]
    assert m.shape == (200, H)
    assert abs(np.mean(m == 0) - p) < 3 * np.sqrt(p * (1 - p) / m.size)
    np.testing.assert_allclose(np.unique(m), [0, 1 / (1 - p)], rtol=1e-6)


def test_same_seed_same_masks_and_a_new_draw_each_call():
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    a = rnngen.RNN("lstm_zoneout", 3, 4, rates={"zoneout": 0.5}, seed=1)
    b = rnngen.RNN("lstm_zoneout", 3, 4, rates={"zoneout": 0.5}, seed=1)
    ya1, ya2 = a.forward(x)[0], a.forward(x)[0]
    yb1 = b.forward(x)[0]
    np.testing.assert_array_equal(ya1, yb1)
    assert not np.array_equal(ya1, ya2)


def test_bad_rates_and_masks_are_refused(zoneout):
    with pytest.raises(ValueError, match="unknown rate 'dropout'.*zoneout"):
        rnngen.RNN("lstm_zoneout", 3, 4, rates={"dropout": 0.1})
    with pytest.raises(ValueError, match=r"rates\['zoneout'\] must be a probability in \[0, 1\)"):
        rnngen.RNN("lstm_zoneout", 3, 4, rates={"zoneout": 1.0})
    with pytest.raises(ValueError, match="unknown rate 'zoneout'.*none"):
        rnngen.RNN("lstm", 3, 4, rates={"zoneout": 0.1})
    x, params, state0 = random_problem(zoneout, T=2, B=2, I=3, H=4)
    with pytest.raises(ValueError, match=r"masks\['m_h'\] must have shape \(2, 2, 4\)"):
        zoneout.forward(x, params, masks={"m_h": np.ones((2, 2, 5))})
    with pytest.raises(ValueError, match="masks has unknown names"):
        zoneout.forward(x, params, masks={"m_x": np.ones((2, 2, 4))})


def test_torch_bridge_rates_and_gradcheck_with_masks_fixed_by_the_seed():
    torch = pytest.importorskip("torch")
    import rnngen.torch as rt
    mod = rt.RNN("lstm_zoneout", 2, 3, bidirectional=True, dtype=torch.float64, rates={"zoneout": 0.4}, seed=0)
    assert "rates={'zoneout': 0.4}" in repr(mod)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x):
        mod.mask_rng = np.random.default_rng(5)
        return mod(x)[0]
    assert torch.autograd.gradcheck(f, (x,))
    y1, y2 = mod(x)[0], mod(x)[0]
    assert not torch.equal(y1, y2)
    mod.eval()
    torch.testing.assert_close(mod(x)[0], mod(x)[0])
    with pytest.raises(ValueError, match="unknown rate"):
        rt.RNN("lstm_zoneout", 2, 3, rates={"zone": 0.1})


@pytest.mark.parametrize("cell, rates", [("lstm_zoneout", {"zoneout": 0.3}), ("lstm_vd", {"dropout_h": 0.3}),
                                         ("lstm_weightdrop", {"weight_drop": 0.3})])
def test_batch_slices_run_with_their_rows_of_the_masks(cell, rates):
    """A call big enough to run in batch slices (rnngen/runtime/schedule.py) gives each slice its
    rows of the layer's masks: the same results as one serial call with the same seed."""
    from rnngen.runtime import schedule
    T, B, I, H = 20, 32, 4, 64
    assert schedule.plan(T, B, H, 1, threads=2).slices == 2
    x = np.random.default_rng(0).standard_normal((T, B, I))
    lengths = np.random.default_rng(1).integers(0, T + 1, B)
    out = []
    try:
        for threads in (1, 2):
            rnngen.set_num_threads(threads)
            net = rnngen.RNN(cell, I, H, rates=rates, dtype=np.float64, seed=3)
            y, fin = net.forward(x, lengths=lengths)
            dx, _ = net.backward(np.ones_like(y))
            out.append((y, dx, net.grads["weight_hh_l0"], net.grads["weight_ih_l0"]))
    finally:
        rnngen.set_num_threads(None)
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
