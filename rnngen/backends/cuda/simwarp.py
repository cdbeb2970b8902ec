"""Warp sums under numba-cuda's CUDA simulator, which has no warp shuffles: the lanes of a
simulated warp (the threads 32 w .. 32 w + 31 of a block, or all of a block under 32 threads)
meet at a barrier, exchange their values, and each computes the same butterfly (xor) sums the
GPU's shfl.sync.bfly sequence computes, in the same order. The simulator runs a block's threads
as Python threads; a warp whose lanes do not all arrive (a divergent call) fails after TIMEOUT s.
"""
import threading

TIMEOUT = 600.0
_LOCK = threading.Lock()


class _Exchange:
    def __init__(self, lanes):
        self.lanes = lanes
        self.slots = [None] * lanes
        self.barrier = threading.Barrier(lanes, timeout=TIMEOUT)

    def swap(self, lane, values):
        self.slots[lane] = values
        self.barrier.wait()
        every = list(self.slots)
        self.barrier.wait()
        return every


def _exchange(values):
    """Every lane's `values` (one tuple per lane), for the calling simulated thread's warp."""
    me = threading.current_thread()
    manager = me._manager
    threads = 1
    for d in manager._block_dim:
        threads *= d
    warp = me.thread_id // 32
    lanes = min(32, threads - 32 * warp)
    key = (tuple(me.blockIdx), warp)
    with _LOCK:
        table = manager.__dict__.setdefault("_rnngen_warps", {})
        ex = table.get(key)
        if ex is None:
            ex = table[key] = _Exchange(lanes)
    return ex.swap(me.thread_id % 32, values), me.thread_id % 32


def butterfly(values, lanes):
    """The sums over `lanes` lanes of each of `values` (a tuple), as shfl_xor_sync with offsets
    lanes/2, ..., 2, 1 computes them on a GPU."""
    every, lane = _exchange(tuple(values))
    n = len(every)
    assert lanes == n, f"simulated warp of {n} lanes, the kernel assumed {lanes}"
    o = n >> 1
    while o > 0:
        every = [tuple(a + b for a, b in zip(every[i], every[i ^ o])) for i in range(n)]
        o >>= 1
    return every[lane]
