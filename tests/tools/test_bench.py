"""Smoke tests of the CPU benchmark (`--quick`, no timing assertions), the arithmetic of its goals
table, and the hot loop's allocation-free promise."""
import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnngen.tools import bench

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


BENCH = [sys.executable, "-c", "import sys; from rnngen.cli import main; sys.exit(main())", "bench"]


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_bench_quick_prints_the_table(tmp_path):
    """`rnngen bench --quick --cells lstm --sizes course`: the table with its columns, the GEMM
    rates (all cores and one), one row at the default threads; the JSON holds the same."""
    out = tmp_path / "bench.json"
    text = _run(BENCH + ["--quick", "--cells", "lstm", "--sizes", "course", "--json", str(out)])
    header = "| " + " | ".join(bench.COLUMNS) + " |"
    assert header in text
    for column in ("rnngen fwd ms", "torch fwd ms", "fwd+bwd torch/rnngen", "% of gemm rate", "layers"):
        assert column in header
    assert "GFLOP/s with all" in text and "with one" in text and "threads: default" in text
    lines = [line for line in text.splitlines() if line.startswith("| lstm | course (10, 10, 3, 5) | 1 |")]
    assert len(lines) == 1 and lines[0].count("|") == len(bench.COLUMNS) + 1, lines
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert (row["cell"], row["size"], row["layers"], row["bidirectional"], row["threads"]) == \
        ("lstm", "course", 1, False, "default")
    for key in ("rnngen_fwd_ms", "rnngen_fb_ms", "torch_fwd_ms", "torch_fb_ms", "peak_bytes", "expected_bytes"):
        assert row[key] > 0, key
    assert row["max_abs_diff_y"] < 1e-5          # torch.nn.LSTM got the same parameters
    assert data["gemm_gflops"]["all"] > 0 and data["gemm_gflops"]["one"] > 0
    assert data["compile"] == []                 # --quick: no compile probe


def test_compare_threads_and_goals(tmp_path):
    """benchmarks/cpu.py --compare-threads: rows at the default threads and at one thread, the
    threads table and the goals table (goals of sizes not run: 'not measured')."""
    out = tmp_path / "bench.json"
    text = _run([sys.executable, os.path.join(ROOT, "benchmarks", "cpu.py"), "--quick", "--cells", "lstm",
                 "--sizes", "course", "--compare-threads", "--reps", "1", "--json", str(out)])
    assert "threads: default" in text and "threads: 1" in text
    assert "default threads against one thread" in text
    assert "| goal (issue 11) | target | measured | |" in text
    assert "| fwd+bwd torch/rnngen at course | >= 5.0x | lstm " in text
    assert "| fwd+bwd torch/rnngen at fastrnns | >= 1.1x | not measured |" in text
    rows = json.loads(out.read_text())["rows"]
    assert sorted(r["threads"] for r in rows) == ["1", "default"]


def test_cases_add_the_stacked_and_float64_lstm():
    cases = bench.cases(["lstm", "gru"], ["course", "small"], "float32")
    assert [(c["cell"], c["size"], c["layers"], c["bidirectional"], c["dtype"]) for c in cases] == [
        ("lstm", "course", 1, False, "float32"), ("gru", "course", 1, False, "float32"),
        ("lstm", "small", 1, False, "float32"), ("gru", "small", 1, False, "float32"),
        ("lstm", "small", 2, True, "float32"), ("lstm", "small", 1, False, "float64")]
    assert all(c["layers"] == 1 for c in bench.cases(["gru"], ["small"], "float32"))


def test_flop_count():
    """LSTM fastrnns forward+backward is 80.5 GFLOP (3x the forward's 2*T*B*sum(rows*cols))."""
    import rnngen
    T, B, I, H = bench.SIZES["fastrnns"]
    assert 3 * bench.rnn_flops(rnngen.RNN("lstm", I, H), T, B) == 3 * 2 * T * B * (4 * H * I + 4 * H * H)
    assert round(3 * bench.rnn_flops(rnngen.RNN("lstm", I, H), T, B) / 1e9, 1) == 80.5
    T, B, I, H = bench.SIZES["small"]
    stacked = rnngen.RNN("lstm", I, H, num_layers=2, bidirectional=True)
    per_direction = [4 * H * I + 4 * H * H, 4 * H * 2 * H + 4 * H * H]
    assert bench.rnn_flops(stacked, T, B) == 2 * T * B * 2 * sum(per_direction)


def _row(cell, size, rf, rb, tf=None, tb=None, threads="default", layers=1, bidirectional=False,
         dtype="float32", flops=1e9):
    return dict(cell=cell, size=size, layers=layers, bidirectional=bidirectional, dtype=dtype,
                threads=threads, rnngen_fwd_ms=rf, rnngen_fb_ms=rb, torch_fwd_ms=tf, torch_fb_ms=tb,
                gemm_flops_fwd=flops, fwd_need_grad=True, gemm_gflops_all=250.0, gemm_gflops_one=130.0)


def test_goals_arithmetic():
    """The goals table of benchmarks/cpu.py reads torch/rnngen ratios, the GEMM share, time per
    FLOP, default/one-thread and float64/float32 ratios from the rows."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import cpu
    finally:
        sys.path.pop(0)
    rows = [_row("lstm", "course", 1, 1, 3.5, 6), _row("gru", "course", 1, 1, 4, 5),
            _row("lstm", "fastrnns", 100, 100, 95, 120, flops=8e9),    # 3*8 GFLOP in 0.1 s: 240 GFLOP/s
            _row("lstm", "small", 10, 20, 9, 30, flops=1e9),
            _row("lstm_peephole", "small", 10, 27, flops=1e9), _row("gru_classic", "small", 10, 10, flops=0.5e9),
            _row("lstm", "small", 10, 20, threads="1"),
            _row("lstm", "small", 30, 40, 10, 60, layers=2, bidirectional=True),
            _row("lstm", "small", 21, 45, dtype="float64")]
    got = {g[0]: g[2:] for g in cpu.goals(rows)}
    assert got["fwd+bwd torch/rnngen at course"] == ("lstm 6.00x, gru 5.00x", "met")
    assert got["fwd+bwd torch/rnngen at small"] == ("lstm 1.50x", "met")
    assert got["fwd+bwd torch/rnngen at fastrnns"] == ("lstm 1.20x", "met")
    assert got["fwd+bwd torch/rnngen, 2-layer bidirectional lstm at small"] == ("lstm 1.50x", "met")
    key = "fastrnns fwd+bwd share of the all-cores GEMM rate (probes in the same case's rounds)"
    assert got[key][1] == "met" and got[key][0].startswith("lstm 96% (240 of 250 GFLOP/s")
    assert got["forward(need_grad=False) torch/rnngen at course"] == ("lstm 3.50x, gru 4.00x", "met")
    assert got["forward(need_grad=False) torch/rnngen at small"] == ("lstm 0.90x", "met")
    assert got["forward(need_grad=False) torch/rnngen at fastrnns"] == ("lstm 0.95x", "met")
    assert got["fwd+bwd time per FLOP against lstm's"] == \
        ("gru_classic small 1.00x, lstm_peephole small 1.35x", "missed")
    key = "rnngen time, default threads / one thread (run with --compare-threads)"
    assert got[key] == ("lstm small fwd 1.00x, lstm small fb 1.00x", "met")
    assert got["float64 time / float32 time"] == ("lstm small fwd 2.10x, lstm small fb 2.25x", "missed")
    assert cpu.goals(rows[:1])[2][2:] == ("not measured", "—")


def test_bench_cli_rejects_bad_arguments(capsys):
    from rnngen.cli import main
    assert main(["bench", "--cells", "nope", "--no-compile"]) == 2
    assert main(["bench", "--sizes", "huge", "--no-compile"]) == 2
    assert main(["bench", "--threads", "0"]) == 2
    assert main(["bench", "--reps", "0"]) == 2
    assert main(["bench", "--threads", "2", "--compare-threads"]) == 2
    err = capsys.readouterr().err
    assert "rnngen bench: --cells: unknown cell(s) nope" in err and "rnngen bench: --threads must be >= 1" in err


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


def test_blocks_alternate_and_pause_after_an_entry_that_asks_for_it(monkeypatch):
    """time_blocks runs the entries' blocks in turn, each round, and sleeps after the entries given
    a settle time (the all-cores GEMM probe, whose OpenBLAS threads spin when idle)."""
    from rnngen.tools import bench_cases, bench_timing
    order, pauses = [], []
    monkeypatch.setattr(bench_timing.time, "sleep", lambda s: pauses.append((order[-1], s)))
    entries = [(("a",), lambda: order.append("a"), contextlib.nullcontext, 0.2),
               (("b",), lambda: order.append("b"), contextlib.nullcontext)]
    timer, calls = bench_timing.time_blocks(entries, reps=2)
    assert len(timer.samples[("a",)]) == len(timer.samples[("b",)]) >= 2
    assert [p for p in pauses if p[1]] == [("a", 0.2)] * 3          # the calls-per-sample pass and 2 rounds
    probe = bench_cases.gemm_entries(bench_timing.Threads(), np.float32)
    assert [e[0] for e in probe] == [("gemm", "all"), ("gemm", "one")]
    assert probe[0][3] == bench_timing.SETTLE_S > 0.15 and len(probe[1]) == 3


def test_a_sample_is_sized_from_the_steady_calls_not_the_first_ones(monkeypatch):
    """calls_per_sample: MIN_SAMPLE_S of back-to-back calls at the fastest call's time, timing up to
    SIZING_CALLS calls after the untimed first (the calls after it still run slow), fewer once they
    last SIZING_S, none after a slow first call."""
    from rnngen.tools import bench_timing
    clock = [0.0]
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: clock[0])

    def fn_of(durations):
        durations, calls = iter(durations), []

        def fn():
            calls.append(1)
            clock[0] += next(durations)
        return fn, calls
    fn, calls = fn_of([0.05, 400e-6, 150e-6, 100e-6, 120e-6, 110e-6] + [100e-6] * 5)
    assert bench_timing.calls_per_sample(fn) == 20 and len(calls) == 1 + bench_timing.SIZING_CALLS == 6
    fn, calls = fn_of([0.2, 1e-6])                        # slow: no timed call after the first
    assert bench_timing.calls_per_sample(fn) == 1 and len(calls) == 1
    fn, calls = fn_of([0.03] * 6)                          # 30 ms calls: stop after SIZING_S of them
    assert bench_timing.calls_per_sample(fn) == 1 and len(calls) == 3
    fn, calls = fn_of([1e-6] * 6)
    assert bench_timing.calls_per_sample(fn) == bench_timing.MAX_CALLS
