"""The one mechanism for run-time sizes (a spec's `cell.size(name)`): keywords of init_params,
rnngen.RNN, SeqModel/CharLM and `rnngen train --size`, recorded in checkpoints, read back by
the generated module from the parameters' shapes."""
import numpy as np
import pytest

import rnngen
from rnngen.backends.checks import dim_value, param_shape
from rnngen.charlm import CharLM
from rnngen.tools.cli import main
from rnngen.training import checkpoint_metadata, load_checkpoint, save_checkpoint


def test_init_params_takes_the_sizes_as_keywords():
    m = rnngen.load("lstm_proj")
    p = m.init_params(3, 5, proj_size=2)
    assert p["weight_hh"].shape == (20, 2) and p["weight_hr"].shape == (2, 5)
    assert m.sizes_of(p) == {"proj_size": 2}
    assert m.init_params(3, 5)["weight_hr"].shape == (5, 5)          # default: proj_size = H
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(ValueError, match="proj_size must be a positive integer"):
            m.init_params(3, 5, proj_size=bad)
    with pytest.raises(TypeError):
        m.init_params(3, 5, heads=2)
    assert rnngen.load("lstm").SIZES == () and rnngen.load("lstm").sizes_of({}) == {}


def test_dimensions_are_products_and_quotients_of_sizes():
    assert dim_value("4*H/heads", {"H": 8, "heads": 2}) == 16
    assert param_shape(("heads", "4*H/heads", "H/heads"), 3, 8, {"heads": 2}) == (2, 16, 4)


def test_forward_checks_state_shapes_per_state():
    m = rnngen.load("lstm_proj")
    p = m.init_params(3, 5, np.float64, proj_size=2)
    x = np.zeros((4, 2, 3))
    y, (h, c), _ = m.forward(x, p)
    assert y.shape == (4, 2, 2) and h.shape == (2, 2) and c.shape == (2, 5)
    with pytest.raises(ValueError, match=r"state0\[0\] \(h\) must have shape \(B, H\) = \(2, 2\)"):
        m.forward(x, p, (np.zeros((2, 5)), np.zeros((2, 5))))
    with pytest.raises(ValueError, match=r"params\['weight_hr'\] must have shape \(2, 5\)"):
        m.forward(x, dict(p, weight_hr=np.zeros((2, 4))))


def test_rnn_sizes_shapes_and_errors():
    net = rnngen.RNN("lstm_proj", 3, 5, num_layers=2, bidirectional=True, proj_size=2)
    assert net.sizes == {"proj_size": 2} and net.state_sizes == (2, 5) and net.output_size == 4
    assert net.params["weight_ih_l1"].shape == (20, 4) and net.params["weight_hr_l1_reverse"].shape == (2, 5)
    y, (h, c) = net.forward(np.zeros((3, 2, 3), np.float32))
    assert y.shape == (3, 2, 4) and h.shape == (4, 2, 2) and c.shape == (4, 2, 5)
    dx, (dh, dc) = net.backward(np.ones_like(y))
    assert dx.shape == (3, 2, 3) and dh.shape == (4, 2, 2) and dc.shape == (4, 2, 5)
    y1, (h1, c1) = rnngen.RNN("lstm_proj", 3, 5, proj_size=2).step(np.zeros((2, 3), np.float32))
    assert y1.shape == (2, 2) and h1.shape == (1, 2, 2) and c1.shape == (1, 2, 5)
    assert "proj_size=2" in repr(net)
    with pytest.raises(ValueError, match="RNN: unknown keyword proj_size= for this cell"):
        rnngen.RNN("gru", 3, 5, proj_size=2)
    with pytest.raises(ValueError, match="proj_size must be a positive integer"):
        rnngen.RNN("lstm_proj", 3, 5, proj_size=0)


@pytest.mark.parametrize("cell, sizes", [("lstm_proj", {"proj_size": 3}), ("layernorm_lstm", {})])
def test_checkpoints_record_the_sizes(tmp_path, cell, sizes):
    model = CharLM("\nabc", cell, 6, num_layers=2, seed=1, sizes=sizes)
    path = tmp_path / "lm.npz"
    save_checkpoint(path, model, step=3)
    assert checkpoint_metadata(path)["sizes"] == sizes
    back = load_checkpoint(path)
    assert back.rnn.sizes == sizes
    for name, value in model.params.items():
        np.testing.assert_array_equal(back.params[name], value)
    assert model.sample(3, seed=1) == back.sample(3, seed=1)
    if sizes:
        other = CharLM("\nabc", cell, 6, num_layers=2, seed=1, sizes={"proj_size": 2})
        with pytest.raises(ValueError, match="sizes: checkpoint"):
            load_checkpoint(path, model=other)


def test_train_takes_sizes_and_refuses_unknown_ones(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text("abc\nabd\nbcd\n")
    out = tmp_path / "lm.npz"
    assert main(["train", "--cell", "lstm_proj", "--size", "proj_size=3", "--hidden", "8", "--steps", "2",
                 "--batch", "2", "--samples", "0", "--data", str(data), "--out", str(out)]) == 0
    assert "proj_size=3" in capsys.readouterr().out
    assert checkpoint_metadata(out)["sizes"] == {"proj_size": 3}
    assert load_checkpoint(out).rnn.params["weight_hr_l0"].shape == (3, 8)
    assert main(["sample", str(out), "--n", "2"]) == 0
    for args, words in ((["--cell", "lstm", "--size", "proj_size=3"], "unknown keyword proj_size="),
                        (["--cell", "lstm_proj", "--size", "proj_size"], "--size must be NAME=VALUE"),
                        (["--cell", "lstm_proj", "--size", "proj_size=x"], "--size proj_size must be an integer"),
                        (["--cell", "lstm_proj", "--size", "proj_size=0"], "--size proj_size must be >= 1")):
        capsys.readouterr()
        assert main(["train", *args, "--steps", "1", "--data", str(data), "--out", str(tmp_path / "x.npz")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rnngen train: ") and words in err and err.count("\n") == 1, err


def test_train_a_layernorm_lstm(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text("abc\nabd\nbcd\n")
    out = tmp_path / "lm.npz"
    assert main(["train", "--cell", "layernorm_lstm", "--hidden", "8", "--steps", "3", "--batch", "2",
                 "--samples", "0", "--data", str(data), "--out", str(out), "--layers", "2",
                 "--dropout", "0.2"]) == 0
    assert checkpoint_metadata(out)["cell"] == "layernorm_lstm"
    assert main(["sample", str(out), "--n", "2"]) == 0


@pytest.mark.parametrize("cell, sizes", [("lstm_proj", {"proj_size": 2}), ("layernorm_lstm", {})])
def test_the_inference_forward_equals_the_training_forward(cell, sizes):
    m = rnngen.load(cell)
    p = {k: v + 0.3 for k, v in m.init_params(3, 5, np.float64, **sizes).items()}
    x = np.random.default_rng(0).standard_normal((6, 4, 3))
    lengths = np.array([6, 0, 3, 1])
    for reverse in (False, True):
        y, final, _ = m.forward(x, p, lengths=lengths, reverse=reverse)
        y2, final2, saved = m.forward(x, p, lengths=lengths, reverse=reverse, need_grad=False)
        assert saved is None
        np.testing.assert_array_equal(y, y2)
        for a, b in zip(final, final2):
            np.testing.assert_array_equal(a, b)
