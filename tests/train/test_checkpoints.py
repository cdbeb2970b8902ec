"""Checkpoints under bad input and faults: every bad file is a ValueError naming it (and one line
from `rnngen sample`); only modules rnngen generated are imported on a checkpoint's word; a save is
atomic, and the temporary files of killed saves are removed by the next save."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnngen import cli
from rnngen.tools.build import builtin_generated_dir
from rnngen.charlm import CharLM
from rnngen.runtime.header import require as require_generated
from rnngen.training import (META_KEYS, SeqModel, checkpoint_metadata, load_checkpoint, read_checkpoint,
                             save_checkpoint)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def good(tmp_path):
    """A real checkpoint of a small character-level GRU, and its model."""
    model = CharLM("\nabcd", "gru", 4, seed=3)
    path = tmp_path / "good.npz"
    save_checkpoint(path, model, step=7)
    return path, model


def _parts(path):
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    return meta, params


def _write(path, meta, params, meta_array=None):
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays["meta"] = np.array(json.dumps(meta)) if meta_array is None else meta_array
    np.savez(path, **arrays)
    return path


def _refused(path, capsys, match="", readers=(load_checkpoint, read_checkpoint)):
    """load_checkpoint, read_checkpoint and `rnngen sample` all refuse `path` with one clear line
    (read_checkpoint does not import the cell: what only the cell can tell is load_checkpoint's)."""
    for read in readers:
        with pytest.raises(ValueError) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert re.search(match, str(info.value)), str(info.value)
    assert cli.main(["sample", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("rnngen sample: ") and err.count("\n") == 1 and str(path) in err
    return str(info.value)


def test_truncated_checkpoints_at_every_kind_of_offset(good, capsys):
    path, _ = good
    data = path.read_bytes()
    size = len(data)
    offsets = sorted({0, 1, 2, 4, 10, 30, 64, 100, 200, size // 4, size // 3, size // 2, 2 * size // 3,
                      size - 200, size - 100, size - 23, size - 22, size - 10, size - 1})
    for offset in offsets:
        cut = path.with_name(f"cut{offset}.npz")
        cut.write_bytes(data[:offset])
        _refused(cut, capsys)


def test_files_that_are_not_checkpoints(tmp_path, capsys):
    rng = np.random.default_rng(0)
    cases = {
        "empty.npz": (b"", "empty"),
        "random.npz": (b"\x01" + rng.bytes(4000), "not an .npz"),
        "random_pk.npz": (b"PK\x03\x04" + rng.bytes(4000), ""),
        "text.npz": (b"tyrannosaurus\nvelociraptor\n", "not an .npz"),
    }
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        _refused(tmp_path / name, capsys, match)
    np.save(tmp_path / "array.npy", np.ones(3))
    _refused(tmp_path / "array.npy", capsys, r"\.npy array")
    os.replace(tmp_path / "array.npy", tmp_path / "array_named.npz")
    _refused(tmp_path / "array_named.npz", capsys, r"\.npy array")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _refused(tmp_path / "pickled.npy", capsys, r"\.npy array")
    np.savez(tmp_path / "nometa.npz", weight=np.ones(3))
    _refused(tmp_path / "nometa.npz", capsys, "no 'meta' entry")
    with zipfile.ZipFile(tmp_path / "plainzip.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    _refused(tmp_path / "plainzip.npz", capsys, "no 'meta' entry")
    (tmp_path / "folder.npz").mkdir()
    _refused(tmp_path / "folder.npz", capsys, "folder")
    _refused(tmp_path / "absent.npz", capsys, "does not exist")


def test_metadata_that_is_not_an_object(good, tmp_path, capsys):
    _, model = good
    meta, params = _parts(good[0])
    for name, value, match in [("list.npz", np.array(json.dumps([1, 2])), "JSON list"),
                               ("number.npz", np.array("3"), "JSON int"),
                               ("notjson.npz", np.array("{cell: gru"), "not JSON"),
                               ("deep.npz", np.array("[" * 100000 + "]" * 100000), "not JSON"),
                               ("intarray.npz", np.arange(3), "not a JSON string"),
                               ("bytes.npz", np.array(b"{}"), "not a JSON string")]:
        _refused(_write(tmp_path / name, None, params, meta_array=value), capsys, match)


def test_metadata_missing_each_key(good, tmp_path, capsys):
    meta, params = _parts(good[0])
    for key in META_KEYS:
        broken = {k: v for k, v in meta.items() if k != key}
        message = _refused(_write(tmp_path / f"no_{key}.npz", broken, params), capsys)
        assert repr(key) in message or "format" in message


@pytest.mark.parametrize("key, value", [
    ("hidden_size", "abc"), ("hidden_size", 0), ("hidden_size", -4), ("hidden_size", 4.0), ("hidden_size", True),
    ("hidden_size", None), ("input_size", [5]), ("output_size", "5"), ("num_layers", 0), ("num_layers", 1.5),
    ("vocab", ["\n", "a", "b", "c", "d"]), ("vocab", 5), ("vocab", "abcd\n"), ("vocab", "\naabc"),
    ("vocab", "\nabc"), ("dtype", "foo"), ("dtype", "int32"), ("dtype", None), ("cell", "../gru"),
    ("cell", "_cuda_gru"), ("cell", "__init__"), ("cell", "os.path"), ("cell", 5), ("cell", ""),
    ("spec_sha256", 123), ("spec_sha256", "abc"), ("bidirectional", "yes"), ("bidirectional", 1),
    ("bidirectional", True), ("dropout", 2), ("dropout", "x"), ("dropout", -0.5), ("dropout", True),
    ("dropout", float("nan")), ("format", "other-format"), ("format", None), ("cell_path", "relative/gen"),
    ("cell_path", 5), ("extra", [1, 2]),
])
def test_metadata_values_of_the_wrong_type(good, tmp_path, capsys, key, value):
    meta, params = _parts(good[0])
    meta[key] = value
    message = _refused(_write(tmp_path / "bad.npz", meta, params), capsys)
    assert key in message or (key == "vocab" and "vocabulary" in message) or \
        (key == "bidirectional" and "bidirectional" in message)


def test_parameters_of_the_wrong_dtype_shape_or_value(good, tmp_path, capsys):
    meta, params = _parts(good[0])
    cases = {
        "float64": ({**params, "weight_hh_l0": params["weight_hh_l0"].astype(np.float64)}, "dtype float64"),
        "int": ({**params, "bias_ih_l0": params["bias_ih_l0"].astype(np.int32)}, "dtype int32"),
        "object": ({**params, "bias_ih_l0": np.array([None] * 12, dtype=object)}, "dtype object"),
        "bigendian": ({**params, "bias_ih_l0": params["bias_ih_l0"].astype(">f4")}, "dtype >f4"),
        "shape": ({**params, "weight_hh_l0": params["weight_hh_l0"][:, :3]}, "shape"),
        "missing": ({k: v for k, v in params.items() if k != "dense.bias"}, "missing.*dense.bias"),
        "extra": ({**params, "weight_hr_l0": np.ones((2, 2), np.float32)}, "unexpected.*weight_hr_l0"),
        "nan": ({**params, "weight_ih_l0": np.full_like(params["weight_ih_l0"], np.nan)}, "NaN"),
        "inf": ({**params, "dense.weight": np.full_like(params["dense.weight"], np.inf)}, "inf"),
    }
    for name, (bad, match) in cases.items():
        readers = (load_checkpoint,) if name in ("shape", "missing", "extra") else (load_checkpoint, read_checkpoint)
        _refused(_write(tmp_path / f"{name}.npz", meta, bad), capsys, match, readers)


def test_corrupted_bytes_are_caught_by_the_archive_checksums(good, tmp_path, capsys):
    path, model = good
    data = bytearray(path.read_bytes())
    for what, needle in [("param", model.params["weight_hh_l0"].tobytes()[:16]), ("meta", '"hidden_size"'.encode("utf-32-le"))]:
        at = bytes(data).find(needle)
        assert at > 0
        broken = bytearray(data)
        broken[at + 3] ^= 0xFF
        bad = tmp_path / f"flipped_{what}.npz"
        bad.write_bytes(bytes(broken))
        _refused(bad, capsys)


def test_a_model_given_to_load_into_is_unchanged_by_a_bad_file(good, tmp_path):
    meta, params = _parts(good[0])
    params["dense.bias"] = np.full_like(params["dense.bias"], np.nan)   # read last
    bad = _write(tmp_path / "bad.npz", meta, params)
    target = CharLM("\nabcd", "gru", 4, seed=9)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(ValueError, match="NaN"):
        load_checkpoint(bad, target)
    for k, v in target.params.items():
        np.testing.assert_array_equal(v, before[k])


# -- which module a checkpoint may import ------------------------------------------------------------
def test_every_built_in_module_passes_the_header_check_and_others_fail(tmp_path):
    import rnngen
    folder = builtin_generated_dir()
    for name in rnngen.available():
        assert require_generated(os.path.join(folder, f"{name}.py"), name) == rnngen.load(name).SPEC_SHA256
    with pytest.raises(ValueError, match="not a module generated by rnngen for cell 'lstm'"):
        require_generated(os.path.join(folder, "gru.py"), "lstm")
    for name in ("_cuda_gru", "__init__", "os.path", "../gru", ""):
        with pytest.raises(ValueError, match="identifier not starting with '_'"):
            require_generated(os.path.join(folder, f"{name}.py"), name)
    lying = tmp_path / "setup.py"
    lying.write_text('"""Cell `setup`: forward and backward kernels generated by rnngen. Do not edit.\n"""\n'
                     'import os\nos.system("true")\nNAME = "setup"\n')
    with pytest.raises(ValueError, match="not a module generated by rnngen"):
        require_generated(lying, "setup")
    (tmp_path / "binary.py").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="binary.py"):
        require_generated(tmp_path / "binary.py", "binary")


def _planted(folder, name, marker, header=""):
    """A `name`.py in `folder` that creates `marker` when imported (optionally under a header)."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(header + f"open({str(marker)!r}, 'w').close()\n")


def test_a_checkpoint_cannot_choose_a_file_that_rnngen_did_not_generate(good, tmp_path):
    """A checkpoint naming cell `setup` (or any other) imported DIR/setup.py from --cell-path."""
    meta, params = _parts(good[0])
    folder, marker = tmp_path / "project", tmp_path / "imported"
    _planted(folder, "setup", marker)
    _planted(folder, "conftest", marker, '"""Cell `conftest`: forward and backward kernels generated by '
                                         'rnngen. Do not edit.\n"""\n')
    for name in ("setup", "conftest"):
        crafted = dict(meta, cell=name)
        by_argument = _write(tmp_path / f"{name}_arg.npz", crafted, params)
        with pytest.raises(ValueError, match=f"not a module generated by rnngen for cell '{name}'"):
            load_checkpoint(by_argument, cell_path=folder)
        by_record = _write(tmp_path / f"{name}_rec.npz", dict(crafted, cell_path=str(folder)), params)
        with pytest.raises(ValueError, match=f"not a module generated by rnngen for cell '{name}'"):
            load_checkpoint(by_record)
        assert cli.main(["sample", str(by_record)]) == 2
    assert not marker.exists()


def test_a_generated_module_of_another_spec_is_not_imported(good, tmp_path):
    """The spec sha256 is compared on the file's text, before it is imported."""
    meta, params = _parts(good[0])
    folder, marker = tmp_path / "cells", tmp_path / "imported"
    folder.mkdir()
    text = Path(builtin_generated_dir(), "gru.py").read_text()
    (folder / "gru.py").write_text(text + f"\nopen({str(marker)!r}, 'w').close()\n")
    other = _write(tmp_path / "other.npz", dict(meta, spec_sha256="0" * 64), params)
    with pytest.raises(ValueError, match="the spec changed since"):
        load_checkpoint(other, cell_path=folder)
    assert not marker.exists()


def test_a_built_in_cell_records_no_folder_and_an_unknown_one_says_what_to_pass(good, tmp_path):
    meta, params = _parts(good[0])
    assert meta["cell_path"] is None
    unknown = _write(tmp_path / "mine.npz", dict(meta, cell="mine"), params)
    with pytest.raises(ValueError, match=r"not a built-in cell: pass the folder of its generated module "
                                         r"\(--cell-path DIR"):
        load_checkpoint(unknown)


# -- atomic saves --------------------------------------------------------------------------------------
def test_saving_into_a_missing_folder_or_onto_a_folder_is_a_clear_error(good, tmp_path):
    _, model = good
    with pytest.raises(ValueError, match="cannot write .*missing.*No such file"):
        save_checkpoint(tmp_path / "missing" / "m.npz", model)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match="it is a folder"):
        save_checkpoint(tmp_path / "dir.npz", model)
    assert sorted(os.listdir(tmp_path)) == ["dir.npz", "good.npz"]
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "m.npz", model, step=object())
    assert not (tmp_path / "m.npz").exists()


def test_replacing_a_checkpoint_keeps_its_permissions(good):
    path, model = good
    os.chmod(path, 0o640)
    save_checkpoint(path, model, step=8)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert checkpoint_metadata(path)["extra"] == {"step": 8}


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from rnngen.training import SeqModel, save_checkpoint
    model = SeqModel("lstm", 256, 1024, 64, seed=1)      # ~22 MB of parameters
    print("ready", flush=True)
    step = 0
    while True:
        step += 1
        save_checkpoint(sys.argv[1], model, step=step)
""")


def _temps(folder, target):
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{target}.tmp-"))


def test_a_killed_save_keeps_the_old_checkpoint_and_its_temp_is_removed_by_the_next_save(tmp_path):
    """SIGKILL a process in the middle of saving a big checkpoint, several times: the target is
    always a complete checkpoint (the first one, or a later complete one), and the temporary
    files the killed saves left are removed by the next save of that target, and only them."""
    target = tmp_path / "big.npz"
    model = SeqModel("lstm", 256, 1024, 64, seed=1)
    save_checkpoint(target, model, step=0)
    keep = [tmp_path / ".other.npz.tmp-999999999-abcd.npz", tmp_path / f".big.npz.tmp-{os.getpid()}-0123.npz",
            tmp_path / ".big.npz.tmp-notes.txt", tmp_path / "big.npz.tmp-1-ab.npz"]
    for path in keep:
        path.write_bytes(b"not ours to remove")
    dead = tmp_path / ".big.npz.tmp-999999999-abcd.npz"      # a pid above any pid_max: gone
    dead.write_bytes(b"left by a killed save")
    orphans = set()
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 120
            mine = re.compile(rf"\.big\.npz\.tmp-{proc.pid}-[0-9a-f]+\.npz")
            while not any(mine.fullmatch(n) for n in os.listdir(tmp_path)):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.0005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        orphans |= {n for n in os.listdir(tmp_path) if mine.fullmatch(n)}
        extra = checkpoint_metadata(target)["extra"]     # complete: the old one or a later whole one
        loaded = load_checkpoint(target)
        np.testing.assert_array_equal(loaded.params["weight_hh_l0"], model.params["weight_hh_l0"])
        assert isinstance(extra["step"], int)
    assert orphans                              # the kills did leave partial files behind
    save_checkpoint(target, model, step=-1)
    left = set(os.listdir(tmp_path))
    assert not orphans & left and dead.name not in left
    assert left == {"big.npz"} | {p.name for p in keep}
    assert checkpoint_metadata(target)["extra"] == {"step": -1}
