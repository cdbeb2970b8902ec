"""A character-level language model (the course's "Dinosaurus Island" exercise); its commands,
`rnngen train` and `rnngen sample`, are rnngen/tools/train_cli.py.

Each line of the corpus is one sequence. The model reads '\\n' (start) then the line's characters
and predicts, at every step, the next character, ending with '\\n': per-step softmax
cross-entropy summed over time, masked past each line's length.
"""
import numpy as np

from ..runtime.validation import as_int, positive
from .corpus import DEFAULT_FILE
from .layers import SeqModel
from .optimizers import SGD, Adam, check_finite_grads, clip_by_global_norm, clip_by_value

EOS = "\n"


class CharLM(SeqModel):
    """SeqModel over one-hot characters. vocab: a string of distinct characters, vocab[0] == '\\n'."""

    def __init__(self, vocab, cell="lstm", hidden_size=64, num_layers=1, dropout=0.0,
                 dtype=np.float32, seed=0, bidirectional=False, sizes=None, rates=None):
        if not isinstance(vocab, str) or len(set(vocab)) != len(vocab) or not vocab or vocab[0] != EOS:
            raise ValueError("vocab must be a string of distinct characters starting with '\\n'")
        if bidirectional:
            raise ValueError("bidirectional must be False: a language model reads left to right")
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}
        super().__init__(cell, len(vocab), hidden_size, len(vocab), num_layers=num_layers,
                         dropout=dropout, dtype=dtype, seed=seed, sizes=sizes, rates=rates)

    @classmethod
    def vocab_of(cls, lines):
        return EOS + "".join(sorted(set("".join(lines)) - {EOS}))

    def encode(self, lines):
        """(x one-hot (T, B, V), targets (T, B), lengths (B,)) for a batch of lines."""
        unknown = sorted(set("".join(lines)) - set(self.vocab))
        if unknown:
            raise ValueError(f"lines contain characters outside the vocabulary: {unknown}")
        lengths = np.array([len(s) + 1 for s in lines], np.int64)
        T, B, V = int(lengths.max()), len(lines), len(self.vocab)
        ids = np.zeros((T + 1, B), np.int64)  # 0 is '\n': the start input and the end target
        for b, s in enumerate(lines):
            ids[1:len(s) + 1, b] = [self.index[c] for c in s]
        x = np.zeros((T, B, V), self.dtype)
        x[np.arange(T)[:, None], np.arange(B)[None, :], ids[:T]] = 1
        return x, ids[1:], lengths

    def batch_loss(self, lines, reduction="mean", backward=True):
        x, targets, lengths = self.encode(lines)
        return self.loss(x, targets, lengths, reduction=reduction, backward=backward)

    def sample(self, n=10, temperature=1.0, seed=0, max_len=40):
        """n strings drawn one character at a time (the RNN's step() API), each ending at '\\n' or
        after max_len characters. Reproducible for a given seed."""
        n = as_int("n", n, 1)
        max_len = as_int("max_len", max_len, 1)
        temperature = positive("temperature", temperature)
        rng = np.random.default_rng(seed)
        V = len(self.vocab)
        was_training = self.rnn.training
        self.rnn.eval()
        try:
            prev = np.zeros(n, np.int64)
            state, out = None, [[] for _ in range(n)]
            done = np.zeros(n, bool)
            for _ in range(max_len):
                x = np.zeros((n, V), self.dtype)
                x[np.arange(n), prev] = 1
                y, state = self.rnn.step(x, state)
                logits = (y @ self.dense.weight.T + self.dense.bias).astype(np.float64)
                # shifted before dividing: a tiny temperature gives -inf and 0 (argmax), never inf - inf
                p = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
                cdf = np.cumsum(p, axis=1)
                u = rng.random(n) * cdf[:, -1]
                prev = np.minimum((cdf < u[:, None]).sum(axis=1), V - 1)
                for b in np.flatnonzero(~done):
                    if prev[b] == 0:
                        done[b] = True
                    else:
                        out[b].append(self.vocab[prev[b]])
                if done.all():
                    break
        finally:
            self.rnn.train(was_training)
        return ["".join(s) for s in out]


def read_corpus(path=None, lowercase=True, max_len=64):
    """Lines of a text file (default: the shipped creatures.txt), stripped, empty ones dropped,
    lines longer than max_len cut into pieces."""
    path = path or DEFAULT_FILE
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read data file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"data file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if lowercase:
        text = text.lower()
    lines = []
    for line in text.splitlines():
        line = line.strip()
        lines.extend(line[i:i + max_len] for i in range(0, len(line), max_len))
    if not lines:
        raise ValueError(f"data file {path} has no non-empty lines")
    return lines


def train_charlm(lines, cell="lstm", hidden_size=64, num_layers=1, steps=1500, batch_size=32,
                 lr=0.01, optimizer="adam", clip_norm=5.0, clip_value=None, dropout=0.0, seed=0,
                 dtype=np.float32, callback=None, model=None, should_stop=None, sizes=None, rates=None):
    """Train a CharLM on `lines` with minibatches of random lines; returns (model, losses) where
    losses[i] is step i's mean per-character loss. callback(step, loss, model) after each step;
    should_stop() is asked after each step too, and training ends there when it returns True
    (losses then holds the steps done). A loss or gradient holding NaN or inf stops training with
    a ValueError naming the step (and the parameter), before the optimizer sees it."""
    steps = as_int("steps", steps, 1)
    batch_size = as_int("batch_size", batch_size, 1)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if value is not None:
            positive(name, value)
    if model is None:
        model = CharLM(CharLM.vocab_of(lines), cell, hidden_size, num_layers, dropout=dropout,
                       dtype=dtype, seed=seed, sizes=sizes, rates=rates)
    opt = {"adam": Adam, "sgd": SGD}.get(optimizer)
    if opt is None:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    opt = opt(model.params, lr=lr)
    rng = np.random.default_rng([int(seed), 3])
    order, pos = rng.permutation(len(lines)), 0
    model.train()
    losses = []
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(lines)), 0
        batch = [lines[i] for i in order[pos:pos + batch_size]]
        pos += batch_size
        try:
            loss = model.batch_loss(batch)
            grads = check_finite_grads(model.grads)
        except ValueError as exc:
            raise ValueError(f"step {step + 1}: {exc}") from None
        if clip_value is not None:
            clip_by_value(grads, clip_value)
        if clip_norm is not None:
            clip_by_global_norm(grads, clip_norm)
        opt.step(grads)
        losses.append(loss)
        if callback is not None:
            callback(step, loss, model)
        if should_stop is not None and should_stop():
            break
    model.eval()
    return model, losses
