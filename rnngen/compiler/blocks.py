"""Pointwise blocks of the Kernel IR: derive's Blocks over the generated code's names, with what
each local reads and where each result is written (part of lower.py's work).

A derive Block whose outputs run over different sizes (a projected LSTM's c over H, h over P)
becomes one Pointwise loop per size, each given every assignment (CSE keeps only what its writes
need). A reduction's sum is a write with `reduce` (the 1/count scale): per row, summed over j.
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

    def expr(self, e):
        return e.xreplace(self.lw.local).xreplace(self.lw.tie_map)

    # -- reads --------------------------------------------------------------------------------
    def _z_terms(self, name, gate):
        node = self.lw.step.node(name)
        if node.level == 0:
            terms = (ir.Ref(self.get("x_preact", name), gate, "t"),)
        else:
            z = self.get("preact", name)
            terms = (ir.Ref(z, gate, "row" if name in self.lw.ties.values() else "step"),)
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
        out += [ir.Read(local, self._terms(what, leaf, backward)) for local, (what, leaf) in self.leaves
                if local in used]
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
        return self._block(block.title, block, writes, False, inactive)

    def forward_update(self, block):
        writes = []
        for (target, e), size in zip(block.outputs, block.sizes):
            writes += self._sized(size, self._write(target, self.expr(e), set()))
        # save the sums for backward (every gate of a tied pair is used: their gradients are equal)
        for (a, gate), total in self.lw.tie_sums.items():
            size = self.lw.step.node(a).size
            writes.append((size, ir.Write(ir.Ref(self.get("x_preact", a), gate, "t"), total)))
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
