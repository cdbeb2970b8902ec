"""Deep and bidirectional recurrent networks built from generated cell modules.

`RNN` stacks one generated module per layer and direction, like torch.nn.LSTM / GRU / RNN:
the same parameter names (`weight_ih_l{k}`, `_reverse` suffix), the same state shapes
(num_layers * num_directions, B, H), the same concatenation of the two directions, and PyTorch's
packed semantics for variable-length sequences. Every layer and direction is one whole-sequence
call of the generated kernels; there is no per-step Python loop.
"""
import numpy as np

from . import checks
from .checks import check_lengths
from .registry import load


def _int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _as_numpy(name, value):
    """numpy array from an array-like, or from a CPU torch tensor (without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{name} must be an array: {exc}") from None


class RNN:
    """A stack of `num_layers` recurrent layers of one cell, optionally bidirectional.

    cell: a built-in cell name ('lstm', 'gru', 'rnn_tanh', ...) or a generated module
    (`rnngen.load(name, path=folder)` for one you built).

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
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False,
                 dropout=0.0, batch_first=False, dtype=np.float32, seed=0):
        if isinstance(cell, str):
            cell = load(cell)
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
        self.training = True
        self.dropout_rng = np.random.default_rng([int(seed), 1])
        seeds = np.random.default_rng([int(seed), 0]).integers(0, 2**62, self.num_layers * self.num_directions)
        self.params = {}
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for d in range(self.num_directions):
                p = cell.init_params(layer_in, self.hidden_size, dtype, int(seeds[k * self.num_directions + d]))
                for name, value in p.items():
                    self.params[self._key(name, k, d)] = value
        self.grads = {name: np.zeros_like(v) for name, v in self.params.items()}
        self._cache = None

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
        return (f"RNN({getattr(self.cell, 'NAME', self.cell.__name__)!r}, {self.input_size}, "
                f"{self.hidden_size}, num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}, dtype={self.dtype.name})")

    def train(self, mode=True):
        """Training mode (dropout between layers active). Returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode (no dropout). Returns self."""
        return self.train(False)

    # -- parameters -------------------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter under torch.nn.LSTM/GRU/RNN names."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Load parameters by torch name (numpy arrays or CPU torch tensors); every name must match."""
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
            if value.shape != old.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {old.shape}, got {value.shape}")
            if value.dtype.kind != "f":
                raise ValueError(f"state_dict[{name!r}] must be floating point, got {value.dtype}")
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict[{name!r}] contains NaN or inf")
            new[name] = np.ascontiguousarray(value, dtype=self.dtype).copy()
        for name, value in new.items():
            self.params[name][...] = value

    # -- inputs -----------------------------------------------------------------------------------
    def _check_x(self, x):
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            x = x.detach().cpu().numpy()
        x = checks._array("x", x, 3)
        if x.dtype != self.dtype:
            raise ValueError(f"x must have dtype {self.dtype} (the network's dtype), got {x.dtype}")
        if self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, I = x.shape
        if T < 1 or B < 1:
            raise ValueError(f"x must have at least one step and one sequence, got shape {x.shape}")
        if I != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size), got shape {x.shape}")
        checks._finite("x", x)
        return x

    def _check_states(self, name, states, B):
        L = self.num_layers * self.num_directions
        n = len(self.states)
        if states is None:
            return (None,) * n
        if isinstance(states, np.ndarray) or hasattr(states, "detach"):
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
            if hasattr(s, "detach") and hasattr(s, "cpu"):
                s = s.detach().cpu().numpy()
            s = checks._array(label, s, 3, self.dtype)
            if s.shape != (L, B, self.hidden_size):
                raise ValueError(f"{label} must have shape (num_layers*num_directions, B, H) = "
                                 f"({L}, {B}, {self.hidden_size}), got {s.shape}")
            checks._finite(label, s)
            out.append(s)
        return tuple(out)

    # -- forward and backward ---------------------------------------------------------------------
    def _run(self, x, state0, lengths):
        """x time-major, checked. Returns (y time-major, final states, cache for backward)."""
        T, B, _ = x.shape
        D, H = self.num_directions, self.hidden_size
        finals = [np.empty((self.num_layers * D, B, H), self.dtype) for _ in self.states]
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
                    f[idx] = arr
                outs.append(y_d)
                layer_saved.append(sv)
            saved.append(layer_saved)
            out = outs[0] if D == 1 else np.concatenate(outs, axis=2)
            mask = None
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (self.dropout_rng.random(out.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                out = out * mask
            masks.append(mask)
            inp = out
        return inp, tuple(finals), (saved, masks, lengths, T, B)

    def forward(self, x, state0=None, lengths=None):
        """Run the network over x. Returns (y, final_states); keeps what backward() needs."""
        x = self._check_x(x)
        T, B, _ = x.shape
        state0 = self._check_states("state0", state0, B)
        lengths = check_lengths(lengths, B, T)
        y, finals, cache = self._run(x, state0, lengths)
        self._cache = cache
        if self.batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        return y, finals

    __call__ = forward

    def backward(self, dy, d_final=None):
        """Back-propagate dL/dy (shaped like y) and dL/d(final states) (None: zero) through the last
        forward(). Returns (dx, d_state0) and fills `.grads`."""
        if self._cache is None:
            raise ValueError("backward() needs a forward() first")
        saved, masks, lengths, T, B = self._cache
        D, H, L = self.num_directions, self.hidden_size, self.num_layers * self.num_directions
        if dy is None:
            dy = np.zeros((T, B, D * H), self.dtype)
        else:
            if hasattr(dy, "detach") and hasattr(dy, "cpu"):
                dy = dy.detach().cpu().numpy()
            dy = checks._array("dy", dy, 3, self.dtype)
            shape = (B, T, D * H) if self.batch_first else (T, B, D * H)
            if dy.shape != shape:
                raise ValueError(f"dy must have the shape of y, {shape}, got {dy.shape}")
            if self.batch_first:
                dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
            checks._finite("dy", dy)
        d_final = self._check_states("d_final", d_final, B)
        d_state0 = [np.zeros((L, B, H), self.dtype) for _ in self.states]
        grad = dy
        for k in range(self.num_layers - 1, -1, -1):
            if masks[k] is not None:
                grad = grad * masks[k]
            dinp = None
            for d in range(D):
                idx = k * D + d
                dy_d = grad if D == 1 else np.ascontiguousarray(grad[:, :, d * H:(d + 1) * H])
                df = tuple(None if s is None else s[idx] for s in d_final)
                dx_d, ds0, dp = self.cell.backward(dy_d, None if all(s is None for s in df) else df,
                                                   saved[k][d])
                for out, arr in zip(d_state0, ds0):
                    out[idx] = arr
                for name, value in dp.items():
                    self.grads[self._key(name, k, d)] = value
                dinp = dx_d if dinp is None else dinp + dx_d
            grad = dinp
        if self.batch_first:
            grad = np.ascontiguousarray(grad.transpose(1, 0, 2))
        return grad, tuple(d_state0)

    # -- incremental inference --------------------------------------------------------------------
    def step(self, x_t, state=None):
        """One time step: x_t (B, I), state as forward's state0 (None: zeros).
        Returns (y_t (B, H), state), for generation one step at a time. Does not touch what
        backward() uses; unidirectional networks only."""
        if self.bidirectional:
            raise ValueError("step() runs one time step forward; a bidirectional network needs the "
                             "whole sequence (use forward())")
        if hasattr(x_t, "detach") and hasattr(x_t, "cpu"):
            x_t = x_t.detach().cpu().numpy()
        x_t = checks._array("x_t", x_t, 2)
        if x_t.dtype != self.dtype:
            raise ValueError(f"x_t must have dtype {self.dtype} (the network's dtype), got {x_t.dtype}")
        if x_t.shape[1] != self.input_size or x_t.shape[0] < 1:
            raise ValueError(f"x_t must have shape (B, input_size={self.input_size}), got {x_t.shape}")
        checks._finite("x_t", x_t)
        B = x_t.shape[0]
        state = self._check_states("state", state, B)
        y, finals, _ = self._run(x_t[None], state, np.full(B, 1, np.int64))
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
