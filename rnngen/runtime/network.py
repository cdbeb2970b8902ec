"""Deep and bidirectional recurrent networks built from generated cell modules.

`RNN` stacks one generated module per layer and direction, like torch.nn.LSTM / GRU / RNN:
the same parameter names (`weight_ih_l{k}`, `_reverse` suffix), the same state shapes
(num_layers * num_directions, B, H), the same concatenation of the two directions, and PyTorch's
packed semantics for variable-length sequences. Every layer and direction is one whole-sequence
call of the generated kernels; there is no per-step Python loop.

With device="cuda" the parameters live on the GPU (numba device arrays) and every layer and
direction runs the generated CUDA module (generated/_cuda_<cell>.py); what passes between layers
(outputs, the concatenated directions, dropout masks, lengths, gradients) stays on the device.
"""
import numpy as np

from ..backends.checks import all_finite, all_finite_arrays, host_view, is_torch_tensor
from .device import is_device_array
from .ops import ops_for, require_cuda, to_numpy  # noqa: F401  (require_cuda: rnngen.torch uses it)
from . import schedule
from .options import cell_options, layer_masks, options_text
from .registry import load
from .sizes import output_size, state_sizes
from .stack import backward_layers, forward_layers, unit
from .sequences import last_valid, last_valid_backward  # noqa: F401  (rnngen.network's public path)
from .validation import as_int, device_name, flag, float_dtype, probability


_NO_GRAD = "forward(need_grad=False)"      # the cache after an inference forward


class RNN:
    """A stack of `num_layers` recurrent layers of one cell, optionally bidirectional.

    cell: a built-in cell name ('lstm', 'gru', 'rnn_tanh', ...), the name of a cell you built
    into folder `path` (`rnngen build NAME --specs DIR --out path`), or a generated module
    (`rnngen.load(name, path=folder)`).
    **sizes: the cell's run-time sizes (its module's SIZES), e.g. proj_size=P for 'lstm_proj':
    then h and y have P units per direction and c has H, as in torch.nn.LSTM(proj_size=P).

    forward(x, state0=None, lengths=None, need_grad=True) -> (y, final_states)
        x (T, B, I) (or (B, T, I) with batch_first); y (T, B, D*H), the directions concatenated
        as torch does; zero past each sequence's length. state0 and final_states are tuples in the
        cell's STATES order, each (num_layers*D, B, H) like torch's h_n / c_n (state0 may also be
        a single array for a one-state cell). need_grad=False: no backward follows (inference):
        nothing is kept for it (only the current step's states while running), and backward()
        after it is an error. eval() does not imply it: it only switches dropout off, as in torch.
    backward(dy, d_final=None) -> (dx, d_state0)
        gradients of a scalar loss given dL/dy and dL/d(final states); after it, `.grads` maps
        every parameter name to its gradient (overwritten, not accumulated, by each call).
    step(x_t, state=None) -> (y_t, state)
        one time step for incremental inference (one-to-many, sampling), unidirectional only.

    x, the parameters and every other input are checked once per call: a wrong shape or dtype, NaN
    or inf (in x, the states, dy, or a parameter, e.g. after a diverged update) raise ValueError.
    Between forward() and backward(), x and the parameters must not be modified in place:
    forward keeps references to them (no copies) and backward reads them, so an in-place change
    (an optimizer step before backward, x reused as a buffer) silently gives the gradients of the
    changed values. Update the parameters after backward(); pass a copy of x if you must reuse
    it. (The PyTorch bridge, rnngen.torch, detects such changes and raises.)

    device="cuda": the parameters and `.grads` are numba device arrays and every layer and
    direction runs on the GPU. forward/backward/step take device arrays (numba, or anything with
    __cuda_array_interface__ such as torch and cupy tensors: no copy) or host arrays (numpy, CPU
    torch tensors: copied to the device once per call), and return device arrays; NaN in device
    inputs is not checked. lengths may be host or device (checked on the host once per forward).
    Dropout masks, and the cell's own (rates={"zoneout": 0.1}: from `mask_rng`; eval: expectation),
    are drawn on the host from the same generator as on the CPU (one seed, the same masks on both
    devices) and copied over. **sizes: the cell's SIZES (heads=4). state_dict() returns host numpy
    arrays; to("cpu") / to("cuda") moves the network. A CPU network refuses device arrays (ValueError).
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False,
                 dropout=0.0, batch_first=False, dtype=np.float32, seed=0, device="cpu", path=None, rates=None, **sizes):
        if isinstance(cell, str):
            cell = load(cell, path)
        elif path is not None:
            raise ValueError(f"path= says where to find a cell given by name; got a module {cell!r} and path={path!r}")
        for attr in ("STATES", "OUTPUT", "PARAMS", "forward", "backward", "init_params"):
            if not hasattr(cell, attr):
                raise ValueError(f"cell must be a cell name or a generated module, got {cell!r}")
        self.cell = cell
        self.input_size = as_int("input_size", input_size, 1)
        self.hidden_size = as_int("hidden_size", hidden_size, 1)
        self.sizes, self.rates, self.mask_rng = cell_options(cell, self.hidden_size, sizes, rates, seed, "RNN")
        self.state_sizes = state_sizes(cell, self.hidden_size, self.sizes)     # per state, STATES order
        self.unit_output_size = output_size(cell, self.hidden_size, self.sizes)    # one direction's
        self.num_layers = as_int("num_layers", num_layers, 1)
        self.bidirectional = flag("bidirectional", bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = probability("dropout", dropout)
        self.batch_first = flag("batch_first", batch_first)
        self.dtype = float_dtype(dtype)
        self.seed = as_int("seed", seed, 0)
        device = device_name(device)
        self._ops = ops_for(device, self.dtype)          # before anything is allocated: fails early
        self.device = device
        self.training = True
        self.dropout_rng = np.random.default_rng([int(seed), 1])
        seeds = np.random.default_rng([int(seed), 0]).integers(0, 2**62, self.num_layers * self.num_directions)
        self.params = {}
        self._layer_keys = {}       # (layer, direction) -> {module parameter name: key in .params}
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else self.unit_output_size * self.num_directions
            for d in range(self.num_directions):
                p = cell.init_params(layer_in, self.hidden_size, self.dtype,
                                     int(seeds[unit(k, d, self.num_directions)]), **self.sizes)
                keys = self._layer_keys[k, d] = {name: self._key(name, k, d) for name in p}
                for name, value in p.items():
                    self.params[keys[name]] = self._ops.from_host(value)
        self._param_shapes = {name: tuple(v.shape) for name, v in self.params.items()}
        self._zero_grads()
        self._cache = None

    def _zero_grads(self):
        self.grads = {name: self._ops.zeros(v.shape) for name, v in self.params.items()}

    # -- names and shapes -------------------------------------------------------------------------
    @staticmethod
    def _key(name, layer, direction):
        return f"{name}_l{layer}" + ("_reverse" if direction else "")

    def _layer_params(self, k, d, params=None):
        params = self.params if params is None else params
        return {name: params[key] for name, key in self._layer_keys[k, d].items()}

    @property
    def states(self):
        return tuple(self.cell.STATES)

    @property
    def output_size(self):
        return self.unit_output_size * self.num_directions

    def __repr__(self):
        where = f", device={self.device!r}" if self.device != "cpu" else ""
        sizes = options_text(self.sizes, self.rates)
        return (f"RNN({getattr(self.cell, 'NAME', self.cell.__name__)!r}, {self.input_size}, "
                f"{self.hidden_size}{sizes}, num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}, dtype={self.dtype.name}{where})")

    def train(self, mode=True):
        """Training mode (dropout between layers and the cell's masks active). Returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode (no dropout; the cell's masks at their expectation). Returns self."""
        return self.train(False)

    # -- devices ----------------------------------------------------------------------------------
    def to(self, device):
        """Move the parameters to 'cpu' (numpy) or 'cuda' (numba device arrays). Returns self.
        The gradients start from zero there and the last forward() is forgotten."""
        device = device_name(device)
        if device == self.device:
            return self
        ops = ops_for(device, self.dtype)
        host = self.state_dict()
        self.params = {name: ops.from_host(value) for name, value in host.items()}
        self._ops, self.device = ops, device
        self._zero_grads()
        self._cache = None
        return self

    def cuda(self):
        """to('cuda')."""
        return self.to("cuda")

    def cpu(self):
        """to('cpu')."""
        return self.to("cpu")

    # -- parameters -------------------------------------------------------------------------------
    def state_dict(self):
        """Host numpy copies of every parameter under torch.nn.LSTM/GRU/RNN names (on any device)."""
        return {name: self._ops.to_host(value) for name, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Load parameters by torch name (numpy arrays, torch tensors or device arrays, copied into
        this network's parameters on its device); every name must match."""
        if not hasattr(state_dict, "keys"):
            raise ValueError("state_dict must be a mapping of parameter name -> array")
        missing = [n for n in self.params if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self.params]
        if missing or unexpected:
            raise ValueError(f"state_dict does not match this network: missing {missing}, "
                             f"unexpected {unexpected}")
        new = {}
        for name, old in self.params.items():
            value = to_numpy(f"state_dict[{name!r}]", state_dict[name])
            if value.shape != tuple(old.shape):
                raise ValueError(f"state_dict[{name!r}] must have shape {tuple(old.shape)}, got {value.shape}")
            if value.dtype.kind != "f":
                raise ValueError(f"state_dict[{name!r}] must be floating point, got {value.dtype}")
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict[{name!r}] contains NaN or inf")
            new[name] = np.ascontiguousarray(value, dtype=self.dtype).copy()
        for name, value in new.items():
            if self.device == "cuda":
                self.params[name].copy_to_device(value)
            else:
                self.params[name][...] = value

    # -- inputs -----------------------------------------------------------------------------------
    def _x(self, x, name="x"):
        """x checked and time-major, on this network's device."""
        def validate(x):
            if self.batch_first:
                x = self._ops.swap01(x)
            T, B, I = x.shape
            if T < 1 or B < 1:
                raise ValueError(f"{name} must have at least one step and one sequence, got shape {tuple(x.shape)}")
            if I != self.input_size:
                raise ValueError(f"{name} has feature size {I} (shape {tuple(x.shape)}), but the network "
                                 f"expects input_size={self.input_size}")
            return x
        return self._ops.input(name, x, 3, validate, network_dtype=True)

    def _dy(self, dy, T, B):
        """dy checked against y's shape, time-major, on this network's device."""
        shape = (B, T, self.output_size) if self.batch_first else (T, B, self.output_size)

        def validate(dy):
            if tuple(dy.shape) != shape:
                raise ValueError(f"dy must have the shape of y, {shape}, got {tuple(dy.shape)}")
            return self._ops.swap01(dy) if self.batch_first else dy
        return self._ops.input("dy", dy, 3, validate)

    def _states(self, name, states, B):
        """state0 / d_final: one (L*D, B, size) array per state (None: zeros), on this device; a
        one-state cell's may be a single array. size is H, or the state's run-time size."""
        if states is None:
            return (None,) * len(self.cell.STATES)
        L = self.num_layers * self.num_directions
        n = len(self.states)
        shapes = ", ".join(f"{s} ({L}, {B}, {z})" for s, z in zip(self.states, self.state_sizes))
        if isinstance(states, np.ndarray) or is_torch_tensor(states) or is_device_array(states):
            if n != 1:
                raise ValueError(f"{name} must be a tuple of {n} arrays (num_layers*num_directions, B, "
                                 f"size): {shapes}")
            states = (states,)
        if not isinstance(states, (tuple, list)) or len(states) != n:
            raise ValueError(f"{name} must be None or a tuple of {n} arrays (num_layers*num_directions, B, "
                             f"size): {shapes}")
        out = []
        for k, (s, state_name) in enumerate(zip(states, self.states)):
            label = f"{name}[{k}] ({state_name})"

            def validate(s, label=label, size=self.state_sizes[k]):
                if tuple(s.shape) != (L, B, size):
                    raise ValueError(f"{label} must have shape (num_layers*num_directions, B, H) = "
                                     f"({L}, {B}, {size}), got {tuple(s.shape)}")
                return s
            out.append(None if s is None else self._ops.input(label, s, 3, validate))
        return tuple(out)

    def _checked_params(self):
        """The parameters as the generated kernels take them, checked once per network call:
        numpy arrays (or CPU torch tensors) of the network's dtype and of the shapes they were
        created with (a bad assignment to .params is a ValueError naming the parameter), without
        NaN or inf (a diverged update), C-contiguous (a copy for this call where not). Host
        parameters only: on the GPU the module checks them (and, as for device inputs, NaN is not
        checked)."""
        out = {}
        for name, shape in self._param_shapes.items():
            value = self.params.get(name)
            if type(value) is not np.ndarray:
                value = host_view(value)        # a CPU torch tensor: its numpy view
            if not isinstance(value, np.ndarray) or value.dtype != self.dtype or value.shape != shape:
                got = "nothing" if value is None else \
                    f"{type(value).__name__} {getattr(value, 'dtype', '')} {tuple(getattr(value, 'shape', ()))}"
                raise ValueError(f"parameter {name} must be a numpy array of dtype {self.dtype} and shape "
                                 f"{shape}, got {got}")
            out[name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        if not all_finite_arrays(out.values()):
            bad = next(name for name, value in out.items() if not all_finite(value))
            raise ValueError(f"parameter {bad} contains NaN or inf")
        return out

    # -- forward and backward ---------------------------------------------------------------------
    def _plan(self, T, B):
        """How this call uses the cores (rnngen/runtime/schedule.py); serial on the GPU."""
        if self.device != "cpu":
            return schedule.SERIAL
        return schedule.plan(T, B, self.hidden_size, self.num_directions)

    def _run(self, x, state0, lengths, need_grad=True):
        """x time-major, checked, on the device. Returns (y time-major, final states, cache)."""
        ops = self._ops
        params = self._checked_params() if self.device == "cpu" else self.params
        T, B, _ = x.shape
        D = self.num_directions
        plan = self._plan(T, B)
        finals = [ops.empty((self.num_layers * D, B, size)) for size in self.state_sizes]
        saved, masks = {}, [None] * self.num_layers     # masks[k]: dropout after layer k

        given = any(s is not None for s in state0)

        def run(k, d, inp):
            idx = unit(k, d, D)
            s0 = tuple(None if s is None else s[idx] for s in state0) if given else None
            layer, masks = layer_masks(self, k, d, T, B, params)
            if self.device == "cpu":
                y_d, fin, saved[k, d] = schedule.forward(self.cell, inp, layer, s0, lengths, bool(d), need_grad,
                                                         plan.slices, checked=True, masks=masks)
            else:
                y_d, fin, saved[k, d] = self.cell.forward(inp, layer, s0, lengths, reverse=bool(d),
                                                          **({"masks": masks} if masks else {}))
            for f, arr in zip(finals, fin):
                ops.put(f, idx, arr)
            return y_d

        def dropout(k, out):
            if not (self.training and self.dropout > 0):
                return out
            keep = 1.0 - self.dropout
            masks[k] = ops.from_host((self.dropout_rng.random(tuple(out.shape)) < keep).astype(self.dtype)
                                     / self.dtype.type(keep))
            return ops.multiply(out, masks[k])

        with schedule.blas_for(plan):
            y = forward_layers(x, self.num_layers, D, run, ops.concat, dropout, plan.each)
        return y, tuple(finals), (saved, masks, lengths, T, B, plan)

    def forward(self, x, state0=None, lengths=None, need_grad=True):
        """Run the network over x. Returns (y, final_states); keeps what backward() needs:
        references to x and the parameters, which must not be modified in place before
        backward() (the gradients would be those of the modified values).
        need_grad=False: inference; nothing is kept and backward() cannot follow."""
        need_grad = flag("need_grad", need_grad)
        x = self._x(x)
        T, B, _ = x.shape
        state0 = self._states("state0", state0, B)
        y, finals, cache = self._run(x, state0, self._ops.lengths(lengths, B, T), need_grad)
        self._cache = cache if need_grad else _NO_GRAD
        if self.batch_first:
            y = self._ops.swap01(y)
        return y, finals

    __call__ = forward

    def backward(self, dy, d_final=None):
        """Back-propagate dL/dy (shaped like y) and dL/d(final states) (None: zero) through the last
        forward(). Returns (dx, d_state0) and fills `.grads`. Reads the x and parameters that
        forward() saw, by reference: modify neither in place in between (update after backward)."""
        if self._cache is None:
            raise ValueError("backward() needs a forward() first")
        if self._cache is _NO_GRAD:
            raise ValueError("backward() after forward(..., need_grad=False): that forward kept nothing "
                             "for backward; run forward() with need_grad=True (the default) first")
        ops = self._ops
        saved, masks, lengths, T, B, plan = self._cache
        D, H, L = self.num_directions, self.unit_output_size, self.num_layers * self.num_directions
        dy = ops.zeros((T, B, D * H)) if dy is None else self._dy(dy, T, B)
        d_final = self._states("d_final", d_final, B)
        d_state0 = [ops.empty((L, B, size)) for size in self.state_sizes]

        given = any(s is not None for s in d_final)

        def run(k, d, grad):
            idx = unit(k, d, D)
            df = tuple(None if s is None else s[idx] for s in d_final) if given else None
            if self.device == "cpu":
                dx_d, ds0, dp = schedule.backward(self.cell, grad, df, saved[k, d], checked=True)
            else:
                dx_d, ds0, dp = self.cell.backward(grad, df, saved[k, d])
            for out, arr in zip(d_state0, ds0):
                ops.put(out, idx, arr)
            keys = self._layer_keys[k, d]
            for name, value in dp.items():
                self.grads[keys[name]] = value
            return dx_d

        def dropout(k, grad):
            return grad if masks[k] is None else ops.multiply(grad, masks[k])

        with schedule.blas_for(plan):
            grad = backward_layers(dy, self.num_layers, D, run, lambda g, d: ops.take(g, d * H, H), ops.add,
                                   dropout, plan.each)
        if self.batch_first:
            grad = ops.swap01(grad)
        return grad, tuple(d_state0)

    # -- incremental inference --------------------------------------------------------------------
    def step(self, x_t, state=None):
        """One time step: x_t (B, I), state as forward's state0 (None: zeros).
        Returns (y_t (B, H), state), for generation one step at a time. Does not touch what
        backward() uses; unidirectional networks only."""
        if self.bidirectional:
            raise ValueError("step() runs one time step forward; a bidirectional network needs the "
                             "whole sequence (use forward())")
        def validate(x):
            if x.shape[1] != self.input_size or x.shape[0] < 1:
                raise ValueError(f"x_t must have shape (B, input_size={self.input_size}), got {tuple(x.shape)}")
            return x
        x = self._ops.input("x_t", x_t, 2, validate, network_dtype=True)
        B, I = x.shape
        state = self._states("state", state, B)
        y, finals, _ = self._run(x.reshape(1, B, I), state, self._ops.step_lengths(B), need_grad=False)
        return y[0], finals
