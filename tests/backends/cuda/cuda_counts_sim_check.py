"""Kernel launches and device allocations of one forward and one backward of one layer-direction,
for every built-in cell, under the CUDA simulator.

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/backends/cuda/test_cuda_counts.py does). Two counts of
each: rnngen.cuda_runtime.COUNTS (the counter the run time keeps around every launch and
allocation it makes, which the GPU check reads on hardware too), and the simulator's own count of
the kernels it ran and the device arrays it made (patched in below), which shows the run-time
counter misses nothing. Inputs are on the device already; lengths are given as a host array
(uploaded once per forward) or not at all; forward and reverse. The caches (compiled kernels,
plans, workspaces) are warmed by one forward and backward first, so the counts are those of a
repeated call with the same shapes. Prints one JSON line per (cell, lengths, reverse).
"""
import json
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

from numba import cuda  # noqa: E402
from numba.cuda.simulator import kernel as _sim_kernel  # noqa: E402

import rnngen  # noqa: E402
from rnngen import cuda_runtime as rt  # noqa: E402

SEEN = {"launches": 0, "allocations": 0}
_call = _sim_kernel.FakeCUDAKernel.__call__


def _counting_call(self, *args):
    if not self._device and not _sim_kernel._kernel_context:
        SEEN["launches"] += 1
    return _call(self, *args)


def _counting(fn):
    def wrapper(*args, **kwargs):
        SEEN["allocations"] += 1
        return fn(*args, **kwargs)
    return wrapper


_sim_kernel.FakeCUDAKernel.__call__ = _counting_call
for _name in ("device_array", "to_device", "device_array_like"):
    setattr(cuda, _name, _counting(getattr(cuda, _name)))


def snapshot():
    return dict(SEEN), dict(rt.COUNTS)


def delta(before, after):
    seen = {k: after[0][k] - before[0][k] for k in SEEN}
    counted = {k: after[1].get(k, 0) - before[1].get(k, 0) for k in after[1]
               if after[1].get(k, 0) != before[1].get(k, 0)}
    return {"simulator": seen, "counted": counted}


def run(cell, with_lengths, reverse=False, T=3, B=2, I=2, H=3):
    mod = rnngen.load(cell)
    rng = np.random.default_rng(0)
    params = {k: cuda.to_device(v) for k, v in mod.init_params(I, H, np.float32).items()}
    x = cuda.to_device(rng.standard_normal((T, B, I)).astype(np.float32))
    dy = cuda.to_device(rng.standard_normal((T, B, H)).astype(np.float32))
    lengths = np.array([T, 1]) if with_lengths else None
    mod.backward(dy, None, mod.forward(x, params, None, lengths, reverse)[2])      # warm the caches
    a = snapshot()
    y, final, saved = mod.forward(x, params, None, lengths, reverse)
    b = snapshot()
    dx, d0, dp = mod.backward(dy, None, saved)
    c = snapshot()
    return {"cell": cell, "lengths": with_lengths, "reverse": reverse, "forward": delta(a, b),
            "backward": delta(b, c)}


def main(cells):
    for cell in cells:
        for with_lengths, reverse in ((False, False), (True, False), (True, True)):
            try:
                row = run(cell, with_lengths, reverse)
            except Exception as exc:  # report, keep going
                row = {"cell": cell, "lengths": with_lengths, "reverse": reverse,
                       "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or rnngen.available())
