"""How one network call uses the cores (CPU): the schedule, the worker threads, the BLAS threads.

The generated kernels run with the GIL released (`nogil=True`), so rnngen's worker threads
(workers.py: one per CPU, pinned) run them truly in parallel. A call is split into independent
tasks, each a whole-sequence run of the generated module on part of the work, with no
synchronisation until the end:
- the two directions of a bidirectional layer run at the same time;
- a layer-direction runs as batch slices, one per remaining core (batch rows are independent for
  the whole sequence): each slice's hoisted GEMM, time loop and weight-gradient GEMMs are its own,
  and the weight gradients of the slices are added up; the one thing they share is the packed
  copy of a large weight for the per-step GEMMs (host_gemm.SharedPanels: the first slice packs
  it, the other waits for it once, before its loop);
- the layers of a stack run one after another.
Every BLAS call inside a call that is not tiny runs on one BLAS thread, serial or parallel
(OpenBLAS's own threads fight over the per-step GEMMs of 16-64 rows; see BENCHMARKS.md), set and
restored around the call through threadpoolctl (rnngen.runtime.threads), unless the user owns the
BLAS threads.

`set_num_threads(n)` is the user's setting (like torch.set_num_threads): at most n threads per
call; the default is the CPUs this process may use. If the user owns the BLAS threads
(`rnngen.blas.limit_threads`, an OPENBLAS_NUM_THREADS-like variable, their own threadpoolctl
limits) rnngen runs serially with their BLAS setting. Calls too small to gain from threads
(below MIN_WORK elements per direction) run serially and leave the BLAS threads alone.

Results: the directions' arithmetic is the serial one (bit-identical); a batch slice computes its
rows with the same kernels (outputs and input gradients identical up to BLAS's blocking, weight
gradients summed in another order: equal to ~1e-7 relative (2-norm) in float32).
"""
import contextlib

import numpy as np

from ..backends.checks import CheckedLengths, hidden_size, keywords
from ..backends.cpu.host_gemm import SharedPanels
from ..backends.masks import rows as mask_rows
from . import threads as blas
from .stack import in_order
from .workers import run_all

MIN_WORK = 32768        # T * B * H of one direction below which a call runs serially
MIN_ROWS = 8            # the fewest batch rows a slice gets

_num_threads = None


def set_num_threads(n=None):
    """At most n threads per network call (None: the CPUs this process may use)."""
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"the thread count must be an integer >= 1 or None, got {n!r}")
    _num_threads = n


def get_num_threads():
    """The threads a network call may use now (1 when the user owns the BLAS threads)."""
    if _num_threads is not None:
        return _num_threads
    if blas.user_setting() is not None:
        return 1
    return blas.available_cpus()


class Plan:
    """The tasks of one layer: directions run concurrently or not, and slices per direction."""

    def __init__(self, parallel_directions, slices, one_blas_thread=False):
        self.parallel_directions = parallel_directions
        self.slices = slices            # batch slices per direction
        self.one_blas_thread = one_blas_thread or self.parallel

    @property
    def parallel(self):
        return self.parallel_directions or self.slices > 1

    @property
    def each(self):
        """How a layer's directions run: at the same time, or one after another."""
        return run_all if self.parallel_directions else in_order


SERIAL = Plan(False, 1)


def plan(T, B, H, directions, threads=None):
    """The schedule of a layer of `directions` directions over (T, B, H) on `threads` threads."""
    if T * B * H < MIN_WORK:
        return SERIAL
    threads = get_num_threads() if threads is None else threads
    if threads < 2:
        return Plan(False, 1, one_blas_thread=True)
    parallel_directions = directions > 1      # then one task per direction (tasks do not nest)
    slices = 1 if parallel_directions else max(1, min(threads, B // MIN_ROWS))
    return Plan(parallel_directions, slices)


_UNCHANGED = contextlib.nullcontext()


def blas_for(p):
    """A context: one BLAS thread inside a call that is not tiny (unless the user owns the BLAS
    threads); the BLAS threads as they are otherwise."""
    return blas.threads_limited(1) if p.one_blas_thread else _UNCHANGED


# -- one layer-direction in batch slices ----------------------------------------------------------
class SlicedSaved:
    """What a batch-sliced forward keeps for backward: each slice's own `saved` and its rows."""

    def __init__(self, parts, bounds):
        self.parts = parts
        self.bounds = bounds


def bounds(B, slices):
    """[(b0, b1)] of `slices` near-equal slices of B rows."""
    edges = np.linspace(0, B, slices + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _rows(lengths, b0, b1):
    if lengths is None:
        return None
    return lengths.rows(b0, b1) if isinstance(lengths, CheckedLengths) else lengths[b0:b1]


def _shared_panels(fn, slices):
    """The keyword giving the slices of one call one packed copy of the weights (host_gemm.SharedPanels),
    where there are several and the module takes it (modules generated before 2026-12-07 do not)."""
    if slices > 1 and "shared_panels" in keywords(fn):
        return {"shared_panels": SharedPanels()}
    return {}


def _host_lengths(lengths):
    return lengths.host if isinstance(lengths, CheckedLengths) else lengths


def forward(gen, x, params, state0, lengths, reverse, need_grad=True, slices=1, checked=False, masks=None):
    """gen.forward over x (T, B, I), in `slices` batch slices run at the same time. Returns what
    gen.forward returns; `saved` is a SlicedSaved when sliced (backward() below takes either).
    checked: the caller (rnngen.RNN) has checked x, params, state0 and lengths as gen.forward_unchecked
    needs them (lengths as CheckedLengths), which then runs (gen.forward where a module has none).
    masks: the cell's random masks of this call (draw_masks; unless checked, those of the bridge's
    WithMasks if None), each slice given its rows."""
    if masks is None and not checked:
        masks = getattr(gen, "drawn_masks", None)
    if checked and hasattr(gen, "forward_unchecked"):
        kw = _shared_panels(gen.forward_unchecked, slices)

        def call(x, state0, lengths, masks):
            return gen.forward_unchecked(np.ascontiguousarray(x), params, state0, _host_lengths(lengths), reverse,
                                         need_grad, masks, **kw)
    else:
        takes = keywords(getattr(gen.forward, "__func__", gen.forward))   # an older module has neither
        kw = {} if need_grad or "need_grad" not in takes else {"need_grad": False}
        if checked and "params_checked" in takes:
            kw["params_checked"] = True
        kw |= _shared_panels(getattr(gen.forward, "__func__", gen.forward), slices)

        def call(x, state0, lengths, masks):
            return gen.forward(x, params, state0, lengths, reverse, **kw, **({} if masks is None else {"masks": masks}))
    if slices == 1:
        y, finals, saved = call(x, state0, lengths, masks)
        return y, finals, saved if need_grad else None
    parts = bounds(x.shape[1], slices)

    def task(b0, b1):
        s0 = None if state0 is None else tuple(None if s is None else s[b0:b1] for s in state0)
        part = None if masks is None else mask_rows(masks, gen.MASKS, b0, b1)
        return call(x[:, b0:b1], s0, _rows(lengths, b0, b1), part)

    results = run_all([lambda b0=b0, b1=b1: task(b0, b1) for b0, b1 in parts])
    y = np.concatenate([r[0] for r in results], axis=1)
    finals = tuple(np.concatenate([r[1][k] for r in results], axis=0) for k in range(len(results[0][1])))
    saved = SlicedSaved([r[2] for r in results], parts) if need_grad else None
    return y, finals, saved


def backward(gen, dy, d_final, saved, checked=False):
    """gen.backward of forward() above: the slices' backwards at the same time, their input and
    state gradients put together, their parameter gradients added. checked: the caller (rnngen.RNN)
    has checked dy (an array) and d_final as gen.backward_unchecked needs them, which then runs."""
    unchecked = checked and hasattr(gen, "backward_unchecked")
    if not isinstance(saved, SlicedSaved):
        return gen.backward_unchecked(dy, d_final, saved) if unchecked else gen.backward(dy, d_final, saved)

    fn = gen.backward_unchecked if unchecked else gen.backward
    kw = _shared_panels(getattr(fn, "__func__", fn), len(saved.parts))

    def task(part, b0, b1):
        df = None if d_final is None else tuple(None if d is None else d[b0:b1] for d in d_final)
        if unchecked:
            return gen.backward_unchecked(np.ascontiguousarray(dy[:, b0:b1]), df, part, **kw)
        return gen.backward(None if dy is None else dy[:, b0:b1], df, part, **kw)

    results = run_all([lambda p=p, b0=b0, b1=b1: task(p, b0, b1)
                       for p, (b0, b1) in zip(saved.parts, saved.bounds)])
    dx = np.concatenate([r[0] for r in results], axis=1)
    d_state0 = tuple(np.concatenate([r[1][k] for r in results], axis=0) for k in range(len(results[0][1])))
    d_params = dict(results[0][2])
    for r in results[1:]:
        for name, g in r[2].items():
            d_params[name] = d_params[name] + g
    return dx, d_state0, d_params


# -- one layer-direction on its own (the PyTorch bridge's cell calls) ----------------------------
def cell_forward(gen, need_grad=True):
    """A function (x, params, state0, lengths, reverse) -> gen.forward's results that plans the
    call from its shapes (one direction) and runs it in batch slices, with the BLAS threads set."""
    def run(x, params, state0, lengths, reverse):
        T, B, _ = x.shape
        p = plan(T, B, hidden_size(params, gen.PARAMS), 1)
        with blas_for(p):
            return forward(gen, x, params, state0, lengths, reverse, need_grad, p.slices)
    return run


def cell_backward(gen):
    """backward() above with the BLAS threads set as its forward had them."""
    def run(dy, d_final, saved):
        big = dy is not None and plan(*dy.shape, 1).one_blas_thread
        p = Plan(False, 1, one_blas_thread=big or isinstance(saved, SlicedSaved))
        with blas_for(p):
            return backward(gen, dy, d_final, saved)
    return run
