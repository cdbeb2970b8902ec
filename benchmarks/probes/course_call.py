"""Issue 11 probe: the course-size call (T10 B10 I3 H5) of rnngen.RNN, forward with need_grad=False,
forward (need_grad=True) and forward+backward, in microseconds: the mean over 3000 back-to-back
calls, and the minimum over 30 blocks of 300 calls (what other tenants of a shared machine disturb
least).

    python benchmarks/probes/course_call.py            # lstm
    python benchmarks/probes/course_call.py rnn_tanh
"""
import sys
import time
import timeit

import numpy as np

import rnngen

cell = sys.argv[1] if len(sys.argv) > 1 else "lstm"
net = rnngen.RNN(cell, 3, 5)
x = np.random.default_rng(0).standard_normal((10, 10, 3)).astype(np.float32)
y, _ = net.forward(x)
dy = np.ones_like(y)


def fb():
    net.forward(x)
    net.backward(dy)


def per_call_us(f, n=3000):
    for _ in range(200):
        f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e6


def min_block_us(f, n=300, blocks=30):
    return min(timeit.repeat(f, number=n, repeat=blocks)) / n * 1e6


cases = {"RNN.forward(x, need_grad=False)": lambda: net.forward(x, need_grad=False),
         "RNN.forward(x)": lambda: net.forward(x), "forward+backward": fb}
print(f"{cell}: " + ", ".join(f"{name} {per_call_us(f):.1f} us (min of blocks {min_block_us(f):.1f})"
                              for name, f in cases.items()))
