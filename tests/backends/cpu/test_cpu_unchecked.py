"""forward_unchecked / backward_unchecked (what rnngen.RNN calls once it has checked its inputs)
compute exactly what forward / backward compute, for every built-in cell; and what RNN checks
itself now that the module does not (its parameters' shapes and dtypes)."""
import numpy as np
import pytest

import rnngen
from helpers import random_problem


def _inputs(m, T=4, B=3, I=3, H=4, seed=0):
    """x, params, state0 (float64) and H of a problem for module m (its run-time sizes at 2)."""
    sizes = {name: 2 for name in m.SIZES}
    if "heads" in sizes:
        H = 4
    params = m.init_params(I, H, np.float64, seed, **sizes)
    x, _, _ = random_problem(m, T=T, B=B, I=I, H=H, seed=seed)
    dims = m.sizes_of(params) | {"H": H}
    rng = np.random.default_rng(seed + 1)
    state0 = tuple(0.5 * rng.standard_normal((B, dims[m.STATE_SIZES[s]])) for s in m.STATES)
    return x, params, state0, H


def _same(a, b, rtol=0.0):
    """Equal arrays, bit for bit (rtol=0), or to rtol (float64)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k], rtol)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v, rtol)
    elif rtol == 0 or a is None:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


@pytest.mark.parametrize("cell", rnngen.available())
@pytest.mark.parametrize("given", ["none", "first", "all"])
@pytest.mark.parametrize("reverse", [False, True])
def test_unchecked_entries_compute_what_the_checked_ones_do(cell, given, reverse):
    m = rnngen.load(cell)
    x, params, state0, H = _inputs(m)
    T, B, _ = x.shape
    s0 = {"none": None, "first": (state0[0],) + (None,) * (len(state0) - 1), "all": state0}[given]
    lengths = np.array([4, 1, 3], np.int64)
    rates = {name: 0.3 for name in m.RATES}
    masks = m.draw_masks(T, B, H, rates, True, np.random.default_rng(5), np.float64, params) if m.MASKS else None
    kw = {"masks": masks} if masks is not None else {}
    before = [None if s is None else s.copy() for s in (s0 or ())]
    y, fin, saved = m.forward(x, params, s0, lengths, reverse, **kw)
    yu, finu, savedu = m.forward_unchecked(x, params, s0, lengths, reverse, True, masks)
    _same((y, fin), (yu, finu))
    _same(before, [None if s is None else s for s in (s0 or ())])      # state0 only read
    yi, fini, nothing = m.forward_unchecked(x, params, s0, lengths, reverse, False, masks)
    assert nothing is None
    _same((y, fin), (yi, fini))
    dy = np.random.default_rng(2).standard_normal(y.shape)
    d_final = tuple(np.random.default_rng(3 + k).standard_normal(f.shape) for k, f in enumerate(fin))
    for df in (None, (d_final[0],) + (None,) * (len(fin) - 1), d_final):
        kept = None if df is None else [None if d is None else d.copy() for d in df]
        expected = m.backward(dy, df, saved)
        _same(expected, m.backward_unchecked(dy, df, savedu))
        _same(kept, None if df is None else list(df))                    # d_final only read


def test_rnn_refuses_a_parameter_of_another_shape_or_dtype():
    net = rnngen.RNN("lstm", 3, 5, num_layers=2)
    x = np.ones((4, 2, 3), np.float32)
    good = net.params["weight_hh_l1"]
    for bad, words in ((np.zeros((20, 4), np.float32), "(20, 5)"),
                       (good.astype(np.float64), "float32"),
                       (good.tolist(), "list")):
        net.params["weight_hh_l1"] = bad
        with pytest.raises(ValueError, match=r"parameter weight_hh_l1 must be a numpy array") as info:
            net.forward(x)
        assert words in str(info.value)
    del net.params["weight_hh_l1"]
    with pytest.raises(ValueError, match="parameter weight_hh_l1 .* got nothing"):
        net.forward(x)


def test_rnn_takes_a_cpu_torch_tensor_as_a_parameter():
    torch = pytest.importorskip("torch")
    net = rnngen.RNN("lstm", 3, 5)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    y, _ = net.forward(x)
    net.params["weight_hh_l0"] = torch.from_numpy(net.params["weight_hh_l0"].copy())
    _same(y, net.forward(x)[0])


def test_rnn_takes_a_parameter_that_is_not_c_contiguous():
    net = rnngen.RNN("gru", 3, 5, bidirectional=True, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((6, 4, 3))
    y, fin = net.forward(x)
    dx, _ = net.backward(np.ones_like(y))
    grads = dict(net.grads)
    for name, value in list(net.params.items()):
        net.params[name] = np.asfortranarray(value) if value.ndim == 2 else value.copy()
    assert not net.params["weight_hh_l0"].flags.c_contiguous
    y2, fin2 = net.forward(x)
    dx2, _ = net.backward(np.ones_like(y2))
    _same((y, fin, dx), (y2, fin2, dx2))
    _same(grads, net.grads)


def test_a_module_generated_before_the_unchecked_entries_still_runs(tmp_path):
    """A user-built module of an earlier rnngen (no forward_unchecked; its wrappers expect the checks
    to fill state0 and copy d_final, which its loop adds into) runs with today's run-time checks,
    directly and under rnngen.RNN, and computes what today's module does."""
    import os
    import shutil
    here = os.path.join(os.path.dirname(__file__), "..", "..", "data", "before_unchecked", "lstm.py")
    shutil.copy(here, tmp_path / "lstm.py")
    old, new = rnngen.load("lstm", path=str(tmp_path)), rnngen.load("lstm")
    assert not hasattr(old, "forward_unchecked")
    x, params, state0, _ = _inputs(new)
    lengths = [4, 2, 3]
    d_final = tuple(np.random.default_rng(7 + k).standard_normal(s.shape) for k, s in enumerate(state0))
    kept = [d.copy() for d in d_final]
    for s0 in (None, (state0[0], None), state0):
        results = []
        for m in (old, new):
            y, fin, saved = m.forward(x, params, s0, lengths, True)
            results.append((y, fin, m.backward(np.ones_like(y), d_final, saved)))
        _same(results[0], results[1], rtol=1e-12)   # today's loops add bias_ih + bias_hh summed once: ulps apart
        _same(kept, list(d_final))                  # the old loop added into copies, not into d_final
    nets = [rnngen.RNN(m, 3, 4, bidirectional=True, dtype=np.float64) for m in (old, new)]
    outs = []
    for net in nets:
        y, fin = net.forward(x, lengths=lengths)
        outs.append((y, fin, net.backward(np.ones_like(y)), dict(net.grads)))
    _same(outs[0], outs[1], rtol=1e-12)   # bias_ih + bias_hh summed once today: ulps apart
