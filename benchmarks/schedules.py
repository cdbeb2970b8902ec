"""Issue 11 study: which schedule makes rnngen.RNN (fp32, LSTM) faster on 2 cores than on 1.

Candidates (each measured against today's rnngen.RNN with OpenBLAS at one thread):
  (a) today: rnngen.RNN, OpenBLAS at 1 and at 2 threads (threadpoolctl);
  (b) the two directions of a bidirectional layer on 2 Python threads (nogil kernels, BLAS 1
      thread each; the hoisted and weight-gradient GEMMs at 2 threads);
  (c) batch halves on 2 Python threads (nogil kernels on B/2 rows each, BLAS 1 thread each);
  (d) hidden-unit slices, one barrier per step: each worker owns H/2 units (all 4 gates, their
      rows of weight_hh gathered into one contiguous (4*H/2, H) weight), computes its slice of
      h @ W.T and the gate math of its units; barrier; next step. Two barriers: numba.prange
      (parallel=True; its fork/join per step) and two nogil threads on a spin barrier made of
      atomic acquire/release loads and stores (an LLVM intrinsic), with `pause` and sched_yield;
  (e) a fused small-H kernel: the recurrent GEMM as loops in the njit kernel (no BLAS call).
Plus the per-step GEMM rate at 16/32/64 rows and the call overhead at course size.

The kernels are the generated module's own `_forward_loop` / `_backward_loop`, recompiled with
nogil=True from their py_func (no generated code is edited). Timing: candidates alternate in
blocks (one untimed call, then several timed), medians; every table is repeated (--repeats) and
printed with the load average; ratios are today-one-thread time / candidate time (>1: faster).

    python benchmarks/schedules.py --quick        # 1 repeat; 7 minutes at load 4-9 on 2 cores
    python benchmarks/schedules.py                # the full study (3 repeats)
    python benchmarks/schedules.py --only gemm,overhead,barrier
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

if __name__ == "__main__" and "--layer" in sys.argv:           # before numba is imported
    os.environ["NUMBA_THREADING_LAYER"] = sys.argv[sys.argv.index("--layer") + 1]

import numpy as np                                               # noqa: E402
import numba                                                     # noqa: E402
import threadpoolctl                                             # noqa: E402
from llvmlite import ir                                          # noqa: E402
from numba import njit, prange                                   # noqa: E402
from numba.core import cgutils, types                            # noqa: E402
from numba.extending import intrinsic                            # noqa: E402

import scipy.linalg.cython_blas  # noqa: E402,F401  (the BLAS Numba's np.dot calls; load it now)
import rnngen                                                    # noqa: E402

M = rnngen.load("lstm")
F32 = np.float32
SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512)}

# -- BLAS threads ---------------------------------------------------------------------------------
_BLAS = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers


def set_blas(n):
    for lib in _BLAS:
        lib.set_num_threads(n)


# -- nogil kernels (the generated ones, recompiled) -----------------------------------------------
JIT = dict(nogil=True, cache=False, error_model="numpy")
fwd_loop_ng = njit(**JIT)(M._forward_loop.py_func)
bwd_loop_ng = njit(**JIT)(M._backward_loop.py_func)
_sigmoid, _tanh = M._sigmoid, M._tanh
POOL = ThreadPoolExecutor(1)     # the second worker; the calling thread is the first


def run_two(f0, f1):
    """f0 on this thread, f1 on the pool's, concurrently; both must release the GIL."""
    fut = POOL.submit(f1)
    f0()
    fut.result()


# -- one LSTM layer-direction in phases (the generated forward/backward without the checks) -------
class Dir:
    """State of one direction of one layer: prep (hoisted GEMM), loop (per-step), post."""

    def __init__(self, p, reverse, lengths):
        self.p, self.reverse, self.lengths = p, reverse, lengths

    def fwd_prep(self, x):
        T, B, I = x.shape
        H = self.p["weight_hh"].shape[1]
        self.x = x
        self.zx = (x.reshape(T * B, I) @ self.p["weight_ih"].T).reshape(T, B, 4 * H)
        self.zx += self.p["bias_ih"]
        self.s_h = np.zeros((T + 1, B, H), F32)
        self.s_c = np.zeros((T + 1, B, H), F32)
        self.z = np.empty((B, 4 * H), F32)
        self.y = np.zeros((T, B, H), F32)

    def fwd_loop(self, loop=fwd_loop_ng):
        loop(self.lengths, self.reverse, self.y, self.zx, self.s_h, self.s_c, self.z, self.p["weight_hh"],
             self.p["bias_hh"])

    def bwd_prep(self, dy):
        T, B, H = dy.shape
        self.dy = np.ascontiguousarray(dy)
        self.d_h = np.zeros((B, H), F32)
        self.d_c = np.zeros((B, H), F32)
        self.dz = np.zeros((T, B, 4 * H), F32)
        self.dv = np.empty((B, H), F32)

    def bwd_loop(self, loop=bwd_loop_ng):
        loop(self.lengths, self.reverse, self.dy, self.zx, self.s_c, self.d_h, self.d_c, self.dz,
             self.p["weight_hh"], self.dv)

    def bwd_post(self):
        x, p, dz = self.x, self.p, self.dz
        T, B, I = x.shape
        H = self.dy.shape[2]
        dz2 = dz.reshape(T * B, 4 * H)
        x2 = x.reshape(T * B, I) if not self.reverse else M._loop_order(x, self.lengths).reshape(T * B, I)
        g = {"weight_ih": dz2.T @ x2}
        dx = dz2 @ p["weight_ih"]
        if self.reverse:
            dx = M._loop_order(dx.reshape(T, B, I), self.lengths).reshape(T * B, I)
        g["bias_ih"] = dz2.sum(axis=0)
        g["weight_hh"] = dz2.T @ self.s_h[:T].reshape(T * B, H)
        g["bias_hh"] = g["bias_ih"].copy()
        self.dx, self.g = dx.reshape(T, B, I), g


def net_params(net, k, d):
    return {name: net.params[net._key(name, k, d)] for name in M.PARAMS}


def run_net(net, x, backward, concurrent_dirs, blas_gemm=2):
    """rnngen.RNN's computation (any layers, directions) with the nogil kernels: hoisted and
    weight-gradient GEMMs at `blas_gemm` threads, the step loops at 1 BLAS thread, a layer's two
    directions concurrently or one after the other. Returns y, grads."""
    T, B, _ = x.shape
    D, H = net.num_directions, net.hidden_size
    lengths = np.full(B, T, np.int64)
    layers, inp = [], x
    for k in range(net.num_layers):
        dirs = [Dir(net_params(net, k, d), bool(d), lengths) for d in range(D)]
        for d in dirs:
            d.fwd_prep(inp)
        _loops([d.fwd_loop for d in dirs], concurrent_dirs, blas_gemm)
        inp = dirs[0].y if D == 1 else np.concatenate([d.y for d in dirs], axis=2)
        layers.append(dirs)
    if not backward:
        return inp, None
    grad = np.ones_like(inp)
    grads = {}
    for k in range(net.num_layers - 1, -1, -1):
        dirs = layers[k]
        for i, d in enumerate(dirs):
            d.bwd_prep(grad[:, :, i * H:(i + 1) * H])
        _loops([d.bwd_loop for d in dirs], concurrent_dirs, blas_gemm)
        for i, d in enumerate(dirs):
            d.bwd_post()
            grads.update({net._key(n, k, i): v for n, v in d.g.items()})
        grad = dirs[0].dx if D == 1 else dirs[0].dx + dirs[1].dx
    return inp, grads


def _loops(fns, concurrent, blas_gemm):
    """The step loops at 1 BLAS thread (per worker), then back to blas_gemm for the big GEMMs."""
    set_blas(1)
    if concurrent and len(fns) == 2:
        run_two(*fns)
    else:
        for f in fns:
            f()
    set_blas(blas_gemm)


def rnn_today(net, x, backward):
    y, _ = net.forward(x)
    if backward:
        net.backward(np.ones_like(y))
    return y


# -- (c) batch halves -------------------------------------------------------------------------------
def run_halves(p, x, backward, blas_gemm=2):
    """One unidirectional layer as two independent half-batches: hoisted GEMMs per half at
    blas_gemm BLAS threads, the two loops concurrently at 1 thread each, weight gradients summed."""
    T, B, _ = x.shape
    h = B // 2
    parts = [np.ascontiguousarray(x[:, :h]), np.ascontiguousarray(x[:, h:])]
    dirs = [Dir(p, False, np.full(part.shape[1], T, np.int64)) for part in parts]
    for d, part in zip(dirs, parts):
        d.fwd_prep(part)
    _loops([d.fwd_loop for d in dirs], True, blas_gemm)
    y = np.concatenate([d.y for d in dirs], axis=1)
    if not backward:
        return y, None
    for d in dirs:
        d.bwd_prep(np.ones_like(d.y))
    _loops([d.bwd_loop for d in dirs], True, blas_gemm)
    for d in dirs:
        d.bwd_post()
    return y, {n: dirs[0].g[n] + dirs[1].g[n] for n in dirs[0].g}


# -- (d) hidden-unit slices --------------------------------------------------------------------------
def gather_slices(w_hh, nw):
    """weight_hh (4H, H) -> (nw, 4*Hs, H): worker w's rows, gate-major: gate g units [lo, hi)."""
    H = w_hh.shape[1]
    hs = H // nw
    out = np.empty((nw, 4 * hs, H), w_hh.dtype)
    for w in range(nw):
        for g in range(4):
            out[w, g * hs:(g + 1) * hs] = w_hh[g * H + w * hs:g * H + (w + 1) * hs]
    return np.ascontiguousarray(out)


@njit(nogil=True, error_model="numpy")
def _slice_step(w, nw, i, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh):
    """Step i for worker w's units: its GEMM slice, then the gate math of those units."""
    T, B, H = y.shape
    hs = H // nw
    lo = w * hs
    z = zbuf[w]
    np.dot(s_h[i], wg[w].T, z)
    for b in range(B):
        if i < lengths[b]:
            t = lengths[b] - 1 - i if reverse else i
            # 1-D views, as the generated kernel uses: the j loop then vectorizes
            zx0 = zx[t, b, lo:lo + hs]
            zx1 = zx[t, b, H + lo:H + lo + hs]
            zx2 = zx[t, b, 2 * H + lo:2 * H + lo + hs]
            zx3 = zx[t, b, 3 * H + lo:3 * H + lo + hs]
            z0 = z[b, 0:hs]
            z1 = z[b, hs:2 * hs]
            z2 = z[b, 2 * hs:3 * hs]
            z3 = z[b, 3 * hs:4 * hs]
            b0 = bias_hh[lo:lo + hs]
            b1 = bias_hh[H + lo:H + lo + hs]
            b2 = bias_hh[2 * H + lo:2 * H + lo + hs]
            b3 = bias_hh[3 * H + lo:3 * H + lo + hs]
            c_in = s_c[i, b, lo:lo + hs]
            h_out = s_h[i + 1, b, lo:lo + hs]
            c_out = s_c[i + 1, b, lo:lo + hs]
            y_out = y[t, b, lo:lo + hs]
            for jj in range(hs):
                c = c_in[jj]
                xi = zx0[jj] + z0[jj] + b0[jj]
                xf = zx1[jj] + z1[jj] + b1[jj]
                xg = zx2[jj] + z2[jj] + b2[jj]
                xo = zx3[jj] + z3[jj] + b3[jj]
                tmp0 = c * _sigmoid(xf) + _tanh(xg) * _sigmoid(xi)
                hv = _tanh(tmp0) * _sigmoid(xo)
                h_out[jj] = hv
                y_out[jj] = hv
                c_out[jj] = tmp0
                zx0[jj] = xi
                zx1[jj] = xf
                zx2[jj] = xg
                zx3[jj] = xo
        else:
            for jj in range(hs):
                s_h[i + 1, b, lo + jj] = s_h[i, b, lo + jj]
                s_c[i + 1, b, lo + jj] = s_c[i, b, lo + jj]


@njit(parallel=True, nogil=True, error_model="numpy")
def hslice_prange(lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh):
    nw = wg.shape[0]
    for i in range(y.shape[0]):
        for w in prange(nw):          # fork/join per step = the barrier
            _slice_step(w, nw, i, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh)


@njit(parallel=True, nogil=True)
def prange_empty(steps, acc):
    for i in range(steps):
        for w in prange(acc.shape[0]):
            acc[w] += 1.0


# spin barrier: atomic acquire load / release store on an int64 array, x86 `pause`, sched_yield
@intrinsic
def atomic_load(typingctx, arr, idx):
    sig = types.int64(arr, idx)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        return builder.load_atomic(ptr, ordering="acquire", align=8)
    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    sig = types.void(arr, idx, val)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(v, ptr, ordering="release", align=8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def cpu_pause(typingctx):
    sig = types.void()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


_sched_yield = ctypes.CDLL(ctypes.util.find_library("c")).sched_yield
_sched_yield.restype = ctypes.c_int
_sched_yield.argtypes = []


@njit(nogil=True)
def spin_wait(flags, target, spins_before_yield):
    """Wait until every worker's flag is >= target (each worker writes only its own flag)."""
    for o in range(flags.shape[0]):
        n = 0
        while atomic_load(flags, o) < target:
            cpu_pause()
            n += 1
            if n >= spins_before_yield:
                _sched_yield()
                n = 0


@njit(nogil=True, error_model="numpy")
def hslice_spin_worker(w, flags, spins, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh):
    nw = wg.shape[0]
    for i in range(y.shape[0]):
        _slice_step(w, nw, i, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh)
        atomic_store(flags, w, i + 1)
        spin_wait(flags, i + 1, spins)


@njit(nogil=True)
def spin_empty(w, flags, steps, spins):
    for i in range(steps):
        atomic_store(flags, w, i + 1)
        spin_wait(flags, i + 1, spins)


def hslice_forward(p, x, barrier, spins=4000, blas_gemm=2):
    """(d) forward of one unidirectional layer: hoisted GEMM at 2 BLAS threads, then the step loop
    by 2 workers owning H/2 units each, BLAS at 1 thread."""
    d = Dir(p, False, np.full(x.shape[1], x.shape[0], np.int64))
    d.fwd_prep(x)
    wg = p["_wg"]
    B, H = x.shape[1], p["weight_hh"].shape[1]
    zbuf = np.empty((2, B, 4 * (H // 2)), F32)
    set_blas(1)
    if barrier == "prange":
        hslice_prange(d.lengths, False, d.y, d.zx, d.s_h, d.s_c, wg, zbuf, p["bias_hh"])
    else:
        flags = np.zeros(2, np.int64)
        args = (spins, d.lengths, False, d.y, d.zx, d.s_h, d.s_c, wg, zbuf, p["bias_hh"])
        run_two(lambda: hslice_spin_worker(0, flags, *args), lambda: hslice_spin_worker(1, flags, *args))
    set_blas(blas_gemm)
    return d.y


# -- (e) fused small-H kernel: the recurrent GEMM as loops -------------------------------------------
@njit(nogil=True, error_model="numpy")
def fused_forward_loop(lengths, reverse, y, zx_ih, s_h, s_c, w_hh_t, z_hh, bias_hh):
    """generated _forward_loop with np.dot(s_h[i], weight_hh.T, z_hh) written as an axpy loop
    over w_hh_t = weight_hh.T (H, 4H), contiguous: the inner k loop vectorizes, no BLAS call."""
    T, B, H = y.shape
    for i in range(T):
        for b in range(B):
            for k in range(4 * H):
                z_hh[b, k] = 0
            for jj in range(H):
                hb = s_h[i, b, jj]
                for k in range(4 * H):
                    z_hh[b, k] += hb * w_hh_t[jj, k]
        for b in range(B):
            if i < lengths[b]:
                t = lengths[b] - 1 - i if reverse else i
                for j in range(H):
                    c = s_c[i, b, j]
                    xi = zx_ih[t, b, j] + z_hh[b, j] + bias_hh[j]
                    xf = zx_ih[t, b, H + j] + z_hh[b, H + j] + bias_hh[H + j]
                    xg = zx_ih[t, b, 2 * H + j] + z_hh[b, 2 * H + j] + bias_hh[2 * H + j]
                    xo = zx_ih[t, b, 3 * H + j] + z_hh[b, 3 * H + j] + bias_hh[3 * H + j]
                    tmp0 = c * _sigmoid(xf) + _tanh(xg) * _sigmoid(xi)
                    s_h[i + 1, b, j] = _tanh(tmp0) * _sigmoid(xo)
                    y[t, b, j] = s_h[i + 1, b, j]
                    s_c[i + 1, b, j] = tmp0
                    zx_ih[t, b, j] = xi
                    zx_ih[t, b, H + j] = xf
                    zx_ih[t, b, 2 * H + j] = xg
                    zx_ih[t, b, 3 * H + j] = xo
            else:
                for j in range(H):
                    s_h[i + 1, b, j] = s_h[i, b, j]
                    s_c[i + 1, b, j] = s_c[i, b, j]


@njit(nogil=True)
def gemm_steps(h, wt, z, steps):
    for _ in range(steps):
        np.dot(h, wt, z)


@njit(nogil=True)
def gemm_steps_loops(h, wt, z, steps):
    B, H = h.shape
    N = wt.shape[1]
    for _ in range(steps):
        for b in range(B):
            for k in range(N):
                z[b, k] = 0
            for j in range(H):
                hb = h[b, j]
                for k in range(N):
                    z[b, k] += hb * wt[j, k]


@njit
def empty9(a, b, c, d, e, f, g, h, i):
    return 0


# -- timing -------------------------------------------------------------------------------------------
def layer_name():
    """The threading layer parallel=True code runs under (launching a prange loop first)."""
    prange_empty(1, np.zeros(2))
    return numba.threading_layer()


def load():
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


BLOCK_BUDGET_S = 3.0


def bench(cands, blocks, per_block):
    """cands: name -> (blas threads during the block, fn). Alternating blocks; returns medians (s)."""
    samples = {n: [] for n in cands}
    for _ in range(blocks):
        for name, (blas, fn) in cands.items():
            set_blas(blas)
            fn()
            spent = 0.0
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                spent += samples[name][-1]
                if spent > BLOCK_BUDGET_S:     # a pathological candidate: fewer samples, not hours
                    break
    set_blas(2)
    return {n: statistics.median(v) for n, v in samples.items()}


def table(title, cands, args, base, unit=1e3, unit_name="ms", blocks=None, per_block=None):
    """Runs `bench` args.repeats times; prints median per repeat, ratio base/candidate."""
    blocks = blocks or args.blocks
    per_block = per_block or args.per_block
    runs, loads = [], []
    for _ in range(args.repeats):
        loads.append(load())
        runs.append(bench(cands, blocks, per_block))
    print(f"\n#### {title}\n")
    print(f"load average (1/5/15 min) at the start of each repeat: {' | '.join(loads)}; "
          f"{blocks} blocks x {per_block} timed calls per repeat\n")
    print(f"| candidate | {unit_name} (median per repeat) | {base} / candidate (min-max) |")
    print("|---|---|---|")
    for name in cands:
        times = [r[name] * unit for r in runs]
        ratios = [r[base] / r[name] for r in runs]
        print(f"| {name} | {' / '.join(f'{t:.3g}' for t in times)} | "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")
    sys.stdout.flush()
    return runs


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# -- sections -----------------------------------------------------------------------------------------
def make_net(size, layers=1, bidirectional=False):
    T, B, I, H = SIZES[size]
    net = rnngen.RNN("lstm", I, H, num_layers=layers, bidirectional=bidirectional, seed=1)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(F32)
    return net, x


def check_network_schedules(net, x, bidir):
    set_blas(1)
    y0, _ = net.forward(x)
    net.backward(np.ones_like(y0))
    ref = dict(net.grads)
    errs = {}
    for name, conc in (("serial", False), ("dirs", True)) if bidir else (("serial", False),):
        y, g = run_net(net, x, True, conc, blas_gemm=1)
        errs[name] = max([rel_err(y, y0)] + [rel_err(g[k], ref[k]) for k in ref])
    if not bidir:
        y, g = run_halves(net_params(net, 0, 0), x, True)
        errs["halves"] = max([rel_err(y, y0)] + [rel_err(g[n], ref[net._key(n, 0, 0)]) for n in g])
        p = net_params(net, 0, 0)
        p["_wg"] = gather_slices(p["weight_hh"], 2)
        for barrier in ("prange", "spin"):
            errs["hslice-" + barrier] = rel_err(hslice_forward(p, x, barrier), y0)
    set_blas(2)
    return errs


def section_network(args):
    print("\n### Schedules on rnngen.RNN (LSTM, fp32); today = rnngen.RNN at 1 BLAS thread")
    cases = [("small", 1, False), ("fastrnns", 1, False), ("small", 2, True)]
    for size, layers, bidir in cases:
        net, x = make_net(size, layers, bidir)
        errs = check_network_schedules(net, x, bidir)
        label = f"{size} {'2-layer bidirectional' if bidir else 'LSTM'}"
        print(f"\ncorrectness vs rnngen.RNN (max |diff| / max |ref|, y and all grads; hslice: y): "
              + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
        for backward in (False, True):
            cands = {
                "today, BLAS 1": (1, lambda: rnn_today(net, x, backward)),
                "today, BLAS 2": (2, lambda: rnn_today(net, x, backward)),
                "nogil serial, GEMMs BLAS 2, loops BLAS 1": (2, lambda: run_net(net, x, backward, False, 2)),
                "nogil serial, all BLAS 1": (1, lambda: run_net(net, x, backward, False, 1)),
            }
            if bidir:
                cands["(b) directions concurrent"] = (2, lambda: run_net(net, x, backward, True, 2))
                cands["(b) directions concurrent, GEMMs BLAS 1"] = (1, lambda: run_net(net, x, backward, True, 1))
            else:
                p = net_params(net, 0, 0)
                p["_wg"] = gather_slices(p["weight_hh"], 2)
                cands["(c) batch halves"] = (2, lambda: run_halves(p, x, backward))
                cands["(c) batch halves, GEMMs BLAS 1"] = (1, lambda: run_halves(p, x, backward, 1))
                if not backward:
                    cands["(d) hidden slices, prange"] = (2, lambda: hslice_forward(p, x, "prange"))
                    cands["(d) hidden slices, spin barrier"] = (2, lambda: hslice_forward(p, x, "spin"))
                    cands["(d) hidden slices, spin barrier, GEMMs BLAS 1"] = (
                        1, lambda: hslice_forward(p, x, "spin", blas_gemm=1))
            table(f"{label}, {'forward+backward' if backward else 'forward'} "
                  f"(numba threading layer {layer_name()})", cands, args, "today, BLAS 1")


def section_gemm(args):
    print("\n### Per-step recurrent GEMM rate (h (rows, H) @ W.T (H, 4H), from nopython code)")
    for H in (128, 512):
        steps = 200 if H == 128 else 20
        rng = np.random.default_rng(0)
        wt = rng.standard_normal((4 * H, H)).astype(F32).T        # F-ordered view, as in the kernel
        cands, flops = {}, {}
        for rows in (16, 32, 64):
            h = rng.standard_normal((rows, H)).astype(F32)
            z = np.empty((rows, 4 * H), F32)
            cands[f"{rows} rows, BLAS 1"] = (1, lambda h=h, z=z: gemm_steps(h, wt, z, steps))
            cands[f"{rows} rows, BLAS 2"] = (2, lambda h=h, z=z: gemm_steps(h, wt, z, steps))
            flops[f"{rows} rows, BLAS 1"] = flops[f"{rows} rows, BLAS 2"] = 2 * rows * H * 4 * H * steps
        # two threads concurrently, each its own rows (what (c) does), BLAS 1: aggregate rate
        for rows in (16, 32):
            hs = [rng.standard_normal((rows, H)).astype(F32) for _ in range(2)]
            zs = [np.empty((rows, 4 * H), F32) for _ in range(2)]
            cands[f"2 threads x {rows} rows, BLAS 1"] = (1, lambda hs=hs, zs=zs: run_two(
                lambda: gemm_steps(hs[0], wt, zs[0], steps), lambda: gemm_steps(hs[1], wt, zs[1], steps)))
            flops[f"2 threads x {rows} rows, BLAS 1"] = 2 * 2 * rows * H * 4 * H * steps
        # (d)'s shape: each of 2 threads B rows x N = 2H
        wg = gather_slices(np.ascontiguousarray(wt.T), 2)
        for rows in (32, 64):
            h = rng.standard_normal((rows, H)).astype(F32)
            zs = [np.empty((rows, 2 * H), F32) for _ in range(2)]
            cands[f"(d) 2 threads x {rows} rows x N=2H, BLAS 1"] = (1, lambda h=h, zs=zs: run_two(
                lambda: gemm_steps(h, wg[0].T, zs[0], steps), lambda: gemm_steps(h, wg[1].T, zs[1], steps)))
            flops[f"(d) 2 threads x {rows} rows x N=2H, BLAS 1"] = 2 * rows * H * 4 * H * steps
        if H == 128:
            for rows in (16, 32):
                h = rng.standard_normal((rows, H)).astype(F32)
                z = np.empty((rows, 4 * H), F32)
                wtc = np.ascontiguousarray(wt)
                cands[f"(e) {rows} rows, loops in njit"] = (1, lambda h=h, z=z, wtc=wtc: gemm_steps_loops(h, wtc, z, steps))
                flops[f"(e) {rows} rows, loops in njit"] = 2 * rows * H * 4 * H * steps
        runs = []
        for _ in range(args.repeats):
            runs.append((load(), bench(cands, args.blocks, 5)))
        print(f"\n#### H = {H} (K = {H}, N = {4 * H}), {steps} GEMMs per call\n")
        print("load average per repeat: " + " | ".join(r[0] for r in runs) + "\n")
        print("| GEMMs | GFLOP/s per repeat |")
        print("|---|---|")
        for name in cands:
            print(f"| {name} | {' / '.join(f'{flops[name] / r[1][name] / 1e9:.0f}' for r in runs)} |")
        sys.stdout.flush()


def section_barrier(args):
    print(f"\n### Barrier cost per step (no work), numba threading layer {layer_name()}\n")
    steps = 20000
    acc = np.zeros(2)
    prange_empty(10, acc)
    flags = np.zeros(2, np.int64)

    def spin(spins):
        flags[:] = 0
        run_two(lambda: spin_empty(0, flags, steps, spins), lambda: spin_empty(1, flags, steps, spins))
    spin(100)
    cands = {"prange fork/join": (1, lambda: prange_empty(steps, acc)),
             "spin barrier (yield after 4000 pauses)": (1, lambda: spin(4000)),
             "spin barrier (yield after 50 pauses)": (1, lambda: spin(50))}
    runs = []
    for _ in range(args.repeats):
        runs.append((load(), bench(cands, args.blocks, 2)))
    print("load average per repeat: " + " | ".join(r[0] for r in runs) + "\n")
    print("| barrier | us per step, per repeat |")
    print("|---|---|")
    for name in cands:
        print(f"| {name} | {' / '.join(f'{r[1][name] / steps * 1e6:.2f}' for r in runs)} |")
    sys.stdout.flush()


def section_layers(args):
    """(d) with prange under each threading layer: a child process per layer."""
    for layer in ("omp", "workqueue"):
        if layer == layer_name():
            continue
        cmd = [sys.executable, __file__, "--layer", layer, "--only", "barrier,hslice",
               "--repeats", str(args.repeats), "--blocks", str(args.blocks), "--per-block", str(args.per_block)]
        print(f"\n(child: {' '.join(cmd[1:])})")
        sys.stdout.flush()
        subprocess.run(cmd, check=False)


def section_hslice(args):
    for size in ("small", "fastrnns"):
        net, x = make_net(size)
        p = net_params(net, 0, 0)
        p["_wg"] = gather_slices(p["weight_hh"], 2)
        cands = {"today, BLAS 1": (1, lambda: rnn_today(net, x, False)),
                 "(d) hidden slices, prange": (2, lambda: hslice_forward(p, x, "prange"))}
        table(f"{size} LSTM forward, (d) prange under threading layer {layer_name()}",
              cands, args, "today, BLAS 1")


def section_fused(args):
    print("\n### (e) fused small-H kernel vs np.dot per step (bare loop calls, BLAS 1)")
    for size in ("course", "small"):
        T, B, I, H = SIZES[size]
        p = M.init_params(I, H, F32, 0)
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(F32)
        lengths = np.full(B, T, np.int64)
        wt = np.ascontiguousarray(p["weight_hh"].T)
        zx0 = ((x.reshape(T * B, I) @ p["weight_ih"].T).reshape(T, B, 4 * H) + p["bias_ih"]).astype(F32)
        bufs = {}

        def call(loop, w, key):
            zx = zx0.copy()
            s_h = np.zeros((T + 1, B, H), F32)
            s_c = np.zeros((T + 1, B, H), F32)
            y = np.zeros((T, B, H), F32)
            z = np.empty((B, 4 * H), F32)
            if loop is M._forward_loop:          # the generated kernel's argument order
                loop(lengths, False, y, zx, s_h, s_c, z, w, p["bias_hh"])
            else:
                loop(lengths, False, y, zx, s_h, s_c, w, z, p["bias_hh"])
            bufs[key] = y
        call(M._forward_loop, p["weight_hh"], "dot")
        call(fused_forward_loop, wt, "fused")
        print(f"\n{size}: fused vs generated max rel diff {rel_err(bufs['fused'], bufs['dot']):.1e}")
        cands = {"generated _forward_loop (np.dot per step)": (1, lambda: call(M._forward_loop, p["weight_hh"], "dot")),
                 "(e) fused loops, weight_hh.T resident": (1, lambda: call(fused_forward_loop, wt, "fused"))}
        table(f"(e) {size} forward loop (T{T} B{B} H{H}), allocation included",
              cands, args, "generated _forward_loop (np.dot per step)",
              unit=1e6 if size == "course" else 1e3, unit_name="us" if size == "course" else "ms",
              blocks=args.blocks, per_block=args.per_block * (50 if size == "course" else 1))


def section_overhead(args):
    print("\n### Call overhead at course size (T10 B10 I3 H5), forward, BLAS 1")
    T, B, I, H = SIZES["course"]
    net, x = make_net("course")
    p = net_params(net, 0, 0)
    lengths = np.full(B, T, np.int64)
    d = Dir(p, False, lengths)
    d.fwd_prep(x)
    zx0, zx = d.zx.copy(), d.zx       # restored before each call: the loop adds into zx in place
    s_h = np.zeros((T + 1, B, H), F32)
    s_c = np.zeros((T + 1, B, H), F32)
    y = np.zeros((T, B, H), F32)
    z = np.empty((B, 4 * H), F32)
    w, bh = p["weight_hh"], p["bias_hh"]
    wt = np.ascontiguousarray(w.T)
    from rnngen import checks
    cands = {
        "rnngen.RNN.forward": (1, lambda: net.forward(x)),
        "generated module forward(x, params)": (1, lambda: M.forward(x, p)),
        "checks.forward_inputs only": (1, lambda: checks.forward_inputs(x, p, None, None, False, M.PARAMS, M.STATES)),
        "net._checked_params only": (1, lambda: net._checked_params()),
        "generated module forward_unchecked": (1, lambda: M.forward_unchecked(x, p, None, lengths, False)),
        "hoisted GEMM + allocations (module forward's numpy part)": (1, lambda: Dir(p, False, lengths).fwd_prep(x)),
        "restoring zx (np.copyto, in the two rows below)": (1, lambda: np.copyto(zx, zx0)),
        "bare _forward_loop (preallocated)": (1, lambda: (np.copyto(zx, zx0), M._forward_loop(lengths, False, y, zx, s_h, s_c, z, w, bh))),
        "(e) fused loop (preallocated)": (1, lambda: (np.copyto(zx, zx0), fused_forward_loop(lengths, False, y, zx, s_h, s_c, wt, z, bh))),
        "empty njit call, 9 array args": (1, lambda: empty9(lengths, False, y, zx, s_h, s_c, w, z, bh)),
    }
    table("course forward, per call", cands, args, "rnngen.RNN.forward", unit=1e6, unit_name="us",
          per_block=args.per_block * 100)


@njit(nogil=True, error_model="numpy")
def hslice_one_worker(w, nw, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh):
    """Worker w's share of every step, alone (no barrier): its time on a free core."""
    for i in range(y.shape[0]):
        _slice_step(w, nw, i, lengths, reverse, y, zx, s_h, s_c, wg, zbuf, bias_hh)


def section_projection(args):
    """Single-threaded shares: what a 2-worker schedule would take with two free cores."""
    print("\n### Idle-machine projection: one worker's share run alone (1 thread, BLAS 1)")
    for size in ("small", "fastrnns"):
        net, x = make_net(size)
        T, B, I, H = SIZES[size]
        p = net_params(net, 0, 0)
        wg = gather_slices(p["weight_hh"], 2)
        full = Dir(p, False, np.full(B, T, np.int64))
        full.fwd_prep(x)
        half = Dir(p, False, np.full(B // 2, T, np.int64))
        half.fwd_prep(np.ascontiguousarray(x[:, :B // 2]))
        zx_full, zx_half = full.zx.copy(), half.zx.copy()
        zbuf = np.empty((2, B, 4 * (H // 2)), F32)
        p["_wg"] = wg
        set_blas(1)
        print(f"\n{size}: (d) spin-barrier forward vs rnngen.RNN, max rel diff "
              f"{rel_err(hslice_forward(p, x, 'spin', blas_gemm=1), net.forward(x)[0]):.1e}")

        def serial():
            np.copyto(full.zx, zx_full)
            full.fwd_loop()

        def one_half():
            np.copyto(half.zx, zx_half)
            half.fwd_loop()

        def one_slice():
            np.copyto(full.zx, zx_full)
            hslice_one_worker(0, 2, full.lengths, False, full.y, full.zx, full.s_h, full.s_c, wg, zbuf, p["bias_hh"])

        def restore():
            np.copyto(full.zx, zx_full)
        cands = {"serial step loop (today's kernel)": (1, serial),
                 "(c) one half-batch loop alone": (1, one_half),
                 "(d) one hidden-slice worker alone": (1, one_slice),
                 "restoring zx (included above)": (1, restore)}
        table(f"{size} forward step loop, T{T} B{B} H{H} (add T x the barrier for (d): "
              f"spin ~0.3 us, prange omp ~12 us per step)", cands, args, "serial step loop (today's kernel)")
        bw = Dir(p, False, np.full(B, T, np.int64))
        bw.fwd_prep(x)
        bw.fwd_loop()
        bw.bwd_prep(np.ones((T, B, H), F32))
        hb = Dir(p, False, np.full(B // 2, T, np.int64))
        hb.fwd_prep(np.ascontiguousarray(x[:, :B // 2]))
        hb.fwd_loop()
        hb.bwd_prep(np.ones((T, B // 2, H), F32))
        cands = {"serial backward step loop": (1, bw.bwd_loop),
                 "(c) one half-batch backward loop alone": (1, hb.bwd_loop)}
        table(f"{size} backward step loop", cands, args, "serial backward step loop")


SECTIONS = {"projection": section_projection, "gemm": section_gemm, "overhead": section_overhead, "fused": section_fused,
            "barrier": section_barrier, "network": section_network, "hslice": section_hslice,
            "layers": section_layers}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/schedules.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat, 2 blocks x 2 calls")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--per-block", type=int, default=3)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--layer", default=None, help="NUMBA_THREADING_LAYER for this process (omp, workqueue)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.blocks, args.per_block = 1, 2, 2
    cores = sorted(os.sched_getaffinity(0))
    print(f"# benchmarks/schedules.py {' '.join(sys.argv[1:])}: cores {cores}, numba {numba.__version__}, "
          f"threading layer {layer_name()}, BLAS "
          + json.dumps([(d["filepath"].rsplit("/", 1)[-1], d["version"], d["num_threads"])
                        for d in threadpoolctl.threadpool_info()]))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for name in args.only.split(","):
        SECTIONS[name](args)
    print("\nuptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
