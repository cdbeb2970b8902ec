"""Rewrite expressions into numerically stable forms (a stage of the pipeline, before derive, so
that the derivatives are taken of the stable forms too)."""
import sympy as sp

from ..spec.functions import sigmoid, softplus

_a = sp.Wild("a")


def stabilize(expr):
    """Replace overflow-prone patterns by functions the printers emit in stable form.

    log(sigmoid(a)) -> -softplus(-a); log(1 + exp(a)) -> softplus(a); 1/(1 + exp(-a)) -> sigmoid(a).
    """
    expr = expr.replace(lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sigmoid),
                        lambda e: -softplus(-e.args[0].args[0]))
    expr = expr.replace(lambda e: isinstance(e, sp.log) and (e.args[0] - 1).func == sp.exp,
                        lambda e: softplus((e.args[0] - 1).args[0]))
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -1 and (e.base - 1).func == sp.exp,
                        lambda e: sigmoid(-(e.base - 1).args[0]))
    return expr


def rewrite(step):
    """The step with every expression (updates, linear inputs, named values) in stable form."""
    return step.replace(stabilize)
