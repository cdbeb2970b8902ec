"""The bridge on the CPU: the inference forward under torch.no_grad(), and the batch-sliced
schedule (rnngen/runtime/schedule.py) inside autograd."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnngen  # noqa: E402
import rnngen.torch as rt  # noqa: E402
from rnngen.runtime import schedule  # noqa: E402


@pytest.fixture
def default_threads():
    yield
    rnngen.set_num_threads(None)


def test_no_grad_forward_equals_grad_forward_and_keeps_no_graph():
    torch.manual_seed(0)
    rnn = rt.RNN("lstm", 3, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    y1, (h1, c1) = rnn(x)
    assert y1.grad_fn is not None
    with torch.no_grad():
        y2, (h2, c2) = rnn(x)
    assert y2.grad_fn is None and not y2.requires_grad
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        assert torch.equal(a.detach(), b)


def test_no_grad_path_calls_the_inference_forward(monkeypatch):
    calls = []
    real = schedule.cell_forward

    def spy(gen, need_grad=True):
        calls.append(need_grad)
        return real(gen, need_grad)
    monkeypatch.setattr(schedule, "cell_forward", spy)
    rnn = rt.RNN("gru", 2, 3)
    x = torch.randn(5, 2, 2)
    with torch.no_grad():
        rnn(x)
    assert calls == [False]
    rnn(x)
    assert calls == [False, True]


@pytest.mark.parametrize("cell", ["lstm", "gru_classic"])
def test_sliced_cells_inside_autograd_match_serial(cell, default_threads):
    """A batch big enough to split: gradients through the bridge with 2 threads equal the serial
    ones (float64)."""
    torch.manual_seed(1)
    rnn = rt.RNN(cell, 4, 40, dtype=torch.float64)
    x = torch.randn(30, 40, 4, dtype=torch.float64)       # T*B*H = 48000: split at 2 threads
    assert schedule.plan(30, 40, 40, 1, threads=2).slices == 2
    out = {}
    for n in (1, 2):
        rnngen.set_num_threads(n)
        rnn.zero_grad()
        xr = x.clone().requires_grad_(True)
        y, _ = rnn(xr)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        out[n] = [y.detach(), xr.grad] + [p.grad.clone() for p in rnn.parameters()]
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cell,rates", [("lstm", None), ("lstm_vd", {"dropout_h": 0.25})])
@pytest.mark.parametrize("no_grad", [False, True])
def test_the_bridges_slices_share_one_packed_weight(cell, rates, no_grad, default_threads, monkeypatch):
    """Two batch slices through the bridge (a masked cell's through its WithMasks too): forward and
    backward each pack weight_hh (2 MB, past host_gemm.MIN_SHARED_BYTES) once for both slices, as
    rnngen.RNN does, and give the serial run's results."""
    from rnngen.backends.cpu import host_gemm
    torch.manual_seed(2)
    rnn = rt.RNN(cell, 8, 256, dtype=torch.float64, rates=rates, seed=3)
    x = torch.randn(5, 16, 8, dtype=torch.float64)
    shapes = []
    real = host_gemm.packed
    monkeypatch.setattr(host_gemm, "packed", lambda w: shapes.append(w.shape) or real(w))
    out = {}
    for n in (1, 2):
        rnngen.set_num_threads(n)
        if n == 2:
            monkeypatch.setattr(schedule, "plan", lambda *a, **k: schedule.Plan(False, 2, one_blas_thread=True))
        shapes.clear()
        rnn.zero_grad()
        rnn.mask_rng = np.random.default_rng(7)        # the same masks in both runs
        xr = x.clone().requires_grad_(not no_grad)
        with torch.no_grad() if no_grad else torch.enable_grad():
            y, _ = rnn(xr)
        if not no_grad:
            (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
            out[n] = [y.detach(), xr.grad] + [p.grad.clone() for p in rnn.parameters()]
        else:
            out[n] = [y]
        # weight_hh.T packed by forward, weight_hh by backward: once each, serial or in two slices
        assert (shapes.count((256, 1024)), shapes.count((1024, 256))) == ((1, 0) if no_grad else (1, 1))
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-13)
