"""`rnngen bench`'s cases: a cell at a size as rnngen.RNN and as torch.nn, their FLOPs, peak memory
and timings, and the compile and cached start-up times of a generated module."""
import gc
import inspect
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from ..runtime.sizes import output_size
from .bench_timing import GEMM_N, SETTLE_S, setting_name, time_blocks, torch_module

CELLS = ("lstm", "gru", "gru_classic", "rnn_tanh", "lstm_peephole")
#: name -> (T, B, I, H)
SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512)}
#: the torch.nn module computing the same cell (same gate order and parameter names), if any
TORCH_EQUIVALENT = {"lstm": ("LSTM", {}), "gru": ("GRU", {}), "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
                    "rnn_relu": ("RNN", {"nonlinearity": "relu"}), "lstm_proj": ("LSTM", {}),
                    # the regularised LSTMs at their default rate 0 (bench runs them so) are lstm
                    "lstm_zoneout": ("LSTM", {}), "lstm_vd": ("LSTM", {}), "lstm_weightdrop": ("LSTM", {})}
#: the run-time sizes a cell is measured with, from H (lstm_proj: proj_size = H / 2; slstm: 4 heads)
RUN_SIZES = {"lstm_proj": lambda H: {"proj_size": max(1, H // 2)}, "slstm": lambda H: {"heads": 4 if H % 4 == 0 else 1}}


def run_sizes(cell, H):
    """The run-time sizes (keywords of RNN / init_params) of `cell` at hidden size H."""
    return RUN_SIZES[cell](H) if cell in RUN_SIZES else {}
#: the cases added when lstm and the small size are measured: (layers, bidirectional, dtype or None
#: for the run's dtype); the float64 one is added to a float32 run only
EXTRA_CASES = ((2, True, None), (1, False, "float64"))




# -- the cases -----------------------------------------------------------------------------------
def cases(cells, sizes, dtype):
    """Every cell at every size (one layer), then EXTRA_CASES of lstm at the small size."""
    out = [dict(cell=c, size=s, layers=1, bidirectional=False, dtype=dtype) for s in sizes for c in cells]
    if "lstm" in cells and "small" in sizes:
        for layers, bidirectional, extra_dtype in EXTRA_CASES:
            if extra_dtype is None or (extra_dtype != dtype and dtype == "float32"):
                out.append(dict(cell="lstm", size="small", layers=layers, bidirectional=bidirectional,
                                dtype=extra_dtype or dtype))
    return out


def case_label(case):
    layers = f"{case['layers']} layer{'s' if case['layers'] > 1 else ''}"
    return layers + (", bidirectional" if case["bidirectional"] else "")


def forward_has_need_grad(net):
    """Whether rnngen.RNN.forward takes need_grad (a forward with no backward to follow)."""
    return "need_grad" in inspect.signature(net.forward).parameters


def rnn_flops(net, T, B):
    """GEMM FLOPs of one forward of the whole network: 2*T*B*rows*cols per weight matrix."""
    return sum(2 * T * B * int(np.prod(v.shape)) for k, v in net.params.items()
               if k.startswith("weight_") and len(v.shape) >= 2)     # a heads weight: its blocks only


def rnngen_fns(net, x, dy):
    """(forward with no backward to follow, forward+backward) of an rnngen.RNN."""
    if forward_has_need_grad(net):
        def forward():
            net.forward(x, need_grad=False)
    else:
        def forward():
            net.forward(x)

    def forward_backward():
        net.forward(x)
        net.backward(dy)

    return forward, forward_backward


def torch_net(case, I, H, state_dict):
    """The torch.nn module of the case with the rnngen network's parameters, or None."""
    torch = torch_module()
    if torch is None or case["cell"] not in TORCH_EQUIVALENT:
        return None
    cls_name, kwargs = TORCH_EQUIVALENT[case["cell"]]
    kwargs = dict(kwargs, **run_sizes(case["cell"], H))
    tdtype = getattr(torch, case["dtype"])
    net = getattr(torch.nn, cls_name)(I, H, num_layers=case["layers"], bidirectional=case["bidirectional"],
                                      **kwargs).to(tdtype)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()})
    return net


def torch_fns(net, x, dy):
    """(forward under torch.no_grad(), forward+backward) of a torch.nn module."""
    torch = torch_module()
    xt = torch.from_numpy(x)
    xg = xt.clone().requires_grad_(True)
    dyt = torch.from_numpy(dy)

    def forward():
        with torch.no_grad():
            net(xt)

    def forward_backward():
        for p in net.parameters():
            p.grad = None
        xg.grad = None
        y, _ = net(xg)
        y.backward(dyt)

    return forward, forward_backward


def module_fns(module, size, dtype, seed=0):
    """(forward, forward+backward) of a generated module called directly (benchmarks/before_after.py)."""
    T, B, I, H = SIZES[size]
    params = module.init_params(I, H, dtype, seed=seed, **run_sizes(module.NAME, H))
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, output_size(module, H, module.sizes_of(params))), dtype)

    def forward():
        module.forward(x, params)

    def forward_backward():
        _, _, saved = module.forward(x, params)
        module.backward(dy, None, saved)

    return forward, forward_backward


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(v) for v in obj)
    return 0


def memory(module, size, dtype):
    """One layer of the cell's generated module: peak bytes of a forward+backward (tracemalloc sees
    numpy's allocations) plus the inputs, and the expected bytes: inputs + parameters + saved
    pre-activations and states + outputs + gradients."""
    T, B, I, H = SIZES[size]
    params = module.init_params(I, H, dtype, seed=0, **run_sizes(module.NAME, H))
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, output_size(module, H, module.sizes_of(params))), dtype)
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


def bench_case(case, settings, reps, threads, gemm, budget_s=None):
    """Blocks of rnngen and torch for one case under every thread setting, after a GEMM-rate
    round (all cores, one) per repetition. Returns one row per setting."""
    import rnngen
    T, B, I, H = SIZES[case["size"]]
    dtype = np.dtype(case["dtype"]).type
    net = rnngen.RNN(case["cell"], I, H, num_layers=case["layers"], bidirectional=case["bidirectional"],
                     dtype=dtype, seed=0, **run_sizes(case["cell"], H))
    D = 2 if case["bidirectional"] else 1
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, net.output_size), dtype)
    fns = {"rnngen": rnngen_fns(net, x, dy)}
    tnet = torch_net(case, I, H, net.state_dict())
    diff = None
    if tnet is not None:
        fns["torch"] = torch_fns(tnet, x, dy)
        torch = torch_module()
        with threads.use(1), torch.no_grad():     # one thread: quick even on a loaded machine
            diff = float(np.abs(tnet(torch.from_numpy(x))[0].numpy() - net.forward(x)[0]).max())
    entries = list(gemm)
    for kind, index in (("fwd", 0), ("fb", 1)):
        for n in settings:
            for lib, pair in fns.items():
                entries.append(((lib, kind, n), pair[index], lambda n=n: threads.use(n)))
    timer, calls = time_blocks(entries, reps, budget_s)
    if case["layers"] == 1 and not case["bidirectional"]:
        with threads.use(1):
            peak, expected = memory(net.cell, case["size"], dtype)
    else:
        peak = expected = None
    case_gemm = gemm_gflops([timer])
    rows = []
    for n in settings:
        row = dict(case, T=T, B=B, I=I, H=H, threads=setting_name(n), reps=reps,
                   gemm_gflops_all=case_gemm["all"], gemm_gflops_one=case_gemm["one"],
                   gemm_flops_fwd=rnn_flops(net, T, B), fwd_need_grad=forward_has_need_grad(net),
                   max_abs_diff_y=diff, peak_bytes=peak, expected_bytes=expected,
                   calls_per_sample={f"{lib}_{kind}": calls[(lib, kind, n)] for lib in fns for kind in ("fwd", "fb")},
                   samples={f"{lib}_{kind}": len(timer.samples[(lib, kind, n)]) for lib in fns for kind in ("fwd", "fb")})
        for lib in ("rnngen", "torch"):
            for kind in ("fwd", "fb"):
                row[f"{lib}_{kind}_ms"] = timer.median_ms((lib, kind, n))
                row[f"{lib}_{kind}_mean_ms"] = timer.mean_ms((lib, kind, n))
        rows.append(row)
    return rows, timer


def gemm_entries(threads, dtype):
    """The GEMM-rate probes: numpy's GEMM of GEMM_N^3 in the run's dtype, all cores (then a pause
    while OpenBLAS's idle threads spin: SETTLE_S) and one."""
    a = np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N)).astype(dtype)
    c = np.empty_like(a)

    def gemm():
        np.matmul(a, a, out=c)

    return [(("gemm", "all"), gemm, lambda: threads.blas_only(threads.cpus), SETTLE_S),
            (("gemm", "one"), gemm, lambda: threads.blas_only(1))]


def gemm_gflops(timers):
    """{"all": GFLOP/s with all cores, "one": with one} from the probes' samples of every case."""
    out = {}
    for which in ("all", "one"):
        s = [v for t in timers for v in t.samples.get(("gemm", which), [])]
        out[which] = 2 * GEMM_N ** 3 / float(np.median(s)) / 1e9 if s else None
    return out


# -- compile and start-up ---------------------------------------------------------------------------
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


