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
    # layer norm over H = 2 values is ill-conditioned (derivatives ~70 here): central differences
    # then err by ~eps^2 * 1e8 > atol; with 3 units they are accurate
    I, H = 2, (3 if cell == "layernorm_lstm" else 2)
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
    with pytest.raises(ValueError, match="no built-in cell 'nope'"):
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


# -- second-order gradients are refused, first-order ones stay exact ----------------------------
def _penalties(m, x, h0):
    """Gradient penalties of four kinds (each differentiates a gradient computed with
    create_graph=True): on the parameters with dy depending on y, with a constant dy (loss y.sum()),
    on the input (WGAN-GP style), on the initial state only."""
    params = list(m.parameters())

    def on_params(loss_of):
        y, _ = m(x, h0)
        g = torch.autograd.grad(loss_of(y), params, create_graph=True)
        return sum(gi.pow(2).sum() for gi in g)

    def on_input():
        y, _ = m(x, h0)
        (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        return gx.norm()

    def on_state():
        y, _ = m(x.detach(), h0)
        with torch.no_grad():
            frozen = [p.requires_grad_(False) for p in params]
        g = torch.autograd.grad(y.sum(), h0 if isinstance(h0, tuple) else [h0], create_graph=True)
        for p in frozen:
            p.requires_grad_(True)
        return sum(gi.pow(2).sum() for gi in g)

    return {"params": lambda: on_params(lambda y: y.pow(2).sum()),
            "params, y.sum()": lambda: on_params(lambda y: y.sum()),
            "input": on_input, "initial state": on_state}


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_double_backward_raises_instead_of_returning_wrong_numbers(kind):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    ours = rt.from_torch(ref)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    shape = (4, 2, 4)
    h0 = tuple(torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(2)) \
        if kind == "LSTM" else torch.randn(shape, dtype=torch.float64, requires_grad=True)
    for what, penalty in _penalties(ours, x, h0).items():
        with pytest.raises(RuntimeError, match="rnngen's kernels are first-order only"):
            penalty().backward()
    for what, penalty in _penalties(ref, x, h0).items():      # the same penalties run on torch.nn
        penalty().backward()
    # first order under create_graph=True: the same values as torch.nn
    for m in (ref, ours):
        m.zero_grad()
    y_ref, _ = ref(x, h0)
    y_ours, _ = ours(x, h0)
    g_ref = torch.autograd.grad(y_ref.pow(2).sum(), list(ref.parameters()), create_graph=True)
    g_ours = torch.autograd.grad(y_ours.pow(2).sum(), list(ours.parameters()), create_graph=True)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_first_order_paths_are_unchanged():
    """backward, autograd.grad without create_graph and gradcheck work as before; gradgradcheck,
    which needs second derivatives, is refused."""
    rnn = rt.RNN("lstm_peephole", 2, 2, dtype=torch.float64)
    x = torch.randn(3, 1, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[0], (x,))
    rnn(x)[0].sum().backward()
    assert all(p.grad is not None for p in rnn.parameters()) and x.grad is not None
    with pytest.raises(RuntimeError, match="first-order only"):
        torch.autograd.gradgradcheck(lambda x: rnn(x)[0], (x,))


# -- dtypes and values the kernels do not run ---------------------------------------------------
DTYPE_MESSAGE = "rnngen's kernels run torch.float32 and torch.float64 only"


@pytest.mark.parametrize("convert, dtype", [
    (lambda m: m.half(), torch.float16), (lambda m: m.bfloat16(), torch.bfloat16),
    (lambda m: m.to(torch.bfloat16), torch.bfloat16), (lambda m: m.to(torch.complex64), torch.complex64),
    (lambda m: m.to(torch.complex128), torch.complex128)])
def test_every_unsupported_parameter_dtype_gives_the_same_message(convert, dtype):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # torch's note on complex modules
        rnn = convert(rt.RNN("gru", 3, 4))
    x = torch.randn(2, 1, 3).to(dtype)
    with pytest.raises(ValueError, match=f"parameter weight_ih_l0 has dtype {dtype}; {DTYPE_MESSAGE}"):
        rnn(x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex64])
def test_every_unsupported_input_or_parameter_dtype_names_it(dtype):
    rnn = rt.RNN("lstm", 3, 4)
    with pytest.raises(ValueError, match=f"input has dtype {dtype}; {DTYPE_MESSAGE}"):
        rnn(torch.zeros(2, 1, 3, dtype=dtype))
    rnn.weight_hh_l0 = torch.nn.Parameter(rnn.weight_hh_l0.detach().to(dtype),   # .to() refuses ints
                                          requires_grad=dtype.is_floating_point or dtype.is_complex)
    with pytest.raises(ValueError, match=f"parameter weight_hh_l0 has dtype {dtype}; {DTYPE_MESSAGE}"):
        rnn(torch.zeros(2, 1, 3))
    gen = rnngen.load("rnn_tanh")                               # CellFunction on its own too
    params = [torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 4), torch.zeros(4)]
    with pytest.raises(ValueError, match=f"input x has dtype {dtype}; {DTYPE_MESSAGE}"):
        rt.CellFunction.apply(gen, None, False, torch.zeros(2, 1, 3, dtype=dtype), None, *params)


def test_mixed_parameter_dtypes_are_refused():
    rnn = rt.RNN("lstm", 3, 4, num_layers=2)
    rnn.bias_hh_l1.data = rnn.bias_hh_l1.data.double()
    with pytest.raises(ValueError, match="parameter bias_hh_l1 has dtype torch.float64, the others torch.float32"):
        rnn(torch.zeros(2, 1, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_in_a_parameter_is_refused_naming_it(bad):
    for cell in ("lstm", "lstm_peephole", "mingru"):
        rnn = rt.RNN(cell, 3, 4, num_layers=2, bidirectional=True)
        name, p = list(rnn.named_parameters())[-1]
        with torch.no_grad():
            p.view(-1)[0] = bad
        with pytest.raises(ValueError, match=f"parameter {name} contains NaN or inf"):
            rnn(torch.zeros(2, 1, 3))


def test_x_and_lengths_errors_name_the_input():
    rnn = rt.RNN("gru", 7, 3)
    with pytest.raises(ValueError, match=r"input has feature size 4 \(shape \(2, 1, 4\)\), but the module "
                                         r"expects input_size=7"):
        rnn(torch.zeros(2, 1, 4))
    gen = rnngen.load("gru")
    params = [torch.zeros(9, 7), torch.zeros(9), torch.zeros(9, 3), torch.zeros(9)]
    with pytest.raises(ValueError, match="x has feature size 4 .* the parameters expect input size 7"):
        rt.CellFunction.apply(gen, None, False, torch.zeros(2, 1, 4), None, *params)
    with pytest.raises(ValueError, match=r"lengths\[0\] = 1e\+300"):
        rt.CellFunction.apply(gen, np.array([1e300]), False, torch.zeros(2, 1, 7), None, *params)


# -- parameters in torch.nn's order ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_named_parameters_are_torch_nns(kind):
    ref = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)
    ours = rt.from_torch(ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    # reset_parameters() draws in the same order as torch.nn: the same seed, the same weights
    torch.manual_seed(3)
    ref = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    ours = rt.RNN(rt._TORCH_MODES[ref.mode], 3, 4, num_layers=2, bidirectional=True)
    for (n, a), (m, b) in zip(ours.named_parameters(), ref.named_parameters()):
        assert n == m and torch.equal(a, b), n


def test_other_parameters_follow_torchs_four_in_spec_order():
    rnn = rt.RNN("lstm_peephole", 3, 4, num_layers=2, bidirectional=True)
    layer = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ci", "weight_cf", "weight_co"]
    assert [n for n, _ in rnn.named_parameters()] == [
        f"{p}_l{k}{s}" for k in (0, 1) for s in ("", "_reverse") for p in layer]
    gru_classic = rt.RNN("gru_classic", 3, 4)      # no bias_hh: torch's names it has come first
    assert [n for n, _ in gru_classic.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "weight_rh_l0"]


def test_an_optimizer_state_saved_with_torch_nn_loads_into_the_bridge(tmp_path):
    """Adam over torch.nn.LSTM, a few steps, its state_dict saved; an Adam over from_torch()'s
    parameters loads it and each state sits on the parameter of the same name (shapes match, and
    the values: bias_ih and bias_hh have the same shape, so only the order tells them apart);
    the next steps of both give the same parameters."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    x = torch.randn(5, 2, 3, dtype=torch.float64)

    def step(module, optimizer):
        optimizer.zero_grad()
        module(x)[0].pow(2).sum().backward()
        optimizer.step()

    for _ in range(3):
        step(ref, opt)
    torch.save(opt.state_dict(), tmp_path / "adam.pt")
    ours = rt.from_torch(ref)
    opt2 = torch.optim.Adam(ours.parameters(), lr=0.01)
    opt2.load_state_dict(torch.load(tmp_path / "adam.pt"))
    ref_params = dict(ref.named_parameters())
    for (name, p), index in zip(ours.named_parameters(), opt2.state_dict()["param_groups"][0]["params"]):
        state = opt2.state[p]
        assert state["exp_avg"].shape == p.shape, name
        torch.testing.assert_close(state["exp_avg_sq"], opt.state[ref_params[name]]["exp_avg_sq"],
                                   rtol=0, atol=0, msg=name)
    for _ in range(2):
        step(ref, opt)
        step(ours, opt2)
    for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10, msg=name)


def test_an_in_place_change_of_the_input_before_backward_is_caught():
    """The numpy API documents the contract; the bridge checks it through torch's version counters."""
    rnn = rt.RNN("gru", 3, 4)
    x = torch.randn(2, 1, 3, requires_grad=True)
    inp = x * 1.0
    y, _ = rnn(inp)
    with torch.no_grad():
        inp.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
