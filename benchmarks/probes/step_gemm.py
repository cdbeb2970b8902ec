"""Issue 11 probe: the per-step GEMM on packed weights (rnngen/backends/cpu/stepgemm.py) against
np.dot, both inside a Numba loop of T calls as the generated time loops make them, one BLAS thread,
float32 and float64; GFLOP/s of the fastest of 5 alternated runs. The shapes (M rows, K, N) are the
per-step products of BENCHMARKS.md's sizes: h_t @ W.T forward and dz_t @ W backward, whole batches
and batch halves. Run from the repo root:

    python benchmarks/probes/step_gemm.py
"""
import os
import time

import numpy as np
import threadpoolctl
from numba import njit

from rnngen.backends.cpu.stepgemm import gemm_panels, panels

SHAPES = [(10, 5, 20, "course forward"), (10, 20, 5, "course backward"),
          (16, 128, 512, "lstm small forward, half batch"), (32, 128, 512, "lstm small forward"),
          (16, 512, 128, "lstm small backward, half batch"), (32, 512, 2048, "lstm fastrnns forward, half batch"),
          (64, 512, 2048, "lstm fastrnns forward"), (32, 2048, 512, "lstm fastrnns backward, half batch"),
          (32, 512, 512, "rnn_tanh fastrnns, half batch")]


@njit
def _steps_panels(h, p, out, T):
    for _ in range(T):
        gemm_panels(h, p, out)


@njit
def _steps_dot(h, wt, out, T):
    for _ in range(T):
        np.dot(h, wt, out)


def main():
    rng = np.random.default_rng(0)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()}")
    print("| dtype | M, K, N | shape of | packed GFLOP/s | np.dot GFLOP/s | packed / np.dot rate | max rel. error |")
    print("|---|---|---|---|---|---|---|")
    with threadpoolctl.threadpool_limits(1):
        for dtype in (np.float32, np.float64):
            for M, K, N, what in SHAPES:
                a = rng.standard_normal((M, K)).astype(dtype)
                w = rng.standard_normal((N, K)).astype(dtype)
                p, wt = panels(w.T), w.T
                out, out2 = np.empty((M, N), dtype), np.empty((M, N), dtype)
                T = max(20, int(4e8 / (2 * M * K * N)))
                _steps_panels(a, p, out, 1)
                _steps_dot(a, wt, out2, 1)
                ref = a.astype(np.float64) @ wt.astype(np.float64)
                err = float(np.abs(out - ref).max() / np.abs(ref).max())
                best = {"panels": np.inf, "dot": np.inf}
                for _ in range(5):
                    t0 = time.perf_counter()
                    _steps_panels(a, p, out, T)
                    best["panels"] = min(best["panels"], time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    _steps_dot(a, wt, out2, T)
                    best["dot"] = min(best["dot"], time.perf_counter() - t0)
                rate = {k: 2 * M * K * N * T / v / 1e9 for k, v in best.items()}
                print(f"| {np.dtype(dtype).name} | {M}, {K}, {N} | {what} | {rate['panels']:.1f} | {rate['dot']:.1f} | "
                      f"{rate['panels'] / rate['dot']:.2f} | {err:.1e} |")
    print(f"# load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
