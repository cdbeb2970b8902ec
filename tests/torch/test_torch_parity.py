"""Parity with torch.nn.RNN / GRU / LSTM, loading torch's weights by name: outputs, final states,
dx, d_state0 and every parameter gradient, with unsorted lengths, forward and reverse."""
import numpy as np
import pytest

import rnngen

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

TORCH = {"lstm": lambda I, H: torch.nn.LSTM(I, H, bidirectional=True),
         "gru": lambda I, H: torch.nn.GRU(I, H, bidirectional=True),
         "rnn_tanh": lambda I, H: torch.nn.RNN(I, H, nonlinearity="tanh", bidirectional=True),
         "rnn_relu": lambda I, H: torch.nn.RNN(I, H, nonlinearity="relu", bidirectional=True)}


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(TORCH))
def test_matches_torch(name, reverse, dtype, tol):
    m = rnngen.load(name)
    T, B, I, H = 6, 4, 3, 5
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    net = TORCH[name](I, H).to(tdtype)
    suffix = "_l0_reverse" if reverse else "_l0"
    params = {k: getattr(net, k + suffix).detach().numpy().copy() for k in m.PARAMS}
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = np.array([4, 6, 1, 3])          # unsorted
    state0 = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in m.STATES)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    d_final = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in m.STATES)

    # torch: a bidirectional module; our direction is its forward or reverse half
    d = 1 if reverse else 0
    xt = torch.tensor(x, requires_grad=True)
    s0 = [torch.zeros(2, B, H, dtype=tdtype) for _ in m.STATES]
    for k in range(len(m.STATES)):
        s0[k][d] = torch.tensor(state0[k])
        s0[k].requires_grad_(True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, hn = net(packed, tuple(s0) if len(s0) == 2 else s0[0])
    out, _ = pad_packed_sequence(out, total_length=T)
    hn = hn if isinstance(hn, tuple) else (hn,)
    ty = out[..., d * H:(d + 1) * H]
    loss = (ty * torch.tensor(dy)).sum() + sum((h[d] * torch.tensor(g)).sum() for h, g in zip(hn, d_final))
    loss.backward()

    y, final, saved = m.forward(x, params, state0, lengths, reverse)
    dx, d_state0, d_params = m.backward(dy, d_final, saved)
    scale = lambda a: tol * max(1.0, float(np.abs(a).max()))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=tol, rtol=0)
    for k in range(len(m.STATES)):
        np.testing.assert_allclose(final[k], hn[k][d].detach().numpy(), atol=tol, rtol=0)
        g = s0[k].grad[d].numpy()
        np.testing.assert_allclose(d_state0[k], g, atol=scale(g), rtol=0)
    g = xt.grad.numpy()
    np.testing.assert_allclose(dx, g, atol=scale(g), rtol=0)
    for k in m.PARAMS:
        g = getattr(net, k + suffix).grad.numpy()
        np.testing.assert_allclose(d_params[k], g, atol=scale(g), rtol=0, err_msg=k)
