"""Issue 11 probe: rnngen.RNN at default threads (two batch slices) with the per-step GEMMs' packed
weights shared by the slices of a call (host_gemm.SharedPanels) always, from MIN_SHARED_BYTES (the
default, 1 MB) or never (a copy per slice), in alternated blocks (rnngen.tools.bench_timing.time_blocks,
as the bench): median ms of the inference forward (need_grad=False) and of forward+backward, float32.
    python benchmarks/probes/shared_panels.py [--rounds 8]
"""
import argparse
import contextlib
import os

import numpy as np

import rnngen
from rnngen.backends.cpu import host_gemm
from rnngen.tools.bench_timing import time_blocks

CASES = [("lstm", (256, 32, 128, 128)), ("gru", (256, 32, 128, 128)), ("lstm", (100, 64, 512, 512)),
         ("gru", (100, 64, 512, 512))]


def setting(min_shared_bytes):
    @contextlib.contextmanager
    def context():
        old = host_gemm.MIN_SHARED_BYTES
        host_gemm.MIN_SHARED_BYTES = min_shared_bytes
        try:
            yield
        finally:
            host_gemm.MIN_SHARED_BYTES = old
    return context


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    rounds = ap.parse_args().rounds
    options = {"always": setting(0), "from 1 MB": setting(1 << 20), "never": setting(1 << 62)}
    print(f"# default threads; load {os.getloadavg()}")
    print("| cell | (T, B, I, H) | " + " | ".join(f"{k}: inference / fwd+bwd ms" for k in options) + " |")
    print("|---|---|" + "---|" * len(options))
    for cell, (T, B, I, H) in CASES:
        net = rnngen.RNN(cell, I, H, dtype=np.float32)
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
        dy = np.ones((T, B, H), np.float32)

        def fb():
            net.forward(x)
            net.backward(dy)
        entries = [((k, what), fn, c) for k, c in options.items()
                   for what, fn in (("inf", lambda: net.forward(x, need_grad=False)), ("fb", fb))]
        timer, _ = time_blocks(entries, rounds)
        cols = [f"{timer.median_ms((k, 'inf')):.2f} / {timer.median_ms((k, 'fb')):.2f}" for k in options]
        print(f"| {cell} | {(T, B, I, H)} | " + " | ".join(cols) + " |", flush=True)
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
