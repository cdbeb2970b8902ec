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


class log_sigmoid(sp.Function):
    """log(sigmoid(x)) = -softplus(-x), computed without overflow or underflow to -inf."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(-self.args[0])


class maximum(sp.Function):
    """max(a, b). Its subgradient goes to the larger argument, a tie to the first: d/da is 1 where
    a >= b, d/db is 1 where b > a."""
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return 1 - step(b - a) if argindex == 1 else step(b - a)


class exp_nonpositive(sp.Function):
    """exp(v) of an argument known to be <= 0 (v - maximum(v, w), the sLSTM stabiliser's form):
    the kernels use the overflow-free exp of the math libraries, which never returns inf. The
    rewrite stage (rnngen/compiler/rewrite.py) puts exp of such arguments in this form."""
    nargs = 1

    def fdiff(self, argindex=1):
        return exp_nonpositive(self.args[0])


exp = sp.exp
log = sp.log
sqrt = sp.sqrt

#: Functions the code printers know how to emit and that have a derivative.
KNOWN_FUNCTIONS = (sigmoid, tanh, step, relu, softplus, log_sigmoid, maximum, exp_nonpositive, sp.exp, sp.log)
