"""rnngen's CUDA backend on a GPU: the three stages of benchmarks/gpu_check.py in order.

    python benchmarks/gpu.py --out DIR      # preflight, then correct, then time
    python benchmarks/gpu.py --out DIR --stages preflight,correct

Each stage runs in its own process (a hung stage ends only itself) and writes DIR/<stage>.json;
a stage that does not pass stops the run, and its exit code is this script's. A GPU session with
little device time runs the stages one at a time instead (benchmarks/gpu_check.py --stage ...),
reads each summary and decides.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the stages' JSON files")
    ap.add_argument("--stages", default="preflight,correct,time", help="comma-separated, in order")
    ap.add_argument("--case-timeout", type=float, default=90.0)
    args = ap.parse_args(argv)
    for stage in args.stages.split(","):
        cmd = [sys.executable, os.path.join(HERE, "gpu_check.py"), "--stage", stage, "--out", args.out,
               "--case-timeout", str(args.case_timeout)]
        print(f"== {' '.join(cmd)}", flush=True)
        code = subprocess.call(cmd)
        if code != 0:
            print(f"stage {stage} exited with {code}: stopping", flush=True)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
