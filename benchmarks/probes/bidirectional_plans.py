"""Issue 11 probe: a 2-layer bidirectional RNN at the small size (T256 B32 I=H=128, float32) under
three schedules of rnngen/runtime/schedule.py, in alternated blocks (rnngen.tools.bench_timing.time_blocks,
as the bench), median ms of forward (need_grad=False) and forward+backward:
- "directions": today's plan, the two directions of a layer at the same time, one thread each;
- "slices": the directions one after the other, each in two batch slices;
- "one thread": serial.
    python benchmarks/probes/bidirectional_plans.py [--cell lstm] [--rounds 6]
"""
import argparse
import contextlib
import os

import numpy as np

import rnngen
from rnngen.runtime import schedule
from rnngen.tools.bench_timing import time_blocks


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

    plans = {"directions": None, "slices": schedule.Plan(False, 2),
             "one thread": schedule.Plan(False, 1, one_blas_thread=True)}

    def planned(plan):
        @contextlib.contextmanager
        def context():          # schedule.plan returns `plan` inside a block (None: its own choice)
            default = schedule.plan
            schedule.plan = default if plan is None else (lambda *a, **k: plan)
            try:
                yield
            finally:
                schedule.plan = default
        return context

    print(f"# {args.cell}, 2 layers, bidirectional, (T, B, I, H) = {(T, B, I, H)}; load {os.getloadavg()}")
    timer, _ = time_blocks([((name, what), fn, planned(plan)) for name, plan in plans.items()
                            for what, fn in (("forward", fwd), ("fb", fb))], args.rounds)
    print("| schedule | forward ms | forward+backward ms |\n|---|---|---|")
    for name in plans:
        print(f"| {name} | {timer.median_ms((name, 'forward')):.2f} | {timer.median_ms((name, 'fb')):.2f} |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
