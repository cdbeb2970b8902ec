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
from ..host import kernel_sizes, saved_call, saved_key, shape
from . import slices, wrapper
from .reductions import has_reduction, reduction


@dataclass
class Block:
    title: str
    lines: list          # reads, assignments and writes of an active (b, j)
    inactive: list       # past a row's length
    nu: str = "_nu"      # how many units of its size this block owns


@dataclass
class Step:
    """One phase of a time step: kind is 'gemm', 'pointwise', 'reduction' (reductions.py),
    'grid_sync' or 'block_sync'."""
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
    sizes: tuple = ()         # the run-time size names
    size_defaults: dict = None
    state_sizes: dict = None  # state -> its size's name
    kernel_sizes: dict = None  # "forward"/"backward": the kernel lines reading T, B and the sizes
    unit_lines: list = None   # the kernel lines counting this block's units of each run-time size
    wrapper_sizes: list = None    # the wrappers' lines reading the run-time sizes
    grid_units: str = "H"     # the units the grid covers: the largest size
    max_threads: object = None    # threads per block at most (reductions or sizes: 256), or None
    rate0: object = None     # the CudaModule of the cell with every mask 1 (compiler/masks.py), or None


class _Printer:
    def __init__(self, kernel, layout):
        self.k, self.lay = kernel, layout
        self.constants = Constants(layout.namer)
        self.printer = KernelPrinter(self.constants)
        self.used = set()
        self.level = {lin.name: lin.level for lin in kernel.linears}
        self.scales = {}
        self.acc = wrapper.accumulators(kernel, layout)     # bias sums accumulated in the kernel

    def element(self, ref):
        self.used.add(ref.buffer)
        return self.lay.element(ref)

    def value(self, v):
        return self.element(v) if isinstance(v, ir.Ref) else self.printer.doprint(v)

    def sized(self, e):
        """A sympy expression over size symbols, printed with the kernels' locals for them."""
        return self.printer.doprint(e.xreplace({q: type(q)(self.lay.size_name(q)) for q in e.free_symbols}))

    def count_text(self, e):
        """A reduction's count as plain Python over the kernels' size locals (4 * H): no typed
        constants, which the kernels set after their sizes."""
        return str(e.xreplace({q: type(q)(self.lay.size_name(q)) for q in e.free_symbols})).replace("*", " * ")

    def scale(self, e):
        """A reduction's 1/count as a kernel local of the element type (inv_4H = _dtype(1) / _dtype(4 * H))."""
        if e not in self.scales:
            label = str(1 / e).replace("*", "").replace(" ", "")
            self.scales[e] = self.lay.namer.claim(f"inv_{label}")
        return self.scales[e]

    def block(self, blk, extra_inactive=()):
        lines = [f"{r.symbol.name} = " + " + ".join(self.element(t) for t in self.lay.terms(r)) for r in blk.reads]
        lines += [f"{s.name} = {self.printer.doprint(e)}" for s, e in blk.assigns]
        for w in blk.writes:
            lines.append(f"{self.element(w.ref)} {'+=' if w.accumulate else '='} {self.value(w.value)}")
            if w.ref.buffer.name in self.acc:
                lines.append(self.acc[w.ref.buffer.name](w.ref, self.value(w.value)))
        inactive = [f"{self.element(w.ref)} = {self.value(w.value)}" for w in list(blk.inactive) + list(extra_inactive)]
        return Block(blk.title, lines, inactive, self.lay.units_name(blk.size))

    def pointwise(self, blk, extra_inactive=()):
        """The steps of one pointwise block: a reduction's sums, then the grid's, end with grid.sync."""
        if has_reduction(blk):
            return [Step("reduction", reduction(self, blk, extra_inactive)), Step("grid_sync")]
        return [Step("pointwise", self.block(blk, extra_inactive))]

    def _extra_inactive(self, blk, backward):
        """inactive_zeros() for the blocks of the state's (or the output's) size only."""
        zeros = self.lay.inactive_zeros(backward)
        return [w for w in zeros if w.ref.buffer.dims[-1] / w.ref.buffer.gates == blk.size]

    def forward(self):
        steps, sync = [], any(lin.level > 0 for lin in self.k.linears) or bool(self.k.mean_defs)
        for st in self.k.forward[:-1]:
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    steps += self.pointwise(op) + [Step("grid_sync")]
                else:
                    self.used |= {op.input.buffer, op.weight, op.output.buffer}
                    steps.append(Step("gemm", slices.forward(op, self.k.loop, self.level[op.linear], self.lay)))
            steps.append(Step("block_sync"))
        for update in self.k.forward[-1].ops:
            steps += self.pointwise(update, self._extra_inactive(update, False))
        return steps + ([Step("grid_sync")] if sync else [])

    def backward(self):
        steps = []
        for first in self.k.backward[0].ops:
            steps += self.pointwise(first, self._extra_inactive(first, True))
        for st in self.k.backward[1:]:
            steps.append(Step("grid_sync"))
            for op in st.ops:
                if isinstance(op, ir.GemmAdjoint):
                    self.used |= {op.d.buffer, op.weight, op.out}
                    steps.append(Step("gemm", slices.backward(op, self.k.loop, self.level[op.linear], self.lay)))
            steps.append(Step("block_sync"))
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    steps += self.pointwise(op) + [Step("block_sync")]
        return steps

    def args(self, first, extra):
        """Kernel parameters, the wrapper's arguments for them, (name, ndim) of each, the kernel's
        lines reading its sizes; `extra`: (parameter, argument, ndim) beyond the IR's buffers
        (state0, accumulators, bias outputs)."""
        order = [first] + [b for b in self.k.buffers if b is not first] + self.k.params \
            + list(self.lay.partials.values())
        used = [b for b in order if b in self.used]
        self.used = set()
        n = self.k.loop
        params = [n["lengths"], n["reverse"]] + [b.name for b in used] + [e[0] for e in extra]
        call = ["lengths", "reverse"] + [self.lay.call_name(b) for b in used] + [e[1] for e in extra]
        ndims = [("lengths", 1), ("reverse", 0)] + [(b.name, len(self.lay.dims(b))) for b in used]
        ndims += [(e[0], e[2]) for e in extra]
        sizes = kernel_sizes(self.k, self.lay, [b for b in used if b.role not in ("d_vector", "partial")], first)
        sizes += [f"{name} = _dtype(1) / _dtype({self.count_text(1 / e)})" for e, name in self.scales.items()]
        self.scales = {}
        return params, call, ndims + [("_units", 0), ("_on_chip", 0)], sizes


# the persistent kernels of a cell with reductions or run-time sizes hold more values per thread
# (float32, sm_90: layernorm_lstm up to ~170 registers, lstm_proj's forward 138): at most 256
# threads per block keep a block within the 64K registers of an SM
REDUCTION_THREADS = 256


def _grid_units(kernel):
    """The units the persistent grid covers: H, or the largest of H and the run-time sizes."""
    return "H" if not kernel.sizes else f"max(H, {', '.join(kernel.sizes)})"


def emit(kernel, layout, header, equations, rate0=None):
    """The CudaModule of one cell; `rate0`: that of the cell with every mask 1, when it has masks
    (its kernels are printed into the same module; its `saved` says rate0=True)."""
    p = _Printer(kernel, layout)
    fsteps = p.forward()
    fparams, fcall, fargs, fsizes = p.args(kernel.buffer("y"), wrapper.forward_extra_args(kernel))
    fpartials = wrapper.partials(kernel, layout, _grid_units(kernel))
    bsteps = p.backward()
    bparams, bcall, bargs, bsizes = p.args(kernel.buffer("dy"), wrapper.backward_extra_args(kernel))
    bpartials = [line for line in wrapper.partials(kernel, layout, _grid_units(kernel)) if line not in fpartials]
    rec = [lin for lin in kernel.linears if lin.level > 0]
    fg = [s.item for s in fsteps if s.kind == "gemm"]
    bg = [s.item for s in bsteps if s.kind == "gemm"]
    saved = [(saved_key(b), b.name) for b in kernel.saved()]
    states = [kernel.buffer("states", s).name for s in kernel.states]
    return CudaModule(
        header=header, equations=equations, params=[(b.param, shape(b)) for b in kernel.params],
        constants=p.constants.lines(), n=kernel.loop,
        helpers=sorted(p.constants.helpers | ({"_lane_tile_heads", "_lane_tile_heads_t"} if any(
            lin.heads for lin in rec) else set())),
        cooperative=bool(rec) or bool(kernel.mean_defs), rows=sum(lin.gates for lin in rec), num_recurrent=len(rec),
        forward_params=fparams, forward_call=fcall, forward_kernel_args=fargs,
        forward_setup=wrapper.forward_setup(kernel, layout) + fpartials,
        forward_init=wrapper.forward_init(kernel, layout), forward_offsets=slices.offsets(fg), forward_gemms=fg,
        forward_steps=fsteps, forward_result=["final_states = (" + ", ".join(f"{s}[T]" for s in states) + ",)"],
        saved=saved, saved_call=saved_call(saved, device=True,
                                           marks={"rate0": True} if header.get("variant") == "rate0" else {}),
        backward_params=bparams, backward_call=bcall, backward_kernel_args=bargs,
        backward_setup=wrapper.backward_setup(kernel, layout) + bpartials,
        backward_init=wrapper.backward_init(kernel, layout),
        backward_offsets=slices.offsets(bg), backward_gemms=bg, backward_steps=bsteps,
        backward_epilogue=wrapper.backward_epilogue(kernel, layout, bsteps[-1].kind == "block_sync"),
        backward_result=wrapper.after_loop(kernel, layout),
        sizes=tuple(kernel.sizes), size_defaults=dict(kernel.size_defaults),
        state_sizes={s: str(kernel.state_sizes[s]) for s in kernel.states},
        kernel_sizes={"forward": fsizes, "backward": bsizes},
        unit_lines=[f"{layout.units_name(sp_)} = max(0, min(_units, {layout.size_name(sp_)} - _j0))"
                    for sp_ in kernel.sizes],
        wrapper_sizes=[f'{size} = checks.sizes_of(params, PARAMS)["{size}"]' for size in kernel.sizes],
        grid_units=_grid_units(kernel), max_threads=REDUCTION_THREADS if kernel.mean_defs or kernel.sizes else None,
        rate0=rate0)
