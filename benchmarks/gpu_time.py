"""Stage `time` of benchmarks/gpu_check.py: where the time goes, and the table against cuDNN.

- overhead: microseconds per kernel launch (an empty kernel, numba-cuda's dispatch), per device
  allocation and per zero-filled allocation of rnngen's run time, per host-to-device copy;
- GEMM: TFLOP/s of each GEMM library rnngen can use (cuBLAS through torch or cupy when present,
  and the tiled kernel) at the shapes a fastrnns and a big layer run (the input projection, the
  weight gradients, dx) and at 4096^3, from CUDA events;
- per kernel: CUDA-event times of every kernel of one forward and one backward at T = 50 and
  T = 100 (B = 64, fastrnns and big): microseconds per step of the persistent kernels from the
  difference, and the fixed cost that is left;
- counts: kernel launches and device allocations per forward and per backward of one
  layer-direction;
- the median table: forward and forward + backward of lstm, gru and rnn_tanh at the course, small,
  fastrnns and big sizes against torch.nn on cuDNN (fp32, TF32 off), the ratio, and the earlier
  H100 anchors; lstm fastrnns once more with the tiled GEMM instead of cuBLAS;
- per FLOP: forward + backward of lstm, lstm_peephole and gru_classic at fastrnns, ns per MFLOP;
- goals: issue 13's goals against all of the above and the model (gpu_goals.py), one table.

Under the CUDA simulator the same logic runs at tiny sizes (its times mean nothing) and the
cuDNN table skips.
"""
import statistics
import time

from gpu_common import (ANCHORS, CELLS, TIME_SIZES, TORCH_CELLS, cuda, np, placement, problem,
                        rnngen, rt, to_device, torch_cuda)
from gpu_goals import flops, goals

SIZES = {
    "gpu": dict(reps=200, gemm=[("fastrnns input projection", 6400, 2048, 512, False, True),
                                ("fastrnns dW_ih", 2048, 512, 6400, True, False),
                                ("fastrnns dx", 6400, 512, 2048, False, False),
                                ("big input projection", 6400, 4096, 1024, False, True),
                                ("big dW_hh", 4096, 1024, 6400, True, False),
                                ("square 4096", 4096, 4096, 4096, False, False)],
                kernels=[("fastrnns", 64, 512, 512), ("big", 64, 1024, 1024)], steps=(50, 100), timed_reps=5,
                table=list(TIME_SIZES), budget_s=0.4, per_flop=("lstm", "lstm_peephole", "gru_classic")),
    "simulator": dict(reps=3, gemm=[("tiny", 6, 5, 4, False, True)], kernels=[("tiny", 2, 2, 3)], steps=(2, 4),
                      timed_reps=1, table=[], budget_s=0.0, per_flop=()),
}


def _median(values):
    return statistics.median(values) if values else float("nan")


# -- overhead ------------------------------------------------------------------------------------
def overhead(reps):
    @cuda.jit
    def noop(a):
        pass

    a = cuda.to_device(np.zeros(1, np.float32))
    noop[1, 1](a)
    cuda.synchronize()

    def per_call_us(fn):
        cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        cuda.synchronize()
        return round(1e6 * (time.perf_counter() - start) / reps, 2)

    host = np.zeros(64, np.int64)
    facts = {
        "us_per_launch": per_call_us(lambda: noop[1, 1](a)),
        "us_per_launch_and_sync": per_call_us(lambda: (noop[1, 1](a), cuda.synchronize())),
        "us_per_allocation_1MiB": per_call_us(lambda: rt.empty((256, 1024), np.float32)),
        "us_per_zeros_1MiB": per_call_us(lambda: rt.zeros((256, 1024), np.float32)),
        "us_per_host_to_device_512B": per_call_us(lambda: cuda.to_device(host)),
    }
    facts["summary"] = ", ".join(f"{k[3:]} {v} us" for k, v in facts.items())
    return facts


# -- GEMM ----------------------------------------------------------------------------------------
def _event_ms(fn, reps):
    times = []
    for _ in range(reps):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return _median(times)


def gemm_libraries():
    """The GEMM libraries rnngen can use here: the default choice first, then the tiled kernel."""
    from rnngen.backends.cuda import blas
    first = blas.choose()[0]
    return [first] + (["tiled"] if first != "tiled" else [])


def gemm_rates(shapes, reps):
    from rnngen.backends.cuda import blas
    rows = {}
    rng = np.random.default_rng(0)
    asked = rt.GEMM_LIBRARY
    try:
        for library in gemm_libraries():
            rt.GEMM_LIBRARY = library
            for label, M, N, K, ta, tb in shapes:
                a = cuda.to_device(rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32))
                b = cuda.to_device(rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32))
                out = rt.empty((M, N), np.float32)
                rt.gemm(a, b, out, ta, tb)                     # compile, warm
                ms = _event_ms(lambda: rt.gemm(a, b, out, ta, tb), reps)
                rows[f"{library}: {label}"] = {
                    "library": library, "reason": blas.choose()[2], "M": M, "N": N, "K": K,
                    "tiles": list(rt.gemm_tiles(M, N)) if library == "tiled" else None, "ms": round(ms, 4),
                    "tflops": round(2 * M * N * K / (ms * 1e-3) / 1e12, 2) if ms > 0 else None}
    finally:
        rt.GEMM_LIBRARY = asked
    return {"shapes": rows, "summary": ", ".join(f"{k} {v['tflops']} TFLOP/s" for k, v in rows.items())}


# -- per kernel ----------------------------------------------------------------------------------
def _kernel_times(mod, T, B, I, H, reps):
    """{operation: median ms} over `reps` forward + backward passes, from CUDA events."""
    params, x, s0, dy, _ = problem(mod, T, B, I, H)
    params, x, dy = to_device(params), to_device(x), to_device(dy)
    mod.backward(dy, None, mod.forward(x, params)[2])            # compile, plan
    cuda.synchronize()
    per_op = {}
    for _ in range(reps):
        rt.EVENTS = []
        try:
            mod.backward(dy, None, mod.forward(x, params)[2])
            times = rt.event_times(rt.EVENTS)
        finally:
            rt.EVENTS = None
        for name, ms in times.items():
            per_op.setdefault(name, []).append(sum(ms))
    return {name: _median(v) for name, v in per_op.items()}


def kernel_times(cell, size, B, I, H, steps, reps):
    mod = rnngen.load(cell)
    short, long_ = steps
    a = _kernel_times(mod, short, B, I, H, reps)
    b = _kernel_times(mod, long_, B, I, H, reps)
    facts = {f"T={short}_ms": {k: round(v, 4) for k, v in a.items()},
             f"T={long_}_ms": {k: round(v, 4) for k, v in b.items()}, "placement": placement()}
    for name in ("persistent forward", "persistent backward"):
        if name in a and name in b:
            per_step = (b[name] - a[name]) / (long_ - short)
            facts[f"{name} us_per_step"] = round(1e3 * per_step, 3)
            facts[f"{name} fixed_us"] = round(1e3 * (b[name] - long_ * per_step), 1)
    facts["summary"] = ", ".join(f"{k} {v}" for k, v in facts.items() if k.endswith(("us_per_step", "fixed_us")))
    return facts


# -- counts --------------------------------------------------------------------------------------
def counts(cell, T, B, I, H):
    """Kernel launches and device allocations of one forward and one backward of one
    layer-direction (inputs already on the device, lengths given)."""
    mod = rnngen.load(cell)
    params, x, s0, dy, df = problem(mod, T, B, I, H)
    params, x, s0, dy, df = to_device(params), to_device(x), to_device(s0), to_device(dy), to_device(df)
    lengths = np.full(B, T)
    mod.backward(dy, df, mod.forward(x, params, s0, lengths)[2])     # compile, plan, caches
    cuda.synchronize()
    before = dict(rt.COUNTS)
    _, _, saved = mod.forward(x, params, s0, lengths)
    mid = dict(rt.COUNTS)
    mod.backward(dy, df, saved)
    after = dict(rt.COUNTS)

    def diff(a, b):
        return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) != a.get(k, 0)}
    fwd, bwd = diff(before, mid), diff(mid, after)
    return {"forward": fwd, "backward": bwd,
            "summary": f"forward {fwd.get('launches', 0)} launches / {fwd.get('allocations', 0)} allocations, "
                       f"backward {bwd.get('launches', 0)} / {bwd.get('allocations', 0)}"}


# -- the table against cuDNN ---------------------------------------------------------------------
def median_ms(fn, sync, budget_s):
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    reps = int(max(3, min(25, budget_s / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def versus_cudnn(cell, size, budget_s, gemm_library=None):
    torch = torch_cuda()
    if torch is None:
        return {"skipped": "needs torch with CUDA and a GPU"}
    if gemm_library is not None:
        asked = rt.GEMM_LIBRARY
        rt.GEMM_LIBRARY = gemm_library
        try:
            return dict(versus_cudnn(cell, size, budget_s), gemm_library=gemm_library)
        finally:
            rt.GEMM_LIBRARY = asked
    from gpu_correct import torch_module
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    T, B, I, H = TIME_SIZES[size]
    mod = rnngen.load(cell)
    net = torch_module(torch, cell, I, H)
    x = torch.randn(T, B, I, device="cuda")
    dy = torch.randn(T, B, H, device="cuda")
    params = {k: cuda.as_cuda_array(getattr(net, f"{k}_l0").detach()) for k in mod.PARAMS}
    xd, dyd = cuda.as_cuda_array(x), cuda.as_cuda_array(dy)
    xg = x.clone().requires_grad_(True)

    def sync():
        torch.cuda.synchronize()
        cuda.synchronize()

    def ours_f():
        mod.forward(xd, params)

    def ours_fb():
        mod.backward(dyd, None, mod.forward(xd, params)[2])

    def torch_f():
        with torch.no_grad():
            net(x)

    def torch_fb():
        xg.grad = None
        net.zero_grad(set_to_none=True)
        y, _ = net(xg)
        y.backward(dy)

    r = {"ours_f": median_ms(ours_f, sync, budget_s), "ours_fb": median_ms(ours_fb, sync, budget_s),
         "cudnn_f": median_ms(torch_f, sync, budget_s), "cudnn_fb": median_ms(torch_fb, sync, budget_s)}
    r = {k: round(v, 4) for k, v in r.items()}
    from rnngen.backends.cuda import blas
    r.update(ratio_f=round(r["ours_f"] / r["cudnn_f"], 3), ratio_fb=round(r["ours_fb"] / r["cudnn_fb"], 3),
             anchor=ANCHORS.get((cell, size)), placement=placement(), gemm=blas.choose()[2])
    r["summary"] = (f"ours {r['ours_f']:.3f} / {r['ours_fb']:.3f} ms, cuDNN {r['cudnn_f']:.3f} / "
                    f"{r['cudnn_fb']:.3f} ms, ratio {r['ratio_f']} / {r['ratio_fb']}")
    return r


def per_flop(cell, size, budget_s):
    """Forward + backward of one layer-direction: ms and ns per MFLOP of its matrix products."""
    T, B, I, H = TIME_SIZES[size]
    mod = rnngen.load(cell)
    params, x, _, dy, _ = problem(mod, T, B, I, H)
    params, x, dy = to_device(params), to_device(x), to_device(dy)
    ms = median_ms(lambda: mod.backward(dy, None, mod.forward(x, params)[2]), cuda.synchronize, budget_s)
    mflop = flops(mod, T, B, I, H) / 1e6
    return {"ms": round(ms, 4), "mflop": round(mflop, 1), "ns_per_mflop": round(1e6 * ms / mflop, 4),
            "summary": f"{ms:.3f} ms, {1e6 * ms / mflop:.3f} ns per MFLOP"}


def table(stage):
    rows = [c for c in stage.cases if c["case"].startswith("vs cuDNN ") and c["status"] == "pass"]
    if not rows:
        return {"skipped": "no cuDNN timings"}
    lines = ["| cell | size (T, B, I, H) | rnngen fwd | cuDNN fwd | ratio | rnngen fwd+bwd | cuDNN fwd+bwd | "
             "ratio | earlier H100 cuDNN anchor |", "|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        cell, size = c["cell"], c["size"]
        anchor = c.get("anchor")
        anchor = f"{anchor[0]} / {anchor[1]}" if anchor else ""
        lines.append(f"| {cell} | {size} ({', '.join(map(str, TIME_SIZES[size]))}) | {c['ours_f']:.3f} | "
                     f"{c['cudnn_f']:.3f} | {c['ratio_f']:.2f} | {c['ours_fb']:.3f} | {c['cudnn_fb']:.3f} | "
                     f"{c['ratio_fb']:.2f} | {anchor} |")
        if c.get("gemm_library"):
            lines[-1] = lines[-1].replace(f"| {cell} |", f"| {cell} (GEMM: {c['gemm_library']}) |", 1)
    lines.append("(median ms, fp32, TF32 off; ratio = rnngen / cuDNN, below 1: rnngen is faster)")
    print("\n".join(lines), flush=True)
    return {"markdown": "\n".join(lines), "summary": f"{len(rows)} rows"}


SUMMARIES = ("table", "goals")    # read the cases before them: run even when the budget is used up


def cases(stage, sizes):
    """In order of what the goals need most, in case the stage's budget runs out: the cheap facts,
    the counts, the table against cuDNN, per FLOP, then the per-kernel times; the summaries last."""
    s = SIZES[sizes]
    out = [("overhead", lambda: overhead(s["reps"])),
           ("gemm TFLOP/s", lambda: gemm_rates(s["gemm"], max(3, s["timed_reps"])))]
    size, B, I, H = s["kernels"][0]
    for cell in CELLS:
        out.append((f"launches and allocations {cell} {size}",
                    lambda cell=cell: counts(cell, s["steps"][0], B, I, H)))
    for size in s["table"]:
        for cell in TORCH_CELLS:
            out.append((f"vs cuDNN {cell} {size}", lambda cell=cell, size=size: dict(
                versus_cudnn(cell, size, s["budget_s"]), cell=cell, size=size)))
    if s["table"]:
        out.append(("vs cuDNN lstm fastrnns GEMM tiled", lambda: dict(
            versus_cudnn("lstm", "fastrnns", s["budget_s"], "tiled"), cell="lstm", size="fastrnns")))
    for cell in s["per_flop"]:
        out.append((f"per FLOP {cell} fastrnns", lambda cell=cell: per_flop(cell, "fastrnns", s["budget_s"])))
    for size, B, I, H in s["kernels"]:
        for cell in CELLS:
            out.append((f"kernel times {cell} {size} T={s['steps']}",
                        lambda cell=cell, size=size, B=B, I=I, H=H: kernel_times(cell, size, B, I, H, s["steps"],
                                                                                s["timed_reps"])))
    out.append(("table", lambda: table(stage)))
    out.append(("goals", lambda: goals(stage)))
    return out
