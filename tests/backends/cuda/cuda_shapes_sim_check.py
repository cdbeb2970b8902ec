"""The CUDA kernels under the CUDA simulator at the block shapes a GPU runs: 512 threads per
block (what plan() gives at B = 64), several blocks synchronised by grid.sync(), B = 64, and
H = 512 for a cell without a recurrent matrix; the GEMMs on the GPU's 64x64 tile (256 threads).

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/backends/cuda/test_cuda_shapes_sim.py does); it reuses
cuda_sim_check.py's scheduler, which runs a grid's blocks together and honours grid.sync().
Each simulated thread costs about a millisecond and each simulated array access microseconds, so
the recurrent cells run at H = 24 or 40 (3 blocks of 8 units, 4 of 10: the GEMM slices' lanes
wrap around k = 40 and 160, and the last column tile of a block is clamped): a recurrent cell at H = 512
would take hours here. Prints one JSON line per case: errors against the CPU path and the plan.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cuda_sim_check  # noqa: E402,F401  (installs the grid-wide scheduler, NaN-filled empty)
from cuda_sim_check import cuda, np, rnngen, rt  # noqa: E402
from rnngen.backends.cuda import launch, workspace  # noqa: E402
from rnngen.runtime import device  # noqa: E402

CASES = {
    # name: (cell, T, B, I, H, units per block, threads per block, reverse)
    "lstm B=64 H=40 4 blocks x 512 threads": ("lstm", 2, 64, 3, 40, 10, 512, False),
    "gru_classic B=64 H=24 3 blocks x 512 threads reverse": ("gru_classic", 2, 64, 3, 24, 8, 512, True),
    "mingru B=64 H=512 4 blocks x 512 threads": ("mingru", 2, 64, 1, 512, 128, 512, False),
}


def hardware_threads(B, units, rows):
    """Threads per block plan() chooses on a GPU for both passes (launch.block_threads: a warp per
    2 x 4 tile of the GEMM slice, at most 512)."""
    threads = {launch.block_threads(B, units, rows, backward) for backward in (False, True)}
    assert len(threads) == 1, threads
    return threads.pop()


def run(name):
    cell, T, B, I, H, units, threads, reverse = CASES[name]
    mod = rnngen.load(cell)
    cuda_mod = device.cuda_module(mod.__name__, mod.__file__, mod.NAME)
    assert threads == hardware_threads(B, units, cuda_mod.SHARED_ROWS), "not the shape a GPU runs"
    rng = np.random.default_rng(7)
    params = mod.init_params(I, H, np.float32, seed=11)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(np.float32) for _ in mod.STATES)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    d_final = tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in mod.STATES)
    lengths = rng.integers(0, T + 1, B)
    lengths[:3] = [T, 0, 1]
    ref_y, ref_final, saved = mod.forward(x, params, state0, lengths, reverse)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, d_final, saved)

    defaults = rt.SIM_UNITS, rt.SIM_THREADS, rt.SIM_GEMM_TILES
    rt.SIM_UNITS, rt.SIM_THREADS, rt.SIM_GEMM_TILES = units, threads, rt.GEMM_TILES_SMALL
    workspace.release()
    try:
        dev = cuda.to_device
        y, final, saved_d = mod.forward(dev(x), {k: dev(v) for k, v in params.items()},
                                        tuple(dev(s) for s in state0), lengths, reverse)
        dx, d0, dp = mod.backward(dev(dy), tuple(dev(d) for d in d_final), saved_d)
        plan = {k: list(v) for k, v in rt.LAST_PLAN.items()}
    finally:
        rt.SIM_UNITS, rt.SIM_THREADS, rt.SIM_GEMM_TILES = defaults
    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
    pairs += [(f"final_{s}", a, b) for s, a, b in zip(mod.STATES, ref_final, final)]
    pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(mod.STATES, ref_d0, d0)]
    pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    errors, scale = {}, {}
    for label, ref, got in pairs:
        got = got.copy_to_host()
        errors[label] = float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))
        scale[label] = float(np.max(np.abs(ref)))
    return {"case": name, "cell": cell, "errors": errors, "scale": scale, "plan": plan}


def main(names):
    for name in names:
        try:
            row = run(name)
        except Exception as exc:  # report, keep going
            import traceback
            row = {"case": name, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
