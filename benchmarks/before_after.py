"""Before and after the CPU performance work: the generated CPU modules of a git commit (default
9e719bc, main just before the cpuperf merge 9927948) against the working tree's, timed the way
`rnngen bench` times them (same sizes, blocks of an untimed call then timed samples, alternating
before and after; medians).

The old modules are extracted with `git show <commit>:generated/<cell>.py` into a temporary folder
and imported from there; they import only rnngen.checks / rnngen.device, which still accept them.

    python benchmarks/before_after.py --threads 1                 # small size, all five cells
    python benchmarks/before_after.py --threads 1 --sizes small,fastrnns --reps 7
"""
import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np

from rnngen.tools import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def old_module(commit, cell, folder):
    src = subprocess.run(["git", "-C", ROOT, "show", f"{commit}:generated/{cell}.py"],
                         capture_output=True, text=True, check=True).stdout
    path = os.path.join(folder, f"before_{cell}.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(f"before_{cell}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/before_after.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commit", default="9e719bc")
    p.add_argument("--cells", default=",".join(bench.CELLS))
    p.add_argument("--sizes", default="small")
    p.add_argument("--reps", type=int, default=5, help="rounds of blocks (before, after) per case")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library default)")
    args = p.parse_args(argv)
    threads = bench.Threads()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    print(f"# before: generated/ at {args.commit}; after: the working tree (HEAD {head}); "
          f"threads {args.threads or 'default'}; {args.reps} rounds of blocks (an untimed call, then up to "
          f"{bench.BLOCK} timed samples) alternating before / after; load average {bench.loadavg()}")
    bench.prefault(max(4 * T * B * (I + 16 * H) * 4 for T, B, I, H in
                        (bench.SIZES[z] for z in args.sizes.split(","))))
    print("")
    print("| cell | size | before fwd / fwd+bwd ms | after fwd / fwd+bwd ms | speed-up fwd / fwd+bwd |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="rnngen-before-") as folder:
        for size in args.sizes.split(","):
            for cell in args.cells.split(","):
                old = old_module(args.commit, cell, folder)
                new = importlib.import_module(f"rnngen.generated.{cell}")
                entries = []
                for kind, index in (("fwd", 0), ("fb", 1)):
                    for which, mod in (("before", old), ("after", new)):
                        fn = bench.module_fns(mod, size, np.float32)[index]
                        entries.append(((which, kind), fn, lambda: threads.use(args.threads)))
                timer, _ = bench.time_blocks(entries, args.reps)
                bf, bb, af, ab = (timer.median_ms(k) for k in
                                  (("before", "fwd"), ("before", "fb"), ("after", "fwd"), ("after", "fb")))
                print(f"| {cell} | {size} | {bf:.1f} / {bb:.1f} | {af:.1f} / {ab:.1f} | "
                      f"{bf / af:.2f}x / {bb / ab:.2f}x |", flush=True)
    print(f"\nload average at end: {bench.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
