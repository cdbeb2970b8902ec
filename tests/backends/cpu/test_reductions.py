"""Reductions (cell.mean, layer_norm) on the CPU: the built-in layernorm_lstm against an
independent numpy reference and finite differences, a user GRU with layer norm on its candidate
(two reductions in one step), and the fused loops that compute them."""
import inspect
import textwrap

import numpy as np
import pytest

import rnngen
from helpers import numeric_gradient
from rnngen.tools.build import generate_files

EPS = 1e-5


def _ln(v):
    mu = v.mean(-1, keepdims=True)
    var = ((v - mu) ** 2).mean(-1, keepdims=True)
    return (v - mu) / np.sqrt(var + EPS)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def layernorm_lstm_reference(x, p, state0, lengths, reverse):
    """The issue's equations, one row and one step at a time."""
    T, B, _ = x.shape
    H = p["ln_c_gain"].shape[0]
    h, c = (s.copy() for s in state0)
    y = np.zeros((T, B, H))
    for b in range(B):
        steps = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in steps:
            z = _ln(p["weight_ih"] @ x[t, b]) * p["ln_ih_gain"] + _ln(p["weight_hh"] @ h[b]) * p["ln_hh_gain"] \
                + p["bias"]
            i, f, g, o = np.split(z, 4)
            c[b] = _sigmoid(f) * c[b] + _sigmoid(i) * np.tanh(g)
            h[b] = _sigmoid(o) * np.tanh(_ln(c[b]) * p["ln_c_gain"] + p["ln_c_bias"])
            y[t, b] = h[b]
    return y, (h, c)


def _problem(module, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    params = module.init_params(I, H, np.float64, seed=seed)
    params = {k: v + 0.4 * rng.standard_normal(v.shape) for k, v in params.items()}   # gains off 1
    x = rng.standard_normal((T, B, I))
    state0 = tuple(0.5 * rng.standard_normal((B, H)) for _ in module.STATES)
    return x, params, state0


def _check_gradients(m, x, params, state0, lengths, reverse, seed=3):
    rng = np.random.default_rng(seed)
    y, final, saved = m.forward(x, params, state0, lengths, reverse)
    wy = rng.standard_normal(y.shape)
    wf = tuple(rng.standard_normal(f.shape) for f in final)

    def loss():
        y, final, _ = m.forward(x, params, state0, lengths, reverse)
        return float((y * wy).sum() + sum((f * w).sum() for f, w in zip(final, wf)))

    dx, d_state0, d_params = m.backward(wy, wf, saved)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    for k, s in enumerate(state0):
        np.testing.assert_allclose(d_state0[k], numeric_gradient(loss, s), atol=1e-7, rtol=1e-6)
    for name, p in params.items():
        np.testing.assert_allclose(d_params[name], numeric_gradient(loss, p), atol=1e-7, rtol=1e-6,
                                   err_msg=name)


def test_layernorm_lstm_declares_the_issues_parameters_and_initial_values():
    m = rnngen.load("layernorm_lstm")
    assert m.STATES == ("h", "c")
    assert m.PARAMS == {"weight_ih": ("4*H", "I"), "weight_hh": ("4*H", "H"), "ln_ih_gain": ("4*H",),
                        "ln_hh_gain": ("4*H",), "bias": ("4*H",), "ln_c_gain": ("H",), "ln_c_bias": ("H",)}
    p = m.init_params(3, 5, seed=2)
    for name in ("ln_ih_gain", "ln_hh_gain", "ln_c_gain"):
        assert np.all(p[name] == 1), name
    for name in ("bias", "ln_c_bias"):
        assert np.all(p[name] == 0), name
    assert np.all(np.abs(p["weight_hh"]) <= 1 / np.sqrt(5)) and p["weight_hh"].std() > 0
    assert "ln_ih_mean" in m.__doc__ and "ln_c_sq" in m.__doc__     # the equations, reductions named


def test_show_documents_the_equations_and_parameter_names(capsys):
    from rnngen.tools.cli import main
    assert main(["show", "layernorm_lstm"]) == 0
    out = capsys.readouterr().out
    for words in ("LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5)", "c' = sigmoid(f) * c + sigmoid(i) * tanh(g)",
                  "ln_ih_gain (4H,)", "ln_c_bias (H,)", "ln_ih_mean = sum over the units j", "FLOPs per step"):
        assert words in out, words


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reverse", [False, True])
def test_layernorm_lstm_matches_a_numpy_reference(reverse, dtype):
    m = rnngen.load("layernorm_lstm")
    x, params, state0 = _problem(m, T=6, B=4, I=3, H=5, seed=1)
    lengths = np.array([6, 0, 2, 5])
    y_ref, (h_ref, c_ref) = layernorm_lstm_reference(x, params, state0, lengths, reverse)
    cast = {k: v.astype(dtype) for k, v in params.items()}
    y, (h, c), _ = m.forward(x.astype(dtype), cast, tuple(s.astype(dtype) for s in state0), lengths, reverse)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, y_ref, atol=tol)
    np.testing.assert_allclose(h, h_ref, atol=tol)
    np.testing.assert_allclose(c, c_ref, atol=tol)


@pytest.mark.parametrize("reverse", [False, True])
def test_layernorm_lstm_gradients_match_finite_differences(reverse):
    m = rnngen.load("layernorm_lstm")
    x, params, state0 = _problem(m, T=5, B=3, I=3, H=4, seed=2)
    _check_gradients(m, x, params, state0, np.array([5, 0, 3]), reverse)


GRU_LN = textwrap.dedent("""
    # GRU with layer norm on its candidate's pre-activation: two reductions in one step, the
    # variance a mean of the deviations from the first (a reduction of a reduction)
    from rnngen.spec import Cell, layer_norm, sigmoid, tanh

    cell = Cell("gru_ln", states=("h",), output="h")
    x, h = cell.x, cell.h
    xr, xz, xn = cell.linear("ih", x, gates=3)
    hr, hz, hn = cell.linear("hh", h, gates=3)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    gain, shift = cell.vector("ln_gain", init=1.0), cell.vector("ln_bias", init=0.0)
    n = tanh(layer_norm(cell, xn + r * hn, "ln_n", two_pass=True) * gain + shift)
    cell.update(h=(1 - z) * n + z * h)
""")


@pytest.fixture(scope="module")
def gru_ln(tmp_path_factory):
    specs, out = tmp_path_factory.mktemp("specs"), tmp_path_factory.mktemp("out")
    (specs / "gru_ln.py").write_text(GRU_LN)
    for name, text in generate_files(str(specs / "gru_ln.py"), str(out)).files.items():
        (out / name).write_text(text)
    return rnngen.load("gru_ln", path=str(out))


def gru_ln_reference(x, p, h0, lengths, reverse):
    T, B, _ = x.shape
    h = h0.copy()
    y = np.zeros((T, B, h.shape[1]))
    for b in range(B):
        for t in (range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])):
            xr, xz, xn = np.split(p["weight_ih"] @ x[t, b] + p["bias_ih"], 3)
            hr, hz, hn = np.split(p["weight_hh"] @ h[b] + p["bias_hh"], 3)
            r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            n = np.tanh(_ln(xn + r * hn) * p["ln_gain"] + p["ln_bias"])
            h[b] = (1 - z) * n + z * h[b]
            y[t, b] = h[b]
    return y, h


@pytest.mark.parametrize("reverse", [False, True])
def test_a_user_gru_with_two_reductions_in_one_step(gru_ln, reverse):
    x, params, state0 = _problem(gru_ln, T=5, B=3, I=2, H=4, seed=4)
    lengths = np.array([5, 2, 0])
    y, (h,), _ = gru_ln.forward(x, params, state0, lengths, reverse)
    y_ref, h_ref = gru_ln_reference(x, params, state0[0], lengths, reverse)
    np.testing.assert_allclose(y, y_ref, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, atol=1e-12)
    _check_gradients(gru_ln, x, params, state0, lengths, reverse)


def test_reductions_are_loops_inside_the_fused_step():
    """No Python call per reduction: each mean is summed over j into a local inside the step's
    loop over rows (sum_m_<name> += ..., sum_dmean_<name> in backward), then stored per row."""
    source = open(inspect.getfile(rnngen.load("layernorm_lstm")), encoding="utf-8").read()
    forward = source[source.index("def _forward_loop"):source.index("def _backward_loop")]
    backward = source[source.index("def _backward_loop"):source.index("\ndef forward(")]
    for name in ("ln_ih_mean", "ln_ih_sq", "ln_hh_mean", "ln_hh_sq", "ln_c_mean", "ln_c_sq"):
        assert f"sum_m_{name} += " in forward, name
        assert f"sum_dmean_{name} += " in backward, name
    assert ".sum(" not in forward and "np.mean" not in forward and ".mean(" not in forward
