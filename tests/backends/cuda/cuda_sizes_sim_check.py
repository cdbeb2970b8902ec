"""lstm_proj with proj_size != H and layernorm_lstm under the CUDA simulator, on several blocks
(the grid-wide scheduler of cuda_sim_check.py), against the CPU path. Run with
NUMBA_ENABLE_CUDASIM=1 in its own process (test_cuda_sizes.py does); prints one JSON line per case."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_sim_check as base  # noqa: E402  (patches the simulator's scheduler)

import rnngen  # noqa: E402
from rnngen import cuda_runtime as rt  # noqa: E402

cuda = base.cuda

CASES = {
    # name: (cell, sizes, T, B, I, H, lengths, reverse, weights in global memory, units per block)
    "proj_smaller_blocks": ("lstm_proj", {"proj_size": 2}, 3, 3, 2, 5, [3, 0, 2], False, False, 2),
    "proj_smaller_blocks_reverse_global": ("lstm_proj", {"proj_size": 2}, 3, 3, 2, 5, [2, 3, 1], True, True, 2),
    "proj_larger_blocks": ("lstm_proj", {"proj_size": 5}, 3, 2, 2, 3, [3, 2], True, False, 2),
    "layernorm_blocks_reverse": ("layernorm_lstm", {}, 3, 3, 2, 5, [3, 0, 2], True, False, 2),
    "layernorm_blocks_global": ("layernorm_lstm", {}, 2, 2, 3, 4, None, False, True, 3),
}


def run(case):
    cell, sizes, T, B, I, H, lengths, reverse, global_weights, units = CASES[case]
    mod = rnngen.load(cell)
    rng = np.random.default_rng(3)
    params = {k: v + 0.3 * rng.standard_normal(v.shape).astype(np.float32)
              for k, v in mod.init_params(I, H, np.float32, seed=5, **sizes).items()}
    dims = [sizes.get(mod.STATE_SIZES[s], H) for s in mod.STATES]
    out = dims[mod.STATES.index(mod.OUTPUT)]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    state0 = tuple((0.5 * rng.standard_normal((B, n))).astype(np.float32) for n in dims)
    dy = rng.standard_normal((T, B, out)).astype(np.float32)
    d_final = tuple(rng.standard_normal((B, n)).astype(np.float32) for n in dims)
    ref_y, ref_final, saved = mod.forward(x, params, state0, lengths, reverse)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, d_final, saved)
    rt.FORCE_GLOBAL_WEIGHTS, rt.SIM_UNITS = global_weights, units
    dev = cuda.to_device
    try:
        y, final, saved_d = mod.forward(dev(x), {k: dev(v) for k, v in params.items()},
                                        tuple(dev(s) for s in state0),
                                        None if lengths is None else np.array(lengths), reverse)
        dx, d0, dp = mod.backward(dev(dy), tuple(dev(d) for d in d_final), saved_d)
        grid = rt.LAST_PLAN["persistent forward"][0]
    finally:
        rt.FORCE_GLOBAL_WEIGHTS, rt.SIM_UNITS = False, None
    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
    pairs += [(f"final_{s}", a, b) for s, a, b in zip(mod.STATES, ref_final, final)]
    pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(mod.STATES, ref_d0, d0)]
    pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    errors = {name: float(np.max(np.abs(got.copy_to_host() - ref) / np.maximum(1.0, np.abs(ref))))
              for name, ref, got in pairs}
    shapes = {name: list(got.shape) for name, _, got in pairs}
    return {"case": case, "errors": errors, "shapes": shapes, "grid": grid}


if __name__ == "__main__":
    for case in sys.argv[1:] or CASES:
        try:
            row = run(case)
        except Exception as exc:  # report, keep going
            row = {"case": case, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row), flush=True)
