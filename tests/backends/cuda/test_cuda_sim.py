"""CUDA kernels of every built-in cell under the CUDA simulator match the CPU path (float32: 1e-5).

The simulator must be switched on before numba.cuda is imported, so the checks run in their own
process (cuda_sim_check.py next to this file); this module runs it once and checks each (cell, case).
"""
import pytest

import rnngen
from helpers import simulator_rows

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.slow     # the module fixture takes minutes

CASES = ("lengths", "reverse_global_weights", "blocks", "blocks_reverse_global_weights")
TOL = {"float64": 1e-12}


@pytest.fixture(scope="module")
def results():
    return simulator_rows("backends/cuda/cuda_sim_check.py", ("cell", "case"))


def _check(row):
    assert "error" not in row, row["error"]
    assert row["device_outputs"], "outputs must be device arrays"
    tol = TOL.get(row["case"], 1e-5)
    bad = {k: v for k, v in row["errors"].items() if not v <= tol}
    assert not bad, f"{row['cell']} {row['case']}: CUDA differs from CPU: {bad}"
    assert all(s > 0 for s in row["scale"].values()), f"a reference output is all zero: {row['scale']}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cell", rnngen.available())
def test_cuda_matches_cpu(results, cell, case):
    _check(results[cell, case])


@pytest.mark.parametrize("cell", ["lstm", "gru_classic"])
def test_cuda_float64(results, cell):
    _check(results[cell, "float64"])


def test_gemm_tiles_of_the_gpu(results):
    """The tiled GEMM with M on grid.x and N on grid.y, at the GPU's two tile shapes and the
    simulator's, on results of several tiles in both directions."""
    rows = {case: r for (cell, case), r in results.items() if cell == "gemm"}
    assert len(rows) == 3
    for row in rows.values():
        _check(row)
    assert rows["64x64x16x4x4"]["grid"] == [3, 2] and rows["4x4x2x2x2"]["grid"] == [3, 2]


@pytest.mark.parametrize("cell", [c for c in rnngen.available() if "heads" in getattr(rnngen.load(c), "SIZES", ())])
def test_cuda_heads_on_several_blocks(results, cell):
    """A block-diagonal linear of 3 heads of 2 units (its slices read each head's weights), on 3
    blocks, and on one block whose warp tiles cross the heads' boundaries (weights in global memory)."""
    _check(results[cell, "heads"])
    _check(results[cell, "heads_one_block"])


@pytest.mark.parametrize("cell", [c for c in rnngen.available() if getattr(rnngen.load(c), "INITIAL", None)])
def test_cuda_fills_the_specs_initial_values(results, cell):
    _check(results[cell, "initial"])


@pytest.mark.parametrize("cell", [c for c in rnngen.available()
                                  if any(per != "weight" for _, per, _ in rnngen.load(c).MASKS.values())])
def test_cuda_kernels_at_rate_zero_on_several_blocks(results, cell):
    """No mask given: the CPU and the CUDA modules both run the kernels of the cell with every mask
    1 (reversed, with lengths, 3 blocks), and they agree."""
    row = results[cell, "rate0"]
    _check(row)
    assert row["rate0_kernels"] == [True, True]


def test_cuda_heads_of_a_users_one_gate_linear(results):
    """A user's block-diagonal linear of one gate, 2 heads of 3 units on 3 blocks of 2 units."""
    _check(results["heads_user", "heads_user"])


def test_cuda_module_next_to_a_user_built_module(results):
    _check(results["gru_classic", "user_folder"])


def test_cuda_runs_a_spec_that_takes_the_generators_names(results):
    """Every name the generated CUDA module uses for itself (tests/helpers.py CLASH) taken by the
    spec: the kernels still match the CPU module, reversed, with lengths, on one block."""
    _check(results["clash", "spec_names"])


def test_the_gpu_checks_cell_case_runs(results):
    _check(results["benchmarks/gpu_correct.py", "cell_case"])


def test_the_simulated_grid_catches_a_missing_grid_sync(results):
    """cuda_sim_check.py runs a grid's blocks under a scheduler that honours grid.sync();
    with one grid.sync() of lstm's backward turned into cuda.syncthreads(), one block still
    matches the CPU path and three blocks must not."""
    row = results["negative_control", "missing grid.sync"]
    assert row["matches_cpu"] == {"one block": True, "three blocks": False}


def test_workspaces_reused_results_kept(results):
    """Issue 13: workspaces are reused across calls of the same shapes, the arrays a call returns
    are not: a second forward + backward leaves the first call's results as they were, and both
    equal the CPU path (lstm_peephole, reversed, with lengths)."""
    _check(results["reuse", "two calls"])
