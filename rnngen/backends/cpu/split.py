"""Split a fused pointwise loop that LLVM would not vectorize into several that it does.

Numba passes arrays without `noalias`, so LLVM's loop vectorizer proves with run-time checks that
the j loop's stores do not overlap its other accesses: one check per pair (written pointer, other
pointer), each view of a gate block and each gate of a vector (`vec[2 * H + j]`) a pointer of its
own. Past 128 checks it gives up and the loop runs scalar: measured on this LLVM (numba 0.68,
LLVM 22) with w written and p pointers in all, the loop vectorizes while w(w-1)/2 + w(p-w) <= 128,
and a scalar loop of a LayerNorm LSTM's backward update (30 stores, 56 pointers) costs ~10x its
vectorized form.

A block over that budget is printed as several j loops over the same row, in order:
- what depends only on per-row values (a reduction's value, 1/sqrt(var + eps)) is computed once
  per row, before the loops;
- value loops compute the block's assignments in order, each as many as fit the budget, and store
  those a later loop needs in a one-row array (row_<name>, H values, reused across rows and steps);
- write loops do the block's writes in order, as many per loop as fit, reading those row arrays.
Every loop reads before any later loop writes (a value a write needs from a buffer the block writes
is copied into a row array first), so the split computes what the single loop did, bit for bit:
each value is computed once, by the same expression. A block within the budget is unchanged.
"""
from dataclasses import dataclass, field

import sympy as sp

BUDGET = 120        # checks per loop (LLVM's limit is 128; a little margin for what is not counted)


def cost(written, pointers):
    """LLVM's run-time alias checks for a loop with `written` stored pointers of `pointers` in all."""
    w, p = len(written), len(pointers | written)
    return w * (w - 1) // 2 + w * (p - w)


@dataclass
class Loop:
    """One j loop of a split block: `reads` (ir.Read) it loads, row arrays it loads (`row_in`),
    its assignments, the row arrays it stores (`row_out`) and its writes (ir.Write)."""
    reads: list = field(default_factory=list)
    row_in: list = field(default_factory=list)
    assigns: list = field(default_factory=list)
    row_out: list = field(default_factory=list)
    writes: list = field(default_factory=list)
    written: set = field(default_factory=set)      # the pointers it stores to
    pointers: set = field(default_factory=set)     # all the pointers it touches

    def cost(self):
        return cost(self.written, self.pointers)


@dataclass
class Plan:
    hoisted: list        # [(Symbol, expr)] computed once per row, before the loops
    loops: list          # [Loop]


def _free(value):
    return value.free_symbols if hasattr(value, "free_symbols") else set()


class Pointers:
    """The pointers of one ir.Pointwise as the CPU module prints it. `read_keys(read)`: those an
    ir.Read loads (none for a per-row value); `ref_key(ref)`: the one an element names;
    `write_key(write)`: the one an ir.Write stores to."""

    def __init__(self, blk, read_keys, ref_key, write_key):
        self.blk = blk
        self.reads = {r.symbol: r for r in blk.reads}
        self.read_keys = {s: set(read_keys(r)) for s, r in self.reads.items()}
        self.row_symbols = {s for s, keys in self.read_keys.items() if not keys}     # per-row reads
        self.ref_key = ref_key
        self.write_keys = [write_key(w) for w in blk.writes]

    def value_keys(self, w):
        """The pointers a write's value reads when it is a copy of an element (y = the new h)."""
        return set() if hasattr(w.value, "free_symbols") or w.value is None else {self.ref_key(w.value)}

    def whole(self):
        """(written pointers, all pointers) of the block as one loop."""
        written = set(self.write_keys)
        used = set()
        for w in self.blk.writes:
            used |= _free(w.value)
        for _, e in self.blk.assigns:
            used |= e.free_symbols
        allp = set(written)
        for s in used & self.reads.keys():
            allp |= self.read_keys[s]
        for w in self.blk.writes:
            allp |= self.value_keys(w)
        return written, allp


def needs_split(ptrs):
    return cost(*ptrs.whole()) > BUDGET


def _cheap(e):
    """A value worth recomputing in each loop that needs it rather than keeping in a row array:
    a few additions and products, no function call, division or square root."""
    if any(isinstance(a, sp.Function) for a in sp.preorder_traversal(e)):
        return False
    if any(isinstance(a, sp.Pow) and not (a.exp.is_Integer and a.exp > 0) for a in sp.preorder_traversal(e)):
        return False
    return sp.count_ops(e) <= 4


def plan(ptrs, keep=()):
    """The Plan of a block over the budget (see the module docstring); `keep`: values that must end
    in a row array (a later block of the row loop reads them: rows.py)."""
    b, blk = ptrs, ptrs.blk
    defined = {s: e for s, e in blk.assigns}
    order = {s: k for k, (s, _) in enumerate(blk.assigns)}
    # per-row assignments: over per-row reads and other per-row assignments only
    hoisted, row = [], set(b.row_symbols)
    for s, e in blk.assigns:
        if all(q in row or (q not in defined and q not in b.reads) for q in e.free_symbols):
            hoisted.append((s, e))
            row.add(s)
    # reads of a buffer the block writes: loaded by the value loops only (the write loops run after
    # them); what depends on them is kept in row arrays, never recomputed later
    written_buffers = {k[0] for k in b.write_keys}
    hazard = {q for q in b.reads if q not in row and any(k[0] in written_buffers for k in b.read_keys[q])}
    cheap, tainted = set(), set(hazard)
    for s, e in blk.assigns:
        if s in row:
            continue
        if e.free_symbols & tainted:
            tainted.add(s)
        elif _cheap(e) and s not in keep:
            cheap.add(s)
    plan_ = _Planner(b, row, cheap, hazard, defined, order, set(keep))
    return Plan(hoisted, plan_.loops())


class _Planner:
    def __init__(self, b, row, cheap, hazard, defined, order, keep):
        self.b, self.row, self.cheap, self.hazard = b, row, cheap, hazard
        self.defined, self.order, self.keep = defined, order, keep

    def deps(self, symbols):
        """The symbols a loop needs besides the per-row ones: reads, kept values (not cheap), and
        cheap values with what they need, closed under cheap values."""
        out, todo = set(), list(symbols)
        while todo:
            q = todo.pop()
            if q in out or q in self.row:
                continue
            out.add(q)
            if q in self.cheap:
                todo += list(self.defined[q].free_symbols)
        return out

    def loop(self, computes, writes, kept, later):
        """A Loop computing the kept values `computes` (and the cheap ones they need), doing
        `writes` [(Write, key)]; `kept`: the values in row arrays so far; `later`: needed after it."""
        b = self.b
        need = self.deps([q for s in computes if s in self.defined for q in self.defined[s].free_symbols] +
                         [q for w, _ in writes for q in _free(w.value)])
        lp = Loop()
        mine = set(computes)
        local = sorted((need & self.cheap) - kept, key=self.order.get)
        rest = need - mine - set(local)
        for q in [r.symbol for r in b.blk.reads]:     # loads in the block's order
            if (q in rest and q not in kept) or (q in mine and q in b.reads):    # or a read kept (a copy)
                if writes and q in self.hazard:
                    raise AssertionError(f"split: {q} read after the block's writes")
                lp.reads.append(b.reads[q])
                lp.pointers |= b.read_keys[q]
        for q in sorted(rest & kept, key=lambda q: self.order.get(q, -1)):
            lp.row_in.append(q)
            lp.pointers.add(("row", q))
        lp.assigns = [(s, self.defined[s]) for s in sorted(set(local) | {s for s in computes if s in self.defined},
                                                             key=self.order.get)]
        lp.row_out = [s for s in computes if s in later]
        lp.written = {("row", s) for s in lp.row_out}
        for w, key in writes:
            lp.pointers |= b.value_keys(w)
            lp.writes.append(w)
            lp.written.add(key)
        lp.pointers |= lp.written
        return lp

    def loops(self):
        b = self.b
        items = [s for s, _ in b.blk.assigns if s not in self.row and s not in self.cheap]
        writes = list(zip(b.blk.writes, b.write_keys))
        # the hazardous reads the writes need (through cheap values) are kept too: copied first
        need_w = self.deps([q for w, _ in writes for q in _free(w.value)])
        items = sorted(need_w & self.hazard, key=str) + items
        later_at, acc = [], self.deps([q for w, _ in writes for q in _free(w.value)]) | self.keep
        for s in reversed(items):
            later_at.append(set(acc))
            if s in self.defined:
                acc |= self.deps(self.defined[s].free_symbols)
        later_at.reverse()
        out, kept, k = [], set(), 0
        while k < len(items):
            start, best = k, None
            while k < len(items):
                lp = self.loop(items[start:k + 1], [], kept, later_at[k])
                if best is not None and lp.cost() > BUDGET:
                    break
                best, k = lp, k + 1
            out.append(best)
            kept |= set(best.row_out)
        group = []
        for wk in writes:
            if group and self.loop([], group + [wk], kept, set()).cost() > BUDGET:
                out.append(self.loop([], group, kept, set()))
                group = []
            group.append(wk)
        if group:
            out.append(self.loop([], group, kept, set()))
        return [lp for lp in out if lp.assigns or lp.writes or lp.row_out]
