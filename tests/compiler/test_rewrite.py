"""rewrite: overflow-prone forms become the stable functions, in the updates, the linear inputs and
the spec's named values, before derive differentiates them."""
import sympy as sp

from rnngen.compiler.rewrite import stabilize
from rnngen.spec.functions import sigmoid, softplus


def test_stabilize_rewrites_overflow_prone_forms():
    a = sp.Symbol("a")
    assert stabilize(sp.log(sigmoid(a))) == -softplus(-a)
    assert stabilize(sp.log(1 + sp.exp(a))) == softplus(a)
    assert stabilize(1 / (1 + sp.exp(-a))) == sigmoid(a)


def test_rewrite_is_a_stage_before_derive(compile_text):
    comp = compile_text("""
        import sympy
        from rnngen.spec import Cell
        cell = Cell("stable", states=("h",), output="h")
        (xa,) = cell.linear("ih", cell.x)
        (ha,) = cell.linear("hh", cell.h)
        gate = 1 / (1 + sympy.exp(-(xa + ha)))
        cell.update(h=gate * cell.h + sympy.log(1 + sympy.exp(xa)))
    """)
    before, after = comp["step"], comp["rewrite"]
    assert not after.named[0][1].has(sp.exp) and after.named[0][1].func == sigmoid
    assert before.named[0][1].has(sp.exp)
    assert after.updates["h"].has(softplus) and not after.updates["h"].has(sp.exp)
    # the derivative of the stable forms: no exp left to overflow in the backward either
    program = comp["derive"]
    for _, e in program.backward_update.defs + program.backward_update.outputs:
        assert not e.has(sp.exp)
