"""Training utilities, the character-level language model, checkpoints and the train/sample CLI."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnngen import cli
from rnngen.blas import limit_threads
from rnngen.charlm import CharLM, read_corpus, train_charlm
from rnngen.corpus import DEFAULT_FILE, creature_names
from rnngen.training import (SGD, Adam, SeqModel, clip_by_global_norm, clip_by_value, global_norm,
                             load_checkpoint, save_checkpoint, softmax, softmax_cross_entropy)

REPO = Path(__file__).resolve().parents[1]
DINOS = REPO.parent / "shared" / "data" / "dinos.txt"


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    limit_threads(1)  # tiny per-step GEMMs: OpenBLAS threads only spin against each other


def _fd_loss_check(model, x, targets, lengths, reduction, rng, n_entries=3, eps=1e-6):
    loss = model.loss(x, targets, lengths, reduction)
    grads = {n: g.copy() for n, g in model.grads.items()}
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        for flat in rng.choice(p.size, min(n_entries, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + eps
            up = model.loss(x, targets, lengths, reduction, backward=False)
            p[idx] = old - eps
            down = model.loss(x, targets, lengths, reduction, backward=False)
            p[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - grads[name][idx]) < 1e-6 * max(1.0, abs(fd)), (name, idx, fd, grads[name][idx])
    return loss


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_whole_training_loss_matches_finite_differences(cell, reduction):
    """Loss through a 2-layer bidirectional stack with lengths and the dense softmax layer, float64."""
    T, B, I, H, V = 6, 3, 4, 5, 7
    model = SeqModel(cell, I, H, V, num_layers=2, bidirectional=True, dtype=np.float64, seed=4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    targets = rng.integers(0, V, (T, B))
    lengths = np.array([6, 2, 4])
    targets[4:, 1] = 99  # past a length: ignored
    _fd_loss_check(model, x, targets, lengths, reduction, rng)


def test_cross_entropy_sums_over_valid_steps():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 2, 5))
    targets = rng.integers(0, 5, (4, 2))
    lengths = np.array([4, 1])
    total, d = softmax_cross_entropy(logits, targets, lengths, "sum")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -sum(logp[t, b, targets[t, b]] for b in range(2) for t in range(lengths[b]))
    assert total == pytest.approx(expected, rel=1e-12)
    assert np.all(d[1:, 1] == 0)
    np.testing.assert_allclose(softmax(logits).sum(-1), 1.0)
    np.testing.assert_allclose(softmax(np.array([0.0, 1e4])), [0.0, 1.0])
    mean, dm = softmax_cross_entropy(logits, targets, lengths, "mean")
    assert mean == pytest.approx(expected / 5, rel=1e-12)
    np.testing.assert_allclose(dm, d / 5, atol=1e-15)
    with pytest.raises(ValueError, match="targets"):
        softmax_cross_entropy(logits, np.full((4, 2), 5), lengths)
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, targets, lengths, "max")


def test_clip_by_value_clips_every_entry_in_place():
    grads = {"a": np.array([-10.0, -1.0, 0.5, 7.0]), "b": np.array([[3.0, -3.5]])}
    out = clip_by_value(grads, 3.0)
    assert out is grads
    np.testing.assert_array_equal(grads["a"], [-3.0, -1.0, 0.5, 3.0])
    np.testing.assert_array_equal(grads["b"], [[3.0, -3.0]])
    with pytest.raises(ValueError, match="max_value"):
        clip_by_value(grads, 0)


def test_clip_by_global_norm_rescales_only_above_the_threshold():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}
    assert clip_by_global_norm(grads, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # untouched below the threshold
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)
    assert global_norm(grads) == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])  # direction kept
    np.testing.assert_allclose(grads["b"], [[0.0, 0.8]])
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm(grads, -1)


def test_sgd_and_adam_minimise_a_quadratic():
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.5), lambda p: Adam(p, lr=0.1)):
        params = {"w": np.array([3.0, -2.0])}
        opt = make(params)
        for _ in range(300):
            opt.step({"w": 2 * params["w"]})
        assert np.abs(params["w"]).max() < 1e-2
    with pytest.raises(ValueError, match="lr"):
        Adam({}, lr=0)


def test_shipped_corpus_is_generated_by_the_project():
    with open(DEFAULT_FILE, encoding="utf-8") as f:
        assert f.read() == "\n".join(creature_names())


@pytest.fixture(scope="module")
def dinos_model():
    if not DINOS.is_file():
        pytest.skip(f"{DINOS} is absent (the shared data folder must sit beside the repository)")
    lines = read_corpus(DINOS)
    assert len(lines) == 1536
    model, losses = train_charlm(lines, "lstm", hidden_size=64, steps=300, batch_size=32, lr=0.01, seed=0)
    return model, losses


def test_training_on_dinos_drives_the_loss_well_below_uniform(dinos_model):
    model, losses = dinos_model
    assert len(model.vocab) == 27
    uniform = np.log(27)
    assert np.mean(losses[:5]) > 0.9 * uniform
    assert np.mean(losses[-30:]) < 0.6 * uniform


def test_seeded_sampling_is_reproducible(dinos_model):
    model, _ = dinos_model
    a = model.sample(8, seed=3)
    assert a == model.sample(8, seed=3)
    assert a != model.sample(8, seed=4)
    assert all(set(s) <= set(model.vocab[1:]) for s in a)
    assert all(0 < len(s) <= 40 for s in a)
    cold = model.sample(8, temperature=0.2, seed=3)
    assert cold == model.sample(8, temperature=0.2, seed=3)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    lines = ["abc", "bca", "cab"]
    model, _ = train_charlm(lines, "gru", hidden_size=8, steps=5, seed=1)
    path = tmp_path / "m.npz"
    save_checkpoint(path, model, step=5)
    save_checkpoint(path, model, step=5)  # replaces atomically
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary left behind
    loaded = load_checkpoint(path)
    assert isinstance(loaded, CharLM) and loaded.vocab == model.vocab
    assert loaded.rnn.cell.NAME == "gru" and loaded.checkpoint_extra == {"step": 5}
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)
    assert loaded.sample(4, seed=2) == model.sample(4, seed=2)
    same = CharLM(model.vocab, "gru", 8, seed=9)
    load_checkpoint(path, same)
    np.testing.assert_array_equal(same.params["weight_hh_l0"], model.params["weight_hh_l0"])
    with pytest.raises(ValueError, match="cell: checkpoint 'gru', model 'lstm'"):
        load_checkpoint(path, CharLM(model.vocab, "lstm", 8))
    with pytest.raises(ValueError, match="hidden_size"):
        load_checkpoint(path, CharLM(model.vocab, "gru", 9))
    with pytest.raises(ValueError, match="num_layers"):
        load_checkpoint(path, CharLM(model.vocab, "gru", 8, num_layers=2))
    with pytest.raises(ValueError, match="vocab"):
        load_checkpoint(path, CharLM("\nabd", "gru", 8))
    seq = SeqModel("rnn_tanh", 3, 4, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=2)
    save_checkpoint(tmp_path / "seq.npz", seq)
    back = load_checkpoint(tmp_path / "seq.npz")
    assert type(back) is SeqModel and back.rnn.bidirectional and back.dtype == np.float64
    for name, p in seq.params.items():
        np.testing.assert_array_equal(back.params[name], p)
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.npz is not a valid rnngen checkpoint: it is not an .npz"):
        load_checkpoint(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.npz")


def test_cli_train_and_sample(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text("\n".join(creature_names(200, seed=1)))
    ckpt = tmp_path / "lm.npz"
    assert cli.main(["train", "--data", str(data), "--hidden", "16", "--steps", "40", "--batch", "8",
                     "--out", str(ckpt), "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert "samples at step 40" in out and "steps/s" in err and "ETA" in err and ckpt.is_file()
    assert cli.main(["sample", str(ckpt), "--n", "4", "--seed", "1"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 4
    assert cli.main(["sample", str(ckpt), "--n", "4", "--seed", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == first


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "absent.txt"), "--steps", "1"]) == 2
    assert "cannot read data file" in capsys.readouterr().err
    assert cli.main(["train", "--cell", "nope", "--steps", "1"]) == 2
    assert "no built-in cell 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--hidden", "0"]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path / "absent.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_plot(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text("abc\nbcd\ncde")
    png = tmp_path / "loss.png"
    code = cli.main(["train", "--data", str(data), "--hidden", "8", "--steps", "5", "--out",
                     str(tmp_path / "m.npz"), "--plot", str(png)])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 2 and "matplotlib" in capsys.readouterr().err and not png.exists()
    else:
        assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
