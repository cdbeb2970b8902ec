"""`rnngen train` and `rnngen sample`: train the char-LM (rnngen/train/charlm.py) on a corpus with
a progress line, save and sample checkpoints, plot the loss curve."""
import math
import os
import shlex
import signal
import sys
import threading
import time

import numpy as np

from ..train.charlm import CharLM, read_corpus, train_charlm
from ..train.checkpoints import checkpoint_metadata, load_checkpoint, save_checkpoint
from ..train.files import check_writable
from ..train.memory import available_memory_bytes, format_bytes, training_memory_bytes


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
    from ..runtime.threads import threads_limited
    try:
        with threads_limited(1):       # the dense layers' small GEMMs; RNN calls use every core
            return _train(args)
    except KeyboardInterrupt:
        print("\nrnngen train: interrupted before training started; nothing written", file=sys.stderr)
        return 130


def _train(args):
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
        from ..runtime.registry import load
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
    from ..runtime.threads import threads_limited
    with threads_limited(1):
        return _sample(args)


def _sample(args):
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
