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
