"""Row loops: the CPU kernels run the pointwise blocks of a step that no GEMM separates in one loop
over the batch rows, and a later block reads what an earlier one computed instead of computing it
again.

A step's stages end at GEMMs, which need every row's input, and at reductions, which need every
unit of a row. A reduction's sum for row b is complete after its block's j loops for row b, so the
blocks after it, up to the next GEMM, can run for row b right away: one `for b` loop runs them in
order (a LayerNorm LSTM's forward: the sums of the c-norm, then the update; its backward: the
update, the inputs of the c-norm, those of the h-norm). Nothing crosses rows inside a block, so
this computes what the separate loops did; only the order in which rows add into a vector's
gradient changes.

Within such a loop a value an earlier block computed for unit j is kept for the later blocks in a
one-row array (row_<name>, the units of one row; rnngen/backends/cpu/split.py keeps values between
the j loops of one block the same way). Two values are the same when they are the same expression
of the same reads and no block of the loop from the earlier one on writes a buffer those reads load
(the later block would read a new value). Only values worth a load are kept: a function call, a
division or square root, or more than a few operations (split._cheap); a later block reads the
outermost such values it needs and drops what only they needed (a LayerNorm LSTM's update reads
the c_next of the c-norm's sums: its gates' sigmoids and tanh are not computed twice).
"""
import sympy as sp

from ...compiler import ir
from .split import _cheap


def group(stages):
    """The ops of a kernel's stages with the pointwise blocks that run in one row loop together:
    [(stage title, [("op", Gemm | GemmAdjoint) | ("rows", [(title, Pointwise)])])]. The first
    block of a row loop has title None (its stage's heading is above the loop); a later one the
    title of its stage when that stage starts there, else None. A stage all of whose ops joined an
    earlier stage's row loop has no items."""
    out, rows = [], None
    for st in stages:
        items, first = [], True
        for op in st.ops:
            if isinstance(op, ir.Pointwise):
                if rows is None:
                    rows = [(None, op)]
                    items.append(("rows", rows))
                else:
                    rows.append((st.title if first else None, op))
            else:
                rows = None
                items.append(("op", op))
            first = False
        out.append((st.title, items))
    return out


def _read_key(read):
    """A symbol standing for what a read loads (the same in every block that loads it)."""
    return sp.Symbol("read:" + "+".join(f"{t.buffer.name}/{t.gate}/{t.at}" for t in read.terms))


def _free(value):
    return value.free_symbols if isinstance(value, sp.Basic) else set()


class _Values:
    """The values of one block as expressions of its reads' keys (`full`), with the buffers they
    load; `unit`: the same with what is per row (a mean, 1/sqrt(var + eps)) left as one symbol,
    for what a unit's value costs."""

    def __init__(self, blk):
        self.blk = blk
        self.assigned = {s for s, _ in blk.assigns}
        self.full, self.unit, self.buffers, self.per_unit = {}, {}, {}, {}
        for r in blk.reads:
            s = r.symbol
            self.full[s] = self.unit[s] = _read_key(r)
            self.buffers[s] = {t.buffer.name for t in r.terms}
            self.per_unit[s] = any(not t.buffer.per_row for t in r.terms)
        for s, e in blk.assigns:
            free = [q for q in e.free_symbols if q in self.full]
            self.full[s] = e.xreplace({q: self.full[q] for q in free})
            self.unit[s] = e.xreplace({q: self.unit[q] for q in free if self.per_unit[q]})
            self.buffers[s] = set().union(*(self.buffers[q] for q in free)) if free else set()
            self.per_unit[s] = any(self.per_unit[q] for q in free)
        self.written = {w.ref.buffer.name for w in blk.writes}

    def worth_keeping(self, s):
        return s in self.assigned and self.per_unit[s] and not _cheap(self.unit[s])


def reuse(blocks, row_buffer):
    """The blocks of one row loop, in order, with the values a later block would compute again read
    from one-row arrays that the earlier block stores (see the module docstring).
    `row_buffer(k, symbol, size)`: the ir.Buffer of the one-row array keeping block k's `symbol`."""
    values = [_Values(p) for p in blocks]
    kept = {}           # (size, expression) -> (block index, symbol): the first block computing it
    exports = [[] for _ in blocks]
    out = []
    for k, (p, v) in enumerate(zip(blocks, values)):
        def source(s):
            """(block, symbol) of an earlier block holding the value of this block's `s`, or None."""
            if not v.worth_keeping(s):
                return None
            hit = kept.get((p.size, v.full[s]))
            if hit is None:
                return None
            i, _ = hit
            later_writes = set().union(*(values[m].written for m in range(i, k)))
            return None if v.buffers[s] & later_writes else hit

        needed = set()
        for w in p.writes:
            needed |= _free(w.value)
        imports, assigns = {}, []
        for s, e in reversed(p.assigns):
            if s not in needed:
                continue
            hit = source(s)
            if hit is not None:
                imports[s] = hit
            else:
                assigns.append((s, e))
                needed |= e.free_symbols
        assigns.reverse()
        reads = [ir.Read(s, (ir.Ref(row_buffer(i, q, p.size), 0, "unit"),))
                 for s, (i, q) in sorted(imports.items(), key=lambda kv: str(kv[0]))]
        reads += [r for r in p.reads if r.symbol in needed]
        for s, (i, q) in imports.items():
            if q not in exports[i]:
                exports[i].append(q)
        out.append(ir.Pointwise(p.title, reads, assigns, list(p.writes), list(p.inactive), p.size))
        for s, _ in assigns:
            if v.worth_keeping(s):
                kept.setdefault((p.size, v.full[s]), (k, s))
    for k, q_list in enumerate(exports):
        for q in q_list:
            out[k].writes.append(ir.Write(ir.Ref(row_buffer(k, q, out[k].size), 0, "unit"), q))
    return out
