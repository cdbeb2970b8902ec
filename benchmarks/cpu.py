"""CPU benchmark: `rnngen bench` (see rnngen/bench.py), followed by the table of issue 11's CPU
goals checked against the run. The goals live here, not in the installed package.

    python benchmarks/cpu.py --compare-threads      # default threads and one thread, all goals
    python benchmarks/cpu.py --quick

Ratios are torch time / rnngen time, from rows at the libraries' default threads, fp32.
"""
import argparse
import sys

from rnngen.tools import bench

#: the cells the ratio goals name
RATIO_CELLS = ("lstm", "gru", "rnn_tanh")
#: forward+backward: torch / rnngen at least this, per size
FB_GOALS = {"course": 5.0, "small": 1.3, "fastrnns": 1.1}
#: forward+backward of a 2-layer bidirectional lstm at small: torch / rnngen at least this
BIDIR_FB_GOAL = 1.5
#: forward with no backward to follow (rnngen need_grad=False, torch no_grad): torch / rnngen
FWD_GOALS = {"course": 3.0, "small": 0.9, "fastrnns": 0.9}
#: fastrnns forward+backward GFLOP/s over the all-cores GEMM rate of the same run
GEMM_RATE_GOAL = 0.8
#: gru_classic and lstm_peephole: time per GEMM FLOP at most this times lstm's (forward+backward)
PER_FLOP_CELLS = ("gru_classic", "lstm_peephole")
PER_FLOP_GOAL = 1.3
PER_FLOP_SIZES = ("small", "fastrnns")
#: rnngen time with the default threads at most this times its time with one thread
THREADS_GOAL = 1.0
#: lstm small: float64 time at most this times float32 time
FLOAT64_GOAL = 2.2


def _key(r):
    return (r["cell"], r["size"], r["layers"], r["bidirectional"], r["dtype"], r["threads"])


def base_setting(rows):
    """The thread setting the goals are read at: the default threads where the run has them."""
    settings = [r["threads"] for r in rows]
    return "default" if "default" in settings or not settings else settings[0]


def goals(rows):
    """Rows (goal, target, measured, verdict) of issue 11's goals against one run's rows."""
    by = {_key(r): r for r in rows}
    base = base_setting(rows)
    out = []

    def row(cell, size, layers=1, bidirectional=False, dtype="float32", threads=None):
        return by.get((cell, size, layers, bidirectional, dtype, threads or base))

    def add(goal, target, values):
        """values: [(label, value text, met)]; nothing measured: 'not measured'."""
        if not values:
            out.append((goal, target, "not measured", "—"))
            return
        met = all(m for _, _, m in values)
        out.append((goal, target, ", ".join(f"{lbl} {v}" for lbl, v, _ in values), "met" if met else "missed"))

    def ratios(kind, size, goal, cells=RATIO_CELLS, layers=1, bidirectional=False):
        values = []
        for cell in cells:
            r = row(cell, size, layers, bidirectional)
            if r and r[f"torch_{kind}_ms"] and r[f"rnngen_{kind}_ms"]:
                v = r[f"torch_{kind}_ms"] / r[f"rnngen_{kind}_ms"]
                values.append((cell, f"{v:.2f}x", v >= goal))
        return values

    for size, goal in FB_GOALS.items():
        add(f"fwd+bwd torch/rnngen at {size}", f">= {goal}x", ratios("fb", size, goal))
    add("fwd+bwd torch/rnngen, 2-layer bidirectional lstm at small", f">= {BIDIR_FB_GOAL}x",
        ratios("fb", "small", BIDIR_FB_GOAL, ("lstm",), 2, True))
    values = []
    for cell in RATIO_CELLS:
        r = row(cell, "fastrnns")
        rate = r and (r.get("gemm_gflops_one") if base == "1" else r.get("gemm_gflops_all"))
        if rate:
            v = bench.fb_gflops(r) / rate
            values.append((cell, f"{100 * v:.0f}% ({bench.fb_gflops(r):.0f} of {rate:.0f} GFLOP/s, "
                                 f"threads {base})",
                           v >= GEMM_RATE_GOAL))
    add("fastrnns fwd+bwd share of the all-cores GEMM rate (probes in the same case's rounds)", f">= {100 * GEMM_RATE_GOAL:.0f}%", values)
    need_grad = any(r["fwd_need_grad"] for r in rows)
    for size, goal in FWD_GOALS.items():
        add(f"forward{'(need_grad=False)' if need_grad else ' (need_grad not in this runtime)'} "
            f"torch/rnngen at {size}", f">= {goal}x", ratios("fwd", size, goal))
    values = []
    for size in PER_FLOP_SIZES:
        ref = row("lstm", size)
        for cell in PER_FLOP_CELLS:
            r = row(cell, size)
            if ref and r:
                v = (r["rnngen_fb_ms"] / r["gemm_flops_fwd"]) / (ref["rnngen_fb_ms"] / ref["gemm_flops_fwd"])
                values.append((f"{cell} {size}", f"{v:.2f}x", v <= PER_FLOP_GOAL))
    add("fwd+bwd time per FLOP against lstm's", f"<= {PER_FLOP_GOAL}x", values)
    values = []
    for r in rows:
        if r["threads"] != "default":
            continue
        one = by.get(_key(r)[:-1] + ("1",))
        if one is None:
            continue
        for kind in ("fwd", "fb"):
            v = r[f"rnngen_{kind}_ms"] / one[f"rnngen_{kind}_ms"]
            label = f"{r['cell']} {r['size']}{' 2 bidir' if r['bidirectional'] else ''}" \
                    f"{' ' + r['dtype'] if r['dtype'] != 'float32' else ''} {kind}"
            values.append((label, f"{v:.2f}x", v <= THREADS_GOAL))
    add("rnngen time, default threads / one thread (run with --compare-threads)", f"<= {THREADS_GOAL}x",
        values)
    values = []
    r32, r64 = row("lstm", "small"), row("lstm", "small", dtype="float64")
    if r32 and r64:
        for kind in ("fwd", "fb"):
            v = r64[f"rnngen_{kind}_ms"] / r32[f"rnngen_{kind}_ms"]
            values.append((f"lstm small {kind}", f"{v:.2f}x", v <= FLOAT64_GOAL))
    add("float64 time / float32 time", f"<= {FLOAT64_GOAL}x", values)
    return out


def goals_table(rows):
    lines = ["| goal (issue 11) | target | measured | |", "|---|---|---|---|"]
    for goal, target, measured, verdict in goals(rows):
        lines.append(f"| {goal} | {target} | {measured} | {verdict} |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/cpu.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    res = bench.run_args(p.parse_args(argv))
    if isinstance(res, int):
        return res
    print("")
    print(f"Goals of issue 11 on this run (read from the rows at threads: {base_setting(res['rows'])}; "
          f"the goals are set for the default threads):")
    print("")
    for line in goals_table(res["rows"]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
