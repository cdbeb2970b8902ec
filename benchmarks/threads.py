"""`rnngen train`'s steps with one OpenBLAS thread against the libraries' default thread count.

Each setting runs in its own process (a thread pool, once started, cannot be compared fairly in
the same one): a character-level LSTM with `rnngen train`'s defaults (hidden 128, batch 32, Adam,
the shipped corpus), a few untimed warm-up steps, then median and mean seconds per step. The
settings alternate for --rounds rounds so that both see the same load. Prints a Markdown table.

    python benchmarks/threads.py                 # 2 rounds of 40 timed steps per setting
    python benchmarks/threads.py --steps 100 --rounds 3 --cell gru
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

_CHILD = r"""
import json, sys, time
import numpy as np
threads, cell, hidden, batch, steps, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
if threads == "1":
    from rnngen.blas import limit_threads
    limit_threads(1)
import scipy.linalg  # noqa: F401  (the BLAS Numba's np.dot uses)
from rnngen.charlm import read_corpus, train_charlm
lines = read_corpus()
times = []
last = [time.perf_counter()]
def callback(step, loss, model):
    now = time.perf_counter()
    if step >= warmup:
        times.append(now - last[0])
    last[0] = now
train_charlm(lines, cell=cell, hidden_size=hidden, batch_size=batch, steps=warmup + steps, callback=callback)
try:
    import threadpoolctl
    pools = [f"{d['internal_api']} {d.get('version')} {d.get('architecture')} threads={d['num_threads']}"
             for d in threadpoolctl.threadpool_info()]
except ImportError:
    pools = []
print(json.dumps({"times": times, "pools": pools}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/threads.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=40, help="timed steps per process (default 40)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="alternations of the two settings (default 2)")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    print(f"# benchmarks/threads.py: {args.cell}, hidden {args.hidden}, batch {args.batch}, "
          f"{args.warmup} warm-up + {args.steps} timed steps per process, {args.rounds} rounds; "
          f"{os.cpu_count()} cores; load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    results = {"1": [], "default": []}
    pools = {}
    for _ in range(args.rounds):
        for threads in ("1", "default"):
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", _CHILD, threads, args.cell, str(args.hidden),
                                  str(args.batch), str(args.steps), str(args.warmup)],
                                 capture_output=True, text=True, env=env)
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return 1
            out = json.loads(res.stdout.strip().splitlines()[-1])
            results[threads].extend(out["times"])
            pools[threads] = out["pools"]
            print(f"  threads={threads}: {len(out['times'])} steps, process {time.perf_counter() - t0:.1f} s",
                  flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for threads in ("1", "default"):
        for line in pools[threads]:
            print(f"BLAS pools with threads={threads}: {line}")
    print("")
    print("| BLAS threads | median s/step | mean s/step | steps/s (from median) |")
    print("|---|---|---|---|")
    med = {}
    for threads in ("1", "default"):
        t = np.array(results[threads])
        med[threads] = float(np.median(t))
        print(f"| {threads} | {med[threads]:.4f} | {t.mean():.4f} | {1 / med[threads]:.1f} |")
    print("")
    print(f"default threads / one thread (median step time): {med['default'] / med['1']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
