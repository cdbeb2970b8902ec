"""The pointwise functions a spec may use, as SymPy functions with compact derivatives.

Each derivative is written in terms of the function itself (sigmoid' = s*(1-s),
tanh' = 1 - tanh**2), so the backward pass reuses the forward values after CSE.
"""
import sympy as sp


class sigmoid(sp.Function):
    """Logistic function 1 / (1 + exp(-x))."""
    nargs = 1

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class tanh(sp.Function):
    """Hyperbolic tangent."""
    nargs = 1

    def fdiff(self, argindex=1):
        return 1 - tanh(self.args[0]) ** 2


class step(sp.Function):
    """Heaviside step (1 for x > 0, else 0): the derivative of relu."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class relu(sp.Function):
    """max(x, 0)."""
    nargs = 1

    def fdiff(self, argindex=1):
        return step(self.args[0])


class softplus(sp.Function):
    """log(1 + exp(x)), computed without overflow."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


exp = sp.exp
log = sp.log
sqrt = sp.sqrt

#: Functions the code printers know how to emit and that have a derivative.
KNOWN_FUNCTIONS = (sigmoid, tanh, step, relu, softplus, sp.exp, sp.log)
