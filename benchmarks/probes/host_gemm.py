"""Issue 11 probe: the wrappers' large GEMMs through BLAS (numpy) and through rnngen's panels
(rnngen/backends/cpu/host_gemm.py, stepgemm.py), one thread, float32 and float64; GFLOP/s of the
median call in alternated blocks (rnngen.tools.bench_timing.time_blocks, as the bench), and the ratio panels / BLAS rate. The shapes are those of an LSTM
at BENCHMARKS.md's small and fastrnns sizes, whole batches and batch halves (a slice's GEMMs):
the hoisted x @ W_ih.T, the input gradient dZ @ W_ih and the weight gradients dZ.T @ x. Prints
which of the two the wrappers use on this machine (host_gemm.PANELS) and why. Run from the repo root:

    python benchmarks/probes/host_gemm.py
"""
import contextlib
import os

import numpy as np
import threadpoolctl

from rnngen.backends.cpu import host_gemm
from rnngen.backends.cpu.host_gemm import panel_product
from rnngen.backends.cpu.stepgemm import _has_avx512
from rnngen.tools.bench_timing import time_blocks

# (name, kind, M, K, N): "nt" a (M, K) @ W.T with W (N, K); "nn" a (M, K) @ W (K, N); "tn" dZ.T @ v with dZ (K, M)
SHAPES = [("small hoisted, half batch", "nt", 4096, 128, 512), ("small hoisted", "nt", 8192, 128, 512),
          ("small dx", "nn", 8192, 512, 128), ("small dW_ih", "tn", 512, 8192, 128),
          ("fastrnns hoisted, half batch", "nt", 3200, 512, 2048), ("fastrnns dx", "nn", 6400, 2048, 512),
          ("fastrnns dW_ih", "tn", 2048, 6400, 512)]


def main():
    libs = threadpoolctl.threadpool_info()
    print(f"# {os.uname().nodename}: load {os.getloadavg()}; CPU AVX-512: {_has_avx512()}; BLAS: "
          + ", ".join(f"{lib['internal_api']} {lib.get('architecture')}" for lib in libs if lib["user_api"] == "blas"))
    print(f"# the wrappers use: {'panels' if host_gemm.PANELS else 'BLAS'}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE')}\n")
    print("| GEMM | dtype | BLAS GFLOP/s | panels GFLOP/s | panels / BLAS |\n|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for dtype in (np.float32, np.float64):
            for name, kind, M, K, N in SHAPES:
                if kind == "nt":
                    a, w = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
                    blas, mine = (lambda: a @ w.T), (lambda: panel_product(a, w.T))
                elif kind == "nn":
                    a, w = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
                    blas, mine = (lambda: a @ w), (lambda: panel_product(a, w))
                else:
                    a, w = rng.standard_normal((K, M)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
                    blas, mine = (lambda: a.T @ w), (lambda: panel_product(a, w, tn=True))
                gflop = 2 * M * K * N / 1e9
                timer, _ = time_blocks([("blas", blas, contextlib.nullcontext),     # alternated blocks:
                                        ("panels", mine, contextlib.nullcontext)], 3)  # the load moves both alike
                rb, rp = gflop / timer.median_ms("blas") * 1e3, gflop / timer.median_ms("panels") * 1e3
                print(f"| {name} ({M}x{K}x{N}) | {np.dtype(dtype).name} | {rb:.1f} | {rp:.1f} | {rp / rb:.2f} |")
    print(f"\n# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
