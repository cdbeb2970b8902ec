"""Every CUDA kernel of every built-in cell compiles to PTX for sm_90 with no GPU; read the PTX.

compile_ptx cannot share a process with the CUDA simulator, so cuda_ptx_check.py (next to this file) runs in its
own process. Float32 kernels must contain no f64 instruction (an untyped literal would promote),
the persistent kernels of cells with recurrent weights must read them from shared memory and use
fma; no kernel may use local memory. Each float32 kernel is also compiled to LTO-IR and linked with
libcudadevrt by nvJitLink for sm_90 (what numba-cuda does on a GPU; nvJitLink accepts the PTX ISA
the pip NVVM writes): its report must show no local memory, no spills and registers that allow
the threads per block rnngen launches it with (512 for the persistent kernels, 256 for the others).
What only a GPU shows (that the driver loads and runs these cubins) is benchmarks/gpu_check.py's.
"""
import json
import os
import subprocess
import sys
import tempfile

import pytest

import rnngen

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.slow     # the module fixture takes minutes

HERE = os.path.dirname(os.path.abspath(__file__))
RECURRENT = {"gru", "gru_classic", "lstm", "lstm_peephole", "rnn_relu", "rnn_tanh", "lstm_proj",
             "layernorm_lstm", "lstm_zoneout", "lstm_vd", "lstm_weightdrop", "slstm"}


@pytest.fixture(scope="module")
def kernels():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    # one process per dtype, side by side (the compiles are single-threaded)
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(2)]
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "cuda_ptx_check.py"), "--dtype", dtype], env=env,
                              stdout=out, stderr=err, text=True)
             for dtype, (out, err) in zip(("float32", "float64"), logs)]
    rows = []
    for proc, (out, err) in zip(procs, logs):
        proc.wait(timeout=1200)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if proc.returncode != 0 and "NVVM" in stderr and "not found" in stderr.lower():
            pytest.skip("NVVM is not installed (pip install numba-cuda[cu13])")
        found = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert proc.returncode == 0 and found, f"compile_ptx failed:\n{stdout[-3000:]}\n{stderr[-5000:]}"
        rows += found
    return {(r["cell"], r["kernel"], r["dtype"]): r for r in rows}


def _link_ok(row):
    """nvJitLink's report of the float32 kernel linked as on a GPU: no local memory, no spills,
    registers that let a block of the threads it launches with run, and no stack beyond the call
    frame of libcudadevrt's grid sync."""
    link = row["link"]
    where = f"{row['cell']} {row['kernel']}"
    assert "error" not in link, f"{where}: the nvJitLink link failed: {link['error']}"
    assert link["lmem"] == 0, f"{where}: {link['lmem']} bytes of local memory"
    assert link["spills"] == {"stores": 0, "loads": 0}, f"{where}: spills {link['spills']}"
    allocated = -(-link["registers"] // 8) * 8          # registers are given out 8 per thread at a time
    assert allocated * row["threads"] <= 65536, \
        f"{where}: {link['registers']} registers do not allow {row['threads']} threads per block"
    assert link["stack"] <= (16 if row["grid_sync"] else 0), f"{where}: {link['stack']} bytes of stack"


@pytest.mark.parametrize("cell", rnngen.available())
def test_persistent_kernels_compile(kernels, cell):
    names = [k for c, k, d in kernels if c == cell and d == "float32"]
    masked = any(per != "weight" for _, per, _ in rnngen.load(cell).MASKS.values())
    assert set(names) == {"forward", "backward"} | ({"forward_rate0", "backward_rate0"} if masked else set())
    for kernel in names:            # forward, backward (and those at rate 0 of a cell with masks)
        f32 = kernels[cell, kernel, "float32"]
        assert (cell, kernel, "float64") in kernels
        assert f32["f64_ops"] == 0, f"{cell} {kernel}: f64 instructions in float32 PTX"
        assert f32["local"] == 0, f"{cell} {kernel}: local memory in the PTX"
        assert f32["f32_ops"] > 0, f"{cell} {kernel}: no float32 arithmetic in the float32 PTX"
        assert f32["grid_sync"] == (cell in RECURRENT)
        if cell in RECURRENT:
            assert f32["ld_shared"] > 0, f"{cell} {kernel}: recurrent weights not read from shared memory"
            # issue 13: the GEMM slice sums its lanes' partial tiles with warp shuffles (8 values)
            assert f32["shfl_bfly"] >= 8, f"{cell} {kernel}: {f32['shfl_bfly']} shfl.sync.bfly"
        assert f32["atomics"] == 0, f"{cell} {kernel}: atomics (the sums must be in a fixed order)"
        _link_ok(f32)
        info = f32["ptxas"]
        if info is not None and "error" not in info:
            assert info["spill_stores"] == 0 and info["spill_loads"] == 0, f"{cell} {kernel}: spills {info}"


RUNTIME = ("gemm 128x128x8x8x8", "gemm 64x64x16x4x4", "fill", "copy1d",
           "_into_last", "_from_last", "_multiply", "_add", "_swap01", "_loop_order", "heads _blocks")


@pytest.mark.parametrize("kernel", RUNTIME)
def test_runtime_kernels_compile(kernels, kernel):
    """Every kernel cuda_runtime.py launches: the GEMM tiles, the column sum, the fills and copies,
    what rnngen.RNN(device="cuda") runs between layers, and the loop-order permutation the
    generated modules apply to x and dx after a reversed run of a tied-linear cell (an LSTM)."""
    assert ("runtime", kernel, "float64") in kernels
    f32 = kernels["runtime", kernel, "float32"]
    assert f32["f64_ops"] == 0, f"{kernel}: f64 instructions in float32 PTX"
    assert f32["local"] == 0 and not f32["grid_sync"], f"{kernel}: {f32}"
    _link_ok(f32)
    if kernel.startswith("gemm"):
        assert f32["ld_shared"] > 0


def test_gemm_register_tiles(kernels):
    assert kernels["runtime", "gemm 128x128x8x8x8", "float32"]["fma_f32"] >= 64      # the 8x8 tile
    assert kernels["runtime", "gemm 64x64x16x4x4", "float32"]["fma_f32"] >= 16       # the 4x4 tile


def test_bias_and_vector_sums_in_the_backward_kernel(kernels):
    """The backward kernels of cells with biases or per-unit vectors end with their column sums:
    one more warp-shuffle sum (lane_sum) beyond the GEMM slices' (lane_sum8), no atomics."""
    for cell in ("lstm", "lstm_peephole", "gru", "mingru"):
        f32 = kernels[cell, "backward", "float32"]
        assert f32["shfl_bfly"] > (8 if cell != "mingru" else 0) and f32["atomics"] == 0, f"{cell}: {f32}"
