"""Training utilities: a dense output layer, masked per-step softmax cross-entropy, gradient
clipping (by value and by global norm), SGD and Adam, a many-to-many sequence model (RNN + dense),
and checkpoints (.npz, written atomically, recording the cell's name and spec hash).
"""
import json
import os
import tempfile

import numpy as np

from . import checks
from .checks import check_lengths
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
    return np.exp(log_softmax(np.asarray(logits) / _positive("temperature", temperature)))


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


def global_norm(grads):
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_by_global_norm(grads, max_norm):
    """Scale every gradient by max_norm / norm when the global L2 norm exceeds max_norm, in place.
    Returns the norm before clipping."""
    m = _positive("max_norm", max_norm)
    norm = global_norm(grads)
    if norm > m:
        scale = m / norm
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


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
        if backward:
            self.rnn.backward(self.dense.backward(dlogits))
        return loss

    def metadata(self):
        cell = self.rnn.cell
        meta = {"format": CHECKPOINT_FORMAT, "cell": cell.NAME, "spec_sha256": cell.SPEC_SHA256,
                "input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "output_size": self.output_size, "num_layers": self.rnn.num_layers,
                "bidirectional": self.rnn.bidirectional, "dropout": self.rnn.dropout,
                "dtype": self.dtype.name, "vocab": getattr(self, "vocab", None)}
        return meta


# -- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(path, model, **extra):
    """Write model (a SeqModel or CharLM) to `path` (.npz) atomically: a temporary file in the same
    folder, then os.replace. Records the cell name and spec sha256, the sizes and the vocabulary;
    `extra` (JSON-serialisable: step, losses, ...) is stored with them."""
    meta = model.metadata()
    meta["extra"] = extra
    arrays = {f"param/{name}": value for name, value in model.params.items()}
    arrays["meta"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_checkpoint(path):
    """(metadata dict, {param name: array}) of a checkpoint written by save_checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path} is not an rnngen checkpoint ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an rnngen checkpoint (format {meta.get('format')!r})")
    return meta, params


def load_checkpoint(path, model=None, cell_path=None):
    """Load a checkpoint into `model`, or (model None) build the model it records and return it.

    The cell (name and spec sha256), sizes, layers, directions and vocabulary must match the
    model's; a mismatch is a ValueError that says what differs. `cell_path`: the folder a
    user-built cell's generated module is in (default: the built-in cells)."""
    meta, params = read_checkpoint(path)
    if model is None:
        try:
            cell = load(meta["cell"], path=cell_path)
        except ValueError as exc:
            raise ValueError(f"checkpoint {path} was trained with cell {meta['cell']!r}: {exc}") from None
        if cell.SPEC_SHA256 != meta["spec_sha256"]:
            raise ValueError(f"checkpoint {path} was trained with cell {meta['cell']!r} of spec sha256 "
                             f"{meta['spec_sha256'][:12]}..., but the available {meta['cell']!r} has "
                             f"{cell.SPEC_SHA256[:12]}... (the spec changed since)")
        kwargs = dict(num_layers=meta["num_layers"], bidirectional=meta["bidirectional"],
                      dropout=meta["dropout"], dtype=np.dtype(meta["dtype"]))
        if meta.get("vocab") is not None:
            from .charlm import CharLM
            model = CharLM(meta["vocab"], cell, meta["hidden_size"], **kwargs)
        else:
            model = SeqModel(cell, meta["input_size"], meta["hidden_size"], meta["output_size"], **kwargs)
    else:
        mine = model.metadata()
        diffs = [f"{key}: checkpoint {meta.get(key)!r}, model {mine[key]!r}"
                 for key in ("cell", "spec_sha256", "input_size", "hidden_size", "output_size",
                             "num_layers", "bidirectional", "vocab") if meta.get(key) != mine[key]]
        if diffs:
            raise ValueError(f"checkpoint {path} does not fit this model: " + "; ".join(diffs))
    if set(params) != set(model.params):
        raise ValueError(f"checkpoint {path} has parameters {sorted(params)}, the model "
                         f"{sorted(model.params)}")
    for name, value in params.items():
        if value.shape != model.params[name].shape:
            raise ValueError(f"checkpoint {path}: {name} has shape {value.shape}, the model "
                             f"{model.params[name].shape}")
        model.params[name][...] = value
    model.checkpoint_extra = meta.get("extra", {})
    return model
