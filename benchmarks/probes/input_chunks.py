"""Issue 11 probe: rnngen.RNN's inference forward (need_grad=False, default threads) with the loop's
input GEMMs in chunks of different sizes (rnngen/backends/cpu/input_chunks.py: CHUNK_BYTES of
32 KB, 64 KB and the default 256 KB, whatever the weights' size, and TC = T, one GEMM of every
step as the hoisting did), in alternated blocks (rnngen.tools.bench_timing.time_blocks, as the bench); median ms.
    python benchmarks/probes/input_chunks.py [--rounds 8] [--threads N] [--large] [--bidirectional]
(--threads N: rnngen.set_num_threads(N) first; N = 1 runs one batch slice, nothing shared;
--large: chunks of 1, 2, 4 and 8 MB too; --bidirectional: the networks bidirectional, a direction
per core, each with weights of its own)
"""
import argparse
import contextlib
import os

import numpy as np

import rnngen
from rnngen.backends.cpu import input_chunks
from rnngen.tools.bench_timing import time_blocks

CASES = [("lstm", (256, 32, 128, 128)), ("gru", (256, 32, 128, 128)), ("lstm", (256, 64, 256, 256)),
         ("lstm", (100, 64, 512, 512))]


def setting(chunk_bytes, max_weight_bytes=1 << 40):
    @contextlib.contextmanager
    def context():
        old = input_chunks.CHUNK_BYTES, input_chunks.MAX_WEIGHT_BYTES
        input_chunks.CHUNK_BYTES, input_chunks.MAX_WEIGHT_BYTES = chunk_bytes, max_weight_bytes
        try:
            yield
        finally:
            input_chunks.CHUNK_BYTES, input_chunks.MAX_WEIGHT_BYTES = old
    return context


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--bidirectional", action="store_true")
    args = ap.parse_args()
    rounds = args.rounds
    if args.threads is not None:
        rnngen.set_num_threads(args.threads)
    options = {"32 KB": setting(32 << 10), "64 KB": setting(64 << 10), "256 KB": setting(256 << 10)}
    if args.large:
        options |= {f"{n} MB": setting(n << 20) for n in (1, 2, 4, 8)}
    options["TC = T"] = setting(1, 0)
    print(f"# inference forward, threads {args.threads or 'default'}"
          f"{', bidirectional' if args.bidirectional else ''}; load {os.getloadavg()}")
    print("| cell | (T, B, I, H) | " + " | ".join(f"{k} ms" for k in options) + " |")
    print("|---|---|" + "---|" * len(options))
    for cell, (T, B, I, H) in CASES:
        net = rnngen.RNN(cell, I, H, dtype=np.float32, bidirectional=args.bidirectional)
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
        timer, _ = time_blocks([(k, lambda: net.forward(x, need_grad=False), c) for k, c in options.items()], rounds)
        print(f"| {cell} | {(T, B, I, H)} | " + " | ".join(f"{timer.median_ms(k):.2f}" for k in options) + " |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
