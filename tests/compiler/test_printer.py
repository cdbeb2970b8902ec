"""printer: SymPy to Numba source with typed, named constants and the math library's helpers; the
docstring's equations."""
import sympy as sp

from rnngen.compiler.names import Namer
from rnngen.compiler.printer import Constants, KernelPrinter, constant_name, literal
from rnngen.spec.functions import relu, sigmoid, softplus, tanh

x, y = sp.symbols("x y")


def test_constant_names_and_literals():
    assert [constant_name(n) for n in (sp.Integer(1), sp.Integer(-2), sp.Rational(1, 2), sp.Float(0.25))] == \
        ["c1", "cm2", "c1_2", "c0p25"]
    assert [literal(n) for n in (sp.Integer(3), sp.Rational(-1, 2), sp.Float(0.25))] == ["3", "-1 / 2", "0.25"]


def test_constants_are_typed_locals_named_around_names_in_use():
    constants = Constants(Namer(kernel=("c1",)))
    p = KernelPrinter(constants)
    assert p.doprint(1 - x) == "c1_ - x"
    assert p.doprint(x / 2) == "(c1_2)*x"
    assert constants.lines() == [("c1_", "1"), ("c1_2", "1 / 2")]


def test_powers_functions_and_helpers():
    constants = Constants(Namer())
    p = KernelPrinter(constants)
    assert p.doprint(x ** 2) == "(x*x)"
    assert p.doprint(x ** 3 * y) == "(x*x*x)*y"
    assert p.doprint(1 / x ** 2) == "(c1/(x*x))"
    assert p.doprint(sp.sqrt(x)) == "math.sqrt(x)"
    text = p.doprint(sigmoid(x) + tanh(y) + relu(x) + softplus(y) + sp.exp(x) + sp.log(y))
    assert set(text.split(" + ")) == {"_relu(x)", "_sigmoid(x)", "_softplus(y)", "_tanh(y)", "math.exp(x)",
                                      "math.log(y)"}
    assert constants.helpers == {"_sigmoid", "_tanh", "_relu", "_softplus"}


def test_equations_of_the_lstm(compile_builtin):
    from rnngen.compiler.printer import equations
    lines = equations(compile_builtin("lstm")["cse"][True])
    assert lines[:3] == ["xi, xf, xg, xo = (x) @ weight_ih.T + bias_ih    [hoisted before the loop]",
                         "hi, hf, hg, ho = (h) @ weight_hh.T + bias_hh    [stage 1]",
                         "i = sigmoid(hi + xi)"]
    assert "c_next = c*f + g*i" in lines and lines[-2:] == ["h <- o*tanh(c_next)", "c <- c_next"]
    assert any("xi_hi, xf_hf, xg_hg, xo_ho" in line for line in lines)
