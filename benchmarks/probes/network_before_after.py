"""Issue 11 probe: rnngen.RNN built on today's generated modules against those of an earlier commit
(modules_before_after.before_module: that commit's module and math library), both at the library's
default threads (the runtime's batch slices on every core), in alternated blocks
(rnngen.tools.bench_timing.time_blocks, as the bench): median ms of the inference forward
(need_grad=False) and of forward+backward, float32.
    python benchmarks/probes/network_before_after.py --before <commit> [--cells lstm,gru,rnn_tanh]
        [--sizes small,fastrnns] [--rounds 6]
"""
import argparse
import contextlib
import os
import sys
import tempfile

import numpy as np

import rnngen
from rnngen.tools import bench
from rnngen.tools.bench_timing import time_blocks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modules_before_after import before_module  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--cells", default="lstm,gru,rnn_tanh")
    ap.add_argument("--sizes", default="small,fastrnns")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    print(f"# rnngen.RNN, {a.before} -> working tree; default threads ({os.cpu_count()} cores); "
          f"load {os.getloadavg()}")
    print("| cell | size | inference before ms | after ms | after/before | fwd+bwd before ms | after ms | after/before |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for cell in a.cells.split(","):
            modules = {"before": before_module(cell, a.before, folder), "after": rnngen.load(cell)}
            for size in a.sizes.split(","):
                T, B, I, H = bench.SIZES[size]
                x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
                dy = np.ones((T, B, H), np.float32)
                entries = []
                for side, m in modules.items():
                    net = rnngen.RNN(m, I, H, dtype=np.float32, seed=0)

                    def fb(net=net):
                        net.forward(x)
                        net.backward(dy)
                    entries += [((side, "inf"), lambda net=net: net.forward(x, need_grad=False), contextlib.nullcontext),
                                ((side, "fb"), fb, contextlib.nullcontext)]
                timer, _ = time_blocks(entries, a.rounds)
                cols = []
                for what in ("inf", "fb"):
                    t0, t1 = timer.median_ms(("before", what)), timer.median_ms(("after", what))
                    cols.append(f"{t0:.2f} | {t1:.2f} | {t1 / t0:.2f}")
                print(f"| {cell} | {size} | {' | '.join(cols)} |", flush=True)
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
