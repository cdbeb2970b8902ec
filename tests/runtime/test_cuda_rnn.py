"""rnngen.RNN(..., device="cuda"): the whole stack on the GPU, checked under the CUDA simulator.

The simulator must be switched on before numba.cuda is imported, so the checks run in their own
process (cuda_rnn_sim_check.py next to this file, about 20 s); each test reads its case from that run.
"""
import numpy as np
import pytest

import rnngen
from helpers import simulator_rows

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.slow     # the module fixture takes minutes

STACK = "2 layers bidirectional lengths"


@pytest.fixture(scope="module")
def results():
    return simulator_rows("runtime/cuda_rnn_sim_check.py", ("cell", "case"))


def _check(row, tol=1e-5):
    assert "error" not in row, row["error"]
    assert row["device_outputs"], "outputs, final states, dx, d_state0 and grads must be device arrays"
    bad = {k: v for k, v in row["errors"].items() if not v <= tol}
    assert not bad, f"{row['cell']} {row['case']}: the CUDA RNN differs from the CPU RNN: {bad}"
    assert all(s > 0 for s in row["scale"].values()), f"a reference output is all zero: {row['scale']}"


@pytest.mark.parametrize("cell", ["lstm", "gru_classic"])
def test_deep_bidirectional_stack_with_lengths_matches_cpu(results, cell):
    """Outputs, final states, dx, d_state0 and every parameter's gradient, float32, 1e-5; with
    device inputs, forward + backward copy nothing back to the host."""
    row = results[cell, STACK]
    _check(row)
    n_grads = sum(1 for k in row["errors"] if k.startswith("d_") and not k.startswith("d_state0"))
    assert n_grads == 2 * 2 * len(rnngen.load(cell).PARAMS)
    assert row["host_copies"] == 0, "the stack copied device data back to the host"


@pytest.mark.parametrize("cell, case", [("lstm_zoneout", "rates"), ("lstm_vd", "rates"), ("lstm_weightdrop", "rates"),
                                        ("slstm", "heads")])
def test_masks_and_heads_match_cpu_with_the_same_seed(results, cell, case):
    """The cell's random masks (training mode, rate 0.5) drawn from the same seed on both devices,
    forward and backward; slstm with 2 heads: the same on the GPU as on the CPU."""
    _check(results[cell, case])


def test_dropout_matches_cpu_with_the_same_seed(results):
    row = results["lstm", "dropout batch_first host inputs"]
    _check(row)
    first, last = row["masks"]
    assert last is None                      # no dropout after the last layer
    is_device, dropped = first
    assert is_device and 0 < dropped < 1, row["masks"]


def test_step_state_dict_to_and_errors(results):
    row = results["gru_classic", "step state_dict to errors"]
    _check(row, tol=1e-6)
    checks = row["checks"]
    bad = {k: v for k, v in checks["errors_raised"].items() if v is not True}
    assert not bad, f"wrong or missing ValueError: {bad}"
    for key in ("params_on_device", "state_dict_host", "to_cpu_numpy", "to_cuda_device", "step_lengths_cached"):
        assert checks[key], key


def test_the_gpu_checks_rnn_case_runs(results):
    _check(results["benchmarks/gpu_correct.py", "rnn_case"])


# -- in this process (no simulator) ------------------------------------------------------------
class _FakeDeviceArray:
    """Looks like a GPU array to rnngen (has __cuda_array_interface__)."""
    shape = (3, 2, 2)
    __cuda_array_interface__ = {"shape": (3, 2, 2), "typestr": "<f4", "data": (0, False), "version": 3}


def test_a_cpu_network_refuses_device_arrays():
    net = rnngen.RNN("rnn_tanh", 2, 3)
    with pytest.raises(ValueError, match="device.*to\\('cuda'\\)"):
        net.forward(_FakeDeviceArray())
    x = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="lengths is a device"):
        net.forward(x, lengths=_FakeDeviceArray())


def test_device_cuda_without_a_gpu_says_what_is_missing():
    from numba import cuda
    if cuda.is_available():
        pytest.skip("a GPU (or the simulator) is available here")
    with pytest.raises(RuntimeError, match="device='cuda' needs an NVIDIA GPU"):
        rnngen.RNN("lstm", 3, 4, device="cuda")
    with pytest.raises(RuntimeError, match="NVIDIA GPU"):
        rnngen.RNN("lstm", 3, 4).to("cuda")


def test_bad_device_names():
    for device in ("gpu", "cuda:1", 3, None):
        with pytest.raises(ValueError, match="device must be"):
            rnngen.RNN("lstm", 3, 4, device=device)
