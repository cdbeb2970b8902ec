"""Input checks and small helpers shared by the generated modules of every backend (run time).

Bad input raises ValueError naming the argument and what was expected; nothing is broadcast.
The backends convert arrays their own way (rnngen/backends/cpu/checks.py for numpy arrays,
rnngen/backends/cuda/checks.py for device arrays) and pass that conversion in.
"""
import functools
import inspect

import numpy as np

DTYPES = (np.float32, np.float64)


def is_torch_tensor(value):
    """A torch tensor, told without importing torch (the one place that duck-types it)."""
    return hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy")


def host_view(value):
    """A CPU torch tensor as a numpy array (no copy); anything else as it is."""
    return value.detach().cpu().numpy() if is_torch_tensor(value) else value


class CheckedLengths:
    """`lengths` already checked for (B, T) by check_lengths: a network checks them once per call
    and passes this to every layer and direction, whose own check then takes it as it is. `host`
    is the int64 (B,) array; `device`, when set, its copy on the GPU."""

    def __init__(self, lengths, B, T):
        self.host = check_lengths(lengths, B, T)
        self.B, self.T = B, T
        self.device = None

    def __repr__(self):
        return f"CheckedLengths({self.host.tolist()}, T={self.T})"

    def rows(self, b0, b1):
        """The lengths of batch rows b0:b1, checked already (host only)."""
        part = object.__new__(CheckedLengths)
        part.host, part.B, part.T, part.device = self.host[b0:b1], b1 - b0, self.T, None
        return part


@functools.lru_cache(maxsize=None)
def keywords(fn):
    """The parameter names of a generated module's function (forward, backward and their unchecked
    entries: what a module generated earlier does not take is not passed). A plain function: the
    cache keeps every key."""
    return frozenset(inspect.signature(fn).parameters)


@functools.lru_cache(maxsize=None)
def _dim_terms(dim):
    """A PARAMS dimension parsed once: ((op, factor), ...) with op '*' or '/' and factor an int or
    a size name ('4*H/heads' -> (('*', 4), ('*', 'H'), ('/', 'heads')))."""
    terms, op, factor = [], "*", ""
    for ch in str(dim).replace(" ", "") + "*":
        if ch not in "*/":
            factor += ch
            continue
        terms.append((op, int(factor) if factor.isdigit() else factor))
        op, factor = ch, ""
    return tuple(terms)


def dim_value(dim, env):
    """One dimension of a PARAMS shape: a product (and quotient) of integers and size names,
    '4*H', 'proj_size', '4*H/heads', evaluated with `env` {name: int}; a quotient that is not whole
    is a ValueError (H not divisible by heads)."""
    value = 1
    for op, factor in _dim_terms(dim):
        v = factor if isinstance(factor, int) else env[factor]
        if op == "/" and value % v:
            raise ValueError(f"{dim} is not whole: {value} is not divisible by {factor}={v}")
        value = value * v if op == "*" else value // v
    return value


def param_shape(shape, input_size, hidden_size, sizes=None):
    """('4*H', 'I') -> (4*hidden_size, input_size); `sizes` {name: int} gives the run-time sizes a
    spec declares (('4*H', 'proj_size') with sizes={'proj_size': 2})."""
    env = {"H": hidden_size, "I": input_size, **(sizes or {})}
    return tuple(dim_value(dim, env) for dim in shape)


def size_names(spec_params):
    """The run-time size names in a module's PARAMS, besides I and H, in order of appearance."""
    return _size_names(tuple(tuple(shape) for shape in spec_params.values()))


@functools.lru_cache(maxsize=None)
def _size_names(shapes):
    out = []
    for shape in shapes:
        for dim in shape:
            for _, part in _dim_terms(dim):
                if isinstance(part, str) and part and part not in ("I", "H") and part not in out:
                    out.append(part)
    return tuple(out)


def check_sizes(names, sizes, who="init_params", defaults=None, hidden_size=None):
    """{name: int} of a cell's run-time sizes from the keywords given: each one a positive integer,
    given or with a default (`defaults` {name: int or "H"}: the hidden size), no other (a
    ValueError naming the keyword)."""
    sizes = dict(sizes or {})
    for name, default in (defaults or {}).items():
        if sizes.get(name) is None and (default != "H" or hidden_size is not None):
            sizes[name] = hidden_size if default == "H" else default
    unknown = [k for k in sizes if k not in names]
    if unknown:
        known = f"its run-time sizes are {', '.join(names)}" if names else "it has no run-time sizes"
        raise ValueError(f"{who}: unknown keyword {unknown[0]}= for this cell ({known})")
    out = {}
    for name in names:
        if name not in sizes or sizes[name] is None:
            raise ValueError(f"{who}: this cell needs the run-time size {name}= (a positive integer)")
        value = sizes[name]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
        out[name] = int(value)
    if "heads" in out and hidden_size is not None and int(hidden_size) % out["heads"]:
        raise ValueError(f"{who}: hidden_size {hidden_size} is not divisible by heads={out['heads']} "
                         f"(each head has hidden_size / heads units)")
    return out


def sizes_of(params, spec_params, names=None):
    """{name: int} of the run-time sizes read back from the parameters' shapes: each from the
    first dimension that is 'k*name' (H from the first parameter's rows, as hidden_size())."""
    names = size_names(spec_params) if names is None else names
    out = {}
    for name in names:
        for pname, shape in spec_params.items():
            for axis, dim in enumerate(shape):
                mult, _, sym = str(dim).rpartition("*")
                if sym == name and (not mult or mult.isdigit()) and pname in params:
                    size = params[pname].shape[axis]
                    k = int(mult) if mult else 1
                    if size % k or size == 0:
                        raise ValueError(f"params[{pname!r}] must have {dim} along axis {axis}, got {size}")
                    out[name] = size // k
                    break
            if name in out:
                break
        if name not in out:
            raise ValueError(f"no parameter shows the size {name} on its own (a dimension k*{name})")
    return out


def state_dims(state_sizes, states, H, sizes):
    """The size of each state, (B, size) per state: H unless STATE_SIZES names another size."""
    env = {"H": H, **sizes}
    return tuple(env[(state_sizes or {}).get(s, "H")] for s in states)


def init_params(spec_params, input_size, hidden_size, dtype=np.float32, seed=0, sizes=None, init=None,
                defaults=None):
    """Parameters from U(-1/sqrt(H), 1/sqrt(H)) (`init` {name: constant} sets the others: a
    LayerNorm gain to 1, a bias to 0); `sizes` the cell's run-time sizes, checked here, with
    `defaults` for those not given."""
    if int(input_size) < 1 or int(hidden_size) < 1:
        raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}")
    dtype = np.dtype(dtype)
    if dtype.type not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    sizes = check_sizes(size_names(spec_params), sizes, "init_params", defaults, int(hidden_size))
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    out = {}
    for name, shape in spec_params.items():
        dims = param_shape(shape, input_size, hidden_size, sizes)
        out[name] = rng.uniform(-bound, bound, dims).astype(dtype)
        if init and name in init:
            out[name][...] = init[name]
    return out


def initial_value(initial, state, dtype):
    """The value state `state` starts at when state0 leaves it out (INITIAL of a generated module:
    a number, or 'lowest' for the dtype's most negative finite number; 0 if not listed)."""
    v = (initial or {}).get(state, 0)
    return np.finfo(dtype).min if v == "lowest" else np.dtype(dtype).type(v)


class Saved:
    """What forward() keeps for backward(): opaque to callers."""

    def __init__(self, cell, **arrays):
        self.cell = cell
        self.__dict__.update(arrays)

    def __repr__(self):
        return f"<saved forward of {self.cell}: T={self.x.shape[0]}, B={self.x.shape[1]}>"


def all_finite(value):
    """No NaN or inf in the array `value`: rnngen/backends/finite.py, compiled (imported at the first
    call, so that `import rnngen` does not import numba)."""
    return (_finite or _import_finite()).all_finite(value)


def all_finite_arrays(values):
    """all_finite of every array in `values`, in one call (finite.all_finite_arrays)."""
    return (_finite or _import_finite()).all_finite_arrays(values)


_finite = None


def _import_finite():
    global _finite
    from . import finite
    _finite = finite
    return finite


def check_finite(name, value):
    if not all_finite(value):
        raise ValueError(f"{name} contains NaN or inf")


def check_forward(x, params, state0, lengths, reverse, spec_params, states, array, lengths_of=None,
                  finite=check_finite, params_finite=True, state_sizes=None):
    """The checks of forward()'s inputs shared by the CPU and the CUDA modules.

    `array(name, value, ndim, dtype=None)` converts and checks one array (the backend's: numpy
    arrays on the CPU, device arrays on the GPU); `lengths_of(lengths, B, T)` checks `lengths`
    (default check_lengths); `finite(name, arr)` rejects NaN and inf (None: not checked;
    params_finite=False: not for the parameters, which the caller checked).
    `state_sizes` {state: size name}: the states whose size is not H (STATE_SIZES).
    Returns (x, params, state0, lengths, reverse, H), with None for each state not given.
    """
    x = array("x", x, 3)
    T, B, I = x.shape
    if T < 1 or B < 1 or I < 1:
        raise ValueError(f"x must be (T, B, I) with every size >= 1, got shape {tuple(x.shape)}")
    if finite is not None:
        finite("x", x)
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of parameter name -> array")
    missing = [n for n in spec_params if n not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; expected {list(spec_params)}")
    extra = [n for n in params if n not in spec_params]
    if extra:
        raise ValueError(f"params has unknown names {extra}; expected {list(spec_params)}")
    checked = {name: array(f"params[{name!r}]", params[name], len(shape), x.dtype)
               for name, shape in spec_params.items()}
    H, sizes = param_layout(tuple(spec_params.items()), tuple(x.shape), tuple(tuple(a.shape) for a in checked.values()))
    sizes = dict(sizes)
    if finite is not None and params_finite:
        for name, arr in checked.items():
            finite(f"params[{name!r}]", arr)
    if state0 is None:
        state0 = (None,) * len(states)
    if not isinstance(state0, (tuple, list)) or len(state0) != len(states):
        raise ValueError(f"state0 must be None or a tuple of {len(states)} arrays {states}, each (B, H)")
    dims = state_dims(state_sizes, states, H, sizes)
    state0 = tuple(None if s is None else check_state(f"state0[{k}] ({states[k]})", s, B, dims[k], x.dtype,
                                                      array, finite) for k, s in enumerate(state0))
    lengths = (lengths_of or check_lengths)(lengths, B, T)
    if not isinstance(reverse, (bool, np.bool_)):
        raise ValueError(f"reverse must be a bool, got {reverse!r}")
    return x, checked, state0, lengths, bool(reverse), H


class _Shaped:
    """Stands for an array where only its shape is read."""
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape


@functools.lru_cache(maxsize=512)
def param_layout(spec_items, x_shape, shapes):
    """(H, ((size name, value), ...)) of parameters of `shapes` (in PARAMS order; `spec_items`:
    PARAMS' items) for an x of `x_shape`, or the ValueError naming what does not fit. The same
    shapes give the same answer: it is worked out once per combination (the errors every time)."""
    spec_params = dict(spec_items)
    params = {name: _Shaped(shape) for (name, _), shape in zip(spec_items, shapes)}
    H = hidden_size(params, spec_params)      # from the first parameter
    sizes = sizes_of(params, spec_params)     # the run-time sizes (proj_size, heads, ...), from their shapes
    check_sizes(tuple(sizes), sizes, "params", hidden_size=H)      # heads must divide H
    check_input_size(_Shaped(x_shape), params, spec_params, H, sizes)
    I = x_shape[2]
    given = "".join(f", {k}={v}" for k, v in sizes.items())
    for (name, shape), got in zip(spec_items, shapes):
        expected = param_shape(shape, I, H, sizes)
        if got != expected:
            raise ValueError(f"params[{name!r}] must have shape {expected} ({', '.join(shape)} with "
                             f"I={I}, H={H}{given}), got {got}")
    return H, tuple(sizes.items())


def check_lengths(lengths, B, T):
    """`lengths` as a C-contiguous int64 (B,) array with values in [0, T] (None: all T).
    Integers of any dtype and floats with integral values are accepted; anything else (a bool
    array, 1.5, NaN, a value out of range) is refused naming the first offending value and its index.
    CheckedLengths for this (B, T) are taken as they are (checked once by the caller)."""
    if isinstance(lengths, CheckedLengths) and (lengths.B, lengths.T) == (B, T):
        return lengths.host
    if isinstance(lengths, CheckedLengths):
        lengths = lengths.host
    if lengths is None:
        return np.full(B, T, np.int64)
    lengths = host_view(lengths)
    if isinstance(lengths, (list, tuple)):
        return _lengths_from_sequence(lengths, B, T)
    try:
        lengths = np.asarray(lengths)
    except Exception as exc:
        raise ValueError(f"lengths must be an array of integers: {exc}") from None
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), got {lengths.shape}")
    if lengths.dtype.kind == "O":
        return _lengths_from_sequence(lengths.tolist(), B, T)
    if lengths.dtype.kind not in "iuf":
        raise ValueError(f"lengths must be integers in [0, T={T}], got dtype {lengths.dtype}")
    bad = ~((lengths >= 0) & (lengths <= T))        # NaN compares False: bad
    if lengths.dtype.kind == "f":
        bad |= lengths != np.floor(lengths)
    if bad.any():
        k = int(np.argmax(bad))
        _bad_length(k, lengths[k].item(), T)
    return np.ascontiguousarray(lengths, dtype=np.int64)


def _bad_length(k, value, T):
    raise ValueError(f"lengths must be integers in [0, T={T}], got lengths[{k}] = {value!r}")


def _lengths_from_sequence(values, B, T):
    """A list or tuple of lengths, each value checked as given (exactly, before any conversion)."""
    if np.shape(np.asarray(values, dtype=object)) != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), got {np.shape(np.asarray(values, dtype=object))}")
    for k, v in enumerate(values):
        integral = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) or \
            isinstance(v, (float, np.floating)) and float(v).is_integer()
        if not integral or not 0 <= v <= T:
            _bad_length(k, v.item() if isinstance(v, np.generic) else v, T)
    return np.array(values, dtype=np.int64)


def check_input_size(x, params, spec_params, H, sizes=None):
    """x's feature size against the input size the parameters were made for (the first parameter
    with an I dimension), so that a wrong x is blamed on x, not on a parameter."""
    I = x.shape[2]
    for name, shape in spec_params.items():
        if "I" not in [dim.rpartition("*")[2] for dim in shape]:
            continue
        k = [dim.rpartition("*")[2] for dim in shape].index("I")
        mult = shape[k].rpartition("*")[0]
        mult = int(mult) if mult else 1
        size = params[name].shape[k]
        if size % mult or size == 0:
            return              # the parameter itself is wrong: its own check says so
        expected = size // mult
        if expected != I and tuple(params[name].shape) == param_shape(shape, expected, H, sizes):
            raise ValueError(f"x has feature size {I} (shape (T, B, I) = {tuple(x.shape)}), but the "
                             f"parameters expect input size {expected} (params[{name!r}] has shape "
                             f"{tuple(params[name].shape)}: {', '.join(shape)} with I={expected}, H={H})")
        return


@functools.lru_cache(maxsize=None)
def _rows_factor(dim):
    """k of a first dimension 'k*H' (1 for 'H')."""
    mult, _, _ = dim.rpartition("*")
    return int(mult) if mult else 1


def hidden_size(params, spec_params):
    """H from the rows of the first parameter (k*H rows for a shape ('k*H', ...))."""
    first = next(iter(spec_params))
    rows = params[first].shape[0]
    mult = _rows_factor(spec_params[first][0])
    if rows % mult or rows == 0:
        raise ValueError(f"params[{first!r}] must have {spec_params[first][0]} rows, got {rows}")
    return rows // mult


def check_state(name, s, B, H, dtype, array, finite=check_finite):
    """A (B, H) state; H is the state's own size (proj_size for a projected LSTM's h)."""
    arr = array(name, s, 2, dtype)
    if tuple(arr.shape) != (B, H):
        raise ValueError(f"{name} must have shape (B, H) = ({B}, {H}), got {tuple(arr.shape)}")
    if finite is not None:
        finite(name, arr)
    return arr
