"""Rewrite expressions into numerically stable forms (a stage of the pipeline, before derive, so
that the derivatives are taken of the stable forms too)."""
import sympy as sp

from ..spec.functions import exp_nonpositive, maximum, sigmoid, softplus

_a = sp.Wild("a")


def _bounded_by_max(arg):
    """arg is v - maximum(p, q) with v one of p, q: never positive (exactly, in floating point too:
    the maximum returns one of its arguments unchanged)."""
    if not arg.is_Add:
        return False
    for term in arg.args:
        if term.could_extract_minus_sign() and isinstance(-term, maximum):
            rest = sp.Add(*[a for a in arg.args if a is not term])
            if rest in (-term).args:
                return True
    return False


def stabilize(expr):
    """Replace overflow-prone patterns by functions the printers emit in stable form.

    log(sigmoid(a)) -> -softplus(-a); log(1 + exp(a)) -> softplus(a); 1/(1 + exp(-a)) -> sigmoid(a);
    exp(v - maximum(v, w)) -> exp_nonpositive(...) (the sLSTM stabiliser: its exp never overflows).
    """
    expr = expr.replace(lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sigmoid),
                        lambda e: -softplus(-e.args[0].args[0]))
    expr = expr.replace(lambda e: isinstance(e, sp.log) and (e.args[0] - 1).func == sp.exp,
                        lambda e: softplus((e.args[0] - 1).args[0]))
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -1 and (e.base - 1).func == sp.exp,
                        lambda e: sigmoid(-(e.base - 1).args[0]))
    expr = expr.replace(lambda e: isinstance(e, sp.exp) and _bounded_by_max(e.args[0]),
                        lambda e: exp_nonpositive(e.args[0]))
    return expr


def rewrite(step):
    """The step with every expression (updates, linear inputs, named values) in stable form."""
    return step.replace(stabilize)
