"""Issue 15 probe: rate 0 costs nothing. rnngen.RNN forward+backward of lstm_zoneout and lstm_vd at
rate 0 (the kernels of the cell with every mask 1) and at rate 0.1, against lstm, interleaved call
by call in one process (so that the machine's load hits every cell alike); medians in ms and the
ratio to lstm's median.

    python benchmarks/probes/rate0.py [--size fastrnns|small] [--reps 15] [--threads N]
"""
import argparse
import os
import time

import numpy as np

import rnngen

SIZES = {"small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512)}

ap = argparse.ArgumentParser()
ap.add_argument("--size", default="fastrnns", choices=SIZES)
ap.add_argument("--reps", type=int, default=15)
ap.add_argument("--threads", type=int, default=None, help="rnngen.set_num_threads(N) (default: rnngen's)")
args = ap.parse_args()
if args.threads:
    rnngen.set_num_threads(args.threads)
T, B, I, H = SIZES[args.size]
x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
cases = [("lstm", None), ("lstm_zoneout", {"zoneout": 0.0}), ("lstm_vd", {"dropout_h": 0.0}),
         ("lstm_zoneout", {"zoneout": 0.1}), ("lstm_vd", {"dropout_h": 0.1})]
nets = [rnngen.RNN(cell, I, H, seed=1, rates=rates) for cell, rates in cases]
dy = np.ones((T, B, H), np.float32)


def call(net):
    t0 = time.perf_counter()
    net.forward(x)
    net.backward(dy)
    return time.perf_counter() - t0


for net in nets:          # compile and warm up
    call(net)
    call(net)
times = [[] for _ in nets]
for _ in range(args.reps):
    for k, net in enumerate(nets):
        times[k].append(call(net))
print(f"{args.size} (T, B, I, H) = {(T, B, I, H)}, float32, forward+backward, {args.reps} interleaved rounds, "
      f"threads {rnngen.get_num_threads()}, load average {os.getloadavg()[0]:.2f} at the end")
base = np.median(times[0])
print("| cell | rates | median ms | / lstm |")
print("|---|---|---|---|")
for (cell, rates), t in zip(cases, times):
    print(f"| {cell} | {rates or '-'} | {np.median(t) * 1e3:.1f} | {np.median(t) / base:.3f} |")
