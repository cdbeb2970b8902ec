"""RNN (deep, bidirectional, variable lengths) against torch.nn.LSTM / GRU / RNN, and its API."""
import numpy as np
import pytest

import rnngen
from rnngen.network import RNN, last_valid, last_valid_backward

torch = pytest.importorskip("torch")

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}


def _torch_run(cell, net, x, lengths, state0, dy, d_final):
    """torch forward over a packed batch (unsorted lengths) and backward of sum(y*dy) + sum(s*ds)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    T = x.shape[0]
    xt = torch.tensor(x, requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in state0]
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, fin = net(packed, tuple(s0) if cell == "lstm" else s0[0])
    y, _ = pad_packed_sequence(out, total_length=T)
    fin = fin if cell == "lstm" else (fin,)
    loss = (y * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(fin, d_final))
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in net.named_parameters()}
    return (y.detach().numpy(), [f.detach().numpy() for f in fin], xt.grad.numpy(),
            [s.grad.numpy() for s in s0], grads)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_parity_with_torch_deep_bidirectional_unsorted_lengths(cell):
    T, B, I, H, L = 6, 4, 3, 5, 3
    torch.manual_seed(0)
    tnet = TORCH[cell](I, H, num_layers=L, bidirectional=True, dtype=torch.float64)
    net = RNN(cell, I, H, num_layers=L, bidirectional=True, dtype=np.float64)
    net.load_state_dict({n: p.detach() for n, p in tnet.state_dict().items()})
    rng = np.random.default_rng(1)
    lengths = np.array([4, 6, 1, 3])
    x = rng.standard_normal((T, B, I))
    state0 = tuple(rng.standard_normal((2 * L, B, H)) for _ in net.states)
    dy = rng.standard_normal((T, B, 2 * H))
    d_final = tuple(rng.standard_normal((2 * L, B, H)) for _ in net.states)
    ty, tfin, tdx, tds0, tgrads = _torch_run(cell, tnet, x, lengths, state0, dy, d_final)

    y, fin = net.forward(x, state0, lengths)
    dx, ds0 = net.backward(dy, d_final)
    np.testing.assert_allclose(y, ty, rtol=0, atol=1e-9)
    for a, b in zip(fin, tfin):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    # torch's x.grad past each length is zero, as ours is
    np.testing.assert_allclose(dx, tdx, rtol=0, atol=1e-9)
    for a, b in zip(ds0, tds0):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert set(net.grads) == set(tgrads)
    for name, g in tgrads.items():
        np.testing.assert_allclose(net.grads[name], g, rtol=0, atol=1e-9, err_msg=name)
