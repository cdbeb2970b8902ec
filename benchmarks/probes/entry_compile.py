"""Issue 11 probe: the compile-time price of the compiled entries (the modules' _infer_entry,
_forward_entry and _backward_entry, rnngen/backends/cpu/entry.py). In fresh processes with an
empty Numba cache (NUMBA_CACHE_DIR), the first small call (T10 B10 I3 H5, float32) of a few
cells in turn, through the entries and through the wrapper's Python lines (shared_panels given,
which the entries are not used with): seconds per cell. The first cell of a process also pays
Numba's one-time work. --call inference: forward(need_grad=False); --call training: forward and
backward.

    python benchmarks/probes/entry_compile.py [--cells gru,lstm,rnn_tanh] [--call inference|training]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time
import numpy as np
import rnngen
from rnngen.backends.cpu.host_gemm import SharedPanels
kw = {} if sys.argv[1] == "entry" else {"shared_panels": SharedPanels()}
training = sys.argv[3] == "training"
x = np.ones((10, 10, 3), np.float32)
out = {}
for cell in sys.argv[2].split(","):
    m = rnngen.load(cell)
    p = m.init_params(3, 5, np.float32)
    t0 = time.perf_counter()
    y, _, saved = m.forward(x, p, need_grad=training, **kw)
    if training:
        m.backward(np.ones_like(y), None, saved, **kw)
    out[cell] = time.perf_counter() - t0
print(json.dumps(out))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="gru,lstm,rnn_tanh")
    ap.add_argument("--call", choices=("inference", "training"), default="inference")
    a = ap.parse_args()
    print(f"# first small {a.call} call per cell, empty Numba cache, s; load {os.getloadavg()}")
    print("| path | " + " | ".join(a.cells.split(",")) + " |")
    print("|---|" + "---|" * len(a.cells.split(",")))
    for path in ("entry", "python"):
        with tempfile.TemporaryDirectory() as cache:
            done = subprocess.run([sys.executable, "-c", CHILD, path, a.cells, a.call], env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr)
            times = json.loads(done.stdout)
            print(f"| {path} | " + " | ".join(f"{times[c]:.1f}" for c in a.cells.split(",")) + " |")


if __name__ == "__main__":
    main()
