"""Every CUDA kernel of every built-in cell compiles to PTX for sm_90 with no GPU; read the PTX.

compile_ptx cannot share a process with the CUDA simulator, so cuda_ptx_check.py (next to this file) runs in its
own process. Float32 kernels must contain no f64 instruction (an untyped literal would promote),
the persistent kernels of cells with recurrent weights must read them from shared memory and use
fma; when ptxas is installed its report must show no spills.
"""
import json
import os
import subprocess
import sys

import pytest

import rnngen

pytest.importorskip("numba.cuda")

HERE = os.path.dirname(os.path.abspath(__file__))
RECURRENT = {"gru", "gru_classic", "lstm", "lstm_peephole", "rnn_relu", "rnn_tanh"}


@pytest.fixture(scope="module")
def kernels():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, os.path.join(HERE, "cuda_ptx_check.py")], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0 and "NVVM" in out.stderr and "not found" in out.stderr.lower():
        pytest.skip("NVVM is not installed (pip install numba-cuda[cu13])")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0 and rows, f"compile_ptx failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return {(r["cell"], r["kernel"], r["dtype"]): r for r in rows}


@pytest.mark.parametrize("cell", rnngen.available())
def test_persistent_kernels_compile(kernels, cell):
    for kernel in ("forward", "backward"):
        f32 = kernels[cell, kernel, "float32"]
        assert (cell, kernel, "float64") in kernels
        assert f32["f64_ops"] == 0, f"{cell} {kernel}: f64 instructions in float32 PTX"
        assert f32["fma_f32"] > 0
        assert f32["grid_sync"] == (cell in RECURRENT)
        if cell in RECURRENT:
            assert f32["ld_shared"] > 0, f"{cell} {kernel}: recurrent weights not read from shared memory"
        info = f32["ptxas"]
        if info is not None and "error" not in info:
            assert info["spill_stores"] == 0 and info["spill_loads"] == 0, f"{cell} {kernel}: spills {info}"


def test_runtime_kernels_compile(kernels):
    for kernel in ("gemm", "column_sum"):
        f32 = kernels["runtime", kernel, "float32"]
        assert f32["f64_ops"] == 0 and f32["ld_shared"] > 0
        info = f32["ptxas"]
        if info is not None and "error" not in info:
            assert info["spill_stores"] == 0
    assert kernels["runtime", "gemm", "float32"]["fma_f32"] >= 16      # the 4x4 register tile


def test_network_kernels_compile(kernels):
    """The elementwise kernels rnngen.RNN(device="cuda") runs between layers."""
    for kernel in ("_into_last", "_from_last", "_multiply", "_add", "_swap01"):
        assert ("runtime", kernel, "float64") in kernels
        f32 = kernels["runtime", kernel, "float32"]
        assert f32["f64_ops"] == 0 and f32["local"] == 0, f"{kernel}: {f32}"


def test_generated_modules_elementwise_kernel_compiles(kernels):
    """The loop-order permutation a reversed run of a tied-linear cell (an LSTM) applies to x, dx."""
    assert ("runtime", "_loop_order", "float64") in kernels
    f32 = kernels["runtime", "_loop_order", "float32"]
    assert f32["f64_ops"] == 0 and f32["local"] == 0, f32
