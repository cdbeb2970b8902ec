"""Issue 11 probe: the NaN/inf check of the input checks, numpy's `count_nonzero(isfinite(a)) ==
a.size` (rnngen before 2026-12-03) against the compiled one (rnngen/backends/finite.py), in
microseconds per call (minimum of 9 repeats), on a course-size x, a small-size x and 2**20 values,
float32 and float64.

    python benchmarks/probes/finite_check.py
"""
import os
import timeit

import numpy as np

from rnngen.backends.finite import all_finite


def numpy_check(value):
    return np.count_nonzero(np.isfinite(value)) == value.size


def us(f, number):
    f()
    return min(timeit.repeat(f, number=number, repeat=9)) / number * 1e6


def main():
    print(f"# NaN/inf check, us per call; load average {os.getloadavg()}")
    print("| array | dtype | numpy us | compiled us | compiled/numpy |")
    print("|---|---|---|---|---|")
    for name, shape, number in (("course x (10, 10, 3)", (10, 10, 3), 20000),
                                ("small x (256, 32, 128)", (256, 32, 128), 50), ("2**20 values", (1 << 20,), 50)):
        for dtype in (np.float32, np.float64):
            a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            assert all_finite(a) and numpy_check(a)
            t0, t1 = us(lambda: numpy_check(a), number), us(lambda: all_finite(a), number)
            print(f"| {name} | {np.dtype(dtype).name} | {t0:.2f} | {t1:.2f} | {t1 / t0:.2f} |")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
