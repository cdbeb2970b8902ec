"""Derive the forward and backward step of a cell.

The step is a DAG of linear nodes (GEMMs) and pointwise nodes. Linears of x are hoisted out of
the time loop (level 0). A recurrent linear's level is one more than the highest level of the
linears its input reads, so pointwise work between two GEMMs fuses into one stage.

Backward is reverse mode over that DAG: `sympy.diff` gives the pointwise partials; a linear's
adjoint is dv = dZ @ W (inside the loop), dW = dZ.T @ v and db = sum(dZ) (after the loop).
"""
from dataclasses import dataclass, field

import sympy as sp

from .errors import SpecError
from .optimize import stabilize


@dataclass(frozen=True)
class Target:
    """Where a pointwise result goes.

    kind: 'state' (new state value), 'v' (input of a linear), 'dz' (gradient of a linear's gate),
    'dstate' (gradient of the previous state), 'dvec' (gradient of a vector parameter).
    """
    kind: str
    name: str
    gate: int = 0


@dataclass
class Block:
    """Pointwise assignments for one (b, j) element; `adjoints` are the incoming gradient symbols."""
    title: str
    outputs: list                      # [(Target, sympy expr)]
    adjoints: dict = field(default_factory=dict)   # symbol -> what it reads (Target of kind 'adj*')


@dataclass
class LinearNode:
    linear: object          # spec.Linear
    level: int              # 0: input is x (hoisted); s >= 1: computed in stage s of the step
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
class StepProgram:
    cell: object
    linears: list                       # [LinearNode] in declaration order
    symbols: dict                       # symbol -> ('state', name) | ('z', LinearNode, gate) | ('vec', name)
    forward_inputs: dict                # linear name -> Block computing its input v (stages >= 1)
    forward_update: Block               # new states
    backward_update: Block              # gradients from the update
    backward_inputs: dict               # linear name -> Block: gradients through its input expression
    num_stages: int

    @property
    def x_linears(self):
        return [n for n in self.linears if n.level == 0]

    @property
    def recurrent_linears(self):
        return [n for n in self.linears if n.level > 0]

    def stage(self, s):
        return [n for n in self.linears if n.level == s]


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


def adjoint_symbol(target_name):
    return sp.Symbol(f"g_{target_name}")


def _gradients(outputs, seeds, symbols):
    """Reverse mode through pointwise `outputs` [(name, expr)] with incoming gradients `seeds`."""
    grads = {}
    for (name, expr) in outputs:
        seed = seeds[name]
        for q in sorted(expr.free_symbols & symbols.keys(), key=str):
            d = sp.diff(expr, q)
            if d != 0:
                grads[q] = grads.get(q, sp.Integer(0)) + seed * d
    return grads


def _targets_for(grads, symbols, all_states=()):
    """Turn {symbol: gradient} into [(Target, expr)]; every state in `all_states` gets a target."""
    out = []
    for s in all_states:
        sym = sp.Symbol(s)
        out.append((Target("dstate", s), grads.get(sym, sp.Integer(0))))
    for q, g in sorted(grads.items(), key=lambda kv: str(kv[0])):
        kind = symbols[q]
        if kind[0] == "state":
            if kind[1] not in all_states:
                out.append((Target("dstate", kind[1]), g))
        elif kind[0] == "z":
            out.append((Target("dz", kind[1].name, kind[2]), g))
        elif kind[0] == "vec":
            out.append((Target("dvec", kind[1]), g))
    return out


def derive(cell):
    """Build the StepProgram of a checked Cell."""
    levels = _levels(cell)
    nodes = []
    for lin in cell.linears:
        state = None
        if levels[lin.name] > 0 and isinstance(lin.input, sp.Symbol) and lin.input.name in cell.states:
            state = lin.input.name
        nodes.append(LinearNode(lin, levels[lin.name], state))

    symbols = {cell.state_symbol(s): ("state", s) for s in cell.states}
    for n in nodes:
        for g, o in enumerate(n.linear.outputs):
            symbols[o] = ("z", n, g)
    for v in cell.vectors:
        symbols[v.symbol] = ("vec", v.name)

    updates = [(s, stabilize(cell.updates[s])) for s in cell.states]
    forward_update = Block("update", [(Target("state", s), e) for s, e in updates])
    forward_inputs = {}
    backward_inputs = {}
    for n in nodes:
        if n.has_expression_input:
            expr = stabilize(n.linear.input)
            forward_inputs[n.name] = Block(f"input of linear {n.name}", [(Target("v", n.name), expr)])
            seed = adjoint_symbol(f"v_{n.name}")
            grads = _gradients([(n.name, expr)], {n.name: seed}, symbols)
            backward_inputs[n.name] = Block(f"gradient through the input of linear {n.name}",
                                            _targets_for(grads, symbols),
                                            {seed: Target("dv", n.name)})

    seeds = {s: adjoint_symbol(s) for s in cell.states}
    grads = _gradients(updates, seeds, symbols)
    backward_update = Block("gradient through the update", _targets_for(grads, symbols, cell.states),
                            {seeds[s]: Target("dnew", s) for s in cell.states})
    num_stages = max((n.level for n in nodes), default=0)
    return StepProgram(cell, nodes, symbols, forward_inputs, forward_update, backward_update,
                       backward_inputs, num_stages)
