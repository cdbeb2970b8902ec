"""Pointwise blocks of the Kernel IR: derive's Blocks over the generated code's names, with what
each local reads and where each result is written (part of lower.py's work)."""
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
            return (ir.Ref(self.get("vector", leaf.name), 0, "unit"),)
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
    def _write(self, target, value, written, accumulate=False):
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
            ref = ir.Ref(self.get("d_vector", target.name), 0, "unit")
            accumulate = True
        out = [ir.Write(ref, value, accumulate or target in written)]
        written.add(target)
        return out

    def _block(self, title, block, writes, backward, inactive=()):
        assigns = [(self.lw.local[s], self.expr(e)) for s, e in block.defs]
        return ir.Pointwise(title, self.reads(assigns, writes, block.seeds, backward), assigns, writes,
                            list(inactive))

    # -- the four kinds of block --------------------------------------------------------------
    def forward_inputs(self, block):
        writes, inactive = [], []
        for target, e in block.outputs:
            writes += self._write(target, self.expr(e), set())
            inactive.append(ir.Write(ir.Ref(self.get("linear_input", target.name)), sp.Integer(0)))
        return self._block(block.title, block, writes, False, inactive)

    def forward_update(self, block):
        writes = []
        for target, e in block.outputs:
            writes += self._write(target, self.expr(e), set())
        # save the sums for backward (every gate of a tied pair is used: their gradients are equal)
        for (a, gate), total in self.lw.tie_sums.items():
            writes.append(ir.Write(ir.Ref(self.get("x_preact", a), gate, "t"), total))
        carry = [ir.Write(ir.Ref(self.get("states", s), 0, "next"), ir.Ref(self.get("states", s)))
                 for s in self.lw.cell.states]
        return self._block(block.title, block, writes, False, carry)

    def backward_update(self, block, written):
        writes = []
        for target, e in block.outputs:
            if target.kind == "dz" and target.name in self.lw.ties:
                continue        # the same as its recurrent partner's, stored once
            writes += self._write(target, self.expr(e), written)
        return self._block(block.title, block, writes, True)

    def backward_inputs(self, block, written):
        writes = []
        for target, e in block.outputs:
            writes += self._write(target, self.expr(e), written, accumulate=target.kind == "dstate")
        return self._block(block.title, block, writes, True)
