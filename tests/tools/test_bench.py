"""Smoke test of the CPU benchmark (`--quick`, no timing assertions) and of the hot loop's
allocation-free promise."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_quick_runs(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "cpu.py"), "--quick",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    assert "numpy sgemm" in text and "GFLOP/s" in text
    assert "| cell | size (T, B, I, H) |" in text
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert {(r["cell"], r["size"]) for r in rows} == {
        (c, s) for c in ("lstm", "gru", "gru_classic", "rnn_tanh", "lstm_peephole") for s in ("course", "small")}
    for r in rows:
        assert r["rnngen_fwd_ms"] > 0 and r["rnngen_fb_ms"] > 0
        assert r["peak_bytes"] > 0 and r["expected_bytes"] > 0
        if r["cell"] in ("gru_classic", "lstm_peephole"):
            assert r["torch_fwd_ms"] is None and "n/a" in text
    assert data["gemm_gflops"] > 0 and data["dtype"] == "float32"
    assert [c["cell"] for c in data["compile"]] == ["lstm"]
    assert data["compile"][0]["first_s"] > 0 and data["compile"][0]["cached_s"] > 0


def test_bench_cli_rejects_unknown_names():
    from rnngen.cli import main
    assert main(["bench", "--cells", "nope", "--no-compile"]) == 2
    assert main(["bench", "--sizes", "huge", "--no-compile"]) == 2


_ALLOCS = """
import numpy as np
from numba.core.runtime import rtsys
from rnngen.generated import {cell} as m
counts = []
for T in (3, 40):
    p = m.init_params(4, 8, np.float32)
    x = np.ones((T, 3, 4), np.float32)
    for reverse in (False, True):
        y, f, s = m.forward(x, p, reverse=reverse)
        m.backward(np.ones_like(y), None, s)
        before = rtsys.get_allocation_stats().alloc
        y, f, s = m.forward(x, p, lengths=np.array([T, 2, 0]), reverse=reverse)
        m.backward(np.ones_like(y), None, s)
        counts.append(rtsys.get_allocation_stats().alloc - before)
print(counts)
"""


@pytest.mark.parametrize("cell", ["lstm", "gru_classic"])
def test_nothing_allocated_per_time_step(cell):
    """Numba's allocation count of a forward+backward does not grow with the number of steps."""
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    res = subprocess.run([sys.executable, "-c", _ALLOCS.format(cell=cell)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    counts = json.loads(res.stdout.strip().splitlines()[-1])
    assert counts[:2] == counts[2:], counts
