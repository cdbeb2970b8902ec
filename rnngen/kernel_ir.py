"""KernelIR: everything spec-dependent in a generated module, as already-printed lines.

Templates only place these lines inside fixed boilerplate and loops.
"""
from dataclasses import dataclass, field


@dataclass
class Pointwise:
    """One fused loop over (b, j): loads, CSE temporaries, stores; `inactive` runs past a row's length."""
    title: str
    loads: list
    body: list
    stores: list
    inactive: list = field(default_factory=list)
    rows: list = field(default_factory=list)    # per-row views made before the j loop
    # the SymPy math the printed lines compute, for `rnngen show` (templates do not render it):
    # [(temporary symbol, expression)] and [(Target, expression)] after CSE
    temps: list = field(default_factory=list, repr=False)
    outputs: list = field(default_factory=list, repr=False)


@dataclass
class Stage:
    """One stage of the step: pointwise blocks and GEMMs, in the order they run."""
    title: str
    before: list          # GEMM (and accumulation) lines before the blocks
    blocks: list          # [Pointwise]
    after: list           # GEMM lines after the blocks


@dataclass
class KernelIR:
    name: str
    spec_file: str
    sha256: str
    versions: str
    equations: list           # comment lines describing the step
    states: tuple
    output: str
    params: list              # [(name, shape strings)]
    constants: list           # [(local name, literal text)]
    forward_args: list        # kernel parameter names
    forward_call: list        # expressions passed for them
    forward_setup: list       # Python lines of forward() before the loop
    forward_stages: list      # [Stage]
    forward_result: list      # Python lines of forward() after the loop
    backward_args: list
    backward_call: list
    backward_setup: list
    backward_stages: list     # [Stage], last stage first
    backward_result: list
    saved: list               # names forward() keeps for backward()
