"""`rnngen train --rate NAME=P`: the rates reach the cell's masks, are recorded in the checkpoint
and come back when it is loaded; a malformed or unknown rate is one line and exit 2."""
import numpy as np
import pytest

from rnngen import cli
from rnngen.charlm import CharLM
from rnngen.training import checkpoint_metadata, load_checkpoint, save_checkpoint


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("anna\nbob\ncarla\ndora\n")
    return path


def test_rate_is_used_and_recorded(tmp_path, data):
    out = tmp_path / "z.npz"
    assert cli.main(["train", "--data", str(data), "--cell", "lstm_zoneout", "--rate", "zoneout=0.15",
                     "--hidden", "8", "--steps", "2", "--batch", "2", "--out", str(out)]) == 0
    assert checkpoint_metadata(out)["rates"] == {"zoneout": 0.15}
    model = load_checkpoint(out)
    assert model.rnn.rates == {"zoneout": 0.15}
    assert cli.main(["sample", str(out), "--n", "2"]) == 0


def test_checkpoint_round_trip_keeps_rates(tmp_path):
    model = CharLM("\nab", "lstm_vd", 4, rates={"dropout_h": 0.3})
    save_checkpoint(tmp_path / "m.npz", model)
    again = load_checkpoint(tmp_path / "m.npz")
    assert again.rnn.rates == {"dropout_h": 0.3}
    for k, v in model.params.items():
        np.testing.assert_array_equal(again.params[k], v)


@pytest.mark.parametrize("rate, words", [("zoneout", "NAME=P"), ("zoneout=x", "NAME=P"),
                                          ("zoneout=1.5", "must be a probability in [0, 1)"),
                                          ("dropout=0.1", "unknown rate 'dropout'")])
def test_bad_rates_are_one_line_and_exit_2(tmp_path, data, capsys, rate, words):
    code = cli.main(["train", "--data", str(data), "--cell", "lstm_zoneout", "--rate", rate, "--steps", "1",
                     "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rnngen train: ") and words in err and err.count("\n") == 1
