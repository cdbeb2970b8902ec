"""Issue 11 probe: why float64 costs more than twice float32 at the bench's small size (LSTM T256
B32 I=H=128): its (T*B, 4H) arrays (the hoisted input product, the saved gates, dZ) are 32 MB,
twice float32's 16 MB, and this machine's L3 cache is 32 MB. One thread, ms (best of 7 blocks of
5 calls): writing a fresh (T*B, 4H) array; the hoisted input GEMM x @ W_ih.T into a fresh output
(host_gemm.matmul, as the training forward runs it) and into one reused (stepgemm.gemm_panels);
the weight gradient dZ.T @ x (host_gemm.matmul_tn) and its panel GEMM alone on packed x.

    python benchmarks/probes/float64_working_set.py
"""
import os
import timeit

import numpy as np
import threadpoolctl

from rnngen.backends.cpu import host_gemm
from rnngen.backends.cpu.stepgemm import gemm_panels, gemm_panels_tn, panels

T, B, I, H = 256, 32, 128, 128


def best_ms(fn):
    fn()
    return min(timeit.repeat(fn, number=5, repeat=7)) / 5 * 1e3


def main():
    print(f"# lstm small (T={T}, B={B}, I={I}, H={H}), one thread, ms; load {os.getloadavg()}")
    print("| dtype | (T*B, 4H) MB | fresh array, filled | hoisted GEMM, fresh output | into a reused output "
          "| dZ.T @ x (matmul_tn) | its panel GEMM alone |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((T * B, I)).astype(dtype)
            w = rng.standard_normal((4 * H, I)).astype(dtype)
            dz = rng.standard_normal((T * B, 4 * H)).astype(dtype)
            out, px, pw = np.empty((T * B, 4 * H), dtype), panels(x), panels(w.T)
            grad = np.empty((4 * H, I), dtype)
            row = [best_ms(lambda: np.empty((T * B, 4 * H), dtype).fill(0)),
                   best_ms(lambda: host_gemm.matmul(x, w.T)), best_ms(lambda: gemm_panels(x, pw, out)),
                   best_ms(lambda: host_gemm.matmul_tn(dz, x)), best_ms(lambda: gemm_panels_tn(dz, px, grad))]
            cells = " | ".join(f"{v:.2f}" for v in row)
            print(f"| {np.dtype(dtype).name} | {out.nbytes / 2**20:.0f} | {cells} |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
