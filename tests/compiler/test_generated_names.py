"""The generated code keeps the spec's names and renames its own around them: a spec whose names
are the generator's own locals (loop indices, sizes, buffers, views, constants, wrapper arguments)
builds, runs and has the right gradients; no name means two things (issue 9 case 13: linears named
`a`, with 2 gates, and `a_g1` built, then the first forward was a raw Numba TypingError)."""
import re
import textwrap

import numpy as np
import pytest

import rnngen
from rnngen.tools.build import build
from helpers import CLASH, numeric_gradient

SPLIT = textwrap.dedent("""
    from rnngen.spec import Cell, tanh

    cell = Cell("split", states=("h",), output="h")
    xa, xb = cell.linear("a", cell.x, gates=2)
    (xc,) = cell.linear("a_g1", cell.x)
    (ha,) = cell.linear("hh", cell.h)
    cell.update(h=tanh(xa + ha) * xb + xc)
    """)


def _build(tmp_path, name, text):
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / f"{name}.py").write_text(text)
    out = tmp_path / "gen"
    build([str(specs / f"{name}.py")], str(out), log=lambda *a: None)
    return rnngen.load(name, path=str(out)), (out / f"{name}.py").read_text()


def _check_gradients(m, seed=0):
    T, B, I, H = 3, 2, 2, 3
    rng = np.random.default_rng(seed)
    params = m.init_params(I, H, np.float64, seed=seed)
    x = rng.standard_normal((T, B, I))
    state0 = tuple(0.5 * rng.standard_normal((B, H)) for _ in m.STATES)
    wy = rng.standard_normal((T, B, H))
    for lengths, reverse in ((None, False), (np.array([3, 1]), True)):
        y, final, saved = m.forward(x, params, state0, lengths, reverse)
        dx, d0, dp = m.backward(wy, None, saved)

        def loss():
            return float(np.sum(m.forward(x, params, state0, lengths, reverse)[0] * wy))
        np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
        for k, s in enumerate(state0):
            np.testing.assert_allclose(d0[k], numeric_gradient(loss, s), rtol=1e-6, atol=1e-8)
        for name, p in params.items():
            np.testing.assert_allclose(dp[name], numeric_gradient(loss, p), rtol=1e-6, atol=1e-8, err_msg=name)


def test_linears_a_and_a_g1_build_and_run(tmp_path):
    m, _ = _build(tmp_path, "split", SPLIT)
    _check_gradients(m)


def test_spec_names_that_the_generator_uses_build_and_run(tmp_path):
    m, text = _build(tmp_path, "clash", CLASH)
    assert m.STATES == ("y", "params", "lengths")
    _check_gradients(m, seed=3)
    kernels = text[text.index("def _forward_loop"):text.index("def forward(")]
    # the spec's names stay, the generator's own locals are renamed
    for line in ("T = z_s[", "b = zx_a_g1[", "c1 = _tanh(", "d_y = ", "tmp0 = np_*_sigmoid(", "params = s_params["):
        assert line in kernels, line
    assert "for step_ in range(T_):" in kernels and "for j_ in range(H):" in kernels
    # one meaning per name: every name is assigned in one role only
    roles = {}
    for target, source in re.findall(r"^\s+(\w+) = (\w+)", kernels, re.M):
        roles.setdefault(target, set()).add(source)
    assert roles["b"] == {"zx_a_g1"} and roles["T"] == {"z_s"}


@pytest.mark.parametrize("cell", rnngen.available())
def test_builtin_kernels_name_the_spec_values(cell):
    """The LSTM computes i, f, g, o, c_next and d_c_next, d_i, ... under those names."""
    text = open(rnngen.load(cell).__file__).read()
    if cell == "lstm":
        for name in ("i", "f", "g", "o", "c_next", "d_c_next", "d_i", "d_f", "d_g", "d_o"):
            assert re.search(rf"^\s+{name} = ", text, re.M), name
    assert "bias_hh, d_h" not in text          # no dead kernel argument (today's LSTM backward had one)
    for kernel in ("_forward_loop", "_backward_loop"):
        head = re.search(rf"def {kernel}\(([^)]*)\):\n(.*?)\n\n\n", text, re.S)
        args, body = head.group(1).split(", "), head.group(2)
        for arg in args:
            assert re.search(rf"\b{arg}\b", body), f"{cell} {kernel}: argument {arg} is not used"
    comments = re.findall(r"^\s+# (.*)$", text, re.M)
    assert all(a != b for a, b in zip(comments, comments[1:])), "a comment is doubled"


def test_spec_names_that_are_kernel_globals_mean_the_same_on_both_backends(tmp_path):
    """`cuda` is a global of the CUDA kernels (`rt` only of the CUDA wrappers): a spec value named
    `cuda` is `cuda_` in the kernels of both modules, `rt` stays `rt` in both."""
    from rnngen.compiler.driver import Compilation
    spec = tmp_path / "globals.py"
    spec.write_text(textwrap.dedent("""
        from rnngen.spec import Cell, sigmoid, tanh

        cell = Cell("globals", states=("h",), output="h")
        cuda, rt = cell.linear("ih", cell.x, gates=2)
        (hh,) = cell.linear("hh", cell.h)
        cell.update(h=sigmoid(cuda + hh) * tanh(rt))
    """))
    comp = Compilation(str(spec))
    assert comp.kernel("cpu") is comp.kernel("cuda")
    assert comp.kernel("cpu").linears[0].outputs == ("cuda_", "rt")
    for target in ("cpu", "cuda"):
        text = comp[f"render:{target}"]
        assert "    rt = " in text and "cuda_" in text and not re.search(r"^ +cuda = ", text, re.M), target
