"""Every bad spec fails at build with a SpecError naming the spec file, the line and the symbol."""
import textwrap

import pytest

from rnngen import SpecError
from rnngen.tools.build import generate

HEAD = "from rnngen.spec import Cell, sigmoid, tanh\nimport sympy\n"

CASES = {
    "unknown_symbol": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=tanh(a + sympy.Symbol("q")))
        """, 6, "q", "unknown symbol"),
    "state_without_update": ("""
        cell = Cell("bad", states=("h", "c"))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=tanh(a))
        """, 4, "c", "has no update"),
    "update_undeclared_state": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=tanh(a), c=a)
        """, 6, "c", "undeclared state"),
    "cycle": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("one", cell.h * sympy.Symbol("two_0"))
        (b,) = cell.linear("two", a * cell.h)
        cell.update(h=tanh(a + b))
        """, 5, "one", "cycle"),
    "function_without_derivative": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=sympy.Function("mystery")(a))
        """, 6, "mystery", "no derivative"),
    "non_smooth_function": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=sympy.Abs(a))
        """, 6, "Abs", "no derivative"),
    "wrong_gates_count": ("""
        cell = Cell("bad", states=("h",))
        a, b = cell.linear("hh", cell.h, gates=3)
        cell.update(h=tanh(a + b))
        """, 5, "hh", "3 gates"),
    "bad_gates_value": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h, gates=0)
        """, 5, "hh", "positive integer"),
    "duplicate_parameter": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        (b,) = cell.linear("hh", cell.h)
        cell.update(h=tanh(a + b))
        """, 6, "weight_hh", "declared twice"),
    "duplicate_vector_and_bias": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        p = cell.vector("bias_hh")
        cell.update(h=tanh(a * p))
        """, 6, "bias_hh", "declared twice"),
    "x_outside_linear": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=tanh(a + cell.x))
        """, 6, "x", "x can only enter"),
    "output_not_a_state": ("""
        cell = Cell("bad", states=("h",), output="y")
        """, 4, "y", "not one of the states"),
    "reserved_state_name": ("""
        cell = Cell("bad", states=("h", "linear"))
        """, 4, "linear", "reserved"),
    "underscore_name": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("_k", cell.h)
        """, 5, "_k", "belong to the generated code"),
    "python_error_in_spec": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        cell.update(h=undefined_name(a))
        """, 6, None, "NameError"),
    "no_parameters": ("""
        cell = Cell("bad", states=("h",))
        cell.update(h=tanh(cell.h))
        """, 4, "bad", "no parameters"),
    "sys_exit": ("""
        import sys
        cell = Cell("bad", states=("h",))
        sys.exit(3)
        """, 6, None, "SystemExit(3)"),
    "raise_system_exit": ("""
        cell = Cell("bad", states=("h",))
        raise SystemExit
        """, 5, None, "SystemExit(None)"),
    "base_exception": ("""
        class Stop(BaseException):
            pass
        raise Stop("from the spec")
        """, 6, None, "Stop: from the spec"),
    "cell_name_with_underscore": ("""
        cell = Cell("_cuda_gru", states=("h",))
        """, 4, "_cuda_gru", "must not start with '_'"),
    "cell_name_init": ("""
        cell = Cell("__init__", states=("h",))
        """, 4, "__init__", "must not start with '_'"),
    "cell_name_keyword": ("""
        cell = Cell("class", states=("h",))
        """, 4, "class", "identifier"),
    "no_cell": ("""
        thing = 1
        """, None, None, "must define"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spec_error(tmp_path, case):
    body, line, symbol, words = CASES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(HEAD + textwrap.dedent(body))
    with pytest.raises(SpecError) as info:
        generate(str(path))
    err = info.value
    assert err.file == str(path)
    assert err.line == line, str(err)
    assert err.symbol == symbol, str(err)
    assert words in str(err)
    assert str(path) in str(err)
    assert "Traceback" not in str(err)
