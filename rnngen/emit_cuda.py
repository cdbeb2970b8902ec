"""Lower a StepProgram to the KernelIR of the CUDA module (generated/_cuda_<cell>.py).

The same derivation and the same printed pointwise lines as the CPU module; only the loop
structure differs. Forward and backward each run as ONE persistent cooperative kernel per call:
block k owns hidden units [k*units, (k+1)*units) (all gates of those units), keeps its slice of
every recurrent weight in shared memory, and `grid.sync()` separates what needs every unit.

Forward step i, for each stage s:   [inputs of stage s (pointwise, own units) -> grid.sync]
                                    GEMM slice: z[i, b, rows of own units] -> syncthreads
                                    fused update (pointwise, own units) -> grid.sync
Backward step i:                    gradient through the update (own units)
                                    for s = S..1: grid.sync -> GEMM adjoint: own columns of
                                    dz[i] @ W -> syncthreads -> gradient through inputs of s
"""
from dataclasses import dataclass

from .emit import Emitter, column


def _tile_loop(n, w0, w1):
    """The 2x2 register tile: rows _v, _v1 of the input times weight vectors w0, w1 over _k < n.
    A while loop: Numba's range() loop compiles to ~20 integer instructions per iteration."""
    return ["_k = 0",
            f"while _k < {n}:",
            "    _x0 = _v[_k]",
            "    _x1 = _v1[_k]",
            f"    _y0 = {w0}",
            f"    _y1 = {w1}",
            "    _a00 += _x0 * _y0",
            "    _a01 += _x0 * _y1",
            "    _a10 += _x1 * _y0",
            "    _a11 += _x1 * _y1",
            "    _k += 1"]


def _tile_store(ref):
    """Store the 2x2 tile; `ref(b, col)` prints an element. Clamped duplicates are skipped."""
    return [ref("b", "0"),
            "if _c1 != _c0:",
            "    " + ref("b", "1"),
            "if _b1 != b:",
            "    " + ref("_b1", "0"),
            "    if _c1 != _c0:",
            "        " + ref("_b1", "1")]


@dataclass
class Gemm:
    """One recurrent linear's slice of a GEMM inside the persistent kernel (printed lines)."""
    title: str
    count: str           # work items: 2x2 tiles of (batch row, weight row) forward, (b, column) backward
    load: list           # lines copying the slice into shared memory (inside `if _on_chip:`)
    head: list           # lines mapping the work item _e to its tile
    body_shared: list    # dot-product loop reading the weight from shared memory
    body_global: list    # the same loop reading it from global memory (the fallback)
    store: list          # lines writing the tile


@dataclass
class Step:
    """One phase of a time step: kind is 'gemm', 'pointwise', 'grid_sync' or 'block_sync'."""
    kind: str
    gemm: object = None
    block: object = None


@dataclass
class CudaKernelIR:
    name: str
    spec_file: str
    sha256: str
    versions: str
    equations: list
    states: tuple
    output: str
    params: list
    constants: list
    cooperative: bool         # the step needs grid.sync (it has recurrent linears)
    rows: int                 # sum of the gates of the recurrent linears (shared-memory rows per unit)
    num_recurrent: int
    forward_params: list      # kernel parameter names
    forward_call: list        # expressions passed for them
    forward_kernel_args: list # [(name, ndim)]: kernel parameters for compile-only checks
    forward_setup: list
    forward_offsets: list     # lines: offsets of each weight slice in shared memory
    forward_gemms: list       # [Gemm] (for the shared-memory loads)
    forward_steps: list       # [Step]
    forward_result: list
    saved: list
    backward_params: list
    backward_call: list
    backward_kernel_args: list
    backward_saved: list      # lines unpacking `saved`
    backward_setup: list
    backward_offsets: list
    backward_gemms: list
    backward_steps: list
    backward_result: list


class CudaEmitter(Emitter):
    """The CPU emitter with CUDA loop structure; pointwise lines are shared with the CPU module."""

    def __init__(self, program):
        # the same printer as the CPU module: the helpers are CUDA device functions of the same
        # names there, and numba-cuda maps math.* to libdevice; `cuda` and `rt` are its globals
        super().__init__(program, reserved=("cuda", "rt"))

    # per-(b, j) accumulation: a thread owns (b, j), so a vector gradient is (B, H), summed after
    def _store(self, target, text, written):
        if target.kind == "dvec":
            written.add(target)
            return [f"dvec_{target.name}[b, j] += {text}"]
        return super()._store(target, text, written)

    # -- the persistent forward kernel --------------------------------------------------------
    def _forward_gemm(self, n):
        G = n.gates
        src = self._input_seq(n)
        w = f"weight_{n.name}"
        rows = "_nu" if G == 1 else f"{G} * _nu"       # this block's rows of the weight
        head = [f"_nc = ({rows} + 1) // 2              # tile: rows _c0, _c0 + _nc of the slice",
                "_nb = (B + 1) // 2                    # ... and batch rows b, b + _nb",
                "b = _e // _nc",
                "_c0 = _e - b * _nc",
                f"_c1 = _c0 + _nc if _c0 + _nc < {rows} else _c0   # an odd count: a 1-wide tile",
                "_b1 = b + _nb if b + _nb < B else b",
                "_g = _c0 // _nu",
                "_row0 = _g * H + _j0 + _c0 - _g * _nu",
                "_g = _c1 // _nu",
                "_row1 = _g * H + _j0 + _c1 - _g * _nu",
                f"_v = {src}[i, b]",
                f"_v1 = {src}[i, _b1]"]
        return Gemm(
            title=f"stage {n.level}: z_{n.name}[i] = {src}[i] @ {w}.T, rows of this block's units",
            count=f"((B + 1) // 2) * (({rows} + 1) // 2)",
            load=[f"for _e in range(_tid, {rows} * H, _nt):",
                  "    _r = _e // H",
                  "    _k = _e - _r * H",
                  "    _g = _r // _nu",
                  f"    _wsh[_off_{n.name} + _r * (H + 1) + _k] = {w}[_g * H + _j0 + _r - _g * _nu, _k]"],
            head=head,
            body_shared=[f"_w = _wsh[_off_{n.name} + _c0 * (H + 1):_off_{n.name} + _c0 * (H + 1) + H]",
                         f"_w1 = _wsh[_off_{n.name} + _c1 * (H + 1):_off_{n.name} + _c1 * (H + 1) + H]",
                         ] + _tile_loop("H", "_w[_k]", "_w1[_k]"),
            body_global=[f"_w = {w}[_row0]", f"_w1 = {w}[_row1]"] + _tile_loop("H", "_w[_k]", "_w1[_k]"),
            store=_tile_store(lambda b, c: f"z_{n.name}[i, {b}, _row{c}] = _a{'0' if b == 'b' else '1'}{c}"),
        )

    def _offsets(self, nodes, size):
        lines, prev = [], None
        for n in nodes:
            lines.append(f"_off_{n.name} = " + ("0" if prev is None else f"_off_{prev.name} + {size(prev)}"))
            prev = n
        return lines

    def forward_steps(self):
        steps = []
        sync = self.p.recurrent_linears != []
        for s in range(1, self.p.num_stages + 1):
            nodes = self.p.stage(s)
            exprs = [o for n in nodes if n.has_expression_input for o in self.p.forward_inputs[n.name].outputs]
            if exprs:
                names = ", ".join(n.name for n in nodes if n.has_expression_input)
                steps.append(Step("pointwise", block=self.pointwise(
                    f"inputs of linear {names}", exprs, {}, set(),
                    [f"v_{n.name}[i, b, j] = 0" for n in nodes if n.has_expression_input])))
                steps.append(Step("grid_sync"))
            for n in nodes:
                steps.append(Step("gemm", gemm=self._forward_gemm(n)))
            steps.append(Step("block_sync"))
        # past a row's length: carry the states; y[i] (i >= length) is the one output no step writes
        carry = [f"s_{s}[i + 1, b, j] = s_{s}[i, b, j]" for s in self.cell.states] + ["y[i, b, j] = 0"]
        steps.append(Step("pointwise", block=self.pointwise("fused update", self.p.forward_update.outputs,
                                                            {}, set(), carry)))
        if sync:
            steps.append(Step("grid_sync"))
        return steps

    # -- the persistent backward kernel -------------------------------------------------------
    def _backward_gemm(self, n):
        G = n.gates
        w = f"weight_{n.name}"
        rows = "H" if G == 1 else f"{G} * H"

        def ref(b, c):
            acc = f"_a{'0' if b == 'b' else '1'}{c}"
            col = "j" if c == "0" else "_j1"
            if n.input_state:
                return f"d_{n.input_state}[{b}, {col}] += {acc}"
            return f"dv_{n.name}[{b}, {col}] = {acc}"
        return Gemm(
            title=f"stage {n.level}: columns of this block's units of dz_{n.name}[i] @ {w}",
            count="((B + 1) // 2) * ((_nu + 1) // 2)",
            load=[f"for _e in range(_tid, _nu * {rows}, _nt):",
                  f"    _u = _e // {rows if G == 1 else f'({rows})'}",
                  f"    _k = _e - _u * {rows if G == 1 else f'({rows})'}",
                  f"    _wsh[_off_{n.name} + _u * ({rows} + 1) + _k] = {w}[_k, _j0 + _u]"],
            head=["_nc = (_nu + 1) // 2                 # tile: units _c0, _c0 + _nc of this block",
                  "_nb = (B + 1) // 2                    # ... and batch rows b, b + _nb",
                  "b = _e // _nc",
                  "_c0 = _e - b * _nc",
                  "_c1 = _c0 + _nc if _c0 + _nc < _nu else _c0   # an odd count: a 1-wide tile",
                  "_b1 = b + _nb if b + _nb < B else b",
                  "j = _j0 + _c0",
                  "_j1 = _j0 + _c1",
                  f"_v = dz_{n.name}[i, b]",
                  f"_v1 = dz_{n.name}[i, _b1]"],
            body_shared=[f"_w = _wsh[_off_{n.name} + _c0 * ({rows} + 1):_off_{n.name} + _c0 * ({rows} + 1) + {rows}]",
                         f"_w1 = _wsh[_off_{n.name} + _c1 * ({rows} + 1):_off_{n.name} + _c1 * ({rows} + 1) + {rows}]",
                         ] + _tile_loop(rows, "_w[_k]", "_w1[_k]"),
            body_global=_tile_loop(rows, f"{w}[_k, j]", f"{w}[_k, _j1]"),
            store=_tile_store(ref),
        )

    def backward_steps(self):
        written = set()
        # past a row's length no gradient flows: zero the gate gradients no step writes (dz[i], dzx[i])
        inactive = []
        for n in self.p.linears:
            for g in range(n.gates):
                inactive.append(f"{'dzx' if n.level == 0 else 'dz'}_{n.name}[i, b, {column(g)}] = 0")
        steps = [Step("pointwise", block=self.pointwise(
            "gradient through the update", self.p.backward_update.outputs,
            self.p.backward_update.adjoints, written, inactive))]
        for s in range(self.p.num_stages, 0, -1):
            nodes = self.p.stage(s)
            steps.append(Step("grid_sync"))
            for n in nodes:
                steps.append(Step("gemm", gemm=self._backward_gemm(n)))
            steps.append(Step("block_sync"))
            outputs, adjoints = self._stage_input_grads(s, written)
            if outputs:
                steps.append(Step("pointwise", block=self.pointwise(
                    f"gradient through the inputs of stage {s}", outputs, adjoints, written)))
                steps.append(Step("block_sync"))
        return steps

    # -- the host wrappers --------------------------------------------------------------------
    def cuda_forward_wrapper(self):
        setup, args = [], ["lengths", "reverse", "y"]
        for n in self.p.x_linears:
            w = self._width(n)
            setup.append(f"zx_{n.name} = rt.empty((T, B, {w}), dtype)")
            setup.append(f'rt.gemm(x2d, params["weight_{n.name}"], zx_{n.name}.reshape(T * B, {w}), '
                         f"trans_b=True)")
            args.append(f"zx_{n.name}")
            if n.linear.bias:
                args.append(f'params["bias_{n.name}"]')
        for k, s in enumerate(self.cell.states):
            setup.append(f"s_{s} = rt.empty((T + 1, B, H), dtype)")
            setup.append(f"rt.copy(state0[{k}], s_{s}[0])")
            args.append(f"s_{s}")
        for n in self.p.recurrent_linears:
            setup.append(f"z_{n.name} = rt.empty((T, B, {self._width(n)}), dtype)")
            args += [f'params["weight_{n.name}"]', f"z_{n.name}"]
            if n.linear.bias:
                args.append(f'params["bias_{n.name}"]')
            if n.has_expression_input:
                setup.append(f"v_{n.name} = rt.empty((T, B, H), dtype)")
                args.append(f"v_{n.name}")
        for v in self.cell.vectors:
            args.append(f'params["{v.name}"]')
        saved = [a for a in args if a.startswith(("zx_", "s_", "z_", "v_"))]
        result = ["final_states = (" + "".join(f"s_{s}[T], " for s in self.cell.states) + ")"]
        return setup, args, result, saved

    def cuda_backward_wrapper(self, forward_args):
        setup, args = [], ["lengths", "reverse", "dy"] + forward_args[3:]
        for k, s in enumerate(self.cell.states):
            setup.append(f"d_{s} = d_final[{k}]")
            args.append(f"d_{s}")
        for n in self.p.linears:
            prefix = "dzx" if n.level == 0 else "dz"
            setup.append(f"{prefix}_{n.name} = rt.empty((T, B, {self._width(n)}), dtype)")
            args.append(f"{prefix}_{n.name}")
            if n.has_expression_input:
                setup.append(f"dv_{n.name} = rt.empty((B, H), dtype)")
                args.append(f"dv_{n.name}")
        for v in self.cell.vectors:
            setup.append(f"dvec_{v.name} = rt.zeros((B, H), dtype)")
            args.append(f"dvec_{v.name}")
        result = []
        first_dx = True
        for n in self.p.linears:
            prefix = "dzx" if n.level == 0 else "dz"
            flat = f"{prefix}_{n.name}.reshape(T * B, {self._width(n)})"
            if n.level == 0:
                result.append(f'd_params["weight_{n.name}"] = rt.gemm({flat}, x2d, trans_a=True)')
                if first_dx:
                    result.append(f'dx = rt.gemm({flat}, params["weight_{n.name}"])')
                else:
                    result.append(f'rt.gemm({flat}, params["weight_{n.name}"], dx, accumulate=True)')
                first_dx = False
            else:
                result.append(f'd_params["weight_{n.name}"] = rt.gemm({flat}, '
                              f'{self._input_seq(n)}[:T].reshape(T * B, H), trans_a=True)')
            if n.linear.bias:
                result.append(f'd_params["bias_{n.name}"] = rt.column_sum({flat})')
        if first_dx:
            result.append("dx = rt.zeros((T * B, I), dtype)")
        for v in self.cell.vectors:
            result.append(f'd_params["{v.name}"] = rt.column_sum(dvec_{v.name})')
        result.append("d_state0 = (" + "".join(f"d_{s}, " for s in self.cell.states) + ")")
        return setup, args, result

    @staticmethod
    def ndim(arg):
        """Number of dimensions of a kernel argument (0 for scalars)."""
        if arg == "reverse":
            return 0
        if arg == "lengths" or arg.startswith(("bias_", "vec_")):
            return 1
        if arg.startswith(("weight_", "dv_", "dvec_", "d_")):
            return 2
        return 3

    def kernel_args(self, call_args):
        """Kernel parameter names for the expressions passed at launch."""
        out = []
        vectors = {v.name for v in self.cell.vectors}
        for a in call_args:
            if a.startswith('params["'):
                name = a[len('params["'):-2]
                out.append(f"vec_{name}" if name in vectors else name)
            else:
                out.append(a)
        return out


def emit_cuda(program, sha256, versions, spec_file):
    """Build the CudaKernelIR of one cell."""
    em = CudaEmitter(program)
    fsteps = em.forward_steps()
    bsteps = em.backward_steps()
    fsetup, fcall, fresult, saved = em.cuda_forward_wrapper()
    bsetup, bcall, bresult = em.cuda_backward_wrapper(fcall)
    cell = program.cell
    rec = program.recurrent_linears
    fparams, bparams = em.kernel_args(fcall), em.kernel_args(bcall)
    fg = [s.gemm for s in fsteps if s.kind == "gemm"]
    bg = [s.gemm for s in bsteps if s.kind == "gemm"]
    fwd_size = {n.name: f"{n.gates} * _units * (H + 1)" for n in rec}
    bwd_size = {n.name: f"_units * ({'H' if n.gates == 1 else f'{n.gates} * H'} + 1)" for n in rec}
    return CudaKernelIR(
        name=cell.name, spec_file=spec_file, sha256=sha256, versions=versions,
        equations=em.equations(), states=cell.states, output=cell.output, params=em.params(),
        constants=em.constant_lines(), cooperative=bool(rec), rows=sum(n.gates for n in rec),
        num_recurrent=len(rec),
        forward_params=fparams, forward_call=fcall,
        forward_kernel_args=[(a, em.ndim(a)) for a in fparams] + [("_units", 0), ("_on_chip", 0)],
        forward_setup=fsetup,
        forward_offsets=em._offsets(rec, lambda n: fwd_size[n.name]), forward_gemms=fg,
        forward_steps=fsteps, forward_result=fresult, saved=saved,
        backward_params=bparams, backward_call=bcall,
        backward_kernel_args=[(a, em.ndim(a)) for a in bparams] + [("_units", 0), ("_on_chip", 0)],
        backward_saved=[f"{a} = saved.{a}" for a in saved], backward_setup=bsetup,
        backward_offsets=em._offsets(rec, lambda n: bwd_size[n.name]),
        backward_gemms=bg,
        backward_steps=bsteps, backward_result=bresult)
