"""A small call's forward or backward as one compiled function (issue 11's "one compiled call
per direction and pass"): `_infer_entry` (the inference forward), `_forward_entry` (the training
forward) and `_backward_entry`. Each holds the wrapper's own lines around its time loop: the
allocations, the biases' sum, the packed weights, the loop, the final states, and for backward the
gradients after the loop. At the course size (T10 B10 I3 H5) that Python cost about as much as
the loop itself (lstm: 7.6 of 15.8 us for forward_unchecked(..., need_grad=False)); compiled, the
inference call took 8.9 us (benchmarks/probes/runtime_before_after.py measures rnngen.RNN).

An entry's lines are the wrapper's (infer.py, emit.py, backends/host.py) with each parameter an
argument named after it (params["weight_hh"] -> weight_hh), each weight packed by stepgemm.panels
in Numba's memory, the GEMMs, bias sums and loop orders after the loops the compiled ones of
entry_ops.py (_matmul -> _entry_matmul), and each gradient a local (d_params["bias_ih"] ->
grad_bias_ih) that the entry returns in PARAMS' order. Numba's allocations get no transparent huge
pages (see host_gemm.packed), so the wrapper calls the entries for small calls only
(mathlib.one_call), and never for the batch slices of a call, which share their packed weights
(shared_panels). TC, the steps per chunk of the inference loop's input GEMMs, is chosen in Python
(input_chunks.chunk_steps) and passed in. A cell whose lines read anything else (its random
masks, a DropConnect weight) or call what entry_ops does not compile (the head GEMMs of a
block-diagonal weight's gradient) gets no such entry, nor does one whose parameter names would
clash with the lines' own names."""
import ast
import re
from dataclasses import dataclass

_PARAM = re.compile(r'(?<![\w.])params\["(\w+)"\]')
_PANELS = re.compile(r'_panels_of\(shared_panels, "\w+", ([^)]+)\)')
#: what a set-up line may not read for the entry to exist (Python objects, or the masks of the call)
_PYTHON_ONLY = ("masks", "checks.", "shared_panels", "saved", "params")
#: the entry's own locals and arguments besides the set-up's
_FIXED = {"x", "lengths", "reverse", "state0", "T", "B", "I", "H", "dtype", "y", "final_states"}
#: the training entries' own locals and arguments besides their lines'
_TRAIN_FIXED = _FIXED | {"x2d", "dy", "d_final", "d_state0", "dx"}
#: the wrapper's operations after the loops -> their compiled forms (entry_ops.py, through mathlib)
_COMPILED = {"_matmul": "_entry_matmul", "_matmul_tn": "_entry_matmul_tn", "_column_sum": "_entry_column_sum",
             "_loop_order": "_entry_loop_order"}
_OPS = re.compile(r"\b(" + "|".join(sorted(_COMPILED, key=len, reverse=True)) + r")\(")
_CALL = re.compile(r"(\w+(?:\.\w+)*)\(")
#: the calls a training entry's lines may make: Numba compiles these
_ENTRY_CALLS = {"np.empty", "np.zeros", "reshape", "copy", "_panels", *_COMPILED.values()}
_GRAD = re.compile(r'(?<![\w.])d_params\["(\w+)"\]')
_GRAD_SET = re.compile(r'^d_params\["(\w+)"\] = ')
#: names the module's lines use as globals: a parameter of such a name would shadow them
_GLOBALS = {"np", "math", "checks", "device"}


def _code(line):
    return line.split("#")[0]


def _bound(lines):
    """Every name the lines bind (assignments, augmented ones, tuple targets, loops); None when a
    line is not a whole Python statement."""
    names = set()
    for line in lines:
        try:
            tree = ast.parse(line.strip())
        except SyntaxError:
            return None
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _clash(params, bound, fixed):
    """Whether a parameter's name would clash with the lines' own names, the entry's or a global."""
    return bound is None or bool(set(params) & (bound | fixed | _GLOBALS)) or any(p.startswith("_") for p in params)


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
    if any(word in _code(line) for line in body + call for word in _PYTHON_ONLY):
        return None
    params = list(dict.fromkeys(_PARAM.findall(" ".join(map(_code, setup + loop_call)))))
    if _clash(params, _bound(body), _FIXED | set(sizes) | {tc}):
        return None
    words = set(re.findall(r"\w+", " ".join(map(_code, body + call + [output_size]))))
    head = ["x", "lengths", "reverse"] + ([tc] if chunk else []) + ["H"] + [s for s in sizes if s in words] + ["state0"]
    return InferEntry(args=head + params, call=head + [f'params["{p}"]' for p in params], chunk=chunk,
                      setup=body, loop_call=call)


@dataclass
class TrainEntry:
    args: list          # the entry's parameters
    call: list          # what the wrapper passes for them
    setup: list         # the entry's lines before the loop
    loop_call: list     # what the entry passes to the loop
    result: list        # its lines after the loop (backward: the gradients)
    returned: list      # forward: the saved arrays, in `saved`'s order; backward: the gradients, in PARAMS' order


def _calls(line):
    """The functions and methods a line calls (np.zeros, reshape, _entry_matmul)."""
    names = _CALL.findall(line.split("#")[0])
    return {n if n.startswith("np.") or "." not in n else n.rsplit(".", 1)[1] for n in names}


def _train_entry(head, setup, loop_call, result, fixed):
    """The args, call, setup, loop call and result of a training entry whose arguments start with
    `head`; None when its lines read what a compiled function cannot take."""
    named = [_GRAD.sub(r"grad_\1", line) for line in setup + result]
    named_call = [_GRAD.sub(r"grad_\1", arg) for arg in loop_call]
    lines = [_OPS.sub(lambda m: _COMPILED[m.group(1)] + "(", _entry_line(line)) for line in named]
    body, after = lines[:len(setup)], lines[len(setup):]
    call = [_entry_line(arg) for arg in named_call]
    code = [_code(line) for line in lines + call]
    if any(word in line for line in code for word in _PYTHON_ONLY) or \
            any(_calls(line) - _ENTRY_CALLS for line in code):
        return None
    params = list(dict.fromkeys(_PARAM.findall(" ".join(map(_code, named + named_call)))))
    if _clash(params, _bound(lines), fixed | set(head)) or len(set(head)) < len(head):
        return None
    return head + params, head + [f'params["{p}"]' for p in params], body, call, after


def forward_entry(setup, loop_call, result, saved, sizes, output_size):
    """The TrainEntry of a training forward whose set-up lines are `setup`, loop arguments
    `loop_call`, lines after the loop `result` (the final states), saved arrays `saved` (their
    locals), run-time sizes `sizes` and output size `output_size`; None as for infer_entry."""
    words = set(re.findall(r"\w+", " ".join(map(_code, setup + loop_call + result + [output_size]))))
    head = ["x", "lengths", "reverse", "H"] + [s for s in sizes if s in words] + ["state0"]
    made = _train_entry(head, setup, loop_call, result, _TRAIN_FIXED | set(sizes))
    return None if made is None or not saved else TrainEntry(*made, returned=list(saved))


def backward_entry(setup, loop_call, result, saved, sizes, params):
    """The TrainEntry of a backward whose set-up lines are `setup`, loop arguments `loop_call`,
    lines after the loop `result` (the gradients, d_params[name] = ..., and d_state0), saved arrays
    `saved` (their locals, read from `saved`), run-time sizes `sizes` and parameters `params` (in
    PARAMS' order); None as for infer_entry, or when a parameter gets no gradient there."""
    words = set(re.findall(r"\w+", " ".join(map(_code, setup + loop_call + result))))
    head = ["dy", "d_final", "x", "lengths", "reverse", "H"] + [s for s in sizes if s in words] + list(saved)
    grads = {m.group(1) for m in map(_GRAD_SET.match, result) if m}     # the gradients the lines set
    taken = {f"grad_{p}" for p in params} & words      # the lines' own names would clash with the gradients'
    made = _train_entry(head, setup, loop_call, result, _TRAIN_FIXED | set(sizes))
    if made is None or grads != set(params) or taken:
        return None
    return TrainEntry(*made, returned=[f"grad_{p}" for p in params])


def entry_helpers(*entries):
    """The mathlib functions (their local names) the wrapper and the entries call, of those given."""
    lines = [line for e in entries if e is not None for line in e.setup + getattr(e, "result", []) + e.call]
    return set(re.findall(r"\b(_entry_\w+|_panels)\(", " ".join(lines))) | ({"_one_call"} if any(entries) else set())
