"""Run every built-in cell's CUDA kernels under the CUDA simulator and compare with the CPU path.

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/test_cuda_sim.py does). Tiny sizes and
one block per grid (the simulator syncs a cooperative grid of one block only). Prints one JSON line
per (cell, case): the largest error of every output relative to max(1, |CPU value|).
"""
import json
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

from numba import cuda  # noqa: E402

import rnngen  # noqa: E402
from rnngen import cuda_runtime as rt, device  # noqa: E402

# Uninitialised device memory is NaN here, so a kernel that leaves an element unwritten shows up.
rt.empty = lambda shape, dtype: cuda.to_device(np.full(shape, np.nan, dtype))

CASES = {
    # name: (dtype, T, B, I, H, lengths, reverse, weights in global memory)
    "lengths": (np.float32, 3, 3, 3, 3, [3, 1, 2], False, False),
    "reverse_global_weights": (np.float32, 3, 2, 2, 3, [2, 3], True, True),
    "float64": (np.float64, 2, 2, 2, 2, None, False, False),
    # several blocks of 2 units (the last one holds 1): the simulator runs blocks one after another,
    # so grid.sync only works when nothing reads another block's results after it: T=1 forward.
    "blocks_forward_T1": (np.float32, 1, 2, 2, 5, [1, 0], False, False),
    "blocks_forward_T1_global_weights": (np.float32, 1, 2, 2, 5, None, True, True),
}
CASES["user_folder"] = CASES["lengths"]
SIM_UNITS = {"blocks_forward_T1": 2, "blocks_forward_T1_global_weights": 2}


def user_folder(cell):
    """The cell built with `rnngen build --out DIR` and loaded from there (path-based imports)."""
    import tempfile
    from rnngen.build import build, builtin_specs_dir, spec_paths
    out = tempfile.mkdtemp(prefix="rnngen_cuda_")
    build(spec_paths(builtin_specs_dir(), [cell]), out, log=lambda *a: None)
    return rnngen.load(cell, path=out)


def run(cell, case):
    dtype, T, B, I, H, lengths, reverse, global_weights = CASES[case]
    mod = user_folder(cell) if case == "user_folder" else rnngen.load(cell)
    rng = np.random.default_rng(7)
    params = mod.init_params(I, H, dtype, seed=11)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in mod.STATES)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    d_final = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in mod.STATES)
    ref_y, ref_final, saved = mod.forward(x, params, state0, lengths, reverse)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, d_final, saved)

    rt.FORCE_GLOBAL_WEIGHTS = global_weights
    rt.SIM_UNITS = SIM_UNITS.get(case)
    dev = cuda.to_device
    # through the CPU module: a device array routes to generated/_cuda_<cell>.py
    y, final, saved_d = mod.forward(dev(x), {k: dev(v) for k, v in params.items()},
                                    tuple(dev(s) for s in state0),
                                    None if lengths is None else np.array(lengths), reverse)
    dx, d0, dp = mod.backward(dev(dy), tuple(dev(d) for d in d_final), saved_d)
    rt.FORCE_GLOBAL_WEIGHTS = False
    rt.SIM_UNITS = None

    pairs = [("y", ref_y, y)] + [(f"final_{s}", a, b) for s, a, b in zip(mod.STATES, ref_final, final)]
    cooperative = device.cuda_module(mod.__name__, mod.__file__, mod.NAME).COOPERATIVE
    if not (case in SIM_UNITS and cooperative):   # else backward reads other blocks after grid.sync
        pairs.append(("dx", ref_dx, dx))
        pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(mod.STATES, ref_d0, d0)]
        pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    errors, scale, devices = {}, {}, True
    for name, ref, got in pairs:
        devices &= rt.is_device_array(got)
        got = got.copy_to_host()
        errors[name] = float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))
        scale[name] = float(np.max(np.abs(ref)))
    return {"cell": cell, "case": case, "errors": errors, "scale": scale, "device_outputs": devices}


def gemm_checks():
    """The GPU's GEMM tile shapes (not the simulator's default small one), every transposition."""
    rng = np.random.default_rng(3)
    default = rt.SIM_GEMM_TILES
    for tiles in (rt.GEMM_TILES, rt.GEMM_TILES_SMALL):
        rt.SIM_GEMM_TILES = tiles
        worst = 0.0
        for ta in (False, True):
            for tb in (False, True):
                M, N, K = 140, 70, 21
                a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
                b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
                c = rng.standard_normal((M, N)).astype(np.float32)
                out = cuda.to_device(c)
                rt.gemm(cuda.to_device(a), cuda.to_device(b), out, ta, tb, accumulate=True)
                ref = c + (a.T if ta else a) @ (b.T if tb else b)
                worst = max(worst, float(np.max(np.abs(out.copy_to_host() - ref) / np.maximum(1, np.abs(ref)))))
        print(json.dumps({"cell": "gemm", "case": "x".join(map(str, tiles)), "errors": {"c": worst},
                          "scale": {"c": 1.0}, "device_outputs": True}), flush=True)
    rt.SIM_GEMM_TILES = default


def benchmark_script_check():
    """benchmarks/gpu.py's correctness check (what a GPU session runs first), at a tiny size."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import gpu
    ok, err, where, plan = gpu.check_cell("lstm", 2, 3, 2, 3, [2, 1, 0], True, False, 1e-5)
    print(json.dumps({"cell": "benchmarks/gpu.py", "case": "check_cell", "errors": {where: err},
                      "scale": {where: 1.0}, "device_outputs": ok}), flush=True)


def main(cells):
    gemm_checks()
    benchmark_script_check()
    for cell in cells:
        for case in CASES:
            if case == "float64" and cell not in ("lstm", "gru_classic"):
                continue
            if case == "user_folder" and cell != "gru_classic":
                continue
            if case in SIM_UNITS and cell == "gru_classic":
                continue   # two stages: its forward step itself reads other blocks after grid.sync
            try:
                row = run(cell, case)
            except Exception as exc:  # report, keep going
                row = {"cell": cell, "case": case, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or rnngen.available())
