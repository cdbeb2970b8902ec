"""The CUDA kernels of lstm_proj (proj_size smaller and larger than H) and layernorm_lstm (its
reductions as partial sums across the blocks) under the simulator on several blocks match the CPU
path (float32: 1e-5)."""
import pytest

from helpers import simulator_rows

pytest.importorskip("numba.cuda")


@pytest.fixture(scope="module")
def results():
    return simulator_rows("backends/cuda/cuda_sizes_sim_check.py", ("case",))


@pytest.mark.parametrize("case", ["proj_smaller_blocks", "proj_smaller_blocks_reverse_global",
                                  "proj_larger_blocks", "layernorm_blocks_reverse", "layernorm_blocks_global"])
def test_cuda_matches_cpu(results, case):
    row = results[(case,)]
    assert "error" not in row, row["error"]
    bad = {k: v for k, v in row["errors"].items() if not v <= 1e-5}
    assert not bad, f"{case}: CUDA differs from CPU: {bad}"
    assert row["grid"] >= 2, "several blocks"
    if case.startswith("proj_smaller"):
        assert row["shapes"]["y"] == [3, 3, 2] and row["shapes"]["final_c"] == [3, 5]
