"""Before and after the CPU performance work: the generated CPU modules of a git commit (default
9e719bc, main just before the cpuperf merge 9927948) against the working tree's, timed the way
`rnngen bench` times them (same sizes, one untimed call before each timed sample, medians).

The old modules are extracted with `git show <commit>:generated/<cell>.py` into a temporary folder
and imported from there; they import only rnngen.checks / rnngen.device, which still accept them.

    python benchmarks/before_after.py --threads 1                 # small size, all five cells
    python benchmarks/before_after.py --threads 1 --sizes small,fastrnns --reps 7
"""
import argparse
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
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library default)")
    args = p.parse_args(argv)
    import scipy.linalg  # noqa: F401
    if args.threads:
        import threadpoolctl
        threadpoolctl.threadpool_limits(args.threads)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    print(f"# before: generated/ at {args.commit}; after: the working tree (HEAD {head}); "
          f"threads {args.threads or 'default'}; {args.reps} reps; load average {bench.loadavg()}")
    bench.prefault(max(4 * T * B * (I + 16 * H) * 4 for T, B, I, H in
                        (bench.SIZES[z] for z in args.sizes.split(","))))
    sgemm = bench.Timer()
    print("")
    print("| cell | size | before fwd / fwd+bwd ms | after fwd / fwd+bwd ms | speed-up fwd / fwd+bwd |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="rnngen-before-") as folder:
        for size in args.sizes.split(","):
            for cell in args.cells.split(","):
                old = old_module(args.commit, cell, folder)
                new = bench.importlib.import_module(f"rnngen.generated.{cell}")
                # alternate before / after twice so that both see the same load; medians of both halves
                rows = {"before": [], "after": []}
                for _ in range(2):
                    for which, mod in (("before", old), ("after", new)):
                        rows[which].append(bench.bench_case(cell, size, np.float32, (args.reps + 1) // 2,
                                                            sgemm, module=mod, with_torch=False))
                med = {w: (np.median([r["rnngen_fwd_ms"] for r in rs]), np.median([r["rnngen_fb_ms"] for r in rs]))
                       for w, rs in rows.items()}
                (bf, bb), (af, ab) = med["before"], med["after"]
                print(f"| {cell} | {size} | {bf:.1f} / {bb:.1f} | {af:.1f} / {ab:.1f} | "
                      f"{bf / af:.2f}x / {bb / ab:.2f}x |", flush=True)
    print(f"\nload average at end: {bench.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
