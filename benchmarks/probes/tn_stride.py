"""Issue 11 probe: why the weight-gradient GEMM dZ.T @ v (stepgemm.gemm_panels_tn) runs below the
NN product (gemm_panels) at some shapes: the TN kernel reads, at each k, MR consecutive values of
one row of dZ (K, M), so a tile walks K rows M * itemsize bytes apart. Each shape is run as it is
and with M one cache line larger (rows 64 bytes longer: a stride that is no multiple of 4 KB), the
TN product against the NN product of the same size (each with its own work); one thread,
GFLOP/s, medians of alternated calls. The instructions of the TN and NN inner loops are the same
(LLVM's assembly), so a difference between them is the memory system's.

    python benchmarks/probes/tn_stride.py
"""
import os
import timeit

import numpy as np
import threadpoolctl

from rnngen.backends.cpu import stepgemm

# (M, K, N): the weight gradients of an LSTM at the bench's small and fastrnns sizes (M = 4H rows of
# dZ.T, K = T*B, N = I or H), whole batch and batch half
SHAPES = [(512, 8192, 128), (512, 4096, 128), (2048, 6400, 512), (2048, 3200, 512)]


def rates(M, K, N, dtype, rng):
    """(TN, NN) GFLOP/s of (M, K, N) products."""
    a = rng.standard_normal((K, M)).astype(dtype)
    p = stepgemm.panels(rng.standard_normal((K, N)).astype(dtype))
    an = np.ascontiguousarray(a.T)
    out_tn, out_nn = np.empty((M, N), dtype), np.empty((M, N), dtype)
    calls = {"tn": lambda: stepgemm.gemm_panels_tn(a, p, out_tn), "nn": lambda: stepgemm.gemm_panels(an, p, out_nn)}
    for f in calls.values():
        f()
    np.testing.assert_allclose(out_tn, out_nn, rtol=1e-3, atol=1e-2 * np.sqrt(K))
    got = {k: [] for k in calls}
    for _ in range(7):
        for k, f in calls.items():
            got[k].append(2 * M * K * N / min(timeit.repeat(f, number=1, repeat=3)) / 1e9)
    return float(np.median(got["tn"])), float(np.median(got["nn"]))


def main():
    threadpoolctl.threadpool_limits(1)
    rng = np.random.default_rng(0)
    print(f"# load {os.getloadavg()}; MR {stepgemm.MR}, KC {stepgemm.KC}, MC {stepgemm.MC}")
    print("| dtype | M x K x N | dZ row bytes | TN GFLOP/s | NN | TN / NN | M + 64 B: row bytes | TN | NN | TN / NN |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype in (np.float32, np.float64):
        size = np.dtype(dtype).itemsize
        for M, K, N in SHAPES:
            tn, nn = rates(M, K, N, dtype, rng)
            M2 = M + 64 // size
            tn2, nn2 = rates(M2, K, N, dtype, rng)
            print(f"| {np.dtype(dtype).name} | {M} x {K} x {N} | {M * size} | {tn:.0f} | {nn:.0f} | {tn / nn:.2f} | "
                  f"{M2 * size} | {tn2:.0f} | {nn2:.0f} | {tn2 / nn2:.2f} |")
    print(f"# load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
