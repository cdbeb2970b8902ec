"""A character-level language model (the course's "Dinosaurus Island" exercise) and the
`rnngen train` / `rnngen sample` commands.

Each line of the corpus is one sequence. The model reads '\\n' (start) then the line's characters
and predicts, at every step, the next character, ending with '\\n': per-step softmax
cross-entropy summed over time, masked past each line's length.
"""
import math
import os
import shlex
import signal
import sys
import threading
import time

import numpy as np

from .network import _int
from .training import (SeqModel, Adam, SGD, _positive, available_memory_bytes, check_finite_grads,
                       check_writable, checkpoint_metadata, clip_by_global_norm, clip_by_value, format_bytes,
                       load_checkpoint, save_checkpoint, softmax_cross_entropy, training_memory_bytes)

EOS = "\n"


class CharLM(SeqModel):
    """SeqModel over one-hot characters. vocab: a string of distinct characters, vocab[0] == '\\n'."""

    def __init__(self, vocab, cell="lstm", hidden_size=64, num_layers=1, dropout=0.0,
                 dtype=np.float32, seed=0, bidirectional=False):
        if not isinstance(vocab, str) or len(set(vocab)) != len(vocab) or not vocab or vocab[0] != EOS:
            raise ValueError("vocab must be a string of distinct characters starting with '\\n'")
        if bidirectional:
            raise ValueError("bidirectional must be False: a language model reads left to right")
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}
        super().__init__(cell, len(vocab), hidden_size, len(vocab), num_layers=num_layers,
                         dropout=dropout, dtype=dtype, seed=seed)

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
        n = _int("n", n, 1)
        max_len = _int("max_len", max_len, 1)
        temperature = _positive("temperature", temperature)
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
    from .corpus import DEFAULT_FILE
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
                 dtype=np.float32, callback=None, model=None, should_stop=None):
    """Train a CharLM on `lines` with minibatches of random lines; returns (model, losses) where
    losses[i] is step i's mean per-character loss. callback(step, loss, model) after each step;
    should_stop() is asked after each step too, and training ends there when it returns True
    (losses then holds the steps done). A loss or gradient holding NaN or inf stops training with
    a ValueError naming the step (and the parameter), before the optimizer sees it."""
    steps = _int("steps", steps, 1)
    batch_size = _int("batch_size", batch_size, 1)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if value is not None:
            _positive(name, value)
    if model is None:
        model = CharLM(CharLM.vocab_of(lines), cell, hidden_size, num_layers, dropout=dropout,
                       dtype=dtype, seed=seed)
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


# -- the command line ---------------------------------------------------------------------------
def _fmt_time(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def add_train_parser(sub):
    t = sub.add_parser("train", help="train a character-level language model (one sequence per line)",
                       description="Train a character-level language model. Ctrl-C stops after the "
                                   "current step and saves a checkpoint of it (exit status 130).")
    t.add_argument("--cell", default="lstm", help="cell name (default lstm)")
    t.add_argument("--cell-path", help="folder of a user-built cell's generated module")
    t.add_argument("--data", help="text file, one sequence per line (default: the shipped corpus "
                                  "of made-up creature names)")
    t.add_argument("--hidden", type=int, default=128, help="hidden size (default 128)")
    t.add_argument("--layers", type=int, default=1, help="number of layers (default 1)")
    t.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    t.add_argument("--batch", type=int, default=32, help="sequences per step (default 32)")
    t.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    t.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    t.add_argument("--clip-norm", type=float, default=5.0, help="clip the global gradient norm (default 5)")
    t.add_argument("--clip-value", type=float, help="also clip every gradient entry into [-m, m]")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout between layers, in [0, 1) (default 0)")
    t.add_argument("--keep-case", action="store_true", help="do not lower-case the data")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="charlm.npz", help="checkpoint file (default charlm.npz); an existing "
                                                       "file there must be an rnngen checkpoint")
    t.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    t.add_argument("--samples", type=int, default=5, help="names printed at each report (default 5)")
    t.set_defaults(func=cmd_train)


def add_sample_parser(sub):
    s = sub.add_parser("sample", help="sample from a checkpoint written by `rnngen train`")
    s.add_argument("checkpoint")
    s.add_argument("--n", type=int, default=10, help="number of samples (default 10)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-len", type=int, default=40, help="characters per sample at most (default 40)")
    s.add_argument("--cell-path", help="folder of a user-built cell's generated module (default: the "
                                       "folder the checkpoint records)")
    s.set_defaults(func=cmd_sample)


def _error(cmd, message):
    print(f"rnngen {cmd}: {message}", file=sys.stderr)
    return 2


def _positive_option(flag, value):
    if value is not None and not (math.isfinite(value) and value > 0):
        return f"{flag} must be a positive number, got {value}"
    return None


def _train_option_problem(args):
    """The first bad numeric option of `rnngen train`, as one line, or None."""
    for name, minimum in (("hidden", 1), ("layers", 1), ("steps", 1), ("batch", 1), ("samples", 0),
                          ("seed", 0)):
        if getattr(args, name) < minimum:
            return f"--{name} must be >= {minimum}, got {getattr(args, name)}"
    for flag, value in (("--lr", args.lr), ("--clip-norm", args.clip_norm), ("--clip-value", args.clip_value)):
        problem = _positive_option(flag, value)
        if problem:
            return problem
    if not 0.0 <= args.dropout < 1.0:
        return f"--dropout must lie in [0, 1), got {args.dropout}"
    return None


def _out_problem(path):
    """Why `rnngen train` cannot write its checkpoint to `path`, or None. Checked before training:
    the folder must exist and be writable, and a file already there must be an rnngen checkpoint
    (a data file or anything else of the user's is never replaced)."""
    problem = check_writable(path, "--out")
    if problem or not os.path.exists(path):
        return problem
    try:
        checkpoint_metadata(path)
    except ValueError as exc:
        return f"--out {path} exists and would be replaced, but {exc}; refusing to overwrite it"
    return None


def _memory_problem(args, cell, lines):
    V = len(CharLM.vocab_of(lines))
    T = max(len(line) for line in lines) + 1
    need = training_memory_bytes(cell, V, args.hidden, V, args.layers, False, T, args.batch,
                                 np.float32, args.optimizer)
    have = available_memory_bytes()
    if have is None or need <= have:
        return None
    return (f"--hidden {args.hidden} --layers {args.layers} --batch {args.batch} needs about "
            f"{format_bytes(need)} to train (parameters, gradients, optimizer state and activations of "
            f"{T} steps x {args.batch} sequences), but only {format_bytes(have)} of memory is available")


def _sample_command(out):
    return f"rnngen sample {shlex.quote(out)}"


class _StopOnCtrlC:
    """While active, a first Ctrl-C (SIGINT) asks training to stop after the current step (so that
    a complete step is saved); a second one interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def __call__(self):
        return self.requested


def cmd_train(args):
    try:
        return _train(args)
    except KeyboardInterrupt:
        print("\nrnngen train: interrupted before training started; nothing written", file=sys.stderr)
        return 130


def _train(args):
    from .blas import limit_threads
    limit_threads(1)
    problem = _train_option_problem(args) or _out_problem(args.out)
    if args.plot and not problem:
        problem = check_writable(args.plot, "--plot")
    if problem:
        return _error("train", problem)
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
        except ImportError:
            return _error("train", "--plot needs matplotlib: pip install 'rnngen[plot]' "
                                   "(or pip install matplotlib)")
    try:
        from .registry import load
        cell = load(args.cell, path=args.cell_path)
        lines = read_corpus(args.data, lowercase=not args.keep_case)
        problem = _memory_problem(args, cell, lines)
        if problem:
            return _error("train", problem)
        model = CharLM(CharLM.vocab_of(lines), cell, args.hidden, args.layers, dropout=args.dropout,
                       seed=args.seed)
    except ValueError as exc:
        return _error("train", str(exc))
    except MemoryError:
        return _error("train", f"out of memory building the model (--hidden {args.hidden}, "
                               f"--layers {args.layers})")
    V = len(model.vocab)
    print(f"rnngen train: cell {cell.NAME}, {args.layers} layer(s) of {args.hidden}, "
          f"{len(lines)} lines from {args.data or 'the shipped creature-names corpus'}, vocab {V}; "
          f"uniform baseline loss ln({V}) = {np.log(V):.3f} per character", flush=True)
    tty = sys.stderr.isatty()
    report_every = max(1, args.steps // 5)
    progress_every = max(1, args.steps // 20)
    start = time.perf_counter()
    state = {"ema": None, "first": None, "shown": 0.0, "saved": None}
    run = dict(seed=args.seed, data=args.data, steps=args.steps)

    def callback(step, loss, model):
        state["ema"] = loss if state["ema"] is None else 0.95 * state["ema"] + 0.05 * loss
        if state["first"] is None:
            state["first"] = loss
        done = step + 1
        elapsed = time.perf_counter() - start
        rate = done / elapsed
        report = done % report_every == 0 or done == args.steps
        filled = int(20 * done / args.steps)
        line = (f"[{'#' * filled}{'.' * (20 - filled)}] step {done}/{args.steps}  "
                f"loss {state['ema']:.3f}  {rate:.1f} steps/s  ETA {_fmt_time((args.steps - done) / rate)}")
        if tty:
            if report or elapsed - state["shown"] >= 0.1:
                state["shown"] = elapsed
                print("\r" + line, end="", file=sys.stderr, flush=True)
        elif done % progress_every == 0 or done == args.steps:
            print(line, file=sys.stderr, flush=True)
        if report:
            if tty:
                print(file=sys.stderr, flush=True)
            if args.samples:
                samples = model.sample(args.samples, seed=done)
                print(f"  samples at step {done}: {', '.join(samples)}", flush=True)
            model.train()
            save_checkpoint(args.out, model, step=done, **run)
            state["saved"] = done

    def kept():
        if state["saved"] is None:
            return "nothing was written"
        return f"{args.out} holds the checkpoint of step {state['saved']}"

    with _StopOnCtrlC() as stop:
        try:
            model, losses = train_charlm(lines, steps=args.steps, batch_size=args.batch, lr=args.lr,
                                         optimizer=args.optimizer, clip_norm=args.clip_norm,
                                         clip_value=args.clip_value, seed=args.seed, callback=callback,
                                         model=model, should_stop=stop)
        except KeyboardInterrupt:       # a second Ctrl-C: the step it cut may be half done
            print(f"\nrnngen train: interrupted again, in the middle of a step; {kept()}", file=sys.stderr)
            return 130
        except ValueError as exc:
            return _error("train", f"{exc}; {kept()}")
        except MemoryError:
            return _error("train", f"out of memory while training; {kept()}")
        done = len(losses)
        elapsed = time.perf_counter() - start
        first = float(np.mean(losses[:10]))
        last = float(np.mean(losses[-max(1, min(50, done // 10)):]))
        try:
            save_checkpoint(args.out, model, step=done, **run, loss_start=first, loss_end=last,
                            interrupted=done < args.steps)
        except ValueError as exc:
            return _error("train", f"{exc}; {kept()}")
    if done < args.steps:
        if tty:
            print(file=sys.stderr)                # end the progress line
        print(f"rnngen train: interrupted (Ctrl-C) at step {done}/{args.steps}; "
              f"saved a checkpoint of step {done} to {args.out}; sample it with "
              f"`{_sample_command(args.out)}`", file=sys.stderr, flush=True)
        return 130
    print(f"rnngen train: {done} steps in {elapsed:.1f} s ({done / elapsed:.1f} steps/s); "
          f"loss {first:.3f} (first 10 steps) -> {last:.3f} (last steps); wrote {args.out}; "
          f"sample it with `{_sample_command(args.out)}`", flush=True)
    if args.plot:
        try:
            _plot(losses, args.plot, V)
        except (OSError, ValueError) as exc:
            return _error("train", f"cannot write the loss curve to {args.plot}: {exc}")
        print(f"rnngen train: wrote the loss curve to {args.plot}")
    return 0


def _plot(losses, path, V):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    losses = np.asarray(losses)
    ax.plot(losses, lw=0.5, alpha=0.4, label="per step")
    w = min(50, len(losses))
    if w > 1:
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + (w - 1) / 2, smooth, label=f"centred mean of {w}")
    ax.axhline(np.log(V), color="gray", ls="--", label=f"uniform ln({V})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per character (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sample_option_problem(args):
    for flag, value in (("--n", args.n), ("--max-len", args.max_len)):
        if value < 1:
            return f"{flag} must be >= 1, got {value}"
    if args.seed < 0:
        return f"--seed must be >= 0, got {args.seed}"
    return _positive_option("--temperature", args.temperature)


def _sample_memory_problem(args, model):
    layers_state = model.rnn.num_layers * len(model.rnn.states) * model.rnn.hidden_size
    need = args.n * 8 * (6 * len(model.vocab) + 8 * layers_state)    # per-step arrays, from above
    have = available_memory_bytes()
    if have is None or need <= have:
        return None
    return (f"--n {args.n} needs about {format_bytes(need)} to sample, but only {format_bytes(have)} "
            f"of memory is available")


def cmd_sample(args):
    from .blas import limit_threads
    limit_threads(1)
    problem = _sample_option_problem(args)
    if problem:
        return _error("sample", problem)
    try:
        model = load_checkpoint(args.checkpoint, cell_path=args.cell_path)
        if getattr(model, "vocab", None) is None:
            return _error("sample", f"{args.checkpoint} is not a character-level language model")
        problem = _sample_memory_problem(args, model)
        if problem:
            return _error("sample", problem)
        for s in model.sample(args.n, temperature=args.temperature, seed=args.seed, max_len=args.max_len):
            print(s)
    except ValueError as exc:
        return _error("sample", str(exc))
    except MemoryError:
        return _error("sample", f"out of memory sampling {args.n} names")
    return 0
