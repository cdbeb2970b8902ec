"""Derive the forward and backward pointwise blocks of a step.

The spec's named values (`i = sigmoid(xi + hi)`, `c_next = f * c + i * g`) stay values of their
own: every block computes the ones it needs under their names, and reverse mode runs through them,
so the backward computes `d_c_next`, then `d_i`, `d_f`, ... (`sympy.diff` gives each local
partial). A linear's adjoint is dv = dZ @ W (inside the loop), dW = dZ.T @ v and db = sum(dZ)
(after the loop); lower.py places those.
"""
from dataclasses import dataclass, field

import sympy as sp

from ..spec.sizes import HIDDEN


@dataclass(frozen=True)
class Target:
    """Where a pointwise result goes.

    kind: 'state' (new state value), 'v' (input of a linear), 'mean' (the sum over j a reduction
    averages), 'dz' (gradient of a linear's gate), 'dstate' (gradient of the previous state),
    'dvec' (gradient of gate `gate` of a vector parameter), 'dmean' (gradient of a reduction's
    value: a sum over j); incoming gradients: 'dnew' (of a new state), 'dv' (of a linear's input),
    'dm' (of a reduction's operands: its value's gradient over the count, broadcast over j).
    """
    kind: str
    name: str
    gate: int = 0


@dataclass
class Block:
    """Pointwise math for one (b, j) element: `defs` the named values and their adjoints in the
    order they are computed, `outputs` [(Target, expr)], `seeds` incoming gradient -> Target;
    `sizes` the spec Size each output runs over (its j), parallel to `outputs`."""
    title: str
    defs: list
    outputs: list
    seeds: dict = field(default_factory=dict)
    sizes: list = field(default_factory=list)


@dataclass
class StepProgram:
    step: object                  # step.Step (after rewrite)
    named: list                   # [(Symbol, expr)] every named value over leaves and earlier ones
    spec_names: dict              # Symbol -> name: leaves and named values (the spec's names)
    derived_names: dict           # Symbol -> name: adjoints d_<name>, incoming gradients
    forward_inputs: dict          # stage -> Block computing the inputs v of its linears
    forward_update: Block         # new states
    backward_update: Block        # gradients from the update
    backward_inputs: dict         # stage -> Block: gradients through its linears' input expressions

    @property
    def cell(self):
        return self.step.cell


def _args(e):
    return list(e.args)


def _contains(big, small):
    """The args of `big` minus those of `small` as a multiset, or None unless small's are among them."""
    rest = _args(big)
    for a in _args(small):
        if a not in rest:
            return None
        rest.remove(a)
    return rest


def substitute(expr, table):
    """`expr` with every named value of `table` [(whole expression, Symbol)] replaced by its symbol,
    the largest first: a whole subtree, or some of the terms of a sum or factors of a product
    (SymPy flattens `a * w` with a = sigmoid(x) * v into one product of three factors)."""
    for pattern, sym in table:
        if expr == pattern:
            return sym
    if expr.is_Add or expr.is_Mul:
        for pattern, sym in table:
            if pattern.func == expr.func:
                rest = _contains(expr, pattern)
                if rest is not None:
                    return substitute(expr.func(sym, *rest), table)
    if not expr.args:
        return expr
    return expr.func(*[substitute(a, table) for a in expr.args])


def _named_values(step):
    """[(Symbol, expr)] of the spec's named values, each over leaves and other named symbols, in an
    order where every value follows those it uses; and the substitution table."""
    table, var_of = [], {}
    for var, expr in step.named:
        if all(expr != e for e, _ in table):
            sym = sp.Symbol(f"_n{len(table)}")
            table.append((expr, sym))
            var_of[sym] = var
    table = sorted(table, key=lambda es: -sp.count_ops(es[0]))      # the largest first
    defs = {sym: expr.func(*[substitute(a, [t for t in table if t[1] != sym]) for a in expr.args])
            for expr, sym in table}
    done, out = set(), []

    def visit(sym):
        if sym in done:
            return
        done.add(sym)
        for dep in sorted(defs[sym].free_symbols & defs.keys(), key=str):
            visit(dep)
        out.append((sym, defs[sym]))

    for sym in sorted(defs, key=lambda q: int(q.name[2:])):
        visit(sym)
    return out, table, var_of


def _used(exprs, named):
    """The named values `exprs` need, directly or through other named values, in order."""
    defs = dict(named)
    need, todo = set(), [s for e in exprs for s in e.free_symbols if s in defs]
    while todo:
        s = todo.pop()
        if s not in need:
            need.add(s)
            todo += [q for q in defs[s].free_symbols if q in defs]
    return [(s, e) for s, e in named if s in need]


def adjoint(sym):
    """The symbol of the gradient of the named value `sym` (d_<name> in the generated code)."""
    return sp.Symbol(f"_d{sym.name}")


def _reverse(outputs, named, leaves):
    """Reverse mode through `outputs` [(seed Symbol, expr)]: (named values used, their adjoints
    [(d Symbol, expr)] in the order computed, {leaf: gradient})."""
    used = _used([e for _, e in outputs], named)
    as_symbol = sorted(((e, s) for s, e in used), key=lambda es: -sp.count_ops(es[0]))
    candidates = set(leaves) | {s for s, _ in used}
    adj = {}

    def push(expr, grad):
        for q in sorted(expr.free_symbols & candidates, key=str):
            d = substitute(sp.diff(expr, q), as_symbol)
            if d != 0:
                adj[q] = adj.get(q, sp.Integer(0)) + grad * d

    for seed, expr in outputs:
        push(expr, seed)
    adjoints = []
    for sym, expr in reversed(used):
        grad = adj.pop(sym, sp.Integer(0))
        if grad != 0:
            d = adjoint(sym)
            adjoints.append((d, grad))
            push(expr, d)
    return used, adjoints, adj


def _targets(grads, leaves, all_states=()):
    """{leaf symbol: gradient} -> [(Target, expr)]; every state in `all_states` gets a target."""
    out = [(Target("dstate", s), grads.get(sp.Symbol(s), sp.Integer(0))) for s in all_states]
    for q, g in sorted(grads.items(), key=lambda kv: str(kv[0])):
        leaf = leaves[q]
        if leaf.kind == "state" and leaf.name not in all_states:
            out.append((Target("dstate", leaf.name), g))
        elif leaf.kind == "z":
            out.append((Target("dz", leaf.name, leaf.gate), g))
        elif leaf.kind == "vec":
            out.append((Target("dvec", leaf.name, leaf.gate), g))
        elif leaf.kind == "mean":
            out.append((Target("dmean", leaf.name), g))
    return out


def _sized(block, known):
    """`block` with the size of each output: that of the per-unit symbols it reads (leaves, named
    values, incoming gradients; a reduction is per row and mixes with any), H when none."""
    sizes = dict(known)
    for sym, expr in block.defs:
        found = {sizes[q] for q in expr.free_symbols if sizes.get(q) is not None}
        sizes[sym] = next(iter(sorted(found, key=str)), None)
    out = []
    for target, expr in block.outputs:
        found = {sizes[q] for q in expr.free_symbols if sizes.get(q) is not None}
        out.append(next(iter(sorted(found, key=str)), None) or HIDDEN)
    block.sizes = out
    return block


def _seed_sizes(step, block):
    out = {}
    for seed, target in block.seeds.items():
        if target.kind == "dnew":
            out[seed] = step.cell.size_of(target.name)
        elif target.kind == "dv":
            out[seed] = step.node(target.name).input_size
        else:
            out[seed] = next(r.size for r in step.reductions if r.name == target.name)
    return out


def derive(step):
    """The StepProgram of a (rewritten) Step."""
    named, table, var_of = _named_values(step)
    leaves = step.leaves
    spec_names = dict(step.names)
    spec_names.update({sym: var_of[sym] for sym, _ in named})
    derived_names = {adjoint(sym): f"d_{var_of[sym]}" for sym, _ in named}

    updates = [(s, substitute(step.updates[s], table)) for s in step.cell.states]
    forward_update = Block("update: new states", _used([e for _, e in updates], named),
                           [(Target("state", s), e) for s, e in updates])
    forward_inputs, backward_inputs = {}, {}
    for level in range(1, step.num_stages + 1):
        nodes = [n for n in step.stage(level) if n.has_expression_input]
        means = step.stage_reductions(level)
        if not nodes and not means:
            continue
        exprs = {n.name: substitute(step.inputs[n.name], table) for n in nodes}
        sums = {r.name: substitute(step.inputs[r.name], table) for r in means}
        title = ", ".join([f"inputs of linear {', '.join(exprs)}"] * bool(exprs) +
                          [f"sums of {', '.join(spec_names.get(r.mean.symbol, r.name) for r in means)}"] * bool(means))
        forward_inputs[level] = Block(title, _used(list(exprs.values()) + list(sums.values()), named),
                                      [(Target("v", k), e) for k, e in exprs.items()] +
                                      [(Target("mean", k), e) for k, e in sums.items()])
        seeds = {k: sp.Symbol(f"_gv_{k}") for k in exprs}
        seeds.update({k: sp.Symbol(f"_gm_{k}") for k in sums})
        derived_names.update({seeds[k]: f"dv_{k}_bj" for k in exprs})
        derived_names.update({seeds[r.name]: f"dm_{spec_names.get(r.mean.symbol, r.name)}" for r in means})
        used, adjoints, grads = _reverse([(seeds[k], e) for k, e in {**exprs, **sums}.items()], named, leaves)
        backward_inputs[level] = Block(f"gradient through the inputs of stage {level}", used + adjoints,
                                       _targets(grads, leaves),
                                       {**{seeds[k]: Target("dv", k) for k in exprs},
                                        **{seeds[k]: Target("dm", k) for k in sums}})
    seeds = {s: sp.Symbol(f"_g_{s}") for s in step.cell.states}
    derived_names.update({seeds[s]: f"dnext_{s}" for s in step.cell.states})
    used, adjoints, grads = _reverse([(seeds[s], e) for s, e in updates], named, leaves)
    backward_update = Block("gradient through the update", used + adjoints,
                            _targets(grads, leaves, step.cell.states),
                            {seeds[s]: Target("dnew", s) for s in step.cell.states})
    known = {sym: leaf.size for sym, leaf in leaves.items()}
    for blk in [forward_update, backward_update, *forward_inputs.values(), *backward_inputs.values()]:
        _sized(blk, {**known, **_seed_sizes(step, blk)})
    return StepProgram(step, named, spec_names, derived_names, forward_inputs, forward_update,
                       backward_update, backward_inputs)
