"""Where an LSTM forward+backward spends its time on the CPU, one thread: the generated module's
pieces timed separately, in interleaved blocks (one untimed call, then timed ones; medians).

Pieces (all with one BLAS thread, float32 unless --dtype float64):
- hoisted input GEMM: x (T*B, I) @ W_ih.T and its bias add, as the module's forward does;
- forward time loop (`_forward_loop`), and inside it the per-step GEMMs alone (the same T calls
  of gemm_panels(h_t, panels of W_hh.T) in a Numba loop): the difference is the fused gate math, also given in
  ns per (t, b, j) element;
- backward time loop (`_backward_loop`), and inside it the per-step GEMMs alone (gemm_panels(dz_t, panels of W_hh)
  and the add into dh): the difference is the backward gate math;
- the hoisted and after-loop GEMMs through host_gemm.matmul / matmul_tn, as the wrappers call them
  (BLAS, or rnngen's panels where host_gemm.PANELS says so; the header says which);
- the GEMMs after the backward loop: weight gradients dW_ih = dZ.T @ x, dW_hh = dZ.T @ h, the input
  gradient dx = dZ @ W_ih, and the bias sums;
- overhead: the module's forward / backward minus their pieces (checks, allocation, copies), and
  rnngen.RNN's forward+backward minus the module's (the network's checks and bookkeeping).

    python benchmarks/profile_cpu.py                       # lstm, small and fastrnns
    python benchmarks/profile_cpu.py --sizes small --reps 9
    python benchmarks/profile_cpu.py --sizes small --dtype float64

It calls the generated module's private loops with the arguments its forward/backward pass them
(generated/lstm.py at the time of writing): if the module's layout changes, update `_loop_args`.
"""
import argparse
import os
import sys
import time

import numpy as np
import threadpoolctl
from numba import njit

import rnngen
from rnngen.tools import bench
from rnngen.generated import lstm
from rnngen.backends.cpu import host_gemm
from rnngen.backends.cpu.host_gemm import matmul, matmul_tn
from rnngen.backends.cpu.mathlib import column_sum
from rnngen.backends.cpu.stepgemm import gemm_panels, panels

BLOCK = 3


@njit
def _step_gemms_forward(s_h, panels_hh, z_hh):
    for i in range(s_h.shape[0] - 1):
        gemm_panels(s_h[i], panels_hh, z_hh)


@njit
def _step_gemms_backward(dz_hh, panels_hh_adj, d_h, dv_hh):
    for i in range(dz_hh.shape[0] - 1, -1, -1):
        gemm_panels(dz_hh[i], panels_hh_adj, dv_hh)
        d_h += dv_hh


def _loop_args(size, dtype=np.float32):
    """Inputs of the module's pieces, built the way generated/lstm.py's forward/backward build them."""
    T, B, I, H = bench.SIZES[size]
    p = lstm.init_params(I, H, dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal((T, B, H)).astype(dtype)
    y, _, saved = lstm.forward(x, p)
    lengths = saved.lengths
    a = dict(T=T, B=B, I=I, H=H, p=p, x=x, dy=dy, saved=saved, lengths=lengths, dtype=dtype,
             x2d=x.reshape(T * B, I), z_hh=np.empty((B, 4 * H), dtype), y=np.zeros((T, B, H), dtype),
             s_h=saved.s_h.copy(), s_c=saved.s_c.copy(),
             zx_pre=(x.reshape(T * B, I) @ p["weight_ih"].T).reshape(T, B, 4 * H), zx_sum=saved.zx_ih,
             d_h=np.zeros((B, H), dtype), d_c=np.zeros((B, H), dtype),
             dz_hh=np.zeros((T, B, 4 * H), dtype), dv_hh=np.empty((B, H), dtype))
    a["zx_work"] = a["zx_pre"].copy()
    a["panels_hh"], a["panels_hh_adj"] = panels(p["weight_hh"].T), panels(p["weight_hh"])
    a["panels_ih"] = panels(p["weight_ih"].T)
    a["bias_ih_hh"] = p["bias_ih"] + p["bias_hh"]
    a["TC"] = lstm._chunk_steps(T, B * 4 * H * x.itemsize, [p["weight_ih"], p["weight_hh"]], False)
    a["x_chunk"], a["zx_chunk"] = np.empty((a["TC"], B, I), dtype), np.empty((a["TC"], B, 4 * H), dtype)
    return a


def pieces(a):
    """name -> (fn, setup or None): the timed pieces of one size."""
    p, T, B, I, H = a["p"], a["T"], a["B"], a["I"], a["H"]
    lengths, x2d, dz2d = a["lengths"], a["x2d"], a["dz_hh"].reshape(T * B, 4 * H)
    net = rnngen.RNN("lstm", I, H, dtype=a["dtype"], seed=0)
    n = bench.GEMM_N
    g = np.random.default_rng(1).standard_normal((n, n)).astype(a["dtype"])
    g_out = np.empty_like(g)

    def sgemm():
        np.matmul(g, g, out=g_out)

    def hoisted():
        matmul(x2d, p["weight_ih"].T).reshape(T, B, 4 * H)      # the loop adds the biases

    def fwd_setup():           # the loop adds the recurrent part into zx in place: start afresh
        a["zx_work"][...] = a["zx_pre"]

    def fwd_loop():
        lstm._forward_loop(lengths, False, a["y"], a["zx_work"], a["s_h"], a["s_c"], a["z_hh"],
                           a["bias_ih_hh"], a["panels_hh"])

    def infer_loop():          # need_grad=False: two rows of states, nothing saved, its input GEMMs inside
        lstm._infer_loop(lengths, False, a["y"], a["x"], a["zx_chunk"], a["s_h"][:2], a["s_c"][:2], a["z_hh"],
                         a["bias_ih_hh"], a["x_chunk"], a["panels_hh"], a["panels_ih"])

    def step_fwd():
        _step_gemms_forward(a["s_h"], a["panels_hh"], a["z_hh"])

    def bwd_setup():
        a["d_h"][...] = 0
        a["d_c"][...] = 0

    def bwd_loop():
        lstm._backward_loop(lengths, False, a["dy"], a["zx_sum"], a["saved"].s_c, a["d_h"], a["d_c"],
                            a["dz_hh"], a["dv_hh"], a["panels_hh_adj"])

    def step_bwd():
        _step_gemms_backward(a["dz_hh"], a["panels_hh_adj"], a["d_h"], a["dv_hh"])

    def dw_ih():
        matmul_tn(dz2d, x2d)

    def dw_hh():
        matmul_tn(dz2d, a["saved"].s_h[:T].reshape(T * B, H))

    def dx():
        matmul(dz2d, p["weight_ih"])

    def dbias():
        column_sum(dz2d)

    def module_fwd():
        lstm.forward(a["x"], p)

    def module_bwd():
        lstm.backward(a["dy"], None, a["saved"])

    def rnn_fb():
        net.forward(a["x"])
        net.backward(a["dy"])

    return {"hoisted input GEMM": (hoisted, None), "forward loop": (fwd_loop, fwd_setup),
            "inference loop": (infer_loop, fwd_setup),
            "forward per-step GEMMs": (step_fwd, None), "backward loop": (bwd_loop, bwd_setup),
            "backward per-step GEMMs": (step_bwd, bwd_setup), "dW_ih GEMM": (dw_ih, None),
            "dW_hh GEMM": (dw_hh, None), "dx GEMM": (dx, None), "bias sums": (dbias, None),
            "module forward": (module_fwd, None), "module backward": (module_bwd, None),
            "RNN forward+backward": (rnn_fb, None), "sgemm": (sgemm, None)}


def measure(fns, reps):
    samples = {k: [] for k in fns}
    for fn, setup in fns.values():         # compile and first touch
        (setup or (lambda: None))()
        fn()
    for _ in range(reps):
        for name, (fn, setup) in fns.items():
            (setup or (lambda: None))()
            fn()                            # untimed
            for _ in range(BLOCK):
                (setup or (lambda: None))()
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in samples.items()}


def report(size, ms, a, gemm_one):
    T, B, I, H = a["T"], a["B"], a["I"], a["H"]
    el = T * B * H
    g = {"hoisted input GEMM": 2 * T * B * I * 4 * H, "forward per-step GEMMs": 2 * T * B * H * 4 * H,
         "backward per-step GEMMs": 2 * T * B * H * 4 * H, "dW_ih GEMM": 2 * T * B * I * 4 * H,
         "dW_hh GEMM": 2 * T * B * H * 4 * H, "dx GEMM": 2 * T * B * I * 4 * H}
    gate_f = ms["forward loop"] - ms["forward per-step GEMMs"]
    gate_b = ms["backward loop"] - ms["backward per-step GEMMs"]
    gate_i = ms["inference loop"] - ms["forward per-step GEMMs"]
    over_f = ms["module forward"] - ms["hoisted input GEMM"] - ms["forward loop"]
    after = ms["dW_ih GEMM"] + ms["dW_hh GEMM"] + ms["dx GEMM"] + ms["bias sums"]
    over_b = ms["module backward"] - ms["backward loop"] - after
    over_rnn = ms["RNN forward+backward"] - ms["module forward"] - ms["module backward"]
    total = ms["RNN forward+backward"]
    rows = [("hoisted input GEMM (x @ W_ih.T)", ms["hoisted input GEMM"], "hoisted input GEMM"),
            ("forward per-step GEMMs (h_t @ W_hh.T)", ms["forward per-step GEMMs"], "forward per-step GEMMs"),
            (f"forward gate math (loop - its GEMMs): {1e6 * gate_f / el:.1f} ns/element", gate_f, None),
            ("forward overhead (module forward - its pieces)", over_f, None),
            (f"(need_grad=False: inference loop {ms['inference loop']:.2f} ms, gate math "
             f"{1e6 * gate_i / el:.1f} ns/element; not in the total)", gate_i, None),
            ("backward per-step GEMMs (dz_t @ W_hh, dh +=)", ms["backward per-step GEMMs"], "backward per-step GEMMs"),
            (f"backward gate math (loop - its GEMMs): {1e6 * gate_b / el:.1f} ns/element", gate_b, None),
            ("weight-gradient GEMM dW_ih = dZ.T @ x", ms["dW_ih GEMM"], "dW_ih GEMM"),
            ("weight-gradient GEMM dW_hh = dZ.T @ h", ms["dW_hh GEMM"], "dW_hh GEMM"),
            ("input-gradient GEMM dx = dZ @ W_ih", ms["dx GEMM"], "dx GEMM"),
            ("bias sums", ms["bias sums"], None),
            ("backward overhead (module backward - its pieces)", over_b, None),
            ("rnngen.RNN overhead (RNN fwd+bwd - module fwd - module bwd)", over_rnn, None)]
    print(f"\n### lstm {size} (T={T}, B={B}, I={I}, H={H}) {np.dtype(a['dtype']).name}, one thread: "
          f"RNN forward+backward {total:.2f} ms (module forward {ms['module forward']:.2f} ms, backward {ms['module backward']:.2f} ms)\n")
    print("| piece | ms | share of RNN fwd+bwd | GFLOP/s | % of the one-core GEMM rate |")
    print("|---|---|---|---|---|")
    for label, v, key in rows:
        rate = g[key] / (v * 1e-3) / 1e9 if key in g and v > 0 else None
        print(f"| {label} | {v:.2f} | {100 * v / total:.1f}% | {bench.fmt(rate, '.1f')} | "
              f"{bench.fmt(100 * rate / gemm_one if rate else None, '.0f')}{'%' if rate else ''} |")
    gemms = sum(ms[k] for k in g)
    print(f"\nGEMMs {gemms:.2f} ms ({100 * gemms / total:.0f}%), gate math {gate_f + gate_b:.2f} ms "
          f"({100 * (gate_f + gate_b) / total:.0f}%), bias sums and overhead "
          f"{ms['bias sums'] + over_f + over_b + over_rnn:.2f} ms "
          f"({100 * (ms['bias sums'] + over_f + over_b + over_rnn) / total:.0f}%)")


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/profile_cpu.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="small,fastrnns", help=f"among {','.join(bench.SIZES)}")
    p.add_argument("--reps", type=int, default=5, help=f"rounds of blocks ({BLOCK} timed samples each)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = p.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    bad = [s for s in sizes if s not in bench.SIZES]
    if bad or args.reps < 1:
        print(f"benchmarks/profile_cpu.py: unknown size(s) {', '.join(bad)} or --reps < 1", file=sys.stderr)
        return 2
    bench.blas_info()   # load numpy's and SciPy's BLAS before limiting them
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        m = bench.machine()
        gemms = "rnngen panels" if host_gemm.PANELS else "BLAS"
        print(f"# benchmarks/profile_cpu.py — {m['cpu']}, {m['cores']} cores; one BLAS thread; "
              f"wrapper GEMMs: {gemms}; load average at start {bench.loadavg()}")
        for size in sizes:
            a = _loop_args(size, np.dtype(args.dtype).type)
            ms = measure(pieces(a), args.reps)
            rate = 2 * bench.GEMM_N ** 3 / (ms["sgemm"] * 1e-3) / 1e9
            print(f"\nnumpy GEMM {bench.GEMM_N}^3 {args.dtype}, one thread, interleaved with the pieces: "
                  f"{rate:.1f} GFLOP/s")
            report(size, ms, a, rate)
        print(f"\nload average at end {bench.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
