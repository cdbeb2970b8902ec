"""`rnngen bench`'s measuring: the machine, the BLAS and torch thread settings, and the timers
(blocks of interleaved samples, tiny cases timed call by call)."""
import contextlib
import os
import platform
import subprocess
import time

import numpy as np

GEMM_N = 1024
#: timed samples per block, rounds of blocks per case (default and --quick)
BLOCK = 3
REPS, QUICK_REPS = 5, 1
#: an untimed warm-up of a block lasts at least this long (one call at least)
WARM_S = 10e-3
#: a block stops taking timed samples (after the first) once they have lasted this long
BLOCK_BUDGET_S, QUICK_BLOCK_BUDGET_S = 3.0, 0.25
#: a pause after a block of OpenBLAS on all cores (the GEMM-rate probe): OpenBLAS's idle threads spin
#: for 2**28 cycles (its THREAD_TIMEOUT, ~0.1-0.15 s here) before they sleep, and took a core from the
#: next block's two workers (rnn_tanh small forward 11 -> 20 ms when run right after the probe)
SETTLE_S = 0.2
#: a timed sample of a tiny case repeats the call until it lasts this long (at most MAX_CALLS calls)
MIN_SAMPLE_S = 2e-3
MAX_CALLS = 50
#: the calls that size a sample: at most SIZING_CALLS, stopping once they have lasted SIZING_S
SIZING_CALLS, SIZING_S = 5, 0.05


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
    from ..runtime import threads as blas
    return [f"{d.get('internal_api')} {d.get('version')} kernel={d.get('architecture')} "
            f"threads={d.get('num_threads')} ({os.path.basename(d.get('filepath', ''))})" for d in blas.info()]


def versions():
    import numba
    import scipy
    out = {"numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__}
    torch = torch_module()
    out["torch"] = torch.__version__ if torch else "not installed"
    return out


def torch_module():
    try:
        import torch
        return torch
    except ImportError:
        return None


def loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def prefault(nbytes):
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
        from ..runtime import threads as blas
        blas.info()                      # loads numpy's and SciPy's BLAS
        self.controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
        self.blas_default = {lib.filepath: lib.get_num_threads() for lib in self.controller.lib_controllers}
        self.torch = torch_module()
        self.torch_default = self.torch.get_num_threads() if self.torch else None
        self.cpus = blas.available_cpus()

    @contextlib.contextmanager
    def use(self, n):
        """n threads for torch (torch.set_num_threads) and for rnngen (rnngen.set_num_threads, which
        sets the BLAS threads of its calls) inside the block; None: their defaults."""
        from ..runtime import schedule
        old_torch = self.torch.get_num_threads() if self.torch else None
        if self.torch:
            self.torch.set_num_threads(n or self.torch_default)
        schedule.set_num_threads(n)
        try:
            yield
        finally:
            schedule.set_num_threads(None)
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
    """Back-to-back calls that fill MIN_SAMPLE_S (at most MAX_CALLS), sized from the fastest of the
    calls timed after an untimed first one (compilation, first touch of memory; the few calls after
    it still run slower than the steady state: lstm course inference's 2nd to 6th calls took 246,
    89, 73, 61 and 60 us in one run): up to
    SIZING_CALLS of them, until they have lasted SIZING_S; none after a slow first call."""
    t0 = time.perf_counter()
    fn()
    best = time.perf_counter() - t0
    spent, timed = 0.0, 0
    while best < 0.1 and timed < SIZING_CALLS and spent < SIZING_S:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, timed = min(best, dt), spent + dt, timed + 1
    return int(min(MAX_CALLS, max(1, np.ceil(MIN_SAMPLE_S / max(best, 1e-9)))))


def time_blocks(entries, reps, budget_s=None):
    """entries: (key, fn, context) or (key, fn, context, settle_s) with context() a context manager
    entered around each of the key's blocks (thread settings) and settle_s a pause after each of
    them (for thread pools that spin when idle: SETTLE_S). Calls each a few times untimed (calls
    per sample), then runs `reps` rounds of one block per entry in turn. Returns (Timer, calls per
    sample)."""
    timer = Timer(budget_s)
    calls = {}
    for key, fn, context, *settle in entries:
        with context():
            calls[key] = calls_per_sample(fn)
        if settle:
            time.sleep(settle[0])
    for _ in range(reps):
        for key, fn, context, *settle in entries:
            with context():
                timer.block(key, fn, calls[key])
            if settle:
                time.sleep(settle[0])
    return timer, calls


