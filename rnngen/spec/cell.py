"""The spec language: one time step of a recurrent cell for one (batch row, hidden unit).

    cell = Cell("lstm", states=("h", "c"), output="h")
    xi, xf, xg, xo = cell.linear("ih", cell.x, gates=4)
    ...
    cell.update(c=..., h=...)

Every call records the spec line it came from, so a later check can name it.
"""
import keyword
import os
import sys
from dataclasses import dataclass

import sympy as sp

from ..errors import SpecError
from .functions import (KNOWN_FUNCTIONS, exp, log, log_sigmoid, maximum, relu, sigmoid, softplus,  # noqa: F401
                        sqrt, step, tanh)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # rnngen/
# names a state cannot take: the Cell's own attributes (`cell.<state>` would not reach the state).
# The generated code's own locals are renamed around the spec's names, so they are not reserved.
_RESERVED = {"x", "name", "states", "output", "linear", "vector", "update", "linears", "vectors",
             "updates", "line", "file", "path", "check", "state_symbol", "update_line", "source_names", "initial",
             "mask", "masks",
             "source_exprs"}


def _caller():
    """(file, line) of the first frame outside the rnngen package: the spec's own line."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


def _fail(message, symbol=None):
    file, line = _caller()
    raise SpecError(message, file=file, line=line, symbol=symbol)


def _check_identifier(kind, name):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        _fail(f"{kind} name must be a Python identifier, got {name!r}", symbol=str(name))
    if name.startswith("_"):
        why = ("reserved for the modules rnngen generates beside a cell's, like _cuda_<cell>.py"
               if kind == "cell" else "such names belong to the generated code")
        _fail(f"{kind} name {name!r} must not start with '_' ({why})", symbol=name)


@dataclass
class Linear:
    """`v @ weight_<name>.T + bias_<name>`, split into `gates` blocks of H columns."""
    name: str
    input: sp.Expr          # cell.x, a state symbol, or a pointwise expression of H-indexed symbols
    gates: int
    bias: bool
    outputs: tuple          # one symbol per gate block: element [b, j] of that block
    file: str
    line: int
    heads: bool = False     # block-diagonal over the run-time size `heads` (see Cell.linear)
    dropconnect: str = None  # the rate of DropConnect on its weight (see Cell.linear), or None

    @property
    def of_x(self):
        return self.input == X

    @property
    def params(self):
        return (f"weight_{self.name}",) + ((f"bias_{self.name}",) if self.bias else ())


@dataclass
class Vector:
    """A per-unit parameter of shape (H,)."""
    name: str
    symbol: sp.Symbol
    file: str
    line: int


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


X = sp.Symbol("x")


INITIAL_WORDS = {"lowest": "the dtype's most negative finite number"}


def _initial_values(initial, states):
    """{state: value} of the states that do not start at zero: a finite number or 'lowest'."""
    if initial is None:
        return {}
    if not isinstance(initial, dict):
        _fail(f"initial must be a dict of state name -> initial value, got {initial!r}")
    out = {}
    for s, v in initial.items():
        if s not in states:
            _fail(f"initial value for undeclared state {s!r}; the states are {states}", symbol=str(s))
        if isinstance(v, str) and v in INITIAL_WORDS:
            out[s] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and abs(float(v)) < float("inf"):
            if float(v) != 0:
                out[s] = float(v)
        else:
            _fail(f"initial value of state {s!r} must be a finite number or one of "
                  f"{sorted(INITIAL_WORDS)}, got {v!r}", symbol=str(s))
    return out


class Cell:
    """One recurrent cell: its states, its linears (GEMMs), its vectors and its update.

    `initial` gives the states that do not start at zero when forward() gets no state0 for them:
    {state: a finite number, or 'lowest' (the dtype's most negative finite number)}."""

    def __init__(self, name, states=("h",), output="h", initial=None):
        self.file, self.line = _caller()
        _check_identifier("cell", name)
        if isinstance(states, str):
            states = (states,)
        states = tuple(states)
        if not states:
            _fail("a cell needs at least one state")
        for s in states:
            _check_identifier("state", s)
            if s in _RESERVED:
                _fail(f"state name {s!r} is reserved", symbol=s)
        if len(set(states)) != len(states):
            _fail(f"states are listed twice: {states}")
        if output not in states:
            _fail(f"output {output!r} is not one of the states {states}", symbol=str(output))
        self.initial = _initial_values(initial, states)
        self.name = name
        self.states = states
        self.output = output
        self.x = X
        self._state_symbols = {s: sp.Symbol(s) for s in states}
        self.linears = []
        self.vectors = []
        self.masks = []
        self.updates = {}
        self.update_line = None
        self._names = set(states) | {"x"}   # symbol names in use
        self._params = set()

    def __getattr__(self, name):
        symbols = self.__dict__.get("_state_symbols", {})
        if name in symbols:
            return symbols[name]
        raise AttributeError(f"cell has no state or attribute {name!r}")

    def state_symbol(self, name):
        return self._state_symbols[name]

    # -- declarations -------------------------------------------------------------------------
    def _claim_param(self, pname):
        if pname in self._params:
            _fail(f"parameter {pname!r} is declared twice", symbol=pname)
        self._params.add(pname)

    def linear(self, name, v, gates=1, bias=True, heads=False, dropconnect=None):
        """Declare weight_<name> (gates*H, dim v) and bias_<name> (gates*H,); return one symbol per gate.

        heads=True: a block-diagonal linear of NH heads, NH the run-time size `heads` (a keyword of
        init_params, RNN and the bridge, default 1; H must be divisible by it), each head of DH = H / NH
        units: weight_<name> has shape (NH, gates*DH, DH), and in head n rows g*DH + d hold gate
        g's weights of unit n*DH + d over the head's inputs v[n*DH:(n+1)*DH]. Only a linear of a
        state or of an expression of the step (a recurrent linear) can have heads.

        dropconnect="rate": DropConnect of the weight of a recurrent linear: each forward call in
        training mode multiplies it by a keep-mask of its shape (1 with probability 1 - p, p the
        run-time rate of that name), scaled by 1 / (1 - p); backward uses the same mask; at p = 0
        and in eval mode the weight is used as it is."""
        file, line = _caller()
        _check_identifier("linear", name)
        if not isinstance(heads, bool):
            _fail(f"linear {name!r}: heads must be True or False, got {heads!r}", symbol=name)
        if isinstance(gates, bool) or not isinstance(gates, int) or gates < 1:
            _fail(f"linear {name!r}: gates must be a positive integer, got {gates!r}", symbol=name)
        try:
            v = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError):
            _fail(f"linear {name!r}: input must be cell.x, a state or an expression of them, got {v!r}",
                  symbol=name)
        if v != X and X in v.free_symbols:
            _fail(f"linear {name!r}: x can only be the whole input of a linear; "
                  f"it cannot be mixed into an expression ({v})", symbol="x")
        if dropconnect is not None:
            _check_identifier("rate", dropconnect)
            if v == X:
                _fail(f"linear {name!r}: dropconnect needs a recurrent linear (of a state or an expression "
                      f"of the step), not of x", symbol=name)
        if heads and v == X:
            _fail(f"linear {name!r}: heads=True needs a recurrent linear (of a state or an expression "
                  f"of the step), not of x", symbol=name)
        for pname in (f"weight_{name}",) + ((f"bias_{name}",) if bias else ()):
            self._claim_param(pname)
        outputs = tuple(sp.Symbol(f"{name}_{g}") for g in range(gates))
        for o in outputs:
            if o.name in self._names:
                _fail(f"linear {name!r}: symbol {o.name!r} is already in use", symbol=o.name)
            self._names.add(o.name)
        self.linears.append(Linear(name, v, gates, bool(bias), outputs, file, line, heads, dropconnect))
        return outputs

    def vector(self, name):
        """Declare a per-unit parameter of shape (H,) named `name`; return its symbol."""
        file, line = _caller()
        _check_identifier("vector", name)
        self._claim_param(name)
        if name in self._names:
            _fail(f"vector {name!r}: symbol name already in use", symbol=name)
        self._names.add(name)
        sym = sp.Symbol(name)
        self.vectors.append(Vector(name, sym, file, line))
        return sym

    def mask(self, name, rate=None, per="step", inverted=False):
        """Declare a random keep-mask named `name` (a (B, H) value per step, or per sequence with
        per="sequence"): 1 with probability 1 - p, 0 with probability p, where p is the run-time
        rate named `rate` (default: `name`; several masks may share a rate, each drawn on its own).
        inverted=True scales it by 1 / (1 - p) (inverted dropout). In eval mode, or with p = 0,
        the mask is its expectation (1 - p; 1 when inverted). Returns its symbol."""
        file, line = _caller()
        _check_identifier("mask", name)
        rate = name if rate is None else rate
        _check_identifier("rate", rate)
        if per not in ("step", "sequence"):
            _fail(f"mask {name!r}: per must be 'step' or 'sequence', got {per!r}", symbol=name)
        if name in self._names or name in self._params:
            _fail(f"mask {name!r}: symbol name already in use", symbol=name)
        self._names.add(name)
        sym = sp.Symbol(name)
        self.masks.append(Mask(name, rate, per, bool(inverted), sym, file, line))
        return sym

    def update(self, **new_states):
        """Give each state its value after the step."""
        file, line = _caller()
        if not new_states:
            _fail("update() needs at least one state")
        for s, expr in new_states.items():
            if s not in self.states:
                _fail(f"update of undeclared state {s!r}; the states are {self.states}", symbol=s)
            if s in self.updates:
                _fail(f"state {s!r} is updated twice", symbol=s)
            try:
                expr = sp.sympify(expr, strict=True)
            except (sp.SympifyError, TypeError):
                _fail(f"update of {s!r} is not an expression: {expr!r}", symbol=s)
            if X in expr.free_symbols:
                _fail(f"update of {s!r}: x can only enter through cell.linear", symbol="x")
            self.updates[s] = expr
        self.update_line = line

    # -- checks -------------------------------------------------------------------------------
    def check(self):
        """Raise SpecError for what a spec cannot mean; called once the spec file has run."""
        for s in self.states:
            if s not in self.updates:
                raise SpecError(f"state {s!r} has no update", file=self.file, line=self.line, symbol=s)
        if not self.linears and not self.vectors:
            raise SpecError("the cell has no parameters: declare at least one cell.linear or "
                            "cell.vector (the kernels take their sizes from them)",
                            file=self.file, line=self.line, symbol=self.name)
        known = set(self._state_symbols.values())
        known |= {o for lin in self.linears for o in lin.outputs}
        known |= {v.symbol for v in self.vectors}
        known |= {m.symbol for m in self.masks}
        places = [(f"update of {s!r}", e, self.file, self.update_line) for s, e in self.updates.items()]
        places += [(f"input of linear {lin.name!r}", lin.input, lin.file, lin.line)
                   for lin in self.linears if not lin.of_x]
        for what, expr, file, line in places:
            for sym in sorted(expr.free_symbols - known, key=str):
                raise SpecError(f"{what} uses unknown symbol {sym}", file=file, line=line, symbol=str(sym))
            _check_expression(what, expr, file, line)


def _check_expression(what, expr, file, line):
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Symbol, sp.Integer, sp.Rational, sp.Float, sp.Add, sp.Mul)):
            if node.is_Number and not node.is_finite:
                raise SpecError(f"{what} contains the non-finite constant {node}", file=file, line=line,
                                symbol=str(node))
            continue
        if isinstance(node, sp.Pow):
            if not node.exp.is_Number:
                raise SpecError(f"{what}: exponent {node.exp} must be a constant", file=file, line=line,
                                symbol=str(node))
            continue
        if isinstance(node, KNOWN_FUNCTIONS):
            continue
        fname = getattr(getattr(node, "func", None), "__name__", type(node).__name__)
        if isinstance(node, sp.Number):
            raise SpecError(f"{what} contains the non-finite constant {node}", file=file, line=line,
                            symbol=str(node))
        raise SpecError(f"{what} uses function {fname}, which has no derivative rnngen knows "
                        f"(use sigmoid, tanh, relu, softplus, log_sigmoid, maximum, exp, log, sqrt or powers)",
                        file=file, line=line, symbol=fname)
