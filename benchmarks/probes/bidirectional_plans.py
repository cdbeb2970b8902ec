"""Issue 11 probe: a 2-layer bidirectional RNN at the small size (T256 B32 I=H=128, float32) under
three schedules of rnngen/runtime/schedule.py, alternated in rounds, median ms of forward
(need_grad=False) and forward+backward:
- "directions": today's plan, the two directions of a layer at the same time, one thread each;
- "slices": the directions one after the other, each in two batch slices;
- "one thread": serial.
    python benchmarks/probes/bidirectional_plans.py [--cell lstm] [--rounds 6]
"""
import argparse
import os
import time

import numpy as np

import rnngen
from rnngen.runtime import schedule


def _median(fn, n=7):
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    T, B, I, H = 256, 32, 128, 128
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    net = rnngen.RNN(args.cell, I, H, num_layers=2, bidirectional=True, dtype=np.float32, seed=0)
    dy = np.ones((T, B, 2 * H), np.float32)

    def fb():
        net.forward(x)
        net.backward(dy)

    def fwd():
        net.forward(x, need_grad=False)

    default = schedule.plan
    plans = {"directions": default, "slices": lambda *a, **k: schedule.Plan(False, 2),
             "one thread": lambda *a, **k: schedule.Plan(False, 1, one_blas_thread=True)}
    print(f"# {args.cell}, 2 layers, bidirectional, (T, B, I, H) = {(T, B, I, H)}; load {os.getloadavg()}")
    times = {name: ([], []) for name in plans}
    try:
        for _ in range(args.rounds):
            for name, plan in plans.items():
                schedule.plan = plan
                times[name][0].append(_median(fwd))
                times[name][1].append(_median(fb))
    finally:
        schedule.plan = default
    print("| schedule | forward ms | forward+backward ms | fwd+bwd per round |\n|---|---|---|---|")
    for name, (f, b) in times.items():
        print(f"| {name} | {np.median(f):.2f} | {np.median(b):.2f} | {' '.join(f'{v:.1f}' for v in b)} |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
