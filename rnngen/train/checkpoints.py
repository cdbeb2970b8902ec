"""Checkpoints of a SeqModel (or a CharLM): an uncompressed .npz of the parameters and a JSON
record of the cell's name, spec hash and folder, the sizes and the vocabulary, written atomically;
every part checked when read, and only a module rnngen generated imported on a checkpoint's word.
"""
import json
import os
import re
import zipfile
import zlib

import numpy as np

from ..runtime.header import check_cell_name, require as require_generated
from ..runtime.registry import load
from .charlm import CharLM
from .files import write_atomically
from .layers import SeqModel
from .memory import parameter_shapes

CHECKPOINT_FORMAT = "rnngen-seqmodel-1"
# A checkpoint is an uncompressed .npz: "meta" (a JSON object, below) and "param/<name>" arrays.
META_KEYS = ("format", "cell", "spec_sha256", "input_size", "hidden_size", "output_size", "num_layers",
             "bidirectional", "dropout", "dtype", "vocab")          # required; "cell_path", "extra",
# "sizes" ({name: int}: the cell's run-time sizes, e.g. proj_size; absent means none) and "rates"
# ({name: p}: the rates of the cell's random masks) optional


def cell_folder(cell):
    """None for a built-in cell, else the absolute folder of the cell's generated module."""
    if cell.__name__.startswith("rnngen.generated."):
        return None
    file = getattr(cell, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) if file else None


def model_metadata(model):
    """What a checkpoint records of `model` (a SeqModel or a CharLM)."""
    rnn = model.rnn
    cell = rnn.cell
    return {"format": CHECKPOINT_FORMAT, "cell": cell.NAME, "spec_sha256": cell.SPEC_SHA256,
            "input_size": rnn.input_size, "hidden_size": rnn.hidden_size,
            "output_size": model.output_size, "num_layers": rnn.num_layers,
            "bidirectional": rnn.bidirectional, "dropout": rnn.dropout,
            "dtype": model.dtype.name, "vocab": getattr(model, "vocab", None),
            "cell_path": cell_folder(cell), "sizes": dict(rnn.sizes), "rates": dict(rnn.rates)}


def save_checkpoint(path, model, **extra):
    """Write model (a SeqModel or CharLM) to `path` (.npz) atomically (write_atomically). Records
    the cell's name, spec sha256 and (for a user-built cell) the absolute folder of its module,
    the sizes and the vocabulary; `extra` (JSON-serialisable: step, losses, ...) is stored with
    them. Raises ValueError when `path` cannot be written (its old content is then kept)."""
    meta = model_metadata(model)
    meta["extra"] = extra
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    arrays = {f"param/{name}": value for name, value in model.params.items()}
    arrays["meta"] = np.array(text)
    return write_atomically(path, lambda f: np.savez(f, **arrays))


class _Checkpoint:
    """An open checkpoint file: its metadata checked on opening, its parameters read on demand.
    Every failure is a ValueError naming the file and what is wrong with it."""

    def __init__(self, path):
        self.path = path = os.fspath(path)
        if not os.path.exists(path):
            raise ValueError(f"checkpoint {path} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"checkpoint {path} is a folder, not a checkpoint file")
        self._check_magic()
        try:
            data = np.load(path, allow_pickle=False)
        except MemoryError:
            raise self.error("its header asks for more memory than there is") from None
        except Exception as exc:                 # numpy and zipfile raise many kinds on bad bytes
            raise self.error(_reason(exc)) from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise self.error("it is a single .npy array, not an .npz archive written by save_checkpoint")
        self.data = data
        try:
            self.meta = self._read_meta()
            self.headers = self._read_headers()
        except BaseException:
            data.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.data.close()

    def _check_magic(self):
        try:
            with open(self.path, "rb") as f:
                head = f.read(6)
        except OSError as exc:
            raise ValueError(f"cannot read checkpoint {self.path}: {exc.strerror}") from None
        if not head:
            raise self.error("the file is empty (0 bytes)")
        if head == b"\x93NUMPY":
            raise self.error("it is a single .npy array, not an .npz archive written by save_checkpoint")
        if not head.startswith(b"PK"):
            raise self.error("it is not an .npz (zip) archive")

    def error(self, what):
        return ValueError(f"{self.path} is not a valid rnngen checkpoint: {what}")

    def _read_meta(self):
        if "meta" not in self.data.files:
            raise self.error("it has no 'meta' entry (it was not written by rnngen's save_checkpoint)")
        try:
            raw = self.data["meta"]
        except Exception as exc:
            raise self.error(f"its 'meta' entry: {_reason(exc)}") from None
        if raw.shape != () or raw.dtype.kind != "U":
            raise self.error(f"its 'meta' entry is a {raw.dtype} array of shape {raw.shape}, not a JSON string")
        try:
            meta = json.loads(str(raw))
        except (ValueError, RecursionError) as exc:
            raise self.error(f"its metadata is not JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise self.error(f"its metadata is a JSON {type(meta).__name__}, not an object")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise self.error(f"its metadata's format is {_short(meta.get('format'))}, not {CHECKPOINT_FORMAT!r}")
        missing = [key for key in META_KEYS if key not in meta]
        if missing:
            raise self.error(f"its metadata lacks {', '.join(map(repr, missing))}")
        for key, check in _META_CHECKS.items():
            if key in meta:
                problem = check(meta[key])
                if problem:
                    raise self.error(f"metadata {key!r} must be {problem}, got {_short(meta[key])}")
        vocab = meta["vocab"]
        if vocab is not None and not (meta["input_size"] == meta["output_size"] == len(vocab)):
            raise self.error(f"its vocabulary has {len(vocab)} characters but input_size is "
                             f"{meta['input_size']} and output_size {meta['output_size']}")
        if vocab is not None and meta["bidirectional"]:
            raise self.error("a character-level language model cannot be bidirectional")
        return meta

    def _read_headers(self):
        """{parameter name: (member, shape, dtype)} from each array's .npy header (not its data)."""
        zf = self.data.zip
        sizes = {info.filename: info.file_size for info in zf.infolist()}
        headers = {}
        for key in self.data.files:
            if not key.startswith("param/"):
                continue
            member = key + ".npy" if key + ".npy" in sizes else key
            try:
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    offset = f.tell()
            except Exception as exc:
                raise self.error(f"array {key!r}: {_reason(exc)}") from None
            name = key[len("param/"):]
            if dtype != np.dtype(self.meta["dtype"]):
                raise self.error(f"parameter {name!r} has dtype {dtype}, the checkpoint's dtype is "
                                 f"{self.meta['dtype']}")
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if offset + nbytes > sizes[member]:
                raise self.error(f"parameter {name!r} of shape {shape} needs {nbytes} bytes, its entry "
                                 f"holds {sizes[member] - offset} (truncated or corrupted)")
            headers[name] = (key, tuple(shape), dtype)
        return headers

    def check_shapes(self, expected):
        """Compare the parameters' names and shapes with `expected` ({name: shape})."""
        missing = sorted(set(expected) - set(self.headers))
        extra = sorted(set(self.headers) - set(expected))
        if missing or extra:
            raise self.error(f"its parameters do not fit the model it records: "
                             + "; ".join(part for part in (f"missing {missing}" if missing else "",
                                                           f"unexpected {extra}" if extra else "") if part))
        for name, shape in expected.items():
            if self.headers[name][1] != tuple(shape):
                raise self.error(f"parameter {name!r} has shape {self.headers[name][1]}, the model "
                                 f"{tuple(shape)}")

    def read_params(self):
        """{name: array}, every array read whole (its CRC checked) and checked finite."""
        params = {}
        for name, (key, _, _) in self.headers.items():
            try:
                value = self.data[key]
            except MemoryError:
                raise self.error(f"parameter {name!r} does not fit in memory") from None
            except Exception as exc:
                raise self.error(f"parameter {name!r}: {_reason(exc)}") from None
            if not np.isfinite(value).all():
                raise self.error(f"parameter {name!r} holds NaN or inf")
            params[name] = value
        return params


def _reason(exc):
    text = str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
    if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error)):
        return f"it is truncated or corrupted ({text})"
    return text


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad_int(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "an integer >= 1"


def _bad_vocab(value):
    if value is None:
        return None
    ok = isinstance(value, str) and value[:1] == "\n" and len(set(value)) == len(value)
    return None if ok else "null or a string of distinct characters starting with '\\n'"


def _bad_sizes(value):
    ok = isinstance(value, dict) and all(isinstance(k, str) and k.isidentifier() and _bad_int(v) is None
                                         for k, v in value.items())
    return None if ok else "an object of size name -> integer >= 1"


def _bad_cell(value):
    try:
        check_cell_name(value)
    except ValueError:
        return "an identifier not starting with '_'"
    return None


_META_CHECKS = {
    "cell": _bad_cell,
    "spec_sha256": lambda v: None if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) else
    "64 lower-case hex digits",
    "input_size": _bad_int, "hidden_size": _bad_int, "output_size": _bad_int, "num_layers": _bad_int,
    "bidirectional": lambda v: None if isinstance(v, bool) else "true or false",
    "dropout": lambda v: None if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
    else "a number in [0, 1)",
    "dtype": lambda v: None if v in ("float32", "float64") else "'float32' or 'float64'",
    "vocab": _bad_vocab,
    "cell_path": lambda v: None if v is None or (isinstance(v, str) and os.path.isabs(v)) else
    "null or an absolute folder path",
    "extra": lambda v: None if isinstance(v, dict) else "an object",
    "sizes": _bad_sizes,
    "rates": lambda v: None if isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p < 1
        for k, p in v.items()) else "an object of rate name -> number in [0, 1)",
}


def checkpoint_metadata(path):
    """The checked metadata of a checkpoint, without reading its parameters (ValueError if bad)."""
    with _Checkpoint(path) as ckpt:
        return ckpt.meta


def read_checkpoint(path):
    """(metadata dict, {param name: array}) of a checkpoint written by save_checkpoint. Every part
    is checked (the archive, the metadata's keys and types, the arrays' dtypes, sizes and values):
    a bad file is a ValueError naming it and saying what is wrong."""
    with _Checkpoint(path) as ckpt:
        return ckpt.meta, ckpt.read_params()


def _checkpoint_cell(ckpt, cell_path):
    """The generated module of the checkpoint's cell, imported only after its file's text shows that
    rnngen generated it for that cell and the same spec (a checkpoint chooses which file of a folder
    is imported: it must never run any other)."""
    meta, path = ckpt.meta, ckpt.path
    name, recorded = meta["cell"], meta.get("cell_path")
    folder = os.path.abspath(cell_path) if cell_path is not None else recorded
    trained = f"checkpoint {path} was trained with cell {name!r}"
    if folder is None:
        from .. import generated
        file = os.path.join(os.path.abspath(list(generated.__path__)[0]), f"{name}.py")
        if not os.path.isfile(file):
            raise ValueError(f"{trained}, which is not a built-in cell: pass the folder of its "
                             f"generated module (--cell-path DIR, or cell_path=)")
    else:
        file = os.path.join(folder, f"{name}.py")
        if not os.path.isfile(file):
            if cell_path is None:
                raise ValueError(f"{trained}, built in {folder}, which has no {name}.py now: rebuild "
                                 f"it there, or pass the folder it is in now (--cell-path DIR, or cell_path=)")
            raise ValueError(f"{trained}: no generated module {name}.py in {folder}; build it with "
                             f"`rnngen build {name} --specs SPECS --out {cell_path}`")
    sha = require_generated(file, name)
    if sha != meta["spec_sha256"]:
        raise ValueError(f"{trained} of spec sha256 {meta['spec_sha256'][:12]}..., but {file} has "
                         f"{sha[:12]}... (the spec changed since)")
    cell = load(name, path=None if folder is None else folder)
    if cell.SPEC_SHA256 != meta["spec_sha256"]:
        raise ValueError(f"{trained} of spec sha256 {meta['spec_sha256'][:12]}..., but the loaded "
                         f"{name!r} has {cell.SPEC_SHA256[:12]}... (the spec changed since)")
    return cell


def _build_model(ckpt, cell):
    meta = ckpt.meta
    kwargs = dict(num_layers=meta["num_layers"], bidirectional=meta["bidirectional"],
                  dropout=meta["dropout"], dtype=np.dtype(meta["dtype"]), sizes=meta.get("sizes") or {},
                  rates=meta.get("rates") or None)
    try:
        if meta["vocab"] is not None:
            return CharLM(meta["vocab"], cell, meta["hidden_size"], **kwargs)
        return SeqModel(cell, meta["input_size"], meta["hidden_size"], meta["output_size"], **kwargs)
    except MemoryError:
        raise ckpt.error(f"the model it records (hidden_size {meta['hidden_size']}, "
                         f"{meta['num_layers']} layer(s)) does not fit in memory") from None


def load_checkpoint(path, model=None, cell_path=None):
    """Load a checkpoint into `model`, or (model None) build the model it records and return it.

    The cell (name and spec sha256), sizes, layers, directions and vocabulary must match the
    model's; a mismatch is a ValueError that says what differs. `cell_path`: the folder of a
    user-built cell's generated module; by default the folder the checkpoint records (where the
    cell was when it was trained), or the built-in cells. Only a module that rnngen generated for
    that cell and spec is imported. A bad file is a ValueError naming it; `model` is left
    unchanged unless the whole checkpoint was read."""
    with _Checkpoint(path) as ckpt:
        meta = ckpt.meta
        if model is None:
            cell = _checkpoint_cell(ckpt, cell_path)
            try:
                shapes = parameter_shapes(cell, meta["input_size"], meta["hidden_size"], meta["output_size"],
                                          meta["num_layers"], meta["bidirectional"], meta.get("sizes") or {})
            except ValueError as exc:
                raise ckpt.error(f"its metadata 'sizes' do not fit cell {meta['cell']!r}: {exc}") from None
            ckpt.check_shapes(shapes)
            params = ckpt.read_params()
            model = _build_model(ckpt, cell)
        else:
            mine = model_metadata(model)
            meta = dict(meta, sizes=meta.get("sizes") or {})
            diffs = [f"{key}: checkpoint {meta.get(key)!r}, model {mine[key]!r}"
                     for key in ("cell", "spec_sha256", "input_size", "hidden_size", "output_size",
                                 "num_layers", "bidirectional", "vocab", "sizes") if meta.get(key) != mine[key]]
            if diffs:
                raise ValueError(f"checkpoint {ckpt.path} does not fit this model: " + "; ".join(diffs))
            ckpt.check_shapes({name: p.shape for name, p in model.params.items()})
            params = ckpt.read_params()
    for name, value in params.items():
        model.params[name][...] = value
    model.checkpoint_extra = meta.get("extra", {})
    return model
