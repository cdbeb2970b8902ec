"""Correctness guard for the CPU performance work: every built-in generated module's backward
matches a float64 central finite difference (all lengths, reverse), and float32 agrees with
float64; the tied-linear path in any declaration order."""
import importlib
import numpy as np
import pytest

from rnngen.tools.build import builtin_specs_dir, spec_paths

CELLS = sorted(p.rsplit("/", 1)[-1][:-3] for p in spec_paths(builtin_specs_dir()))


def _module(name):
    return importlib.import_module(f"rnngen.generated.{name}")


def _loss(m, x, params, state0, lengths, reverse, wy, wf):
    y, final, _ = m.forward(x, params, state0, lengths, reverse)
    return float(np.sum(y * wy) + sum(np.sum(f * w) for f, w in zip(final, wf)))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_backward_matches_finite_difference(name, reverse):
    m = _module(name)
    T, B, I, H = 4, 3, 2, 3
    rng = np.random.default_rng(1)
    params = m.init_params(I, H, np.float64, seed=2)
    x = rng.standard_normal((T, B, I))
    state0 = tuple(0.5 * rng.standard_normal((B, H)) for _ in m.STATES)
    lengths = np.array([4, 2, 0])
    wy = rng.standard_normal((T, B, H))
    wf = [rng.standard_normal((B, H)) for _ in m.STATES]
    y, final, saved = m.forward(x, params, state0, lengths, reverse)
    dx, dstate0, dparams = m.backward(wy, tuple(w.copy() for w in wf), saved)
    eps = 1e-6

    def fd(arr, grad, label):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = _loss(m, x, params, state0, lengths, reverse, wy, wf)
            arr[idx] = old - eps
            down = _loss(m, x, params, state0, lengths, reverse, wy, wf)
            arr[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7, err_msg=f"{name} {label}")

    fd(x, dx, "dx")
    for k, s in enumerate(state0):
        fd(s, dstate0[k], f"d_state0[{k}]")
    for pname, p in params.items():
        fd(p, dparams[pname], f"d_{pname}")


@pytest.mark.parametrize("name", CELLS)
def test_float32_matches_float64(name):
    m = _module(name)
    T, B, I, H = 7, 5, 4, 9
    rng = np.random.default_rng(3)
    p64 = m.init_params(I, H, np.float64, seed=4)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    x = rng.standard_normal((T, B, I))
    lengths = np.array([7, 3, 1, 0, 6])
    for reverse in (False, True):
        y64, f64, s64 = m.forward(x, p64, None, lengths, reverse)
        y32, f32, s32 = m.forward(x.astype(np.float32), p32, None, lengths, reverse)
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
        dy = rng.standard_normal((T, B, H))
        g64 = m.backward(dy, None, s64)
        g32 = m.backward(dy.astype(np.float32), None, s32)
        assert g32[0].dtype == np.float32
        np.testing.assert_allclose(g32[0], g64[0], rtol=1e-3, atol=1e-4)
        for k in p64:
            assert g32[2][k].dtype == np.float32
            np.testing.assert_allclose(g32[2][k], g64[2][k], rtol=1e-3, atol=1e-4)


_HH_FIRST = '''from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_hh_first", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
hi, hf, hg, ho = cell.linear("hh", h, gates=4)
xi, xf, xg, xo = cell.linear("ih", x, gates=4, bias=False)
c_next = sigmoid(xf + hf) * c + sigmoid(xi + hi) * tanh(xg + hg)
cell.update(c=c_next, h=sigmoid(xo + ho) * tanh(c_next))
'''


def test_tied_linears_in_any_declaration_order(tmp_path):
    """The shared-dZ path (x- and h-parts of a gate only appear summed) with the recurrent linear
    declared first and no bias on the x-linear."""
    from rnngen.tools.build import build
    from rnngen.runtime.registry import load
    spec = tmp_path / "specs" / "lstm_hh_first.py"
    spec.parent.mkdir()
    spec.write_text(_HH_FIRST)
    out = tmp_path / "gen"
    build([str(spec)], str(out), log=lambda *a: None)
    m = load("lstm_hh_first", str(out))
    assert "bias_ih" not in m.PARAMS
    T, B, I, H = 3, 2, 2, 3
    rng = np.random.default_rng(5)
    params = m.init_params(I, H, np.float64, seed=6)
    x = rng.standard_normal((T, B, I))
    wy = rng.standard_normal((T, B, H))
    for reverse in (False, True):
        lengths = np.array([3, 2])
        y, final, saved = m.forward(x, params, None, lengths, reverse)
        dx, _, dparams = m.backward(wy, None, saved)
        eps = 1e-6
        for arr, grad in [(x, dx)] + [(params[k], dparams[k]) for k in params]:
            num = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                up = np.sum(m.forward(x, params, None, lengths, reverse)[0] * wy)
                arr[idx] = old - eps
                down = np.sum(m.forward(x, params, None, lengths, reverse)[0] * wy)
                arr[idx] = old
                num[idx] = (up - down) / (2 * eps)
            np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
