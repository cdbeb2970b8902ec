"""rnngen build: determinism, --check, user specs built into a folder and loaded."""
import os
import subprocess
import sys
import textwrap

import numpy as np

import rnngen
from rnngen.tools.build import builtin_generated_dir, builtin_specs_dir, generate, spec_paths

USER_SPEC = textwrap.dedent("""
    # a cell no library ships: a GRU whose candidate uses softplus and a learned per-unit leak
    from rnngen.spec import Cell, sigmoid, softplus, tanh

    cell = Cell("leaky_gru", states=("h",), output="h")
    xz, xn = cell.linear("ih", cell.x, gates=2)
    hz, hn = cell.linear("hh", cell.h, gates=2)
    leak = cell.vector("leak")
    z = sigmoid(xz + hz)
    cell.update(h=(1 - z) * tanh(xn + hn) + z * sigmoid(leak) * cell.h + 0.1 * softplus(hn))
    """)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rnngen.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_generated_dir_is_fresh():
    result = run_cli("build", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fresh" in result.stdout


def test_build_is_deterministic_across_processes(tmp_path):
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        result = run_cli("build", "--out", str(out), env={"PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        outs.append({f: (out / f).read_bytes() for f in os.listdir(out)})
    assert outs[0] == outs[1]
    for name, text in outs[0].items():
        with open(os.path.join(builtin_generated_dir(), name), "rb") as f:
            assert f.read() == text, name


def test_check_catches_hand_edit(tmp_path):
    out = tmp_path / "gen"
    assert run_cli("build", "lstm", "gru", "--out", str(out)).returncode == 0
    assert run_cli("build", "lstm", "gru", "--out", str(out), "--check").returncode == 0
    target = out / "lstm.py"
    target.write_text(target.read_text().replace("T, B, H = y.shape", "T, B, H = y.shape  # tweak"))
    result = run_cli("build", "lstm", "gru", "--out", str(out), "--check")
    assert result.returncode == 1
    assert "lstm.py" in result.stderr and "gru.py" not in result.stderr
    assert "tweak" in target.read_text()          # --check writes nothing


def test_header_names_spec_and_hash():
    name, text = generate(spec_paths(builtin_specs_dir(), ["gru_classic"])[0])
    head = text.split('"""')[1]
    assert "source spec: gru_classic.py" in head
    assert "\nspecs folder: rnngen.specs\n" in head      # the same in every checkout
    assert "sha256 of spec + templates + math libraries + versions: " in head
    assert "stage 2" in head                     # the second GEMM over r * h


def test_user_spec_builds_loads_and_has_correct_gradients(tmp_path):
    from helpers import numeric_gradient, random_problem
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "leaky_gru.py").write_text(USER_SPEC)
    out = tmp_path / "gen"
    result = run_cli("build", "--specs", str(specs), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "leaky_gru" in result.stdout
    m = rnngen.load("leaky_gru", path=str(out))
    assert m.PARAMS["leak"] == ("H",) and m.STATES == ("h",)
    x, params, state0 = random_problem(m, T=4, B=2, H=3, seed=2)
    lengths = np.array([4, 2])
    y, final, saved = m.forward(x, params, state0, lengths)
    dx, ds0, dp = m.backward(np.ones_like(y), None, saved)

    def loss():
        return float(m.forward(x, params, state0, lengths)[0].sum())
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(dp["leak"], numeric_gradient(loss, params["leak"]), atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(dp["weight_hh"], numeric_gradient(loss, params["weight_hh"]), atol=1e-7,
                               rtol=1e-6)


def test_bad_spec_fails_build_with_spec_error(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "broken.py").write_text("from rnngen.spec import Cell\ncell = Cell('broken', states=('h',))\n")
    result = run_cli("build", "--specs", str(specs), "--out", str(tmp_path / "gen"))
    assert result.returncode == 1
    assert "SpecError" in result.stderr and "broken.py:2" in result.stderr and "'h'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_names():
    result = run_cli("build", "nosuchcell", "--check")
    assert result.returncode == 2 and "nosuchcell" in result.stderr
    try:
        rnngen.load("nosuchcell")
    except ValueError as exc:
        assert "lstm" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_module_without_spec_is_stale_and_removed(tmp_path):
    specs, out = tmp_path / "specs", tmp_path / "gen"
    specs.mkdir()
    (specs / "leaky_gru.py").write_text(USER_SPEC)
    (specs / "old_cell.py").write_text(USER_SPEC.replace('"leaky_gru"', '"old_cell"'))
    assert run_cli("build", "--specs", str(specs), "--out", str(out)).returncode == 0
    (specs / "old_cell.py").unlink()                     # its module is now left without a spec
    (out / "notes.py").write_text("# the user's own file: never stale, never removed\n")
    result = run_cli("build", "--specs", str(specs), "--out", str(out), "--check")
    assert result.returncode == 1 and "old_cell.py" in result.stderr and "notes.py" not in result.stderr
    assert run_cli("build", "--specs", str(specs), "--out", str(out)).returncode == 0
    assert not (out / "old_cell.py").exists() and not (out / "_cuda_old_cell.py").exists()
    assert (out / "leaky_gru.py").exists() and (out / "notes.py").exists()
    assert run_cli("build", "--specs", str(specs), "--out", str(out), "--check").returncode == 0
