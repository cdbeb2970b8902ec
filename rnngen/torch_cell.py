"""The autograd Function of one generated cell's run (rnngen.torch.CellFunction), the run itself
outside autograd (run_cell: planned in batch slices on the CPU), and the guard that refuses
second-order gradients through it. The PyTorch bridge, rnngen/torch.py, stacks these."""
import torch

from .runtime import schedule
from .runtime.tensors import HostCrossing, check_dtype, crossing


class _FirstOrderOnly(torch.autograd.Function):
    """Passes a cell's gradients through when they were computed with create_graph=True; refuses
    to differentiate them (rnngen derives first-order gradients only), rather than let autograd
    treat them as constants and return wrong second-order numbers."""

    @staticmethod
    def forward(ctx, cell, n, *tensors):
        ctx.cell = cell
        return tensors[:n]

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(
            f"rnngen.torch: a gradient through cell {ctx.cell!r} was differentiated again, but "
            "rnngen's kernels are first-order only (no second derivatives are derived). This comes "
            "from autograd.grad(..., create_graph=True) or backward(create_graph=True) followed by a "
            "backward of the gradient (a gradient penalty, a Hessian-vector product, "
            "gradgradcheck); use torch.nn.LSTM/GRU/RNN for those.")


def _first_order_only(cell, grads, anchors):
    """grads (None kept) as outputs of _FirstOrderOnly, tied to the tensors they depend on."""
    given = [g for g in grads if g is not None]
    anchors = [a for a in anchors if a is not None and a.requires_grad]
    if not given or not anchors:          # nothing to differentiate them with respect to
        return grads
    out = iter(_FirstOrderOnly.apply(cell, len(given), *given, *anchors))
    return tuple(None if g is None else next(out) for g in grads)


def run_cell(gen, lengths, reverse, x, tensors, need_grad=True):
    """gen's forward on tensors (x, *state0, *params as CellFunction takes them), outside autograd.
    Returns (the output tensors, saved, the crossing). On the CPU the call is planned and run in
    batch slices (rnngen/runtime/schedule.py); need_grad=False keeps nothing for backward."""
    n_states = len(gen.STATES)
    state0 = tensors[:n_states]
    params = tensors[n_states:]
    for what, t in zip(["input x", *(f"initial state {s!r}" for s in gen.STATES),
                        *(f"parameter {p}" for p in gen.PARAMS)], (x, *tensors)):
        if t is not None:
            check_dtype(what, t.dtype)
    dev = crossing(x, *tensors)
    k = dev.to_kernel
    forward = schedule.cell_forward(gen, need_grad) if isinstance(dev, HostCrossing) else gen.forward
    y, final, saved = dev.run(
        forward, k(x), {name: k(p) for name, p in zip(gen.PARAMS, params)},
        None if state0[0] is None else tuple(k(s) for s in state0), lengths, reverse)
    return (dev.to_tensor(y),) + tuple(dev.to_tensor(s) for s in final), saved, dev


class CellFunction(torch.autograd.Function):
    """One run of a generated cell over a padded, time-major sequence.

    apply(gen, lengths, reverse, x, *state0, *params) -> (y, *final_states)
    gen: a generated module; lengths: CheckedLengths (or an int64 numpy array (B,)) or None; state0: one (B, H) tensor per
    state in gen.STATES, or all None for zeros; params in gen.PARAMS order.
    """

    @staticmethod
    def forward(ctx, gen, lengths, reverse, x, *tensors):
        outputs, saved, dev = run_cell(gen, lengths, reverse, x, tensors)
        ctx.set_materialize_grads(False)   # an unused output's gradient stays None: no zeros made
        ctx.gen = gen
        ctx.saved = saved
        ctx.dev = dev
        # Not read in backward (the kernels keep their own views in `saved`): saving them lets
        # autograd report an in-place change (an optimizer step) between forward and backward.
        ctx.save_for_backward(x, *tensors[len(gen.STATES):])
        ctx.state0 = tensors[:len(gen.STATES)]   # only for _first_order_only (backward reads the kernels' copies)
        return outputs

    @staticmethod
    def backward(ctx, dy, *d_final):
        inputs = ctx.saved_tensors  # raises if x or a parameter was modified in place
        gen, saved, dev = ctx.gen, ctx.saved, ctx.dev
        k = dev.to_kernel
        backward = schedule.cell_backward(gen) if isinstance(dev, HostCrossing) else gen.backward
        dx, d_state0, d_params = dev.run(
            backward, None if dy is None else k(dy),
            tuple(None if d is None else k(d) for d in d_final), saved)
        grads = [dx, *d_state0] + [d_params[name] for name in gen.PARAMS]
        needed = ctx.needs_input_grad[3:]
        grads = tuple(dev.to_tensor(g) if need else None for g, need in zip(grads, needed))
        if torch.is_grad_enabled():       # create_graph=True: these gradients may be differentiated
            grads = _first_order_only(gen.NAME, grads, (*inputs, *ctx.state0, dy, *d_final))
        return (None, None, None) + grads
