"""Stage `correct` of benchmarks/gpu_check.py: pass/fail with thresholds at the sizes that matter.

- every gradient of lstm, gru, rnn_tanh and gru_classic against the CPU path at B = 64, H = 512
  and 1024, T = 8, with lengths (0, 1, T and random) and reverse; at H = 1024 the weight slices
  need more than 48 KiB of shared memory per block (the opt-in), and the case fails if the
  weights did not stay on chip;
- lstm at H = 2048, whose slice does not fit: the global-weights path, which the case checks it
  took for the reason that it does not fit; lstm at H = 512 forced onto that path;
- rnngen.RNN(device="cuda"), 2 layers, bidirectional, lengths and dropout, against the CPU RNN;
- the torch bridge on CUDA tensors: rnngen.torch.from_torch of a 2-layer bidirectional cuDNN LSTM,
  outputs and every gradient against cuDNN, on the default and a side stream; that x and y cross
  without a copy;
- cuDNN parity at fastrnns (T = 100, B = 64, I = H = 512) for lstm, gru and rnn_tanh: outputs, final
  states, dx and every parameter gradient, TF32 off;
- races: three runs of forward + backward at fastrnns give bit-identical results (the bias
  gradients, summed with atomics in any order, within rounding).

Under the CUDA simulator the same cases run at tiny sizes on one block, and the torch cases skip.
"""
from gpu_common import (CELLS, SIMULATOR, TORCH_CELLS, compare, cuda, host, lengths_for, np, placement,
                        problem, rnngen, rt, to_device, torch_cuda)

SIZES = {
    "gpu": dict(T=8, B=64, H=(512, 1024), H_global=2048, H_forced=512, rnn=(8, 64, 512, 512),
                bridge=(8, 64, 256, 512), fast=(100, 64, 512, 512)),
    "simulator": dict(T=3, B=3, H=(3, 4), H_global=5, H_forced=3, rnn=(3, 3, 2, 3), bridge=None,
                      fast=(3, 3, 2, 3)),
}


# -- one layer-direction against the CPU path ----------------------------------------------------
def cell_pairs(mod, T, B, I, H, lengths, reverse, seed=0):
    """(label, CPU value, CUDA value) of every output and gradient of one forward + backward."""
    params, x, s0, dy, df = problem(mod, T, B, I, H, seed)
    ref_y, ref_f, saved = mod.forward(x, params, s0, lengths, reverse)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, df, saved)
    y, f, sv = mod.forward(to_device(x), to_device(params), to_device(s0), lengths, reverse)
    dx, d0, dp = mod.backward(to_device(dy), to_device(df), sv)
    cuda.synchronize()
    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
    pairs += [(f"final_{s}", a, b) for s, a, b in zip(mod.STATES, ref_f, f)]
    pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(mod.STATES, ref_d0, d0)]
    pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    return pairs


def cell_case(cell, T, B, I, H, reverse, on_chip, force_global=False):
    """A case: `cell` at (T, B, I, H) with lengths against the CPU path; `on_chip` is where the
    recurrent weights must have been (True, False), and with False, for which reason."""
    def run():
        mod = rnngen.load(cell)
        rt.FORCE_GLOBAL_WEIGHTS = force_global
        try:
            facts = compare(cell_pairs(mod, T, B, I, H, lengths_for(B, T), reverse))
        finally:
            rt.FORCE_GLOBAL_WEIGHTS = False
        facts["placement"] = placement()
        for name, p in facts["placement"].items():
            if p["on_chip"] != on_chip:
                facts["ok"] = False
                facts["summary"] = (f"{name}: weights {'on chip' if p['on_chip'] else 'in global memory'}, "
                                    f"expected {'on chip' if on_chip else 'global'} ({p['reason']}); "
                                    + facts["summary"])
            elif not on_chip and not force_global and not SIMULATOR and "shared memory" not in (p["reason"] or ""):
                facts["ok"] = False
                facts["summary"] = f"{name}: global weights for an unexpected reason ({p['reason']}); " + \
                    facts["summary"]
        return facts
    return run


# -- the whole stack -----------------------------------------------------------------------------
def rnn_case(cell, T, B, I, H, dropout=0.3):
    """rnngen.RNN(device="cuda"), 2 layers, bidirectional, lengths, dropout, against the CPU RNN
    with the same seed: outputs, final states, dx, d_state0 and every parameter's gradient."""
    def run():
        kw = dict(num_layers=2, bidirectional=True, dropout=dropout, dtype=np.float32, seed=3)
        cpu = rnngen.RNN(cell, I, H, **kw)
        gpu = rnngen.RNN(cell, I, H, device="cuda", **kw)
        rng = np.random.default_rng(1)
        lengths = lengths_for(B, T, seed=2)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        s0 = tuple((0.5 * rng.standard_normal((4, B, H))).astype(np.float32) for _ in cpu.states)
        dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
        df = tuple(rng.standard_normal((4, B, H)).astype(np.float32) for _ in cpu.states)
        ref_y, ref_f = cpu.forward(x, s0, lengths)
        ref_dx, ref_d0 = cpu.backward(dy, df)
        y, f = gpu.forward(to_device(x), to_device(s0), lengths)
        dx, d0 = gpu.backward(to_device(dy), to_device(df))
        cuda.synchronize()
        pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
        pairs += [(f"final_{s}", a, b) for s, a, b in zip(cpu.states, ref_f, f)]
        pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(cpu.states, ref_d0, d0)]
        pairs += [(f"d_{k}", cpu.grads[k], gpu.grads[k]) for k in cpu.params]
        return compare(pairs)
    return run


# -- the torch bridge on CUDA tensors ------------------------------------------------------------
def _bridge_pair(torch, I, H, layers, bidirectional):
    import rnngen.torch as bt
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=layers, bidirectional=bidirectional).cuda().float()
    return ref, bt.from_torch(ref)


def _bridge_run(torch, module, x, hx, dy, stream=None):
    import contextlib
    xg = x.clone().requires_grad_(True)
    hxg = tuple(h.clone().requires_grad_(True) for h in hx)
    module.zero_grad(set_to_none=True)
    torch.cuda.synchronize()          # the clones (default stream) are done before a side stream reads
    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        y, (h_n, c_n) = module(xg, hxg)
        (y * dy).sum().add_(h_n.sum()).add_(c_n.sum() * 2).backward()
    torch.cuda.synchronize()
    out = {"y": y, "final_h": h_n, "final_c": c_n, "dx": xg.grad, "d_state0_h": hxg[0].grad,
           "d_state0_c": hxg[1].grad}
    out.update({f"d_{n}": p.grad for n, p in module.named_parameters()})
    return {k: v.detach().float().cpu().numpy() for k, v in out.items()}


def bridge_case(T, B, I, H, side_stream):
    """rnngen.torch.from_torch(cuDNN LSTM, 2 layers, bidirectional) on CUDA tensors with hx:
    outputs and every gradient against cuDNN (TF32 off)."""
    def run():
        torch = torch_cuda()
        if torch is None:
            return {"skipped": "needs torch with CUDA and a GPU"}
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        ref, ours = _bridge_pair(torch, I, H, 2, True)
        g = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(T, B, I, device="cuda", generator=g)
        hx = tuple(0.5 * torch.randn(4, B, H, device="cuda", generator=g) for _ in range(2))
        dy = torch.randn(T, B, 2 * H, device="cuda", generator=g)
        want = _bridge_run(torch, ref, x, hx, dy)
        got = _bridge_run(torch, ours, x, hx, dy, torch.cuda.Stream() if side_stream else None)
        return compare([(k, want[k], got[k]) for k in want])
    return run


def bridge_zero_copy_case(T, B, I, H):
    """One layer, one direction: the kernels read x in place and y is the kernels' own array."""
    def run():
        torch = torch_cuda()
        if torch is None:
            return {"skipped": "needs torch with CUDA and a GPU"}
        _, one = _bridge_pair(torch, I, H, 1, False)
        seen, gen = {}, one.gen

        class Spy:
            def __getattr__(self, name):
                return getattr(gen, name)

            def forward(self, *args):
                seen["x"] = args[0].__cuda_array_interface__["data"][0]
                out = gen.forward(*args)
                seen["y"] = out[0].__cuda_array_interface__["data"][0]
                return out

        one.gen = Spy()
        x = torch.randn(T, B, I, device="cuda")
        y, _ = one(x)
        ok = seen.get("x") == x.data_ptr() and seen.get("y") == y.data_ptr() and y.is_cuda
        return {"ok": ok, "pointers": seen, "summary": "no copy" if ok else f"COPIED: {seen}"}
    return run


# -- cuDNN parity --------------------------------------------------------------------------------
def torch_module(torch, cell, I, H):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
           "rnn_tanh": lambda i, h: torch.nn.RNN(i, h, nonlinearity="tanh")}[cell]
    torch.manual_seed(0)
    return cls(I, H).cuda().float()


def cudnn_case(cell, T, B, I, H):
    """`cell` (one layer) with cuDNN's own weights, through __cuda_array_interface__ (no copy):
    y, final states, dx and every parameter gradient against torch.nn on cuDNN."""
    def run():
        torch = torch_cuda()
        if torch is None:
            return {"skipped": "needs torch with CUDA and a GPU"}
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        mod = rnngen.load(cell)
        net = torch_module(torch, cell, I, H)
        g = torch.Generator(device="cuda").manual_seed(4)
        x = torch.randn(T, B, I, device="cuda", generator=g)
        dy = torch.randn(T, B, H, device="cuda", generator=g)
        xg = x.clone().requires_grad_(True)
        y_ref, fin_ref = net(xg)
        y_ref.backward(dy)
        fin_ref = fin_ref if isinstance(fin_ref, tuple) else (fin_ref,)
        params = {k: cuda.as_cuda_array(getattr(net, f"{k}_l0").detach()) for k in mod.PARAMS}
        y, fin, saved = mod.forward(cuda.as_cuda_array(x), params)
        dx, _, dp = mod.backward(cuda.as_cuda_array(dy), None, saved)
        cuda.synchronize()
        pairs = [("y", host(y_ref), y), ("dx", host(xg.grad), dx)]
        pairs += [(f"final_{s}", host(r[0]), f) for s, r, f in zip(mod.STATES, fin_ref, fin)]
        pairs += [(f"d_{k}", host(getattr(net, f"{k}_l0").grad), dp[k]) for k in mod.PARAMS]
        return compare(pairs)
    return run


# -- races ---------------------------------------------------------------------------------------
def race_case(cell, T, B, I, H, runs=3):
    """`runs` forward + backward passes on the same inputs: every output and gradient bit-identical
    (a race between blocks or threads shows up as a difference). The bias and vector gradients are
    sums in a fixed order in the backward kernel (no atomics since issue 13): bit-identical too."""
    def run():
        mod = rnngen.load(cell)
        params, x, s0, dy, df = problem(mod, T, B, I, H, seed=5)
        dev_params, dev_x, dev_s0, dev_dy = to_device(params), to_device(x), to_device(s0), to_device(dy)
        lengths = lengths_for(B, T, seed=6)
        results = []
        for _ in range(runs):
            y, f, sv = mod.forward(dev_x, dev_params, dev_s0, lengths)
            dx, d0, dp = mod.backward(dev_dy, to_device(df), sv)
            out = {"y": y, "dx": dx, **{f"final_{s}": v for s, v in zip(mod.STATES, f)},
                   **{f"d_state0_{s}": v for s, v in zip(mod.STATES, d0)}, **{f"d_{k}": v for k, v in dp.items()}}
            results.append({k: host(v) for k, v in out.items()})
        differ = []
        for k, first in results[0].items():
            if not np.all(np.isfinite(first)):
                differ.append(f"{k} (not finite)")
            elif not all(np.array_equal(r[k], first) for r in results[1:]):
                differ.append(k)
        ok = not differ
        return {"ok": ok, "runs": runs, "differ": differ,
                "summary": f"{runs} runs bit-identical" if ok else f"RUNS DIFFER in {', '.join(differ)}"}
    return run


def cases(stage, sizes):
    s = SIZES[sizes]
    T, B = s["T"], s["B"]
    out = []
    for H in s["H"]:
        I = H if not SIMULATOR else 2
        for cell in CELLS:
            for reverse in (False, True):
                out.append((f"{cell} H={H} T={T} B={B} lengths{' reverse' if reverse else ''}",
                            cell_case(cell, T, B, I, H, reverse, on_chip=True)))
    Hg = s["H_global"]
    out.append((f"lstm H={Hg} T={T} B={B} global weights (too large for shared memory)",
                cell_case("lstm", T, B, Hg if not SIMULATOR else 2, Hg, False, on_chip=False,
                          force_global=SIMULATOR)))
    Hf = s["H_forced"]
    out.append((f"lstm H={Hf} T={T} B={B} reverse, FORCE_GLOBAL_WEIGHTS",
                cell_case("lstm", T, B, Hf if not SIMULATOR else 2, Hf, True, on_chip=False, force_global=True)))
    for cell in ("lstm", "gru_classic"):
        out.append((f"RNN(device='cuda') {cell} 2 layers bidirectional lengths dropout {s['rnn']}",
                    rnn_case(cell, *s["rnn"])))
    bridge = s["bridge"] or (3, 2, 2, 3)
    out.append((f"torch bridge lstm 2L bidir default stream {bridge}", bridge_case(*bridge, side_stream=False)))
    out.append((f"torch bridge lstm 2L bidir side stream {bridge}", bridge_case(*bridge, side_stream=True)))
    out.append((f"torch bridge zero copy {bridge}", bridge_zero_copy_case(*bridge)))
    for cell in TORCH_CELLS:
        out.append((f"cuDNN parity {cell} {s['fast']}", cudnn_case(cell, *s["fast"])))
    for cell in CELLS:
        out.append((f"race {cell} {s['fast']} x3", race_case(cell, *s["fast"])))
    return out
