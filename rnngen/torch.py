"""PyTorch bridge: any rnngen cell as a `torch.nn.Module` whose forward and backward run the
generated kernels.

    import rnngen.torch
    rnn = rnngen.torch.RNN("lstm", input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    y, (h_n, c_n) = rnn(x)                   # as torch.nn.LSTM; x may be a PackedSequence
    rnn.load_state_dict(torch_lstm.state_dict())   # parameter names as in torch.nn.LSTM/GRU/RNN

torch is an optional dependency: this module is imported only when the user asks for it
(`import rnngen.torch`); `import rnngen` never imports torch.

Each (layer, direction) is one `torch.autograd.Function` call of a generated module's
`forward`/`backward`; torch composes the stack (concatenation of directions, dropout between
layers), so the module works with anything built on autograd (optimizers, DDP, gradcheck).
CPU tensors cross to numpy as views (`tensor.detach().numpy()`), copied only when they are not
C-contiguous; the kernels' outputs come back with `torch.from_numpy`, again without a copy.

CUDA tensors go to the generated module's CUDA kernels (generated/_cuda_<cell>.py, numba-cuda) as
they are: the kernels read them in place through `__cuda_array_interface__`, and the device arrays
they return come back as CUDA tensors through the same interface (`torch.as_tensor`, which keeps a
reference to the numba array: no copy either way). Streams: numba launches on the CUDA default
stream (torch's `torch.cuda.default_stream()`). When torch's current stream is another one, the
default stream first waits for it, and it waits for the kernels afterwards (events, no host
synchronization); with numba's per-thread default stream (NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1)
both sides synchronize instead. numba-cuda keeps one CUDA context per thread, so a process drives one
GPU (tensors on another raise a RuntimeError): one process per GPU, as with DDP. `_Host` and `_Cuda`
below are these two crossings.
"""
import math
import os
import types

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .backends.checks import CheckedLengths, all_finite, param_shape
from .runtime import registry, schedule
from .runtime.stack import forward_layers, unit
from .runtime.tensors import HostCrossing, check_dtype, crossing

__all__ = ["RNN", "from_torch", "CellFunction"]

_TORCH_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}


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


def _resolve(cell, path=None):
    if isinstance(cell, types.ModuleType):
        if path is not None:
            raise ValueError(f"path= says where to find a cell given by name; got a module "
                             f"{cell.__name__} and path={path!r}")
        gen = cell
    elif isinstance(cell, str):
        gen = registry.load(cell, path)
    else:
        raise TypeError(f"cell must be a cell name or a generated module, got {type(cell).__name__}")
    for attr in ("STATES", "PARAMS", "forward", "backward"):
        if not hasattr(gen, attr):
            raise TypeError(f"{gen.__name__} is not an rnngen generated module (no {attr})")
    return gen


_TORCH_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def torch_order(params):
    """A layer's parameter names in torch.nn's order (weight_ih, weight_hh, bias_ih, bias_hh), then
    the cell's other parameters in spec order: parameters() and named_parameters() list them so,
    and an optimizer state saved with a torch.nn module loads into the same positions."""
    return [n for n in _TORCH_PARAMS if n in params] + [n for n in params if n not in _TORCH_PARAMS]


class RNN(torch.nn.Module):
    """A stack of rnngen cells with the interface of torch.nn.LSTM / GRU / RNN.

    Args:
        cell: a cell name (`"lstm"`, `"gru"`, a user cell built into `path`) or a generated module.
        input_size, hidden_size, num_layers, bidirectional, dropout, batch_first: as in torch.nn.
        path: folder of user-built generated modules (`rnngen build --out`), when `cell` is a name.
        dtype: parameter dtype, torch.float32 (default) or torch.float64.
        device: where the parameters are made (as torch.nn's `device=`); `.to("cuda")` works too.
            On CUDA tensors the module runs rnngen's CUDA kernels (needs numba-cuda and a GPU).

    forward(input, hx=None) takes a (T, B, I) tensor ((B, T, I) with batch_first) or a
    PackedSequence, and hx: for a one-state cell a tensor (L*D, B, H), for a cell with several
    states a tuple of them in the cell's STATES order (LSTM: (h_0, c_0)). It returns
    (output, h_n) like torch.nn: output (T, B, D*H) or a PackedSequence, h_n in the form of hx.

    Parameters are named and ordered as in torch.nn (weight_ih_l0, weight_hh_l0, bias_ih_l0,
    bias_hh_l0, weight_ih_l0_reverse, ...; a cell's other parameters follow torch's four of each
    layer, in spec order), so torch.nn state dicts and optimizer states load into it.
    On CPU tensors NaN and inf in the input, the initial states and the parameters are refused
    (ValueError naming the parameter); on CUDA tensors they are not checked.
    Gradients are first order: differentiating them again (create_graph=True, then a backward of
    the gradient) raises a RuntimeError.
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False,
                 dropout=0.0, batch_first=False, path=None, dtype=None, device=None):
        super().__init__()
        self.gen = _resolve(cell, path)
        self.cell = self.gen.NAME if hasattr(self.gen, "NAME") else self.gen.__name__
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1) or isinstance(dropout, bool):
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.states = tuple(self.gen.STATES)
        dtype = dtype or torch.get_default_dtype()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self._param_names = []      # [layer * D + direction] -> [attribute name per gen.PARAMS entry]
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for pname in torch_order(self.gen.PARAMS):
                    size = param_shape(self.gen.PARAMS[pname], layer_input, hidden_size)
                    self.register_parameter(pname + suffix, torch.nn.Parameter(
                        torch.empty(size, dtype=dtype, device=device)))
                self._param_names.append([pname + suffix for pname in self.gen.PARAMS])
        self.reset_parameters()

    def __getstate__(self):
        # a module object does not pickle or deepcopy: keep where to import it from instead
        state = self.__dict__.copy()
        gen = state.pop("gen")
        builtin = gen.__name__.startswith("rnngen.generated.")
        state["_gen_location"] = (gen.__name__.rpartition(".")[2] if builtin else gen.NAME,
                                  None if builtin else os.path.dirname(os.path.abspath(gen.__file__)))
        return state

    def __setstate__(self, state):
        name, path = state.pop("_gen_location")
        self.__dict__.update(state)
        self.gen = registry.load(name, path)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self):
        """U(-1/sqrt(H), 1/sqrt(H)) from torch's generator, as torch.nn.LSTM/GRU/RNN do."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def extra_repr(self):
        s = f"{self.cell!r}, {self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.batch_first:
            s += ", batch_first=True"
        return s

    def flatten_parameters(self):
        """No-op, for code written for torch.nn.LSTM (the kernels take each parameter as it is)."""

    def _layer_params(self, layer, direction):
        params = self._parameters
        return [params[n] for n in self._param_names[layer * self.num_directions + direction]]

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = None
        if packed:
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
            # padded in the packed (length-sorted) order, as torch.nn works on packed input
            x, lengths_t = pad_packed_sequence(PackedSequence(input.data, input.batch_sizes))
            lengths = lengths_t.numpy().astype(np.int64)
        else:
            x = input
            if x.dim() not in (2, 3):
                raise ValueError(f"input must be (T, B, I) or (T, I), got shape {tuple(x.shape)}")
            lengths = None
        unbatched = not packed and x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first and not packed:
            x = x.transpose(0, 1)
        crossing(x, *self._parameters.values())   # one device (and its backend) for all
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input has feature size {x.shape[-1]} (shape {tuple(input.data.shape if packed else input.shape)}), "
                             f"but the module expects input_size={self.input_size}")
        dtype = self._check_parameters()
        check_dtype("input", x.dtype)
        if x.dtype != dtype:
            raise ValueError(f"input dtype {x.dtype} does not match the parameters' {dtype} "
                             f"(convert the module with .double()/.float() or the input)")
        T, B = x.shape[0], x.shape[1]
        L, D = self.num_layers, self.num_directions
        state0 = self._initial_states(hx, B, dtype, unbatched, sorted_indices)
        checked = None if lengths is None else CheckedLengths(lengths, B, T)   # once for every layer

        finals = [[None] * (L * D) for _ in self.states]

        def run(layer, direction, layer_input):
            k = unit(layer, direction, D)
            s0 = tuple(s[k] for s in state0) if state0 is not None else (None,) * len(self.states)
            params = self._layer_params(layer, direction)
            try:
                if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                                   for t in (layer_input, *s0, *params)):
                    res = CellFunction.apply(self.gen, checked, bool(direction), layer_input, *s0, *params)
                else:       # under torch.no_grad() (or nothing requires grad): no backward follows
                    res = run_cell(self.gen, checked, bool(direction), layer_input, (*s0, *params),
                                   need_grad=False)[0]
            except ValueError:
                self._refuse_non_finite()       # a parameter's NaN, named as torch names it
                raise
            for n, s in enumerate(res[1:]):
                finals[n][k] = s
            return res[0]

        def dropout(layer, out):
            if self.dropout and self.training:
                return torch.nn.functional.dropout(out, self.dropout, True)
            return out

        y = forward_layers(x, L, D, run, lambda outs: torch.cat(outs, dim=2), dropout)
        h_n = [f[0].unsqueeze(0) if len(f) == 1 else torch.stack(f, 0) for f in finals]

        if packed:
            data, batch_sizes = pack_padded_sequence(y, torch.from_numpy(lengths))[:2]
            y = PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                h_n = [h.index_select(1, unsorted_indices) for h in h_n]
        elif unbatched:
            y = y.squeeze(1)
            h_n = [h.squeeze(1) for h in h_n]
        elif self.batch_first:
            y = y.transpose(0, 1)
        return y, (h_n[0] if len(h_n) == 1 else tuple(h_n))

    def _dtype(self):
        return self._parameters[self._param_names[0][0]].dtype

    def _check_parameters(self):
        """The parameters' one dtype, after checking that the kernels run it."""
        dtype = self._dtype()
        for name, p in self._parameters.items():
            check_dtype(f"parameter {name}", p.dtype)
            if p.dtype != dtype:
                raise ValueError(f"rnngen.torch: parameter {name} has dtype {p.dtype}, the others "
                                 f"{dtype}; convert the module with .float() or .double()")
        return dtype

    def _refuse_non_finite(self):
        """NaN or inf in a CPU parameter, named as this module names it. The generated modules
        check every call (as they check x); this runs only once one of them refused an input."""
        for name, p in self._parameters.items():
            if p.device.type == "cpu" and not all_finite(p.detach().numpy()):
                raise ValueError(f"rnngen.torch: parameter {name} contains NaN or inf")

    def _initial_states(self, hx, B, dtype, unbatched, sorted_indices):
        """hx as a list (one per state) of (L*D, B, H) tensors, in the packed order; None for zeros."""
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        n = len(self.states)
        if hx is None:
            return None
        if isinstance(hx, torch.Tensor):
            hx = (hx,)
        if not isinstance(hx, (tuple, list)) or len(hx) != n:
            want = "a tensor" if n == 1 else f"a tuple of {n} tensors {self.states}"
            raise ValueError(f"hx must be {want}, each ({LD}, B, {H})")
        out = []
        for name, h in zip(self.states, hx):
            if unbatched:
                h = h.unsqueeze(1) if h.dim() == 2 else h
            if tuple(h.shape) != (LD, B, H):
                raise ValueError(f"initial state {name!r} must have shape {(LD, B, H)}, "
                                 f"got {tuple(h.shape)}")
            if h.dtype != dtype:
                raise ValueError(f"initial state {name!r} has dtype {h.dtype}, expected {dtype}")
            crossing(h, self._parameters[self._param_names[0][0]])
            if sorted_indices is not None:
                h = h.index_select(1, sorted_indices)
            out.append(h)
        return out


def from_torch(module):
    """An `RNN` equal to a torch.nn.LSTM, GRU or RNN (tanh or relu), with its weights copied, on
    the module's device (a CUDA module gives a module that runs rnngen's CUDA kernels)."""
    if not isinstance(module, torch.nn.RNNBase):
        raise TypeError(f"from_torch expects torch.nn.LSTM, GRU or RNN, got {type(module).__name__}")
    cell = _TORCH_MODES.get(module.mode)
    if cell is None:
        raise ValueError(f"no rnngen cell for torch mode {module.mode!r}")
    if not module.bias:
        raise ValueError("from_torch: modules with bias=False are not supported (the built-in "
                         "cells have biases)")
    if getattr(module, "proj_size", 0):
        raise ValueError("from_torch: LSTM with proj_size > 0 is not supported")
    p = next(module.parameters())
    out = RNN(cell, module.input_size, module.hidden_size, module.num_layers, module.bidirectional,
              module.dropout, module.batch_first, dtype=p.dtype, device=p.device)
    out.load_state_dict(module.state_dict())
    out.train(module.training)
    return out
