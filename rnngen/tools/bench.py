"""`rnngen bench`: `rnngen.RNN` against torch.nn on the CPU, in one interleaved run, with the
machine's GEMM rate (all cores and one) measured in the same run, compile and cached start-up
times, and peak memory.

Both libraries run at their DEFAULT threads unless `--threads N` (torch.set_num_threads(N) and
rnngen.set_num_threads(N): rnngen's calls then use N threads, and set the BLAS threads of numpy's
and SciPy's OpenBLAS, which Numba's np.dot calls, themselves) or `--compare-threads` (default
threads and one thread, alternated in the same run).

Timing: for every case the calls are alternated in BLOCKS: one library's block is an untimed
warm-up (at least WARM_S of calls, so that the other library's thread pool, still spinning after
its own block, is not in a timed sample) followed by BLOCK timed samples; then the other library's
block, and so on for each thread setting, for --reps rounds. The GEMM-rate probe on all cores is
followed by a pause (SETTLE_S) that outlasts OpenBLAS's idle threads, which spin for ~0.1-0.15 s
after a call before they sleep (a warm-up that short did not: rnngen's two workers right after the
probe lost a core to them). A sample of a tiny case is as many
back-to-back calls as fill MIN_SAMPLE_S at the fastest of a few calls' time, each call timed on its own. Times are medians over the
calls (the JSON also has means: under load a thread team that waits for a descheduled thread
stalls single calls for milliseconds); compilation is excluded (it is reported separately, from
an empty Numba cache in a subprocess).

Forward rows: rnngen's `RNN.forward(x, need_grad=False)` where the runtime has it (else the plain
forward, which keeps what backward needs; the header says which) against torch under
torch.no_grad(). Forward+backward rows: rnngen's forward+backward against torch's.
GFLOP/s counts GEMM FLOPs: a forward is 2*T*B*sum(rows*cols) over every weight matrix of every
layer and direction, a forward+backward three times that (LSTM fastrnns: 80.5 GFLOP).
"""
import argparse
import datetime
import importlib
import importlib.util
import json
import os
import sys
import time

import numpy as np

from .bench_cases import (CELLS, EXTRA_CASES, SIZES, TORCH_EQUIVALENT, bench_case, case_label,  # noqa: F401
                          cases, forward_has_need_grad, gemm_entries, gemm_gflops, memory, module_fns,
                          rnn_flops, rnngen_fns, startup_times, torch_fns, torch_net)
from .bench_timing import (BLOCK, BLOCK_BUDGET_S, GEMM_N, MAX_CALLS, MIN_SAMPLE_S,  # noqa: F401
                           QUICK_BLOCK_BUDGET_S, QUICK_REPS, REPS, SETTLE_S, WARM_S, Threads, Timer, blas_info,
                           loadavg, machine, prefault, setting_name, time_blocks, versions)

# -- the tables --------------------------------------------------------------------------------------
COLUMNS = ("cell", "size (T, B, I, H)", "layers", "dtype", "rnngen fwd ms", "torch fwd ms",
           "fwd torch/rnngen", "rnngen fwd+bwd ms", "torch fwd+bwd ms", "fwd+bwd torch/rnngen",
           "rnngen fwd+bwd GFLOP/s", "% of gemm rate", "peak mem MB / expected MB")


def fmt(v, spec=".2f", none="n/a"):
    return none if v is None else format(v, spec)


def _ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def _mb(n):
    return f"{n / 2**20:.1f}" if n >= 2**20 else f"{n / 2**20:.3f}"


def gemm_reference(row, dtype):
    """The GEMM rate a row is compared with: the probes run in the rounds of the row's own case,
    one core for a one-thread row, else all cores; None for a row of another dtype than the
    probe's."""
    if row["dtype"] != dtype:
        return None
    return row["gemm_gflops_one"] if row["threads"] == "1" else row["gemm_gflops_all"]


def fb_gflops(row):
    return 3 * row["gemm_flops_fwd"] / (row["rnngen_fb_ms"] * 1e-3) / 1e9


def table(rows, dtype):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        rf, tf, rb, tb = r["rnngen_fwd_ms"], r["torch_fwd_ms"], r["rnngen_fb_ms"], r["torch_fb_ms"]
        gflops = fb_gflops(r)
        ref = gemm_reference(r, dtype)
        mem = "n/a" if r["peak_bytes"] is None else (
            f"{_mb(r['peak_bytes'])} / {_mb(r['expected_bytes'])} = {r['peak_bytes'] / r['expected_bytes']:.2f}x")
        cells = (r["cell"], f"{r['size']} ({r['T']}, {r['B']}, {r['I']}, {r['H']})",
                 f"{r['layers']}{' bidir' if r['bidirectional'] else ''}", r["dtype"],
                 fmt(rf, ".3f"), fmt(tf, ".3f"), _ratio(tf, rf), fmt(rb, ".3f"), fmt(tb, ".3f"),
                 _ratio(tb, rb), f"{gflops:.1f}", f"{100 * gflops / ref:.0f}%" if ref else "n/a", mem)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def noisy(rows, factor=2.0):
    """'lib kind cell size ...' for every time whose mean exceeds `factor` times its median."""
    out = []
    for r in rows:
        for lib in ("rnngen", "torch"):
            for kind, name in (("fwd", "fwd"), ("fb", "fwd+bwd")):
                med, mean = r[f"{lib}_{kind}_ms"], r.get(f"{lib}_{kind}_mean_ms")
                if med and mean and mean > factor * med:
                    out.append(f"{lib} {name} {r['cell']} {r['size']}{' 2 bidir' if r['bidirectional'] else ''} "
                               f"{r['dtype']} (median {med:.3f}, mean {mean:.3f} ms)")
    return out


def threads_table(rows):
    """Default threads against one thread, per case: time ratios default / one thread."""
    by = {}
    for r in rows:
        by.setdefault((r["cell"], r["size"], r["layers"], r["bidirectional"], r["dtype"]), {})[r["threads"]] = r
    lines = ["| cell | size | layers | dtype | rnngen fwd ms default / 1 thread | rnngen fwd+bwd ms default / 1 thread "
             "| torch fwd ms default / 1 thread | torch fwd+bwd ms default / 1 thread |", "|---|---|---|---|---|---|---|---|"]
    for (cell, size, layers, bidir, dtype), pair in by.items():
        if "default" not in pair or "1" not in pair:
            continue
        d, o = pair["default"], pair["1"]
        parts = []
        for key in ("rnngen_fwd_ms", "rnngen_fb_ms", "torch_fwd_ms", "torch_fb_ms"):
            parts.append("n/a" if d[key] is None else f"{d[key]:.3f} / {o[key]:.3f} = {d[key] / o[key]:.2f}x")
        lines.append(f"| {cell} | {size} | {layers}{' bidir' if bidir else ''} | {dtype} | " + " | ".join(parts) + " |")
    return lines


# -- the run -----------------------------------------------------------------------------------------
def _command():
    if sys.argv[1:2] == ["bench"]:
        return " ".join(["rnngen", "bench"] + sys.argv[2:])
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])


def run(cells, sizes, dtype, reps, compile_cells, settings=(None,), log=print, json_path=None, budget_s=None):
    """Measure every case under every thread setting (None: the libraries' defaults) and print the
    tables. Returns the result dict (also written to json_path)."""
    t_start = time.perf_counter()
    dtype = np.dtype(dtype).name
    threads = Threads()
    import rnngen
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(), "blas": blas_info(),
            "torch_threads": threads.torch_default, "settings": [setting_name(n) for n in settings],
            "fwd_need_grad": forward_has_need_grad(rnngen.RNN),
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
                    if k in os.environ},
            "command": _command(), "load_start": loadavg()}
    m = info["machine"]
    log(f"# rnngen bench — {info['date']}")
    log(f"machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX flags found'}); "
        f"python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for line in info["blas"]:
        log(f"BLAS at start: {line}")
    log(f"torch threads at start: {info['torch_threads']}; env: {info['env'] or '(no BLAS/thread variables set)'}")
    log(f"thread settings: {', '.join(info['settings'])} (default: each library's own; N: torch.set_num_threads(N) "
        f"and rnngen.set_num_threads(N))")
    log(f"dtype {dtype}; {reps} round(s) of blocks per case, each block an untimed warm-up (>= {WARM_S * 1e3:g} ms) "
        f"then {BLOCK} timed samples (a {SETTLE_S * 1e3:g} ms pause after each all-cores GEMM probe), fewer (at least one) once they last {budget_s or BLOCK_BUDGET_S:g} s (tiny cases: >= {MIN_SAMPLE_S * 1e3:g} ms of back-to-back calls, at most "
        f"{MAX_CALLS}, each timed); medians over the calls; load average at start: {info['load_start']}")
    log("rnngen forward: " + ("RNN.forward(x, need_grad=False)" if info["fwd_need_grad"] else
                              "RNN.forward(x) (this runtime has no need_grad: it keeps what backward needs)")
        + "; torch forward under torch.no_grad()")
    all_cases = cases(cells, sizes, dtype)
    prefault(max(4 * SIZES[c["size"]][0] * SIZES[c["size"]][1] * (SIZES[c["size"]][2] + 16 * SIZES[c["size"]][3])
                  * c["layers"] * np.dtype(c["dtype"]).itemsize for c in all_cases))
    gemm_probe = gemm_entries(threads, np.dtype(dtype).type)
    rows, timers = [], []
    for case in all_cases:
        t0 = time.perf_counter()
        case_rows, timer = bench_case(case, settings, reps, threads, gemm_probe, budget_s)
        rows.extend(case_rows)
        timers.append(timer)
        log(f"  measured {case['cell']} {case['size']} {case_label(case)} {case['dtype']} in "
            f"{time.perf_counter() - t0:.1f} s")
    gemm = gemm_gflops(timers)
    info["load_end"] = loadavg()
    log("")
    log(f"numpy GEMM {GEMM_N}^3 {dtype}, medians of the probes interleaved with all cases: "
        f"{fmt(gemm['all'], '.1f')} GFLOP/s with all {threads.cpus} cores, {fmt(gemm['one'], '.1f')} with one; "
        f"'% of gemm rate' is rnngen's forward+backward GFLOP/s over the rate of the probes run in the same "
        f"case's rounds (one core for one-thread rows, all cores otherwise; per case in the JSON); "
        f"load average at end: {info['load_end']}")
    for n in settings:
        log("")
        log(f"threads: {setting_name(n)}")
        log("")
        these = [r for r in rows if r["threads"] == setting_name(n)]
        for line in table(these, dtype):
            log(line)
        stalled = noisy(these)
        if stalled:
            log("")
            log("noisy (mean over 2x the median: single calls stalled, e.g. a thread team waiting for a "
                "descheduled thread): " + "; ".join(stalled))
    if None in settings and 1 in settings:
        log("")
        log("default threads against one thread (time default / time one thread; below 1 is faster with the default):")
        log("")
        for line in threads_table(rows):
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
    info["wall_s"] = time.perf_counter() - t_start
    log("")
    log(f"bench wall time {info['wall_s']:.1f} s")
    result = {"info": info, "gemm_gflops": gemm, "gemm_cores": threads.cpus, "dtype": dtype, "rows": rows,
              "compile": compile_rows}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result


def add_arguments(p):
    p.add_argument("--cells", default=",".join(CELLS),
                   help=f"comma-separated built-in cells (default: {','.join(CELLS)}); with lstm and the small "
                        f"size, a 2-layer bidirectional lstm and a float64 lstm are measured too")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated sizes among {','.join(SIZES)} (default: all; --quick: course,small)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--reps", type=int, default=None,
                   help=f"rounds of blocks per case (default {REPS}; --quick {QUICK_REPS}); {BLOCK} timed samples per block")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run: course and small sizes, {QUICK_REPS} round, blocks cut to one timed sample "
                        f"once they last {QUICK_BLOCK_BUDGET_S:g} s, no compile probe")
    p.add_argument("--no-compile", action="store_true", help="skip the compile / start-up probes")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both libraries: torch.set_num_threads(N) and rnngen.set_num_threads(N) "
                        "(default: each library's default)")
    p.add_argument("--compare-threads", action="store_true",
                   help="measure at the default threads and at one thread, alternated in the same run")
    p.add_argument("--json", help="also write the results as JSON to this file")


def main_args(args):
    res = run_args(args)
    return res if isinstance(res, int) else 0


def _usage_error(message):
    print(f"rnngen bench: {message}", file=sys.stderr)
    return 2


def run_args(args, log=print):
    """Run the bench for parsed arguments: the result dict of run(), or 2 for bad arguments."""
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if importlib.util.find_spec(f"rnngen.generated.{c}") is None]
    if unknown or not cells:
        return _usage_error(f"--cells: unknown cell(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose among {', '.join(CELLS)}")
    sizes = [s for s in (args.sizes or ("course,small" if args.quick else ",".join(SIZES))).split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        return _usage_error(f"--sizes: unknown size(s) {', '.join(bad) or '(none given)'}; "
                            f"choose among {', '.join(SIZES)}")
    if args.reps is not None and args.reps < 1:
        return _usage_error(f"--reps must be >= 1, got {args.reps}")
    if args.threads is not None and args.threads < 1:
        return _usage_error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None and args.compare_threads:
        return _usage_error("--compare-threads measures the default threads and one thread; "
                            "do not combine it with --threads")
    settings = (None, 1) if args.compare_threads else (args.threads,)
    reps = args.reps or (QUICK_REPS if args.quick else REPS)
    compile_cells = [] if args.no_compile or args.quick else cells
    return run(cells, sizes, args.dtype, reps, compile_cells, settings, log=log, json_path=args.json,
               budget_s=QUICK_BLOCK_BUDGET_S if args.quick else BLOCK_BUDGET_S)


def main(argv=None):
    p = argparse.ArgumentParser(prog="rnngen bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
