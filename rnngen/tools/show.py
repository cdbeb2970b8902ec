"""`rnngen show` and `rnngen list`: what the generator derived for a cell, read from the
intermediates the compiler driver keeps (the Kernel IR and the CPU emitter's printed lines).

`show` prints the forward equations, the stages of one step (GEMMs and fused pointwise blocks),
the derived backward after common-subexpression elimination exactly as the kernels compute it,
the parameter shapes, FLOPs per step (counted on the IR) and the bytes kept for training per step.
"""
import os
import sys

import sympy as sp

from ..backends.host import shape
from ..compiler import ir
from ..compiler.driver import Compilation
from ..errors import SpecError
from .build import builtin_specs_dir, spec_paths

B, I, H = ir.B, ir.I, ir.H
EXAMPLE = {B: 32, I: 128, H: 128}       # the "small" size of the design's measured anchors


def find_spec(cell, specs_dir=None):
    """Path of the spec for `cell`: a spec file path, or a name in `specs_dir` (default: built-in)."""
    if cell.endswith(".py") or os.sep in cell:
        if not os.path.isfile(cell):
            raise FileNotFoundError(f"no spec file {cell}")
        return os.path.abspath(cell)
    return spec_paths(specs_dir or builtin_specs_dir(), [cell])[0]


def per_step(buffer):
    """Elements of a buffer per time step (the d/dT of its size: a state's T + 1 rows count one)."""
    return sp.diff(sp.Mul(*buffer.dims), ir.T)


class Analysis:
    """One cell through the compiler, with counts for show and list."""

    def __init__(self, path):
        self.path = path
        self.comp = Compilation(path)
        self.cell = self.comp["load"]
        self.kernel = self.comp.kernel("cpu")
        self.params = [(b.param, shape(b)) for b in self.kernel.params]
        self.saved = [b for b in self.kernel.saved()]
        self.symbols = {}    # parameter -> the names the equations use for it
        for lin in self.kernel.linears:
            self.symbols[f"weight_{lin.name}"] = ("gates " if lin.gates > 1 else "gate ") + ", ".join(lin.outputs)
        for v, local in self.kernel.vectors.items():
            self.symbols[v] = f"per unit, {local} in the equations"
        self.weights = {b.owner: b for b in self.kernel.params if b.role == "weight"}
        self.size_symbols = [sp.Symbol(n, positive=True, integer=True) for n in self.kernel.sizes]

    def example(self, size):
        """`size` {B, I, H: value} with a value for each run-time size: its default (H's value for
        "H"), else half of H."""
        out = dict(size)
        for sym in self.size_symbols:
            default = self.kernel.size_defaults.get(sym.name)
            out[sym] = size[H] if default == "H" else (default or max(1, size[H] // 2))
        return out

    @property
    def module(self):
        """The CPU module's printed lines (the emitter's output the template places)."""
        return self.comp["emit:cpu"]

    @property
    def layout(self):
        return self.comp["layout:cpu"]

    # counts
    def _pointwise_ops(self, stages):
        """Operations per (b, j) of the fused blocks: +, *, function calls, the adds of a read."""
        total = 0
        for st in stages:
            for op in st.ops:
                if isinstance(op, ir.Pointwise):
                    ops = sum(sp.count_ops(e) for _, e in op.assigns)
                    ops += sum(sp.count_ops(w.value) + (w.reduce is not None)     # a sum's add
                               for w in op.writes if isinstance(w.value, sp.Basic))
                    ops += sum(len(self.layout.terms(r)) - 1 for r in op.reads)
                    total += ops * op.size
        return total

    def flops(self):
        """FLOPs per time step, as {part: sympy expression in B, I, H}, forward and backward.

        A GEMM (m, k) x (k, n) is 2mnk; a pointwise op (+, *, a function call such as sigmoid or
        tanh) is 1 per element of (B, H). Hoisted GEMMs run once over all T steps: counted per step.
        """
        lins = self.kernel.linears
        width = {lin.name: self.weights[lin.name].dims[0] for lin in lins}
        fan_in = {lin.name: self.weights[lin.name].dims[1] for lin in lins}
        for lin in lins:        # a block-diagonal (heads) linear: each output reads its head's H/heads inputs
            if lin.heads:
                width[lin.name], fan_in[lin.name] = lin.gates * H, H / ir.HEADS
        state_input = {lin.name: isinstance(lin.input, str) and lin.level > 0 for lin in lins}
        f = {
            "x GEMMs (hoisted, per step)": sum(2 * B * I * width[n.name] for n in lins if n.level == 0),
            "recurrent GEMMs": sum(2 * B * fan_in[n.name] * width[n.name] for n in lins if n.level > 0),
            "fused pointwise": self._pointwise_ops(self.kernel.forward) * B,
        }
        b = {
            "recurrent GEMM adjoints (dv = dz W)": sum(2 * B * width[n.name] * fan_in[n.name]
                                                       + (B * fan_in[n.name] if state_input[n.name] else 0)
                                                       for n in lins if n.level > 0),
            "fused pointwise": self._pointwise_ops(self.kernel.backward) * B,
            "after the loop: dW, dx, db (per step)": sum(
                2 * B * width[n.name] * fan_in[n.name] + (2 * B * width[n.name] * I if n.level == 0 else 0)
                + (B * width[n.name] if n.bias else 0) for n in lins),
        }
        return ({k: sp.expand(v) for k, v in f.items() if v != 0},
                {k: sp.expand(v) for k, v in b.items() if v != 0})

    def saved_elements(self):
        """Elements per step that forward keeps for backward (beyond x itself)."""
        return sp.expand(sum(per_step(b) for b in self.saved))

    def workspace_elements(self):
        """Elements per step backward keeps for the after-loop weight GEMMs (dZ of every linear)."""
        return sp.expand(sum(per_step(b) for b in self.kernel.buffers if b.role in ("d_preact", "d_x_preact")))

    def stage_summary(self):
        lins = self.kernel.linears
        parts = ["x:" + ",".join(n.name for n in lins if n.level == 0)] if any(n.level == 0 for n in lins) else []
        means = {}      # stage number -> the reductions it sums
        for k, st in enumerate(self.kernel.forward, 1):
            for op in st.ops:
                for w in getattr(op, "writes", []):
                    if w.reduce is not None:
                        means.setdefault(k, []).append(self.kernel.means.get(w.ref.buffer.owner, w.ref.buffer.owner))
        for s in range(1, self.kernel.num_stages + 1):
            names = [n.name for n in lins if n.level == s] + [f"mean {m}" for m in means.get(s, [])]
            parts.append(f"{s}:" + ",".join(names))
        return " | ".join(parts) + " | update"


def _shape(shape):
    return "(" + ", ".join(shape) + (",)" if len(shape) == 1 else ")")


def _fmt(expr):
    return str(expr).replace("**", "^")


def _num(value):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= div:
            return f"{value / div:.3g} {unit}"
    return f"{value:g} "


def _example(size):
    return ", ".join(f"{k}={v}" for k, v in size.items())



# -- plain text ----------------------------------------------------------------------------------
_LABEL = {"gemm": "GEMM  ", "add": "add   "}


def _stage_lines(stage):
    out = [f"  {stage.title}"]
    for kind, item in stage.items:
        if kind != "rows":
            out.append(f"    {_LABEL[kind]} {item}")
            continue
        for k, blk in enumerate(item.blocks):
            if blk.stage:
                out.append(f"  {blk.stage}")
            where = "fused pointwise loop over (b, j)" if k == 0 else "then, in the same loop over rows b, over j"
            out.append(f"    {where}: {blk.title or stage.title}")
            out += [f"      read   {line}" for line in blk.loads]
            out += [f"      share  {line}" for line in blk.body]
            out += [f"      write  {line}" for line in blk.stores]
            out += [f"      write  {line}" for line in blk.after]
            out += [f"      past a row's length: {line}" for line in blk.inactive]
    return out


def text(a, size=None):
    size = a.example(size or EXAMPLE)
    cell, m = a.cell, a.module
    sizes = "".join(f", {n} = a run-time size (a keyword of init_params, RNN, the bridge, "
                    f"rnngen train --size; default {a.kernel.size_defaults.get(n, 'none')})" for n in a.kernel.sizes)
    states = ", ".join(f"{s} ({m.state_sizes[s]})" for s in cell.states) if a.kernel.sizes else ", ".join(cell.states)
    out = [f"cell {cell.name}    spec {a.path}",
           f"states {states}    output {cell.output}",
           ""]
    if getattr(cell, "doc", ""):
        out += ["The spec's docstring"] + [f"  {line}".rstrip() for line in cell.doc.splitlines()] + [""]
    out += [f"Parameters (I = input size, H = hidden size{sizes})"]
    width = max(len(n) for n, _ in a.params)
    shapes = [_shape(s) for _, s in a.params]
    sw = max(len(s) for s in shapes)
    out += [f"  {n:{width}s}  {s:{sw}s}  {a.symbols.get(n, '')}".rstrip() for (n, _), s in zip(a.params, shapes)]
    out += ["", "Forward step, for one batch row b and hidden unit j"]
    out += [f"  {line}" for line in m.equations]
    n = m.n
    out += ["", f"Forward stages (the kernel's time loop; {n['step']} counts steps, "
                f"{n['t']} = {n['step']} or the reversed index)"]
    if m.hoisted:
        out.append("  before the loop: one GEMM over all T*B rows")
        out += [f"    {line}" for line in m.hoisted]
    for st in m.forward_stages:
        out += _stage_lines(st)
    out += ["", "Backward step (derived by reverse mode, after CSE, as the kernel computes it;",
            "dnext_<s> is the gradient arriving at the new state, d_<s> the one leaving to the previous,",
            "d_<name> the gradient of the spec's value <name>)"]
    for st in m.backward_stages:
        out += _stage_lines(st)
    out.append("  after the loop: one GEMM each over all T*B rows")
    out += [f"    {line}" for line in m.after]
    if m.constants:
        out.append("  constants, typed as the arrays' dtype: " + ", ".join(f"{k} = {v}" for k, v in m.constants))
    fwd, bwd = a.flops()
    out += ["", f"FLOPs per step (B = batch, function calls count 1; example {_example(size)})"]
    for title, parts in (("forward", fwd), ("backward", bwd)):
        total = sp.expand(sum(parts.values()))
        out.append(f"  {title:9s} {_fmt(total)}  = {_num(int(total.subs(size)))}FLOP")
        for k, v in parts.items():
            out.append(f"    {k}: {_fmt(v)}")
    saved, work = a.saved_elements(), a.workspace_elements()
    out += ["", "Bytes saved per step for training (kept by forward for backward; x itself not counted)"]
    out.append(f"  {_fmt(saved)} elements: {', '.join(b.name for b in a.saved)}")
    for dtype, nbytes in (("float32", 4), ("float64", 8)):
        out.append(f"    {dtype}: {_fmt(nbytes * saved)} bytes = {_num(int((nbytes * saved).subs(size)))}B "
                   f"at {_example(size)}")
    out.append(f"  backward workspace (dZ of every linear, for the after-loop GEMMs): {_fmt(work)} elements "
               f"= {_num(int((4 * work).subs(size)))}B in float32")
    return "\n".join(out) + "\n"


# -- command handlers ----------------------------------------------------------------------------
def show_command(args):
    from .show_latex import latex
    try:
        path = find_spec(args.cell, args.specs)
        analysis = Analysis(path)
    except FileNotFoundError as exc:
        print(f"rnngen show: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        print(f"rnngen show: SpecError: {exc}", file=sys.stderr)
        return 1
    size = dict(zip((B, I, H), args.size)) if args.size else EXAMPLE
    sys.stdout.write(latex(analysis) if args.latex else text(analysis, size))
    return 0


def list_command(args):
    specs_dir = args.specs or builtin_specs_dir()
    try:
        paths = spec_paths(specs_dir)
    except FileNotFoundError as exc:
        print(f"rnngen list: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print(f"rnngen list: no spec files in {specs_dir}", file=sys.stderr)
        return 2
    rows, status = [], 0
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            a = Analysis(path)
        except SpecError as exc:
            rows.append((stem, "-", f"SpecError: {exc}", ""))
            status = 1
            continue
        params = " ".join(f"{n}{_shape(s).replace(' ', '')}" for n, s in a.params)
        rows.append((a.cell.name, ",".join(a.cell.states), params, a.stage_summary()))
    w0 = max(len(r[0]) for r in rows + [("cell",)])
    w1 = max(len(r[1]) for r in rows + [("", "states")])
    w2 = max(len(r[2]) for r in rows + [("", "", "params")])
    print(f"{'cell':{w0}s}  {'states':{w1}s}  {'params':{w2}s}  stages (x: hoisted GEMM, s: GEMMs of stage s)")
    for r in rows:
        print(f"{r[0]:{w0}s}  {r[1]:{w1}s}  {r[2]:{w2}s}  {r[3]}".rstrip())
    return status


def add_parsers(sub):
    """Add `show` and `list` to the `rnngen` subcommand parsers."""
    s = sub.add_parser("show", help="print what rnngen derived for a cell: equations, stages, "
                                    "backward, parameters, FLOPs and memory per step")
    s.add_argument("cell", help="a cell name (built-in, or in --specs) or a spec file path")
    s.add_argument("--specs", help="folder of spec files (default: the built-in specs)")
    s.add_argument("--latex", action="store_true", help="print LaTeX (align* blocks) instead of text")
    s.add_argument("--size", nargs=3, type=int, metavar=("B", "I", "H"),
                   help="evaluate FLOPs and bytes at this batch, input and hidden size (default 32 128 128)")
    s.set_defaults(func=show_command)
    lst = sub.add_parser("list", help="list the available cells, one line each")
    lst.add_argument("--specs", help="folder of spec files (default: the built-in specs)")
    lst.set_defaults(func=list_command)
