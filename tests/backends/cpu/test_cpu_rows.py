"""Row loops (rnngen/backends/cpu/rows.py): pointwise blocks that no GEMM separates run in one loop
over the batch rows, and a later block reads an earlier block's value from a one-row array instead
of computing it again — never a value whose reads an earlier block of the loop has overwritten."""
import inspect

import sympy as sp

import rnngen
from rnngen.backends.cpu import rows
from rnngen.compiler import ir
from rnngen.spec import sigmoid, tanh

Z = ir.Buffer("z", "preact", (ir.T, ir.B, ir.H))
D = ir.Buffer("d", "d_state", (ir.B, ir.H))
OUT = ir.Buffer("out", "d_preact", (ir.T, ir.B, ir.H))
MEAN = ir.Buffer("m", "mean", (ir.T, ir.B))
z, z2, d, d2, m, a, b, c = sp.symbols("z z2 d d2 m a b c")


def _row_buffer(k, sym, size):
    return ir.Buffer(f"row{k}_{sym.name}", "row_values", (size,))


def _block(reads, assigns, writes):
    return ir.Pointwise("t", list(reads), list(assigns), list(writes))


def test_group_joins_blocks_up_to_the_next_gemm():
    p1, p2, p3 = (_block([], [], []) for _ in range(3))
    gemm = ir.Gemm("hh", ir.Slice(Z), Z, ir.Slice(OUT))
    stages = [ir.Stage("s1", [p1]), ir.Stage("s2", [p2]), ir.Stage("s3", [gemm, p3])]
    out = rows.group(stages)
    assert [title for title, _ in out] == ["s1", "s2", "s3"]
    (kind, loop), = out[0][1]
    assert kind == "rows" and loop == [(None, p1), ("s2", p2)]
    assert out[1][1] == []          # its block joined stage 1's row loop
    assert [k for k, _ in out[2][1]] == ["op", "rows"] and out[2][1][1][1] == [(None, p3)]


def test_a_later_block_reads_the_earlier_value_and_drops_what_only_it_needed():
    e = sp.Symbol("e")
    first = _block([ir.Read(z, (ir.Ref(Z),))], [(a, sigmoid(z)), (b, 3 * tanh(a))],
                   [ir.Write(ir.Ref(MEAN, 0, "step"), b, reduce=sp.Rational(1, 4))])
    second = _block([ir.Read(m, (ir.Ref(MEAN, 0, "step"),)), ir.Read(z2, (ir.Ref(Z),))],
                    [(c, sigmoid(z2)), (e, 3 * tanh(c)), (d2, e - m)], [ir.Write(ir.Ref(OUT), d2)])
    new_first, new_second = rows.reuse([first, second], _row_buffer)
    # the second block's 3*tanh(sigmoid(z)) is the first's b: read from row0_b; c and z not needed
    reads = {r.symbol: [t.buffer.name for t in r.terms] for r in new_second.reads}
    assert reads == {e: ["row0_b"], m: ["m"]}
    assert new_second.assigns == [(d2, e - m)]
    assert new_first.writes[:1] == first.writes
    assert [(w.ref.buffer.name, w.value) for w in new_first.writes[1:]] == [("row0_b", b)]


def test_a_value_over_a_buffer_an_earlier_block_wrote_is_computed_again():
    # the first block reads d, computes sigmoid(d) and overwrites d: the second block's d is new
    first = _block([ir.Read(d, (ir.Ref(D, 0, "row"),))], [(a, sigmoid(d))],
                   [ir.Write(ir.Ref(D, 0, "row"), a), ir.Write(ir.Ref(OUT), a)])
    second = _block([ir.Read(d2, (ir.Ref(D, 0, "row"),))], [(b, sigmoid(d2))], [ir.Write(ir.Ref(OUT), b, True)])
    new_first, new_second = rows.reuse([first, second], _row_buffer)
    assert new_second.assigns == [(b, sigmoid(d2))]
    assert [r.symbol for r in new_second.reads] == [d2]
    assert new_first.writes == first.writes


def test_cheap_values_are_not_kept():
    first = _block([ir.Read(z, (ir.Ref(Z),))], [(a, 2 * z + 1)], [ir.Write(ir.Ref(OUT), a)])
    second = _block([ir.Read(z2, (ir.Ref(Z),))], [(b, 2 * z2 + 1)], [ir.Write(ir.Ref(OUT), b, True)])
    new_first, new_second = rows.reuse([first, second], _row_buffer)
    assert new_second.assigns == [(b, 2 * z2 + 1)] and new_first.writes == first.writes


def test_layernorm_lstm_forward_computes_its_gates_once_per_unit():
    """The c-norm's sums and the update run in one row loop: c_next (three sigmoid/tanh of the gates)
    is computed once, the update reads it back (was: computed in both loops)."""
    source = inspect.getsource(rnngen.load("layernorm_lstm")._forward_loop)
    assert source.count("for b in range(B):") == 2      # stage 1's sums | the GEMM | the rest
    assert source.count("_sigmoid(zf)") == 1 and "c_next = row_c_next[j]" in source
