"""The CUDA module's memory layout: what the Kernel IR's buffers are on the device and how the
persistent kernels index them.

- Allocation (wrapper.py): what a call returns or keeps in one arena, the rest in workspaces
  reused across calls; what a step does not write past a row's length (y, the rows of dZ) is
  zeroed by the kernels there. A vector's gradient is accumulated per (b, j) into a (B, H)
  workspace the backward kernel zeroes, and summed over b in the kernel's epilogue (no atomics).
- No bias folding: the loops add the biases (the hoisted GEMM has no bias epilogue).
- Flat columns: gate g of unit j is column g * H + j (a thread owns one (b, j)).
- The persistent kernels' GEMM slices keep the recurrent weights in shared memory.
- A block-diagonal (heads) weight (heads, gates*DH, DH) reaches the kernels as it is: their GEMM
  slices take each unit's DH (forward) or gates*DH (backward) weights of its head (slices.py),
  NH small products per step. Its gradient after the loop is the diagonal blocks of one dense
  GEMM (heads.weight_grad).
- Run-time sizes (a projected LSTM's proj_size): block k owns units [k*units, (k+1)*units) of
  every size; `_nu_<size>` of them exist (0 past the size's end).
- A reduction's sum: each block writes its partial sum of a row to part_<buffer>[block, b]
  (allocated for as many blocks as units, an upper bound of the grid); after grid.sync the rows
  are finished across the grid (reductions.py).
"""
from ...compiler import ir
from ..host import dropped_weights, weight_setup


def shape_text(dims):
    parts = [str(d).replace("*", " * ") for d in dims]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


class CudaLayout:
    def __init__(self, kernel):
        self.kernel = kernel
        self.n = kernel.loop
        self.namer = kernel.namer.copy()
        self.partials = {}          # reduction buffer name -> its partial sums' buffer
        self.dropped = dropped_weights(kernel, self.namer)   # DropConnect: linear -> its weight of the call

    def dims(self, buffer):
        return (ir.B, buffer.dims[-1]) if buffer.role == "d_vector" else buffer.dims

    def weights(self, forward):
        """The wrapper lines of the weights the kernels read: a DropConnect linear's weight * mask."""
        return weight_setup(self.kernel, self.dropped, forward)

    def terms(self, read):
        return list(read.terms)

    def size_name(self, size):
        """The kernels' local of a size symbol (H or a run-time size)."""
        return self.n[str(size)]

    def units_name(self, size):
        """How many units of `size` this block owns: _nu for H, _nu_<size> for another."""
        return "_nu" if str(size) == "H" else f"_nu_{self.size_name(size)}"

    def partial(self, buffer):
        """The (units bound, B) buffer of the blocks' partial sums of a reduction into `buffer`."""
        if buffer.name not in self.partials:
            name = self.namer.claim(f"part_{buffer.name}", ("kernel", "wrapper"))
            self.partials[buffer.name] = ir.Buffer(name, "partial", (ir.H, ir.B), owner=buffer.name)
        return self.partials[buffer.name]

    def column(self, gate, H=None):
        j, H = self.n["j"], H or self.n["H"]
        return j if gate == 0 else (f"{H} + {j}" if gate == 1 else f"{gate} * {H} + {j}")

    def element(self, ref):
        n, name = self.n, ref.buffer.name
        at = "row" if ref.buffer.role == "d_vector" else ref.at
        rows = {"t": f"{n['t']}, {n['b']}", "step": f"{n['step']}, {n['b']}",
                "next": f"{n['step']} + 1, {n['b']}", "row": n["b"], "unit": None}[at]
        if ref.buffer.per_row:
            return f"{name}[{rows}]"
        unit = self.size_name(ref.buffer.dims[-1] / ref.buffer.gates)
        col = self.column(ref.gate, unit) if ref.buffer.gates > 1 else n["j"]
        return f"{name}[{rows}, {col}]" if rows is not None else f"{name}[{col}]"

    def inactive_zeros(self, backward):
        """What the update blocks write past a row's length besides the IR's carries: y[step]
        forward, every gate of the rows dZ[step] backward, which no step writes there (both are
        allocated uninitialized; y[step] with step >= length is a position no step writes)."""
        if not backward:
            return [ir.Write(ir.Ref(self.kernel.buffer("y")), 0)]
        return [ir.Write(ir.Ref(b, g, "step"), 0) for b in self.kernel.buffers
                if b.role in ("d_preact", "d_x_preact") for g in range(b.gates)]

    def call_name(self, buffer):
        if buffer.role in ("y", "dy"):
            return buffer.role
        if buffer.role == "weight" and buffer.owner in self.dropped:
            return self.dropped[buffer.owner]
        if buffer.param:
            return f'params["{buffer.param}"]'
        return buffer.name
