"""derive: the spec's named values stay values of their own, and reverse mode through them gives
the same gradients as differentiating the whole update (checked numerically, every built-in cell)."""
import random

import pytest
import sympy as sp

import rnngen
from rnngen.compiler.derive import substitute
from rnngen.spec.functions import exp_nonpositive, log_sigmoid, maximum, relu, sigmoid, softplus, step, tanh

NUMERIC = {sigmoid: lambda a: 1 / (1 + sp.exp(-a)), tanh: sp.tanh, relu: lambda a: sp.Max(a, 0),
           step: lambda a: sp.Piecewise((1, a > 0), (0, True)), softplus: lambda a: sp.log(1 + sp.exp(a)),
           log_sigmoid: lambda a: -sp.log(1 + sp.exp(-a)), maximum: lambda a, b: sp.Max(a, b),
           exp_nonpositive: sp.exp}


def _number(expr):
    for f, g in NUMERIC.items():
        expr = expr.replace(f, g)
    return float(expr)


def _names(program, pairs):
    return [program.spec_names.get(s) or program.derived_names.get(s) for s, _ in pairs]


def test_lstm_named_values_in_order(compile_builtin):
    program = compile_builtin("lstm")["derive"]
    assert _names(program, program.named) == ["i", "f", "g", "o", "c_next"]
    assert _names(program, program.forward_update.defs) == ["i", "f", "g", "o", "c_next"]


def test_backward_runs_through_the_named_values(compile_builtin):
    program = compile_builtin("lstm")["derive"]
    names = _names(program, program.backward_update.defs)
    assert names[:5] == ["i", "f", "g", "o", "c_next"]
    assert names[5] == "d_c_next"                        # the last value's gradient first
    assert set(names[5:]) == {"d_c_next", "d_o", "d_g", "d_f", "d_i"}
    kinds = {(t.kind, t.name) for t, _ in program.backward_update.outputs}
    assert kinds == {("dstate", "h"), ("dstate", "c"), ("dz", "ih"), ("dz", "hh")}


def test_stages_and_input_blocks(compile_builtin):
    program = compile_builtin("gru_classic")["derive"]
    assert {n.name: n.level for n in program.step.linears} == {"ih": 0, "hh": 1, "rh": 2}
    assert set(program.forward_inputs) == {2} and set(program.backward_inputs) == {2}
    assert [(t.kind, t.name) for t, _ in program.forward_inputs[2].outputs] == [("v", "rh")]
    assert [t.kind for t in program.backward_inputs[2].seeds.values()] == ["dv"]


def _evaluate(defs, values):
    values = dict(values)
    for s, e in defs:
        values[s] = e.xreplace(values)
    return values


@pytest.mark.parametrize("cell", rnngen.available())
def test_gradients_equal_the_whole_derivative(compile_builtin, cell):
    """At random points: the block's leaf gradients (through the named values) == d(seeds . updates)
    by sympy.diff of the whole update expressions."""
    comp = compile_builtin(cell)
    step, program = comp["rewrite"], comp["derive"]
    rng = random.Random(cell)
    leaves = {s: sp.Float(rng.uniform(-1, 1), 40) for s, lf in step.leaves.items() if lf.kind != "mean"}
    # a reduction's value is its mean at this point as if the row had this one unit (then a
    # variance mean(v^2) - mean(v)^2 under a square root is >= 0, as on every row; near 0 it is
    # ill-conditioned, hence 40 digits)
    for r in sorted(step.reductions or [], key=lambda r: r.level):
        leaves[r.mean.symbol] = step.inputs[r.name].xreplace(leaves) / r.count
    blk = program.backward_update
    seeds = {s: sp.Float(rng.uniform(-1, 1), 40) for s in blk.seeds}
    values = _evaluate(blk.defs, {**leaves, **seeds})
    loss = sum(seeds[s] * step.updates[t.name] for s, t in blk.seeds.items())
    for target, expr in blk.outputs:
        leaf = next(q for q, lf in step.leaves.items()
                    if (lf.kind, lf.name, lf.gate) == ({"dstate": "state", "dz": "z", "dvec": "vec",
                                                        "dmean": "mean"}[target.kind],
                                                       target.name, target.gate))
        got = _number(expr.xreplace(values))
        want = _number(sp.diff(loss, leaf).xreplace(leaves))
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (target, got, want)


def test_a_named_product_inside_a_flattened_product_is_found():
    x, v, w = sp.symbols("x v w")
    a, b = sp.symbols("_a _b")
    table = [(sp.tanh(x) * v, a), (x + w, b)]
    assert substitute(sp.tanh(x) * v * w, table) == a * w          # SymPy flattened a * w
    assert substitute(2 * x + 2 * w + v, table) == 2 * x + 2 * w + v  # no subset match across a coefficient
    assert substitute(x + w + v, table) == b + v


def test_the_flattened_named_value_is_computed_under_its_name(compile_text):
    comp = compile_text("""
        from rnngen.spec import Cell, sigmoid, tanh
        cell = Cell("flat", states=("h",), output="h")
        xa, xb = cell.linear("ih", cell.x, gates=2)
        v = cell.vector("v")
        a = sigmoid(xa) * v
        cell.update(h=a * tanh(xb) * cell.h)
    """)
    program = comp["derive"]
    assert _names(program, program.forward_update.defs) == ["a"]
