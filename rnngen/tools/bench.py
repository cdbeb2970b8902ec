"""`rnngen bench`: CPU timings of the generated kernels against torch.nn, the machine's sgemm rate,
compile and cached start-up times, and peak memory — one table anyone can rerun.

rnngen and torch are measured interleaved (one sample of each in turn) so that both see the same
load; the sgemm rate is measured inside the same loop, at the start of each repetition. Every timed
sample directly follows an untimed call of the same function (so neither side is timed with caches
just evicted by the 1024^3 sgemm), and tiny cases time back-to-back calls per sample and divide.
Times are medians after warm-up calls, so Numba compilation is excluded (it is reported
separately, from a fresh cache in a subprocess).
"""
import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from .bench_cases import (MAX_CALLS, MIN_SAMPLE_S, SGEMM_N, SIZES, Timer, bench_case, loadavg,  # noqa: F401
                          prefault, startup_times, torch_module)

CELLS = ("lstm", "gru", "gru_classic", "rnn_tanh", "lstm_peephole")


# -- the machine ---------------------------------------------------------------------------------
def machine():
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def blas_info():
    """Which BLAS libraries are loaded, their kernels (architecture) and threads (threadpoolctl)."""
    import scipy.linalg  # noqa: F401  (loads the BLAS that Numba's np.dot calls)
    try:
        import threadpoolctl
    except ImportError:
        return ["threadpoolctl not installed: BLAS kernel unknown"]
    out = []
    for d in threadpoolctl.threadpool_info():
        out.append(f"{d.get('internal_api')} {d.get('version')} kernel={d.get('architecture')} "
                   f"threads={d.get('num_threads')} ({os.path.basename(d.get('filepath', ''))})")
    return out


def versions():
    import numba
    import scipy
    out = {"numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__}
    torch = torch_module()
    out["torch"] = torch.__version__ if torch else "not installed"
    return out


# -- the table ---------------------------------------------------------------------------------------
def _fmt(v, spec=".2f", none="n/a"):
    return none if v is None else format(v, spec)


def _mb(n):
    return f"{n / 2**20:.1f}" if n >= 2**20 else f"{n / 2**20:.3f}"


def table(rows, sgemm_gflops):
    lines = ["| cell | size (T, B, I, H) | rnngen fwd ms | torch fwd ms | fwd torch/rnngen | "
             "rnngen fwd+bwd ms | torch fwd+bwd ms | fwd+bwd torch/rnngen | rnngen fwd+bwd GFLOP/s | "
             "% of gemm rate | peak mem MB / expected MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rf, tf, rb, tb = r["rnngen_fwd_ms"], r["torch_fwd_ms"], r["rnngen_fb_ms"], r["torch_fb_ms"]
        gflops = 3 * r["gemm_flops_fwd"] / (rb * 1e-3) / 1e9
        lines.append(
            f"| {r['cell']} | {r['size']} ({r['T']}, {r['B']}, {r['I']}, {r['H']}) | {_fmt(rf, '.3f')} | "
            f"{_fmt(tf, '.3f')} | {_fmt(tf / rf if tf else None, '.2f')}x | {_fmt(rb, '.3f')} | "
            f"{_fmt(tb, '.3f')} | {_fmt(tb / rb if tb else None, '.2f')}x | {gflops:.1f} | "
            f"{100 * gflops / sgemm_gflops:.0f}% | {_mb(r['peak_bytes'])} / "
            f"{_mb(r['expected_bytes'])} = {r['peak_bytes'] / r['expected_bytes']:.2f}x |")
    return lines


def run(cells, sizes, dtype, reps, compile_cells, threads=None, log=print, json_path=None):
    torch = torch_module()
    import scipy.linalg  # noqa: F401  (load the BLAS that Numba's np.dot calls before limiting threads)
    if threads:
        try:
            import threadpoolctl
            threadpoolctl.threadpool_limits(threads)
        except ImportError:
            log("threadpoolctl not installed: --threads applies to torch only")
        if torch:
            torch.set_num_threads(threads)
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(), "blas": blas_info(),
            "torch_threads": torch.get_num_threads() if torch else None,
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS", "NUMBA_NUM_THREADS") if k in os.environ},
            "command": " ".join(["rnngen", "bench"] + sys.argv[2:]) if sys.argv[1:2] == ["bench"]
            else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
    log(f"# rnngen bench — {info['date']}")
    log(f"machine: {info['machine']['cpu']}, {info['machine']['cores']} cores; python {info['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for line in info["blas"]:
        log(f"BLAS: {line}")
    log(f"torch threads: {info['torch_threads']}; env: {info['env'] or '(no BLAS/thread variables set)'}")
    log(f"dtype {np.dtype(dtype).name}; {reps} interleaved reps per case (medians; each timed sample "
        f"follows an untimed call of the same function; samples of tiny cases are >= {MIN_SAMPLE_S * 1e3:g} ms "
        f"of back-to-back calls, at most {MAX_CALLS}); "
        f"load average at start: {loadavg()}")
    prefault(max(4 * T * B * (I + 16 * H) * 4 for T, B, I, H in (SIZES[z] for z in sizes)))
    sgemm = Timer()
    rows = []
    for size in sizes:
        for cell in cells:
            t0 = time.perf_counter()
            rows.append(bench_case(cell, size, dtype, reps, sgemm))
            log(f"  measured {cell} at {size} in {time.perf_counter() - t0:.1f} s")
    sgemm_s = np.median(sgemm.samples["sgemm"])
    sgemm_gflops = 2 * SGEMM_N ** 3 / sgemm_s / 1e9
    log("")
    log(f"numpy {'sgemm' if dtype == np.float32 else 'dgemm'} ({SGEMM_N}x{SGEMM_N}x{SGEMM_N}, "
        f"{np.dtype(dtype).name}), median of {len(sgemm.samples['sgemm'])} "
        f"interleaved with the cases: {sgemm_gflops:.1f} GFLOP/s; load average at end: {loadavg()}")
    log("")
    for line in table(rows, sgemm_gflops):
        log(line)
    compile_rows = []
    if compile_cells:
        log("")
        log("| cell | first call, empty Numba cache: in-process s / process wall s | "
            "second process, cache hit: in-process s / process wall s |")
        log("|---|---|---|")
        for cell in compile_cells:
            (first, first_wall), (second, second_wall) = startup_times(cell, dtype)
            compile_rows.append({"cell": cell, "first_s": first, "first_wall_s": first_wall,
                                 "cached_s": second, "cached_wall_s": second_wall})
            log(f"| {cell} | {first:.2f} / {first_wall:.2f} | {second:.2f} / {second_wall:.2f} |")
    result = {"info": info, "gemm_gflops": sgemm_gflops, "dtype": np.dtype(dtype).name, "rows": rows, "compile": compile_rows}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result


def add_arguments(p):
    p.add_argument("--cells", default=",".join(CELLS),
                   help=f"comma-separated built-in cells (default: {','.join(CELLS)})")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated sizes among {','.join(SIZES)} (default: all; --quick: course,small)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per case (default 11; --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="a run under a minute: course and small sizes, 3 reps, compile time of lstm only")
    p.add_argument("--no-compile", action="store_true", help="skip the compile / start-up probes")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS and torch threads (default: leave each library's default)")
    p.add_argument("--json", help="also write the results as JSON to this file")


def main_args(args):
    res = run_args(args)
    return res if isinstance(res, int) else 0


def run_args(args, log=print):
    """Run the bench for parsed arguments: the result dict of run(), or 2 for bad arguments."""
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if importlib.util.find_spec(f"rnngen.generated.{c}") is None]
    if unknown:
        print(f"rnngen bench: unknown cell(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    sizes = [s for s in (args.sizes or ("course,small" if args.quick else ",".join(SIZES))).split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        print(f"rnngen bench: unknown size(s) {', '.join(bad)}; choose among {', '.join(SIZES)}",
              file=sys.stderr)
        return 2
    reps = args.reps or (3 if args.quick else 11)
    compile_cells = [] if args.no_compile else (cells[:1] if args.quick else cells)
    return run(cells, sizes, np.dtype(args.dtype).type, reps, compile_cells, args.threads, log=log,
               json_path=args.json)


def main(argv=None):
    p = argparse.ArgumentParser(prog="rnngen bench", description=__doc__)
    add_arguments(p)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
