"""`rnngen train` / `rnngen sample` under bad options and faults: checked before any work, a clear
line and exit 2; Ctrl-C saves where training got to (exit 130); a user-built cell's checkpoint
samples with the command that train prints; `rnngen --version`."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

import rnngen
from rnngen import cli
from rnngen.charlm import CharLM
from rnngen.train.corpus import creature_names
from rnngen.training import checkpoint_metadata, load_checkpoint, save_checkpoint

BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def _rnngen(args, cwd, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "rnngen.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout, **kw)


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(creature_names(200, seed=1)))
    return path


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "lm.npz"
    save_checkpoint(path, CharLM("\nabcde", "gru", 6, seed=2), step=1)
    return path


def _one_line_error(capsys, cmd, *needles):
    out, err = capsys.readouterr()
    assert err.startswith(f"rnngen {cmd}: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return out, err


def test_version():
    out = _rnngen(["--version"], cwd=None, timeout=120)
    assert out.returncode == 0 and out.stdout == f"rnngen {rnngen.__version__}\n" == "rnngen 0.1.0\n"


@pytest.mark.parametrize("option, value", [
    ("--steps", "0"), ("--steps", "-5"), ("--batch", "0"), ("--hidden", "0"), ("--layers", "-1"),
    ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"), ("--clip-norm", "0"),
    ("--clip-norm", "nan"), ("--clip-value", "-1"), ("--clip-value", "inf"), ("--dropout", "1"),
    ("--dropout", "-0.1"), ("--dropout", "nan"), ("--dropout", "1.5"), ("--samples", "-1"), ("--seed", "-1"),
])
def test_bad_train_options_fail_before_any_work(tmp_path, data, capsys, option, value):
    out_file = tmp_path / "m.npz"
    assert cli.main(["train", "--data", str(data), "--out", str(out_file), option, value]) == 2
    out, _ = _one_line_error(capsys, "train", option)
    assert out == "" and not out_file.exists()


@pytest.mark.parametrize("option, value", [
    ("--max-len", "0"), ("--max-len", "-3"), ("--n", "0"), ("--n", "-1"), ("--temperature", "0"),
    ("--temperature", "-1"), ("--temperature", "nan"), ("--temperature", "inf"), ("--seed", "-2"),
])
def test_bad_sample_options(checkpoint, capsys, option, value):
    """--max-len 0 printed empty names; now every option out of range is a clear error."""
    assert cli.main(["sample", str(checkpoint), option, value]) == 2
    out, _ = _one_line_error(capsys, "sample", option)
    assert out == ""


def test_sampling_more_names_than_memory_holds(checkpoint, capsys):
    assert cli.main(["sample", str(checkpoint), "--n", str(10**13)]) == 2
    _one_line_error(capsys, "sample", "--n 10000000000000", "memory")


@pytest.mark.parametrize("options", [["--hidden", "200000"], ["--layers", "100000", "--hidden", "1000"],
                                     ["--batch", "1000000000"]])
def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path, capsys, options):
    """--hidden 200000 was a raw MemoryError (1.16 TiB) after reading the data."""
    assert cli.main(["train", "--out", str(tmp_path / "m.npz"), *options]) == 2
    _one_line_error(capsys, "train", f"{options[0]} {options[1]}", "needs about", "available")
    assert os.listdir(tmp_path) == []


def test_out_is_checked_before_training(tmp_path, data, capsys):
    """--out into a missing folder trained for minutes, then crashed and lost the work."""
    before = sorted(os.listdir(tmp_path))
    cases = [
        (tmp_path / "missing" / "m.npz", "does not exist"),
        (data / "m.npz", "is not a folder"),
        (tmp_path, "is a folder"),
        ("/sys/m.npz", "cannot write in /sys"),         # sysfs: no one may create files there
        (data, "exists and would be replaced, but"),     # the data file itself: never overwritten
    ]
    text = data.read_text()
    for out_file, needle in cases:
        assert cli.main(["train", "--data", str(data), "--steps", "2", "--out", str(out_file)]) == 2
        out, _ = _one_line_error(capsys, "train", "--out", needle)
        assert out == ""                                   # nothing trained
    assert sorted(os.listdir(tmp_path)) == before and data.read_text() == text
    assert cli.main(["train", "--data", str(data), "--steps", "2", "--out", str(tmp_path / "m.npz"),
                     "--plot", str(tmp_path / "nowhere" / "loss.png")]) == 2
    _one_line_error(capsys, "train", "--plot", "does not exist")
    assert sorted(os.listdir(tmp_path)) == before


def test_data_that_is_not_text(tmp_path, capsys):
    (tmp_path / "data.bin").write_bytes(b"\xff\xfe\x00\x81" * 100)
    assert cli.main(["train", "--data", str(tmp_path / "data.bin"), "--out", str(tmp_path / "m.npz")]) == 2
    _one_line_error(capsys, "train", "data.bin", "not UTF-8")


def test_an_existing_checkpoint_at_out_is_replaced_by_the_new_one(tmp_path, data, capsys):
    out_file = tmp_path / "m.npz"
    save_checkpoint(out_file, CharLM("\nab", "lstm", 3), step=99)
    assert cli.main(["train", "--data", str(data), "--cell", "gru", "--hidden", "8", "--steps", "3",
                     "--batch", "4", "--out", str(out_file)]) == 0
    meta = checkpoint_metadata(out_file)
    assert meta["cell"] == "gru" and meta["extra"]["step"] == 3 and meta["extra"]["interrupted"] is False
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "names.txt"]


def test_ctrl_c_saves_a_checkpoint_of_the_step_reached(tmp_path, data):
    """Ctrl-C was a raw KeyboardInterrupt traceback, with nothing saved since the last report."""
    out_file = tmp_path / "lm.npz"
    steps = 40000
    proc = subprocess.Popen([sys.executable, "-m", "rnngen.cli", "train", "--cell", "gru", "--data", str(data),
                             "--hidden", "16", "--batch", "8", "--steps", str(steps), "--out", str(out_file)],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not re.search(rf"step 2000/{steps}", seen[-1] if seen else ""):   # the first progress line
            seen.append(proc.stderr.readline())
            assert seen[-1], "".join(seen)                                       # not ended before it
        assert not out_file.exists()               # no report yet: nothing saved so far
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(rf"rnngen train: interrupted \(Ctrl-C\) at step (\d+)/{steps}; saved a checkpoint of "
                         rf"step \1 to {re.escape(str(out_file))}; sample it with `(rnngen sample .*)`", last)
    assert match, last
    reached = int(match.group(1))
    assert 2000 <= reached < steps
    extra = load_checkpoint(out_file).checkpoint_extra
    assert extra["step"] == reached and extra["interrupted"] is True and extra["steps"] == steps
    assert set(os.listdir(tmp_path)) == {"lm.npz", "names.txt"}          # no temporary file left
    sampled = subprocess.run(match.group(2), shell=True, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                             timeout=300)
    assert sampled.returncode == 0 and len(sampled.stdout.splitlines()) == 10, sampled.stderr


MGU = textwrap.dedent("""
    from rnngen.spec import Cell, sigmoid, tanh

    cell = Cell("mgu", states=("h",), output="h")
    xf, xn = cell.linear("ih", cell.x, gates=2)
    hf, hn = cell.linear("hh", cell.h, gates=2)
    f = sigmoid(xf + hf)
    cell.update(h=(1 - f) * cell.h + f * tanh(xn + hn))
""")


def test_a_user_cell_checkpoint_samples_with_the_command_train_prints(tmp_path, data):
    """`rnngen train --cell mgu --cell-path gen` said "sample it with `rnngen sample mgu.npz`", which
    failed (no built-in cell 'mgu'): the checkpoint now records the cell's absolute folder."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "specs").mkdir(parents=True)
    elsewhere.mkdir()
    (work / "specs" / "mgu.py").write_text(MGU)
    built = _rnngen(["build", "--specs", "specs", "--out", "gen"], cwd=work)
    assert built.returncode == 0, built.stderr
    trained = _rnngen(["train", "--cell", "mgu", "--cell-path", "gen", "--data", str(data), "--hidden", "8",
                       "--steps", "20", "--batch", "4", "--out", "mgu.npz"], cwd=work)
    assert trained.returncode == 0, trained.stderr
    command = re.search(r"sample it with `(.*?)`", trained.stdout.strip().splitlines()[-1]).group(1)
    assert command == "rnngen sample mgu.npz"
    assert checkpoint_metadata(work / "mgu.npz")["cell_path"] == str(work / "gen")
    run = subprocess.run(command, shell=True, cwd=work, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and len(run.stdout.splitlines()) == 10, run.stderr
    again = _rnngen(["sample", str(work / "mgu.npz")], cwd=elsewhere)      # from another folder
    assert again.returncode == 0 and again.stdout == run.stdout, again.stderr
    shutil.move(work / "gen", work / "moved")
    gone = _rnngen(["sample", str(work / "mgu.npz")], cwd=elsewhere)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    assert gone.stderr.startswith("rnngen sample: ") and str(work / "gen") in gone.stderr
    assert "--cell-path" in gone.stderr and "Traceback" not in gone.stderr
    rebuilt = _rnngen(["build", "--specs", str(work / "specs"), "--out", "gen2"], cwd=elsewhere)
    assert rebuilt.returncode == 0, rebuilt.stderr
    given = _rnngen(["sample", str(work / "mgu.npz"), "--cell-path", "gen2"], cwd=elsewhere)
    assert given.returncode == 0 and given.stdout == run.stdout, given.stderr


def test_train_prints_a_sample_command_that_quotes_the_path(tmp_path, data, capsys):
    out_file = tmp_path / "my run's model.npz"
    assert cli.main(["train", "--data", str(data), "--cell", "gru", "--hidden", "8", "--steps", "3",
                     "--batch", "4", "--out", str(out_file), "--samples", "0"]) == 0
    command = re.search(r"sample it with `(.*?)`", capsys.readouterr().out).group(1)
    assert shlex.split(command) == ["rnngen", "sample", str(out_file)]
