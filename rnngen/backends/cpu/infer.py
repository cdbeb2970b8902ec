"""The inference forward of a CPU module (`forward(..., need_grad=False)`): the same step as the
training forward, but it keeps only what the next step needs.

- Ring buffers: every loop-ordered sequence (a state's (T + 1, B, H), a per-step GEMM output or
  linear input (T, B, n)) becomes two rows, [step % 2] and [(step + 1) % 2]: the step reads the
  previous states from one and writes the new ones into the other. A state is read and written at
  the same unit j only (the step is pointwise between GEMMs), and the rows past a sequence's length
  copy their state across, so after T steps row T % 2 holds every final state.
- Input GEMMs in chunks of steps (input_chunks.py): a hoisted product of x (zx_ih) becomes a
  (TC, B, gates*H) chunk, row [chunk_row, b] (chunk_row = step % TC), that the loop fills every
  TC steps from x's rows in loop order (`_gather_steps`) with the per-step GEMM's tile; the
  wrapper picks TC.
- No saving: the writes kept only for backward (the sums of tied linears, the values saved in
  place of their pre-activations: ir.Write.for_backward), and any other write into a buffer that
  nothing later in the step reads, are left out.
"""
from dataclasses import replace

from ...compiler import ir
from ..host import width
from .layout import CpuLayout, shape_text

_RING_ROLES = ("states", "preact", "linear_input", "mean")


def ring_buffers(kernel):
    """The loop-ordered per-step sequences of the forward, by name."""
    return {b.name for b in kernel.buffers
            if b.role in _RING_ROLES and b.dims and b.dims[0] in (ir.T, ir.T + 1)}


class InferLayout(CpuLayout):
    """CpuLayout with the ring buffers indexed by the step's parity."""

    def __init__(self, kernel):
        super().__init__(kernel)
        self.ring = ring_buffers(kernel)
        self.chunked = {g.out.name: g for g in kernel.hoisted}
        if self.chunked:
            def claim(name):
                return self.namer.claim(name, ("kernel", "wrapper"))
            self.TC, self.steps, self.chunk_row = claim("TC"), claim("steps"), claim("chunk_row")
            self.x_chunk = ir.Buffer(claim("x_chunk"), "x", (self.TC, ir.B, ir.I))

    def rows_of(self, ref):
        step, b = self.n["step"], self.n["b"]
        if ref.buffer.name in self.chunked and ref.at == "t":
            return f"{self.chunk_row}, {b}"
        if ref.buffer.name in self.ring and ref.at == "step":
            return f"{step} % 2, {b}"
        if ref.buffer.name in self.ring and ref.at == "next":
            return f"({step} + 1) % 2, {b}"
        return super().rows_of(ref)

    def step_slice(self, s):
        if s.buffer.name in self.ring and s.at == "step":
            return f"{s.buffer.name}[{self.n['step']} % 2]"
        return super().step_slice(s)

    def chunk_setup(self):
        """The wrapper's lines choosing TC and allocating the chunks of x and of its products."""
        weights = ", ".join(f'params["{w.param}"]' for w in self.kernel.params if w.role == "weight")
        widths = " + ".join(f"{width(g.out)}" for g in self.chunked.values())
        lines = [f"{self.TC} = _chunk_steps(T, B * ({widths}) * x.itemsize, [{weights}], "
                 "shared_panels is not None)   # the loop's input GEMMs run every TC steps",
                 f"{self.x_chunk.name} = np.empty(({self.TC}, B, I), dtype)   # x's rows of TC steps, in loop order"]
        lines += [f"{g.out.name} = np.empty(({self.TC}, B, {width(g.out)}), dtype)   # "
                  f"{self.x_chunk.name} @ {g.weight.param}.T" for g in self.chunked.values()]
        return lines

    def chunk_gemms(self, pack):
        """The loop's lines at the start of a step: every TC steps, the input GEMMs of the next TC
        steps; `pack(weight, transposed)` names a weight's packed panels."""
        n, x_chunk, steps = self.n, self.x_chunk.name, self.steps
        # the row's modulo once per step: `step % TC` at each element costs a division there
        # (rnn_tanh T256 B32 H128 inference 3.0 -> 4.8 ms)
        lines = [f"{self.chunk_row} = {n['step']} % {self.TC}   # this step's row of the chunks",
                 f"if {self.chunk_row} == 0:",
                 f"    {steps} = _gather_steps(x, {n['lengths']}, {n['reverse']}, {n['step']}, {x_chunk})"]
        lines += [f"    _gemm_panels(_steps_rows({x_chunk}, {steps}), {pack(g.weight, True)}, "
                  f"_steps_rows({name}, {steps}))" for name, g in self.chunked.items()]
        return lines

    def chunk_sizes(self):
        """The kernel's line reading TC."""
        return [f"{self.TC} = {self.x_chunk.name}.shape[0]   # steps per chunk of the input GEMMs"]

    def allocate(self, buffer, comment=""):
        if buffer.name in self.ring:
            buffer = replace(buffer, dims=(2,) + tuple(buffer.dims[1:]))
        return super().allocate(buffer, comment)


def _reads(op):
    """(buffer name, gate) pairs an op reads."""
    if isinstance(op, ir.Pointwise):
        return {(t.buffer.name, t.gate) for r in op.reads for t in r.terms}
    if isinstance(op, ir.Gemm):
        return {(op.input.buffer.name, None)}
    return set()


def pruned_forward(kernel):
    """The forward stages without the writes nothing later in the step reads (saved for backward
    only). States and y are always written."""
    ops = [op for st in kernel.forward for op in st.ops]
    keep_roles = ("states", "y", "preact", "linear_input", "mean")
    stages, index = [], 0
    for st in kernel.forward:
        new_ops = []
        for op in st.ops:
            index += 1
            if isinstance(op, ir.Pointwise):
                later = set().union(*[_reads(o) for o in ops[index:]]) if index < len(ops) else set()
                writes = [w for w in op.writes if not w.for_backward
                          and (w.ref.buffer.role in keep_roles
                          or (w.ref.buffer.name, w.ref.gate) in later
                          or (w.ref.buffer.name, None) in later)]
                op = replace(op, writes=writes)
            new_ops.append(op)
        stages.append(ir.Stage(st.title, new_ops))
    return stages
