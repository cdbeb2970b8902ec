"""Random keep-masks of the cells that declare them (`cell.mask`), at run time, shared by the
generated modules of every backend, rnngen.RNN and the PyTorch bridge.

A module lists MASKS (name -> (rate, per, inverted)) and RATES (the rates' names). `draw` makes
the masks of one forward call on the host from a numpy Generator, in MASKS order, so that one seed
gives the same masks on the CPU and on the GPU (the CUDA module copies them over). A mask whose
rate is 0, or any mask in eval mode, is its expectation (1 - p, or 1 when inverted) and draws
nothing from the generator; a mask that is 1 everywhere is None (not made at all). When every step
and sequence mask of a call is 1 (`at_rate0`), the CPU and CUDA modules run the kernels compiled
from the cell with its masks set to 1, which read no mask (rate 0 costs nothing). Backward reads the
masks forward saved.

per "weight" is DropConnect of a linear's weight (`cell.linear(..., dropconnect=rate)`): the
mask is named as the weight parameter, has its shape, is drawn once per forward call and is
inverted; at rate 0 or in eval mode it is None and the weight is used as it is (nothing drawn,
nothing multiplied).
"""
import numbers

import numpy as np

from .checks import keywords


def check_rates(rates, spec_rates, where="rates"):
    """`rates` ({rate name: p in [0, 1)}, None for all 0) checked against a module's RATES."""
    if rates is None:
        return {}
    if not hasattr(rates, "items"):
        raise ValueError(f"{where} must be a dict of rate name -> probability, got {rates!r}")
    out = {}
    for name, p in rates.items():
        if name not in spec_rates:
            known = ", ".join(spec_rates) or "none"
            raise ValueError(f"{where}: unknown rate {name!r}; this cell's rates are: {known}")
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= float(p) < 1:
            raise ValueError(f"{where}[{name!r}] must be a probability in [0, 1), got {p!r}")
        out[name] = float(p)
    return out


def shape_of(per, T, B, H, name=None, params=None):
    if per == "weight":
        if params is None or name not in params:
            raise ValueError(f"the DropConnect mask of {name} needs the parameters (draw_masks(..., params=))")
        return tuple(params[name].shape)
    return (T, B, H) if per == "step" else (B, H)


def expectation(p, inverted):
    return 1.0 if inverted else 1.0 - p


def at_rate0(masks, spec_masks):
    """True when a call gives no step or sequence mask (`masks` None, or each left out or None):
    every one of them is 1, as at rate 0."""
    if masks is None:
        return True
    if not hasattr(masks, "get"):
        return False          # check_masks names the error
    return all(masks.get(name) is None for name, (_, per, _) in spec_masks.items() if per != "weight")


def draw(spec_masks, spec_rates, T, B, H, rates=None, training=True, rng=None, dtype=np.float32, params=None):
    """{mask name: host array (T, B, H) per step, (B, H) per sequence, a weight's shape for
    DropConnect (from `params`)} for one forward call; None for a mask that is 1 everywhere (rate 0,
    or eval mode of an inverted mask) and for DropConnect not drawn. rng: a numpy Generator (or a
    seed; None: fresh entropy), drawn from only for a rate > 0 in training mode. Masks at the same
    constant share one array."""
    rates = check_rates(rates, spec_rates)
    dtype = np.dtype(dtype)
    out, constant = {}, {}
    for name, (rate, per, inverted) in spec_masks.items():
        p = rates.get(rate, 0.0)
        if per == "weight" and (p == 0 or not training):
            out[name] = None
            continue
        shape = shape_of(per, T, B, H, name, params)
        if p == 0 or not training:
            value = expectation(p, inverted)
            if value == 1.0:
                out[name] = None
                continue
            if (shape, value) not in constant:
                constant[shape, value] = np.full(shape, value, dtype)
            out[name] = constant[shape, value]
            continue
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        keep = (rng.random(shape) >= p).astype(dtype)
        out[name] = keep / dtype.type(1.0 - p) if inverted else keep
    return out


def check_masks(masks, spec_masks, T, B, H, array, params=None, ones=None, at_rate0=False):
    """forward()'s `masks` ({name: array}, None: every mask at rate 0) checked; `array(name,
    value, ndim)` is the backend's conversion. A mask left out (or None) is ones (rate 0:
    `ones(shape)`, the backend's read-only ones, if given), or None with at_rate0 (the kernels of
    the cell at rate 0 read none); a DropConnect mask left out (or None) is None: the weight as it
    is."""
    if masks is None:
        masks = {}
    if not hasattr(masks, "items"):
        raise ValueError("masks must be None or a dict of mask name -> array (see draw_masks())")
    unknown = [n for n in masks if n not in spec_masks]
    if unknown:
        raise ValueError(f"masks has unknown names {unknown}; this cell's masks are {list(spec_masks)}")
    out = {}
    for name, (_, per, _) in spec_masks.items():
        if per == "weight" and masks.get(name) is None:
            out[name] = None
            continue
        if masks.get(name) is None and at_rate0:
            out[name] = None
            continue
        shape = shape_of(per, T, B, H, name, params)
        if masks.get(name) is None:
            out[name] = array(f"masks[{name!r}]", np.ones(shape), len(shape)) if ones is None else ones(shape)
            continue
        arr = array(f"masks[{name!r}]", masks[name], len(shape))
        if tuple(arr.shape) != shape:
            what = {"step": "(T, B, H)", "sequence": "(B, H)", "weight": f"the shape of params[{name!r}]"}[per]
            raise ValueError(f"masks[{name!r}] must have shape {shape} ({what}), got {tuple(arr.shape)}")
        out[name] = arr
    return out


def rows(masks, spec_masks, b0, b1):
    """The masks of batch rows b0:b1 (a batch slice of a call): per step [:, b0:b1], per sequence
    [b0:b1], a weight's (DropConnect) whole."""
    out = {}
    for name, m in masks.items():
        per = spec_masks[name][1]
        out[name] = m if m is None or per == "weight" else (m[:, b0:b1] if per == "step" else m[b0:b1])
    return out


class WithMasks:
    """Generated module `gen` with the masks of one call drawn (`drawn_masks`): its forward runs
    with them (or with the rows of them it is given: rnngen/runtime/schedule.py's batch slices).
    The PyTorch bridge hands it to its autograd Function, which calls forward with the usual
    arguments; backward uses the masks that forward saved."""

    def __init__(self, gen, masks):
        self.gen, self.drawn_masks = gen, masks
        self.NAME, self.STATES, self.PARAMS, self.MASKS = gen.NAME, gen.STATES, gen.PARAMS, gen.MASKS

    def forward(self, x, params, state0=None, lengths=None, reverse=False, need_grad=True, params_checked=False,
                masks=None, shared_panels=None):
        return self.gen.forward(x, params, state0, lengths, reverse, need_grad=need_grad, params_checked=params_checked,
                                masks=self.drawn_masks if masks is None else masks,
                                **_shared(self.gen.forward, shared_panels))

    def backward(self, dy, d_final, saved, shared_panels=None):
        return self.gen.backward(dy, d_final, saved, **_shared(self.gen.backward, shared_panels))


def _shared(fn, shared_panels):
    """The keyword passing the batch slices' shared packed weights on to the module's function fn,
    where there are some and fn takes them (a module generated before 2026-12-07 does not)."""
    return {"shared_panels": shared_panels} if shared_panels is not None and "shared_panels" in keywords(fn) else {}


def with_masks(gen, T, B, H, rates, training, rng, params):
    """`gen`, or (a cell with masks) WithMasks of the masks drawn now (draw_masks; `params` in
    PARAMS order, numpy arrays or tensors: the masks take their dtype's name)."""
    if not getattr(gen, "MASKS", None):
        return gen
    dtype = np.dtype(str(params[0].dtype).rpartition(".")[2])         # torch.float64 -> float64
    return WithMasks(gen, gen.draw_masks(T, B, H, rates, training, rng, dtype, dict(zip(gen.PARAMS, params))))
