"""Kernel launches and device allocations per forward and per backward of one layer-direction of
every built-in cell (cuda_counts_sim_check.py next to this file, under the CUDA simulator, about 20 s).

Issue 13's goals, checked here: a repeated call with the same shapes makes at most 4 launches per
forward and 6 per backward, and ONE device allocation each (the arena holding what the call
returns: y, the state sequences and `saved` forward; dx, d_state0 and the parameter gradients
backward), plus the upload of `lengths` when they are given as a host array; workspaces are reused.

The counts come from rnngen.cuda_runtime.COUNTS, which counts every launch and allocation the run
time makes; the simulator's own count of the kernels it ran and the device arrays it made must be
the same, so the counter misses nothing (on a GPU, benchmarks/gpu_check.py --stage time reads the
same counter). The test prints the counts; issue 13 sets targets for them. The counts are the same
on a GPU (the code path does not depend on the device), but a GPU run is what confirms it.
"""
import pytest

import rnngen
from helpers import simulator_rows

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.slow     # the module fixture takes minutes


@pytest.fixture(scope="module")
def results():
    return simulator_rows("backends/cuda/cuda_counts_sim_check.py", ("cell", "lengths", "reverse"))


def _table(results):
    lines = ["launches / allocations of one layer-direction (device inputs):",
             f"{'cell':15s} {'forward':>9s} {'+lengths':>9s} {'backward':>9s}  launches by kernel (forward; backward)"]
    for cell in rnngen.available():
        plain, given = results[cell, False, False], results[cell, True, False]

        def pair(row, part):
            c = row[part]["counted"]
            return f"{c.get('launches', 0)} / {c.get('allocations', 0)}"

        by = {part: ", ".join(f"{k[7:]} {v}" for k, v in sorted(plain[part]["counted"].items())
                              if k.startswith("launch "))
              for part in ("forward", "backward")}
        lines.append(f"{cell:15s} {pair(plain, 'forward'):>9s} {pair(given, 'forward'):>9s} "
                     f"{pair(plain, 'backward'):>9s}  {by['forward']}; {by['backward']}")
    return "\n".join(lines)


def test_counts_per_forward_and_backward(results, capsys):
    for (cell, lengths, reverse), row in results.items():
        assert "error" not in row, f"{cell}: {row['error']}"
        for part in ("forward", "backward"):
            counted, seen = row[part]["counted"], row[part]["simulator"]
            assert counted.get("launches", 0) == seen["launches"], f"{cell} {part}: {row[part]}"
            assert counted.get("allocations", 0) == seen["allocations"], f"{cell} {part}: {row[part]}"
            assert counted.get(f"launch persistent {part}") == 1, f"{cell} {part}: {counted}"
            named = sum(v for k, v in counted.items() if k.startswith("launch "))
            assert named == counted["launches"], f"{cell} {part}: {counted}"
    for cell in rnngen.available():
        plain = results[cell, False, False]["forward"]["counted"]
        given = results[cell, True, False]["forward"]["counted"]
        assert given["allocations"] == plain["allocations"] + 1, "lengths: one upload per forward"
    with capsys.disabled():
        print("\n" + _table(results))


def test_launch_and_allocation_goals(results):
    """<= 4 launches per forward, <= 6 per backward (reverse included: the loop-order copies of x
    and dx), one allocation per call (plus the lengths upload), no fill, copy or column-sum launch.
    A block-diagonal (heads) linear adds one launch beside these, backward: its gradient's diagonal
    blocks (heads_blocks); forward and backward kernels read its weight as it is (no dense matrix)."""
    for (cell, lengths, reverse), row in results.items():
        fwd, bwd = row["forward"]["counted"], row["backward"]["counted"]
        where = f"{cell} lengths={lengths} reverse={reverse}"
        heads = sum(1 for shape in rnngen.load(cell).PARAMS.values() if shape[0] == "heads")   # its linears
        assert "launch heads_dense" not in fwd and "launch heads_dense" not in bwd, where
        assert bwd.get("launch heads_blocks", 0) == heads, f"{where}: {bwd}"
        assert fwd["launches"] <= 4 and bwd["launches"] - heads <= 6, f"{where}: {fwd} {bwd}"
        assert fwd["allocations"] == 1 + lengths, f"{where}: forward allocations {fwd}"
        assert bwd["allocations"] == 1, f"{where}: backward allocations {bwd}"
        for part in (fwd, bwd):
            assert not {"launch fill", "launch copy", "launch column_sum"} & set(part), f"{where}: {part}"
        assert bwd.get("launch loop_order", 0) <= (2 if reverse else 0), f"{where}: {bwd}"
