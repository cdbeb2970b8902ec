"""Issue 11 probe: two 4.5 ms / 30 ms nogil Numba tasks through a ThreadPoolExecutor (the caller
takes one) against rnngen's pinned workers (rnngen/runtime/workers.py); medians in ms.

    python benchmarks/probes/threads_pinning.py
"""
import time, os, numpy as np, threading
from concurrent.futures import ThreadPoolExecutor
from numba import njit
@njit(nogil=True)
def spin(n):
    s = 0.0
    for i in range(n):
        s += np.sqrt(float(i))
    return s
spin(10)
pool = ThreadPoolExecutor(1)
def med(f, n=9):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return np.median(ts)*1e3
def both(n):
    fut = pool.submit(spin, n); spin(n); fut.result()
for n in (3_000_000, 20_000_000):
    one = med(lambda: spin(n)); two = med(lambda: both(n))
    print(f"unpinned n={n}: one {one:.2f} two {two:.2f} scaling {2*one/two:.2f}")
pool.submit(os.sched_setaffinity, 0, {1}).result(); os.sched_setaffinity(0, {0})
for n in (3_000_000, 20_000_000):
    one = med(lambda: spin(n)); two = med(lambda: both(n))
    print(f"pinned n={n}: one {one:.2f} two {two:.2f} scaling {2*one/two:.2f}")
