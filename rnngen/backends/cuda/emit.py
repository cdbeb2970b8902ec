"""Print the CUDA module of one cell (generated/_cuda_<cell>.py) from the Kernel IR.

The same IR and the same printed pointwise lines as the CPU module; only the loop structure
differs. Forward and backward each run as ONE persistent cooperative kernel per call: block k owns
hidden units [k*units, (k+1)*units) (all gates of those units), keeps its slice of every recurrent
weight in shared memory, and `grid.sync()` separates what needs every unit.

Forward, before the loop:         row 0 of the state sequences from state0 (own units) -> grid.sync
Forward step, for each stage s:   [inputs of stage s (pointwise, own units) -> grid.sync]
                                  GEMM slice: z[step, b, rows of own units] -> syncthreads
                                  fused update (pointwise, own units) -> grid.sync
Backward, before the loop:        d_state from d_final, bias/vector accumulators zero -> syncthreads
Backward step:                    gradient through the update (own units; adds each written dz
                                  to its bias accumulator)
                                  for s = S..1: grid.sync -> GEMM adjoint: own columns of
                                  dz[step] @ W -> syncthreads -> gradient through inputs of s
Backward, after the loop:         the bias and vector gradients: own columns of the accumulators
                                  summed over the batch rows (a warp per column, fixed order)

The GEMM slices are printed by slices.py (warp tiles), the wrappers' lines by wrapper.py; each
stage is one list of Steps, so a new kind of stage is one more Step kind and its printer.
"""
from dataclasses import dataclass

from ...compiler import ir
from ...compiler.printer import Constants, KernelPrinter
from ..host import saved_call, saved_key, shape
from . import slices, wrapper


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
    forward_init: list        # kernel lines before the loop: row 0 of the state sequences from state0
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
    backward_init: list       # kernel lines before the loop: d_state from d_final, accumulators zero
    backward_offsets: list
    backward_gemms: list
    backward_steps: list
    backward_epilogue: list   # kernel lines after the loop: the bias and vector gradients
    backward_result: list


class _Printer:
    def __init__(self, kernel, layout):
        self.k, self.lay = kernel, layout
        self.constants = Constants(layout.namer)
        self.printer = KernelPrinter(self.constants)
        self.used = set()
        self.level = {lin.name: lin.level for lin in kernel.linears}
        self.acc = wrapper.accumulators(kernel, layout)     # bias sums accumulated in the kernel

    def element(self, ref):
        self.used.add(ref.buffer)
        return self.lay.element(ref)

    def value(self, v):
        return self.element(v) if isinstance(v, ir.Ref) else self.printer.doprint(v)

    def block(self, blk, extra_inactive=()):
        lines = [f"{r.symbol.name} = " + " + ".join(self.element(t) for t in self.lay.terms(r)) for r in blk.reads]
        lines += [f"{s.name} = {self.printer.doprint(e)}" for s, e in blk.assigns]
        for w in blk.writes:
            lines.append(f"{self.element(w.ref)} {'+=' if w.accumulate else '='} {self.value(w.value)}")
            if w.ref.buffer.name in self.acc:
                lines.append(self.acc[w.ref.buffer.name](w.ref, self.value(w.value)))
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

    def args(self, first, extra):
        """Kernel parameters, the wrapper's arguments for them, (name, ndim) of each; `extra`:
        (parameter, argument, ndim) beyond the IR's buffers (state0, accumulators, bias outputs)."""
        order = [first] + [b for b in self.k.buffers if b is not first] + self.k.params
        used = [b for b in order if b in self.used]
        self.used = set()
        n = self.k.loop
        params = [n["lengths"], n["reverse"]] + [b.name for b in used] + [e[0] for e in extra]
        call = ["lengths", "reverse"] + [self.lay.call_name(b) for b in used] + [e[1] for e in extra]
        ndims = [("lengths", 1), ("reverse", 0)] + [(b.name, len(self.lay.dims(b))) for b in used]
        ndims += [(e[0], e[2]) for e in extra]
        return params, call, ndims + [("_units", 0), ("_on_chip", 0)]


def emit(kernel, layout, header, equations):
    """The CudaModule of one cell."""
    p = _Printer(kernel, layout)
    fsteps = p.forward()
    fparams, fcall, fargs = p.args(kernel.buffer("y"), wrapper.forward_extra_args(kernel))
    bsteps = p.backward()
    bparams, bcall, bargs = p.args(kernel.buffer("dy"), wrapper.backward_extra_args(kernel))
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
        forward_setup=wrapper.forward_setup(kernel, layout), forward_init=wrapper.forward_init(kernel, layout), forward_offsets=slices.offsets(fg), forward_gemms=fg,
        forward_steps=fsteps, forward_result=["final_states = (" + ", ".join(f"{s}[T]" for s in states) + ",)"],
        saved=saved, saved_call=saved_call(saved, device=True),
        backward_params=bparams, backward_call=bcall, backward_kernel_args=bargs,
        backward_setup=wrapper.backward_setup(kernel, layout), backward_init=wrapper.backward_init(kernel, layout),
        backward_offsets=slices.offsets(bg), backward_gemms=bg, backward_steps=bsteps,
        backward_epilogue=wrapper.backward_epilogue(kernel, bsteps[-1].kind == "block_sync"), backward_result=wrapper.after_loop(kernel))
