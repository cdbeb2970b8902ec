"""The spec language's reductions (cell.mean, cell.vector(gates=), layer_norm) and run-time sizes
(cell.size, sizes=, size=): what they declare, and the SpecErrors for what they cannot mean."""
import textwrap

import pytest

from rnngen import SpecError
from rnngen.spec import HIDDEN, Cell, layer_norm, tanh
from rnngen.tools.build import generate

HEAD = "from rnngen.spec import Cell, layer_norm, sigmoid, tanh\nimport sympy\n"

CASES = {
    "sizes_mixed_in_one_expression": ("""
        cell = Cell("bad", states=("h", "c"), output="h", sizes={"h": "proj_size"})
        (a,) = cell.linear("hh", cell.h)
        cell.update(c=tanh(a * cell.h), h=cell.h)
        """, 6, "h", "mixes sizes"),
    "sizes_mixed_in_a_mean": ("""
        cell = Cell("bad", states=("h", "c"), output="h", sizes={"h": "proj_size"})
        (a,) = cell.linear("hh", cell.h)
        m = cell.mean(a, cell.h)
        cell.update(c=tanh(a - m), h=cell.h)
        """, 6, "m", "different sizes"),
    "update_of_another_size": ("""
        cell = Cell("bad", states=("h", "c"), output="h", sizes={"h": "proj_size"})
        (a,) = cell.linear("hh", cell.h)
        cell.update(c=tanh(a), h=tanh(a))
        """, 6, "h", "state has size proj_size"),
    "mean_of_a_parameter_only": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        g = cell.vector("gain")
        m = cell.mean(g * 2)
        cell.update(h=tanh(a - m))
        """, 7, "2*g", "not pointwise in the step"),
    "mean_of_a_mean": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        m = cell.mean(a)
        m2 = cell.mean(m * m)
        cell.update(h=tanh(a - m2))
        """, 7, "m**2", "not pointwise in the step"),
    "mean_of_x": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        m = cell.mean(cell.x)
        """, 6, "x", "x can only enter"),
    "mean_of_no_expression": ("""
        cell = Cell("bad", states=("h",))
        m = cell.mean()
        """, 5, None, "at least one expression"),
    "linear_of_a_per_row_value": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        m = cell.mean(a)
        (b,) = cell.linear("rr", m)
        cell.update(h=tanh(a + b))
        """, 7, "rr", "per row only"),
    "reserved_size_name": ("""
        cell = Cell("bad", states=("h",))
        cell.size("hidden_size")
        """, 5, "hidden_size", "reserved"),
    "bad_size_default": ("""
        cell = Cell("bad", states=("h",))
        cell.size("proj_size", default=0)
        """, 5, "proj_size", "default must be"),
    "sizes_of_an_unknown_state": ("""
        cell = Cell("bad", states=("h",), sizes={"c": "proj_size"})
        """, 4, "c", "not one of the states"),
    "vector_gates_not_positive": ("""
        cell = Cell("bad", states=("h",))
        g = cell.vector("gain", gates=0)
        """, 5, "gain", "positive integer"),
    "mean_unknown_symbol": ("""
        cell = Cell("bad", states=("h",))
        (a,) = cell.linear("hh", cell.h)
        m = cell.mean(a + sympy.Symbol("q"))
        cell.update(h=tanh(a - m))
        """, 6, "q", "unknown symbol"),
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
    assert "Traceback" not in str(err)


def test_mean_vector_and_sizes_declarations():
    cell = Cell("ok", states=("h", "c"), output="h", sizes={"h": "proj_size"})
    P = cell.size("proj_size")
    assert cell.size("proj_size") is P and cell.size_of("h") == P and cell.size_of("c") == HIDDEN
    gi, gf = cell.vector("gain", gates=2, init=1)
    assert (gi.name, gf.name) == ("gain_0", "gain_1")
    v = cell.vectors[0]
    assert (v.gates, v.init, v.size) == (2, 1.0, HIDDEN)
    a, b = cell.linear("hh", cell.h, gates=2)
    (hr,) = cell.linear("hr", a * b, size=P, bias=False)
    assert cell.linears[-1].size == P
    n = layer_norm(cell, [a, b], "ln", two_pass=True)
    assert [m.name for m in cell.means] == ["ln_mean", "ln_var"]
    assert len(n) == 2 and cell.means[1].exprs[0].has(cell.means[0].symbol)
    one = layer_norm(cell, [a, b], "one")              # default: mean and mean of squares, one stage
    assert [m.name for m in cell.means[2:]] == ["one_mean", "one_sq"] and one[0].has(cell.means[3].symbol)
    single = layer_norm(cell, a * gi)
    assert not isinstance(single, list)
    cell.update(c=tanh(n[0] * gi + n[1] * gf + single + one[1]), h=hr)
    cell.check()


def test_a_reduction_is_a_stage_boundary():
    """The level of a mean is one more than the linears and means its operands read."""
    from rnngen.compiler.step import step_of
    cell = Cell("ok", states=("h",))
    (xa,) = cell.linear("ih", cell.x)
    (ha,) = cell.linear("hh", cell.h)
    mx = cell.mean(xa)                       # x-linear: level 1
    mh = cell.mean(ha)                       # recurrent linear (level 1): level 2
    var = cell.mean((ha - mh) ** 2)          # a mean of a mean: level 3
    cell.update(h=tanh(ha - mh + xa - mx) / (var + 1))
    cell.check()
    step = step_of(cell)
    assert {r.name: r.level for r in step.reductions} == {"mean0": 1, "mean1": 2, "mean2": 3}
    assert step.num_stages == 3
