"""CPU benchmark: the same table as `rnngen bench` (see rnngen/bench.py), followed by the
project's CPU performance targets (issue 4) checked against the run. The targets live here, not in
the installed package. Run `python benchmarks/cpu.py --help`."""
import argparse
import sys

import numpy as np

from rnngen.tools import bench

#: issue 4's CPU targets: torch / rnngen time ratios (fp32) that rnngen should reach or beat
FB_RATIO_GOALS = (("course", 100), ("small", 5), ("fastrnns", 2.5))
FWD_RATIO_GOALS = (("small", 3), ("fastrnns", 3))
GEMM_RATE_GOAL = 0.7       # fastrnns forward+backward GFLOP/s / the run's sgemm GFLOP/s
PEEPHOLE_GOAL = 1.3        # peephole LSTM time / LSTM time (forward+backward)
MEMORY_GOAL = 1.3          # fastrnns peak / (inputs + params + saved + outputs + gradients)


def targets(rows, sgemm_gflops):
    """Issue 4's targets, checked against one run's rows (ratios are torch / rnngen)."""
    by = {(r["cell"], r["size"]): r for r in rows}
    lines = []

    def ratio_check(what, key_r, key_t, size, goal):
        got = [(c, by[(c, size)][key_t] / by[(c, size)][key_r]) for c in ("lstm", "gru", "rnn_tanh")
               if (c, size) in by and by[(c, size)][key_t]]
        if got:
            ok = all(v >= goal for _, v in got)
            lines.append(f"- {what} >= {goal}x torch at {size}: "
                         + ", ".join(f"{c} {v:.2f}x" for c, v in got) + (" — met" if ok else " — missed"))

    for size, goal in FB_RATIO_GOALS:
        ratio_check("fwd+bwd", "rnngen_fb_ms", "torch_fb_ms", size, goal)
    for size, goal in FWD_RATIO_GOALS:
        ratio_check("forward", "rnngen_fwd_ms", "torch_fwd_ms", size, goal)
    got = [(r["cell"], 3 * r["gemm_flops_fwd"] / (r["rnngen_fb_ms"] * 1e-3) / 1e9 / sgemm_gflops)
           for r in rows if r["size"] == "fastrnns"]
    if got:
        lines.append(f"- fastrnns fwd+bwd >= {100 * GEMM_RATE_GOAL:.0f}% of the sgemm rate: "
                     + ", ".join(f"{c} {100 * v:.0f}%" for c, v in got)
                     + (" — met" if all(v >= GEMM_RATE_GOAL for _, v in got) else " — missed"))
    for size in bench.SIZES:
        if ("lstm", size) in by and ("lstm_peephole", size) in by:
            v = by[("lstm_peephole", size)]["rnngen_fb_ms"] / by[("lstm", size)]["rnngen_fb_ms"]
            lines.append(f"- peephole LSTM within {PEEPHOLE_GOAL}x of LSTM at {size} (fwd+bwd): {v:.2f}x"
                         + (" — met" if v <= PEEPHOLE_GOAL else " — missed"))
    got = [(r["cell"], r["peak_bytes"] / r["expected_bytes"]) for r in rows if r["size"] == "fastrnns"]
    if got:
        lines.append(f"- fastrnns peak memory <= {MEMORY_GOAL}x (inputs + params + saved + outputs + gradients): "
                     + ", ".join(f"{c} {v:.2f}x" for c, v in got)
                     + (" — met" if all(v <= MEMORY_GOAL for _, v in got) else " — missed"))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/cpu.py", description=__doc__)
    bench.add_arguments(p)
    res = bench.run_args(p.parse_args(argv))
    if isinstance(res, int):
        return res
    if res["dtype"] == np.dtype(np.float32).name:
        check = targets(res["rows"], res["gemm_gflops"])
        if check:
            print("")
            print("Targets of issue 4 on this run:")
            for line in check:
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
