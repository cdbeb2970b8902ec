"""Print the CUDA module of one cell (generated/_cuda_<cell>.py) from the Kernel IR.

The same IR and the same printed pointwise lines as the CPU module; only the loop structure
differs. Forward and backward each run as ONE persistent cooperative kernel per call: block k owns
hidden units [k*units, (k+1)*units) (all gates of those units), keeps its slice of every recurrent
weight in shared memory, and `grid.sync()` separates what needs every unit.

Forward step, for each stage s:   [inputs of stage s (pointwise, own units) -> grid.sync]
                                  GEMM slice: z[step, b, rows of own units] -> syncthreads
                                  fused update (pointwise, own units) -> grid.sync
Backward step:                    gradient through the update (own units)
                                  for s = S..1: grid.sync -> GEMM adjoint: own columns of
                                  dz[step] @ W -> syncthreads -> gradient through inputs of s
"""
from dataclasses import dataclass

from ...compiler import ir
from ...compiler.printer import Constants, KernelPrinter
from ..host import HostOps, after_loop, d_state0, saved_call, saved_key, shape, width
from . import slices


@dataclass
class Block:
    title: str
    lines: list          # reads, assignments and writes of an active (b, j)
    inactive: list       # past a row's length


@dataclass
class Step:
    """One phase of a time step: kind is 'gemm', 'pointwise', 'grid_sync' or 'block_sync'."""
    kind: str
    item: object = None


@dataclass
class CudaModule:
    header: dict
    equations: list
    params: list
    constants: list
    helpers: list
    n: dict
    cooperative: bool         # the step needs grid.sync (it has recurrent linears)
    rows: int                 # sum of the gates of the recurrent linears (shared-memory rows per unit)
    num_recurrent: int
    forward_params: list      # kernel parameter names
    forward_call: list        # what the wrapper passes for them
    forward_kernel_args: list # [(name, ndim)]: kernel parameters for compile-only checks
    forward_setup: list
    forward_offsets: list     # offsets of each weight slice in shared memory
    forward_gemms: list       # [slices.Gemm] (for the shared-memory loads)
    forward_steps: list       # [Step]
    forward_result: list
    saved: list
    saved_call: list
    backward_params: list
    backward_call: list
    backward_kernel_args: list
    backward_setup: list
    backward_offsets: list
    backward_gemms: list
    backward_steps: list
    backward_result: list


class _Printer:
    def __init__(self, kernel, layout):
        self.k, self.lay = kernel, layout
        self.constants = Constants(layout.namer)
        self.printer = KernelPrinter(self.constants)
        self.used = set()
        self.level = {lin.name: lin.level for lin in kernel.linears}

    def element(self, ref):
        self.used.add(ref.buffer)
        return self.lay.element(ref)

    def value(self, v):
        return self.element(v) if isinstance(v, ir.Ref) else self.printer.doprint(v)

    def block(self, blk, extra_inactive=()):
        lines = [f"{r.symbol.name} = " + " + ".join(self.element(t) for t in self.lay.terms(r)) for r in blk.reads]
        lines += [f"{s.name} = {self.printer.doprint(e)}" for s, e in blk.assigns]
        lines += [f"{self.element(w.ref)} {'+=' if w.accumulate else '='} {self.value(w.value)}" for w in blk.writes]
        inactive = [f"{self.element(w.ref)} = {self.value(w.value)}" for w in list(blk.inactive) + list(extra_inactive)]
        return Block(blk.title, lines, inactive)

    def forward(self):
        steps, sync = [], any(lin.level > 0 for lin in self.k.linears)
        for st in self.k.forward[:-1]:
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    steps += [Step("pointwise", self.block(op)), Step("grid_sync")]
                else:
                    self.used |= {op.input.buffer, op.weight, op.output.buffer}
                    steps.append(Step("gemm", slices.forward(op, self.k.loop, self.level[op.linear])))
            steps.append(Step("block_sync"))
        update = self.k.forward[-1].ops[0]
        steps.append(Step("pointwise", self.block(update, self.lay.inactive_zeros(False))))
        return steps + ([Step("grid_sync")] if sync else [])

    def backward(self):
        first = self.k.backward[0].ops[0]
        steps = [Step("pointwise", self.block(first, self.lay.inactive_zeros(True)))]
        for st in self.k.backward[1:]:
            steps.append(Step("grid_sync"))
            for op in st.ops:
                if isinstance(op, ir.GemmAdjoint):
                    self.used |= {op.d.buffer, op.weight, op.out}
                    steps.append(Step("gemm", slices.backward(op, self.k.loop, self.level[op.linear])))
            steps.append(Step("block_sync"))
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    steps += [Step("pointwise", self.block(op)), Step("block_sync")]
        return steps

    def args(self, first):
        order = [first] + [b for b in self.k.buffers if b is not first] + self.k.params
        used = [b for b in order if b in self.used]
        self.used = set()
        n = self.k.loop
        params = [n["lengths"], n["reverse"]] + [b.name for b in used]
        call = ["lengths", "reverse"] + [self.lay.call_name(b) for b in used]
        ndims = [("lengths", 1), ("reverse", 0)] + [(b.name, len(self.lay.dims(b))) for b in used]
        return params, call, ndims + [("_units", 0), ("_on_chip", 0)]


def _forward_setup(k, lay):
    setup = []
    for g in k.hoisted:
        w, out = width(g.out), g.out.name
        setup += [lay.allocate(g.out), f'gemm.gemm(x2d, params["{g.weight.param}"], {out}.reshape(T * B, {w}), '
                                        "trans_b=True)"]
    for i, s in enumerate(k.states):
        buf = k.buffer("states", s)
        fill = f', fill=checks.initial_value(INITIAL, "{s}", dtype)' if s in k.initial else ""
        setup += [lay.allocate(buf), f"elementwise.copy(state0[{i}], {buf.name}[0]{fill})"]
    setup += [lay.allocate(b) for b in k.buffers if b.role in ("preact", "linear_input")]
    setup += [f'{b.name} = masks["{b.owner}"]' for b in k.buffers if b.role == "mask"]
    return lay.dense_heads(True) + setup


def _backward_setup(k, lay):
    setup = lay.dense_heads(False) + [f"{k.buffer('d_state', s).name} = d_final[{i}]" for i, s in enumerate(k.states)]
    return setup + [lay.allocate(b) for b in k.buffers
                    if b.role in ("d_preact", "d_x_preact", "d_linear_input", "d_vector")]


OPS = HostOps(gemm_tn="gemm.gemm({a}, {b}, trans_a=True)", gemm="gemm.gemm({a}, {b})",
              accumulate="{a} = elementwise.add({a}, {b})", column_sum="gemm.column_sum({a})",
              copy="elementwise.copy({a})", vector_grad="gemm.column_sum({a})",
              zeros="elementwise.zeros({a}, dtype)", head_gemm_tn="heads.weight_grad({a}, {b}, {heads})")


def emit(kernel, layout, header, equations):
    """The CudaModule of one cell."""
    p = _Printer(kernel, layout)
    fsteps = p.forward()
    fparams, fcall, fargs = p.args(kernel.buffer("y"))
    bsteps = p.backward()
    bparams, bcall, bargs = p.args(kernel.buffer("dy"))
    rec = [lin for lin in kernel.linears if lin.level > 0]
    fg = [s.item for s in fsteps if s.kind == "gemm"]
    bg = [s.item for s in bsteps if s.kind == "gemm"]
    saved = [(saved_key(b), b.name) for b in kernel.saved()]
    states = [kernel.buffer("states", s).name for s in kernel.states]
    return CudaModule(
        header=header, equations=equations, params=[(b.param, shape(b)) for b in kernel.params],
        constants=p.constants.lines(), helpers=sorted(p.constants.helpers), n=kernel.loop,
        cooperative=bool(rec), rows=sum(lin.gates for lin in rec), num_recurrent=len(rec),
        forward_params=fparams, forward_call=fcall, forward_kernel_args=fargs,
        forward_setup=_forward_setup(kernel, layout), forward_offsets=slices.offsets(fg), forward_gemms=fg,
        forward_steps=fsteps, forward_result=["final_states = (" + ", ".join(f"{s}[T]" for s in states) + ",)"],
        saved=saved, saved_call=saved_call(saved, device=True),
        backward_params=bparams, backward_call=bcall, backward_kernel_args=bargs,
        backward_setup=_backward_setup(kernel, layout), backward_offsets=slices.offsets(bg),
        backward_gemms=bg, backward_steps=bsteps, backward_result=after_loop(kernel, OPS) + [d_state0(kernel)])
