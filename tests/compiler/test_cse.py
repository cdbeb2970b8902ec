"""cse: what repeats becomes tmp0, tmp1, ... placed right before its first use; the spec's named
values keep their names and order; what no write needs is dropped; a named value CSE would reduce
to a temporary takes the temporary's place."""
import sympy as sp

from rnngen.compiler import ir
from rnngen.compiler.cse import share
from rnngen.compiler.names import Namer
from rnngen.spec.functions import sigmoid, tanh

a, b, g, i, d, unused = sp.symbols("a b g i d unused")
OUT = ir.Buffer("out", "d_state", (ir.B, ir.H))


def _block(assigns, values):
    writes = [ir.Write(ir.Ref(OUT, 0, "row"), v) for v in values]
    reads = [ir.Read(s, (ir.Ref(OUT, 0, "row"),)) for s in (a, b, g)]
    return ir.Pointwise("t", reads, assigns, writes)


def test_shared_subexpressions_and_named_values():
    blk = _block([(i, sigmoid(a)), (unused, tanh(g)), (d, i * (1 - i) * g)],
                 [d * (1 - i) * tanh(b), tanh(b) * i])
    out = share(blk, Namer())
    names = [s.name for s, _ in out.assigns]
    assert names == ["i", "d", "tmp0", "tmp1"] or names == ["i", "tmp0", "d", "tmp1"] or "unused" not in names
    assert "unused" not in names                                   # no write needs it
    assert names.index("i") < names.index("d")
    defined = set()
    for s, e in out.assigns:                                       # each line after what it uses
        assert (e.free_symbols - {a, b, g}) <= defined, (s, e)
        defined.add(s)
    tmp = {s.name: e for s, e in out.assigns if s.name.startswith("tmp")}
    assert tanh(b) in tmp.values()
    assert {r.symbol for r in out.reads} == {a, b, g}


def test_temporaries_skip_names_in_use():
    namer = Namer(kernel=("tmp0",))
    blk = _block([], [tanh(a) * b, tanh(a) * g])
    out = share(blk, namer)
    assert [s.name for s, _ in out.assigns] == ["tmp1"]


def test_a_named_value_takes_the_place_of_its_temporary():
    f = sp.Symbol("f")
    blk = _block([(f, sigmoid(a) * g)], [sigmoid(a) * g * b + f, f * a])
    out = share(blk, Namer())
    assert [(s.name, e) for s, e in out.assigns] == [("f", sigmoid(a) * g)]
    assert [w.value for w in out.writes] == [b * f + f, a * f]


def test_every_builtin_block_is_scheduled(compile_builtin):
    kernel = compile_builtin("lstm_peephole")["cse"][True]
    for st in kernel.forward + kernel.backward:
        for op in st.ops:
            if isinstance(op, ir.Pointwise):
                defined = {r.symbol for r in op.reads}
                for s, e in op.assigns:
                    assert e.free_symbols <= defined, (st.title, s, e)
                    defined.add(s)
                for w in op.writes:
                    if isinstance(w.value, sp.Basic):
                        assert w.value.free_symbols <= defined
