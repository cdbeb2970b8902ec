"""Sizes in a spec: the run-time sizes it declares (`cell.size("proj_size")`), the size of every
per-unit symbol and expression, and the checks that a pointwise expression does not mix sizes."""
from dataclasses import dataclass

import sympy as sp

from ..errors import SpecError


@dataclass(frozen=True)
class Size:
    """A run-time size the spec declares by name (`cell.size("proj_size")`): a keyword of
    init_params, RNN, the torch bridge and `rnngen train`, recorded in checkpoints; the generated
    module reads it back from a parameter's shape. `symbol` is its dimension in the IR's shapes.
    The hidden size itself is `HIDDEN`, Size("H")."""
    name: str

    @property
    def symbol(self):
        return sp.Symbol(self.name, positive=True, integer=True)

    def __str__(self):
        return self.name


HIDDEN = Size("H")


def symbol_sizes(cell):
    """{Symbol: Size} of every per-unit symbol: states, linear outputs, vectors."""
    out = {cell.state_symbol(s): cell.state_sizes[s] for s in cell.states}
    out.update({o: lin.size for lin in cell.linears for o in lin.outputs})
    out.update({sym: v.size for v in cell.vectors for sym in v.symbols})
    return out


def spec_name(cell, sym):
    """The spec's variable for a symbol (xi for ih_0) once the loader knows it, else its name."""
    return getattr(cell, "source_names", {}).get(sym, sym.name)


def spec_text(cell, expr):
    """An expression as the spec wrote it: its symbols under the spec's variable names."""
    names = getattr(cell, "source_names", {})
    return str(expr.xreplace({s: sp.Symbol(names[s]) for s in expr.free_symbols if s in names}))


def expression_size(cell, what, expr, file, line):
    """The Size of a pointwise expression (None: per row only); mixing sizes is a SpecError naming
    the symbols of each size."""
    sizes = symbol_sizes(cell)
    found = {}
    for sym in sorted(expr.free_symbols, key=str):
        if sym in sizes:
            found.setdefault(sizes[sym], []).append(spec_name(cell, sym))
    if len(found) > 1:
        parts = "; ".join(f"{', '.join(names)} of size {size}" for size, names in found.items())
        raise SpecError(f"{what} mixes sizes in one pointwise expression: {parts} (a linear "
                        f"maps one size to another)", file=file, line=line,
                        symbol=next(iter(found.values()))[0])
    return next(iter(found), None)


def check(cell):
    """SpecError for a reduction of something not pointwise in the step, for sizes mixed in a
    mean, an update of another size than its state, a linear of a per-row value."""
    per_unit = {cell.state_symbol(s) for s in cell.states} | {o for lin in cell.linears for o in lin.outputs}
    for m in cell.means:
        sizes = set()
        name = spec_name(cell, m.symbol)
        for e in m.exprs:
            what = f"cell.mean (the value {name})"
            if not e.free_symbols & per_unit:
                raise SpecError(f"{what}: {spec_text(cell, e)} is not pointwise in the step (it depends on "
                                f"no state and no linear output, so there are no hidden units to average "
                                f"over)", file=m.file, line=m.line, symbol=spec_text(cell, e))
            sizes.add(cell.expression_size(what, e, m.file, m.line))
        if len(sizes) > 1:
            raise SpecError(f"cell.mean (the value {name}) averages expressions of different sizes "
                            f"({', '.join(sorted(map(str, sizes)))})", file=m.file, line=m.line,
                            symbol=name)
    for s, e in cell.updates.items():
        size = cell.expression_size(f"update of {s!r}", e, cell.file, cell.update_line)
        if size is not None and size != cell.state_sizes[s]:
            raise SpecError(f"update of {s!r}: the state has size {cell.state_sizes[s]}, its new value "
                            f"size {size}", file=cell.file, line=cell.update_line, symbol=s)
    for lin in cell.linears:
        if lin.of_x:
            continue
        what = f"input of linear {lin.name!r}"
        if cell.expression_size(what, lin.input, lin.file, lin.line) is None:
            raise SpecError(f"{what} is per row only (no hidden units): {spec_text(cell, lin.input)}",
                            file=lin.file, line=lin.line, symbol=lin.name)
