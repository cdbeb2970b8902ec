"""The CPU module's memory layout: what the Kernel IR's buffers are in numpy and how the fused
loops index them.

- Allocation: numpy arrays; gradients that are accumulated or not written past a row's length
  start as zeros, the rest are np.empty.
- Bias folding: the bias of a linear of x is added once to its hoisted GEMM's output, so the loops
  read `xi = zx_ih[t, b, j]`.
- Views: with several gates, each gate's block of a row is a view made before the j loop
  (`zx_ih_g1 = zx_ih[t, b, H:2 * H]`): stores at j, H + j, ... of one array with H unknown stop
  LLVM's dependence analysis from vectorizing the j loop.
- A GEMM adjoint that adds into a state's gradient writes a (B, H) scratch first (np.dot cannot
  accumulate), then adds it.
"""
from ...compiler import ir

_ZEROED = ("d_preact", "d_x_preact", "d_vector")


def shape_text(dims):
    """(T + 1, B, 4*H) -> "(T + 1, B, 4 * H)"; one dimension prints without a tuple."""
    parts = [str(d).replace("*", " * ") for d in dims]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


class CpuLayout:
    def __init__(self, kernel):
        self.kernel = kernel
        self.n = kernel.loop
        self.namer = kernel.namer.copy()
        self.folded = {g.bias for g in kernel.hoisted if g.bias is not None}
        self.scratch = {}
        for st in kernel.backward:
            for op in st.ops:
                if isinstance(op, ir.GemmAdjoint) and op.accumulate:
                    name = self.namer.claim(f"dv_{op.linear}", ("kernel", "wrapper"))
                    self.scratch[op.linear] = ir.Buffer(name, "d_linear_input", (ir.B, ir.H), owner=op.linear)
        self.views = {}

    # -- reading and writing one element ------------------------------------------------------
    def terms(self, read):
        """The refs a read adds up here: a folded bias is already in the hoisted GEMM's output."""
        return [t for t in read.terms if t.buffer not in self.folded]

    def column(self, gate):
        j, H = self.n["j"], self.n["H"]
        return j if gate == 0 else (f"{H} + {j}" if gate == 1 else f"{gate} * {H} + {j}")

    def rows(self, at):
        n = self.n
        return {"t": f"{n['t']}, {n['b']}", "step": f"{n['step']}, {n['b']}",
                "next": f"{n['step']} + 1, {n['b']}", "row": n["b"], "unit": None}[at]

    def rows_of(self, ref):
        """The row index of the buffer `ref` reads or writes (None: a per-unit buffer)."""
        return self.rows(ref.at)

    def element(self, ref, views=None):
        """The element `ref` names, through a per-row view of its gate when `views` collects them."""
        rows, name = self.rows_of(ref), ref.buffer.name
        if ref.buffer.gates > 1 and rows is not None and views is not None:
            key = (name, ref.gate, ref.at)
            if key not in self.views:
                self.views[key] = self.namer.claim(f"{name}_g{ref.gate}")
            view, H, g = self.views[key], self.n["H"], ref.gate
            lo = "0" if g == 0 else (H if g == 1 else f"{g} * {H}")
            hi = H if g == 0 else f"{g + 1} * {H}"
            line = f"{view} = {name}[{rows}, {lo}:{hi}]"
            if line not in views:
                views.append(line)
            return f"{view}[{self.n['j']}]"
        col = self.column(ref.gate) if ref.buffer.gates > 1 else self.n["j"]
        return f"{name}[{rows}, {col}]" if rows is not None else f"{name}[{col}]"

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
        if buffer.param:
            return f'params["{buffer.param}"]'
        return buffer.name
