"""The inference forward of a small call as one compiled function, `_infer_entry` (issue 11's "one
compiled call per direction and pass"): the wrapper's set-up before the inference loop (the
allocations, the biases' sum, the packed weights), the loop and the final states in one Numba
call. At the course size (T10 B10 I3 H5) the set-up's Python cost about as much as the loop itself
(lstm: 7.6 of 15.8 us for forward_unchecked(..., need_grad=False)); compiled, the whole call took
8.9 us (benchmarks/probes/runtime_before_after.py measures it on rnngen.RNN).

The entry's lines are the inference wrapper's own (infer.py, emit.py) with each parameter an
argument named after it (params["weight_hh"] -> weight_hh) and each weight packed by
stepgemm.panels in Numba's memory. Numba's allocations get no transparent huge pages (see
host_gemm.packed), so the wrapper calls the entry for small calls only (mathlib.one_call), and
never for the batch slices of a call, which share their packed weights (shared_panels). TC, the
steps per chunk of the input GEMMs, is chosen in Python (input_chunks.chunk_steps) and passed in.
A cell whose inference set-up reads anything else (its random masks, a DropConnect weight) gets
no entry, nor does one whose parameter names would clash with the set-up's own names."""
import re
from dataclasses import dataclass

_PARAM = re.compile(r'params\["(\w+)"\]')
_PANELS = re.compile(r'_panels_of\(shared_panels, "\w+", ([^)]+)\)')
_ASSIGNED = re.compile(r"^(\w+)(?:\[[^\]]*\])? = ")
#: what a set-up line may not read for the entry to exist (Python objects, or the masks of the call)
_PYTHON_ONLY = ("masks", "checks.", "shared_panels", "saved", "params")
#: the entry's own locals and arguments besides the set-up's
_FIXED = {"x", "lengths", "reverse", "state0", "T", "B", "I", "H", "dtype", "y", "final_states"}


@dataclass
class InferEntry:
    args: list          # the entry's parameters
    call: list          # what the wrapper passes for them
    chunk: list         # the wrapper's line choosing TC (none when the loop has no input chunks)
    setup: list         # the entry's lines before the loop
    loop_call: list     # what the entry passes to the loop


def _entry_line(line):
    return _PARAM.sub(r"\1", _PANELS.sub(r"_panels(\1)", line))


def infer_entry(setup, loop_call, tc, sizes, output_size):
    """The InferEntry of an inference wrapper whose set-up lines are `setup`, loop arguments
    `loop_call`, chunk size name `tc` (None when not chunked), run-time sizes `sizes` and output
    size `output_size` (a dimension's text); None when the set-up reads what a compiled function
    cannot take."""
    chunk = [line for line in setup if tc and line.startswith(f"{tc} = _chunk_steps(")]
    body = [_entry_line(line) for line in setup if line not in chunk]
    call = [_entry_line(arg) for arg in loop_call]
    if any(word in line.split("#")[0] for line in body + call for word in _PYTHON_ONLY):
        return None
    params = list(dict.fromkeys(_PARAM.findall(" ".join(setup + loop_call))))
    assigned = {m.group(1) for m in map(_ASSIGNED.match, body) if m}
    if set(params) & (assigned | _FIXED | set(sizes) | {tc}):
        return None
    words = set(re.findall(r"\w+", " ".join(body + call + [output_size])))
    head = ["x", "lengths", "reverse"] + ([tc] if chunk else []) + ["H"] + [s for s in sizes if s in words] + ["state0"]
    return InferEntry(args=head + params, call=head + [f'params["{p}"]' for p in params], chunk=chunk,
                      setup=body, loop_call=call)
