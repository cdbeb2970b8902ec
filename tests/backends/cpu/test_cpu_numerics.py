"""float32 stays float32; stable pointwise forms at extreme inputs; typed literals."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnngen
from conftest import REPO
from helpers import random_problem

TESTS = os.path.join(REPO, "tests")       # where `helpers` is, for the subprocesses


LLVM_CHECK = """
import sys, numpy as np, rnngen
from helpers import random_problem
m = rnngen.load(sys.argv[1])
x, params, state0 = random_problem(m, dtype=np.float32)
y, final, saved = m.forward(x, params, state0)
dx, ds, dp = m.backward(np.ones_like(y), None, saved)
assert y.dtype == dx.dtype == np.float32 and all(v.dtype == np.float32 for v in dp.values())
for kernel in (m._forward_loop, m._backward_loop):
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    assert "define" in llvm
    for op in ("fadd double", "fmul double", "fpext float"):
        assert op not in llvm, (kernel, op)
print("ok")
"""


@pytest.mark.parametrize("name", ["lstm", "gru_classic", "lstm_peephole", "rnn_relu"])
def test_float32_kernels_compute_in_float32(name, tmp_path):
    # a fresh numba cache so the kernels are compiled here and their LLVM IR can be inspected
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", LLVM_CHECK, name], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


VECTOR_CHECK = """
import re, sys, numpy as np, rnngen
from helpers import random_problem
m = rnngen.load(sys.argv[1])
x, params, state0 = random_problem(m, dtype=np.float32)
kernels = [m._forward_loop, m._backward_loop, m._infer_loop]
runs = [None]
if m.MASKS:     # masks drawn (the cell's kernels) and none (its kernels at rate 0)
    T, B, _ = x.shape
    runs.append(m.draw_masks(T, B, state0[0].shape[1], {r: 0.5 for r in m.RATES}, rng=0, params=params))
    kernels += [m._forward_loop_rate0, m._backward_loop_rate0, m._infer_loop_rate0]
for masks in runs:
    y, final, saved = m.forward(x, params, state0, masks=masks)
    m.backward(np.ones_like(y), None, saved)
    m.forward(x, params, state0, need_grad=False, masks=masks)
for kernel in kernels:
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    # vector arithmetic on 4-, 8- or 16-wide float vectors (not only vector loads or stores)
    ops = re.findall(r"= f(?:add|sub|mul|div)(?: [a-z]+)* <(4|8|16) x float>", llvm)
    assert len(ops) >= 8, (kernel, len(ops))
    print(kernel.__name__, len(ops), sorted(set(ops)))
print("ok")
"""


@pytest.mark.parametrize("name", ["lstm", "gru", "slstm", "lstm_zoneout", "lstm_vd", "layernorm_lstm"])
def test_float32_loops_vectorize(name, tmp_path):
    """LLVM vectorized the float32 forward, backward and inference loops: their optimized IR does arithmetic
    on <4 x float> / <8 x float> (/ <16 x float>) vectors."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", VECTOR_CHECK, name], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr[-3000:]


REMAINDER_CHECK = """
import re, numpy as np, rnngen
from helpers import random_problem
m = rnngen.load("lstm")
x, params, state0 = random_problem(m, dtype=np.float32, H=5)
y, final, saved = m.forward(x, params, state0)
m.backward(np.ones_like(y), None, saved)
m.forward(x, params, state0, need_grad=False)
for kernel in (m._forward_loop, m._backward_loop, m._infer_loop):
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    four = re.findall(r"= f(?:add|sub|mul|div)(?: [a-z]+)* <4 x float>", llvm)
    assert len(four) >= 40, (kernel, len(four))     # 163, 68, 163; without the option 0, 4, 0
print("ok")
"""


def test_loop_remainders_run_four_wide(tmp_path):
    """The H % W elements after a fused loop's full vectors run 4-wide (mathlib sets LLVM's epilogue
    vectorization; without it LLVM runs them one by one and these loops have no 4-wide arithmetic)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", REMAINDER_CHECK], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr[-3000:]


def test_float32_agrees_with_float64():
    m = rnngen.load("lstm")
    x, params, state0 = random_problem(m, T=20, B=3, H=8)
    y64, _, saved64 = m.forward(x, params, state0)
    f32 = lambda a: a.astype(np.float32)
    y32, _, saved32 = m.forward(f32(x), {k: f32(v) for k, v in params.items()}, tuple(map(f32, state0)))
    np.testing.assert_allclose(y32, y64, atol=1e-5)
    dx64 = m.backward(np.ones_like(y64), None, saved64)[0]
    dx32 = m.backward(np.ones_like(y32), None, saved32)[0]
    np.testing.assert_allclose(dx32, dx64, atol=1e-4)


def test_large_inputs_give_finite_outputs_and_gradients():
    m = rnngen.load("gru")
    x, params, state0 = random_problem(m, T=3, B=2, H=4)
    y, _, saved = m.forward(x * 1e4, params, state0)
    dx, _, dp = m.backward(np.ones_like(y), None, saved)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert all(np.isfinite(v).all() for v in dp.values())
