"""`rnngen show --latex`: the cell's equations and the derived blocks of the Kernel IR as LaTeX."""
import os

import sympy as sp

from ..compiler import ir


def _tex_name(name):
    return r"\mathit{" + name.replace("_", r"\_") + "}"


class _Tex:
    """LaTeX names of the IR's locals: primes are values after the step, bars gradients."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.gate_names = {lin.name: lin.outputs for lin in kernel.linears}

    def names(self, blk):
        """Incoming gradients and d_<name> as bars, CSE temporaries as t_k, the rest by name."""
        names, temps = {}, 0
        named = {s.name for s, _ in self.kernel.named}
        for r in blk.reads:
            first = r.terms[0].buffer
            if first.role == "d_state":
                names[r.symbol] = r"\overline{" + first.owner + "'}"
            elif first.role == "d_linear_input":
                names[r.symbol] = r"\overline{v_{\mathrm{" + first.owner + "}}}"
            else:
                names[r.symbol] = _tex_name(r.symbol.name)
        for s, _ in blk.assigns:
            if s.name in self.kernel.adjoints:
                names[s] = r"\overline{" + _tex_name(self.kernel.adjoints[s.name]) + "}"
            elif s.name in named:
                names[s] = _tex_name(s.name)
            else:
                names[s] = "t_{" + str(temps) + "}"
                temps += 1
        return names

    def target(self, ref):
        b = ref.buffer
        if b.role == "states":
            return f"{b.owner}'"
        if b.role == "linear_input":
            return r"v_{\mathrm{" + b.owner + "}}"
        if b.role in ("d_preact", "d_x_preact"):
            return r"\overline{" + _tex_name(self.gate_names[b.owner][ref.gate]) + "}"
        if b.role == "d_state":
            return r"\overline{" + b.owner + "}"
        return r"\overline{" + _tex_name(b.owner) + "}"

    def block(self, blk):
        names = self.names(blk)
        lines = [f"{names[s]} &= {sp.latex(e, symbol_names=names)}" for s, e in blk.assigns]
        for w in blk.writes:
            if isinstance(w.value, ir.Ref) or w.ref.buffer.role in ("y", "x_preact"):
                continue            # copies: y[t] = h', the tied sums saved for backward
            op = "&\\mathrel{+}=" if w.accumulate else "&="
            lines.append(f"{self.target(w.ref)} {op} {sp.latex(w.value, symbol_names=names)}")
        return lines


def latex(a):
    cell, kernel, tex = a.cell, a.kernel, _Tex(a.kernel)
    env = lambda lines: ["\\begin{align*}", " \\\\\n".join(lines), "\\end{align*}"]  # noqa: E731
    out = [f"% rnngen show {cell.name} --latex (spec {os.path.basename(a.path)})",
           f"\\paragraph{{Cell {cell.name.replace('_', chr(92) + '_')}}} states "
           f"${', '.join(cell.states)}$, output ${cell.output}$; primes are values after the step, "
           r"bars gradients of the loss.", "", r"\paragraph{Parameters}"]
    out += ["\\begin{tabular}{lll}"]
    out += [f"${_tex_name(n)}$ & $({', '.join(d.replace('*', '') for d in s)})$ & "
            f"{a.symbols.get(n, '').replace('_', chr(92) + '_')} \\\\" for n, s in a.params]
    out += ["\\end{tabular}", "", r"\paragraph{Forward step} (one batch row, one hidden unit)"]
    names = {s: _tex_name(s.name) for s, _ in kernel.named}
    lines = []
    for lin in kernel.linears:
        outs = ", ".join(_tex_name(o) for o in lin.outputs)
        src = "x" if lin.level == 0 else (lin.input if isinstance(lin.input, str) else sp.latex(lin.input))
        bias = r" + b_{\mathrm{" + lin.name + "}}" if lin.bias else ""
        where = "hoisted" if lin.level == 0 else f"stage {lin.level}"
        lines.append(f"({outs}) &= ({src})\\,W_{{\\mathrm{{{lin.name}}}}}^\\top{bias} && \\text{{{where}}}")
    lines += [f"{names[s]} &= {sp.latex(e)}" for s, e in kernel.named]
    lines += [f"{s}' &= {sp.latex(kernel.updates[s])}" for s in cell.states]
    out += env(lines)
    out += ["", r"\paragraph{Forward fused blocks} (after CSE)"]
    for st in kernel.forward:
        for op in st.ops:
            if isinstance(op, ir.Pointwise):
                out += [f"% {st.title}: {op.title}"] + env(tex.block(op))
    out += ["", r"\paragraph{Backward step} (derived by reverse mode, after CSE, as the kernel computes "
            r"it; each stage's GEMM adjoint $\overline{v} = \overline{z}\,W$ runs between blocks)"]
    for st in kernel.backward:
        for op in st.ops:
            if isinstance(op, ir.GemmAdjoint):
                out.append(f"% {st.title}: {op.out.name} {'+' if op.accumulate else ''}= "
                           f"{op.d.buffer.name}[step] @ {op.weight.name}")
            else:
                out += [f"% {st.title}: {op.title}"] + env(tex.block(op))
    fwd, bwd = a.flops()
    out += ["", r"\paragraph{Cost per step}", "\\begin{align*}",
            f"\\text{{forward FLOPs}} &= {sp.latex(sp.expand(sum(fwd.values())))} \\\\",
            f"\\text{{backward FLOPs}} &= {sp.latex(sp.expand(sum(bwd.values())))} \\\\",
            f"\\text{{elements saved for training}} &= {sp.latex(a.saved_elements())}",
            "\\end{align*}"]
    return "\n".join(out) + "\n"
