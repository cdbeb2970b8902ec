"""Issue 11 probe: how long OpenBLAS's idle threads take a core after a call on all cores. A 1024^3
numpy GEMM on the default BLAS threads, a pause of d seconds, then one rnngen.RNN("rnn_tanh")
forward(need_grad=False) at the small size on the default threads (two workers): the median of 9
rounds per pause. OpenBLAS's idle threads spin for 2**28 cycles (THREAD_TIMEOUT) before they
sleep; what `rnngen bench`'s pause after its all-cores GEMM probe (SETTLE_S) is sized from.

    python benchmarks/probes/openblas_spin.py
"""
import os
import time

import numpy as np

import rnngen

PAUSES = (0, 0.03, 0.06, 0.09, 0.12, 0.15, 0.2, 0.4)


def main():
    T, B, I, H = 256, 32, 128, 128
    net = rnngen.RNN("rnn_tanh", I, H)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    a = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    net.forward(x, need_grad=False)
    ms = {d: [] for d in PAUSES}
    for _ in range(9):
        for d in PAUSES:
            a @ a
            time.sleep(d)
            t0 = time.perf_counter()
            net.forward(x, need_grad=False)
            ms[d].append((time.perf_counter() - t0) * 1e3)
    print(f"# rnn_tanh small forward(need_grad=False), default threads, after a 2-thread GEMM and a pause; "
          f"load average {os.getloadavg()}")
    print("| pause s | forward ms (median of 9) |")
    print("|---|---|")
    for d in PAUSES:
        print(f"| {d:.2f} | {np.median(ms[d]):.2f} |")


if __name__ == "__main__":
    main()
