"""lstm_proj is torch.nn.LSTM(proj_size=P): parity in float64 to 1e-10 (outputs, h_n of size P,
c_n of size H, dx, d_state0, every parameter gradient) with 2 layers, bidirectional, packed
sequences; state dicts load by torch's names; from_torch accepts such modules; the bridge's
gradcheck; layernorm_lstm and lstm_proj through the bridge's packed gradcheck."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnngen  # noqa: E402
import rnngen.torch as rt  # noqa: E402
from torch.func import functional_call  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence  # noqa: E402

TOL = 1e-10


def _torch_lstm(I=3, H=5, P=2, L=2):
    torch.manual_seed(0)
    return torch.nn.LSTM(I, H, num_layers=L, bidirectional=True, proj_size=P).double()


def test_the_spec_has_torchs_names_and_shapes():
    m = rnngen.load("lstm_proj")
    assert m.STATES == ("h", "c") and m.SIZES == ("proj_size",)
    assert m.STATE_SIZES == {"h": "proj_size", "c": "H"}
    ref = _torch_lstm(L=1)
    p = m.init_params(3, 5, np.float64, proj_size=2)
    assert {k: v.shape for k, v in p.items()} == {k[:-3]: tuple(v.shape) for k, v in ref.state_dict().items()
                                                   if k.endswith("_l0")}
    assert m.sizes_of(p) == {"proj_size": 2}


def test_rnn_matches_torch_with_two_layers_bidirectional_and_lengths():
    I, H, P, T, B = 3, 5, 2, 6, 4
    ref = _torch_lstm(I, H, P)
    net = rnngen.RNN("lstm_proj", I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=np.float64)
    net.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([4, 6, 1, 3])                 # unsorted
    h0, c0 = rng.standard_normal((4, B, P)), rng.standard_normal((4, B, H))
    y, (h, c) = net.forward(x, (h0, c0), lengths)
    assert y.shape == (T, B, 2 * P) and h.shape == (4, B, P) and c.shape == (4, B, H)

    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    out, (ht, ct) = ref(pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False), (h0t, c0t))
    yt, _ = pad_packed_sequence(out, total_length=T)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(h, ht.detach().numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(c, ct.detach().numpy(), atol=TOL, rtol=0)

    dy, dh, dc = rng.standard_normal(y.shape), rng.standard_normal(h.shape), rng.standard_normal(c.shape)
    dx, (dh0, dc0) = net.backward(dy, (dh, dc))
    loss = (yt * torch.tensor(dy)).sum() + (ht * torch.tensor(dh)).sum() + (ct * torch.tensor(dc)).sum()
    loss.backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(dh0, h0t.grad.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(dc0, c0t.grad.numpy(), atol=TOL, rtol=0)
    assert set(net.grads) == {n for n, _ in ref.named_parameters()}
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(net.grads[name], p.grad.numpy(), atol=TOL, rtol=0, err_msg=name)


def test_from_torch_accepts_proj_size_and_matches_on_packed_input():
    ref = _torch_lstm()
    mine = rt.from_torch(ref)
    assert mine.cell == "lstm_proj" and mine.proj_size == 2 and mine.sizes == {"proj_size": 2}
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (2, 5, 3)]
    outs = []
    for module in (ref, mine):
        data = [s.clone().requires_grad_() for s in seqs]
        y, (h, c) = module(pack_sequence(data, enforce_sorted=False))
        loss = (y.data ** 2).sum() + h.sum() + (c * c).sum()
        grads = torch.autograd.grad(loss, data + list(module.parameters()))
        outs.append((y.data, h, c, grads))
    (y1, h1, c1, g1), (y2, h2, c2, g2) = outs
    assert h2.shape == (4, 3, 2) and c2.shape == (4, 3, 5)
    for a, b in [(y1, y2), (h1, h2), (c1, c2), *zip(g1, g2)]:
        assert torch.allclose(a, b, atol=TOL, rtol=0)


@pytest.mark.parametrize("cell, sizes", [("lstm_proj", {"proj_size": 2}), ("layernorm_lstm", {})])
def test_gradcheck_packed(cell, sizes):
    torch.manual_seed(0)
    I, H = 2, 3
    rnn = rt.RNN(cell, I, H, num_layers=2, bidirectional=True, dtype=torch.float64, **sizes)
    packed = pack_sequence([torch.randn(n, I, dtype=torch.float64) for n in (2, 4, 3)], enforce_sorted=False)
    names = [n for n, _ in rnn.named_parameters()]
    h0 = [0.5 * torch.randn(4, 3, z, dtype=torch.float64) for z in rnn.state_sizes]

    def f(data, h, c, *params):
        seq = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        y, (hn, cn) = functional_call(rnn, dict(zip(names, params)), (seq, (h, c)))
        return y.data, hn, cn

    inputs = [packed.data] + h0 + [p.detach().clone() + 0.1 * torch.randn_like(p) for p in rnn.parameters()]
    inputs = [t.requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_bridge_initial_values_and_size_errors():
    rnn = rt.RNN("layernorm_lstm", 3, 4)
    assert torch.all(rnn.ln_ih_gain_l0 == 1) and torch.all(rnn.bias_l0 == 0) and torch.all(rnn.ln_c_bias_l0 == 0)
    assert rnn.weight_hh_l0.abs().max() <= 0.5 and rnn.weight_hh_l0.std() > 0
    with pytest.raises(ValueError, match="unknown keyword proj_size="):
        rt.RNN("lstm", 3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size must be a positive integer"):
        rt.RNN("lstm_proj", 3, 4, proj_size=0)
    with pytest.raises(ValueError, match=r"initial state 'h' must have shape \(1, 2, 3\)"):
        rt.RNN("lstm_proj", 3, 4, proj_size=3)(torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    assert "proj_size=3" in repr(rt.RNN("lstm_proj", 3, 4, proj_size=3))
