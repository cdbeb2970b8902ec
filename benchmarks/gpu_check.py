"""The staged check of rnngen's CUDA backend on a GPU: one stage per run, each a few minutes.

    python benchmarks/gpu_check.py --stage preflight --out DIR   # versions, device, grid.sync, opt-in
    python benchmarks/gpu_check.py --stage correct --out DIR     # every case against CPU / cuDNN
    python benchmarks/gpu_check.py --stage time --out DIR        # kernel times, GEMM, the cuDNN table
    python benchmarks/gpu_check.py --stage correct --only "lstm H=1024" --out DIR   # some cases
    python benchmarks/gpu_check.py --stage correct --list        # the case names

Each stage writes DIR/<stage>.json (rewritten after every case, so a killed run leaves what it
had), prints "launching X" before the first launch of each kernel and a line per case, and ends
with a one-line summary. The exit code is 0 when every case passed, 1 on any mismatch, NaN or
failure, 3 when a case hung (a watchdog ends the process after --case-timeout seconds, writing the
JSON and every thread's traceback first), 4 when the stage's --budget ran out before its last case.

Runs from the repository root of a checkout (nothing needs installing: the root goes on
sys.path); numba.cuda is imported through rnngen.cuda_compat, so numpy 2.5 works. Under the CUDA
simulator (NUMBA_ENABLE_CUDASIM=1, no GPU) every stage runs its logic at tiny sizes and reports
mode "simulator": that checks the script, not the GPU.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

STAGES = ("preflight", "correct", "time")
DEFAULT_BUDGET_S = {"preflight": 60, "correct": 240, "time": 240}


def stage_module(name):
    import gpu_correct
    import gpu_preflight
    import gpu_time
    return {"preflight": gpu_preflight, "correct": gpu_correct, "time": gpu_time}[name]


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=STAGES)
    ap.add_argument("--out", help="folder for <stage>.json (made if missing)")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="run only the cases whose name contains TEXT (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the stage's case names and exit")
    ap.add_argument("--case-timeout", type=float, default=90.0,
                    help="seconds after which a case counts as hung and the process ends (default 90)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds after which no new case starts (default: preflight 60, others 240)")
    args = ap.parse_args(argv)
    if not args.list and not args.out:
        ap.error("--out DIR is required (where <stage>.json goes)")
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    from staging import Stage, log
    import gpu_common
    from gpu_common import MODE, gpu_available, rt
    module = stage_module(args.stage)
    if args.list:
        for name, _ in module.cases(None, MODE):
            print(name)
        return 0
    stage = Stage(args.stage, args.out, case_timeout=args.case_timeout,
                  budget_s=args.budget if args.budget is not None else DEFAULT_BUDGET_S[args.stage],
                  meta={"mode": MODE, "argv": sys.argv[1:] if argv is None else list(argv),
                        "numpy_shim": list(gpu_common.cuda_compat.NUMPY_SHIM)})
    log(f"rnngen GPU check, stage {args.stage}, mode {MODE}, case timeout {args.case_timeout:.0f} s, "
        f"budget {stage.budget_s:.0f} s, JSON {stage.path}")
    rt.LAUNCH_HOOK = stage.launching
    if args.stage != "preflight" and MODE == "gpu" and not gpu_available():
        stage.run("device", lambda: {"ok": False, "summary": "no GPU: numba.cuda.is_available() is False"})
        return stage.finish()
    for name, fn in module.cases(stage, MODE):
        if args.only and not any(text in name for text in args.only):
            continue
        stage.run(name, fn, always=name in getattr(module, "SUMMARIES", ()))
    if not stage.cases:
        stage.run("selection", lambda: {"ok": False, "summary": f"no case matches --only {args.only}"})
    return stage.finish()


if __name__ == "__main__":
    sys.exit(main())
