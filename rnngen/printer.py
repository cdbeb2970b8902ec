"""Print SymPy expressions as Numba code with typed constants and stable helper functions."""
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .functions import relu, sigmoid, softplus, step, tanh

HELPERS = {sigmoid: "_sigmoid", tanh: "_tanh", relu: "_relu", step: "_step", softplus: "_softplus",
           sp.exp: "math.exp", sp.log: "math.log"}


def constant_name(number):
    """A readable local name for a numeric constant: 1 -> c1, -2 -> cm2, 1/2 -> c1_2, 0.25 -> c0p25."""
    def part(n):
        return f"m{-n}" if n < 0 else f"{n}"
    if number.is_Integer:
        return "c" + part(int(number))
    if number.is_Rational:
        return f"c{part(int(number.p))}_{int(number.q)}"
    text = repr(float(number)).replace("-", "m").replace(".", "p").replace("+", "")
    return "c" + text


class KernelPrinter(PythonCodePrinter):
    """Prints one pointwise expression; symbols are renamed through `names`, constants collected."""

    def __init__(self, names, constants):
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self._names = names
        self.constants = constants      # dict name -> sympy Number, shared across a module

    def _constant(self, number):
        name = constant_name(number)
        self.constants[name] = number
        return name

    def _print_Symbol(self, expr):
        return self._names.get(expr, expr.name)

    def _print_Integer(self, expr):
        return self._constant(expr)

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Rational(self, expr):
        return self._constant(expr)

    _print_Half = _print_Rational

    def _print_Float(self, expr):
        return self._constant(expr)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.base, expr.exp
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"] + 1)
        if e.is_Integer and 1 < int(e) <= 4:
            return "(" + "*".join([b] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) <= -1:
            return f"({self._constant(sp.Integer(1))}/" + "(" + "*".join([b] * -int(e)) + "))"
        if e == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if e == sp.Rational(-1, 2):
            return f"({self._constant(sp.Integer(1))}/math.sqrt({self._print(base)}))"
        return f"{b}**{self._print(e)}"

    def _print_Function(self, expr):
        name = self.helper_name(expr.func)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    def helper_name(self, func):
        return HELPERS[func]

    _print_exp = _print_log = _print_Function
    _print_sigmoid = _print_tanh = _print_relu = _print_step = _print_softplus = _print_Function
