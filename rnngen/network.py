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

from . import checks
from .checks import check_lengths
from .device import is_device_array
from .registry import load

DEVICES = ("cpu", "cuda")


def _int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _as_numpy(name, value):
    """numpy array from an array-like, a torch tensor (without importing torch) or a device array
    (copied to the host)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "copy_to_host") and hasattr(value, "shape"):
        value = value.copy_to_host()
    elif hasattr(value, "__cuda_array_interface__"):
        from .cuda_compat import import_cuda
        value = import_cuda().as_cuda_array(value).copy_to_host()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{name} must be an array: {exc}") from None


def _check_device(device):
    name = getattr(device, "type", device)        # also a torch.device
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if name not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda' (the current CUDA device), got {device!r}")
    return name


def require_cuda(needs="device='cuda' needs",
                 advice="Use device='cpu' (or NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels in numba's "
                        "simulator, very slowly)"):
    """numba.cuda, once it is known to work here; a RuntimeError naming what is missing otherwise.
    `needs` starts the message (who needs it), `advice` ends it."""
    try:
        from .cuda_compat import import_cuda
        cuda = import_cuda()          # with the numpy 2.5 shim numba-cuda 0.30.4 needs
    except Exception as exc:
        raise RuntimeError(f"{needs} rnngen's CUDA backend, numba-cuda (pip install 'rnngen[cuda]'); "
                           f"importing numba.cuda failed: {type(exc).__name__}: {exc}. {advice}") from None
    if not cuda.is_available():
        try:
            cuda.get_current_device()
            why = "numba.cuda.is_available() is False"
        except Exception as exc:
            why = " ".join(str(exc).split())
        raise RuntimeError(f"{needs} an NVIDIA GPU with its driver, and numba-cuda found none: {why}. {advice}")
    return cuda


class _Host:
    """The array operations between layers, on numpy arrays."""
    name = "cpu"

    def __init__(self, dtype):
        self.dtype = dtype

    def empty(self, shape):
        return np.empty(shape, self.dtype)

    def zeros(self, shape):
        return np.zeros(shape, self.dtype)

    def put(self, dst, index, src):
        dst[index] = src

    def concat(self, parts):
        return np.concatenate(parts, axis=2)

    def take(self, src, offset, width):
        return np.ascontiguousarray(src[:, :, offset:offset + width])

    def multiply(self, a, b):
        return a * b

    def add(self, a, b):
        return a + b

    def swap01(self, a):
        return np.ascontiguousarray(a.transpose(1, 0, 2))

    def from_host(self, a):
        return a

    def lengths(self, lengths, T):
        return lengths

    def step_lengths(self, B):
        """The lengths of one step() (1 for each of B rows)."""
        return np.ones(B, np.int64)


class _Cuda(_Host):
    """The same operations on numba device arrays (rnngen/cuda_runtime.py's kernels)."""
    name = "cuda"

    def __init__(self, dtype):
        super().__init__(dtype)
        self.cuda = require_cuda()
        from . import cuda_runtime
        self.rt = cuda_runtime
        self._step_lengths = {}

    def empty(self, shape):
        return self.rt.empty(shape, self.dtype)

    def zeros(self, shape):
        return self.rt.zeros(shape, self.dtype)

    def put(self, dst, index, src):
        self.rt.copy(src, dst[index])

    def concat(self, parts):
        return self.rt.concat_last(parts)

    def take(self, src, offset, width):
        return self.rt.take_last(src, offset, width)

    def multiply(self, a, b):
        return self.rt.multiply(a, b)

    def add(self, a, b):
        return self.rt.add(a, b)

    def swap01(self, a):
        return self.rt.swap01(a)

    def from_host(self, a):
        return self.cuda.to_device(np.ascontiguousarray(a))

    def lengths(self, lengths, T):
        return self.rt.checked_lengths(lengths, T)

    def step_lengths(self, B):
        """One device copy per batch size (and CUDA context), not an upload every step()."""
        key = (B, self.rt._context_id())
        if key not in self._step_lengths:
            self._step_lengths[key] = self.lengths(super().step_lengths(B), 1)
        return self._step_lengths[key]


def _ops(device, dtype):
    return _Cuda(dtype) if device == "cuda" else _Host(dtype)


class RNN:
    """A stack of `num_layers` recurrent layers of one cell, optionally bidirectional.

    cell: a built-in cell name ('lstm', 'gru', 'rnn_tanh', ...), the name of a cell you built
    into folder `path` (`rnngen build NAME --specs DIR --out path`), or a generated module
    (`rnngen.load(name, path=folder)`).

    forward(x, state0=None, lengths=None) -> (y, final_states)
        x (T, B, I) (or (B, T, I) with batch_first); y (T, B, D*H), the directions concatenated
        as torch does; zero past each sequence's length. state0 and final_states are tuples in the
        cell's STATES order, each (num_layers*D, B, H) like torch's h_n / c_n (state0 may also be
        a single array for a one-state cell).
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
    Dropout masks are drawn on the host from the same generator as on the CPU (so a seed gives the
    same masks on both devices) and copied over. state_dict() returns host numpy arrays;
    to("cpu") / to("cuda") moves the network. A CPU network refuses device arrays (ValueError).
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False,
                 dropout=0.0, batch_first=False, dtype=np.float32, seed=0, device="cpu", path=None):
        if isinstance(cell, str):
            cell = load(cell, path)
        elif path is not None:
            raise ValueError(f"path= says where to find a cell given by name; got a module {cell!r} and path={path!r}")
        for attr in ("STATES", "OUTPUT", "PARAMS", "forward", "backward", "init_params"):
            if not hasattr(cell, attr):
                raise ValueError(f"cell must be a cell name or a generated module, got {cell!r}")
        self.cell = cell
        self.input_size = _int("input_size", input_size, 1)
        self.hidden_size = _int("hidden_size", hidden_size, 1)
        self.num_layers = _int("num_layers", num_layers, 1)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise ValueError(f"bidirectional must be a bool, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        try:
            dropout = float(dropout)
        except (TypeError, ValueError):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}") from None
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout}")
        self.dropout = dropout
        if not isinstance(batch_first, (bool, np.bool_)):
            raise ValueError(f"batch_first must be a bool, got {batch_first!r}")
        self.batch_first = bool(batch_first)
        dtype = np.dtype(dtype)
        if dtype.type not in checks.DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self.seed = _int("seed", seed, 0)
        device = _check_device(device)
        self._ops = _ops(device, dtype)          # before anything is allocated: fails early
        self.device = device
        self.training = True
        self.dropout_rng = np.random.default_rng([int(seed), 1])
        seeds = np.random.default_rng([int(seed), 0]).integers(0, 2**62, self.num_layers * self.num_directions)
        self.params = {}
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for d in range(self.num_directions):
                p = cell.init_params(layer_in, self.hidden_size, dtype, int(seeds[k * self.num_directions + d]))
                for name, value in p.items():
                    self.params[self._key(name, k, d)] = self._ops.from_host(value)
        self._zero_grads()
        self._cache = None

    def _zero_grads(self):
        self.grads = {name: self._ops.zeros(v.shape) for name, v in self.params.items()}

    # -- names and shapes -------------------------------------------------------------------------
    @staticmethod
    def _key(name, layer, direction):
        return f"{name}_l{layer}" + ("_reverse" if direction else "")

    def _layer_params(self, k, d):
        return {name: self.params[self._key(name, k, d)] for name in self.cell.PARAMS}

    @property
    def states(self):
        return tuple(self.cell.STATES)

    @property
    def output_size(self):
        return self.hidden_size * self.num_directions

    def __repr__(self):
        where = f", device={self.device!r}" if self.device != "cpu" else ""
        return (f"RNN({getattr(self.cell, 'NAME', self.cell.__name__)!r}, {self.input_size}, "
                f"{self.hidden_size}, num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}, dtype={self.dtype.name}{where})")

    def train(self, mode=True):
        """Training mode (dropout between layers active). Returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode (no dropout). Returns self."""
        return self.train(False)

    # -- devices ----------------------------------------------------------------------------------
    def to(self, device):
        """Move the parameters to 'cpu' (numpy) or 'cuda' (numba device arrays). Returns self.
        The gradients start from zero there and the last forward() is forgotten."""
        device = _check_device(device)
        if device == self.device:
            return self
        ops = _ops(device, self.dtype)
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
        if self.device == "cuda":
            return {name: value.copy_to_host() for name, value in self.params.items()}
        return {name: value.copy() for name, value in self.params.items()}

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
            value = _as_numpy(f"state_dict[{name!r}]", state_dict[name])
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
    def _refuse_device(self, name, value):
        if self.device == "cpu" and is_device_array(value):
            raise ValueError(f"{name} is a device (GPU) array but this RNN runs on the CPU; create it "
                             f"with device='cuda' or call .to('cuda'), or pass a host array")

    def _device_input(self, name, value, ndim):
        """On a CUDA network: a device array (no copy) of the network's dtype, or None for a host
        array (the caller checks that one on the host and copies it over)."""
        if self.device != "cuda" or not is_device_array(value):
            return None
        return self._ops.rt.as_device(name, value, ndim, self.dtype)

    def _check_x(self, x, name="x", ndim=3):
        """x checked and time-major, on this network's device."""
        self._refuse_device(name, x)
        dev = self._device_input(name, x, ndim)
        if dev is None:
            if hasattr(x, "detach") and hasattr(x, "cpu"):
                x = x.detach().cpu().numpy()
            x = checks._array(name, x, ndim)
            if x.dtype != self.dtype:
                raise ValueError(f"{name} must have dtype {self.dtype} (the network's dtype), got {x.dtype}")
        else:
            x = dev
        if ndim == 2:
            B, I = x.shape
            if I != self.input_size or B < 1:
                raise ValueError(f"{name} must have shape (B, input_size={self.input_size}), got {tuple(x.shape)}")
            if dev is None:
                checks._finite(name, x)
            return self._ops.from_host(x[None]) if dev is None else x.reshape(1, B, I)
        if self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2)) if dev is None else self._ops.swap01(x)
        T, B, I = x.shape
        if T < 1 or B < 1:
            raise ValueError(f"{name} must have at least one step and one sequence, got shape {tuple(x.shape)}")
        if I != self.input_size:
            raise ValueError(f"{name} has feature size {I} (shape {tuple(x.shape)}), but the network expects "
                             f"input_size={self.input_size}")
        if dev is None:
            checks._finite(name, x)
            x = self._ops.from_host(x)
        return x

    def _check_states(self, name, states, B):
        L = self.num_layers * self.num_directions
        n = len(self.states)
        if states is None:
            return (None,) * n
        if isinstance(states, np.ndarray) or hasattr(states, "detach") or is_device_array(states):
            if n != 1:
                raise ValueError(f"{name} must be a tuple of {n} arrays {self.states}, each "
                                 f"(num_layers*num_directions, B, H) = ({L}, {B}, {self.hidden_size})")
            states = (states,)
        if not isinstance(states, (tuple, list)) or len(states) != n:
            raise ValueError(f"{name} must be None or a tuple of {n} arrays {self.states}, each "
                             f"(num_layers*num_directions, B, H) = ({L}, {B}, {self.hidden_size})")
        out = []
        for s, state_name in zip(states, self.states):
            if s is None:
                out.append(None)
                continue
            label = f"{name}[{len(out)}] ({state_name})"
            self._refuse_device(label, s)
            dev = self._device_input(label, s, 3)
            if dev is None:
                if hasattr(s, "detach") and hasattr(s, "cpu"):
                    s = s.detach().cpu().numpy()
                s = checks._array(label, s, 3, self.dtype)
            else:
                s = dev
            if tuple(s.shape) != (L, B, self.hidden_size):
                raise ValueError(f"{label} must have shape (num_layers*num_directions, B, H) = "
                                 f"({L}, {B}, {self.hidden_size}), got {tuple(s.shape)}")
            if dev is None:
                checks._finite(label, s)
                s = self._ops.from_host(s)
            out.append(s)
        return tuple(out)

    def _check_lengths(self, lengths, B, T):
        """Checked on the host; on a CUDA network, one device copy for every layer and direction."""
        self._refuse_device("lengths", lengths)
        if lengths is not None and is_device_array(lengths) and not hasattr(lengths, "detach"):
            lengths = _as_numpy("lengths", lengths)
        lengths = check_lengths(lengths, B, T)
        return self._ops.lengths(lengths, T)

    def _check_params_finite(self):
        """NaN or inf in a parameter (a diverged update, a bad assignment to .params) is refused as
        in x, naming the parameter; once per network call, vectorised (host parameters only:
        as for device inputs, NaN is not checked on the GPU)."""
        for name, value in self.params.items():
            if not checks.all_finite(value):
                raise ValueError(f"parameter {name} contains NaN or inf")

    # -- forward and backward ---------------------------------------------------------------------
    def _run(self, x, state0, lengths):
        """x time-major, checked, on the device. Returns (y time-major, final states, cache)."""
        ops = self._ops
        if self.device == "cpu":
            self._check_params_finite()
        T, B, _ = x.shape
        D, H = self.num_directions, self.hidden_size
        finals = [ops.empty((self.num_layers * D, B, H)) for _ in self.states]
        saved, masks = [], []
        inp = x
        for k in range(self.num_layers):
            outs, layer_saved = [], []
            for d in range(D):
                idx = k * D + d
                s0 = tuple(None if s is None else s[idx] for s in state0)
                if all(s is None for s in s0):
                    s0 = None
                y_d, fin, sv = self.cell.forward(inp, self._layer_params(k, d), s0, lengths, reverse=bool(d))
                for f, arr in zip(finals, fin):
                    ops.put(f, idx, arr)
                outs.append(y_d)
                layer_saved.append(sv)
            saved.append(layer_saved)
            out = outs[0] if D == 1 else ops.concat(outs)
            mask = None
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                keep = 1.0 - self.dropout
                shape = tuple(out.shape)
                mask = ops.from_host((self.dropout_rng.random(shape) < keep).astype(self.dtype)
                                     / self.dtype.type(keep))
                out = ops.multiply(out, mask)
            masks.append(mask)
            inp = out
        return inp, tuple(finals), (saved, masks, lengths, T, B)

    def forward(self, x, state0=None, lengths=None):
        """Run the network over x. Returns (y, final_states); keeps what backward() needs:
        references to x and the parameters, which must not be modified in place before
        backward() (the gradients would be those of the modified values)."""
        x = self._check_x(x)
        T, B, _ = x.shape
        state0 = self._check_states("state0", state0, B)
        lengths = self._check_lengths(lengths, B, T)
        y, finals, cache = self._run(x, state0, lengths)
        self._cache = cache
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
        ops = self._ops
        saved, masks, lengths, T, B = self._cache
        D, H, L = self.num_directions, self.hidden_size, self.num_layers * self.num_directions
        if dy is None:
            dy = ops.zeros((T, B, D * H))
        else:
            self._refuse_device("dy", dy)
            dev = self._device_input("dy", dy, 3)
            if dev is None:
                if hasattr(dy, "detach") and hasattr(dy, "cpu"):
                    dy = dy.detach().cpu().numpy()
                dy = checks._array("dy", dy, 3, self.dtype)
            else:
                dy = dev
            shape = (B, T, D * H) if self.batch_first else (T, B, D * H)
            if tuple(dy.shape) != shape:
                raise ValueError(f"dy must have the shape of y, {shape}, got {tuple(dy.shape)}")
            if dev is None:
                checks._finite("dy", dy)
                if self.batch_first:
                    dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
                dy = ops.from_host(dy)
            elif self.batch_first:
                dy = ops.swap01(dy)
        d_final = self._check_states("d_final", d_final, B)
        d_state0 = [ops.empty((L, B, H)) for _ in self.states]
        grad = dy
        for k in range(self.num_layers - 1, -1, -1):
            if masks[k] is not None:
                grad = ops.multiply(grad, masks[k])
            dinp = None
            for d in range(D):
                idx = k * D + d
                dy_d = grad if D == 1 else ops.take(grad, d * H, H)
                df = tuple(None if s is None else s[idx] for s in d_final)
                dx_d, ds0, dp = self.cell.backward(dy_d, None if all(s is None for s in df) else df,
                                                   saved[k][d])
                for out, arr in zip(d_state0, ds0):
                    ops.put(out, idx, arr)
                for name, value in dp.items():
                    self.grads[self._key(name, k, d)] = value
                dinp = dx_d if dinp is None else ops.add(dinp, dx_d)
            grad = dinp
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
        x = self._check_x(x_t, "x_t", 2)
        B = x.shape[1]
        state = self._check_states("state", state, B)
        y, finals, _ = self._run(x, state, self._ops.step_lengths(B))
        return y[0], finals


def last_valid(y, lengths, batch_first=False):
    """Many-to-one: each sequence's last valid output, y[lengths[b]-1, b] -> (B, F).

    For a bidirectional network this takes the forward direction at the last step and the reverse
    direction there too (which has seen only that step); use the final states (h_n) to read the
    reverse direction's summary of the whole sequence."""
    y = np.asarray(y)
    if y.ndim != 3:
        raise ValueError(f"y must have 3 dimensions, got shape {y.shape}")
    if batch_first:
        y = y.transpose(1, 0, 2)
    T, B, _ = y.shape
    lengths = check_lengths(lengths, B, T)
    if B and lengths.min() < 1:
        raise ValueError("lengths must be >= 1 to take a last valid output")
    return y[lengths - 1, np.arange(B)]


def last_valid_backward(d_last, lengths, T, batch_first=False):
    """The gradient of last_valid(): d_last (B, F) scattered into a zero dy shaped like y."""
    d_last = np.asarray(d_last)
    if d_last.ndim != 2:
        raise ValueError(f"d_last must have shape (B, F), got {d_last.shape}")
    B, F = d_last.shape
    lengths = check_lengths(lengths, B, T)
    dy = np.zeros((T, B, F), d_last.dtype)
    dy[lengths - 1, np.arange(B)] = d_last
    return np.ascontiguousarray(dy.transpose(1, 0, 2)) if batch_first else dy
