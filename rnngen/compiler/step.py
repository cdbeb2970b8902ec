"""The forward step of a cell as a DAG: linear nodes (GEMMs), leaves and the spec's named values.

Linears of x are hoisted out of the time loop (level 0). A recurrent linear's level is one more
than the highest level of the linears its input reads, so the pointwise work between two GEMMs
fuses into one stage. Expressions here are the spec's, whole (named values are not substituted
yet), so that rewrite.py sees every pattern it rewrites.
"""
from dataclasses import dataclass

import sympy as sp

from ..errors import SpecError


@dataclass(frozen=True)
class Leaf:
    """What a symbol of the step is: a state ('state'), gate `gate` of linear `name` ('z'), a
    per-unit parameter ('vec') or a random mask ('mask')."""
    kind: str
    name: str
    gate: int = 0


@dataclass
class LinearNode:
    linear: object           # spec.Linear
    level: int               # 0: input is x (hoisted); s >= 1: computed in stage s of the step
    input_state: str = None  # the state it reads directly, or None when its input is an expression

    @property
    def name(self):
        return self.linear.name

    @property
    def gates(self):
        return self.linear.gates

    @property
    def has_expression_input(self):
        return self.level > 0 and self.input_state is None


@dataclass
class Step:
    cell: object
    linears: list            # [LinearNode] in declaration order
    leaves: dict             # Symbol -> Leaf, in order: states, linear outputs, vectors
    names: dict              # Symbol -> the spec's name for a leaf (its variable, or a fallback)
    named: list              # [(name, expr)] the spec's named intermediate values, in order
    updates: dict            # state -> expr
    inputs: dict             # linear name -> expr of its pointwise input (expression inputs only)

    @property
    def num_stages(self):
        return max((n.level for n in self.linears), default=0)

    def stage(self, s):
        return [n for n in self.linears if n.level == s]

    @property
    def x_linears(self):
        return self.stage(0)

    @property
    def recurrent_linears(self):
        return [n for n in self.linears if n.level > 0]

    def node(self, name):
        return next(n for n in self.linears if n.name == name)

    def replace(self, fn):
        """The same step with every expression mapped through fn."""
        return Step(self.cell, self.linears, self.leaves, self.names,
                    [(var, fn(e)) for var, e in self.named],
                    {s: fn(e) for s, e in self.updates.items()},
                    {k: fn(e) for k, e in self.inputs.items()})


def _levels(cell):
    by_symbol = {o: lin for lin in cell.linears for o in lin.outputs}
    levels, visiting = {}, set()

    def level(lin):
        if lin.name in levels:
            return levels[lin.name]
        if lin.of_x:
            levels[lin.name] = 0
            return 0
        if lin.name in visiting:
            raise SpecError(f"linear {lin.name!r} depends on its own output (a cycle)",
                            file=lin.file, line=lin.line, symbol=lin.name)
        visiting.add(lin.name)
        deps = [by_symbol[s] for s in lin.input.free_symbols if s in by_symbol]
        levels[lin.name] = 1 + max((level(d) for d in deps), default=0)
        visiting.discard(lin.name)
        return levels[lin.name]

    for lin in cell.linears:
        level(lin)
    return levels


def _leaf_names(cell, leaves):
    """The spec's variable for each leaf (xi for ih_0); a fallback (ih0, the state or vector name)."""
    source = getattr(cell, "source_names", {})
    names = {}
    for sym, leaf in leaves.items():
        fallback = f"{leaf.name}{leaf.gate}" if leaf.kind == "z" else sym.name
        names[sym] = source.get(sym) or fallback
    return names


def step_of(cell):
    """The forward Step of a checked Cell."""
    levels = _levels(cell)
    nodes = []
    for lin in cell.linears:
        state = None
        if levels[lin.name] > 0 and isinstance(lin.input, sp.Symbol) and lin.input.name in cell.states:
            state = lin.input.name
        nodes.append(LinearNode(lin, levels[lin.name], state))
    leaves = {cell.state_symbol(s): Leaf("state", s) for s in cell.states}
    for n in nodes:
        for g, o in enumerate(n.linear.outputs):
            leaves[o] = Leaf("z", n.name, g)
    for v in cell.vectors:
        leaves[v.symbol] = Leaf("vec", v.name)
    for m in cell.masks:
        leaves[m.symbol] = Leaf("mask", m.name)
    inputs = {n.name: n.linear.input for n in nodes if n.has_expression_input}
    return Step(cell, nodes, leaves, _leaf_names(cell, leaves), list(getattr(cell, "source_exprs", [])),
                {s: cell.updates[s] for s in cell.states}, inputs)
