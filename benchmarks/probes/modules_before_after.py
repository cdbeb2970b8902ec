"""Issue 11 probe: today's generated CPU modules against those of an earlier commit (read with
`git show`, so it needs the repository's history), each with its own commit's math library
(rnngen/backends/cpu/mathlib.py, whose functions the kernels inline), on one thread (BLAS at one
thread), float32, in interleaved blocks (one untimed call, then timed ones; the minimum of each side over the blocks):
- the module's backward_unchecked (after one forward), its forward_unchecked (need_grad=True) and
  its inference forward (need_grad=False);
- that y, dx and every gradient, and the inference y, are bit-identical.

Used for (BENCHMARKS.md):
- the values kept for backward (rnngen/compiler/blocks.py: the forward saves i = sigmoid(xi_hi) in
  the place of xi_hi, and backward reads it instead of computing it again): `--before 1b0748c`;
- the x-linear biases read in the loops instead of added to the hoisted GEMM's output in a pass of
  their own (rnngen/backends/cpu/layout.py): `--before 0620de7`;
- the loops compiled with noalias (rnngen/backends/cpu/noalias.py): `--before bb6c35a`;
- the per-row gate blocks through pointers (mathlib.at) instead of slices: `--before 94ff38d`;
- floating-point contraction (FMA) in the loops and the math library: `--before 7458b38`.
  (The bias gradients through BLAS, mathlib.column_sum: benchmarks/probes/column_sum.py.)

    python benchmarks/probes/modules_before_after.py --before 0620de7       # lstm, gru; small and fastrnns
    python benchmarks/probes/modules_before_after.py --before 1b0748c --cells lstm --sizes small --blocks 9
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import rnngen
from rnngen.runtime import threads as blas
from rnngen.tools import bench

HERE = os.path.dirname(os.path.abspath(__file__))


def _show(rev, path):
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=HERE, check=True, capture_output=True,
                          text=True).stdout


def before_module(cell, rev, folder):
    """That commit's generated module, calling that commit's math library (a copy in `folder`,
    imported as _mathlib_<rev>: the kernels inline its functions, so today's would hide a change)."""
    lib = f"_mathlib_{rev.replace('~', '_').replace('^', '_')}"
    with open(os.path.join(folder, f"{lib}.py"), "w") as f:
        f.write(_show(rev, "rnngen/backends/cpu/mathlib.py").replace("from .", "from rnngen.backends.cpu."))
    text = _show(rev, f"generated/{cell}.py").replace("from rnngen.backends.cpu.mathlib import",
                                                      f"from {lib} import")
    with open(os.path.join(folder, f"{cell}.py"), "w") as f:
        f.write(text)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return rnngen.load(cell, path=folder)


def best_ms(f, blocks, per_block=3):
    out = []
    for _ in range(blocks):
        f()
        t0 = time.perf_counter()
        for _ in range(per_block):
            f()
        out.append((time.perf_counter() - t0) / per_block * 1e3)
    return min(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--sizes", default="small,fastrnns")
    ap.add_argument("--before", required=True, help="the commit whose generated modules are 'before'")
    ap.add_argument("--blocks", type=int, default=5)
    a = ap.parse_args()
    print(f"# generated modules, {a.before} -> working tree; one thread; load average {os.getloadavg()}")
    print("| cell | size | backward before ms | after ms | after/before | forward before ms | after ms | "
          "after/before | inference forward before ms | after ms | after/before | bit-identical |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder, blas.threads_limited(1):
        for cell in a.cells.split(","):
            old, new = before_module(cell, a.before, folder), rnngen.load(cell)
            for size in a.sizes.split(","):
                T, B, I, H = bench.SIZES[size]
                p = new.init_params(I, H, np.float32, seed=0)
                x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
                lengths = np.full(B, T, np.int64)
                dy = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)
                runs = {}
                for name, m in (("before", old), ("after", new)):
                    y, _, saved = m.forward_unchecked(x, p, None, lengths, False)
                    runs[name] = (m, saved, y, m.backward_unchecked(dy, None, saved))
                (_, _, y0, g0), (_, _, y1, g1) = runs["before"], runs["after"]
                same = (np.array_equal(y0, y1) and np.array_equal(g0[0], g1[0])
                        and all(np.array_equal(g0[2][k], g1[2][k]) for k in g0[2])
                        and np.array_equal(old.forward_unchecked(x, p, None, lengths, False, False)[0],
                                           new.forward_unchecked(x, p, None, lengths, False, False)[0]))
                times = {kind: {"before": [], "after": []} for kind in ("bwd", "fwd", "inf")}
                for _ in range(a.blocks):             # alternate the two sides, block by block
                    for name, (m, saved, _, _) in runs.items():
                        times["bwd"][name].append(best_ms(lambda: m.backward_unchecked(dy, None, saved), 1))
                        times["fwd"][name].append(best_ms(lambda: m.forward_unchecked(x, p, None, lengths, False), 1))
                        times["inf"][name].append(best_ms(
                            lambda: m.forward_unchecked(x, p, None, lengths, False, False), 1))
                cols = []
                for kind in ("bwd", "fwd", "inf"):
                    t0, t1 = min(times[kind]["before"]), min(times[kind]["after"])
                    cols.append(f"{t0:.4g} | {t1:.4g} | {t1 / t0:.2f}")
                print(f"| {cell} | {size} | {' | '.join(cols)} | {'yes' if same else 'NO'} |")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
