"""Print the CPU module of one cell from the Kernel IR and the CPU layout: the text the template
places. Each printed line keeps its kind (read, share, write, gemm, add) for `rnngen show`."""
from dataclasses import dataclass, field

from ...compiler import ir
from ...compiler.printer import Constants, KernelPrinter
from .infer import InferLayout, pruned_forward
from ..host import HostOps, after_loop, d_state0, saved_call, saved_key, shape, width


@dataclass
class Block:
    title: str
    rows: list               # per-row views made before the j loop
    loads: list              # read lines
    body: list               # assignments: the spec's named values, d_<name>, tmpN
    stores: list             # write lines
    inactive: list = field(default_factory=list)    # past a row's length
    ir: object = None        # the ir.Pointwise it prints


@dataclass
class Stage:
    title: str
    items: list              # [(kind, line or Block)]: kind "gemm", "add" or "block"


@dataclass
class CpuModule:
    """Everything spec-dependent in a generated CPU module, printed."""
    header: dict
    equations: list
    params: list             # [(name, shape)]
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


class _Printer:
    def __init__(self, kernel, layout):
        self.k, self.lay = kernel, layout
        self.constants = Constants(layout.namer)
        self.printer = KernelPrinter(self.constants)
        self.used = set()      # buffers a kernel references

    def value(self, v, views):
        if isinstance(v, ir.Ref):
            return self.element(v, views)
        return self.printer.doprint(v)

    def element(self, ref, views=None):
        self.used.add(ref.buffer)
        return self.lay.element(ref, views)

    def block(self, blk, stage_title):
        views = []
        loads = [f"{r.symbol.name} = " + " + ".join(self.element(t, views) for t in self.lay.terms(r))
                 for r in blk.reads]
        body = [f"{s.name} = {self.printer.doprint(e)}" for s, e in blk.assigns]
        stores = [f"{self.element(w.ref, views)} {'+=' if w.accumulate else '='} {self.value(w.value, views)}"
                  for w in blk.writes]
        inactive = [f"{self.element(w.ref)} = {self.value(w.value, None)}" for w in blk.inactive]
        title = blk.title if blk.title != stage_title else ""
        return Block(title, views, loads, body, stores, inactive, blk)

    def gemm(self, op):
        for b in (op.input.buffer, op.weight, op.output.buffer):
            self.used.add(b)
        return [("gemm", f"np.dot({self.lay.step_slice(op.input)}, {op.weight.name}.T, "
                         f"{self.lay.step_slice(op.output)})")]

    def gemm_adjoint(self, op):
        out = self.lay.scratch.get(op.linear, op.out)
        for b in (op.d.buffer, op.weight, out, op.out):
            self.used.add(b)
        lines = [("gemm", f"np.dot({self.lay.step_slice(op.d)}, {op.weight.name}, {out.name})")]
        if op.accumulate:
            lines.append(("add", f"{op.out.name} += {out.name}"))
        return lines

    def stages(self, stages):
        out = []
        for st in stages:
            items = []
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    items.append(("block", self.block(op, st.title)))
                elif isinstance(op, ir.Gemm):
                    items += self.gemm(op)
                else:
                    items += self.gemm_adjoint(op)
            out.append(Stage(st.title, items))
        return out

    def args(self, first):
        """Kernel parameters and what the wrapper passes for them: the buffers the kernel uses."""
        order = [first] + [b for b in self.k.buffers if b is not first] + self.k.params \
            + list(self.lay.scratch.values())
        used = [b for b in order if b in self.used]
        self.used = set()
        n = self.k.loop
        return ([n["lengths"], n["reverse"]] + [b.name for b in used],
                ["lengths", "reverse"] + [self.lay.call_name(b) for b in used])


def _forward_setup(k, lay, saving=True):
    setup = []
    for g in k.hoisted:
        setup.append(f'{g.out.name} = (x2d @ params["{g.weight.param}"].T).reshape(T, B, {width(g.out)})')
        if g.bias is not None:
            setup.append(f'{g.out.name} += params["{g.bias.param}"]')
    hoisted = list(setup)
    for i, s in enumerate(k.states):
        buf = k.buffer("states", s)
        setup += [lay.allocate(buf), f"{buf.name}[0] = state0[{i}]"]
    for b in k.buffers:
        if b.role == "preact":
            x = next((a for a, r in k.ties.items() if r == b.owner), None)
            note = (f"this step's product: the loop saves the sums in {k.buffer('x_preact', x).name}"
                    if x and saving else "")
            setup.append(lay.allocate(b, note))
        elif b.role == "linear_input":
            setup.append(lay.allocate(b))
    return setup, hoisted


def _backward_setup(k, lay):
    setup = [f"{k.buffer('d_state', s).name} = d_final[{i}]" for i, s in enumerate(k.states)]
    setup += [lay.allocate(b) for b in k.buffers if b.role in ("d_preact", "d_x_preact", "d_linear_input")]
    setup += [lay.allocate(b, "the product dv = dz @ W, added to the state's gradient")
              for b in lay.scratch.values()]
    setup += [lay.allocate(b) for b in k.buffers if b.role == "d_vector"]
    return setup


OPS = HostOps(gemm_tn="{a}.T @ {b}", gemm="{a} @ {b}", accumulate="{a} += {b}", column_sum="{a}.sum(axis=0)",
              copy="{a}.copy()", vector_grad="{a}", zeros="np.zeros({a}, dtype)")


def emit(kernel, layout, header, equations):
    """The CpuModule of one cell."""
    p = _Printer(kernel, layout)
    forward_stages = p.stages(kernel.forward)
    fargs, fcall = p.args(kernel.buffer("y"))
    backward_stages = p.stages(kernel.backward)
    bargs, bcall = p.args(kernel.buffer("dy"))
    fsetup, hoisted = _forward_setup(kernel, layout)
    states = [kernel.buffer("states", s).name for s in kernel.states]
    saved = [(saved_key(b), b.name) for b in kernel.saved()]
    after = after_loop(kernel, OPS)
    infer_layout = InferLayout(kernel)
    ip = _Printer(kernel, infer_layout)
    ip.constants = p.constants
    ip.printer = p.printer
    infer_stages = ip.stages(pruned_forward(kernel))
    iargs, icall = ip.args(kernel.buffer("y"))
    return CpuModule(
        header=header, equations=equations,
        params=[(b.param, shape(b)) for b in kernel.params], constants=p.constants.lines(),
        helpers=sorted(p.constants.helpers), n=kernel.loop,
        forward_args=fargs, forward_call=fcall, forward_setup=fsetup, forward_stages=forward_stages,
        forward_result=["final_states = (" + ", ".join(f"{s}[T].copy()" for s in states) + ",)"],
        saved=saved, saved_call=saved_call(saved),
        backward_args=bargs, backward_call=bcall, backward_setup=_backward_setup(kernel, layout),
        backward_stages=backward_stages, backward_result=after + [d_state0(kernel)], hoisted=hoisted, after=after,
        infer_args=iargs, infer_call=icall, infer_setup=_forward_setup(kernel, infer_layout, saving=False)[0],
        infer_stages=infer_stages,
        infer_result=["final_states = (" + ", ".join(f"{s}[T % 2].copy()" for s in states) + ",)"])
