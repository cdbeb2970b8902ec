"""The CUDA kernels at the block shapes a GPU runs, under the CUDA simulator (slow: about a
minute, in its own process: cuda_shapes_sim_check.py next to this file).

512 threads per block (what plan() gives at B = 64), B = 64, several blocks synchronised by a
scheduler that honours grid.sync(), lengths with 0, 1 and T, reverse; the GEMMs on the GPU's 64x64
tile of 256 threads; H = 512 for mingru (no recurrent matrix). The recurrent cells run at H = 24
and 40: at H = 512 one simulated step would take hours. What this cannot show (real concurrency
of warps, memory ordering across SMs, > 48 KiB shared memory, timing) needs a GPU:
benchmarks/gpu_check.py --stage correct.
"""
import pytest

from helpers import simulator_rows

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.slow

CASES = ("lstm B=64 H=40 4 blocks x 512 threads", "gru_classic B=64 H=24 3 blocks x 512 threads reverse",
         "mingru B=64 H=512 4 blocks x 512 threads")


@pytest.fixture(scope="module")
def results():
    return simulator_rows("backends/cuda/cuda_shapes_sim_check.py", ("case",))


@pytest.mark.parametrize("case", CASES)
def test_real_block_shapes_match_cpu(results, case):
    row = results[(case,)]
    assert "error" not in row, row["error"]
    bad = {k: v for k, v in row["errors"].items() if not v <= 1e-5}
    assert not bad, f"{case}: CUDA differs from CPU: {bad}"
    assert all(s > 0 for s in row["scale"].values()), row["scale"]
    for name, (grid, threads, units, nbytes, on_chip) in row["plan"].items():
        assert threads == 512 and grid >= 3, f"{name}: not the shape asked for: {row['plan'][name]}"
