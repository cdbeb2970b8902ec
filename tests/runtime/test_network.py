"""RNN (deep, bidirectional, variable lengths) against torch.nn.LSTM / GRU / RNN, and its API."""
import numpy as np
import pytest

import rnngen
from rnngen.network import RNN, last_valid, last_valid_backward

try:
    import torch
except ImportError:  # only the parity tests need torch
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install '.[test]')")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    from rnngen.blas import limit_threads
    limit_threads(1)  # tiny per-step GEMMs: OpenBLAS threads only spin against each other


TORCH = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN"}


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


@needs_torch
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_parity_with_torch_deep_bidirectional_unsorted_lengths(cell):
    T, B, I, H, L = 6, 4, 3, 5, 3
    torch.manual_seed(0)
    tnet = getattr(torch.nn, TORCH[cell])(I, H, num_layers=L, bidirectional=True, dtype=torch.float64)
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


def _fd_network_check(net, x, lengths, rng, n_entries=4, eps=1e-6):
    """dL/dparam, dL/dx and dL/dstate0 of L = sum(y*G) + sum(final*Gf) against central differences."""
    G = rng.standard_normal((x.shape[0], x.shape[1], net.output_size))
    L = net.num_layers * net.num_directions
    Gf = tuple(rng.standard_normal((L, x.shape[1], net.hidden_size)) for _ in net.states)
    s0 = tuple(0.5 * rng.standard_normal((L, x.shape[1], net.hidden_size)) for _ in net.states)

    def loss():
        y, fin = net.forward(x, s0, lengths)
        return float((y * G).sum() + sum((f * g).sum() for f, g in zip(fin, Gf)))

    loss()
    dx, ds0 = net.backward(G, Gf)
    grads = {n: g.copy() for n, g in net.grads.items()}
    targets = [(net.params[n], grads[n]) for n in net.params] + [(x, dx)] + list(zip(s0, ds0))
    for arr, grad in targets:
        for flat in rng.choice(arr.size, min(n_entries, arr.size), replace=False):
            idx = np.unravel_index(flat, arr.shape)
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-6 * max(1.0, abs(grad[idx]))


@pytest.mark.parametrize("cell", rnngen.available())
def test_every_builtin_cell_stacks_bidirectionally_with_correct_gradients(cell):
    net = RNN(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 3))
    _fd_network_check(net, x, np.array([5, 2, 4]), rng, n_entries=2)


def test_dropout_between_layers_is_training_only_seeded_and_differentiated():
    net = RNN("gru", 3, 4, num_layers=3, dropout=0.4, dtype=np.float64, seed=1)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y1, _ = net.forward(x)
    y2, _ = net.forward(x)
    assert not np.allclose(y1, y2)  # a fresh mask each forward in training mode
    net.eval()
    e1, _ = net.forward(x)
    e2, _ = net.forward(x)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(e1, y1)
    assert np.array_equal(RNN("gru", 3, 4, num_layers=3, dropout=0.4, dtype=np.float64, seed=1).forward(x)[0], y1)
    # gradients through fixed masks: replay the same dropout stream for every forward
    net.train()
    state = net.dropout_rng.bit_generator.state
    forward = net.forward

    def replayed(*args, **kw):
        net.dropout_rng.bit_generator.state = state
        return forward(*args, **kw)

    net.forward = replayed
    _fd_network_check(net, x, None, np.random.default_rng(5), n_entries=2)


def test_batch_first_matches_time_major():
    a = RNN("lstm", 3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    b = RNN("lstm", 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, batch_first=True)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    lengths = [3, 6]
    ya, fa = a.forward(x, lengths=lengths)
    yb, fb = b.forward(x.transpose(1, 0, 2), lengths=lengths)
    np.testing.assert_allclose(yb, ya.transpose(1, 0, 2), atol=1e-14)
    for u, v in zip(fa, fb):
        np.testing.assert_allclose(u, v, atol=1e-14)
    dy = np.random.default_rng(1).standard_normal(ya.shape)
    dxa, _ = a.backward(dy)
    dxb, _ = b.backward(dy.transpose(1, 0, 2))
    np.testing.assert_allclose(dxb, dxa.transpose(1, 0, 2), atol=1e-12)


def test_step_matches_forward_and_many_to_one():
    net = RNN("lstm", 3, 4, num_layers=2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, fin = net.forward(x)
    state = None
    for t in range(5):
        yt, state = net.step(x[t], state)
        np.testing.assert_allclose(yt, y[t], atol=1e-13)
    for a, b in zip(state, fin):
        np.testing.assert_allclose(a, b, atol=1e-13)
    # many-to-one: the last valid output is the top layer's final h
    lengths = np.array([2, 5])
    y, (h_n, _) = net.forward(x, lengths=lengths)
    last = last_valid(y, lengths)
    np.testing.assert_allclose(last, h_n[-1], atol=1e-14)
    d_last = np.ones_like(last)
    dy = last_valid_backward(d_last, lengths, 5)
    assert dy.shape == y.shape and dy.sum() == d_last.sum() and dy[1, 0].sum() == 4 and dy[4, 1].sum() == 4


@needs_torch
def test_single_state_cells_take_a_plain_array_and_torch_tensors():
    net = RNN("gru", 3, 4, num_layers=2, dtype=np.float64)
    h0 = np.random.default_rng(0).standard_normal((2, 2, 4))
    x = np.random.default_rng(1).standard_normal((3, 2, 3))
    y1, (h1,) = net.forward(x, h0)
    y2, (h2,) = net.forward(torch.tensor(x), (torch.tensor(h0),))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2)


def test_a_user_built_module_works(tmp_path):
    module = rnngen.load("indrnn")
    net = RNN(module, 2, 3, num_layers=2, bidirectional=True)
    y, (h,) = net.forward(np.ones((4, 1, 2), np.float32))
    assert y.shape == (4, 1, 6) and y.dtype == np.float32 and h.shape == (4, 1, 3)
    assert sorted(net.state_dict()) == sorted(f"{p}_l{k}{s}" for p in module.PARAMS for k in (0, 1)
                                              for s in ("", "_reverse"))


@pytest.mark.parametrize("call, arg", [
    (lambda: RNN("lstm", 3, 0), "hidden_size"),
    (lambda: RNN("lstm", 0, 3), "input_size"),
    (lambda: RNN("lstm", 3, 3, num_layers=0), "num_layers"),
    (lambda: RNN("lstm", 3, 3, dropout=1.5), "dropout"),
    (lambda: RNN("lstm", 3, 3, bidirectional="yes"), "bidirectional"),
    (lambda: RNN("lstm", 3, 3, dtype=np.int32), "dtype"),
    (lambda: RNN("nope", 3, 3), "cell"),
    (lambda: RNN("lstm", 3, 3, seed=-1), "seed"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 3), np.float32)), "x"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 1, 5), np.float32)), "x"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 1, 3), np.float64)), "x"),
    (lambda: RNN("lstm", 3, 4).forward(np.full((2, 1, 3), np.nan, np.float32)), "x"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 2, 3), np.float32), lengths=[1, 3]), "lengths"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 2, 3), np.float32), lengths=[1]), "lengths"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 2, 3), np.float32), lengths=[1.5, 2]), "lengths"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 2, 3), np.float32),
                                       (np.zeros((1, 2, 4), np.float32),)), "state0"),
    (lambda: RNN("lstm", 3, 4).forward(np.zeros((2, 2, 3), np.float32),
                                       (np.zeros((2, 2, 4), np.float32),) * 2), "state0"),
    (lambda: RNN("lstm", 3, 4).backward(np.zeros((2, 1, 4), np.float32)), "forward"),
    (lambda: RNN("lstm", 3, 4, bidirectional=True).step(np.zeros((1, 3), np.float32)), "bidirectional"),
    (lambda: RNN("lstm", 3, 4).step(np.zeros((1, 2), np.float32)), "x_t"),
    (lambda: RNN("lstm", 3, 4).load_state_dict({"weight_ih_l0": np.zeros((16, 3))}), "missing"),
    (lambda: RNN("gru", 3, 4).load_state_dict(RNN("gru", 3, 5).state_dict()), "weight_ih_l0"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_backward_checks_dy_shape():
    net = RNN("lstm", 3, 4, bidirectional=True)
    net.forward(np.zeros((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match="dy"):
        net.backward(np.zeros((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match="d_final"):
        net.backward(np.zeros((2, 1, 8), np.float32), (np.zeros((1, 1, 4), np.float32), None))


@pytest.mark.parametrize("cell", rnngen.available())
def test_the_no_in_place_change_contract_is_documented(cell):
    """forward keeps references to x and the parameters; the numpy API cannot cheaply detect an
    in-place change before backward, so the generated modules and RNN say so."""
    from rnngen.runtime import device

    def text(f):
        return " ".join(f.__doc__.split())
    m = rnngen.load(cell)
    gpu = device.cuda_module(m.__name__, m.__file__, m.NAME)
    for module in (m, gpu):
        assert "not copies: do not modify them in place before backward(saved)" in text(module.forward)
        assert "by reference: they must be unchanged since forward()" in text(module.backward)
    assert "x and the parameters must not be modified in place" in text(RNN)
    assert "which must not be modified in place before backward()" in text(RNN.forward)
    assert "modify neither in place in between" in text(RNN.backward)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_calls_without_lengths_share_one_full_lengths_array_that_nothing_changes(bidirectional):
    """lengths=None is one checked array of T per (B, T), made once (runtime/ops.full_lengths):
    calls with other lengths in between, reverse directions and backward leave it all T, and
    every call without lengths gives what lengths=[T]*B gives."""
    from rnngen.runtime.ops import full_lengths
    net = RNN("gru", 3, 4, bidirectional=bidirectional, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 3))
    dy = rng.standard_normal((5, 3, net.output_size))
    y_full, _ = net.forward(x, lengths=[5, 5, 5])
    dx_full, _ = net.backward(dy)
    for lengths in (None, [2, 5, 0], None, [1, 1, 1], None):
        y, _ = net.forward(x, lengths=lengths)
        dx, _ = net.backward(dy)
        if lengths is None:
            np.testing.assert_array_equal(y, y_full)
            np.testing.assert_array_equal(dx, dx_full)
        np.testing.assert_array_equal(full_lengths(3, 5).host, [5, 5, 5])
    assert net._ops.lengths(None, 3, 5) is full_lengths(3, 5)
    if not bidirectional:       # step() runs with the full lengths of one step
        np.testing.assert_array_equal(net.step(x[0])[0], net.forward(x[:1], lengths=[1, 1, 1])[0][0])
    np.testing.assert_array_equal(full_lengths(3, 1).host, [1, 1, 1])
