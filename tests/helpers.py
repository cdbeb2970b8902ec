"""Shared test helpers: random problems, finite differences, and the simulator subprocess runs."""
import json
import os
import subprocess
import sys

import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def random_problem(module, T=5, B=3, I=4, H=3, dtype=np.float64, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    params = {k: (v * scale).astype(dtype) for k, v in module.init_params(I, H, dtype, seed=seed).items()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in module.STATES)
    return x, params, state0


def without_entries(monkeypatch, module):
    """Run a generated CPU module's wrappers on their Python lines at every size: none of its
    compiled entries for small calls (rnngen/backends/cpu/entry.py)."""
    monkeypatch.setattr(module, "_one_call", lambda *a: False, raising=False)


def numeric_gradient(f, arr, eps=1e-6):
    """Central differences of scalar f() with respect to every element of arr (changed in place)."""
    grad = np.zeros_like(arr)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad


def simulator_rows(script, key):
    """Run tests/<script> under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1 must be set before
    numba.cuda is imported, hence a process of its own) and collect the JSON rows it prints, as
    {(row[k] for k in key): row}."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, os.path.join(HERE, script)], env=env,
                         capture_output=True, text=True, timeout=600)
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[tuple(row[k] for k in key)] = row
    assert rows, f"the simulator run printed nothing:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return rows


# a spec whose names are the generator's own (tests/compiler/test_generated_names.py, the CUDA
# simulator check)
CLASH = textwrap.dedent("""
    # the names a generated kernel or wrapper uses for itself, taken by the spec
    from rnngen.spec import Cell, sigmoid, tanh

    cell = Cell("clash", states=("y", "params", "lengths"), output="y")
    y, params, lengths = cell.y, cell.params, cell.lengths
    a, a1 = cell.linear("a", cell.x, gates=2)              # buffer zx_a, views zx_a_g0, zx_a_g1
    (b,) = cell.linear("a_g1", cell.x)                     # buffer zx_a_g1
    step, j = cell.linear("hh", y, gates=2)
    (T,) = cell.linear("s", params, bias=False)            # buffer z_s; the state's s_params
    np = cell.vector("np")                                 # numpy's name in the kernels
    tmp0 = sigmoid(a + step) * np
    c1 = tanh(a1 + b + j)
    d_y = tmp0 * c1 + T
    dnext_y = sigmoid(lengths)
    cell.update(y=d_y * dnext_y, params=params * c1, lengths=lengths + tmp0)
    """)


def build_spec_text(tmp_path, name, text):
    """Build the spec `text` (dedented) as cell `name` into a folder under tmp_path and load its
    CPU module, through `rnngen build` as a user would."""
    import rnngen
    from rnngen.tools.build import build
    specs, out = tmp_path / f"specs_{name}", tmp_path / f"gen_{name}"
    specs.mkdir()
    (specs / f"{name}.py").write_text(textwrap.dedent(text))
    build([str(specs / f"{name}.py")], str(out), log=lambda *a: None, specs_dir=str(specs))
    return rnngen.load(name, path=str(out))
