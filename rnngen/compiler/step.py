"""The forward step of a cell as a DAG: linear nodes (GEMMs), leaves and the spec's named values.

Linears of x are hoisted out of the time loop (level 0). A recurrent linear's level is one more
than the highest level of the linears and reductions its input reads, so the pointwise work
between two GEMMs fuses into one stage. A reduction (`cell.mean`) is a stage boundary like a GEMM:
its operands are summed over the hidden units in the pointwise block of its stage, and its value
(one per batch row) is read from the next stage on. Expressions here are the spec's, whole (named values are not substituted
yet), so that rewrite.py sees every pattern it rewrites.
"""
from dataclasses import dataclass

import sympy as sp

from ..errors import SpecError
from ..spec.sizes import HIDDEN


@dataclass(frozen=True)
class Leaf:
    """What a symbol of the step is: a state ('state'), gate `gate` of linear `name` ('z'), gate
    `gate` of a per-unit parameter ('vec'), a reduction's per-row value ('mean') or a random mask
    ('mask'). `size`: the units along j (None for a mean: one value per row)."""
    kind: str
    name: str
    gate: int = 0
    size: object = None


@dataclass
class ReductionNode:
    """A `cell.mean`: computed in the pointwise block of stage `level`, read from level + 1 on."""
    mean: object             # spec.Mean
    level: int
    size: object             # spec Size of its operands (the j it sums over)

    @property
    def name(self):
        return self.mean.name

    @property
    def count(self):
        """How many expressions it averages (each over `size` units)."""
        return len(self.mean.exprs)


@dataclass
class LinearNode:
    linear: object           # spec.Linear
    level: int               # 0: input is x (hoisted); s >= 1: computed in stage s of the step
    input_state: str = None  # the state it reads directly, or None when its input is an expression
    input_size: object = None    # spec Size of its input (None: x, the input size I)

    @property
    def size(self):
        return self.linear.size

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
    inputs: dict             # linear or reduction name -> expr of its pointwise input (expression
                             # inputs of linears; the sum of a reduction's operands)
    reductions: list = None  # [ReductionNode] in declaration order

    @property
    def num_stages(self):
        return max([n.level for n in self.linears] + [r.level for r in self.reductions or []], default=0)

    def stage(self, s):
        return [n for n in self.linears if n.level == s]

    def stage_reductions(self, s):
        return [r for r in self.reductions or [] if r.level == s]

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
                    {k: fn(e) for k, e in self.inputs.items()}, self.reductions)


def _levels(cell):
    """{name: level} of the linears and reductions (their dependency DAG)."""
    by_symbol = {o: lin for lin in cell.linears for o in lin.outputs}
    by_symbol.update({m.symbol: m for m in cell.means})
    levels, visiting = {}, set()

    def inputs(node):
        return node.exprs if hasattr(node, "exprs") else (node.input,)

    def level(node):
        if node.name in levels:
            return levels[node.name]
        if getattr(node, "of_x", False):
            levels[node.name] = 0
            return 0
        if node.name in visiting:
            what = "linear" if hasattr(node, "of_x") else "cell.mean"
            raise SpecError(f"{what} {node.name!r} depends on its own output (a cycle)",
                            file=node.file, line=node.line, symbol=node.name)
        visiting.add(node.name)
        deps = [by_symbol[s] for e in inputs(node) for s in e.free_symbols if s in by_symbol]
        levels[node.name] = 1 + max((level(d) for d in deps), default=0)
        visiting.discard(node.name)
        return levels[node.name]

    for node in list(cell.linears) + list(cell.means):
        level(node)
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
        nodes.append(LinearNode(lin, levels[lin.name], state, cell.input_size(lin)))
    reductions = [ReductionNode(m, levels[m.name], cell.expression_size("cell.mean", m.exprs[0], m.file, m.line))
                  for m in cell.means]
    leaves = {cell.state_symbol(s): Leaf("state", s, 0, cell.size_of(s)) for s in cell.states}
    for n in nodes:
        for g, o in enumerate(n.linear.outputs):
            leaves[o] = Leaf("z", n.name, g, n.size)
    for v in cell.vectors:
        for g, sym in enumerate(v.symbols):
            leaves[sym] = Leaf("vec", v.name, g, v.size)
    for r in reductions:
        leaves[r.mean.symbol] = Leaf("mean", r.name)
    for m in cell.masks:
        leaves[m.symbol] = Leaf("mask", m.name, 0, HIDDEN)
    inputs = {n.name: n.linear.input for n in nodes if n.has_expression_input}
    inputs.update({r.name: sp.Add(*r.mean.exprs) for r in reductions})
    return Step(cell, nodes, leaves, _leaf_names(cell, leaves), list(getattr(cell, "source_exprs", [])),
                {s: cell.updates[s] for s in cell.states}, inputs, reductions)
