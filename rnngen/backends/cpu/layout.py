"""The CPU module's memory layout: what the Kernel IR's buffers are in numpy and how the fused
loops index them.

- Allocation: numpy arrays; gradients that are accumulated or not written past a row's length
  start as zeros, the rest are np.empty.
- No bias folding: the loops add the biases. Adding bias_ih to the hoisted GEMM's output was a
  pass of its own over T*B*gates*H values (2.5 ms at T256 B32 H128, 8.6 ms at T100 B64 H512 here).
  Two biases that one read adds up (an LSTM's bias_ih and bias_hh in xi + hi) are summed once per
  call into one vector (`bias_ih_hh = params["bias_ih"] + params["bias_hh"]`), which the loops
  read: `xi_hi = zx_ih_g0[j] + z_hh_g0[j] + bias_ih_hh[j]`, no more arrays in the loop than with
  the bias folded (each array is a pointer in LLVM's alias-check budget, split.py).
- Views: with several gates, each gate's block of a row is a view made before the j loop
  (`zx_ih_g1 = zx_ih[t, b, H:2 * H]`): stores at j, H + j, ... of one array with H unknown stop
  LLVM's dependence analysis from vectorizing the j loop. So is the gradient of a vector of
  several gates (`dvec_bias_g1 = dvec_bias[H:2 * H]`).
- A per-step GEMM (z = h @ W.T forward, dv = dz @ W backward) runs on the weight packed once per
  call by the wrapper and passed to the kernel (`panels_hh = _panels_of(shared_panels, "panels_hh",
  params["weight_hh"].T)`; stepgemm.py, host_gemm.panels_of): `_gemm_panels(s_h[step], panels_hh,
  z_hh)`. The batch slices of one call share one packed copy (shared_panels, from the runtime).
- A GEMM adjoint that adds into a state's gradient writes a (B, H) scratch first (the GEMM does
  not accumulate), then adds it.
- A block-diagonal linear (heads) runs one np.dot per head on the head's DH inputs, into a
  (B, gates*DH) scratch whose gate blocks are copied to columns g*H + n*DH of the gate-major
  output (backward gathers them the same way): the rest of the step reads gate-major columns.
- A reduction (cell.mean): the fused j loop stores each unit's term into terms_<m> (one array of
  the units per kernel), a loop after it sums them into sum_<m>, stored per row times 1/count.
- The blocks of a step that no GEMM separates share one loop over the rows, a later block reading
  what an earlier one computed from one-row arrays (rows.py); a block too big for LLVM's
  vectorizer runs as several j loops (split.py).
"""
from ...compiler import ir
from ..host import dropped_weights

_ZEROED = ("d_preact", "d_x_preact", "d_vector")


def shape_text(dims):
    """(T + 1, B, 4*H) -> "(T + 1, B, 4 * H)"; one dimension prints without a tuple."""
    parts = [str(d).replace("*", " * ") for d in dims]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def _biases(read):
    """The two bias terms of a read (same gate, same shape), or None."""
    biases = tuple(t for t in read.terms if t.buffer.role == "bias" and t.at == "unit")
    if len(biases) != 2 or biases[0].gate != biases[1].gate or biases[0].buffer.dims != biases[1].buffer.dims \
            or biases[0].buffer.gates != biases[1].buffer.gates:
        return None
    return biases


def _bias_sums(kernel, namer):
    """{(bias ref, bias ref): the Buffer of their sum} for every pair one read of the loops adds;
    one buffer per pair of bias buffers, whatever the gate."""
    by_buffers, out = {}, {}
    for st in kernel.forward + kernel.backward:
        for op in st.ops:
            for read in getattr(op, "reads", ()):
                biases = _biases(read)
                if biases is None:
                    continue
                b1, b2 = biases[0].buffer, biases[1].buffer
                if (b1.name, b2.name) not in by_buffers:
                    name = namer.claim(f"{b1.name}_{b2.owner}", ("kernel", "wrapper"))
                    by_buffers[b1.name, b2.name] = ir.Buffer(name, "bias", b1.dims, owner=f"{b1.owner}+{b2.owner}",
                                                             gates=b1.gates)
                out[biases] = by_buffers[b1.name, b2.name]
    return out


class CpuLayout:
    #: hoisted products the loop computes itself in chunks of steps (the inference layout, infer.py)
    chunked = {}

    def __init__(self, kernel):
        self.kernel = kernel
        self.n = kernel.loop
        self.namer = kernel.namer.copy()
        self.bias_sums = _bias_sums(kernel, self.namer)
        self.scratch = {}
        for st in kernel.backward:
            for op in st.ops:
                if isinstance(op, ir.GemmAdjoint) and op.accumulate:
                    name = self.namer.claim(f"dv_{op.linear}", ("kernel", "wrapper"))
                    self.scratch[op.linear] = ir.Buffer(name, "d_linear_input", op.out.dims, owner=op.linear)
        self.views = {}
        self.dropped = dropped_weights(kernel, self.namer)   # DropConnect: linear -> its weight of the call
        # block-diagonal linears: the loops' names and the per-head scratch arrays (B, gates*DH), (B, DH)
        self.head_scratch = {}
        heads = [op for st in kernel.forward + kernel.backward for op in st.ops
                 if isinstance(op, (ir.Gemm, ir.GemmAdjoint)) and op.heads]
        if heads:
            self.head_names = {k: self.namer.claim(k, ("kernel", "wrapper")) for k in ("DH", "head", "gate")}
        for op in heads:
            kind = "forward" if isinstance(op, ir.Gemm) else "backward"
            gates = op.weight.gates
            pre = "zh" if kind == "forward" else "dzh"
            bufs = [ir.Buffer(self.namer.claim(f"{pre}_{op.linear}", ("kernel", "wrapper")), "head_scratch",
                              (ir.B, gates * ir.H / ir.HEADS), owner=op.linear, gates=gates)]
            if kind == "backward":
                bufs.append(ir.Buffer(self.namer.claim(f"dvh_{op.linear}", ("kernel", "wrapper")), "head_scratch",
                                      (ir.B, ir.H / ir.HEADS), owner=op.linear))
            self.head_scratch[kind, op.linear] = bufs
        self.sums = {}
        self.packed = {}         # (linear, suffix) -> the kernels' local of its packed weight

    def panel_name(self, weight, suffix):
        """The kernels' local of a linear's weight packed for the per-step GEMMs: panels_<linear>
        for weight.T (forward), panels_<linear>_adj for the weight (the adjoint)."""
        key = (weight.owner, suffix)
        if key not in self.packed:
            self.packed[key] = self.namer.claim(f"panels_{weight.owner}{suffix}", ("kernel", "wrapper"))
        return self.packed[key]

    # -- sizes --------------------------------------------------------------------------------
    def size_name(self, size):
        """The kernels' local of a size symbol (H, or a run-time size such as proj_size)."""
        return self.n[str(size)]

    def unit_size(self, buffer):
        """The local name of the units in one gate block of a buffer's last dimension."""
        return self.size_name(buffer.dims[-1] / buffer.gates)

    def sum_name(self, ref):
        """(the per-row accumulator, the per-unit terms array) of a reduction into `ref`:
        sum_m_mu, terms_m_mu. The fused loop stores each unit's term (a store keeps the loop
        vectorized; a float sum in it would not be, without reassociation), a loop of adds after
        it sums them in order."""
        key = (ref.buffer.name, ref.at)
        if key not in self.sums:
            self.sums[key] = (self.namer.claim(f"sum_{ref.buffer.name}"), self.namer.claim(f"terms_{ref.buffer.name}"))
        return self.sums[key]

    # -- reading and writing one element ------------------------------------------------------
    def terms(self, read):
        """The refs a read adds up here: its terms, two biases as their sum (bias_sums)."""
        biases = _biases(read)
        if biases not in self.bias_sums:
            return list(read.terms)
        summed = ir.Ref(self.bias_sums[biases], biases[0].gate, "unit")
        return [t for t in read.terms if t not in biases] + [summed]

    def bias_sum_lines(self, args):
        """The wrapper lines summing the biases that kernel arguments `args` name."""
        pairs = {b: (r1.buffer, r2.buffer) for (r1, r2), b in self.bias_sums.items() if b.name in args}
        return [f'{b.name} = params["{b1.param}"] + params["{b2.param}"]   # the loops add the two together'
                for b, (b1, b2) in pairs.items()]

    def column(self, gate, H=None):
        j, H = self.n["j"], H or self.n["H"]
        return j if gate == 0 else (f"{H} + {j}" if gate == 1 else f"{gate} * {H} + {j}")

    def rows(self, at):
        n = self.n
        return {"t": f"{n['t']}, {n['b']}", "step": f"{n['step']}, {n['b']}",
                "next": f"{n['step']} + 1, {n['b']}", "row": n["b"], "unit": None}[at]

    def rows_of(self, ref):
        """The row index of the buffer `ref` reads or writes (None: a per-unit buffer)."""
        return self.rows(ref.at)

    def element(self, ref, views=None):
        """The element `ref` names, through a per-row pointer to its gate block when `views` collects
        them (mathlib.at: a slice would count references once per row and block)."""
        rows, name = self.rows_of(ref), ref.buffer.name
        if ref.buffer.per_row:
            return f"{name}[{rows}]"
        if ref.buffer.gates > 1 and views is not None and (rows is not None or ref.buffer.role == "d_vector"):
            key = (name, ref.gate, ref.at)
            if key not in self.views:
                self.views[key] = self.namer.claim(f"{name}_g{ref.gate}")
            view, H, g = self.views[key], self.unit_size(ref.buffer), ref.gate
            lo = "0" if g == 0 else (H if g == 1 else f"{g} * {H}")
            line = f"{view} = _at({name}, ({rows + ', ' if rows else ''}{lo}{'' if rows else ','}))"
            if line not in views:
                views.append(line)
            return f"{view}[{self.n['j']}]"
        col = self.column(ref.gate, self.unit_size(ref.buffer)) if ref.buffer.gates > 1 else self.n["j"]
        return f"{name}[{rows}, {col}]" if rows is not None else f"{name}[{col}]"

    # -- block-diagonal linears (heads) --------------------------------------------------------
    def _head_cols(self, offset=""):
        """'lo:hi' of the DH columns of head `head` (after `offset`, e.g. 'gate * H + ')."""
        n = self.head_names
        return f"{offset}{n['head']} * {n['DH']}:{offset}({n['head']} + 1) * {n['DH']}"

    def head_gemm(self, op):
        """The lines of a block-diagonal GEMM: one np.dot per head, gates scattered gate-major."""
        n, H = self.head_names, self.n["H"]
        (zh,) = self.head_scratch["forward", op.linear]
        w, src, out = op.weight.name, self.step_slice(op.input), self.step_slice(op.output)
        g = n["gate"]
        return [f"{n['DH']} = {w}.shape[2]   # {op.linear} is block-diagonal: one GEMM per head of DH units",
                f"for {n['head']} in range({w}.shape[0]):",
                f"    np.dot(np.ascontiguousarray({src}[:, {self._head_cols()}]), {w}[{n['head']}].T, {zh.name})",
                f"    for {g} in range({op.weight.gates}):",
                f"        {out}[:, {self._head_cols(f'{g} * {H} + ')}] = "
                f"{zh.name}[:, {g} * {n['DH']}:({g} + 1) * {n['DH']}]"], [zh]

    def head_gemm_adjoint(self, op, out):
        """The lines of dv = dz @ blockdiag(W): per head, gather its gates' columns, one np.dot."""
        n, H = self.head_names, self.n["H"]
        dzh, dvh = self.head_scratch["backward", op.linear]
        w, d = op.weight.name, self.step_slice(op.d)
        g = n["gate"]
        return [f"{n['DH']} = {w}.shape[2]   # {op.linear} is block-diagonal: one GEMM per head of DH units",
                f"for {n['head']} in range({w}.shape[0]):",
                f"    for {g} in range({op.weight.gates}):",
                f"        {dzh.name}[:, {g} * {n['DH']}:({g} + 1) * {n['DH']}] = {d}[:, {self._head_cols(f'{g} * {H} + ')}]",
                f"    np.dot({dzh.name}, {w}[{n['head']}], {dvh.name})",
                f"    {out.name}[:, {self._head_cols()}] = {dvh.name}"], [dzh, dvh]

    def allocate_head_scratch(self, kind):
        """The wrapper lines allocating the per-head scratch arrays of forward or backward."""
        out = []
        for (k, _), bufs in self.head_scratch.items():
            if k != kind:
                continue
            for b in bufs:
                if not out:
                    weight = self.kernel.buffer("weight", b.owner).param
                    out.append(f'{self.head_names["DH"]} = params["{weight}"].shape[2]   # units per head')
                width = f"{b.gates} * {self.head_names['DH']}" if b.gates > 1 else self.head_names["DH"]
                out.append(f"{b.name} = np.empty((B, {width}), dtype)   # one head's GEMM")
        return out

    def step_slice(self, s):
        return f"{s.buffer.name}[{self.n['step']}]" if s.at == "step" else s.buffer.name

    # -- allocation (Python wrappers) ---------------------------------------------------------
    def allocate(self, buffer, comment=""):
        fill = "zeros" if buffer.role in _ZEROED else "empty"
        line = f"{buffer.name} = np.{fill}({shape_text(buffer.dims)}, dtype)"
        return line + (f"   # {comment}" if comment else "")

    def call_name(self, buffer):
        """How the wrappers pass a kernel argument."""
        if buffer.role in ("y", "dy"):
            return buffer.role
        if buffer.role == "weight" and buffer.owner in self.dropped:
            return self.dropped[buffer.owner]
        if buffer.param:
            return f'params["{buffer.param}"]'
        return buffer.name
