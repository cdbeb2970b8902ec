"""`rnngen bench`: `rnngen.RNN` against torch.nn on the CPU, in one interleaved run, with the
machine's GEMM rate (all cores and one) measured in the same run, compile and cached start-up
times, and peak memory.

Both libraries run at their DEFAULT threads unless `--threads N` (torch.set_num_threads(N) and N
BLAS threads through threadpoolctl for numpy's and SciPy's BLAS, which Numba's np.dot calls) or
`--compare-threads` (default threads and one thread, alternated in the same run).

Timing: for every case the calls are alternated in BLOCKS: one library's block is an untimed
warm-up (at least WARM_S of calls, so that the other library's thread pool, still spinning after
its own block, is not in a timed sample) followed by BLOCK timed samples; then the other library's
block, and so on for each thread setting, for --reps rounds. A sample of a tiny case is as many
back-to-back calls as fill MIN_SAMPLE_S, each call timed on its own. Times are medians over the
calls (the JSON also has means: under load a thread team that waits for a descheduled thread
stalls single calls for milliseconds); compilation is excluded (it is reported separately, from
an empty Numba cache in a subprocess).

Forward rows: rnngen's `RNN.forward(x, need_grad=False)` where the runtime has it (else the plain
forward, which keeps what backward needs; the header says which) against torch under
torch.no_grad(). Forward+backward rows: rnngen's forward+backward against torch's.
GFLOP/s counts GEMM FLOPs: a forward is 2*T*B*sum(rows*cols) over every weight matrix of every
layer and direction, a forward+backward three times that (LSTM fastrnns: 80.5 GFLOP).
"""
import argparse
import contextlib
import datetime
import gc
import importlib
import importlib.util
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

CELLS = ("lstm", "gru", "gru_classic", "rnn_tanh", "lstm_peephole")
#: name -> (T, B, I, H)
SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512)}
#: the torch.nn module computing the same cell (same gate order and parameter names), if any
TORCH_EQUIVALENT = {"lstm": ("LSTM", {}), "gru": ("GRU", {}), "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
                    "rnn_relu": ("RNN", {"nonlinearity": "relu"})}
#: the cases added when lstm and the small size are measured: (layers, bidirectional, dtype or None
#: for the run's dtype); the float64 one is added to a float32 run only
EXTRA_CASES = ((2, True, None), (1, False, "float64"))
GEMM_N = 1024
#: timed samples per block, rounds of blocks per case (default and --quick)
BLOCK = 3
REPS, QUICK_REPS = 5, 1
#: an untimed warm-up of a block lasts at least this long (one call at least)
WARM_S = 10e-3
#: a block stops taking timed samples (after the first) once they have lasted this long
BLOCK_BUDGET_S, QUICK_BLOCK_BUDGET_S = 3.0, 0.25
#: a timed sample of a tiny case repeats the call until it lasts this long (at most MAX_CALLS calls)
MIN_SAMPLE_S = 2e-3
MAX_CALLS = 50


# -- the machine ---------------------------------------------------------------------------------
def machine():
    model, flags = platform.processor() or platform.machine(), []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("Flags:"):
                flags = line.split(":", 1)[1].split()
    except (OSError, subprocess.SubprocessError):
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile") if f in flags]
    return {"cpu": model, "cores": os.cpu_count(), "simd": simd, "python": platform.python_version()}


def blas_info():
    """Which BLAS libraries are loaded, their kernels (architecture) and threads (threadpoolctl)."""
    from rnngen import blas
    return [f"{d.get('internal_api')} {d.get('version')} kernel={d.get('architecture')} "
            f"threads={d.get('num_threads')} ({os.path.basename(d.get('filepath', ''))})" for d in blas.info()]


def versions():
    import numba
    import scipy
    out = {"numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__}
    torch = _torch()
    out["torch"] = torch.__version__ if torch else "not installed"
    return out


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _prefault(nbytes):
    """Touch and free as much memory as the largest case will use. On a VM the first touch of
    memory the process never had is several times slower (the host backs it page by page); without
    this, whichever case first grows the heap is penalised."""
    buf = np.ones(nbytes // 4, np.float32)
    del buf


# -- threads -------------------------------------------------------------------------------------
class Threads:
    """Sets torch's and the BLAS threads for a block and restores them after it. `None` is each
    library's default: the counts this process had when the bench started."""

    def __init__(self):
        import threadpoolctl
        from rnngen import blas
        blas.info()                      # loads numpy's and SciPy's BLAS
        self.controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
        self.blas_default = {lib.filepath: lib.get_num_threads() for lib in self.controller.lib_controllers}
        self.torch = _torch()
        self.torch_default = self.torch.get_num_threads() if self.torch else None
        self.cpus = blas.available_cpus()

    @contextlib.contextmanager
    def use(self, n):
        """n threads for torch and every BLAS library (None: their defaults) inside the block."""
        old_torch = self.torch.get_num_threads() if self.torch else None
        if self.torch:
            self.torch.set_num_threads(n or self.torch_default)
        try:
            with self.controller.limit(limits=n or self.blas_default):
                yield
        finally:
            if self.torch:
                self.torch.set_num_threads(old_torch)

    @contextlib.contextmanager
    def blas_only(self, n):
        """n BLAS threads inside the block (the GEMM-rate probes)."""
        with self.controller.limit(limits=n):
            yield


def setting_name(n):
    return "default" if n is None else str(n)


# -- timing --------------------------------------------------------------------------------------
class Timer:
    """Samples per key, timed in blocks (see the module's docstring)."""

    def __init__(self, budget_s=None):
        self.samples = {}
        self.budget_s = BLOCK_BUDGET_S if budget_s is None else budget_s

    def block(self, key, fn, calls, samples=BLOCK):
        """An untimed warm-up (>= WARM_S), then `samples` timed samples, fewer (at least one) once
        the block's timed samples have lasted budget_s."""
        t0 = time.perf_counter()
        fn()
        while time.perf_counter() - t0 < WARM_S:
            fn()
        spent = 0.0
        out = self.samples.setdefault(key, [])
        for _ in range(samples):
            for _ in range(calls):          # each call timed alone: one stalled call is one sample
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                out.append(dt)
                spent += dt
            if spent >= self.budget_s:
                break

    def median_ms(self, key):
        s = self.samples.get(key)
        return float(np.median(s)) * 1e3 if s else None

    def mean_ms(self, key):
        s = self.samples.get(key)
        return float(np.mean(s)) * 1e3 if s else None


def calls_per_sample(fn):
    """Back-to-back calls that fill MIN_SAMPLE_S (at most MAX_CALLS). The first call is untimed
    (compilation, first touch of memory); a second one is timed unless the first was slow."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    if dt < 0.1:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
    return int(min(MAX_CALLS, max(1, np.ceil(MIN_SAMPLE_S / max(dt, 1e-9)))))


def time_blocks(entries, reps, budget_s=None):
    """entries: (key, fn, context) with context() a context manager entered around each of the
    key's blocks (thread settings). Calls each once or twice untimed (calls per sample), then runs
    `reps` rounds of one block per entry in turn. Returns (Timer, calls per sample)."""
    timer = Timer(budget_s)
    calls = {}
    for key, fn, context in entries:
        with context():
            calls[key] = calls_per_sample(fn)
    for _ in range(reps):
        for key, fn, context in entries:
            with context():
                timer.block(key, fn, calls[key])
    return timer, calls


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
               if k.startswith("weight_") and len(v.shape) == 2)


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
    torch = _torch()
    if torch is None or case["cell"] not in TORCH_EQUIVALENT:
        return None
    cls_name, kwargs = TORCH_EQUIVALENT[case["cell"]]
    tdtype = getattr(torch, case["dtype"])
    net = getattr(torch.nn, cls_name)(I, H, num_layers=case["layers"], bidirectional=case["bidirectional"],
                                      **kwargs).to(tdtype)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()})
    return net


def torch_fns(net, x, dy):
    """(forward under torch.no_grad(), forward+backward) of a torch.nn module."""
    torch = _torch()
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
    params = module.init_params(I, H, dtype, seed=seed)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, H), dtype)

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
    params = module.init_params(I, H, dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, H), dtype)
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
                     dtype=dtype, seed=0)
    D = 2 if case["bidirectional"] else 1
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, D * H), dtype)
    fns = {"rnngen": rnngen_fns(net, x, dy)}
    tnet = torch_net(case, I, H, net.state_dict())
    diff = None
    if tnet is not None:
        fns["torch"] = torch_fns(tnet, x, dy)
        torch = _torch()
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
    """The GEMM-rate probes: numpy's GEMM of GEMM_N^3 in the run's dtype, all cores and one."""
    a = np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N)).astype(dtype)
    c = np.empty_like(a)

    def gemm():
        np.matmul(a, a, out=c)

    return [(("gemm", "all"), gemm, lambda: threads.blas_only(threads.cpus)),
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


# -- the tables --------------------------------------------------------------------------------------
COLUMNS = ("cell", "size (T, B, I, H)", "layers", "dtype", "rnngen fwd ms", "torch fwd ms",
           "fwd torch/rnngen", "rnngen fwd+bwd ms", "torch fwd+bwd ms", "fwd+bwd torch/rnngen",
           "rnngen fwd+bwd GFLOP/s", "% of gemm rate", "peak mem MB / expected MB")


def _fmt(v, spec=".2f", none="n/a"):
    return none if v is None else format(v, spec)


def _ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def _mb(n):
    return f"{n / 2**20:.1f}" if n >= 2**20 else f"{n / 2**20:.3f}"


def gemm_reference(row, dtype):
    """The GEMM rate a row is compared with: the probes run in the rounds of the row's own case,
    one core for a one-thread row, else all cores; None for a row of another dtype than the
    probe's."""
    if row["dtype"] != dtype:
        return None
    return row["gemm_gflops_one"] if row["threads"] == "1" else row["gemm_gflops_all"]


def fb_gflops(row):
    return 3 * row["gemm_flops_fwd"] / (row["rnngen_fb_ms"] * 1e-3) / 1e9


def table(rows, dtype):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        rf, tf, rb, tb = r["rnngen_fwd_ms"], r["torch_fwd_ms"], r["rnngen_fb_ms"], r["torch_fb_ms"]
        gflops = fb_gflops(r)
        ref = gemm_reference(r, dtype)
        mem = "n/a" if r["peak_bytes"] is None else (
            f"{_mb(r['peak_bytes'])} / {_mb(r['expected_bytes'])} = {r['peak_bytes'] / r['expected_bytes']:.2f}x")
        cells = (r["cell"], f"{r['size']} ({r['T']}, {r['B']}, {r['I']}, {r['H']})",
                 f"{r['layers']}{' bidir' if r['bidirectional'] else ''}", r["dtype"],
                 _fmt(rf, ".3f"), _fmt(tf, ".3f"), _ratio(tf, rf), _fmt(rb, ".3f"), _fmt(tb, ".3f"),
                 _ratio(tb, rb), f"{gflops:.1f}", f"{100 * gflops / ref:.0f}%" if ref else "n/a", mem)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def noisy(rows, factor=2.0):
    """'lib kind cell size ...' for every time whose mean exceeds `factor` times its median."""
    out = []
    for r in rows:
        for lib in ("rnngen", "torch"):
            for kind, name in (("fwd", "fwd"), ("fb", "fwd+bwd")):
                med, mean = r[f"{lib}_{kind}_ms"], r.get(f"{lib}_{kind}_mean_ms")
                if med and mean and mean > factor * med:
                    out.append(f"{lib} {name} {r['cell']} {r['size']}{' 2 bidir' if r['bidirectional'] else ''} "
                               f"{r['dtype']} (median {med:.3f}, mean {mean:.3f} ms)")
    return out


def threads_table(rows):
    """Default threads against one thread, per case: time ratios default / one thread."""
    by = {}
    for r in rows:
        by.setdefault((r["cell"], r["size"], r["layers"], r["bidirectional"], r["dtype"]), {})[r["threads"]] = r
    lines = ["| cell | size | layers | dtype | rnngen fwd ms default / 1 thread | rnngen fwd+bwd ms default / 1 thread "
             "| torch fwd ms default / 1 thread | torch fwd+bwd ms default / 1 thread |", "|---|---|---|---|---|---|---|---|"]
    for (cell, size, layers, bidir, dtype), pair in by.items():
        if "default" not in pair or "1" not in pair:
            continue
        d, o = pair["default"], pair["1"]
        parts = []
        for key in ("rnngen_fwd_ms", "rnngen_fb_ms", "torch_fwd_ms", "torch_fb_ms"):
            parts.append("n/a" if d[key] is None else f"{d[key]:.3f} / {o[key]:.3f} = {d[key] / o[key]:.2f}x")
        lines.append(f"| {cell} | {size} | {layers}{' bidir' if bidir else ''} | {dtype} | " + " | ".join(parts) + " |")
    return lines


# -- the run -----------------------------------------------------------------------------------------
def _command():
    if sys.argv[1:2] == ["bench"]:
        return " ".join(["rnngen", "bench"] + sys.argv[2:])
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])


def run(cells, sizes, dtype, reps, compile_cells, settings=(None,), log=print, json_path=None, budget_s=None):
    """Measure every case under every thread setting (None: the libraries' defaults) and print the
    tables. Returns the result dict (also written to json_path)."""
    t_start = time.perf_counter()
    dtype = np.dtype(dtype).name
    threads = Threads()
    import rnngen
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(), "blas": blas_info(),
            "torch_threads": threads.torch_default, "settings": [setting_name(n) for n in settings],
            "fwd_need_grad": forward_has_need_grad(rnngen.RNN),
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
                    if k in os.environ},
            "command": _command(), "load_start": _loadavg()}
    m = info["machine"]
    log(f"# rnngen bench — {info['date']}")
    log(f"machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX flags found'}); "
        f"python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for line in info["blas"]:
        log(f"BLAS at start: {line}")
    log(f"torch threads at start: {info['torch_threads']}; env: {info['env'] or '(no BLAS/thread variables set)'}")
    log(f"thread settings: {', '.join(info['settings'])} (default: each library's own; N: torch.set_num_threads(N) "
        f"and N BLAS threads via threadpoolctl)")
    log(f"dtype {dtype}; {reps} round(s) of blocks per case, each block an untimed warm-up (>= {WARM_S * 1e3:g} ms) "
        f"then {BLOCK} timed samples, fewer (at least one) once they last {budget_s or BLOCK_BUDGET_S:g} s (tiny cases: >= {MIN_SAMPLE_S * 1e3:g} ms of back-to-back calls, at most "
        f"{MAX_CALLS}, each timed); medians over the calls; load average at start: {info['load_start']}")
    log("rnngen forward: " + ("RNN.forward(x, need_grad=False)" if info["fwd_need_grad"] else
                              "RNN.forward(x) (this runtime has no need_grad: it keeps what backward needs)")
        + "; torch forward under torch.no_grad()")
    all_cases = cases(cells, sizes, dtype)
    _prefault(max(4 * SIZES[c["size"]][0] * SIZES[c["size"]][1] * (SIZES[c["size"]][2] + 16 * SIZES[c["size"]][3])
                  * c["layers"] * np.dtype(c["dtype"]).itemsize for c in all_cases))
    gemm_probe = gemm_entries(threads, np.dtype(dtype).type)
    rows, timers = [], []
    for case in all_cases:
        t0 = time.perf_counter()
        case_rows, timer = bench_case(case, settings, reps, threads, gemm_probe, budget_s)
        rows.extend(case_rows)
        timers.append(timer)
        log(f"  measured {case['cell']} {case['size']} {case_label(case)} {case['dtype']} in "
            f"{time.perf_counter() - t0:.1f} s")
    gemm = gemm_gflops(timers)
    info["load_end"] = _loadavg()
    log("")
    log(f"numpy GEMM {GEMM_N}^3 {dtype}, medians of the probes interleaved with all cases: "
        f"{_fmt(gemm['all'], '.1f')} GFLOP/s with all {threads.cpus} cores, {_fmt(gemm['one'], '.1f')} with one; "
        f"'% of gemm rate' is rnngen's forward+backward GFLOP/s over the rate of the probes run in the same "
        f"case's rounds (one core for one-thread rows, all cores otherwise; per case in the JSON); "
        f"load average at end: {info['load_end']}")
    for n in settings:
        log("")
        log(f"threads: {setting_name(n)}")
        log("")
        these = [r for r in rows if r["threads"] == setting_name(n)]
        for line in table(these, dtype):
            log(line)
        stalled = noisy(these)
        if stalled:
            log("")
            log("noisy (mean over 2x the median: single calls stalled, e.g. a thread team waiting for a "
                "descheduled thread): " + "; ".join(stalled))
    if None in settings and 1 in settings:
        log("")
        log("default threads against one thread (time default / time one thread; below 1 is faster with the default):")
        log("")
        for line in threads_table(rows):
            log(line)
    compile_rows = []
    if compile_cells:
        log("")
        log("| cell | first call, empty Numba cache: in-process s / process wall s | "
            "second process, cache hit: in-process s / process wall s |")
        log("|---|---|---|")
        for cell in compile_cells:
            (first, first_wall), (second, second_wall) = startup_times(cell, dtype)
            compile_rows.append({"cell": cell, "first_s": first, "first_wall_s": first_wall,
                                 "cached_s": second, "cached_wall_s": second_wall})
            log(f"| {cell} | {first:.2f} / {first_wall:.2f} | {second:.2f} / {second_wall:.2f} |")
    info["wall_s"] = time.perf_counter() - t_start
    log("")
    log(f"bench wall time {info['wall_s']:.1f} s")
    result = {"info": info, "gemm_gflops": gemm, "gemm_cores": threads.cpus, "dtype": dtype, "rows": rows,
              "compile": compile_rows}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result


def add_arguments(p):
    p.add_argument("--cells", default=",".join(CELLS),
                   help=f"comma-separated built-in cells (default: {','.join(CELLS)}); with lstm and the small "
                        f"size, a 2-layer bidirectional lstm and a float64 lstm are measured too")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated sizes among {','.join(SIZES)} (default: all; --quick: course,small)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--reps", type=int, default=None,
                   help=f"rounds of blocks per case (default {REPS}; --quick {QUICK_REPS}); {BLOCK} timed samples per block")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run: course and small sizes, {QUICK_REPS} round, blocks cut to one timed sample "
                        f"once they last {QUICK_BLOCK_BUDGET_S:g} s, no compile probe")
    p.add_argument("--no-compile", action="store_true", help="skip the compile / start-up probes")
    p.add_argument("--threads", type=int, default=None,
                   help="torch and BLAS threads for both libraries (default: each library's default)")
    p.add_argument("--compare-threads", action="store_true",
                   help="measure at the default threads and at one thread, alternated in the same run")
    p.add_argument("--json", help="also write the results as JSON to this file")


def main_args(args):
    res = run_args(args)
    return res if isinstance(res, int) else 0


def _usage_error(message):
    print(f"rnngen bench: {message}", file=sys.stderr)
    return 2


def run_args(args, log=print):
    """Run the bench for parsed arguments: the result dict of run(), or 2 for bad arguments."""
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if importlib.util.find_spec(f"rnngen.generated.{c}") is None]
    if unknown or not cells:
        return _usage_error(f"--cells: unknown cell(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose among {', '.join(CELLS)}")
    sizes = [s for s in (args.sizes or ("course,small" if args.quick else ",".join(SIZES))).split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        return _usage_error(f"--sizes: unknown size(s) {', '.join(bad) or '(none given)'}; "
                            f"choose among {', '.join(SIZES)}")
    if args.reps is not None and args.reps < 1:
        return _usage_error(f"--reps must be >= 1, got {args.reps}")
    if args.threads is not None and args.threads < 1:
        return _usage_error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None and args.compare_threads:
        return _usage_error("--compare-threads measures the default threads and one thread; "
                            "do not combine it with --threads")
    settings = (None, 1) if args.compare_threads else (args.threads,)
    reps = args.reps or (QUICK_REPS if args.quick else REPS)
    compile_cells = [] if args.no_compile or args.quick else cells
    return run(cells, sizes, args.dtype, reps, compile_cells, settings, log=log, json_path=args.json,
               budget_s=QUICK_BLOCK_BUDGET_S if args.quick else BLOCK_BUDGET_S)


def main(argv=None):
    p = argparse.ArgumentParser(prog="rnngen bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
