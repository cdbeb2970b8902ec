"""The CUDA module's Python wrappers around the persistent kernels (printed lines, compile time):
what forward() and backward() allocate, launch before and after the loop, and return.

- One allocation per call for what the call returns or keeps (workspace.arena): forward's y, state
  sequences and saved pre-activations; backward's dx, d_state0 and every parameter gradient.
- Workspaces reused across calls of the same shapes (workspace.scratch): this step's GEMM output,
  the pre-activation gradients, the bias and vector accumulators, the loop-order copies of x and dx.
- The kernels start the state sequences from state0 and d_state from d_final (cached zeros, or
  a state's INITIAL value, when not given: no copy, no fill launch), and write the bias and vector gradients themselves (column
  sums in the backward kernel's epilogue, no atomics); after the loop run only the GEMMs of the
  weight gradients and dx (and, for a reversed run of a tied linear, the loop-order permutations).
- Run-time sizes: each state, accumulator and vector gradient has its own size (H or a spec's
  size); a block owns units [k*units, (k+1)*units) of every size (_nu_<size> of them).
- Masks come from forward's `masks` (kept in `saved`); a DropConnect linear's kernels read
  weight * mask and its gradient is masked; a block-diagonal (heads) weight reaches the kernels as
  it is (its slices read each head's weights), its gradient is the diagonal blocks of one dense
  GEMM after the loop (heads.weight_grad).
- Reductions' partial sums (one row per block) are workspaces too.
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


KEPT = ("x_preact", "states", "preact", "linear_input", "mean")     # in the arena when saved, else workspaces


def _tuple(items):
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _initial_line(k):
    """state0 for the kernels: a state not given starts at zeros or at its INITIAL value."""
    dims = _tuple([width(k.buffer("states", s)) for s in k.states])
    if not any(s in k.initial for s in k.states):
        return f"state0 = checks.initial(state0, B, {dims}, dtype)"
    values = _tuple([f'checks.initial_value(INITIAL, "{s}", dtype)' if s in k.initial else "0" for s in k.states])
    return f"state0 = checks.initial(state0, B, {dims}, dtype, {values})"


def forward_setup(k, lay):
    kept = [k.buffer("y")] + [b for b in k.buffers if b.saved and b.role in KEPT]
    setup = lay.weights(True) + [f'{b.name} = masks["{b.owner}"]' for b in k.buffers if b.role == "mask"]
    setup += [", ".join(lay.call_name(b) for b in kept) + ", = workspace.arena(dtype, "
              + ", ".join(shape_text(lay.dims(b)) for b in kept) + ")"]
    for g in k.hoisted:
        setup.append(f'gemm.gemm(x2d, params["{g.weight.param}"], {_flat(g.out)}, trans_b=True)')
    setup.append(_initial_line(k))
    setup += [f'{b.name} = workspace.scratch("{k.name}.{b.name}", {shape_text(lay.dims(b))}, dtype)'
              for b in k.buffers if b.role in KEPT[2:] and not b.saved]
    return setup


def partials(k, lay, grid_units):
    """The wrappers' workspaces of the reductions' partial sums (one row per block)."""
    return [f'{b.name} = workspace.scratch("{k.name}.{b.name}", ({grid_units}, B), dtype)   # partial sums, '
            "one row per block" for b in lay.partials.values()]


def backward_setup(k, lay):
    d_states = [k.buffer("d_state", s).name for s in k.states]
    shapes = ["(T, B, I)"] + [f"(B, {width(k.buffer('d_state', s))})" for s in k.states] + \
        [shape_text(p.dims) for p in k.params]
    n = 1 + len(d_states)
    setup = lay.weights(False) + [
             f"_out = workspace.arena(dtype, {', '.join(shapes)})",
             f"dx, {', '.join(d_states)} = _out[:{n}]",
             f"d_params = dict(zip(PARAMS, _out[{n}:]))"]
    scratch = [b for b in k.buffers if b.role in ("d_preact", "d_x_preact", "d_linear_input", "d_vector", "d_mean")]
    setup += [f'{b.name} = workspace.scratch("{k.name}.{b.name}", {shape_text(lay.dims(b))}, dtype)'
              for b in scratch]
    setup += [f'{acc_name(d)} = workspace.scratch("{k.name}.{acc_name(d)}", (B, {width(d)}), dtype)'
              for d, _ in bias_groups(k).values()]
    return setup


def after_loop(k, lay=None):
    """The weight gradients and dx, into the arrays of backward's arena (a DropConnect weight's
    gradient masked, a block-diagonal one's from the dense GEMM's diagonal blocks)."""
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
            grad = f'd_params["{op.weight.param}"]'
            if op.heads:
                out.append(f'_heads.weight_grad({_flat(op.d)}, {src}, params["{op.weight.param}"].shape[0], {grad}, '
                           f'"{k.name}.d_{op.weight.param}_dense")')
            else:
                out.append(f'gemm.gemm({_flat(op.d)}, {src}, {grad}, trans_a=True)')
            if op.mask is not None:        # DropConnect: the gradient of weight * mask
                out.append(f"{grad} = checks.drop_weight({grad}, {op.mask.name})")
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


def _size(lay, buf):
    """(the kernels' local of a buffer's size per gate, this block's units of it)."""
    size = buf.dims[-1] / buf.gates
    return lay.size_name(size), lay.units_name(size)


def _column(lay, buf, gate):
    """The column of gate `gate` of unit j in a (B, gates * size) buffer."""
    return lay.column(gate, _size(lay, buf)[0]) if buf.gates > 1 else lay.n["j"]


def _own_units(n, lay, items, what):
    """Kernel lines: `items` [(buffer, line)] for this block's units, one loop per size."""
    lines, by_units = [f"# {what}"], {}
    for buf, line in items:
        by_units.setdefault(_size(lay, buf)[1], []).append(line)
    for nu, body in by_units.items():
        lines += [f"for _e in range(_tid, {n['B']} * {nu}, _nt):",
                  f"    {n['b']} = _e // {nu}",
                  f"    {n['j']} = _j0 + _e - {n['b']} * {nu}"] + ["    " + line for line in body]
    return lines


def forward_init(k, lay):
    """Kernel lines: this block's units of every state sequence's row 0 from state0."""
    n = k.loop
    items = [(k.buffer("states", s), f"{k.buffer('states', s).name}[0, {n['b']}, {n['j']}] = "
              f"_init_{k.buffer('states', s).name}[{n['b']}, {n['j']}]") for s in k.states]
    return _own_units(n, lay, items, "the initial states of this block's units")


def backward_init(k, lay):
    """Kernel lines: this block's units of d_state from d_final, the accumulators zeroed."""
    n = k.loop
    items = []
    for s in k.states:
        buf = k.buffer("d_state", s)
        items.append((buf, f"{buf.name}[{n['b']}, {n['j']}] = _init_{buf.name}[{n['b']}, {n['j']}]"))
    for d, _ in bias_groups(k).values():
        items += [(d, f"{acc_name(d)}[{n['b']}, {_column(lay, d, g)}] = _zero") for g in range(d.gates)]
    items += [(d, f"{d.name}[{n['b']}, {_column(lay, d, g)}] = _zero") for d, _ in vector_grads(k)
              for g in range(d.gates)]
    return _own_units(n, lay, items, "this block's units: d_state from d_final, the bias and vector "
                      "accumulators zero")


def _column_sums(n, lay, d, acc, outputs, what):
    gates = d.gates
    size, nu = _size(lay, d)
    count = nu if gates == 1 else f"{gates} * {nu}"
    col = ["    _col = _j0 + _e"] if gates == 1 else \
        [f"    _g = _e // {nu}", f"    _col = _g * {size} + _j0 + _e - _g * {nu}"]
    return [f"# {what}: this block's columns of {acc} summed over the batch rows (a warp per column, "
            "fixed order)",
            f"for _e in range(_warp, {count}, _nwarps):", *col,
            "    _s = _zero",
            f"    for _r in range(_lane, {n['B']}, _lanes):",
            f"        _s += {acc}[_r, _col]",
            "    _s = _lane_sum(_s, _lanes)",
            "    if _lane == 0:", *[f"        {o}[_col] = _s" for o in outputs]]


def backward_epilogue(k, lay, synced):
    """Kernel lines after the time loop: the bias and vector gradients (`synced`: the loop ends
    with cuda.syncthreads(), which makes the block's accumulators visible to all its threads)."""
    n, lines = k.loop, []
    for d, params in bias_groups(k).values():
        lines += _column_sums(n, lay, d, acc_name(d), [f"_db_{p}" for p in params], " and ".join(params))
    for d, param in vector_grads(k):
        lines += _column_sums(n, lay, d, d.name, [f"_dv_{param}"], param)
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
            return f"{acc_name(d)}[{n['b']}, {_column(lay, d, ref.gate)}] += {value}"
        out[name] = line
    return out
