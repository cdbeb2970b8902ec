"""Issue 11 probe: a small call's training forward and backward through the compiled entries (the
modules' _forward_entry and _backward_entry, rnngen/backends/cpu/entry.py) against the wrapper's
Python lines (the module's _one_call switched off), at sizes mathlib.one_call admits, from the
course size to its limits: the best of 5 blocks of calls, us, the two paths alternated per size.
Whether the entries pay at every size they are used at (their products run on the panels, the
Python lines' on BLAS or the panels, host_gemm.py).

    python benchmarks/probes/entry_sizes.py [--cell lstm]
"""
import argparse
import os
import timeit

import numpy as np

import rnngen
from rnngen.backends.cpu import mathlib

SIZES = [(10, 10, 3, 5), (2, 2, 300, 4), (64, 32, 8, 15), (100, 3, 50, 100), (8, 32, 128, 127), (10, 18, 181, 181)]


def best_us(fn, calls):
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    a = ap.parse_args()
    m = rnngen.load(a.cell)
    print(f"# {a.cell}, float32, entries vs the Python lines, us; load {os.getloadavg()}")
    print("| (T, B, I, H) | forward entry | forward Python | ratio | backward entry | backward Python | ratio |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for T, B, I, H in SIZES:
        assert mathlib.one_call(T, B, I, H)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        params = m.init_params(I, H)
        lengths = np.full(B, T, np.int64)
        dy = np.ones((T, B, H), np.float32)
        calls = max(3, int(2e4 / (T * B * H) ** 0.9))
        got = {}
        for path in ("entry", "python"):
            m._one_call = mathlib.one_call if path == "entry" else (lambda *args: False)
            saved = m.forward_unchecked(x, params, None, lengths, False)[2]
            m.backward_unchecked(dy, None, saved)
            got[path] = (best_us(lambda: m.forward_unchecked(x, params, None, lengths, False), calls),
                         best_us(lambda: m.backward_unchecked(dy, None, saved), calls))
        m._one_call = mathlib.one_call
        (fe, be), (fp, bp) = got["entry"], got["python"]
        print(f"| {(T, B, I, H)} | {fe:.1f} | {fp:.1f} | {fe / fp:.2f} | {be:.1f} | {bp:.1f} | {be / bp:.2f} |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
