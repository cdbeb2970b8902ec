"""What a spec declares beyond its step's math: random keep-masks (`cell.mask`) and the initial
values of states that do not start at zero (`Cell(..., initial=...)`)."""
from dataclasses import dataclass

import sympy as sp

from .where import caller, check_identifier, fail

#: the initial values a spec may give by name
INITIAL_WORDS = {"lowest": "the dtype's most negative finite number"}


@dataclass
class Mask:
    """A random keep-mask: 1 with probability 1 - p, where p is the run-time rate named `rate`;
    `per` "step" (a new mask every step) or "sequence" (one per sequence: variational);
    `inverted` scales it by 1 / (1 - p) (its expectation is then 1, else 1 - p)."""
    name: str
    rate: str
    per: str
    inverted: bool
    symbol: sp.Symbol
    file: str
    line: int


def new_mask(cell, name, rate, per, inverted):
    """The Mask `cell.mask(...)` declares (its name checked and claimed among the cell's)."""
    file, line = caller()
    check_identifier("mask", name)
    rate = name if rate is None else rate
    check_identifier("rate", rate)
    if per not in ("step", "sequence"):
        fail(f"mask {name!r}: per must be 'step' or 'sequence', got {per!r}", symbol=name)
    if name in cell._names or name in cell._params:
        fail(f"mask {name!r}: symbol name already in use", symbol=name)
    cell._names.add(name)
    return Mask(name, rate, per, bool(inverted), sp.Symbol(name), file, line)


def initial_values(initial, states):
    """{state: value} of the states that do not start at zero: a finite number or 'lowest'."""
    if initial is None:
        return {}
    if not isinstance(initial, dict):
        fail(f"initial must be a dict of state name -> initial value, got {initial!r}")
    out = {}
    for s, v in initial.items():
        if s not in states:
            fail(f"initial value for undeclared state {s!r}; the states are {states}", symbol=str(s))
        if isinstance(v, str) and v in INITIAL_WORDS:
            out[s] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and abs(float(v)) < float("inf"):
            if float(v) != 0:
                out[s] = float(v)
        else:
            fail(f"initial value of state {s!r} must be a finite number or one of "
                 f"{sorted(INITIAL_WORDS)}, got {v!r}", symbol=str(s))
    return out
