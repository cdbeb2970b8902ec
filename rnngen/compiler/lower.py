"""Lower a StepProgram to the typed Kernel IR (ir.py): names, buffers, stages and blocks, once.

Tied linears: when an x-linear's pre-activation gradient equals, gate for gate, that of a level-1
linear of a state (an LSTM's xi + hi), the two only appear summed. The forward loop then adds them
once and saves the sum in place of the x-linear's output (the recurrent GEMM writes a per-step
scratch), backward reads that one array, stores one dZ, and both weight-gradient GEMMs read it.

Kept values (blocks.py): a gate the forward computes from a pre-activation that backward reads
only for that gate is saved in the pre-activation's place (the LSTM's i in place of xi_hi). A
recurrent linear's GEMM output that backward then no longer reads (a projected LSTM's z_hh)
lives for one step, (B, gates*H), like a tied one's, and is not saved.
"""
import dataclasses

import sympy as sp

from . import ir
from .blocks import BlockBuilder
from .derive import adjoint
from .masks import masks_of
from .names import KERNEL_GLOBALS, WRAPPER_NAMES, Namer

_LOOP_NAMES = ("step", "t", "b", "j", "T", "B", "H", "lengths", "reverse")


def find_ties(program):
    """{x-linear name: recurrent linear name} of the linears whose outputs only appear summed."""
    step = program.step
    if step.num_stages != 1:
        return {}
    dz = {(t.name, t.gate): e for t, e in program.backward_update.outputs if t.kind == "dz"}
    later = {t.name for blk in program.backward_inputs.values() for t, _ in blk.outputs if t.kind == "dz"}
    tied = {}
    for a in step.x_linears:
        if a.name in later:
            continue
        for b in step.recurrent_linears:
            if b.level == 1 and b.input_state and b.name not in later and b.gates == a.gates \
                    and b.name not in tied.values() \
                    and all((a.name, g) in dz and dz[(a.name, g)] == dz.get((b.name, g))
                            for g in range(a.gates)):
                tied[a.name] = b.name
                break
    return tied


def _width(gates, size=None):
    return gates * (size.symbol if size is not None else ir.H)


def _dim(size):
    """A spec Size's dimension (None: the input size I)."""
    return ir.I if size is None else size.symbol


class _Lowering:
    def __init__(self, program, kernel_globals, tie_linears):
        self.p = program
        self.step = program.step
        self.cell = program.cell
        self.namer = Namer(kernel_globals, WRAPPER_NAMES)
        self.local = {sym: sp.Symbol(self.namer.claim(name)) for sym, name in program.spec_names.items()}
        self.loop = {key: self.namer.claim(key) for key in _LOOP_NAMES}
        self.sizes = tuple(self.cell.sizes)
        # a run-time size is a local of the kernels and the wrappers under its own name
        self.loop.update({key: self.namer.claim(key, ("kernel", "wrapper")) for key in self.sizes})
        self.local.update({sym: sp.Symbol(self.namer.claim(name))
                           for sym, name in program.derived_names.items()})
        self.ties = find_ties(program) if tie_linears else {}
        # recurrent linears whose GEMM output lives for one step (B, gates*H), not saved: a tied
        # one's (its sums are saved), and one backward does not read (see kernel())
        self.per_step = set(self.ties.values())
        self.tie_sums = {}      # (x-linear, gate) -> local Symbol of the summed pre-activation
        self.tie_map = {}       # local symbol -> what replaces it once tied
        for a, b in self.ties.items():
            xs, hs = self.step.node(a).linear.outputs, self.step.node(b).linear.outputs
            for g, (u, v) in enumerate(zip(xs, hs)):
                total = sp.Symbol(self.namer.claim(f"{self.local[u].name}_{self.local[v].name}"))
                self.tie_sums[(a, g)] = total
                self.tie_map[self.local[u]] = total
                self.tie_map[self.local[v]] = sp.Integer(0)
        self._buffers()

    # -- buffers ------------------------------------------------------------------------------
    def _buffer(self, preferred, role, dims, saved=False, owner="", gates=1, param="", scopes=None):
        name = self.namer.claim(preferred, scopes or ("kernel", "wrapper"))
        return ir.Buffer(name, role, tuple(dims), saved, owner, gates, param)

    def _buffers(self):
        step, cell = self.step, self.cell
        self.params = []
        for lin in cell.linears:
            node = step.node(lin.name)
            rows, cols = _width(lin.gates, lin.size), _dim(node.input_size)
            dims = (ir.HEADS, rows / ir.HEADS, cols / ir.HEADS) if lin.heads else (rows, cols)
            self.params.append(self._buffer(f"weight_{lin.name}", "weight", dims, owner=lin.name,
                                            gates=lin.gates, param=f"weight_{lin.name}"))
            if lin.bias:
                self.params.append(self._buffer(f"bias_{lin.name}", "bias", (rows,), owner=lin.name,
                                                gates=lin.gates, param=f"bias_{lin.name}"))
        self.params += [self._buffer(f"vec_{v.name}", "vector", (_width(v.gates, v.size),), owner=v.name,
                                     gates=v.gates, param=v.name) for v in cell.vectors]
        scratch = self.per_step
        T, B = ir.T, ir.B
        size = {s: cell.size_of(s).symbol for s in cell.states}
        out = size[cell.output]
        b = [ir.Buffer("x", "x", (T, B, ir.I)),
             self._buffer("y", "y", (T, B, out), scopes=("kernel",)),
             self._buffer("dy", "dy", (T, B, out), scopes=("kernel",))]
        for n in step.x_linears:
            b.append(self._buffer(f"zx_{n.name}", "x_preact", (T, B, _width(n.gates, n.size)), True, n.name,
                                  n.gates))
        b += [self._buffer(f"s_{s}", "states", (T + 1, B, size[s]), True, s) for s in cell.states]
        for n in step.recurrent_linears:
            width = _width(n.gates, n.size)
            dims = (B, width) if n.name in scratch else (T, B, width)
            b.append(self._buffer(f"z_{n.name}", "preact", dims, n.name not in scratch, n.name, n.gates))
            if n.has_expression_input:
                b.append(self._buffer(f"v_{n.name}", "linear_input", (T, B, _dim(n.input_size)), True, n.name))
        b += [self._buffer(f"m_{self._mean_name(r)}", "mean", (T, B), True, r.name) for r in step.reductions]
        for m in cell.masks:
            b.append(self._buffer(f"mask_{m.name}", "mask", (T, B, ir.H) if m.per == "step" else (B, ir.H), True,
                                  m.name))
        for lin in cell.linears:
            if lin.dropconnect:
                w = next(p for p in self.params if p.role == "weight" and p.owner == lin.name)
                b.append(self._buffer(f"mask_{w.name}", "weight_mask", w.dims, True, lin.name, lin.gates))
        b += [self._buffer(f"d_{s}", "d_state", (B, size[s]), owner=s) for s in cell.states]
        for n in step.linears:
            width = _width(n.gates, n.size)
            if n.level == 0 and n.name not in self.ties:
                b.append(self._buffer(f"dzx_{n.name}", "d_x_preact", (T, B, width), owner=n.name, gates=n.gates))
            elif n.level > 0:
                b.append(self._buffer(f"dz_{n.name}", "d_preact", (T, B, width), owner=n.name, gates=n.gates))
                if n.has_expression_input:
                    b.append(self._buffer(f"dv_{n.name}", "d_linear_input", (B, _dim(n.input_size)), owner=n.name))
        b += [self._buffer(f"dmean_{self._mean_name(r)}", "d_mean", (B,), owner=r.name) for r in step.reductions]
        b += [self._buffer(f"dvec_{v.name}", "d_vector", (_width(v.gates, v.size),), owner=v.name, gates=v.gates)
              for v in cell.vectors]
        self.buffers = b

    def _mean_name(self, r):
        """A reduction's buffers are named after the spec's variable for it (m_mu, dm_mu)."""
        return self.p.spec_names.get(r.mean.symbol, r.name)

    def get(self, role, owner=""):
        return next(x for x in self.params + self.buffers if x.role == role and x.owner == owner)

    # -- the step -----------------------------------------------------------------------------
    def _gemm(self, n):
        src = self.get("states", n.input_state) if n.input_state else self.get("linear_input", n.name)
        z = self.get("preact", n.name)
        return ir.Gemm(n.name, ir.Slice(src), self.get("weight", n.name),
                       ir.Slice(z, "all" if n.name in self.per_step else "step"), n.linear.heads)

    def _gemm_adjoint(self, n):
        out = self.get("d_state", n.input_state) if n.input_state else self.get("d_linear_input", n.name)
        return ir.GemmAdjoint(n.name, ir.Slice(self.get("d_preact", n.name)), self.get("weight", n.name),
                              out, accumulate=bool(n.input_state), heads=n.linear.heads)

    def _stage_title(self, s, gemms):
        nodes = self.step.stage(s)
        means = [self.p.spec_names.get(r.mean.symbol, r.name) for r in self.step.stage_reductions(s)]
        parts = [f"{gemms} of {', '.join(n.name for n in nodes)}"] * bool(nodes)
        parts += [f"means {', '.join(means)} (sums over the units)"] * bool(means)
        return f"stage {s}: " + "; ".join(parts)

    def forward(self, blocks):
        stages = []
        for s in range(1, self.step.num_stages + 1):
            nodes = self.step.stage(s)
            ops = blocks.forward_inputs(self.p.forward_inputs[s]) if s in self.p.forward_inputs else []
            stages.append(ir.Stage(self._stage_title(s, "recurrent GEMMs"), ops + [self._gemm(n) for n in nodes]))
        stages.append(ir.Stage("update: new states", blocks.forward_update(self.p.forward_update)))
        return stages

    def backward(self, blocks):
        written = set()
        stages = [ir.Stage("gradient through the update", blocks.backward_update(self.p.backward_update, written))]
        for s in range(self.step.num_stages, 0, -1):
            nodes = self.step.stage(s)
            ops = [self._gemm_adjoint(n) for n in nodes]
            if s in self.p.backward_inputs:
                ops += blocks.backward_inputs(self.p.backward_inputs[s], written)
            stages.append(ir.Stage(self._stage_title(s, "GEMM adjoints"), ops))
        return stages

    # -- before and after the loop ------------------------------------------------------------
    def hoisted(self):
        return [ir.InputGemm(n.name, self.get("weight", n.name),
                             self.get("bias", n.name) if n.linear.bias else None, self.get("x_preact", n.name))
                for n in self.step.x_linears]

    def after(self):
        out, done = [], set()
        x = self.get("x")
        for n in self.step.linears:
            weight = self.get("weight", n.name)
            if n.name in self.ties:
                d = self.get("d_preact", self.ties[n.name])
                out += [ir.WeightGrad(weight, d, x, True), ir.InputGrad(d, weight, True)]
            elif n.level == 0:
                d = self.get("d_x_preact", n.name)
                out += [ir.WeightGrad(weight, d, x), ir.InputGrad(d, weight)]
            else:
                d = self.get("d_preact", n.name)
                src = self.get("states", n.input_state) if n.input_state else self.get("linear_input", n.name)
                out.append(ir.WeightGrad(weight, d, src, heads=n.linear.heads,
                                         mask=self.get("weight_mask", n.name) if n.linear.dropconnect else None))
            if n.linear.bias:
                twin = [a for a, r in self.ties.items() if r == n.name and a in done]
                out.append(ir.BiasGrad(self.get("bias", n.name), d, self.get("bias", twin[0]) if twin else None))
                done.add(n.name)
        out += [ir.VectorGrad(self.get("vector", v.name), self.get("d_vector", v.name)) for v in self.cell.vectors]
        return out

    def linears(self):
        out = []
        for n in self.step.linears:
            src = "x" if n.level == 0 else n.input_state
            if n.has_expression_input:
                blk = self.p.forward_inputs[n.level]
                src = next(e for t, e in blk.outputs if t.name == n.name).xreplace(self.local)
            out.append(ir.LinearInfo(n.name, n.level, n.gates, n.linear.bias,
                                     tuple(self.local[o].name for o in n.linear.outputs), src, n.linear.heads))
        return out

    def _unread_preacts(self, blocks):
        """The saved GEMM outputs of recurrent linears that no backward block reads (the values
        kept for backward took the place of what was read)."""
        ops = blocks.backward_update(self.p.backward_update, set())
        for blk in self.p.backward_inputs.values():
            ops += blocks.backward_inputs(blk, set())
        read = {t.buffer.name for op in ops for r in op.reads for t in r.terms}
        return {b.owner for b in self.buffers if b.role == "preact" and b.saved and b.name not in read}

    def kernel(self):
        blocks = BlockBuilder(self)
        unread = self._unread_preacts(blocks)
        if unread:          # then they live for one step, like a tied linear's
            self.per_step |= unread
            self.buffers = [dataclasses.replace(b, dims=b.dims[1:], saved=False)
                            if b.role == "preact" and b.owner in unread else b for b in self.buffers]
            blocks = BlockBuilder(self)
        named = [(self.local[s], e.xreplace(self.local)) for s, e in self.p.named]
        updates = {t.name: e.xreplace(self.local) for t, e in self.p.forward_update.outputs}
        tie_sums = {a: tuple(self.tie_sums[(a, g)].name for g in range(self.step.node(a).gates))
                    for a in self.ties}
        init = {v.name: v.init for v in self.cell.vectors if v.init is not None}
        return ir.Kernel(self.cell.name, self.cell.states, self.cell.output, self.params, self.buffers,
                         self.linears(), self.hoisted(), self.forward(blocks), self.backward(blocks),
                         self.after(), dict(self.ties), tie_sums, named, self._adjoints(), self._vectors(),
                         updates, dict(self.loop), self.namer, self.sizes,
                         {s: self.cell.size_of(s).symbol for s in self.cell.states}, init,
                         {r.name: self.local[r.mean.symbol].name for r in self.step.reductions},
                         dict(self.cell.size_defaults), self._mean_defs(),
                         {v.name: (ref.buffer.name, ref.gate) for v, (ref, _) in blocks.kept.items()},
                         initial=dict(self.cell.initial),
                         masks=masks_of(self.cell))

    def _mean_defs(self):
        out = []
        for r in self.step.reductions:
            blk = self.p.forward_inputs[r.level]
            e = next(e for t, e in blk.outputs if t.kind == "mean" and t.name == r.name)
            out.append((self.local[r.mean.symbol], e.xreplace(self.local), r.count, r.size.symbol, r.level))
        return out

    def _adjoints(self):
        return {self.local[adjoint(s)].name: self.local[s].name for s, _ in self.p.named}

    def _vectors(self):
        return {v.name: ", ".join(self.local[sym].name for sym in v.symbols) for v in self.cell.vectors}


def lower(program, kernel_globals=KERNEL_GLOBALS, tie_linears=True):
    """The Kernel IR of a StepProgram; `kernel_globals`: names the backends' kernels use as globals."""
    return _Lowering(program, kernel_globals, tie_linears).kernel()
