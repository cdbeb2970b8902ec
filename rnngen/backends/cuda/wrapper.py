"""The CUDA module's Python wrappers around the persistent kernels (printed lines, compile time):
what forward() and backward() allocate, launch before and after the loop, and return.

- One allocation per call for what the call returns or keeps (workspace.arena): forward's y, state
  sequences and saved pre-activations; backward's dx, d_state0 and every parameter gradient.
- Workspaces reused across calls of the same shapes (workspace.scratch): this step's GEMM output,
  the pre-activation gradients, the bias and vector accumulators, the loop-order copies of x and dx.
- The kernels start the state sequences from state0 and d_state from d_final (cached zeros when
  not given: no copy, no fill launch), and write the bias and vector gradients themselves (column
  sums in the backward kernel's epilogue, no atomics); after the loop run only the GEMMs of the
  weight gradients and dx (and, for a reversed run of a tied linear, the loop-order permutations).
"""
from ...compiler import ir
from ..host import width
from .layout import shape_text


def _flat(buf):
    return f"{buf.name}.reshape(T * B, {width(buf)})"


def bias_groups(kernel):
    """{d buffer name: (d buffer, [bias parameter names])}: the bias gradients the backward kernel
    sums, one accumulator per pre-activation gradient (tied linears share theirs)."""
    groups = {}
    for op in kernel.after:
        if isinstance(op, ir.BiasGrad):
            groups.setdefault(op.d.name, (op.d, []))[1].append(op.bias.param)
    return groups


def vector_grads(kernel):
    return [(op.d, op.vector.param) for op in kernel.after if isinstance(op, ir.VectorGrad)]


def acc_name(d):
    return f"_acc_{d.name}"


def _state_sizes(k):
    """The states' sizes as the wrappers print them: H, or [H, proj_size] when they differ."""
    sizes = [str(k.state_sizes[s]) for s in k.states]
    return "H" if set(sizes) == {"H"} else "[" + ", ".join(sizes) + "]"


def _units(lay, size):
    return lay.units_name(size) if lay is not None else "_nu"


def forward_setup(k, lay):
    kept = [k.buffer("y")] + [b for b in k.buffers if b.saved and b.role in
                              ("x_preact", "states", "preact", "linear_input", "mean")]
    setup = [", ".join(lay.call_name(b) for b in kept) + ", = workspace.arena(dtype, "
             + ", ".join(shape_text(lay.dims(b)) for b in kept) + ")"]
    for g in k.hoisted:
        setup.append(f'gemm.gemm(x2d, params["{g.weight.param}"], {_flat(g.out)}, trans_b=True)')
    setup.append(f"state0 = checks.initial(state0, B, {_state_sizes(k)}, dtype)")
    setup += [f'{b.name} = workspace.scratch("{k.name}.{b.name}", {shape_text(lay.dims(b))}, dtype)'
              for b in k.buffers if b.role in ("preact", "linear_input") and not b.saved]
    return setup


def backward_setup(k, lay):
    d_states = [k.buffer("d_state", s).name for s in k.states]
    shapes = ["(T, B, I)"] + [f"(B, {k.state_sizes[s]})" for s in k.states] + [shape_text(p.dims) for p in k.params]
    n = 1 + len(d_states)
    setup = [f"_out = workspace.arena(dtype, {', '.join(shapes)})",
             f"dx, {', '.join(d_states)} = _out[:{n}]",
             f"d_params = dict(zip(PARAMS, _out[{n}:]))"]
    scratch = [b for b in k.buffers if b.role in ("d_preact", "d_x_preact", "d_linear_input", "d_vector", "d_mean")]
    setup += [f'{b.name} = workspace.scratch("{k.name}.{b.name}", {shape_text(lay.dims(b))}, dtype)'
              for b in scratch]
    setup += [f'{acc_name(d)} = workspace.scratch("{k.name}.{acc_name(d)}", (B, {width(d)}), dtype)'
              for d, _ in bias_groups(k).values()]
    return setup


def after_loop(k):
    """The weight gradients and dx, into the arrays of backward's arena."""
    out, loop_dx, time_dx = [], [], []
    for op in k.after:
        if isinstance(op, ir.WeightGrad):
            if op.input.role == "x" and op.loop_order:
                if "_x_loop" not in " ".join(out):
                    out += [f"# {op.d.name} is the gradient of {op.weight.owner}'s pre-activation too (the two "
                            "add up); it is in loop order,", "# so a reversed run puts x and dx in loop order too",
                            f'_x_loop = x2d if not reverse else _loop_order(x, lengths, workspace.scratch('
                            f'"{k.name}._x_loop", (T, B, I), dtype)).reshape(T * B, I)']
                src = "_x_loop"
            else:
                src = "x2d" if op.input.role == "x" else f"{op.input.name}[:T].reshape(T * B, {width(op.input)})"
            out.append(f'gemm.gemm({_flat(op.d)}, {src}, d_params["{op.weight.param}"], trans_a=True)')
        elif isinstance(op, ir.InputGrad):
            (loop_dx if op.loop_order else time_dx).append(op)
    first = True
    if loop_dx:
        out.append(f'_dx_loop = dx.reshape(T * B, I) if not reverse else workspace.scratch("{k.name}._dx_loop", '
                   "(T * B, I), dtype)")
        for i, op in enumerate(loop_dx):
            acc = ", accumulate=True" if i else ""
            out.append(f'gemm.gemm({_flat(op.d)}, params["{op.weight.param}"], _dx_loop{acc})')
        out += ["if reverse:", "    _loop_order(_dx_loop.reshape(T, B, I), lengths, dx)"]
        first = False
    for op in time_dx:
        acc = "" if first else ", accumulate=True"
        out.append(f'gemm.gemm({_flat(op.d)}, params["{op.weight.param}"], dx.reshape(T * B, I){acc})')
        first = False
    if first:
        out.append("elementwise.copy(None, dx)                # no linear of x: dx is zero")
    return out + ["d_state0 = (" + ", ".join(k.buffer("d_state", s).name for s in k.states) + ",)"]


def _own_units(n, nu="_nu"):
    return [f"for _e in range(_tid, {n['B']} * {nu}, _nt):",
            f"    {n['b']} = _e // {nu}",
            f"    {n['j']} = _j0 + _e - {n['b']} * {nu}"]


def _by_size(items, size_of):
    """{size: [item]} in first-seen order."""
    out = {}
    for item in items:
        out.setdefault(size_of(item), []).append(item)
    return out


def forward_init(k, lay):
    """Kernel lines: this block's units of every state sequence's row 0 from state0 (a loop per
    size of state)."""
    n = k.loop
    lines = ["# the initial states of this block's units"]
    for size, states in _by_size(k.states, lambda s: k.state_sizes[s]).items():
        lines += _own_units(n, _units(lay, size))
        for s in states:
            buf = k.buffer("states", s)
            lines.append(f"    {buf.name}[0, {n['b']}, {n['j']}] = _init_{buf.name}[{n['b']}, {n['j']}]")
    return lines


def backward_init(k, lay):
    """Kernel lines: this block's units of d_state from d_final, the accumulators zeroed (a loop
    per size)."""
    n = k.loop
    items = [("d", s) for s in k.states] + [("acc", d) for d, _ in bias_groups(k).values()] + \
        [("vec", d) for d, _ in vector_grads(k)]

    def size_of(item):
        kind, what = item
        return k.state_sizes[what] if kind == "d" else what.dims[-1] / what.gates
    lines = ["# this block's units: d_state from d_final, the bias and vector accumulators zero"]
    for size, group in _by_size(items, size_of).items():
        lines += _own_units(n, _units(lay, size))
        unit = lay.size_name(size) if lay is not None else None
        for kind, what in group:
            if kind == "d":
                buf = k.buffer("d_state", what)
                lines.append(f"    {buf.name}[{n['b']}, {n['j']}] = _init_{buf.name}[{n['b']}, {n['j']}]")
            else:
                name = acc_name(what) if kind == "acc" else what.name
                lines += [f"    {name}[{n['b']}, {lay.column(g, unit) if what.gates > 1 else n['j']}] = _zero"
                          for g in range(what.gates)]
    return lines


def _column_sums(n, acc, gates, outputs, what, unit=None, nu="_nu"):
    count = nu if gates == 1 else f"{gates} * {nu}"
    col = ["    _col = _j0 + _e"] if gates == 1 else \
        [f"    _g = _e // {nu}", f"    _col = _g * {unit or n['H']} + _j0 + _e - _g * {nu}"]
    return [f"# {what}: this block's columns of {acc} summed over the batch rows (a warp per column, "
            "fixed order)",
            f"for _e in range(_warp, {count}, _nwarps):", *col,
            "    _s = _zero",
            f"    for _r in range(_lane, {n['B']}, _lanes):",
            f"        _s += {acc}[_r, _col]",
            "    _s = _lane_sum(_s, _lanes)",
            "    if _lane == 0:", *[f"        {o}[_col] = _s" for o in outputs]]


def backward_epilogue(k, synced, lay=None):
    """Kernel lines after the time loop: the bias and vector gradients (`synced`: the loop ends
    with cuda.syncthreads(), which makes the block's accumulators visible to all its threads)."""
    n, lines = k.loop, []

    def sizes(d):
        size = d.dims[-1] / d.gates
        return (lay.size_name(size), lay.units_name(size)) if lay is not None else (None, "_nu")
    for d, params in bias_groups(k).values():
        lines += _column_sums(n, acc_name(d), d.gates, [f"_db_{p}" for p in params], " and ".join(params), *sizes(d))
    for d, param in vector_grads(k):
        lines += _column_sums(n, d.name, d.gates, [f"_dv_{param}"], param, *sizes(d))
    return (([] if synced else ["cuda.syncthreads()"]) + lines) if lines else []


def forward_extra_args(k):
    """(kernel parameter, what the wrapper passes, ndim) beyond the IR's buffers."""
    return [(f"_init_{k.buffer('states', s).name}", f"state0[{i}]", 2) for i, s in enumerate(k.states)]


def backward_extra_args(k):
    out = [(f"_init_{k.buffer('d_state', s).name}", f"d_final[{i}]", 2) for i, s in enumerate(k.states)]
    for d, params in bias_groups(k).values():
        out.append((acc_name(d), acc_name(d), 2))
        out += [(f"_db_{p}", f'd_params["{p}"]', 1) for p in params]
    out += [(f"_dv_{param}", f'd_params["{param}"]', 1) for _, param in vector_grads(k)]
    return out


def accumulators(k, lay):
    """{d buffer name: line printer}: what a write of a pre-activation gradient also adds to its
    bias accumulator (the value written, at its batch row and column)."""
    n = k.loop
    out = {}
    for name, (d, _) in bias_groups(k).items():
        def line(ref, value, d=d):
            col = lay.column(ref.gate, lay.size_name(d.dims[-1] / d.gates)) if d.gates > 1 else n["j"]
            return f"{acc_name(d)}[{n['b']}, {col}] += {value}"
        out[name] = line
    return out
