"""Training utilities: a dense output layer, masked per-step softmax cross-entropy, gradient
clipping (by value and by global norm, without overflow; NaN/inf reported, never spread), SGD and
Adam, a many-to-many sequence model (RNN + dense), a memory estimate for training, and checkpoints
(.npz, written atomically, recording the cell's name, spec hash and folder; every part checked
when read, and only a module rnngen generated imported on a checkpoint's word).
"""
import hashlib
import json
import os
import re
import secrets
import stat
import zipfile
import zlib

import numpy as np

from . import checks
from .checks import check_lengths
from .header import check_cell_name, require as require_generated
from .network import RNN, _int
from .registry import load

CHECKPOINT_FORMAT = "rnngen-seqmodel-1"


def _positive(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


# -- the output layer and the loss ------------------------------------------------------------------
class Dense:
    """y = x @ weight.T + bias on the last axis. weight (out, in) ~ U(-1/sqrt(in), 1/sqrt(in)), bias 0."""

    def __init__(self, in_features, out_features, dtype=np.float32, seed=0):
        in_features = _int("in_features", in_features, 1)
        out_features = _int("out_features", out_features, 1)
        rng = np.random.default_rng([int(seed), 2])
        bound = 1.0 / np.sqrt(in_features)
        self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        self.bias = np.zeros(out_features, dtype)
        self.grads = {"weight": np.zeros_like(self.weight), "bias": np.zeros_like(self.bias)}
        self._x = None

    def forward(self, x):
        self._x = x
        out = x.reshape(-1, x.shape[-1]) @ self.weight.T + self.bias
        return out.reshape(x.shape[:-1] + (self.weight.shape[0],))

    def backward(self, dy):
        x2 = self._x.reshape(-1, self._x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        self.grads["weight"] = dy2.T @ x2
        self.grads["bias"] = dy2.sum(axis=0)
        return (dy2 @ self.weight).reshape(self._x.shape)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits, temperature=1.0):
    """Probabilities over the last axis, exp(logits / temperature) normalised, computed stably."""
    logits = np.asarray(logits)
    temperature = _positive("temperature", temperature)
    shifted = logits - logits.max(axis=-1, keepdims=True)   # before dividing: a tiny temperature
    return np.exp(log_softmax(shifted / temperature))        # gives -inf and 0, never inf - inf


def softmax_cross_entropy(logits, targets, lengths=None, reduction="sum"):
    """Per-step cross-entropy of softmax(logits) against integer targets, masked past each length.

    logits (T, B, V), targets (T, B) ints in [0, V) (ignored past each length), lengths (B,) or None.
    reduction 'sum': the per-step losses summed over time and batch (the course's loss);
    'mean': that sum divided by the number of valid steps. Returns (loss, dlogits)."""
    logits = checks._array("logits", logits, 3)
    T, B, V = logits.shape
    targets = np.asarray(targets)
    if targets.shape != (T, B):
        raise ValueError(f"targets must have shape (T, B) = ({T}, {B}), got {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise ValueError(f"targets must be integers, got dtype {targets.dtype}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    lengths = check_lengths(lengths, B, T)
    mask = np.arange(T)[:, None] < lengths[None, :]
    tgt = np.where(mask, targets, 0)
    if tgt.min() < 0 or tgt.max() >= V:
        raise ValueError(f"targets must lie in [0, V={V}) within each length, got min {tgt.min()} max {tgt.max()}")
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, tgt[..., None], axis=2)[..., 0]
    loss = -(picked * mask).sum()
    count = int(mask.sum())
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, tgt[..., None], np.take_along_axis(dlogits, tgt[..., None], axis=2) - 1, axis=2)
    dlogits *= mask[..., None]
    if reduction == "mean":
        scale = 1.0 / max(count, 1)
        loss *= scale
        dlogits *= dlogits.dtype.type(scale)
    return float(loss), dlogits


# -- gradient clipping --------------------------------------------------------------------------------
def clip_by_value(grads, max_value):
    """The course's clipping: every gradient entry clipped into [-max_value, max_value], in place.
    Returns grads."""
    m = _positive("max_value", max_value)
    for g in grads.values():
        np.clip(g, -m, m, out=g)
    return grads


def _nonfinite(grads):
    """[(name, 'NaN' or 'inf')] of the gradients holding a non-finite entry."""
    bad = []
    for name, g in grads.items():
        if g.size and not np.isfinite(g).all():
            bad.append((name, "NaN" if np.isnan(g).any() else "inf"))
    return bad


def check_finite_grads(grads):
    """Raise ValueError naming the first gradient that holds NaN or inf (training diverged, or the
    input held them); return grads otherwise."""
    bad = _nonfinite(grads)
    if bad:
        name, kind = bad[0]
        others = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"gradient {name!r}{others} holds {kind}: the loss diverged or the input "
                         f"holds NaN/inf; nothing was clipped or updated (try a lower learning rate)")
    return grads


def _norm_parts(grads):
    """(M, r) with M the largest |entry| over all (finite) gradients and r the global L2 norm
    divided by M, summed in float64: the norm M * r is computed without overflow (entries of 1e20
    in float32 square to inf) or underflow (entries of 1e-30 square to 0)."""
    M = max((float(np.max(np.abs(g))) for g in grads.values() if g.size), default=0.0)
    if M == 0.0:
        return 0.0, 0.0
    total = 0.0
    for g in grads.values():
        if g.size:
            scaled = np.divide(g, M, dtype=np.float64)
            total += float(np.vdot(scaled, scaled))
    return M, float(np.sqrt(total))


def global_norm(grads):
    """The L2 norm of all gradients together, computed without overflow or underflow. nan when an
    entry is NaN, inf when one is inf (or when the norm exceeds float64's range)."""
    bad = _nonfinite(grads)
    if bad:
        return float("nan") if any(kind == "NaN" for _, kind in bad) else float("inf")
    M, r = _norm_parts(grads)
    with np.errstate(over="ignore"):
        return float(np.float64(M) * r)


def clip_by_global_norm(grads, max_norm, error_if_nonfinite=True):
    """Scale every gradient by max_norm / norm when the global L2 norm exceeds max_norm, in place.
    Returns the norm before clipping (computed without overflow: see global_norm).

    A gradient holding NaN or inf is never spread into the others: by default that is a ValueError
    naming it; with error_if_nonfinite=False every gradient is left untouched and the non-finite
    norm (nan or inf) is returned, for the caller to skip the step."""
    m = _positive("max_norm", max_norm)
    if error_if_nonfinite:
        check_finite_grads(grads)
    elif _nonfinite(grads):
        return global_norm(grads)
    M, r = _norm_parts(grads)
    with np.errstate(over="ignore"):
        norm = float(np.float64(M) * r)
    if norm > m:
        for g in grads.values():
            _scale(g, M, r, m)
    return norm


def _scale(g, M, r, m):
    """g *= m / (M * r) in place, as one multiplication when that factor is a normal number of
    g's dtype, else as (g / M) * (m / r) in float64 (gradients near the top of the dtype's range)."""
    with np.errstate(under="ignore"):
        factor = (m / M) / r
        if factor >= np.finfo(g.dtype).tiny:
            g *= g.dtype.type(factor)
        else:
            g[...] = np.divide(g, M, dtype=np.float64) * (m / r)


# -- optimizers ---------------------------------------------------------------------------------------
class SGD:
    """p -= lr * (g + momentum buffer), in place on the arrays of `params`."""

    def __init__(self, params, lr=0.1, momentum=0.0):
        self.params = params
        self.lr = _positive("lr", lr)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.velocity = {n: np.zeros_like(p) for n, p in params.items()} if momentum else None

    def step(self, grads):
        for name, p in self.params.items():
            g = grads[name]
            if self.velocity is not None:
                v = self.velocity[name]
                v *= p.dtype.type(self.momentum)
                v += g
                g = v
            p -= p.dtype.type(self.lr) * g


class Adam:
    """Adam (Kingma & Ba), in place on the arrays of `params`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr = _positive("lr", lr)
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.betas = (b1, b2)
        self.eps = _positive("eps", eps)
        self.t = 0
        self.m = {n: np.zeros_like(p) for n, p in params.items()}
        self.v = {n: np.zeros_like(p) for n, p in params.items()}

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for name, p in self.params.items():
            g = grads[name]
            m, v = self.m[name], self.v[name]
            m *= p.dtype.type(b1)
            m += p.dtype.type(1 - b1) * g
            v *= p.dtype.type(b2)
            v += p.dtype.type(1 - b2) * (g * g)
            p -= p.dtype.type(lr_t) * m / (np.sqrt(v) + p.dtype.type(self.eps))


# -- a many-to-many model ---------------------------------------------------------------------------
class SeqModel:
    """An RNN followed by a dense layer at every step: logits (T, B, V) for per-step classification
    (a language model predicts the next token). `params` / `grads` hold the RNN's parameters under
    torch names plus 'dense.weight' and 'dense.bias'."""

    def __init__(self, cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False,
                 dropout=0.0, dtype=np.float32, seed=0):
        self.rnn = RNN(cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                       dropout=dropout, dtype=dtype, seed=seed)
        self.dense = Dense(self.rnn.output_size, output_size, dtype, seed)
        self.output_size = self.dense.weight.shape[0]
        self.params = dict(self.rnn.params)
        self.params["dense.weight"] = self.dense.weight
        self.params["dense.bias"] = self.dense.bias

    @property
    def dtype(self):
        return self.rnn.dtype

    @property
    def grads(self):
        g = dict(self.rnn.grads)
        g["dense.weight"] = self.dense.grads["weight"]
        g["dense.bias"] = self.dense.grads["bias"]
        return g

    def train(self, mode=True):
        self.rnn.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def logits(self, x, state0=None, lengths=None):
        y, final = self.rnn.forward(x, state0, lengths)
        return self.dense.forward(y), final

    def loss(self, x, targets, lengths=None, reduction="sum", backward=True):
        """Forward, masked per-step softmax cross-entropy, and (by default) backward into .grads."""
        logits, _ = self.logits(x, None, lengths)
        loss, dlogits = softmax_cross_entropy(logits, targets, lengths, reduction)
        if backward and not np.isfinite(loss):
            raise ValueError(f"the loss is {loss}: the parameters overflowed (training diverged; "
                             "try a lower learning rate)")
        if backward:
            self.rnn.backward(self.dense.backward(dlogits))
        return loss

    def metadata(self):
        cell = self.rnn.cell
        meta = {"format": CHECKPOINT_FORMAT, "cell": cell.NAME, "spec_sha256": cell.SPEC_SHA256,
                "input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "output_size": self.output_size, "num_layers": self.rnn.num_layers,
                "bidirectional": self.rnn.bidirectional, "dropout": self.rnn.dropout,
                "dtype": self.dtype.name, "vocab": getattr(self, "vocab", None),
                "cell_path": cell_folder(cell)}
        return meta


# -- memory -----------------------------------------------------------------------------------------
def parameter_shapes(cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False):
    """{name: shape} of a SeqModel's parameters (the RNN's under torch names, then the dense
    layer's), computed from the cell's PARAMS without allocating anything."""
    directions = 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        layer_in = input_size if k == 0 else hidden_size * directions
        for d in range(directions):
            for name, shape in cell.PARAMS.items():
                shapes[RNN._key(name, k, d)] = checks.param_shape(shape, layer_in, hidden_size)
    shapes["dense.weight"] = (output_size, hidden_size * directions)
    shapes["dense.bias"] = (output_size,)
    return shapes


def training_memory_bytes(cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False,
                          seq_len=1, batch_size=1, dtype=np.float32, optimizer="adam"):
    """An estimate (from above) of the memory that training a SeqModel takes: parameters, their
    gradients and a transient copy, Adam's two moments, and the activations of one step of
    seq_len x batch_size (each linear's outputs, the states and outputs of every layer, kept for
    backward, and as much again for their gradients; the logits, their softmax and gradient)."""
    shapes = parameter_shapes(cell, input_size, hidden_size, output_size, num_layers, bidirectional)
    sizes = [int(np.prod(s, dtype=object)) for s in shapes.values()]
    copies = 3 + (2 if optimizer == "adam" else 1)
    elements = copies * sum(sizes) + 3 * max(sizes)          # + the optimizer's temporaries
    rows = sum(checks.param_shape(s, 1, hidden_size)[0] for s in cell.PARAMS.values() if len(s) == 2)
    per_layer = rows + (len(cell.STATES) + 2) * hidden_size
    directions = 2 if bidirectional else 1
    elements += 2 * seq_len * batch_size * num_layers * directions * per_layer
    elements += seq_len * batch_size * (4 * output_size + input_size)
    return elements * np.dtype(dtype).itemsize


def available_memory_bytes():
    """The memory this process may still use: /proc/meminfo's MemAvailable (Linux), lowered to what
    a cgroup v2 limit leaves, else the physical memory; None when none of them can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            return None
    return min(found)


def format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


# -- checkpoints ------------------------------------------------------------------------------------
# A checkpoint is an uncompressed .npz: "meta" (a JSON object, below) and "param/<name>" arrays.
META_KEYS = ("format", "cell", "spec_sha256", "input_size", "hidden_size", "output_size", "num_layers",
             "bidirectional", "dropout", "dtype", "vocab")          # required; "cell_path", "extra" optional
_TEMP_INFIX = ".tmp-"


def cell_folder(cell):
    """None for a built-in cell, else the absolute folder of the cell's generated module."""
    if cell.__name__.startswith("rnngen.generated."):
        return None
    file = getattr(cell, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) if file else None


def _temp_stem(target):
    """The start of the temporary files' names of checkpoint `target` (its basename, hidden)."""
    base = os.path.basename(target)
    if len(base) > 120:          # a pid and random digits follow: stay under NAME_MAX (255)
        base = base[:80] + "~" + hashlib.sha256(base.encode()).hexdigest()[:16]
    return "." + base + _TEMP_INFIX


def _process_alive(pid):
    if os.name != "posix":
        return True                      # no safe probe: never remove another process's file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_orphaned_temps(target):
    """Remove the temporary files that earlier saves of `target` left behind when they were killed:
    files named .<target name>.tmp-<pid>-<hex>.npz in its folder whose process <pid> is gone."""
    folder = os.path.dirname(os.path.abspath(target))
    pattern = re.compile(re.escape(_temp_stem(target)) + r"(\d+)-[0-9a-f]+\.npz")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(target):
    """(fd, name) of a new file .<target name>.tmp-<pid>-<hex>.npz beside `target` (mode: the
    umask's, as for any new file). Raises OSError."""
    stem = os.path.join(os.path.dirname(target), _temp_stem(target) + f"{os.getpid()}-")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = stem + secrets.token_hex(4) + ".npz"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_atomically(path, write):
    """Call write(binary file) on a new temporary file beside `path`, fsync it, then os.replace it
    onto `path`: `path` is either its old content or the complete new one, never a part. A save
    that is killed leaves its temporary file; the next save of the same path removes it."""
    path = os.fspath(path)
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise ValueError(f"cannot write {path}: it is a folder")
    folder = os.path.dirname(target)
    _remove_orphaned_temps(target)
    try:
        fd, tmp = _create_temp(target)
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror} ({folder})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))   # replacing keeps the mode
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    _fsync_folder(folder)
    return path


def check_writable(path, flag="path"):
    """None when `path` can be written by write_atomically, else a one-line reason naming `flag`.
    Creates nothing: the probe file it makes beside `path` is removed at once (and, were the
    process killed in between, by the next save, as a temporary file of `path`)."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        return f"{flag} {path} is a folder; name a file in it (e.g. {os.path.join(path, 'charlm.npz')})"
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist (create it first)"
        return f"{flag} {path}: {folder} {what}"
    try:
        fd, probe = _create_temp(target)
    except OSError as exc:
        return f"{flag} {path}: cannot write in {folder} ({exc.strerror})"
    os.close(fd)
    os.remove(probe)
    return None


def save_checkpoint(path, model, **extra):
    """Write model (a SeqModel or CharLM) to `path` (.npz) atomically (write_atomically). Records
    the cell's name, spec sha256 and (for a user-built cell) the absolute folder of its module,
    the sizes and the vocabulary; `extra` (JSON-serialisable: step, losses, ...) is stored with
    them. Raises ValueError when `path` cannot be written (its old content is then kept)."""
    meta = model.metadata()
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
        from . import generated
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
                  dropout=meta["dropout"], dtype=np.dtype(meta["dtype"]))
    try:
        if meta["vocab"] is not None:
            from .charlm import CharLM
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
            ckpt.check_shapes(parameter_shapes(cell, meta["input_size"], meta["hidden_size"],
                                               meta["output_size"], meta["num_layers"], meta["bidirectional"]))
            params = ckpt.read_params()
            model = _build_model(ckpt, cell)
        else:
            mine = model.metadata()
            diffs = [f"{key}: checkpoint {meta.get(key)!r}, model {mine[key]!r}"
                     for key in ("cell", "spec_sha256", "input_size", "hidden_size", "output_size",
                                 "num_layers", "bidirectional", "vocab") if meta.get(key) != mine[key]]
            if diffs:
                raise ValueError(f"checkpoint {ckpt.path} does not fit this model: " + "; ".join(diffs))
            ckpt.check_shapes({name: p.shape for name, p in model.params.items()})
            params = ckpt.read_params()
    for name, value in params.items():
        model.params[name][...] = value
    model.checkpoint_extra = meta.get("extra", {})
    return model
