"""Issue 11 probe: the course-size call (T10 B10 I3 H5) of rnngen.RNN, forward with need_grad=False,
forward (need_grad=True) and forward+backward, in microseconds: the mean over 3000 back-to-back
calls, and the minimum over 30 blocks of 300 calls (what other tenants of a shared machine disturb
least). With --before COMMIT, the same network built on that commit's generated module (read with
`git show`; today's runtime) runs alternately with today's, block by block: what a change of the
generated code bought at the RNN level.

    python benchmarks/probes/course_call.py            # lstm
    python benchmarks/probes/course_call.py rnn_tanh
    python benchmarks/probes/course_call.py lstm --before bb6c35a
"""
import argparse
import os
import sys
import tempfile
import time
import timeit

import numpy as np

import rnngen

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modules_before_after import before_module  # noqa: E402


def per_call_us(f, n=3000):
    for _ in range(200):
        f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e6


def min_block_us(f, n=300, blocks=30):
    return min(timeit.repeat(f, number=n, repeat=blocks)) / n * 1e6


def cases(net):
    x = np.random.default_rng(0).standard_normal((10, 10, 3)).astype(np.float32)
    y, _ = net.forward(x)
    dy = np.ones_like(y)

    def fb():
        net.forward(x)
        net.backward(dy)
    return {"RNN.forward(x, need_grad=False)": lambda: net.forward(x, need_grad=False),
            "RNN.forward(x)": lambda: net.forward(x), "forward+backward": fb}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cell", nargs="?", default="lstm")
    ap.add_argument("--before", help="a commit: its generated module against today's, alternately")
    a = ap.parse_args()
    if a.before is None:
        print(f"{a.cell}: " + ", ".join(f"{name} {per_call_us(f):.1f} us (min of blocks {min_block_us(f):.1f})"
                                        for name, f in cases(rnngen.RNN(a.cell, 3, 5)).items()))
        return
    with tempfile.TemporaryDirectory() as folder:
        old = before_module(a.cell, a.before, folder)
        sides = {"before": cases(rnngen.RNN(old, 3, 5)), "after": cases(rnngen.RNN(a.cell, 3, 5))}
        best = {(side, name): [] for side in sides for name in sides[side]}
        for _ in range(10):                      # alternate the two sides, 10 rounds of 3 blocks
            for side, fns in sides.items():
                for name, f in fns.items():
                    best[side, name].append(min_block_us(f, blocks=3))
        print(f"# {a.cell}, generated module at {a.before} -> today's; min of 30 blocks of 300 calls, us; "
              f"load average {os.getloadavg()}")
        for name in sides["after"]:
            b, t = min(best["before", name]), min(best["after", name])
            print(f"{name}: {b:.1f} -> {t:.1f} us ({t / b:.2f}x)")


if __name__ == "__main__":
    main()
