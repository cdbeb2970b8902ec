"""Training utilities, the character-level language model, checkpoints and the train/sample CLI."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnngen import cli
from rnngen.blas import limit_threads
from rnngen.charlm import CharLM, read_corpus, train_charlm
from rnngen.train.corpus import DEFAULT_FILE, creature_names
from rnngen.training import (SGD, Adam, SeqModel, clip_by_global_norm, clip_by_value, global_norm,
                             load_checkpoint, save_checkpoint, softmax, softmax_cross_entropy)

REPO = Path(__file__).resolve().parents[2]
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


def _scaled_grads(dtype, scale):
    """Gradients of three arrays whose entries are `scale` times a fixed pattern (a dtype's
    extremes included: their squares over- or underflow)."""
    rng = np.random.default_rng(0)
    shapes = {"w": (7, 5), "b": (7,), "v": (3, 2, 2)}
    unit = {n: rng.uniform(0.25, 1.0, s) * rng.choice([-1, 1], s) for n, s in shapes.items()}
    grads = {n: (u * scale).astype(dtype) for n, u in unit.items()}
    exact = np.sqrt(sum(np.sum(np.asarray(g, np.longdouble) ** 2) for g in grads.values()))
    return grads, float(exact)


@pytest.mark.parametrize("dtype, scale", [(np.float32, s) for s in (1e-30, 1e-3, 1.0, 1e20, 1e30, 1e38)] +
                                          [(np.float64, s) for s in (1e-300, 1.0, 1e160, 1e200, 1e300)])
def test_global_norm_and_clipping_survive_overflow_and_underflow(dtype, scale):
    """The squared norm overflows float32 from entries of ~1e19 and float64 from ~1e154 (it was
    inf, and every clipped gradient 0); it underflows from ~1e-20 / 1e-160 (the norm was 0)."""
    grads, exact = _scaled_grads(dtype, scale)
    if np.isfinite(exact):
        assert global_norm(grads) == pytest.approx(exact, rel=1e-5)
    before = {n: g.astype(np.float64) for n, g in grads.items()}
    max_norm = 5.0
    norm = clip_by_global_norm(grads, max_norm)
    assert norm == pytest.approx(exact, rel=1e-5) if np.isfinite(exact) else norm == np.inf
    if exact > max_norm:
        assert global_norm(grads) == pytest.approx(max_norm, rel=1e-5)
        direction = before["w"].ravel() / np.abs(before["w"]).max()
        np.testing.assert_allclose(grads["w"].ravel() / np.abs(grads["w"]).max(), direction, rtol=1e-5)
    else:
        for n, g in grads.items():
            np.testing.assert_array_equal(g, before[n].astype(dtype))
    assert all(g.dtype == dtype and np.isfinite(g).all() for g in grads.values())


def test_global_norm_beyond_float64_range_is_inf_but_clipping_still_works():
    grads = {"a": np.full(4, 1.5e308), "b": np.array([1.0])}
    assert global_norm(grads) == np.inf
    assert clip_by_global_norm(grads, 2.0) == np.inf
    assert global_norm(grads) == pytest.approx(2.0)
    np.testing.assert_allclose(grads["a"], 1.0)
    assert grads["b"][0] == pytest.approx(2.0 / 1.5e308 * (1.0 / 2.0) * 2.0, rel=1e-6)


def test_mixed_dtypes_and_empty_and_zero_gradients():
    grads = {"a": np.full(3, 1e20, np.float32), "b": np.full(2, 1e20), "e": np.zeros((0, 4), np.float32)}
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(np.sqrt(5) * 1e20, rel=1e-6)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-6)
    zeros = {"a": np.zeros(3, np.float32)}
    assert clip_by_global_norm(zeros, 1.0) == 0.0 and global_norm(zeros) == 0.0
    assert global_norm({}) == 0.0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_non_finite_gradient_is_reported_not_spread(bad, dtype):
    """One inf entry made every gradient NaN; now it is a ValueError naming the parameter (or, with
    error_if_nonfinite=False, the non-finite norm is returned), and no gradient is changed."""
    grads = {"weight_ih_l0": np.full((3, 2), 1e3, dtype), "bias_hh_l0": np.ones(4, dtype)}
    grads["bias_hh_l0"][2] = bad
    before = {n: g.copy() for n, g in grads.items()}
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=f"gradient 'bias_hh_l0' holds {kind}"):
        clip_by_global_norm(grads, 1.0)
    norm = clip_by_global_norm(grads, 1.0, error_if_nonfinite=False)
    assert np.isnan(norm) if kind == "NaN" else norm == np.inf
    g = global_norm(grads)
    assert np.isnan(g) if kind == "NaN" else g == np.inf
    for n in grads:
        np.testing.assert_array_equal(grads[n], before[n])


def test_training_stops_at_a_diverging_step_naming_it():
    """A learning rate that overflows the parameters: the first step whose loss or gradient is
    NaN/inf is named and stops training (it was a raw 'dy contains NaN or inf' from the RNN)."""
    lines = ["abcabc", "bcabca", "cabcab"] * 4
    seen = []
    with pytest.raises(ValueError, match=r"^step (\d+): (the loss is (nan|inf)|gradient '.*' holds (NaN|inf))"):
        train_charlm(lines, "rnn_tanh", 8, steps=200, batch_size=4, lr=1e38, clip_norm=None,
                     optimizer="sgd", callback=lambda step, loss, model: seen.append(step))
    assert len(seen) < 200


def test_softmax_and_sampling_at_extreme_temperatures(tmp_path):
    np.testing.assert_array_equal(softmax(np.array([0.0, 1.0, -2.0]), temperature=1e-300), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(softmax(np.array([0.0, 1.0]), temperature=1e300), [0.5, 0.5])
    model = CharLM("\nabc", "gru", 6, seed=1)
    greedy = model.sample(3, temperature=1e-6, seed=0, max_len=5)
    assert model.sample(3, temperature=1e-300, seed=4, max_len=5) == greedy   # argmax: no inf - inf
    assert len(model.sample(3, temperature=1e300, seed=0, max_len=5)) == 3
    for bad in (0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(2, temperature=bad)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_len"):
            model.sample(2, max_len=bad)


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
