"""Pointwise blocks of the Kernel IR: derive's Blocks over the generated code's names, with what
each local reads and where each result is written (part of lower.py's work).

A derive Block whose outputs run over different sizes (a projected LSTM's c over H, h over P)
becomes one Pointwise loop per size, each given every assignment (CSE keeps only what its writes
need). A reduction's sum is a write with `reduce` (the 1/count scale): per row, summed over j.

Kept values: backward would compute a named value again from the saved pre-activation it is a
function of (`i = sigmoid(xi_hi)`: the loop saves xi_hi, backward reads it and calls sigmoid
again). When that pre-activation is read in backward only by that one value's definition (i's
gradient is written through i: d_i*i*(1 - i)), the forward saves the value itself in the
pre-activation's place and backward reads it: no function call in backward for it, the same
numbers (the same function of the same input), no more memory.
"""
import sympy as sp

from . import ir


class BlockBuilder:
    def __init__(self, lowering):
        self.lw = lowering
        self.get = lowering.get
        step = lowering.step
        # the leaves in reading order, as locals; a tied x-linear's gate reads the summed value
        self.leaves = []
        for sym, leaf in step.leaves.items():
            local = lowering.local[sym]
            if leaf.kind == "z" and (leaf.name, leaf.gate) in lowering.tie_sums:
                self.leaves.append((lowering.tie_sums[(leaf.name, leaf.gate)], ("sum", leaf)))
            else:
                self.leaves.append((local, ("leaf", leaf)))
        self.kept = self._kept_values()     # named value local -> (Ref it is saved in, forward Block)

    def expr(self, e):
        return e.xreplace(self.lw.local).xreplace(self.lw.tie_map)

    # -- values kept for backward -------------------------------------------------------------
    def _slot(self, what, leaf):
        """The saved per-step element backward reads a leaf from, if a value may take it over."""
        if what == "sum":
            return ir.Ref(self.get("x_preact", leaf.name), leaf.gate, "t")
        if what == "leaf" and leaf.kind == "z":
            if self.lw.step.node(leaf.name).level == 0:
                return ir.Ref(self.get("x_preact", leaf.name), leaf.gate, "t")
            if leaf.name not in self.lw.per_step:       # a per-step one's is gone after the step
                return ir.Ref(self.get("preact", leaf.name), leaf.gate, "step")
        return None

    def _kept_values(self):
        """{named value's local: (Ref, derive Block)}: the values the forward saves in the place of
        the one leaf backward needs them for (see the module docstring), and the forward block that
        writes them: the last one computing the value, when no later block of the step reads the
        leaf. In the order of the leaves."""
        p, local = self.lw.p, self.lw.local
        named = {local[s] for s, _ in p.named}
        exprs = []          # (named value or None, expression) of every backward block
        for blk in [p.backward_update, *p.backward_inputs.values()]:
            exprs += [(local[s] if local[s] in named else None, self.expr(e)) for s, e in blk.defs]
            exprs += [(None, self.expr(e)) for _, e in blk.outputs]
        forward = [p.forward_inputs[s] for s in sorted(p.forward_inputs)] + [p.forward_update]
        computes = [{local[s] for s, _ in blk.defs} for blk in forward]
        reads = [set().union(*(self.expr(e).free_symbols for _, e in list(blk.defs) + list(blk.outputs)))
                 for blk in forward]
        kept, taken = {}, set()
        for leaf_local, (what, leaf) in self.leaves:
            slot = self._slot(what, leaf)
            users = {s for s, e in exprs if leaf_local in e.free_symbols}
            if slot is None or len(users) != 1:
                continue
            (value,) = users
            if value is None or value in kept or slot in taken:
                continue
            last = max((k for k, c in enumerate(computes) if value in c), default=None)
            if last is None or any(leaf_local in r for r in reads[last + 1:]):
                continue
            kept[value] = (slot, forward[last])
            taken.add(slot)
        return kept

    def _kept_writes(self, block):
        """[(size, Write)] of the values `block` (a forward derive Block) saves for backward."""
        return [(self.lw.step.node(ref.buffer.owner).size, ir.Write(ref, value, for_backward=True))
                for value, (ref, blk) in self.kept.items() if blk is block]

    # -- reads --------------------------------------------------------------------------------
    def _z_terms(self, name, gate):
        node = self.lw.step.node(name)
        if node.level == 0:
            terms = (ir.Ref(self.get("x_preact", name), gate, "t"),)
        else:
            z = self.get("preact", name)
            terms = (ir.Ref(z, gate, "row" if name in self.lw.per_step else "step"),)
        if node.linear.bias:
            terms += (ir.Ref(self.get("bias", name), gate, "unit"),)
        return terms

    def _terms(self, what, leaf, backward):
        if what == "sum":
            if backward:        # forward saved the sum, biases included
                return (ir.Ref(self.get("x_preact", leaf.name), leaf.gate, "t"),)
            return self._z_terms(leaf.name, leaf.gate) + self._z_terms(self.lw.ties[leaf.name], leaf.gate)
        if leaf.kind == "state":
            return (ir.Ref(self.get("states", leaf.name)),)
        if leaf.kind == "vec":
            return (ir.Ref(self.get("vector", leaf.name), leaf.gate, "unit"),)
        if leaf.kind == "mean":
            return (ir.Ref(self.get("mean", leaf.name), 0, "step"),)
        if leaf.kind == "mask":
            buf = self.get("mask", leaf.name)
            return (ir.Ref(buf, 0, "t" if len(buf.dims) == 3 else "row"),)
        return self._z_terms(leaf.name, leaf.gate)

    def _seed_terms(self, target):
        if target.kind == "dnew":
            terms = (ir.Ref(self.get("d_state", target.name), 0, "row"),)
            if target.name == self.lw.cell.output:
                terms += (ir.Ref(self.get("dy"), 0, "t"),)
            return terms
        if target.kind == "dm":
            return (ir.Ref(self.get("d_mean", target.name), 0, "row"),)
        return (ir.Ref(self.get("d_linear_input", target.name), 0, "row"),)

    def reads(self, assigns, writes, seeds, backward):
        used = set()
        for _, e in assigns:
            used |= e.free_symbols
        for w in writes:
            if isinstance(w.value, sp.Basic):
                used |= w.value.free_symbols
        used -= {s for s, _ in assigns}
        out = [ir.Read(self.lw.local[s], self._seed_terms(t)) for s, t in seeds.items()
               if self.lw.local[s] in used]
        if backward:
            out += [ir.Read(value, (ref,)) for value, (ref, _) in self.kept.items() if value in used]
            taken = {(ref.buffer.name, ref.gate) for ref, _ in self.kept.values()}
        out += [ir.Read(local, self._terms(what, leaf, backward)) for local, (what, leaf) in self.leaves
                if local in used]
        if backward and any((t.buffer.name, t.gate) in taken for r in out for t in r.terms
                            if r.symbol not in self.kept):
            raise AssertionError("backward reads a pre-activation whose place a kept value took")
        return out

    # -- writes -------------------------------------------------------------------------------
    def _scale(self, name):
        """1 / the number of values a reduction averages: 1/(count * size)."""
        r = next(r for r in self.lw.step.reductions if r.name == name)
        return 1 / (r.count * r.size.symbol)

    def _write(self, target, value, written, accumulate=False):
        if target.kind == "mean":
            return [ir.Write(ir.Ref(self.get("mean", target.name), 0, "step"), value, reduce=self._scale(target.name))]
        if target.kind == "dmean":
            ref = ir.Ref(self.get("d_mean", target.name), 0, "row")
            out = [ir.Write(ref, value, target in written, reduce=self._scale(target.name))]
            written.add(target)
            return out
        if target.kind == "state":
            s = ir.Ref(self.get("states", target.name), 0, "next")
            out = [ir.Write(s, value)]
            if target.name == self.lw.cell.output:
                out.append(ir.Write(ir.Ref(self.get("y"), 0, "t"), s))
            return out
        if target.kind == "v":
            return [ir.Write(ir.Ref(self.get("linear_input", target.name)), value)]
        if target.kind == "dz":
            if self.lw.step.node(target.name).level == 0:
                ref = ir.Ref(self.get("d_x_preact", target.name), target.gate, "t")
            else:
                ref = ir.Ref(self.get("d_preact", target.name), target.gate, "step")
        elif target.kind == "dstate":
            ref = ir.Ref(self.get("d_state", target.name), 0, "row")
        else:
            ref = ir.Ref(self.get("d_vector", target.name), target.gate, "unit")
            accumulate = True
        out = [ir.Write(ref, value, accumulate or target in written)]
        written.add(target)
        return out

    def _block(self, title, block, writes, backward, inactive=()):
        """One Pointwise per size the writes run over; `writes` [(size, Write)], `inactive` too."""
        assigns = [(self.lw.local[s], self.expr(e)) for s, e in block.defs]
        if backward:        # the values the forward kept are read, not computed again
            assigns = [(s, e) for s, e in assigns if s not in self.kept]
        order = []
        for size, _ in list(writes) + list(inactive):
            if size not in order:
                order.append(size)
        out = []
        for size in order:
            mine = [w for z, w in writes if z == size]
            out.append(ir.Pointwise(title, self.reads(assigns, mine, block.seeds, backward), assigns, mine,
                                    [w for z, w in inactive if z == size], size.symbol))
        return out

    def _sized(self, size, writes):
        return [(size, w) for w in writes]

    # -- the four kinds of block --------------------------------------------------------------
    def forward_inputs(self, block):
        writes, inactive = [], []
        for (target, e), size in zip(block.outputs, block.sizes):
            writes += self._sized(size, self._write(target, self.expr(e), set()))
            if target.kind == "v":
                inactive.append((size, ir.Write(ir.Ref(self.get("linear_input", target.name)), sp.Integer(0))))
        writes += self._kept_writes(block)
        return self._block(block.title, block, writes, False, inactive)

    def forward_update(self, block):
        writes = []
        for (target, e), size in zip(block.outputs, block.sizes):
            writes += self._sized(size, self._write(target, self.expr(e), set()))
        # save for backward the values it reads (kept values), and the sums of tied linears in the
        # places no kept value took (every gate of a tied pair is used: their gradients are equal)
        writes += self._kept_writes(block)
        taken = {(ref.buffer.name, ref.gate) for ref, _ in self.kept.values()}
        for (a, gate), total in self.lw.tie_sums.items():
            ref = ir.Ref(self.get("x_preact", a), gate, "t")
            if (ref.buffer.name, gate) not in taken:
                size = self.lw.step.node(a).size
                writes.append((size, ir.Write(ref, total, for_backward=True)))
        carry = [(self.lw.cell.size_of(s), ir.Write(ir.Ref(self.get("states", s), 0, "next"),
                                                    ir.Ref(self.get("states", s))))
                 for s in self.lw.cell.states]
        return self._block(block.title, block, writes, False, carry)

    def backward_update(self, block, written):
        writes = []
        for (target, e), size in zip(block.outputs, block.sizes):
            if target.kind == "dz" and target.name in self.lw.ties:
                continue        # the same as its recurrent partner's, stored once
            if target.kind == "dstate":
                size = self.lw.cell.size_of(target.name)    # every state's gradient is written
            writes += self._sized(size, self._write(target, self.expr(e), written))
        return self._block(block.title, block, writes, True)

    def backward_inputs(self, block, written):
        writes = []
        for (target, e), size in zip(block.outputs, block.sizes):
            writes += self._sized(size, self._write(target, self.expr(e), written,
                                                    accumulate=target.kind == "dstate"))
        return self._block(block.title, block, writes, True)
