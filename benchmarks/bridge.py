"""Overhead of rnngen.torch against calling the generated module directly (CPU, float32).

    python benchmarks/bridge.py                       # course and small sizes, lstm gru rnn_tanh
    python benchmarks/bridge.py --cells lstm --sizes course --repeats 500

For each size and cell it times, interleaved (direct, bridge, direct, bridge, ...; the order flips
every repeat), the median (and the minimum, less sensitive to other load on the machine) of:
  forward           direct: gen.forward(x, params)      bridge: rnn(x) with autograd recording
  forward+backward  direct: + gen.backward(dy, None, saved)
                    bridge: + y.backward(dy), parameter .grad set to None before each repeat
Threads: --threads N (default 1) for BLAS and torch alike.
One layer, one direction, padded input (no PackedSequence): the bridge's fixed cost per call.
For lstm, gru and rnn_tanh, torch.nn's own CPU module (same weights) is timed too, for scale.
"""
import argparse
import os
import statistics
import sys
import time

if __name__ == "__main__":
    # BLAS (numpy/scipy, called from the kernels) and torch's OpenMP pool: the same thread count,
    # set before they load (default 1: on a shared machine idle OpenMP threads spin and steal cores)
    THREADS = next((sys.argv[k + 1] for k, a in enumerate(sys.argv) if a == "--threads"), "1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = THREADS

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnngen
import rnngen.torch

TORCH_NN = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}
SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128)}


def bench(cell, T, B, I, H, repeats):
    gen = rnngen.load(cell)
    torch.manual_seed(0)
    rnn = rnngen.torch.RNN(cell, I, H)
    params = {name: getattr(rnn, name + "_l0").detach().numpy() for name in gen.PARAMS}
    x = torch.randn(T, B, I)
    x_np = x.numpy()
    dy = torch.randn(T, B, H)
    dy_np = dy.numpy()

    def direct_fwd():
        gen.forward(x_np, params)

    def direct_fb():
        y, _, saved = gen.forward(x_np, params)
        gen.backward(dy_np, None, saved)

    def bridge_fwd():
        rnn(x)

    def bridge_fb():
        for p in rnn.parameters():
            p.grad = None
        y, _ = rnn(x)
        y.backward(dy)

    ref = TORCH_NN[cell](I, H) if cell in TORCH_NN else None
    if ref is not None:
        ref.load_state_dict({k: v for k, v in rnn.state_dict().items()})

    def torch_fwd():
        ref(x)

    def torch_fb():
        for p in ref.parameters():
            p.grad = None
        y, _ = ref(x)
        y.backward(dy)

    results = {}
    for what, fns in (("forward", [direct_fwd, bridge_fwd, torch_fwd]),
                      ("forward+backward", [direct_fb, bridge_fb, torch_fb])):
        fns = fns if ref is not None else fns[:2]
        for fn in fns + fns:        # compile / warm up
            fn()
        times = [[] for _ in fns]
        for k in range(repeats):
            order = list(range(len(fns)))
            if k % 2:
                order.reverse()
            for n in order:
                start = time.perf_counter()
                fns[n]()
                times[n].append(time.perf_counter() - start)
        results[what] = ([statistics.median(t) for t in times], [min(t) for t in times])
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn_tanh"])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--repeats", type=int, default=0, help="default: 300 for course, 15 for small")
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median ms, float32, CPU")
    print(f"{'size':7s} {'cell':9s} {'pass':17s} {'direct':>9s} {'bridge':>9s} {'overhead':>18s} "
          f"{'torch.nn':>9s}   overhead of the minima")
    for size in args.sizes:
        T, B, I, H = SIZES[size]
        repeats = args.repeats or (300 if size == "course" else 15)
        for cell in args.cells:
            for what, (t, m) in bench(cell, T, B, I, H, repeats).items():
                a, b = t[:2]
                nn = f"{t[2] * 1e3:9.3f}" if len(t) > 2 else f"{'-':>9s}"
                print(f"{size:7s} {cell:9s} {what:17s} {a * 1e3:9.3f} {b * 1e3:9.3f} "
                      f"{(b - a) * 1e6:+8.0f} µs {f'({(b / a - 1) * 100:+.0f}%)':>7s} {nn}   "
                      f"{(m[1] - m[0]) * 1e6:+8.0f} µs ({(m[1] / m[0] - 1) * 100:+.0f}%)", flush=True)


if __name__ == "__main__":
    main()
