"""The typed, backend-neutral IR that lowering produces once per cell (see lower.py).

A kernel is a list of buffers with roles, the ops before, inside and after the time loop, and
pointwise blocks whose math is SymPy over the generated code's local names (the spec's own names
where it gave them). Backends decide, from roles and these ops, how to allocate and index; nothing
downstream reads meaning from a name.

Index positions of a `Ref` inside a fused loop over (batch row b, hidden unit j) at loop step
`step` (t is the row's time index: step, or the reversed index):
    "t"     buffer[t, b, col]          time-ordered sequences: x_preact, d_x_preact, y, dy
    "step"  buffer[step, b, col]       loop-ordered sequences: states, preact, linear_input, d_preact
    "next"  buffer[step + 1, b, col]   the state after the step
    "row"   buffer[b, col]             per-row values: d_state, d_linear_input, a per-step preact
    "unit"  buffer[col]                per-unit values: bias, vector, d_vector
col is unit j of gate `gate`: gate * H + j.
"""
from dataclasses import dataclass, field

import sympy as sp

# the sizes buffers are shaped by: steps, batch rows, input size, hidden size; a spec's run-time
# sizes (proj_size, ...) are sympy symbols of their own names (spec.Size.symbol)
T, B, I, H = sp.symbols("T B I H", positive=True, integer=True)
# the number of heads of a block-diagonal linear (`heads=True`), a run-time size
HEADS = sp.Symbol("heads", positive=True, integer=True)

# What a buffer holds (Buffer.role):
ROLES = {
    "x": "the input sequence (T, B, I)",
    "y": "the output sequence (T, B, H), time order",
    "dy": "the gradient of the output sequence, time order",
    "weight": "a linear's weight (gates*H, I or H); with heads (heads, gates*H/heads, H/heads)",
    "bias": "a linear's bias (gates*H,)",
    "vector": "a per-unit parameter (H,)",
    "states": "a state's sequence (T+1, B, H) in loop order: [0] the initial state",
    "x_preact": "a linear of x for every step (T, B, gates*H), time order, hoisted out of the loop",
    "preact": "a recurrent linear's GEMM output, every step (T, B, gates*H) or this step's (B, gates*H)",
    "linear_input": "the pointwise input of a linear (T, B, H), loop order",
    "d_state": "the gradient of a state flowing to the previous step (B, H)",
    "d_preact": "the gradient of a recurrent linear's output (T, B, gates*H), loop order",
    "d_x_preact": "the gradient of a linear of x (T, B, gates*H), time order",
    "d_linear_input": "the gradient of a linear's pointwise input at this step (B, H)",
    "d_vector": "the gradient of a per-unit parameter (H,)",
    "mask": "a random keep-mask: (T, B, H) per step, time order, or (B, H) per sequence",
    "weight_mask": "a DropConnect keep-mask of a linear's weight (its shape), or None at rate 0",
    "mean": "a reduction's value per row, every step (T, B), loop order",
    "d_mean": "the gradient of a reduction's value at this step, over its count (B,)",
    "panels": "a linear's weight (or its transpose) packed once per call for a per-step GEMM (CPU)",
}
PER_ROW = ("mean", "d_mean")        # roles without a column: one value per batch row


@dataclass(frozen=True)
class Buffer:
    name: str          # its name in the generated module (parameters: the params dict key)
    role: str          # a key of ROLES
    dims: tuple        # sizes, sympy expressions in T, B, I, H: (T, B, 4*H); T + 1 for a state sequence
    saved: bool = False    # forward keeps it for backward
    owner: str = ""    # the linear, state or vector it belongs to
    gates: int = 1     # blocks of H columns in its last dimension
    param: str = ""    # parameters: the name in PARAMS

    @property
    def per_row(self):
        return self.role in PER_ROW


@dataclass(frozen=True)
class Ref:
    """One element of a buffer inside a fused loop (see the module docstring for `at`)."""
    buffer: Buffer
    gate: int = 0
    at: str = "step"


@dataclass(frozen=True)
class Read:
    """A local the block reads: the sum of `terms` (one Ref, or a tied pre-activation's parts)."""
    symbol: object     # sympy Symbol named as the local
    terms: tuple


@dataclass(frozen=True)
class Write:
    """`ref = value` or `ref += value`; value is a sympy expression, or a Ref to copy. With
    `reduce` (a sympy scale, 1/(4*H)): ref is per row and gets (the sum over j of value) * reduce.
    `for_backward`: kept only for backward (a forward without backward leaves it out)."""
    ref: Ref
    value: object
    accumulate: bool = False
    reduce: object = None
    for_backward: bool = False


@dataclass
class Pointwise:
    """One fused loop over (b, j): reads, assignments in order, writes; `inactive` runs past a
    row's length."""
    title: str
    reads: list                 # [Read]
    assigns: list               # [(Symbol, expr)]: the spec's named values, d_<name>, tmpN
    writes: list                # [Write]
    inactive: list = field(default_factory=list)    # [Write]
    size: object = H            # the units j runs over: H, or a run-time size's symbol


@dataclass(frozen=True)
class Slice:
    """A GEMM operand: buffer[step] ("step") or the whole buffer ("all")."""
    buffer: Buffer
    at: str = "step"


@dataclass(frozen=True)
class Gemm:
    """Inside the loop: output = input @ weight.T for one recurrent linear; `heads`: block-diagonal,
    head n's GEMM writes the columns g*H + n*DH + d of every gate g."""
    linear: str
    input: Slice
    weight: Buffer
    output: Slice
    heads: bool = False


@dataclass(frozen=True)
class GemmAdjoint:
    """Inside the backward loop: out (+)= d @ weight, the gradient of the linear's input."""
    linear: str
    d: Slice
    weight: Buffer
    out: Buffer
    accumulate: bool
    heads: bool = False


@dataclass
class Stage:
    """One stage of the step: ops (Pointwise, Gemm, GemmAdjoint) in the order they run."""
    title: str
    ops: list


@dataclass(frozen=True)
class InputGemm:
    """Before the loop: out = x @ weight.T (+ bias) for all steps at once."""
    linear: str
    weight: Buffer
    bias: object       # Buffer or None
    out: Buffer


@dataclass(frozen=True)
class WeightGrad:
    """After the loop: d_params[weight] = d.T @ input over all steps; `loop_order`: d is in loop
    order and the input x must be put in loop order too."""
    weight: Buffer
    d: Buffer
    input: Buffer
    loop_order: bool = False
    heads: bool = False     # a block-diagonal weight: one GEMM per head over its rows and inputs
    mask: object = None     # DropConnect: the weight_mask Buffer the gradient is multiplied by


@dataclass(frozen=True)
class InputGrad:
    """After the loop: dx += d @ weight (put back in time order when d is in loop order)."""
    d: Buffer
    weight: Buffer
    loop_order: bool = False


@dataclass(frozen=True)
class BiasGrad:
    """After the loop: d_params[bias] = the column sums of d, or a copy of `same_as`'s gradient."""
    bias: Buffer
    d: Buffer
    same_as: object = None


@dataclass(frozen=True)
class VectorGrad:
    """After the loop: d_params[vector] = the accumulated d."""
    vector: Buffer
    d: Buffer


@dataclass(frozen=True)
class LinearInfo:
    name: str
    level: int         # 0: a linear of x (hoisted); s >= 1: computed in stage s
    gates: int
    bias: bool
    outputs: tuple     # local names of its gate values
    input: object      # "x", the state's name, or the sympy expression of its input
    heads: bool = False


@dataclass
class Kernel:
    """Everything the backends need to write one cell's modules."""
    name: str
    states: tuple
    output: str
    params: list               # [Buffer] in declaration order
    buffers: list              # [Buffer] the rest: y, dy, states, preacts, gradients
    linears: list              # [LinearInfo] in declaration order
    hoisted: list              # [InputGemm]
    forward: list              # [Stage]
    backward: list             # [Stage], the last stage of the step first
    after: list                # [WeightGrad | InputGrad | BiasGrad | VectorGrad]
    ties: dict                 # x-linear name -> recurrent linear name whose output it is summed with
    tie_sums: dict             # x-linear name -> the local names of its gates' sums (xi_hi, ...)
    named: list                # [(Symbol, expr)] the spec's named values, for the equations
    adjoints: dict             # local name of d_<name> -> local name of the value it is the gradient of
    vectors: dict              # vector parameter -> the local name of its value
    updates: dict              # state -> expr over the named values, for the equations
    loop: dict                 # the generated loops' own names: step, t, b, j, T, B, H, lengths, ...
    namer: object              # names.Namer: every name in use, for the layouts to add theirs
    sizes: tuple = ()          # the run-time size names beyond I and H (proj_size, ...)
    state_sizes: dict = field(default_factory=dict)   # state -> its size's symbol (H or another)
    init: dict = field(default_factory=dict)          # parameter -> its constant initial value
    means: dict = field(default_factory=dict)         # reduction -> the local name of its value
    size_defaults: dict = field(default_factory=dict)  # run-time size -> its default (int or "H")
    mean_defs: list = field(default_factory=list)    # [(local Symbol, sum expr, count, size, level)]
    kept_values: dict = field(default_factory=dict)  # local name of a named value -> (buffer, gate)
                                                     # the forward saves it in, for backward to read

    @property
    def output_size(self):
        return self.state_sizes.get(self.output, H)
    initial: dict = field(default_factory=dict)    # state -> its default initial value when not zero
    masks: dict = field(default_factory=dict)      # mask -> (rate, per, inverted), declaration order

    @property
    def num_stages(self):
        """Stages of the step before the update: those of the linears and of the reductions."""
        return max([lin.level for lin in self.linears] + [len(self.forward) - 1])

    def buffer(self, role, owner=""):
        """The buffer of `role` for `owner`, or None."""
        return next((b for b in self.params + self.buffers if b.role == role and b.owner == owner), None)

    def saved(self):
        return [b for b in self.buffers if b.saved]
