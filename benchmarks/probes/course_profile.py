"""Issue 11 probe: where a course-size call (T10 B10 I3 H5, float32) of rnngen.RNN spends its time:
a cProfile of forward+backward calls, each function's self time put in one group (the network
layer, the generated wrappers' Python, the GEMM routing and packing, numpy, the compiled loops
and entries with their dispatch, the NaN/inf kernels), as shares of the profiled time. The profiler inflates
Python code more than compiled code: read the shares as an order, not as times.
    python benchmarks/probes/course_profile.py [--cell lstm] [--calls 2000]
"""
import argparse
import cProfile
import os
import pstats

import numpy as np

import rnngen


def group(filename, name):
    """The group of the function `name` defined in `filename`."""
    if name.startswith("_") and (name.endswith("_loop") or "_entry" in name):
        return "compiled loops and entries (with their dispatch)"
    if filename.endswith("backends/finite.py"):
        return "NaN/inf kernels"
    if "/generated/" in filename or filename.endswith(("cpu/checks.py", "cpu/mathlib.py")):
        return "generated wrappers' Python"
    if filename.endswith(("host_gemm.py", "stepgemm.py")):
        return "GEMM routing and packing"
    if "/rnngen/runtime/" in filename or filename.endswith("backends/checks.py"):
        return "network layer (checks, plan, stack, schedule)"
    if filename.startswith("~") or "numpy" in filename:
        return "numpy and builtins"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    net = rnngen.RNN(args.cell, 3, 5, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((10, 10, 3)).astype(np.float32)
    dy = np.ones((10, 10, 5), np.float32)

    def fb():
        net.forward(x)
        net.backward(dy)
    for _ in range(300):
        fb()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.calls):
        fb()
    profile.disable()
    shares, total, calls = {}, 0.0, 0
    for (filename, _, name), (_, ncalls, tottime, _, _) in pstats.Stats(profile).stats.items():
        key = group(filename, name)
        shares[key] = shares.get(key, 0.0) + tottime
        total += tottime
        calls += ncalls
    print(f"# {args.cell} course forward+backward, {args.calls} calls; load {os.getloadavg()}")
    print(f"# {calls / args.calls:.0f} Python-level calls per forward+backward; "
          f"{total / args.calls * 1e6:.1f} us profiled per forward+backward")
    print("| group | share of the profiled self time |")
    print("|---|---|")
    for key, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"| {key} | {100 * t / total:.1f}% |")


if __name__ == "__main__":
    main()
