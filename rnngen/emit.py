"""Lower a StepProgram to KernelIR: print every spec-dependent line of a generated module."""
import re

import sympy as sp

from .derive import Target
from .kernel_ir import KernelIR, Pointwise, Stage
from .optimize import share
from .printer import KernelPrinter

_RESERVED = {"i", "b", "j", "t", "T", "B", "H", "I", "L", "y", "dy", "dx", "x", "x2d", "lengths",
             "reverse", "math", "np", "params", "saved", "state0", "d_final", "d_params", "one", "two"}
_RESERVED_PREFIX = re.compile(r"^(s_|z_|zx_|v_|dz_|dzx_|dv_|d_|dnext_|weight_|bias_|vec_|dvec_|tmp\d|"
                              r"c\d|cm\d|_)")


def column(gate):
    """Column of gate `gate`, unit j, in a (.., gates*H) array."""
    return "j" if gate == 0 else ("H + j" if gate == 1 else f"{gate} * H + j")


class Emitter:
    def __init__(self, program, printer_class=KernelPrinter, cpu_layout=False, reserved=()):
        self.p = program
        self.cell = program.cell
        self.constants = {}
        self.names = self._local_names(reserved)
        self.printer_class = printer_class
        # The CPU module's memory layout (emit() turns it on; subclasses for other backends keep the
        # plain one unless they opt in): tied x/h linears share one saved pre-activation and one dZ,
        # the x-linear's bias is added with its hoisted GEMM, gate columns go through per-row views.
        self.cpu_layout = cpu_layout
        self.tied = self._tied_linears() if cpu_layout else {}
        # A tied pair's gate values only ever appear as their sum (xi + hi), so the forward loop
        # adds them once and saves the sum in place of the x-linear's output: the recurrent GEMM
        # writes a (B, gates*H) scratch, and backward reads one array with the biases included.
        self.merged = {o: sp.Integer(0) for n in self.p.recurrent_linears if n.name in self.tied.values()
                       for o in n.linear.outputs}
        self.backward_pass = False

    def _tied_linears(self):
        """{x-linear name: recurrent linear name} where the x-linear's pre-activation gradient equals,
        gate for gate, that of a level-1 linear of a state (an LSTM's xi + hi): backward then
        stores it once and both weight-gradient GEMMs read the same (T, B, gates*H) array."""
        if self.p.num_stages != 1:
            return {}
        dz = {(t.name, t.gate): e for t, e in self.p.backward_update.outputs if t.kind == "dz"}
        later = {t.name for blk in self.p.backward_inputs.values() for t, _ in blk.outputs if t.kind == "dz"}
        tied = {}
        for a in self.p.x_linears:
            if a.name in later:
                continue
            for b in self.p.recurrent_linears:
                if b.level == 1 and b.input_state and b.name not in later and b.gates == a.gates \
                        and b.name not in tied.values() \
                        and all((a.name, g) in dz and dz[(a.name, g)] == dz.get((b.name, g))
                                for g in range(a.gates)):
                    tied[a.name] = b.name
                    break
        return tied

    # -- names --------------------------------------------------------------------------------
    def _local_names(self, reserved=()):
        """Local names of the spec's symbols: its own names where free; `reserved` names (the
        backend module's globals) are taken as well."""
        source = getattr(self.cell, "source_names", {})
        taken, names = set(), {}
        for sym, kind in self.p.symbols.items():
            fallback = sym.name if kind[0] != "z" else f"{kind[1].name}{kind[2]}"
            for cand in (source.get(sym), fallback, fallback + "_"):
                if cand and cand.isidentifier() and cand not in _RESERVED and cand not in reserved \
                        and cand not in taken and not _RESERVED_PREFIX.match(cand):
                    break
            else:
                cand = f"sym{len(taken)}"
            taken.add(cand)
            names[sym] = cand
        for s in self.cell.states:
            names[sp.Symbol(f"g_{s}")] = f"dnext_{s}"
        for n in self.p.linears:
            names[sp.Symbol(f"g_v_{n.name}")] = f"dv_{n.name}_bj"
        return names

    # -- pointwise ----------------------------------------------------------------------------
    def _load(self, sym, adjoints):
        if sym in adjoints:
            tgt = adjoints[sym]
            if tgt.kind == "dnew":
                extra = " + dy[t, b, j]" if tgt.name == self.cell.output else ""
                return f"{self.names[sym]} = d_{tgt.name}[b, j]{extra}"
            return f"{self.names[sym]} = dv_{tgt.name}[b, j]"
        kind = self.p.symbols[sym]
        loc = self.names[sym]
        if kind[0] == "state":
            return f"{loc} = s_{kind[1]}[i, b, j]"
        if kind[0] == "vec":
            return f"{loc} = vec_{kind[1]}[j]"
        node, gate = kind[1], kind[2]
        col = column(gate)
        zx = self._gate_ref(f"zx_{node.name}", "t, b", gate, node.gates) if node.level == 0 else None
        if node.name in self.tied:
            if self.backward_pass:
                return f"{loc} = {zx}"
            other = self._linear(self.tied[node.name])
            bias_other = f" + bias_{other.name}[{col}]" if other.linear.bias else ""
            z = self._gate_ref(f"z_{other.name}", "b", gate, other.gates)
            return f"{loc} = {zx} + {z}{bias_other}"
        if node.level == 0 and self.cpu_layout:     # the bias was added with the hoisted GEMM
            return f"{loc} = {zx}"
        src = zx if node.level == 0 else self._gate_ref(f"z_{node.name}", "i, b", gate, node.gates)
        bias = f" + bias_{node.name}[{col}]" if node.linear.bias else ""
        return f"{loc} = {src}{bias}"

    def _store(self, target, text, written):
        node = {n.name: n for n in self.p.linears}.get(target.name)
        if target.kind == "state":
            lines = [f"s_{target.name}[i + 1, b, j] = {text}"]
            if target.name == self.cell.output:
                lines.append(f"y[t, b, j] = s_{target.name}[i + 1, b, j]")
            return lines
        if target.kind == "v":
            return [f"v_{target.name}[i, b, j] = {text}"]
        if target.kind == "dz":
            array, row = (f"dzx_{node.name}", "t") if node.level == 0 else (f"dz_{node.name}", "i")
            ref = self._gate_ref(array, f"{row}, b", target.gate, node.gates)
        elif target.kind == "dstate":
            ref = f"d_{target.name}[b, j]"
        else:
            ref = f"dvec_{target.name}[j]"
        op = "+=" if (target in written or target.kind == "dvec") else "="
        written.add(target)
        return [f"{ref} {op} {text}"]

    def _gate_ref(self, array, rows, gate, gates):
        """Store target of one gate column. With several gates, a per-row view of the gate's block
        (made before the j loop) keeps the stores apart for LLVM's dependence analysis: stores at
        j, H + j, ... of one array with H unknown stop the j loop from vectorizing."""
        if gates == 1 or not self.cpu_layout:
            return f"{array}[{rows}, {column(gate)}]"
        view = f"{array}_g{gate}"
        lo = "0" if gate == 0 else ("H" if gate == 1 else f"{gate} * H")
        hi = "H" if gate == 0 else f"{gate + 1} * H"
        line = f"{view} = {array}[{rows}, {lo}:{hi}]"
        if line not in self._rows:
            self._rows.append(line)
        return f"{view}[j]"

    def pointwise(self, title, outputs, adjoints, written, inactive=()):
        self._rows = []
        printer = self.printer_class(self.names, self.constants)
        outputs = [(t, e.xreplace(self.merged)) for t, e in outputs]
        temps, outs = share(outputs, "tmp")
        for t, _ in temps:
            self.names[t] = t.name
        used = set()
        for _, e in temps + outs:
            used |= e.free_symbols
        used -= {t for t, _ in temps}
        order = list(adjoints) + list(self.p.symbols)
        loads = [self._load(s, adjoints) for s in order if s in used]
        body = [f"{t.name} = {printer.doprint(e)}" for t, e in temps]
        stores = []
        for target, e in outs:
            stores += self._store(target, printer.doprint(e), written)
        if not self.backward_pass:
            for s in order:
                kind = self.p.symbols.get(s)
                if s in used and kind and kind[0] == "z" and kind[1].name in self.tied:
                    ref = self._gate_ref(f"zx_{kind[1].name}", "t, b", kind[2], kind[1].gates)
                    stores.append(f"{ref} = {self.names[s]}")
        return Pointwise(title, loads, body, stores, list(inactive), list(self._rows), temps, outs)

    # -- the two loops ------------------------------------------------------------------------
    def forward_stages(self):
        stages = []
        for s in range(1, self.p.num_stages + 1):
            nodes = self.p.stage(s)
            blocks = []
            exprs = [o for n in nodes if n.has_expression_input for o in self.p.forward_inputs[n.name].outputs]
            if exprs:
                names = ", ".join(n.name for n in nodes if n.has_expression_input)
                blocks.append(self.pointwise(f"inputs of linear {names}", exprs, {}, set(),
                                             [f"v_{n.name}[i, b, j] = 0" for n in nodes
                                              if n.has_expression_input]))
            gemms = [f"np.dot({self._input_seq(n)}[i], weight_{n.name}.T, z_{n.name}{self._step_index(n)})"
                     for n in nodes]
            stages.append(Stage(f"stage {s}: recurrent GEMMs of {', '.join(n.name for n in nodes)}",
                                [], blocks, gemms))
        carry = [f"s_{s}[i + 1, b, j] = s_{s}[i, b, j]" for s in self.cell.states]
        update = self.pointwise("fused update", self.p.forward_update.outputs, {}, set(), carry)
        stages.append(Stage("update: new states", [], [update], []))
        return stages

    def backward_stages(self):
        self.backward_pass = True
        written = set()
        outputs = [(t, e) for t, e in self.p.backward_update.outputs
                   if not (t.kind == "dz" and t.name in self.tied)]
        update = self.pointwise("gradient through the update", outputs,
                                self.p.backward_update.adjoints, written)
        stages = [Stage("gradient through the update", [], [update], [])]
        for s in range(self.p.num_stages, 0, -1):
            nodes = self.p.stage(s)
            before = []
            for n in nodes:
                before.append(f"np.dot(dz_{n.name}[i], weight_{n.name}, dv_{n.name})")
                if n.input_state:
                    before.append(f"d_{n.input_state} += dv_{n.name}")
            outputs, adjoints = self._stage_input_grads(s, written)
            blocks = [self.pointwise(f"gradient through the inputs of stage {s}", outputs, adjoints, written)] \
                if outputs else []
            stages.append(Stage(f"stage {s}: GEMM adjoints of {', '.join(n.name for n in nodes)}",
                                before, blocks, []))
        return stages

    def _stage_input_grads(self, s, written):
        """(outputs, adjoints) of the backward block through the expression inputs of stage s's
        linears; marks the state gradients it adds to as `written` (a later block set them)."""
        outputs, adjoints = [], {}
        for n in self.p.stage(s):
            if n.has_expression_input:
                blk = self.p.backward_inputs[n.name]
                outputs += blk.outputs
                adjoints.update(blk.adjoints)
        for tgt, _ in outputs:
            if tgt.kind == "dstate":
                written.add(tgt)
        return outputs, adjoints

    def _step_index(self, n):
        """z of a tied recurrent linear is a per-step scratch (B, gates*H); others keep all steps."""
        return "" if n.name in self.tied.values() else "[i]"

    def _input_seq(self, n):
        return f"s_{n.input_state}" if n.input_state else f"v_{n.name}"

    # -- the Python wrappers ------------------------------------------------------------------
    def constant_lines(self):
        """[(local name, literal text)] of the typed constants the printed lines use, by name."""
        out = []
        for name in sorted(self.constants):
            num = self.constants[name]
            text = repr(float(num)) if num.is_Float else (f"{num.p} / {num.q}" if not num.is_Integer else str(num))
            out.append((name, text))
        return out

    def params(self):
        out = []
        for n in self.p.linears:
            dim = "I" if n.level == 0 else "H"
            rows = "H" if n.gates == 1 else f"{n.gates}*H"
            out.append((f"weight_{n.name}", (rows, dim)))
            if n.linear.bias:
                out.append((f"bias_{n.name}", (rows,)))
        out += [(v.name, ("H",)) for v in self.cell.vectors]
        order = {name: k for k, name in enumerate(self._declared_param_order())}
        return sorted(out, key=lambda kv: order[kv[0]])

    def _declared_param_order(self):
        names = []
        for lin in self.cell.linears:
            names += list(lin.params)
        return names + [v.name for v in self.cell.vectors]

    def _width(self, n):
        return "H" if n.gates == 1 else f"{n.gates} * H"

    def forward_wrapper(self):
        setup, args, call = [], ["lengths", "reverse", "y"], ["lengths", "reverse", "y"]
        for n in self.p.x_linears:
            setup.append(f'zx_{n.name} = (x2d @ params["weight_{n.name}"].T).reshape(T, B, {self._width(n)})')
            args.append(f"zx_{n.name}")
            call.append(f"zx_{n.name}")
            if n.linear.bias and self.cpu_layout:
                setup.append(f'zx_{n.name} += params["bias_{n.name}"]')
            elif n.linear.bias:
                args.append(f"bias_{n.name}")
                call.append(f'params["bias_{n.name}"]')
        for k, s in enumerate(self.cell.states):
            setup.append(f"s_{s} = np.empty((T + 1, B, H), dtype)")
            setup.append(f"s_{s}[0] = state0[{k}]")
            args.append(f"s_{s}")
            call.append(f"s_{s}")
        for n in self.p.recurrent_linears:
            if n.name in self.tied.values():
                setup.append(f"z_{n.name} = np.empty((B, {self._width(n)}), dtype)   # scratch: the sum is saved")
            else:
                setup.append(f"z_{n.name} = np.empty((T, B, {self._width(n)}), dtype)")
            args += [f"weight_{n.name}", f"z_{n.name}"]
            call += [f'params["weight_{n.name}"]', f"z_{n.name}"]
            if n.linear.bias:
                args.append(f"bias_{n.name}")
                call.append(f'params["bias_{n.name}"]')
            if n.has_expression_input:
                setup.append(f"v_{n.name} = np.empty((T, B, H), dtype)")
                args.append(f"v_{n.name}")
                call.append(f"v_{n.name}")
        for v in self.cell.vectors:
            args.append(f"vec_{v.name}")
            call.append(f'params["{v.name}"]')
        scratch = {f"z_{name}" for name in self.tied.values()}
        saved = [a for a in args if a.startswith(("zx_", "s_", "z_", "v_")) and a not in scratch]
        result = ["final_states = (" + "".join(f"s_{s}[T].copy(), " for s in self.cell.states) + ")"]
        return setup, args, call, result, saved

    def backward_wrapper(self, forward_args):
        setup, args, call = [], ["lengths", "reverse", "dy"], ["lengths", "reverse", "dy"]
        scratch = {f"z_{name}" for name in self.tied.values()}
        for a in forward_args[3:]:
            if a in scratch:
                continue
            args.append(a)
            call.append(a if a.startswith(("zx_", "s_", "z_", "v_")) else self._param_ref(a))
        for k, s in enumerate(self.cell.states):
            setup.append(f"d_{s} = d_final[{k}]")
            args.append(f"d_{s}")
            call.append(f"d_{s}")
        for n in self.p.linears:
            if n.name in self.tied:
                continue
            prefix = "dzx" if n.level == 0 else "dz"
            setup.append(f"{prefix}_{n.name} = np.zeros((T, B, {self._width(n)}), dtype)")
            args.append(f"{prefix}_{n.name}")
            call.append(f"{prefix}_{n.name}")
            if n.level > 0:
                setup.append(f"dv_{n.name} = np.empty((B, H), dtype)")
                args.append(f"dv_{n.name}")
                call.append(f"dv_{n.name}")
        for v in self.cell.vectors:
            setup.append(f"dvec_{v.name} = np.zeros(H, dtype)")
            args.append(f"dvec_{v.name}")
            call.append(f"dvec_{v.name}")
        result = []
        done = set()        # bias gradients already computed
        first_dx = True
        for n in self.p.linears:
            prefix = "dzx" if n.level == 0 else "dz"
            flat = f"{prefix}_{n.name}.reshape(T * B, {self._width(n)})"
            if n.name in self.tied:
                other = self.tied[n.name]
                flat = f"dz_{other}.reshape(T * B, {self._width(n)})"
                result.append(f"# the gradient of {n.name}'s pre-activation is dz_{other} (the two add up); it is")
                result.append("# in loop order, so a reversed run puts x and dx in loop order too")
                result.append("x_loop = x2d if not reverse else _loop_order(x, lengths).reshape(T * B, I)")
                result.append(f'd_params["weight_{n.name}"] = {flat}.T @ x_loop')
                result.append(f'dx_{n.name} = {flat} @ params["weight_{n.name}"]')
                op = "=" if first_dx else "+="
                result.append(f"dx {op} dx_{n.name} if not reverse else "
                              f"_loop_order(dx_{n.name}.reshape(T, B, I), lengths).reshape(T * B, I)")
                first_dx = False
            elif n.level == 0:
                result.append(f'd_params["weight_{n.name}"] = {flat}.T @ x2d')
                op = "=" if first_dx else "+="
                result.append(f'dx {op} {flat} @ params["weight_{n.name}"]')
                first_dx = False
            else:
                result.append(f'd_params["weight_{n.name}"] = {flat}.T @ '
                              f'{self._input_seq(n)}[:T].reshape(T * B, H)')
            if n.linear.bias:
                twin = [a for a, b in self.tied.items() if b == n.name and f"bias_{a}" in done]
                if twin:
                    result.append(f'd_params["bias_{n.name}"] = d_params["bias_{twin[0]}"].copy()')
                else:
                    result.append(f'd_params["bias_{n.name}"] = {flat}.sum(axis=0)')
                done.add(f"bias_{n.name}")
        if first_dx:
            result.append("dx = np.zeros((T * B, I), dtype)")
        for v in self.cell.vectors:
            result.append(f'd_params["{v.name}"] = dvec_{v.name}')
        result.append("d_state0 = (" + "".join(f"d_{s}, " for s in self.cell.states) + ")")
        return setup, args, call, result

    def _linear(self, name):
        return next(n for n in self.p.linears if n.name == name)

    def _param_ref(self, arg):
        if arg.startswith("vec_"):
            return f'params["{arg[4:]}"]'
        return f'params["{arg}"]'

    def equations(self):
        """The step as the spec wrote it, with the spec's own names for its intermediate values."""
        rename = {s: sp.Symbol(n) for s, n in self.names.items()}
        named = getattr(self.cell, "source_exprs", [])

        def show(expr, upto):
            for var, e in reversed(named[:upto]):
                expr = expr.xreplace({e: sp.Symbol(var)})
            return sp.sstr(expr.xreplace(rename))

        def linear_line(n):
            outs = ", ".join(self.names[o] for o in n.linear.outputs)
            src = "x" if n.level == 0 else show(n.linear.input, len(named))
            bias = f" + bias_{n.name}" if n.linear.bias else ""
            where = "hoisted before the loop" if n.level == 0 else f"stage {n.level}"
            return f"{outs} = ({src}) @ weight_{n.name}.T{bias}    [{where}]"

        lines = [linear_line(n) for n in self.p.linears if n.level <= 1]
        lines += [f"{var} = {show(e, k)}" for k, (var, e) in enumerate(named)]
        lines += [linear_line(n) for n in self.p.linears if n.level > 1]
        for a, b in self.tied.items():
            xs, hs = self._linear(a).linear.outputs, self._linear(b).linear.outputs
            lines.append(f"({', '.join(f'{self.names[u]} + {self.names[v]}' for u, v in zip(xs, hs))} only appear summed:")
            lines.append(f" the loop adds {', '.join(self.names[v] for v in hs)} into "
                         f"{', '.join(self.names[u] for u in xs)} and saves the sums for backward)")
        for s in self.cell.states:
            lines.append(f"{s} <- {show(self.cell.updates[s], len(named))}")
        return lines


def emit(program, sha256, versions, spec_file):
    """Build the KernelIR of one cell."""
    em = Emitter(program, cpu_layout=True)
    fstages = em.forward_stages()
    bstages = em.backward_stages()
    fsetup, fargs, fcall, fresult, saved = em.forward_wrapper()
    bsetup, bargs, bcall, bresult = em.backward_wrapper(fargs)
    cell = program.cell
    return KernelIR(
        name=cell.name, spec_file=spec_file, sha256=sha256, versions=versions,
        equations=em.equations(), states=cell.states, output=cell.output, params=em.params(),
        constants=em.constant_lines(),
        forward_args=fargs, forward_call=fcall, forward_setup=fsetup, forward_stages=fstages,
        forward_result=fresult,
        backward_args=bargs, backward_call=bcall, backward_setup=bsetup, backward_stages=bstages,
        backward_result=bresult, saved=saved)
