"""Issue 11 probe: the PyTorch bridge (rnngen.torch.RNN, float32, default threads) with its batch
slices sharing one packed copy of the weights (shared_panels, the default since 2026-12-07's
seventh session) and without it (each slice packs its own, and the inference chunk rule sees no
sharing: TC = T for weights over 2 MB), in alternated blocks (rnngen.tools.bench_timing.time_blocks);
median ms of the inference forward (torch.no_grad) and of forward+backward.
    python benchmarks/probes/bridge_shared_panels.py [--rounds 6]
"""
import argparse
import contextlib
import os

import torch

import rnngen.torch as rt
from rnngen.runtime import schedule
from rnngen.tools.bench_timing import time_blocks

CASES = [("lstm", (100, 64, 512, 512)), ("gru", (100, 64, 512, 512)), ("lstm", (256, 32, 128, 128))]


@contextlib.contextmanager
def unshared():
    """The slices as the bridge ran them before: no shared_panels."""
    real = schedule._shared_panels
    schedule._shared_panels = lambda fn, slices: {}
    try:
        yield
    finally:
        schedule._shared_panels = real


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    rounds = ap.parse_args().rounds
    print(f"# rnngen.torch.RNN, default threads; load {os.getloadavg()}")
    print("| cell | (T, B, I, H) | inference unshared ms | shared ms | fwd+bwd unshared ms | shared ms |")
    print("|---|---|---|---|---|---|")
    for cell, (T, B, I, H) in CASES:
        rnn = rt.RNN(cell, I, H)
        x = torch.randn(T, B, I)

        def infer():
            with torch.no_grad():
                rnn(x)

        def fb():
            xr = x.clone().requires_grad_(True)
            y, _ = rnn(xr)
            y.sum().backward()
        entries = [("inf unshared", infer, unshared), ("inf shared", infer, contextlib.nullcontext),
                   ("fb unshared", fb, unshared), ("fb shared", fb, contextlib.nullcontext)]
        timer, _ = time_blocks(entries, rounds)
        print(f"| {cell} | {(T, B, I, H)} | " + " | ".join(f"{timer.median_ms(k):.1f}" for k, *_ in entries) + " |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
