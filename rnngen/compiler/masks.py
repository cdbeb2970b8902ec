"""The random masks of a cell as its generated modules list them (MASKS): the spec's `cell.mask`
values, then the DropConnect masks of its linears (named as the weight parameter); and the cell at
rate 0 (every step and sequence mask 1), which the modules run when no mask is drawn."""
import copy
import dataclasses

import sympy as sp


def masks_of(cell):
    """name -> (rate, per, inverted): per "step", "sequence", or "weight" (DropConnect, inverted)."""
    out = {m.name: (m.rate, m.per, m.inverted) for m in cell.masks}
    out.update({f"weight_{lin.name}": (lin.dropconnect, "weight", True) for lin in cell.linears if lin.dropconnect})
    return out


def without_masks(cell):
    """A copy of `cell` with every `cell.mask` symbol replaced by 1 and no masks declared (None when
    it declares none): the step a call runs when every mask is 1 (all rates 0, or eval mode with
    inverted masks). DropConnect stays: its mask is a weight's, None at rate 0 already."""
    if not cell.masks:
        return None
    ones = {m.symbol: sp.Integer(1) for m in cell.masks}

    def sub(e):
        return sp.sympify(e).xreplace(ones)

    out = copy.copy(cell)
    out.masks = []
    out.linears = [dataclasses.replace(lin, input=sub(lin.input)) for lin in cell.linears]
    out.means = [dataclasses.replace(m, exprs=tuple(sub(e) for e in m.exprs)) for m in cell.means]
    out.updates = {s: sub(e) for s, e in cell.updates.items()}
    named = [(var, sub(e)) for var, e in getattr(cell, "source_exprs", [])]
    out.source_exprs = [(var, e) for var, e in named if not isinstance(e, (sp.Symbol, sp.Number))]
    return out
