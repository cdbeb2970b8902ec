"""Lower a StepProgram to the typed Kernel IR (ir.py): names, buffers, stages and blocks, once.

Tied linears: when an x-linear's pre-activation gradient equals, gate for gate, that of a level-1
linear of a state (an LSTM's xi + hi), the two only appear summed. The forward loop then adds them
once and saves the sum in place of the x-linear's output (the recurrent GEMM writes a per-step
scratch), backward reads that one array, stores one dZ, and both weight-gradient GEMMs read it.
"""
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


def _width(gates):
    return gates * ir.H


class _Lowering:
    def __init__(self, program, kernel_globals, tie_linears):
        self.p = program
        self.step = program.step
        self.cell = program.cell
        self.namer = Namer(kernel_globals, WRAPPER_NAMES)
        self.local = {sym: sp.Symbol(self.namer.claim(name)) for sym, name in program.spec_names.items()}
        self.loop = {key: self.namer.claim(key) for key in _LOOP_NAMES}
        self.local.update({sym: sp.Symbol(self.namer.claim(name))
                           for sym, name in program.derived_names.items()})
        self.ties = find_ties(program) if tie_linears else {}
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
            rows, cols = _width(lin.gates), (ir.I if node.level == 0 else ir.H)
            dims = (ir.HEADS, rows / ir.HEADS, cols / ir.HEADS) if lin.heads else (rows, cols)
            self.params.append(self._buffer(f"weight_{lin.name}", "weight", dims, owner=lin.name,
                                            gates=lin.gates, param=f"weight_{lin.name}"))
            if lin.bias:
                self.params.append(self._buffer(f"bias_{lin.name}", "bias", (rows,), owner=lin.name,
                                                gates=lin.gates, param=f"bias_{lin.name}"))
        self.params += [self._buffer(f"vec_{v.name}", "vector", (ir.H,), owner=v.name, param=v.name)
                        for v in cell.vectors]
        scratch = set(self.ties.values())
        T, B, H = ir.T, ir.B, ir.H
        b = [ir.Buffer("x", "x", (T, B, ir.I)),
             self._buffer("y", "y", (T, B, H), scopes=("kernel",)),
             self._buffer("dy", "dy", (T, B, H), scopes=("kernel",))]
        for n in step.x_linears:
            b.append(self._buffer(f"zx_{n.name}", "x_preact", (T, B, _width(n.gates)), True, n.name, n.gates))
        b += [self._buffer(f"s_{s}", "states", (T + 1, B, H), True, s) for s in cell.states]
        for n in step.recurrent_linears:
            dims = (B, _width(n.gates)) if n.name in scratch else (T, B, _width(n.gates))
            b.append(self._buffer(f"z_{n.name}", "preact", dims, n.name not in scratch, n.name, n.gates))
            if n.has_expression_input:
                b.append(self._buffer(f"v_{n.name}", "linear_input", (T, B, H), True, n.name))
        for m in cell.masks:
            b.append(self._buffer(f"mask_{m.name}", "mask", (T, B, H) if m.per == "step" else (B, H), True, m.name))
        for lin in cell.linears:
            if lin.dropconnect:
                w = next(p for p in self.params if p.role == "weight" and p.owner == lin.name)
                b.append(self._buffer(f"mask_{w.name}", "weight_mask", w.dims, True, lin.name, lin.gates))
        b += [self._buffer(f"d_{s}", "d_state", (B, H), owner=s) for s in cell.states]
        for n in step.linears:
            if n.level == 0 and n.name not in self.ties:
                b.append(self._buffer(f"dzx_{n.name}", "d_x_preact", (T, B, _width(n.gates)),
                                      owner=n.name, gates=n.gates))
            elif n.level > 0:
                b.append(self._buffer(f"dz_{n.name}", "d_preact", (T, B, _width(n.gates)),
                                      owner=n.name, gates=n.gates))
                if n.has_expression_input:
                    b.append(self._buffer(f"dv_{n.name}", "d_linear_input", (B, H), owner=n.name))
        b += [self._buffer(f"dvec_{v.name}", "d_vector", (H,), owner=v.name) for v in cell.vectors]
        self.buffers = b

    def get(self, role, owner=""):
        return next(x for x in self.params + self.buffers if x.role == role and x.owner == owner)

    # -- the step -----------------------------------------------------------------------------
    def _gemm(self, n):
        src = self.get("states", n.input_state) if n.input_state else self.get("linear_input", n.name)
        z = self.get("preact", n.name)
        return ir.Gemm(n.name, ir.Slice(src), self.get("weight", n.name),
                       ir.Slice(z, "all" if n.name in self.ties.values() else "step"), n.linear.heads)

    def _gemm_adjoint(self, n):
        out = self.get("d_state", n.input_state) if n.input_state else self.get("d_linear_input", n.name)
        return ir.GemmAdjoint(n.name, ir.Slice(self.get("d_preact", n.name)), self.get("weight", n.name),
                              out, accumulate=bool(n.input_state), heads=n.linear.heads)

    def forward(self, blocks):
        stages = []
        for s in range(1, self.step.num_stages + 1):
            nodes = self.step.stage(s)
            ops = [blocks.forward_inputs(self.p.forward_inputs[s])] if s in self.p.forward_inputs else []
            stages.append(ir.Stage(f"stage {s}: recurrent GEMMs of {', '.join(n.name for n in nodes)}",
                                   ops + [self._gemm(n) for n in nodes]))
        stages.append(ir.Stage("update: new states", [blocks.forward_update(self.p.forward_update)]))
        return stages

    def backward(self, blocks):
        written = set()
        stages = [ir.Stage("gradient through the update", [blocks.backward_update(self.p.backward_update, written)])]
        for s in range(self.step.num_stages, 0, -1):
            nodes = self.step.stage(s)
            ops = [self._gemm_adjoint(n) for n in nodes]
            if s in self.p.backward_inputs:
                ops.append(blocks.backward_inputs(self.p.backward_inputs[s], written))
            stages.append(ir.Stage(f"stage {s}: GEMM adjoints of {', '.join(n.name for n in nodes)}", ops))
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

    def kernel(self):
        blocks = BlockBuilder(self)
        named = [(self.local[s], e.xreplace(self.local)) for s, e in self.p.named]
        updates = {t.name: e.xreplace(self.local) for t, e in self.p.forward_update.outputs}
        tie_sums = {a: tuple(self.tie_sums[(a, g)].name for g in range(self.step.node(a).gates))
                    for a in self.ties}
        return ir.Kernel(self.cell.name, self.cell.states, self.cell.output, self.params, self.buffers,
                         self.linears(), self.hoisted(), self.forward(blocks), self.backward(blocks),
                         self.after(), dict(self.ties), tie_sums, named, self._adjoints(), self._vectors(),
                         updates, dict(self.loop), self.namer, initial=dict(self.cell.initial),
                         masks=masks_of(self.cell))

    def _adjoints(self):
        return {self.local[adjoint(s)].name: self.local[s].name for s, _ in self.p.named}

    def _vectors(self):
        return {v.name: self.local[v.symbol].name for v in self.cell.vectors}


def lower(program, kernel_globals=KERNEL_GLOBALS, tie_linears=True):
    """The Kernel IR of a StepProgram; `kernel_globals`: names the backends' kernels use as globals."""
    return _Lowering(program, kernel_globals, tie_linears).kernel()
