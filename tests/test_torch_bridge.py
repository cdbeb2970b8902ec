"""rnngen.torch: gradcheck through the bridge, parity with torch.nn, state dicts, errors."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnngen  # noqa: E402
import rnngen.torch as rt  # noqa: E402
from torch.func import functional_call  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_sequence  # noqa: E402

BUILTIN = rnngen.available()


def _tuple(h):
    return h if isinstance(h, tuple) else (h,)


@pytest.mark.parametrize("cell", BUILTIN)
def test_gradcheck_packed(cell):
    """float64 gradcheck of (output, final states) w.r.t. input, initial states and every parameter,
    2 layers, bidirectional, variable-length packed sequences in unsorted order."""
    torch.manual_seed(0)
    I, H = 2, 2
    rnn = rt.RNN(cell, I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    if cell == "rnn_relu" or cell == "indrnn":
        with torch.no_grad():   # keep pre-activations away from relu's kink
            for name, p in rnn.named_parameters():
                if name.startswith("bias"):
                    p.add_(0.7)
    packed = pack_sequence([torch.randn(n, I, dtype=torch.float64) for n in (2, 4, 3)],
                           enforce_sorted=False)
    n_states = len(rnn.states)
    names = [n for n, _ in rnn.named_parameters()]
    h0 = [0.5 * torch.randn(4, 3, H, dtype=torch.float64) for _ in range(n_states)]

    def f(data, *rest):
        hx = rest[:n_states]
        params = dict(zip(names, rest[n_states:]))
        seq = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        y, h_n = functional_call(rnn, params, (seq, hx if n_states > 1 else hx[0]))
        assert isinstance(y, PackedSequence) and torch.equal(y.batch_sizes, packed.batch_sizes)
        return (y.data,) + _tuple(h_n)

    inputs = [packed.data] + h0 + [p.detach().clone() for p in rnn.parameters()]
    inputs = [t.requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def _pair(kind, I, H, L, dtype, **kw):
    torch.manual_seed(1)
    ref = getattr(torch.nn, kind)(I, H, num_layers=L, bidirectional=True, **kw).to(dtype)
    return ref, rt.from_torch(ref)


def _grads(module, loss):
    return dict(zip([n for n, _ in module.named_parameters()],
                    torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)))


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("GRU", {}), ("RNN", {}),
                                     ("RNN", {"nonlinearity": "relu"})])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_parity_with_torch_nn(kind, kw, dtype):
    """Stacked bidirectional: outputs, final states and gradients (params, input, hx) as torch.nn,
    padded batch-first input with initial states, and packed input."""
    I, H, L, B, T = 3, 5, 3, 4, 6
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == torch.float64 else dict(atol=2e-5, rtol=1e-4)
    ref, ours = _pair(kind, I, H, L, dtype, batch_first=True, **kw)
    assert set(ours.state_dict()) == set(ref.state_dict())
    n_states = 2 if kind == "LSTM" else 1
    x = torch.randn(B, T, I, dtype=dtype, requires_grad=True)
    hx = tuple(torch.randn(L * 2, B, H, dtype=dtype, requires_grad=True) for _ in range(n_states))
    results = []
    for m in (ref, ours):
        y, h_n = m(x, hx if n_states > 1 else hx[0])
        assert y.shape == (B, T, 2 * H)
        loss = (y * torch.linspace(-1, 1, 2 * H, dtype=dtype)).pow(2).sum() + \
            sum((h * h).sum() * 0.3 for h in _tuple(h_n))
        g_in = torch.autograd.grad(loss, [x, *hx], retain_graph=True)
        results.append((y, _tuple(h_n), _grads(m, loss), g_in))
    (y1, h1, g1, i1), (y2, h2, g2, i2) = results
    torch.testing.assert_close(y2, y1, **tol)
    for a, b in zip(h2, h1):
        torch.testing.assert_close(a, b, **tol)
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], **tol, msg=name)
    for a, b in zip(i2, i1):
        torch.testing.assert_close(a, b, **tol)

    # packed, unsorted lengths, no initial state
    ref.batch_first = ours.batch_first = False
    seqs = [torch.randn(n, I, dtype=dtype) for n in (4, 6, 1, 4)]
    results = []
    for m in (ref, ours):
        packed = pack_sequence(seqs, enforce_sorted=False)
        y, h_n = m(packed)
        loss = y.data.pow(2).sum() + sum(h.sum() for h in _tuple(h_n))
        results.append((y, _tuple(h_n), _grads(m, loss)))
    (y1, h1, g1), (y2, h2, g2) = results
    assert torch.equal(y2.batch_sizes, y1.batch_sizes)
    assert torch.equal(y2.unsorted_indices, y1.unsorted_indices)
    torch.testing.assert_close(y2.data, y1.data, **tol)
    for a, b in zip(h2, h1):
        torch.testing.assert_close(a, b, **tol)
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], **tol, msg=name)


def test_load_state_dict_unchanged_and_unbatched():
    ref = torch.nn.GRU(3, 4, num_layers=2)
    ours = rt.RNN("gru", 3, 4, num_layers=2)
    ours.load_state_dict(ref.state_dict())       # strict: same names and shapes
    ours.flatten_parameters()                     # accepted, as on torch.nn modules
    x = torch.randn(5, 3)                         # unbatched (T, I), as torch.nn accepts
    y1, h1 = ref(x)
    y2, h2 = ours(x)
    assert y2.shape == (5, 4) and h2.shape == (2, 4)
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(h2, h1)


def test_tensors_cross_as_views():
    """The kernel's output arrays come back without a copy; the parameters go in without one."""
    rnn = rt.RNN("rnn_tanh", 2, 3)
    x = torch.randn(4, 2, 2)
    seen = {}
    gen = rnn.gen
    real_forward = gen.forward

    class Spy:
        def __getattr__(self, name):
            return getattr(gen, name)

        def forward(self, x_np, params, state0, lengths, reverse):
            seen["x"] = x_np
            seen["w"] = params["weight_hh"]
            out = real_forward(x_np, params, state0, lengths, reverse)
            seen["y"] = out[0]
            return out

    rnn.gen = Spy()
    y, _ = rnn(x)
    assert np.shares_memory(seen["x"], x.numpy())
    assert np.shares_memory(seen["w"], rnn.weight_hh_l0.detach().numpy())
    assert np.shares_memory(seen["y"], y.detach().numpy())


def test_errors():
    rnn = rt.RNN("lstm", 3, 4)
    with pytest.raises(ValueError, match="dtype"):
        rnn(torch.randn(2, 1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="input_size"):
        rnn(torch.randn(2, 1, 2))
    with pytest.raises(ValueError, match="tuple of 2"):
        rnn(torch.randn(2, 1, 3), torch.zeros(1, 1, 4))
    with pytest.raises(RuntimeError, match="must be on one device.*cpu, meta|on one device.*meta, cpu"):
        rnn(torch.randn(2, 1, 3, device="meta"))
    with pytest.raises(RuntimeError, match="only CPU and CUDA tensors"):
        rt.RNN("lstm", 3, 4, device="meta")(torch.randn(2, 1, 3, device="meta"))
    with pytest.raises(ValueError, match="no built-in cell"):
        rt.RNN("nope", 3, 4)
    with pytest.raises(ValueError, match="bias=False"):
        rt.from_torch(torch.nn.GRU(3, 4, bias=False))
    # an optimizer step between forward and backward is caught, as in torch.nn
    y, _ = rnn(torch.randn(2, 1, 3))
    with torch.no_grad():
        rnn.weight_hh_l0.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_dropout_between_layers_and_module_cell():
    gen = rnngen.load("mingru")
    rnn = rt.RNN(gen, 3, 4, num_layers=3, dropout=0.5)
    x = torch.randn(5, 2, 3)
    torch.manual_seed(0)
    y1, _ = rnn(x)
    torch.manual_seed(1)
    y2, _ = rnn(x)
    assert not torch.equal(y1, y2)           # training: dropout between layers
    rnn.eval()
    assert torch.equal(rnn(x)[0], rnn(x)[0])
    y1.sum().backward()
    assert all(p.grad is not None for p in rnn.parameters())


def test_import_rnngen_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import rnngen, numpy as np\n"
            "m = rnngen.load('rnn_tanh')\n"
            "assert 'rnngen.torch' not in sys.modules\n"
            "try:\n    import rnngen.torch\nexcept ImportError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_pickle_and_deepcopy(tmp_path):
    import copy
    rnn = rt.RNN("gru_classic", 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    for clone in (copy.deepcopy(rnn), _roundtrip(rnn, tmp_path / "rnn.pt")):
        assert clone.gen is rnn.gen
        torch.testing.assert_close(clone(x)[0], rnn(x)[0], rtol=0, atol=0)


def _roundtrip(module, path):
    torch.save(module, path)
    return torch.load(path, weights_only=False)
