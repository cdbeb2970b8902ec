"""What the Python wrappers of every backend print alike (compile time): the `saved` record and the
gradients after the backward loop, in each backend's array operations (`HostOps`)."""
import textwrap
from dataclasses import dataclass

import sympy as sp

from ..compiler import ir


@dataclass(frozen=True)
class HostOps:
    """A backend's array operations as format strings over {a}, {b}."""
    gemm_tn: str          # a.T @ b
    gemm: str             # a @ b
    accumulate: str       # a += b
    column_sum: str
    copy: str
    vector_grad: str      # a vector's gradient from its accumulator
    zeros: str            # zeros of shape {a}
    head_gemm_tn: str = ""    # a block-diagonal weight's gradient from {a} = dZ, {b} = its input, {heads}


def width(buffer):
    """The last dimension as the wrappers print it: 4 * H."""
    return str(buffer.dims[-1]).replace("*", " * ")


def shape(buffer):
    """A parameter's shape as PARAMS lists it: ('4*H', 'I')."""
    return tuple(str(d) for d in buffer.dims)


def dropped_weights(kernel, namer):
    """{linear: the wrapper's local name of its weight of this call} for the DropConnect linears."""
    return {b.owner: namer.claim(f"{kernel.buffer('weight', b.owner).name}_drop", ("kernel", "wrapper"))
            for b in kernel.buffers if b.role == "weight_mask"}


def weight_setup(kernel, dropped, forward):
    """The wrapper lines giving each DropConnect linear its weight of this call (weight * mask):
    forward takes the mask from `masks` (backward from `saved`)."""
    lines = []
    for b in kernel.buffers:
        if b.role == "weight_mask":
            w = kernel.buffer("weight", b.owner)
            if forward:
                lines.append(f'{b.name} = masks["{w.param}"]   # DropConnect of {w.param}: None at rate 0 and in eval')
            lines.append(f'{dropped[b.owner]} = checks.drop_weight(params["{w.param}"], {b.name})')
    return lines


def saved_key(buffer):
    """The attribute of `saved` holding a buffer: s_<state> for states (the checks read them)."""
    return f"s_{buffer.owner}" if buffer.role == "states" else buffer.name


def saved_call(saved, device=False, marks=None):
    """The lines (to indent by 4) creating `saved`, wrapped at 100 columns; `marks`: keywords
    before the arrays ({"rate0": True})."""
    head = "saved = checks.Saved(NAME, " + ("device=True, " if device else "") + \
        "".join(f"{k}={v!r}, " for k, v in (marks or {}).items())
    text = head + "x=x, params=params, lengths=lengths, reverse=reverse, " + \
        ", ".join(f"{key}={name}" for key, name in saved) + ")"
    return textwrap.wrap(text, 96, subsequent_indent=" " * len("saved = checks.Saved("),
                         break_long_words=False, break_on_hyphens=False)


def d_state0(kernel):
    return "d_state0 = (" + ", ".join(kernel.buffer("d_state", s).name for s in kernel.states) + ",)"


def after_loop(kernel, ops):
    """The weight, bias, vector and input gradients after the backward loop."""
    out, first_dx = [], True
    for op in kernel.after:
        if isinstance(op, (ir.WeightGrad, ir.InputGrad, ir.BiasGrad)):
            flat = f"{op.d.name}.reshape(T * B, {width(op.d)})"
        if isinstance(op, ir.WeightGrad):
            if op.input.role == "x" and op.loop_order:
                out += [f"# {op.d.name} is the gradient of {op.weight.owner}'s pre-activation too (the two "
                        "add up); it is in loop order,", "# so a reversed run puts x and dx in loop order too",
                        "x_loop = x2d if not reverse else _loop_order(x, lengths).reshape(T * B, I)"]
                src = "x_loop"
            else:
                src = "x2d" if op.input.role == "x" else f"{op.input.name}[:T].reshape(T * B, {width(op.input)})"
            if op.heads:
                heads = f'params["{op.weight.param}"].shape[0]'
                grad = ops.head_gemm_tn.format(a=flat, b=src, heads=heads)
            else:
                grad = ops.gemm_tn.format(a=flat, b=src)
            if op.mask is not None:        # DropConnect: the gradient of weight * mask
                grad = f"checks.drop_weight({grad}, {op.mask.name})"
            out.append(f'd_params["{op.weight.param}"] = {grad}')
        elif isinstance(op, ir.InputGrad):
            part = ops.gemm.format(a=flat, b=f'params["{op.weight.param}"]')
            if op.loop_order:
                name = f"dx_{op.weight.owner}"
                out.append(f"{name} = {part}")
                part = f"{name} if not reverse else _loop_order({name}.reshape(T, B, I), lengths).reshape(T * B, I)"
            out.append(f"dx = {part}" if first_dx else ops.accumulate.format(a="dx", b=part))
            first_dx = False
        elif isinstance(op, ir.BiasGrad):
            src = ops.copy.format(a=f'd_params["{op.same_as.param}"]') if op.same_as else \
                ops.column_sum.format(a=flat)
            out.append(f'd_params["{op.bias.param}"] = {src}')
        else:
            out.append(f'd_params["{op.vector.param}"] = {ops.vector_grad.format(a=op.d.name)}')
    if first_dx:
        out.append("dx = " + ops.zeros.format(a="(T * B, I)"))
    return out


def _size_sources(kernel, args, sizes):
    """(size name, how a kernel reads it) from the first buffer among `args` with that dimension."""
    out = []
    for size in sizes:
        sym = ir.H if size == "H" else sp.Symbol(size, positive=True, integer=True)
        for b in args:
            k = next((a for a, d in enumerate(b.dims) if d == sym or (d / sym).is_Integer), None)
            if k is not None:
                mult = b.dims[k] / sym
                out.append((size, f"{b.name}.shape[{k}]" + (f" // {mult}" if mult != 1 else "")))
                break
    return out


def kernel_sizes(kernel, layout, buffers, first):
    """The kernel's first lines: T, B, H and each run-time size from the shapes of its arguments
    (`T, B, H = y.shape` when the output is of size H and there is no other size)."""
    n = kernel.loop
    if not kernel.sizes and kernel.output_size == ir.H:
        return [f"{n['T']}, {n['B']}, {n['H']} = {first.name}.shape"]
    lines = [f"{n['T']} = {first.name}.shape[0]", f"{n['B']} = {first.name}.shape[1]"]
    return lines + [f"{layout.n[size]} = {src}" for size, src in _size_sources(kernel, buffers, ("H",) + kernel.sizes)]
