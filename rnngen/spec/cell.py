"""The spec language: one time step of a recurrent cell for one (batch row, hidden unit).

    cell = Cell("lstm", states=("h", "c"), output="h")
    xi, xf, xg, xo = cell.linear("ih", cell.x, gates=4)
    ...
    cell.update(c=..., h=...)

Every call records the spec line it came from, so a later check can name it.
"""
import keyword
from dataclasses import dataclass

import sympy as sp

from ..errors import SpecError
from .masks import INITIAL_WORDS, Mask, initial_values as _initial_values, new_mask  # noqa: F401
from .where import caller as _caller, check_identifier as _check_identifier, fail as _fail
from .sizes import HIDDEN, Size, check as _check_sizes, expression_size as _expression_size, \
    symbol_sizes as _symbol_sizes
from .functions import (KNOWN_FUNCTIONS, exp, log, log_sigmoid, maximum, relu, sigmoid, softplus,  # noqa: F401
                        sqrt, step, tanh)

# names a state cannot take: the Cell's own attributes (`cell.<state>` would not reach the state).
# The generated code's own locals are renamed around the spec's names, so they are not reserved.
_RESERVED = {"x", "name", "states", "output", "linear", "vector", "update", "linears", "vectors",
             "updates", "line", "file", "path", "check", "state_symbol", "update_line", "source_names",
             "source_exprs", "doc", "size", "sizes", "state_sizes", "mean", "means", "size_of", "size_defaults",
             "initial", "mask", "masks"}
# the sizes every cell has: the input size and the hidden size (I, H in parameter shapes)
_BUILTIN_SIZES = {"I": "input_size", "H": "hidden_size"}


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
    size: Size = HIDDEN     # the size of each gate block (its output size): H, or a declared size
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
    """A per-unit parameter of shape (gates*size,): `gates` symbols, one per block of `size` units."""
    name: str
    symbols: tuple
    file: str
    line: int
    size: Size = HIDDEN
    init: object = None     # None: U(-1/sqrt(H), 1/sqrt(H)) as the linears; else this constant

    @property
    def symbol(self):
        return self.symbols[0]

    @property
    def gates(self):
        return len(self.symbols)


@dataclass
class Mean:
    """`cell.mean(e1, e2, ...)`: the mean over the hidden units j of one batch row and over the
    listed pointwise expressions: one value per batch row (a reduction, a stage boundary)."""
    name: str
    symbol: sp.Symbol
    exprs: tuple
    file: str
    line: int


X = sp.Symbol("x")


class Cell:
    """One recurrent cell: its states, its linears (GEMMs), its vectors and its update.

    `initial` gives the states that do not start at zero when forward() gets no state0 for them:
    {state: a finite number, or 'lowest' (the dtype's most negative finite number)}."""

    def __init__(self, name, states=("h",), output="h", sizes=None, initial=None):
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
        self.means = []
        self.updates = {}
        self.update_line = None
        self._names = set(states) | {"x"}   # symbol names in use
        self._params = set()
        self.sizes = {}                     # name -> Size: the run-time sizes beyond I and H
        self.size_defaults = {}             # name -> its default (an int or "H"), when it has one
        self.state_sizes = {s: HIDDEN for s in states}
        for s, size in dict(sizes or {}).items():
            if s not in states:
                _fail(f"sizes= names {s!r}, which is not one of the states {states}", symbol=str(s))
            self.state_sizes[s] = self.size(size)

    def __getattr__(self, name):
        symbols = self.__dict__.get("_state_symbols", {})
        if name in symbols:
            return symbols[name]
        raise AttributeError(f"cell has no state or attribute {name!r}")

    def state_symbol(self, name):
        return self._state_symbols[name]

    # -- declarations -------------------------------------------------------------------------
    def size(self, name, default=None):
        """Declare (or return) the run-time size `name` (e.g. "proj_size"); "H" is the hidden size.
        It becomes a keyword of init_params, RNN, the torch bridge and `rnngen train`. `default`:
        its value when the keyword is not given, a positive integer or "H" (the hidden size);
        None: the keyword is required."""
        if isinstance(name, Size):
            name = name.name
        if default is not None:
            if not (default == "H" or isinstance(default, int) and not isinstance(default, bool) and default >= 1):
                _fail(f"size {name!r}: default must be a positive integer or 'H', got {default!r}",
                      symbol=str(name))
            if self.size_defaults.get(name, default) != default:
                _fail(f"size {name!r} is declared with two defaults", symbol=str(name))
            self.size_defaults[name] = default
        if name == "H":
            return HIDDEN
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
                or name.startswith("_"):
            _fail(f"size name must be a Python identifier not starting with '_', got {name!r}",
                  symbol=str(name))
        reserved = set(_BUILTIN_SIZES) | set(_BUILTIN_SIZES.values()) | {
            "num_layers", "bidirectional", "dropout", "batch_first", "dtype", "seed", "device", "path",
            "cell", "T", "B", "rates"}
        if name in reserved:
            _fail(f"size name {name!r} is reserved (a keyword of init_params or RNN)", symbol=name)
        if name not in self.sizes:
            self.sizes[name] = Size(name)
        return self.sizes[name]

    def _size_arg(self, what, size):
        if size is None:
            return HIDDEN
        if not isinstance(size, (str, Size)):
            _fail(f"{what}: size must be a size name or cell.size(...), got {size!r}", symbol=str(size))
        return self.size(size)

    def size_of(self, state):
        """The Size of a state (HIDDEN unless `sizes=` gave it another)."""
        return self.state_sizes[state]

    def _claim_param(self, pname):
        if pname in self._params:
            _fail(f"parameter {pname!r} is declared twice", symbol=pname)
        self._params.add(pname)

    def linear(self, name, v, gates=1, bias=True, size=None, heads=False, dropconnect=None):
        """Declare weight_<name> (gates*size, dim v) and bias_<name> (gates*size,); return one symbol
        per gate. `size`: the output size of each gate (default H; a name declares a run-time size).

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
        size = self._size_arg(f"linear {name!r}", size)
        if name in {m.name for m in self.means}:
            _fail(f"linear name {name!r} is a reduction's name", symbol=name)
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
        if heads and size != HIDDEN:
            _fail(f"linear {name!r}: heads=True needs gates of the hidden size H, got size={size}", symbol=name)
        if heads:
            self.size("heads", default=1)       # the run-time number of heads (RNN(..., heads=4))
        for pname in (f"weight_{name}",) + ((f"bias_{name}",) if bias else ()):
            self._claim_param(pname)
        outputs = tuple(sp.Symbol(f"{name}_{g}") for g in range(gates))
        for o in outputs:
            if o.name in self._names:
                _fail(f"linear {name!r}: symbol {o.name!r} is already in use", symbol=o.name)
            self._names.add(o.name)
        self.linears.append(Linear(name, v, gates, bool(bias), outputs, file, line, size, heads, dropconnect))
        return outputs

    def vector(self, name, gates=None, size=None, init=None):
        """Declare a per-unit parameter `name` of shape (size,) (default H) and return its symbol;
        with `gates=k`, one parameter of shape (k*size,) and its k symbols (one per block of size
        units, as a linear's gates). `init`: a constant initial value (LayerNorm's gain 1, bias 0);
        default U(-1/sqrt(H), 1/sqrt(H)) as the linears."""
        file, line = _caller()
        _check_identifier("vector", name)
        if gates is not None and (isinstance(gates, bool) or not isinstance(gates, int) or gates < 1):
            _fail(f"vector {name!r}: gates must be a positive integer, got {gates!r}", symbol=name)
        if init is not None:
            try:
                init = float(init)
            except (TypeError, ValueError):
                _fail(f"vector {name!r}: init must be a number, got {init!r}", symbol=name)
        size = self._size_arg(f"vector {name!r}", size)
        self._claim_param(name)
        names = [name] if gates is None else [f"{name}_{g}" for g in range(gates)]
        for n in names:
            if n in self._names:
                _fail(f"vector {name!r}: symbol name {n!r} already in use", symbol=n)
            self._names.add(n)
        symbols = tuple(sp.Symbol(n) for n in names)
        self.vectors.append(Vector(name, symbols, file, line, size, init))
        return symbols[0] if gates is None else symbols

    def mean(self, *exprs, name=None):
        """The mean, over the hidden units j of one batch row and over the listed expressions, of
        pointwise expressions of the step: a per-row symbol usable in later expressions and in
        further reductions (cell.mean(v) is mean_j v[j]; cell.mean(a, b) averages 2*H values).
        `name`: the symbol's name in the generated code (default: the spec's variable, or meanN)."""
        file, line = _caller()
        if name is not None:
            _check_identifier("mean", name)
            if name in self._names or name in {lin.name for lin in self.linears}:
                _fail(f"cell.mean: name {name!r} is already in use", symbol=name)
        if len(exprs) == 1 and isinstance(exprs[0], (list, tuple)):
            exprs = tuple(exprs[0])
        if not exprs:
            _fail("cell.mean() needs at least one expression")
        out = []
        for e in exprs:
            try:
                out.append(sp.sympify(e, strict=True))
            except (sp.SympifyError, TypeError):
                _fail(f"cell.mean: {e!r} is not an expression of the step")
            if X in out[-1].free_symbols:
                _fail("cell.mean: x can only enter through cell.linear", symbol="x")
        k = len(self.means)
        while name is None and (f"mean{k}" in self._names or f"mean{k}" in {lin.name for lin in self.linears}):
            k += 1
        name = name or f"mean{k}"
        self._names.add(name)
        sym = sp.Symbol(name)
        self.means.append(Mean(name, sym, tuple(out), file, line))
        return sym

    def mask(self, name, rate=None, per="step", inverted=False):
        """Declare a random keep-mask named `name` (a (B, H) value per step, or per sequence with
        per="sequence"): 1 with probability 1 - p, 0 with probability p, where p is the run-time
        rate named `rate` (default: `name`; several masks may share a rate, each drawn on its own).
        inverted=True scales it by 1 / (1 - p) (inverted dropout). In eval mode, or with p = 0,
        the mask is its expectation (1 - p; 1 when inverted). Returns its symbol."""
        mask = new_mask(self, name, rate, per, inverted)
        self.masks.append(mask)
        return mask.symbol

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
        known = set(self.symbol_sizes()) | {m.symbol for m in self.means} | {m.symbol for m in self.masks}
        places = [(f"update of {s!r}", e, self.file, self.update_line) for s, e in self.updates.items()]
        places += [(f"input of linear {lin.name!r}", lin.input, lin.file, lin.line)
                   for lin in self.linears if not lin.of_x]
        places += [(f"cell.mean (the value {m.name})", e, m.file, m.line) for m in self.means for e in m.exprs]
        for what, expr, file, line in places:
            for sym in sorted(expr.free_symbols - known, key=str):
                raise SpecError(f"{what} uses unknown symbol {sym}", file=file, line=line, symbol=str(sym))
            _check_expression(what, expr, file, line)
        _check_sizes(self)

    # -- sizes (spec/sizes.py) -----------------------------------------------------------------
    def symbol_sizes(self):
        """{Symbol: Size} of every per-unit symbol (means are per row: no size)."""
        return _symbol_sizes(self)

    def expression_size(self, what, expr, file, line):
        """The Size of a pointwise expression (None: per row only); mixing sizes is a SpecError."""
        return _expression_size(self, what, expr, file, line)

    def input_size(self, lin):
        """The Size a linear reads (None for x: the input size I)."""
        return None if lin.of_x else self.expression_size(f"input of linear {lin.name!r}", lin.input,
                                                          lin.file, lin.line)


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
