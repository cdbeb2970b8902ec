"""Print the CPU module of one cell from the Kernel IR and the CPU layout: the text the template
places. Each printed line keeps its kind (read, share, write, gemm, add) for `rnngen show`."""
from dataclasses import dataclass, field, replace

import sympy as sp

from ...compiler import ir
from ...compiler.printer import Constants, KernelPrinter
from ..host import after_loop, d_state0, kernel_sizes, saved_call, saved_key, shape
from . import rows, split
from .entry import backward_entry, entry_helpers, forward_entry, infer_entry
from .infer import InferLayout, pruned_forward
from .wrapper import OPS, backward_setup, forward_setup, helpers, wrapper_sizes


@dataclass
class Block:
    title: str
    rows: list               # per-row views made before the j loop
    loads: list              # read lines
    body: list               # assignments: the spec's named values, d_<name>, tmpN
    stores: list             # write lines
    inactive: list = field(default_factory=list)    # past a row's length
    ir: object = None        # the ir.Pointwise it prints
    size: str = "H"          # the units the j loop runs over
    after: list = field(default_factory=list)       # after the j loop: a reduction's per-row store
    loops: list = None      # a split block (split.py): [(loads, body, stores)] of each j loop, in order
    stage: str = ""          # the heading of the stage it starts, when that is inside a row loop (rows.py)


@dataclass
class RowLoop:
    """Blocks that run one after another in one loop over the batch rows (rows.py)."""
    blocks: list             # [Block]

    @property
    def inactive(self):
        """The blocks with lines past a row's length."""
        return [blk for blk in self.blocks if blk.inactive]


@dataclass
class Stage:
    title: str
    items: list              # [(kind, line or RowLoop)]: kind "gemm", "add" or "rows"


@dataclass
class CpuModule:
    """Everything spec-dependent in a generated CPU module, printed."""
    header: dict
    equations: list
    params: list             # [(name, shape)]
    sizes: tuple             # the run-time size names beyond I and H
    size_defaults: dict      # size -> its default (an int or "H")
    state_sizes: dict        # state -> the name of its size
    sized_states: bool       # the cell has run-time sizes or a state whose size is not H: the
                             # wrappers pass STATE_SIZES to the state checks
    init: dict               # parameter -> constant initial value
    kernel_sizes: dict       # "forward"/"backward" -> the kernel's lines reading T, B and the sizes
    wrapper_sizes: dict      # "forward"/"backward" -> the wrapper's lines reading H and the sizes
    constants: list          # [(local name, literal)]
    helpers: list            # mathlib functions the kernels call
    n: dict                  # the loops' names
    forward_args: list
    forward_call: list
    forward_setup: list
    forward_stages: list
    forward_result: list
    saved: list              # [(attribute, local)]
    saved_call: list         # the lines creating `saved`
    backward_args: list
    backward_call: list
    backward_setup: list
    backward_stages: list
    backward_result: list
    hoisted: list            # the forward setup lines that are the hoisted GEMMs
    after: list              # the backward result lines that are the gradients after the loop
    infer_args: list         # the inference forward (need_grad=False, infer.py): the loop's
    infer_call: list         # parameters, what the wrapper passes, its set-up, stages, result
    infer_setup: list
    infer_stages: list
    infer_result: list
    rate0: object = None     # the CpuModule of the cell with every mask 1 (compiler/masks.py), or None
    infer_entry: object = None   # the inference forward of a small call in one compiled call (entry.py), or None
    forward_entry: object = None     # its training forward, and its backward, the same way (entry.py), or None
    backward_entry: object = None


class _Printer:
    def __init__(self, kernel, layout):
        self.k, self.lay = kernel, layout
        self.constants = Constants(layout.namer)
        self.printer = KernelPrinter(self.constants)
        self.used = set()      # buffers a kernel references
        self.terms = {}        # a kernel's reductions' terms arrays -> their size
        self.scales = {}       # a kernel's reductions' 1/count -> the local holding it
        self.row_arrays = {}   # (name, size) -> a split block's one-row array (split.py)
        self.packed = {}       # a kernel's packed weights (panels buffers) -> the wrapper's line making each

    def value(self, v, views):
        if isinstance(v, ir.Ref):
            return self.element(v, views)
        return self.printer.doprint(v)

    def element(self, ref, views=None):
        self.used.add(ref.buffer)
        return self.lay.element(ref, views)

    def sized(self, e):
        """A sympy expression over size symbols, printed with the kernels' locals for them."""
        return self.printer.doprint(e.xreplace({q: type(q)(self.lay.size_name(q)) for q in e.free_symbols}))

    def count_text(self, e):
        """A reduction's count as plain Python over the kernels' size locals (4 * H): no typed
        constants, which the kernels set after their sizes."""
        return str(e.xreplace({q: type(q)(self.lay.size_name(q)) for q in e.free_symbols})).replace("*", " * ")

    def scale(self, e):
        """A reduction's 1/count as a local of the arrays' dtype, set once per kernel (inv_4H = 1/(4*H))."""
        if e not in self.scales:
            count = 1 / e
            label = str(count).replace("*", "").replace(" ", "")
            self.scales[e] = self.lay.namer.claim(f"inv_{label}")
        return self.scales[e]

    def scale_lines(self, dtype_of):
        """The kernel's lines setting the scales: `inv_4H = y.dtype.type(1) / y.dtype.type(4 * H)`
        (divided in the arrays' dtype)."""
        out = [f"{name} = {dtype_of}(1) / {dtype_of}({self.count_text(1 / e)})"
               for e, name in self.scales.items()]
        self.scales = {}
        return out

    def _ref_key(self, ref):
        """The pointer an element is read or written through (each view, each gate of a vector)."""
        return (ref.buffer.name, ref.gate if ref.buffer.gates > 1 else 0, ref.at)

    def _pointers(self, blk):
        def read_keys(r):
            return {self._ref_key(t) for t in self.lay.terms(r) if not t.buffer.per_row}

        def write_key(w):
            if w.reduce is not None:
                return (self.lay.sum_name(w.ref)[1], 0, "terms")
            return self._ref_key(w.ref)
        return split.Pointers(blk, read_keys, self._ref_key, write_key)

    def _load(self, r, views):
        return f"{r.symbol.name} = " + " + ".join(self.element(t, views) for t in self.lay.terms(r))

    def _store(self, w, views, sums):
        """The line of one write; a reduction's term goes to its terms array, its sum to `sums`."""
        if w.reduce is None:
            return f"{self.element(w.ref, views)} {'+=' if w.accumulate else '='} {self.value(w.value, views)}"
        acc, terms = self.lay.sum_name(w.ref)    # a reduction: terms per unit, summed after the loop
        sums.append((acc, terms, w))
        return f"{terms}[{self.k.loop['j']}] = {self.value(w.value, views)}"

    def _sum_lines(self, sums, size):
        """The sums of a block's reductions: one loop over the units adding every terms array in
        order (independent chains: each sum adds its terms in the order j = 0, 1, ...)."""
        if not sums:
            return []
        j = self.k.loop["j"]
        for _, terms, _ in sums:
            self.terms[terms] = size
        out = [f"{acc} = {self.printer.doprint(sp.Integer(0))}" for acc, _, _ in sums]
        out.append(f"for {j} in range({size}):")
        out += [f"    {acc} += {terms}[{j}]" for acc, terms, _ in sums]
        out += [f"{self.element(w.ref)} {'+=' if w.accumulate else '='} {acc}*{self.scale(w.reduce)}"
                for acc, _, w in sums]
        return out

    def _row_array(self, sym, size):
        """The one-row array holding `sym` between the loops of a split block (row_<name>)."""
        key = (sym.name, size)
        if key not in self.row_arrays:
            self.row_arrays[key] = self.lay.namer.claim(f"row_{sym.name}")
        return self.row_arrays[key]

    def block(self, blk, stage_title):
        views, loads = [], []
        for r in blk.reads:         # a per-row value (a mean, its gradient) is read before the j loop
            line = self._load(r, views)
            (views if all(t.buffer.per_row for t in r.terms) else loads).append(line)
        size = self.lay.size_name(blk.size)
        title = blk.title if blk.title != stage_title else ""
        inactive = [f"{self.element(w.ref)} = {self.value(w.value, None)}" for w in blk.inactive]
        ptrs = self._pointers(blk)
        if split.needs_split(ptrs):
            # a value a later block of the row loop reads (rows.py) is kept in the array it reads
            exports = {w.value: w.ref.buffer.name for w in blk.writes if w.ref.buffer.role == "row_values"}
            inner = replace(blk, writes=[w for w in blk.writes if w.ref.buffer.role != "row_values"])
            return self._split_block(inner, split.plan(self._pointers(inner), keep=exports), views, size, title,
                                     inactive, exports)
        body = [f"{s.name} = {self.printer.doprint(e)}" for s, e in blk.assigns]
        sums = []
        stores = [self._store(w, views, sums) for w in blk.writes]
        return Block(title, views, loads, body, stores, inactive, blk, size, self._sum_lines(sums, size))

    def _split_block(self, blk, plan, views, size, title, inactive, exports):
        """A block over LLVM's alias-check budget as several j loops (split.py); `exports`: the
        values kept for later blocks of the row loop -> their arrays."""
        j = self.k.loop["j"]

        def row(q):
            return exports.get(q) or self._row_array(q, size)
        views += [f"{s.name} = {self.printer.doprint(e)}" for s, e in plan.hoisted]
        sums, loops = [], []
        for lp in plan.loops:
            loads = [self._load(r, views) for r in lp.reads]
            loads += [f"{q.name} = {row(q)}[{j}]" for q in lp.row_in]
            body = [f"{s.name} = {self.printer.doprint(e)}" for s, e in lp.assigns]
            stores = [f"{row(s)}[{j}] = {s.name}" for s in lp.row_out]
            stores += [self._store(w, views, sums) for w in lp.writes]
            loops.append((loads, body, stores))
        first, rest = loops[0], loops[1:]
        after = []
        for loads, body, stores in rest:
            after.append(f"for {j} in range({size}):")
            after += [f"    {line}" for line in loads + body + stores]
        note = f"{len(loops)} loops over the units: one would not vectorize (too many arrays; rnngen/backends/cpu/split.py)"
        title = f"{title}; {note}" if title else note
        block = Block(title, views, first[0], first[1], first[2], inactive, blk, size,
                      after + self._sum_lines(sums, size))
        block.loops = loops
        return block

    def pack(self, weight, transposed, suffix=""):
        """The kernel argument holding the weight (.T when `transposed`) packed once per call by the
        wrapper (stepgemm.py; host_gemm.panels_of: shared by the batch slices of one call)."""
        name = self.lay.panel_name(weight, suffix)
        operand = self.lay.call_name(weight) + (".T" if transposed else "")
        buf = ir.Buffer(name, "panels", (), owner=weight.owner)
        self.packed[buf] = f'{name} = _panels_of(shared_panels, "{name}", {operand})   # packed once per call'
        self.used.add(buf)
        return name

    def gemm(self, op):
        for b in (op.input.buffer, op.output.buffer):
            self.used.add(b)
        if op.heads:
            self.used.add(op.weight)
            lines, scratch = self.lay.head_gemm(op)
            self.used.update(scratch)
            return [("gemm", line) for line in lines]
        return [("gemm", f"_gemm_panels({self.lay.step_slice(op.input)}, {self.pack(op.weight, True)}, "
                         f"{self.lay.step_slice(op.output)})")]

    def input_chunks(self):
        """The inference loop's first stage: its input GEMMs, every TC steps (infer.py)."""
        self.used |= {self.k.buffer("x"), self.lay.x_chunk}
        self.used |= {g.out for g in self.lay.chunked.values()}
        lines = self.lay.chunk_gemms(self.pack)
        return Stage("stage 0: the input GEMMs of the next TC steps", [("gemm", line) for line in lines])

    def gemm_adjoint(self, op):
        out = self.lay.scratch.get(op.linear, op.out)
        for b in (op.d.buffer, out, op.out):
            self.used.add(b)
        if op.heads:
            self.used.add(op.weight)
            text, scratch = self.lay.head_gemm_adjoint(op, out)
            self.used.update(scratch)
            lines = [("gemm", line) for line in text]
        else:
            lines = [("gemm", f"_gemm_panels({self.lay.step_slice(op.d)}, {self.pack(op.weight, False, '_adj')}, "
                              f"{out.name})")]
        if op.accumulate:
            lines.append(("add", f"{op.out.name} += {out.name}"))
        return lines

    def row_buffer(self, k, sym, size):
        """The one-row array keeping block k's `sym` for later blocks of a row loop (rows.py)."""
        key = (f"{k}:{sym.name}", self.lay.size_name(size))
        if key not in self.row_arrays:
            self.row_arrays[key] = self.lay.namer.claim(f"row_{sym.name}")
        return ir.Buffer(self.row_arrays[key], "row_values", (size,))

    def row_loop(self, blocks, stage_title):
        out = []
        for (title, _), p in zip(blocks, rows.reuse([p for _, p in blocks], self.row_buffer)):
            blk = self.block(p, title or stage_title)
            blk.stage = title or ""
            out.append(blk)
        return RowLoop(out)

    def stages(self, stages):
        """The printed stages; a stage whose blocks all run in an earlier stage's row loop is
        left out (its heading is printed inside that loop)."""
        out = []
        for title, ops in rows.group(stages):
            items = []
            for kind, op in ops:
                if kind == "rows":
                    items.append(("rows", self.row_loop(op, title)))
                elif isinstance(op, ir.Gemm):
                    items += self.gemm(op)
                else:
                    items += self.gemm_adjoint(op)
            if items:
                out.append(Stage(title, items))
        return out

    def args(self, first):
        """Kernel parameters and what the wrapper passes for them: the buffers the kernel uses; the
        kernel's lines reading its sizes from them; the wrapper's lines packing its weights."""
        order = [first] + [b for b in self.k.buffers if b is not first] + self.k.params \
            + list(dict.fromkeys(self.lay.bias_sums.values())) + list(self.lay.scratch.values()) \
            + [b for bufs in self.lay.head_scratch.values() for b in bufs] \
            + ([self.lay.x_chunk] if self.lay.chunked else []) + list(self.packed)
        used, self.used, n = [b for b in order if b in self.used], set(), self.k.loop
        terms = [f"{name} = np.empty({size}, {first.name}.dtype)   # a reduction's terms, one row at a time"
                 for name, size in self.terms.items()]
        terms += [f"{name} = np.empty({size}, {first.name}.dtype)   # one row's values, between "
                  + ("the blocks of a row loop" if ":" in key else "split loops")
                  for (key, size), name in self.row_arrays.items()]
        packed, self.terms, self.row_arrays, self.packed = list(self.packed.values()), {}, {}, {}
        return ([n["lengths"], n["reverse"]] + [b.name for b in used],
                ["lengths", "reverse"] + [self.lay.call_name(b) for b in used],
                kernel_sizes(self.k, self.lay, used, first) + terms
                + self.scale_lines(f"{first.name}.dtype.type"), packed)


def emit(kernel, layout, header, equations, rate0=None):
    """The CpuModule of one cell; `rate0`: that of the cell with every mask 1, when it has masks
    (its kernels are printed into the same module; its `saved` says rate0=True)."""
    p = _Printer(kernel, layout)
    forward_stages = p.stages(kernel.forward)
    fargs, fcall, fsizes, fpanels = p.args(kernel.buffer("y"))
    backward_stages = p.stages(kernel.backward)
    bargs, bcall, bsizes, bpanels = p.args(kernel.buffer("dy"))
    fsetup, hoisted = forward_setup(kernel, layout)
    states = [kernel.buffer("states", s).name for s in kernel.states]
    saved = [(saved_key(b), b.name) for b in kernel.saved()]
    after = after_loop(kernel, OPS)
    infer_layout = InferLayout(kernel)
    ip = _Printer(kernel, infer_layout)
    ip.constants = p.constants
    ip.printer = p.printer
    infer_stages = ip.stages(pruned_forward(kernel))
    if infer_layout.chunked:
        infer_stages.insert(0, ip.input_chunks())
    iargs, icall, isizes, ipanels = ip.args(kernel.buffer("y"))
    isizes += infer_layout.chunk_sizes() if infer_layout.chunked else []
    isetup = infer_layout.bias_sum_lines(icall) + forward_setup(kernel, infer_layout, saving=False)[0] + ipanels
    masked = rate0 is not None          # its lines read the masks (the kernels at rate 0 read none, or a weight's)
    ientry = None if masked else infer_entry(isetup, icall, infer_layout.TC if infer_layout.chunked else None,
                                             kernel.sizes, str(kernel.output_size))
    fsetup = layout.bias_sum_lines(fcall) + fsetup + fpanels
    fresult = ["final_states = (" + ", ".join(f"{s}[T].copy()" for s in states) + ",)"]
    bsetup = layout.bias_sum_lines(bcall) + backward_setup(kernel, layout) + bpanels
    bresult = after + [d_state0(kernel)]
    saved_names = [name for _, name in saved]
    fentry = None if masked else forward_entry(fsetup, fcall, fresult, saved_names, kernel.sizes,
                                               str(kernel.output_size))
    bentry = None if masked else backward_entry(bsetup, bcall, bresult, saved_names, kernel.sizes,
                                                [b.param for b in kernel.params])
    return CpuModule(
        header=header, equations=equations,
        params=[(b.param, shape(b)) for b in kernel.params], sizes=tuple(kernel.sizes),
        size_defaults=dict(kernel.size_defaults),
        state_sizes={s: str(kernel.state_sizes[s]) for s in kernel.states}, init=dict(kernel.init),
        sized_states=bool(kernel.sizes) or any(kernel.state_sizes[s] != ir.H for s in kernel.states),
        kernel_sizes={"forward": fsizes, "backward": bsizes, "infer": isizes},
        wrapper_sizes={"forward": wrapper_sizes(kernel, False), "backward": wrapper_sizes(kernel, True)},
        constants=p.constants.lines(),
        helpers=sorted(set(helpers(kernel, p.constants.helpers, layout, infer_layout))
                       | entry_helpers(ientry, fentry, bentry) | set(rate0.helpers if rate0 else ())),
        n=kernel.loop,
        forward_args=fargs, forward_call=fcall, forward_setup=fsetup, forward_stages=forward_stages,
        forward_result=fresult,
        saved=saved, saved_call=saved_call(saved, marks={"rate0": True} if header.get("variant") == "rate0" else {}),
        backward_args=bargs, backward_call=bcall,
        backward_setup=bsetup, backward_stages=backward_stages, backward_result=bresult, hoisted=hoisted, after=after,
        infer_args=iargs, infer_call=icall,
        infer_setup=isetup, infer_stages=infer_stages,
        infer_result=["final_states = (" + ", ".join(f"{s}[T % 2].copy()" for s in states) + ",)"], rate0=rate0,
        infer_entry=ientry, forward_entry=fentry, backward_entry=bentry)
