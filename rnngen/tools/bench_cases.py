"""The cases `rnngen bench` times: one cell at one size against torch.nn (bench_case), the
sgemm rate interleaved with them (Timer), FLOPs and peak memory, and compile / start-up times."""
import gc
import importlib
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from ..backends.checks import param_shape

SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512)}  # name -> (T, B, I, H)
#: the torch.nn module computing the same cell (same gate order and parameter names), if any
TORCH_EQUIVALENT = {"lstm": ("LSTM", {}), "gru": ("GRU", {}), "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
                    "rnn_relu": ("RNN", {"nonlinearity": "relu"})}
SGEMM_N = 1024
WARMUP = 3
#: a timed sample of a tiny case repeats the call until it lasts this long (at most MAX_CALLS calls)
MIN_SAMPLE_S = 2e-3
MAX_CALLS = 50


def torch_module():
    try:
        import torch
        return torch
    except ImportError:
        return None


def flops(module, T, B, I, H):
    """GEMM FLOPs of one forward; forward+backward does three times that (dInput and dW per GEMM)."""
    total = 0
    for name, shape in module.PARAMS.items():
        if name.startswith("weight_") and len(shape) == 2:
            rows, cols = param_shape(shape, I, H)
            total += 2 * T * B * rows * cols
    return total


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(v) for v in obj)
    return 0


def memory(module, x, params, dy):
    """Peak bytes of a forward+backward (tracemalloc sees numpy's allocations) and the expected
    bytes: inputs + parameters + saved pre-activations and states + outputs + gradients."""
    gc.collect()
    tracemalloc.start()
    try:
        y, final, saved = module.forward(x, params)
        grads = module.backward(dy, None, saved)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    saved_arrays = {k: v for k, v in vars(saved).items() if isinstance(v, np.ndarray)
                    and k not in ("x", "lengths")}
    inputs = x.nbytes + dy.nbytes + _nbytes(params)
    expected = inputs + _nbytes(saved_arrays) + y.nbytes + _nbytes(final) + _nbytes(grads)
    return inputs + peak, expected


class Timer:
    def __init__(self):
        self.samples = {}

    def run(self, key, fn, calls=1):
        """One sample: `calls` back-to-back calls of fn, recorded as the time per call."""
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        self.samples.setdefault(key, []).append((time.perf_counter() - t0) / calls)

    def median_ms(self, key):
        s = self.samples.get(key)
        return float(np.median(s)) * 1e3 if s else None


def _torch_case(cell, T, B, I, H, dtype, module, params):
    torch = torch_module()
    if torch is None or cell not in TORCH_EQUIVALENT:
        return None
    cls_name, kwargs = TORCH_EQUIVALENT[cell]
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    net = getattr(torch.nn, cls_name)(I, H, **kwargs).to(tdtype)
    with torch.no_grad():     # same parameters as rnngen's run
        for name, value in params.items():
            getattr(net, f"{name}_l0").copy_(torch.from_numpy(value))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, I, dtype=tdtype, generator=gen)
    xg = x.clone().requires_grad_(True)
    dy = torch.ones(T, B, H, dtype=tdtype)

    def forward():
        with torch.no_grad():       # torch's fastest forward (rnngen's always saves for backward)
            net(x)

    def forward_backward():
        for p in net.parameters():
            p.grad = None
        xg.grad = None
        y, _ = net(xg)
        y.backward(dy)

    return forward, forward_backward


def bench_case(cell, size, dtype, reps, sgemm_timer, module=None, with_torch=True):
    """Interleaved medians for one cell and size (module: a generated module to time in place of
    the built-in rnngen.generated.<cell>)."""
    T, B, I, H = SIZES[size]
    if module is None:
        module = importlib.import_module(f"rnngen.generated.{cell}")
    params = module.init_params(I, H, dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, H), dtype)

    def r_forward():
        module.forward(x, params)

    def r_forward_backward():
        _, _, saved = module.forward(x, params)
        module.backward(dy, None, saved)

    t_case = _torch_case(cell, T, B, I, H, dtype, module, params) if with_torch else None
    fns = {"rnngen_fwd": r_forward, "rnngen_fb": r_forward_backward}
    if t_case:
        fns["torch_fwd"], fns["torch_fb"] = t_case
    order = [k for k in ("rnngen_fwd", "torch_fwd", "rnngen_fb", "torch_fb") if k in fns]
    a = np.random.default_rng(1).standard_normal((SGEMM_N, SGEMM_N)).astype(dtype)
    c = np.empty_like(a)
    # warm-up: compile (Numba cache), BLAS thread start, and first touch of memory (on a VM the
    # first calls that touch fresh pages can be many times slower)
    for _ in range(WARMUP):
        for key in order:
            fns[key]()
    # calls per sample: tiny cases are timed as back-to-back calls (divided by their number) so
    # that a sample lasts at least MIN_SAMPLE_S and the timer's resolution does not matter
    calls = {}
    for key in order:
        t0 = time.perf_counter()
        fns[key]()
        calls[key] = int(min(MAX_CALLS, max(1, np.ceil(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-9)))))
    timer = Timer()
    for _ in range(reps):
        # the sgemm (1024^3, evicts the caches) runs first; every timed sample below follows an
        # untimed call of the same function, so rnngen and torch both start from warm caches
        sgemm_timer.run("sgemm", lambda: np.matmul(a, a, out=c))
        for key in order:
            fns[key]()
            timer.run(key, fns[key], calls[key])
    peak, expected = memory(module, x, params, dy)
    fl = flops(module, T, B, I, H)
    row = {"cell": cell, "size": size, "T": T, "B": B, "I": I, "H": H, "dtype": np.dtype(dtype).name,
           "reps": reps, "calls_per_sample": calls, "gemm_flops_fwd": fl}
    for key in ("rnngen_fwd", "torch_fwd", "rnngen_fb", "torch_fb"):
        row[key + "_ms"] = timer.median_ms(key)
    row["peak_bytes"], row["expected_bytes"] = peak, expected
    return row


# -- compile and start-up ---------------------------------------------------------------------
_STARTUP = """
import time
t0 = time.perf_counter()
import numpy as np
from rnngen.generated import {cell} as m
p = m.init_params(3, 5, np.{dtype})
x = np.zeros((4, 2, 3), np.{dtype})
y, f, s = m.forward(x, p)
m.backward(np.ones_like(y), None, s)
print(time.perf_counter() - t0)
"""


def startup_times(cell, dtype):
    """(first call in a process with an empty Numba cache, the same in a second process that hits
    the cache): seconds from `import` to the end of a first forward+backward, and process wall time."""
    code = _STARTUP.format(cell=cell, dtype=np.dtype(dtype).name)
    out = []
    with tempfile.TemporaryDirectory(prefix="rnngen-bench-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for _ in range(2):
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise RuntimeError(f"start-up probe of {cell} failed:\n{res.stderr}")
            out.append((float(res.stdout.strip().splitlines()[-1]), wall))
    return out


def prefault(nbytes):
    """Touch and free as much memory as the largest case will use. On a VM the first touch of
    memory the process never had is several times slower (the host backs it page by page); without
    this, whichever case first grows the heap is penalised."""
    buf = np.ones(nbytes // 4, np.float32)
    del buf


def loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"
