"""`rnngen show` and `rnngen list`: what the generator derived for a cell, read from the same
pipeline `rnngen build` runs (load_spec -> derive -> Emitter), never re-derived by hand.

`show` prints the forward equations, the stages of one step (GEMMs and fused pointwise blocks),
the derived backward after common-subexpression elimination exactly as the kernels compute it,
the parameter shapes, FLOPs per step and the bytes kept for training per step.
"""
import os
import re
import sys

import sympy as sp

from .build import builtin_specs_dir, spec_paths
from .derive import derive
from .emit import Emitter
from .errors import SpecError
from .loader import load_spec

B, I, H = sp.symbols("B I H", positive=True, integer=True)
EXAMPLE = {B: 32, I: 128, H: 128}       # the "small" size of the design's measured anchors


def find_spec(cell, specs_dir=None):
    """Path of the spec for `cell`: a spec file path, or a name in `specs_dir` (default: built-in)."""
    if cell.endswith(".py") or os.sep in cell:
        if not os.path.isfile(cell):
            raise FileNotFoundError(f"no spec file {cell}")
        return os.path.abspath(cell)
    return spec_paths(specs_dir or builtin_specs_dir(), [cell])[0]


# -- what the pipeline produced -----------------------------------------------------------------
def _load_adds(line):
    """Additions a fused loop's load line does: `xi = zx_ih_g0[j] + z_hh_g0[j] + bias_hh[j]` is 2
    (the tied pre-activation sums), `dnext_h = d_h[b, j] + dy[t, b, j]` is 1; index arithmetic aside."""
    return re.sub(r"\[[^\]]*\]", "", line.partition("=")[2]).count("+")


class Analysis:
    """One cell through the build pipeline, with counts for show and list."""

    def __init__(self, path):
        self.path = path
        self.cell = load_spec(path)
        self.program = derive(self.cell)
        self.em = Emitter(self.program, cpu_layout=True)
        self.forward_stages = self.em.forward_stages()
        self.backward_stages = self.em.backward_stages()
        fsetup, fargs, _, _, self.saved = self.em.forward_wrapper()
        self.hoisted = [line for line in fsetup if line.startswith("zx_")]
        self.after_loop = self.em.backward_wrapper(fargs)[3]
        self.params = self.em.params()
        self.symbols = {}    # parameter -> the names the equations use for it
        for n in self.program.linears:
            self.symbols[f"weight_{n.name}"] = ("gates " if n.gates > 1 else "gate ") + ", ".join(self.em.names[o] for o in n.linear.outputs)
        for v in self.cell.vectors:
            self.symbols[v.name] = "per unit, " + self.em.names[v.symbol] + " in the equations"

    # shapes
    def width(self, node):
        return node.gates * H

    def in_dim(self, node):
        return I if node.level == 0 else H

    def saved_width(self, name):
        """Elements per (time step, batch row) of a saved array."""
        kind, _, rest = name.partition("_")
        if kind in ("zx", "z"):
            node = next(n for n in self.program.linears if n.name == rest)
            return self.width(node)
        return H     # s_<state>, v_<linear>

    # counts
    def _pointwise_ops(self, stages):
        total = 0
        for st in stages:
            for blk in st.blocks:
                temps, outs = blk.temps, blk.outputs
                total += sum(sp.count_ops(e) for _, e in temps)
                total += sum(sp.count_ops(e) for _, e in outs)
                total += sum(_load_adds(line) for line in blk.loads)
        return total

    def flops(self):
        """FLOPs per time step, as {part: sympy expression in B, I, H}, forward and backward.

        A GEMM (m, k) x (k, n) is 2mnk; a pointwise op (+, *, a function call such as sigmoid or
        tanh) is 1 per element of (B, H). Hoisted GEMMs run once over all T steps: counted per step.
        """
        p = self.program
        f = {
            "x GEMMs (hoisted, per step)": sum(2 * B * self.in_dim(n) * self.width(n) for n in p.x_linears),
            "recurrent GEMMs": sum(2 * B * H * self.width(n) for n in p.recurrent_linears),
            "fused pointwise": self._pointwise_ops(self.forward_stages) * B * H,
        }
        b = {
            "recurrent GEMM adjoints (dv = dz W)": sum(2 * B * self.width(n) * H + (B * H if n.input_state else 0)
                                                       for n in p.recurrent_linears),
            "fused pointwise": self._pointwise_ops(self.backward_stages) * B * H,
            "after the loop: dW, dx, db (per step)": sum(
                2 * B * self.width(n) * self.in_dim(n) + (2 * B * self.width(n) * I if n.level == 0 else 0)
                + (B * self.width(n) if n.linear.bias else 0) for n in p.linears),
        }
        return ({k: sp.expand(v) for k, v in f.items() if v != 0},
                {k: sp.expand(v) for k, v in b.items() if v != 0})

    def saved_elements(self):
        """Elements per step that forward keeps for backward (beyond x itself)."""
        return sp.expand(sum(B * self.saved_width(n) for n in self.saved))

    def workspace_elements(self):
        """Elements per step backward keeps for the after-loop weight GEMMs (dZ of every linear)."""
        return sp.expand(sum(B * self.width(n) for n in self.program.linears if n.name not in self.em.tied))

    def stage_summary(self):
        parts = []
        if self.program.x_linears:
            parts.append("x:" + ",".join(n.name for n in self.program.x_linears))
        for s in range(1, self.program.num_stages + 1):
            parts.append(f"{s}:" + ",".join(n.name for n in self.program.stage(s)))
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
def _block_lines(blk, indent):
    pad = " " * indent
    out = [f"{pad}fused pointwise loop over (b, j): {blk.title}"]
    out += [f"{pad}  read   {line}" for line in blk.loads]
    out += [f"{pad}  share  {line}" for line in blk.body]
    out += [f"{pad}  write  {line}" for line in blk.stores]
    out += [f"{pad}  past a row's length: {line}" for line in blk.inactive]
    return out


def text(a, size=None):
    size = size or EXAMPLE
    cell = a.cell
    out = [f"cell {cell.name}    spec {a.path}",
           f"states {', '.join(cell.states)}    output {cell.output}",
           "",
           "Parameters (I = input size, H = hidden size)"]
    width = max(len(n) for n, _ in a.params)
    shapes = [_shape(s) for _, s in a.params]
    sw = max(len(s) for s in shapes)
    out += [f"  {n:{width}s}  {s:{sw}s}  {a.symbols.get(n, '')}".rstrip() for (n, _), s in zip(a.params, shapes)]
    out += ["", "Forward step, for one batch row b and hidden unit j"]
    out += [f"  {line}" for line in a.em.equations()]

    out += ["", "Forward stages (the kernel's time loop; i counts steps, t = i or the reversed index)"]
    if a.hoisted:
        out.append("  before the loop: one GEMM over all T*B rows")
        out += [f"    {line}" for line in a.hoisted]
    for st in a.forward_stages:
        out.append(f"  {st.title}")
        for line in st.before:
            out.append(f"    GEMM   {line}")
        for blk in st.blocks:
            out += _block_lines(blk, 4)
        for line in st.after:
            out.append(f"    GEMM   {line}")

    out += ["", "Backward step (derived by reverse mode, after CSE, as the kernel computes it;",
            "dnext_<s> is the gradient arriving at the new state, d_<s> the one leaving to the previous)"]
    for st in a.backward_stages:
        out.append(f"  {st.title}")
        for line in st.before:
            out.append(f"    {'GEMM  ' if 'np.dot' in line else 'add   '} {line}")
        for blk in st.blocks:
            out += _block_lines(blk, 4)
        for line in st.after:
            out.append(f"    {'GEMM  ' if 'np.dot' in line else 'add   '} {line}")
    out.append("  after the loop: one GEMM each over all T*B rows")
    out += [f"    {line}" for line in a.after_loop if not line.startswith("d_state0")]

    if a.em.constants:
        out.append("  constants, typed as the arrays' dtype: " + ", ".join(
            f"{k} = {v}" for k, v in sorted(a.em.constants.items())))
    fwd, bwd = a.flops()
    out += ["", f"FLOPs per step (B = batch, function calls count 1; example {_example(size)})"]
    for title, parts in (("forward", fwd), ("backward", bwd)):
        total = sp.expand(sum(parts.values()))
        out.append(f"  {title:9s} {_fmt(total)}  = {_num(int(total.subs(size)))}FLOP")
        for k, v in parts.items():
            out.append(f"    {k}: {_fmt(v)}")
    saved, work = a.saved_elements(), a.workspace_elements()
    out += ["", "Bytes saved per step for training (kept by forward for backward; x itself not counted)"]
    out.append(f"  {_fmt(saved)} elements: {', '.join(a.saved)}")
    for dtype, nbytes in (("float32", 4), ("float64", 8)):
        out.append(f"    {dtype}: {_fmt(nbytes * saved)} bytes = {_num(int((nbytes * saved).subs(size)))}B "
                   f"at {_example(size)}")
    out.append(f"  backward workspace (dZ of every linear, for the after-loop GEMMs): {_fmt(work)} elements "
               f"= {_num(int((4 * work).subs(size)))}B in float32")
    return "\n".join(out) + "\n"


# -- LaTeX ---------------------------------------------------------------------------------------
def _tex_name(name):
    return r"\mathit{" + name.replace("_", r"\_") + "}"


class _Tex:
    def __init__(self, a):
        self.a = a
        names = {}
        for sym, local in a.em.names.items():
            names[sym] = _tex_name(local)
        for s in a.cell.states:
            names[sp.Symbol(f"g_{s}")] = r"\overline{" + s + "'}"
        for n in a.program.linears:
            names[sp.Symbol(f"g_v_{n.name}")] = r"\overline{v_{\mathrm{" + n.name + "}}}"
        self.names = names

    def expr(self, e, temps=()):
        names = dict(self.names)
        for t, _ in temps:
            names[t] = "t_{" + t.name[3:] + "}"
        return sp.latex(e, symbol_names=names)

    def target(self, tgt):
        p = self.a.program
        if tgt.kind == "state":
            return f"{tgt.name}'"
        if tgt.kind == "v":
            return r"v_{\mathrm{" + tgt.name + "}}"
        if tgt.kind == "dz":
            node = next(n for n in p.linears if n.name == tgt.name)
            return r"\overline{" + self.names[node.linear.outputs[tgt.gate]] + "}"
        if tgt.kind == "dstate":
            return r"\overline{" + tgt.name + "}"
        return r"\overline{" + _tex_name(tgt.name) + "}"

    def block(self, blk, written):
        temps, outs = blk.temps, blk.outputs
        lines = [f"t_{{{t.name[3:]}}} &= {self.expr(e, temps)}" for t, e in temps]
        for tgt, e in outs:
            op = "&\\mathrel{+}=" if (tgt in written or tgt.kind == "dvec") else "&="
            if tgt.kind in ("dz", "dstate", "dvec"):
                written.add(tgt)
            lines.append(f"{self.target(tgt)} {op} {self.expr(e, temps)}")
        return lines


def latex(a):
    cell, tex = a.cell, _Tex(a)
    env = lambda lines: ["\\begin{align*}", " \\\\\n".join(lines), "\\end{align*}"]  # noqa: E731
    out = [f"% rnngen show {cell.name} --latex (spec {os.path.basename(a.path)})",
           f"\\paragraph{{Cell {cell.name.replace('_', chr(92) + '_')}}} states "
           f"${', '.join(cell.states)}$, output ${cell.output}$; primes are values after the step, "
           r"bars gradients of the loss.", "", r"\paragraph{Parameters}"]
    out += ["\\begin{tabular}{lll}"]
    out += [f"${_tex_name(n)}$ & $({', '.join(d.replace('*', '') for d in s)})$ & "
            f"{a.symbols.get(n, '').replace('_', chr(92) + '_')} \\\\" for n, s in a.params]
    out += ["\\end{tabular}", "", r"\paragraph{Forward step} (one batch row, one hidden unit)"]
    lines = []
    for n in a.program.linears:
        outs = ", ".join(tex.names[o] for o in n.linear.outputs)
        src = "x" if n.level == 0 else tex.expr(n.linear.input)
        bias = r" + b_{\mathrm{" + n.name + "}}" if n.linear.bias else ""
        where = "hoisted" if n.level == 0 else f"stage {n.level}"
        lines.append(f"({outs}) &= ({src})\\,W_{{\\mathrm{{{n.name}}}}}^\\top{bias} "
                     f"&& \\text{{{where}}}")
    for s in cell.states:
        lines.append(f"{s}' &= {tex.expr(cell.updates[s])}")
    out += env(lines)
    out += ["", r"\paragraph{Forward fused blocks} (after CSE)"]
    for st in a.forward_stages:
        for blk in st.blocks:
            out += [f"% {st.title}: {blk.title}"] + env(tex.block(blk, set()))
    out += ["", r"\paragraph{Backward step} (derived by reverse mode, after CSE, as the kernel computes "
            r"it; each stage's GEMM adjoint $\overline{v} = \overline{z}\,W$ runs between blocks)"]
    written = set()
    for st in a.backward_stages:
        if st.before:
            out.append(f"% {st.title}: " + "; ".join(st.before))
        for blk in st.blocks:
            out += [f"% {st.title}: {blk.title}"] + env(tex.block(blk, written))
    fwd, bwd = a.flops()
    out += ["", r"\paragraph{Cost per step}", "\\begin{align*}",
            f"\\text{{forward FLOPs}} &= {sp.latex(sp.expand(sum(fwd.values())))} \\\\",
            f"\\text{{backward FLOPs}} &= {sp.latex(sp.expand(sum(bwd.values())))} \\\\",
            f"\\text{{elements saved for training}} &= {sp.latex(a.saved_elements())}",
            "\\end{align*}"]
    return "\n".join(out) + "\n"


# -- command handlers ----------------------------------------------------------------------------
def show_command(args):
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
