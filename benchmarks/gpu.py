"""rnngen CUDA backend on a GPU: check against the CPU path, then time against cuDNN.

    python benchmarks/gpu.py                 # everything (about 3-8 minutes on an H100)
    python benchmarks/gpu.py --quick         # course and small sizes only
    python benchmarks/gpu.py --skip-check    # timings only

1. Correctness: a 2-layer bidirectional rnngen.RNN(device="cuda") of lstm and gru_classic (lengths,
   dropout) against the CPU RNN; every built-in cell's CUDA forward + backward against its CPU path
   (float32, lengths, reverse), at a size with many blocks on real hardware (CI simulates at most
   three), and on the weights-in-global-memory fallback. The PyTorch bridge on CUDA tensors:
   rnngen.torch.from_torch of a 2-layer bidirectional cuDNN LSTM against it (outputs and gradients,
   float32, default and side stream), and that tensors cross without a copy.
2. Timing: forward and forward+backward of lstm, gru and rnn_tanh at the course, small, fastrnns and
   big sizes, against torch.nn.LSTM/GRU/RNN with cuDNN (fp32, TF32 off), same weights and inputs;
   median milliseconds, the ratio rnngen / cuDNN (below 1: rnngen is faster), the largest difference
   of the outputs, and where rnngen's time goes (one synchronized, profiled run); one row for
   rnngen.torch.RNN (lstm, small size) against torch.nn.LSTM.

Every case catches its own failure; the tables print whatever finished. Run from the repository
root; it puts the root on sys.path, so nothing needs installing.
"""
import argparse
import math
import os
import platform
import statistics
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

if not hasattr(np, "row_stack"):   # numpy >= 2.5 removed it; numba-cuda 0.30.4 still calls it
    np.row_stack = np.vstack


def _source_tree_packages():
    """Without `pip install`, map rnngen.generated and rnngen.specs to the folders of this tree
    (pyproject.toml's package-dir does that for an installed rnngen)."""
    import importlib
    import rnngen
    for sub in ("generated", "specs"):
        name = f"rnngen.{sub}"
        try:
            importlib.import_module(name)
        except ImportError:
            module = importlib.import_module(sub)
            sys.modules[name] = module
            setattr(rnngen, sub, module)


_source_tree_packages()

SIZES = {   # name: (T, B, I, H)
    "course": (10, 10, 3, 5),
    "small": (256, 32, 128, 128),
    "fastrnns": (100, 64, 512, 512),
    "big": (100, 64, 1024, 1024),
}
TORCH_CELLS = ("lstm", "gru", "rnn_tanh")
# cuDNN medians measured earlier on an H100 (torch 2.11, fp32, TF32 off), ms forward / fwd+bwd
ANCHORS = {
    ("lstm", "course"): (0.186, 1.971), ("gru", "course"): (0.161, 1.358), ("rnn_tanh", "course"): (0.155, 1.040),
    ("lstm", "small"): (0.837, 2.429), ("gru", "small"): (0.406, 1.566), ("rnn_tanh", "small"): (0.279, 1.195),
    ("lstm", "fastrnns"): (2.625, 6.735), ("gru", "fastrnns"): (2.148, 6.355),
    ("rnn_tanh", "fastrnns"): (2.355, 5.966),
    ("lstm", "big"): (4.928, 13.556), ("gru", "big"): (4.374, 12.390), ("rnn_tanh", "big"): (2.349, 7.882),
}


def log(*args):
    print(*args, flush=True)


def environment():
    import numba
    from numba import cuda
    log(f"date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}")
    log(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    try:
        import numba_cuda
        log(f"numba-cuda {getattr(numba_cuda, '__version__', '?')}")
    except Exception:
        pass
    dev = cuda.get_current_device()
    log(f"device: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
        f"cc {dev.compute_capability}, {dev.MULTIPROCESSOR_COUNT} SMs")
    try:
        import torch
        log(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    except Exception as exc:
        log(f"torch unavailable: {exc}")


# -- 1. correctness ---------------------------------------------------------------------------
def check_cell(name, T, B, I, H, lengths, reverse, global_weights, tol):
    import rnngen
    from numba import cuda
    from rnngen import cuda_runtime as rt
    mod = rnngen.load(name)
    rng = np.random.default_rng(0)
    params = mod.init_params(I, H, np.float32, seed=1)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    s0 = tuple((0.5 * rng.standard_normal((B, H))).astype(np.float32) for _ in mod.STATES)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    df = tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in mod.STATES)
    ref_y, ref_f, saved = mod.forward(x, params, s0, lengths, reverse)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, df, saved)
    rt.FORCE_GLOBAL_WEIGHTS = global_weights
    try:
        dev = cuda.to_device
        y, f, sv = mod.forward(dev(x), {k: dev(v) for k, v in params.items()}, tuple(dev(s) for s in s0),
                               lengths, reverse)
        dx, d0, dp = mod.backward(dev(dy), tuple(dev(d) for d in df), sv)
        cuda.synchronize()
    finally:
        rt.FORCE_GLOBAL_WEIGHTS = False
    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)] + [(f"final[{k}]", a, b) for k, (a, b) in enumerate(zip(ref_f, f))]
    pairs += [(f"d_state0[{k}]", a, b) for k, (a, b) in enumerate(zip(ref_d0, d0))]
    pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    worst, where = 0.0, ""
    for label, ref, got in pairs:
        err = float(np.max(np.abs(got.copy_to_host() - ref) / np.maximum(1.0, np.abs(ref))))
        if err > worst:
            worst, where = err, label
    plan = dict(rt.LAST_PLAN)
    return worst <= tol, worst, where, plan


def check_rnn(cell, T, B, I, H, lengths, dropout, tol):
    """rnngen.RNN(device="cuda"), 2 layers, bidirectional, against the CPU RNN with the same seed:
    outputs, final states, dx, d_state0 and every gradient. Returns (ok, worst error, where)."""
    import rnngen
    from numba import cuda
    kw = dict(num_layers=2, bidirectional=True, dropout=dropout, dtype=np.float32, seed=3)
    cpu = rnngen.RNN(cell, I, H, **kw)
    gpu = rnngen.RNN(cell, I, H, device="cuda", **kw)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    s0 = tuple((0.5 * rng.standard_normal((4, B, H))).astype(np.float32) for _ in cpu.states)
    dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
    df = tuple(rng.standard_normal((4, B, H)).astype(np.float32) for _ in cpu.states)
    ref_y, ref_f = cpu.forward(x, s0, lengths)
    ref_dx, ref_d0 = cpu.backward(dy, df)
    dev = cuda.to_device
    y, f = gpu.forward(dev(x), tuple(dev(s) for s in s0), lengths)
    dx, d0 = gpu.backward(dev(dy), tuple(dev(d) for d in df))
    cuda.synchronize()
    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)] + [(f"final[{k}]", a, b) for k, (a, b) in enumerate(zip(ref_f, f))]
    pairs += [(f"d_state0[{k}]", a, b) for k, (a, b) in enumerate(zip(ref_d0, d0))]
    pairs += [(f"d_{k}", cpu.grads[k], gpu.grads[k]) for k in cpu.params]
    worst, where = 0.0, ""
    for label, ref, got in pairs:
        err = float(np.max(np.abs(got.copy_to_host() - ref) / np.maximum(1.0, np.abs(ref))))
        if err > worst:
            worst, where = err, label
    return worst <= tol, worst, where


def correctness():
    import rnngen
    rows = []
    # the whole stack: rnngen.RNN(device="cuda"), 2 layers, bidirectional, lengths, dropout
    for name in ("lstm", "gru_classic"):
        start = time.perf_counter()
        label = "RNN 2L bidir"
        try:
            ok, err, where = check_rnn(name, 7, 5, 6, 37, [7, 3, 7, 1, 0], 0.3, 1e-4)
            log(f"  {name:14s} {label:18s} {'ok' if ok else 'MISMATCH':8s} max rel err {err:.2e} ({where})"
                f"  {time.perf_counter() - start:.1f} s")
            rows.append((name, label, ok))
        except Exception as exc:
            log(f"  {name:14s} {label:18s} FAILED   {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3)
            rows.append((name, label, False))
    configs = [
        # T, B, I, H, lengths, reverse, weights in global memory, tolerance
        ("H=300 many blocks", 6, 5, 7, 300, [6, 4, 6, 1, 0], False, False, 1e-4),
        ("reverse", 5, 3, 4, 37, [5, 2, 3], True, False, 1e-4),
        ("global weights", 4, 3, 5, 70, None, True, True, 1e-4),
    ]
    for name in rnngen.available():
        for label, T, B, I, H, lengths, reverse, gw, tol in configs:
            start = time.perf_counter()
            if over_deadline():
                log(f"  {name:14s} {label:18s} skipped (past --deadline)")
                continue
            try:
                ok, err, where, plan = check_cell(name, T, B, I, H, lengths, reverse, gw, tol)
                status = "ok" if ok else "MISMATCH"
                log(f"  {name:14s} {label:18s} {status:8s} max rel err {err:.2e} ({where}) "
                    f"plan {plan.get('persistent forward')}  {time.perf_counter() - start:.1f} s")
                rows.append((name, label, ok))
            except Exception as exc:
                log(f"  {name:14s} {label:18s} FAILED   {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=3)
                rows.append((name, label, False))
    bad = [r for r in rows if not r[2]]
    log(f"correctness: {len(rows) - len(bad)}/{len(rows)} passed")
    return rows


# -- 1b. the PyTorch bridge on CUDA tensors -----------------------------------------------------
def _bridge_pair(I, H, L, bidirectional):
    import torch
    import rnngen.torch as bt
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bidirectional).cuda().float()
    return ref, bt.from_torch(ref)


def _bridge_run(module, x, hx, dy, stream=None):
    import torch
    xg = x.clone().requires_grad_(True)
    hxg = tuple(h.clone().requires_grad_(True) for h in hx)
    module.zero_grad(set_to_none=True)
    torch.cuda.synchronize()          # the clones (default stream) are done before a side stream reads
    with torch.cuda.stream(stream) if stream is not None else _nullcontext():
        y, (h_n, c_n) = module(xg, hxg)
        (y * dy).sum().add_(h_n.sum()).add_(c_n.sum() * 2).backward()
    torch.cuda.synchronize()
    out = {"y": y, "h_n": h_n, "c_n": c_n, "dx": xg.grad, "dh0": hxg[0].grad, "dc0": hxg[1].grad}
    out.update({f"d_{n}": p.grad for n, p in module.named_parameters()})
    return {k: v.detach().float().cpu() for k, v in out.items()}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def check_bridge():
    """rnngen.torch.RNN on CUDA tensors (from_torch of a cuDNN LSTM, 2 layers, bidirectional,
    float32, hx): outputs and gradients against torch.nn.LSTM on cuDNN, on the default stream and
    on a side stream; that a layer's input and output cross without a copy; one timing row."""
    import torch
    rows = []
    T, B, I, H = 20, 8, 16, 32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    ref, ours = _bridge_pair(I, H, 2, True)
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(T, B, I, device="cuda", generator=g)
    hx = tuple(0.5 * torch.randn(4, B, H, device="cuda", generator=g) for _ in range(2))
    dy = torch.randn(T, B, 2 * H, device="cuda", generator=g)
    want = _bridge_run(ref, x, hx, dy)
    for label, stream in (("default stream", None), ("side stream", torch.cuda.Stream())):
        start = time.perf_counter()
        try:
            got = _bridge_run(ours, x, hx, dy, stream)
            errs = {k: float(torch.max(torch.abs(got[k] - v) / torch.clamp(v.abs(), min=1.0)))
                    for k, v in want.items()}
            where = max(errs, key=lambda k: (math.isnan(errs[k]), errs[k]))   # NaN counts as worst
            worst = errs[where]
            ok = all(e <= 1e-4 for e in errs.values())
            log(f"  bridge lstm 2L bidir {label:15s} {'ok' if ok else 'MISMATCH':8s} max rel err vs cuDNN "
                f"{worst:.2e} ({where})  {time.perf_counter() - start:.1f} s")
            rows.append(("bridge", label, ok))
        except Exception as exc:
            log(f"  bridge lstm 2L bidir {label:15s} FAILED   {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=4)
            rows.append(("bridge", label, False))
    # zero copy: one layer, one direction: the kernels read x in place and y is the kernels' array
    try:
        _, one = _bridge_pair(I, H, 1, False)
        seen = {}
        gen = one.gen

        class Spy:
            def __getattr__(self, name):
                return getattr(gen, name)

            def forward(self, *args):
                seen["x"] = args[0].__cuda_array_interface__["data"][0]
                out = gen.forward(*args)
                seen["y"] = out[0].__cuda_array_interface__["data"][0]
                return out

        one.gen = Spy()
        y, _ = one(x)
        ok = seen["x"] == x.data_ptr() and seen["y"] == y.data_ptr() and y.is_cuda
        log(f"  bridge zero copy (x in, y out)      {'ok' if ok else 'COPIED':8s} {seen}")
        rows.append(("bridge", "zero copy", ok))
    except Exception as exc:
        log(f"  bridge zero copy                    FAILED   {type(exc).__name__}: {exc}")
        traceback.print_exc(limit=4)
        rows.append(("bridge", "zero copy", False))
    return rows


def time_bridge(budget_s):
    """Forward+backward medians of rnngen.torch.RNN against torch.nn.LSTM (cuDNN), small size."""
    import torch
    T, B, I, H = SIZES["small"]
    ref, ours = _bridge_pair(I, H, 1, False)
    x = torch.randn(T, B, I, device="cuda", requires_grad=True)
    dy = torch.randn(T, B, H, device="cuda")

    def fb(module):
        def run():
            x.grad = None
            module.zero_grad(set_to_none=True)
            y, _ = module(x)
            y.backward(dy)
        return run

    def sync():
        torch.cuda.synchronize()

    result = {}
    with torch.no_grad():
        result["ours_f"], _ = median_ms(lambda: ours(x), sync, budget_s)
        result["cudnn_f"], _ = median_ms(lambda: ref(x), sync, budget_s)
    result["ours_fb"], _ = median_ms(fb(ours), sync, budget_s)
    result["cudnn_fb"], _ = median_ms(fb(ref), sync, budget_s)
    return result


# -- 2. timing ----------------------------------------------------------------------------------
def torch_module(cell, I, H):
    import torch
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
           "rnn_tanh": lambda i, h: torch.nn.RNN(i, h, nonlinearity="tanh")}[cell]
    torch.manual_seed(0)
    return cls(I, H).cuda().float()


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
    return 1e3 * statistics.median(times), reps


def time_case(cell, size, budget_s):
    import torch
    import rnngen
    from numba import cuda
    from rnngen import cuda_runtime as rt
    T, B, I, H = SIZES[size]
    mod = rnngen.load(cell)
    net = torch_module(cell, I, H)
    x = torch.randn(T, B, I, device="cuda")
    dy = torch.randn(T, B, H, device="cuda")
    # the same weights, zero-copy through __cuda_array_interface__
    params = {name: cuda.as_cuda_array(getattr(net, f"{name}_l0").detach()) for name in mod.PARAMS}
    xd, dyd = cuda.as_cuda_array(x), cuda.as_cuda_array(dy)

    def sync():
        torch.cuda.synchronize()
        cuda.synchronize()

    def ours_f():
        return mod.forward(xd, params)

    def ours_fb():
        y, f, saved = mod.forward(xd, params)
        return mod.backward(dyd, None, saved)

    xg = x.clone().requires_grad_(True)

    def torch_f():
        with torch.no_grad():
            return net(x)

    def torch_fb():
        xg.grad = None
        net.zero_grad(set_to_none=True)
        y, _ = net(xg)
        y.backward(dy)

    result = {}
    # accuracy against cuDNN at this size (many blocks, real grid.sync)
    y_ours = ours_f()[0].copy_to_host()
    with torch.no_grad():
        y_ref = net(x)[0].cpu().numpy()
    result["max |y - y_cudnn|"] = float(np.max(np.abs(y_ours - y_ref)))
    dx_ours, _, dp_ours = ours_fb()
    torch_fb()
    result["max |dx - dx_cudnn|"] = float(np.max(np.abs(dx_ours.copy_to_host() - xg.grad.cpu().numpy())))
    result["max |dW_hh - cudnn|"] = float(np.max(np.abs(dp_ours["weight_hh"].copy_to_host()
                                                        - net.weight_hh_l0.grad.cpu().numpy())))
    result["plan"] = dict(rt.LAST_PLAN)
    result["ours_f"], result["reps"] = median_ms(ours_f, sync, budget_s)
    result["ours_fb"], _ = median_ms(ours_fb, sync, budget_s)
    result["cudnn_f"], _ = median_ms(torch_f, sync, budget_s)
    result["cudnn_fb"], _ = median_ms(torch_fb, sync, budget_s)
    rt.PROFILE = {}
    try:
        ours_fb()
        result["profile"] = {k: 1e3 * sum(v) for k, v in rt.PROFILE.items()}
    finally:
        rt.PROFILE = None
    return result


DEADLINE = [None]   # time.perf_counter() after which remaining cases are skipped


def over_deadline():
    return DEADLINE[0] is not None and time.perf_counter() > DEADLINE[0]


def timing(sizes, budget_s):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    results = {}
    for size in sizes:
        for cell in TORCH_CELLS:
            start = time.perf_counter()
            if over_deadline():
                results[cell, size] = {"error": "skipped: past --deadline"}
                log(f"  {cell:9s} {size:9s} skipped (past --deadline)")
                continue
            try:
                r = time_case(cell, size, budget_s)
                results[cell, size] = r
                log(f"  {cell:9s} {size:9s} ours {r['ours_f']:8.3f} / {r['ours_fb']:8.3f} ms   cuDNN "
                    f"{r['cudnn_f']:8.3f} / {r['cudnn_fb']:8.3f} ms   |y| {r['max |y - y_cudnn|']:.1e} "
                    f"|dx| {r['max |dx - dx_cudnn|']:.1e} |dW| {r['max |dW_hh - cudnn|']:.1e}   "
                    f"({time.perf_counter() - start:.1f} s)")
                log(f"      plan (grid, threads, units, shared bytes, on chip): {r['plan']}")
                log("      profile of one fwd+bwd, ms: " +
                    ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["profile"].items(), key=lambda kv: -kv[1])))
            except Exception as exc:
                results[cell, size] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"  {cell:9s} {size:9s} FAILED {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=4)
    return results


def sweep(cells_sizes, configs, budget_s):
    """Forward and fwd+bwd median ms for several (units per block, most threads) settings."""
    import torch
    import rnngen
    from numba import cuda
    from rnngen import cuda_runtime as rt
    for cell, size in cells_sizes:
        T, B, I, H = SIZES[size]
        mod = rnngen.load(cell)
        params = {k: cuda.to_device(v) for k, v in mod.init_params(I, H, np.float32).items()}
        x = cuda.as_cuda_array(torch.randn(T, B, I, device="cuda"))
        dy = cuda.as_cuda_array(torch.randn(T, B, H, device="cuda"))
        for units, threads in configs:
            if units > H:
                continue
            rt.UNITS, rt.THREADS = units, threads
            try:
                def fwd():
                    return mod.forward(x, params)

                def fwdbwd():
                    return mod.backward(dy, None, mod.forward(x, params)[2])
                f, _ = median_ms(fwd, cuda.synchronize, budget_s)
                fb, _ = median_ms(fwdbwd, cuda.synchronize, budget_s)
                log(f"  {cell:9s} {size:9s} units/block {units:3d} grid {rt.LAST_PLAN['persistent forward'][0]:4d} "
                    f"threads {rt.LAST_PLAN['persistent forward'][1]:4d}: {f:8.3f} / {fb:8.3f} ms")
            except Exception as exc:
                log(f"  {cell:9s} {size:9s} units/block {units:3d} FAILED {type(exc).__name__}: {exc}")
            finally:
                rt.UNITS, rt.THREADS = None, 512


def table(results):
    log("")
    log("| cell | size (T, B, I, H) | rnngen fwd | cuDNN fwd | ratio | rnngen fwd+bwd | cuDNN fwd+bwd | ratio "
        "| earlier cuDNN anchor |")
    log("|---|---|---|---|---|---|---|---|---|")
    for (cell, size), r in results.items():
        dims = ", ".join(map(str, SIZES[size]))
        anchor = ANCHORS.get((cell, size))
        anchor = f"{anchor[0]} / {anchor[1]}" if anchor else ""
        if "error" in r:
            log(f"| {cell} | {size} ({dims}) | failed: {r['error'][:60]} | | | | | | {anchor} |")
            continue
        log(f"| {cell} | {size} ({dims}) | {r['ours_f']:.3f} | {r['cudnn_f']:.3f} | {r['ours_f'] / r['cudnn_f']:.2f} "
            f"| {r['ours_fb']:.3f} | {r['cudnn_fb']:.3f} | {r['ours_fb'] / r['cudnn_fb']:.2f} | {anchor} |")
    log("(median ms, fp32, TF32 off; ratio = rnngen / cuDNN, below 1 means rnngen is faster)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="course and small sizes only")
    ap.add_argument("--skip-check", action="store_true", help="skip the CUDA-vs-CPU check")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds of repetitions per measurement")
    ap.add_argument("--deadline", type=float, default=420,
                    help="seconds after which remaining cases are skipped (the table still prints)")
    args = ap.parse_args()
    start = time.perf_counter()
    import faulthandler
    faulthandler.dump_traceback_later(args.deadline + 120, exit=True)   # a hung kernel: tracebacks, exit
    DEADLINE[0] = start + args.deadline
    correctness_deadline = start + 0.4 * args.deadline
    environment()
    if not args.skip_check:
        log("\n== 1. CUDA against the CPU path, every built-in cell")
        DEADLINE[0] = correctness_deadline      # leave most of the time to the timings
        correctness()
        DEADLINE[0] = start + args.deadline
    bridge_row = None
    if not args.skip_check:
        log("\n== 1b. rnngen.torch.RNN on CUDA tensors against torch.nn.LSTM (cuDNN)")
        try:
            rows = check_bridge()
            log(f"bridge: {sum(r[2] for r in rows)}/{len(rows)} passed")
        except Exception as exc:
            log(f"  bridge check FAILED   {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=4)
    try:
        bridge_row = time_bridge(min(args.budget, 1.0))
    except Exception as exc:
        bridge_row = {"error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc(limit=4)
    log(f"\n== 2. timing against cuDNN ({time.perf_counter() - start:.0f} s so far)")
    sizes = ["course", "small"] if args.quick else list(SIZES)
    results = timing(sizes, args.budget)
    results[("lstm via rnngen.torch", "small")] = bridge_row
    table(results)
    if not args.quick and time.perf_counter() - start < 0.8 * args.deadline:
        log(f"\n== 3. units per block (grid size) and threads sweep, lstm ({time.perf_counter() - start:.0f} s so far)")
        sweep([("lstm", "small"), ("lstm", "fastrnns")],
              [(1, 512), (2, 512), (4, 512), (4, 256), (8, 512), (8, 256), (16, 512)], 0.4)
        table(results)     # again, so the table is the last thing printed
    log(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
