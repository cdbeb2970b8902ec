"""Issue 11 probe: a bias gradient (the sum of the rows of dZ) as numpy's a.sum(axis=0) against
mathlib.column_sum (ones @ a through BLAS), float32, at the course, small and fastrnns shapes of
an LSTM's dZ; minimum of 5 repeats, us per call, and the largest difference relative to the sum.

    python benchmarks/probes/column_sum.py
"""
import os
import timeit

import numpy as np

from rnngen.backends.cpu.mathlib import column_sum


def main():
    print(f"# load average {os.getloadavg()}")
    print("| shape | sum(axis=0) us | column_sum us | ratio | max rel diff |")
    print("|---|---|---|---|---|")
    for shape in [(100, 20), (8192, 512), (6400, 2048)]:
        a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        n = 20000 if shape[0] < 1000 else 20
        t0 = min(timeit.repeat(lambda: a.sum(axis=0), number=n, repeat=5)) / n * 1e6
        t1 = min(timeit.repeat(lambda: column_sum(a), number=n, repeat=5)) / n * 1e6
        ref = a.astype(np.float64).sum(axis=0)
        diff = np.abs(column_sum(a) - ref).max() / np.abs(ref).max()
        print(f"| {shape} | {t0:.2f} | {t1:.2f} | {t1 / t0:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
