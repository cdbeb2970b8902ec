"""Issue 11 probe: the course-size call (lstm T10 B10 I3 H5) of rnngen.RNN, forward with
need_grad=False and forward+backward, mean over 3000 back-to-back calls, in microseconds.

    python benchmarks/probes/course_call.py
"""
import time

import numpy as np

import rnngen

net = rnngen.RNN("lstm", 3, 5)
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


print(f"RNN.forward(x, need_grad=False) {per_call_us(lambda: net.forward(x, need_grad=False)):.1f} us, "
      f"forward+backward {per_call_us(fb):.1f} us")
