"""The CPU modules' input checks (run time): numpy arrays, checked by rnngen/backends/checks.py."""
import numpy as np

from ..masks import at_rate0 as masks_at_rate0, check_masks, draw as draw_masks  # noqa: F401  (used by the generated modules)

from ..checks import (DTYPES, Saved, check_finite, check_forward, check_state, hidden_size,  # noqa: F401
                      init_params, initial_value, sizes_of, state_dims)


def host_array(name, value, ndim, dtype=None):
    """`value` as a C-contiguous numpy array of `ndim` dimensions and float dtype (`dtype` if given);
    a device array is refused (the CPU kernels take numpy arrays)."""
    if not isinstance(value, np.ndarray):
        if hasattr(value, "__cuda_array_interface__") or hasattr(value, "__dlpack_device__") and \
                value.__dlpack_device__()[0] != 1:
            raise ValueError(f"{name} is a device array; the CPU kernels take numpy arrays")
        try:
            value = np.asarray(value)
        except Exception as exc:
            raise ValueError(f"{name} must be an array: {exc}") from None
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if dtype is None:
        if value.dtype.type not in DTYPES:
            raise ValueError(f"{name} must be float32 or float64, got {value.dtype}")
    elif value.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)} (as x and the parameters), "
                         f"got {value.dtype}")
    return np.ascontiguousarray(value)


def forward_inputs(x, params, state0, lengths, reverse, spec_params, states, params_checked=False,
                   state_sizes=None, initial=None):
    """forward()'s inputs checked (params_checked: but for NaN/inf in the parameters, which the
    caller checked); state0 a tuple with None for each state not given (forward_unchecked fills
    them in). `state_sizes`: STATE_SIZES of a cell whose states are not all of size H. `initial`:
    passed (the module's INITIAL) by a module generated before forward_unchecked existed, which
    gets every state filled in here."""
    x, params, state0, lengths, reverse, _ = check_forward(x, params, state0, lengths, reverse,
                                                           spec_params, states, host_array,
                                                           params_finite=not params_checked,
                                                           state_sizes=state_sizes)
    if initial is not None:
        state0 = initial_states(state0, x, params, spec_params, states, state_sizes, initial)
    return x, params, state0, lengths, reverse


def initial_states(state0, x, params, spec_params, states, state_sizes=None, initial=None):
    """state0 (None, or a tuple with one (B, size) array or None per state) with each state not
    given at its initial value (`initial`, the module's INITIAL; zero for the others); the arrays
    given are only read. `state_sizes`: the module's STATE_SIZES where a state's size is not H."""
    if state0 is not None and not any(s is None for s in state0):
        return tuple(state0)
    H = hidden_size(params, spec_params)
    dims = state_dims(state_sizes, states, H, sizes_of(params, spec_params)) if state_sizes else None
    B, dtype = x.shape[1], x.dtype
    out = []
    for k, name in enumerate(states):
        s = None if state0 is None else state0[k]
        if s is None:
            shape = (B, H if dims is None else dims[k])
            s = np.full(shape, initial_value(initial, name, dtype), dtype) if initial and name in initial else \
                np.zeros(shape, dtype)
        out.append(s)
    return tuple(out)


def forward_masks(masks, spec_masks, T, B, H, dtype, params=None, at_rate0=False):
    """forward()'s `masks` checked (numpy arrays of x's dtype); those left out are ones (None with
    at_rate0: the module's kernels at rate 0 read no step or sequence mask)."""
    def array(name, value, ndim):
        if isinstance(value, (np.ndarray, list, tuple)):
            value = np.asarray(value, dtype)
        return host_array(name, value, ndim, dtype)
    return check_masks(masks, spec_masks, T, B, H, array, params, at_rate0=at_rate0)


def drop_weight(weight, mask):
    """A DropConnect linear's weight in this call (weight * mask; the weight itself at rate 0)."""
    return weight if mask is None else weight * mask


def backward_inputs(dy, d_final, saved, cell_name, states, output=None, fill=True):
    """backward()'s inputs checked against what forward() saved: dy (None: zeros) and d_final, a
    tuple with one (B, size) array per state: copies, zeros for those not given (what the loop
    adds into), or with fill=False as given, None kept (backward_unchecked makes the copies)."""
    if saved is None:
        raise ValueError("saved is None: forward(..., need_grad=False) keeps nothing for backward; "
                         "run forward() with need_grad=True (the default) before backward()")
    if not isinstance(saved, Saved) or saved.cell != cell_name:
        raise ValueError(f"saved must be what forward() of cell {cell_name!r} returned")
    T, B, _ = saved.x.shape
    dims = [getattr(saved, f"s_{s}").shape[2] for s in states]     # each state's own size
    H = getattr(saved, f"s_{output or states[0]}").shape[2]         # the output's
    dtype = saved.x.dtype
    if dy is None:
        dy = np.zeros((T, B, H), dtype)
    dy = host_array("dy", dy, 3, dtype)
    if dy.shape != (T, B, H):
        raise ValueError(f"dy must have shape (T, B, H) = ({T}, {B}, {H}), got {dy.shape}")
    check_finite("dy", dy)
    if d_final is None:
        d_final = (None,) * len(states)
    if not isinstance(d_final, (tuple, list)) or len(d_final) != len(states):
        raise ValueError(f"d_final must be None or a tuple of {len(states)} arrays {states}, each (B, H)")
    d_final = tuple(None if d is None else check_state(f"d_final[{k}] ({states[k]})", d, B, dims[k], dtype, host_array)
                    for k, d in enumerate(d_final))
    return dy, state_grads(d_final, saved, states) if fill else d_final


def state_grads(d_final, saved, states):
    """What backward's loop adds the state gradients into: a copy of each (B, size) array of
    d_final (None, or a tuple with an array or None per state), zeros for those not given."""
    B, dtype = saved.x.shape[1], saved.x.dtype
    out = []
    for k, s in enumerate(states):
        d = None if d_final is None else d_final[k]
        out.append(np.zeros((B, getattr(saved, "s_" + s).shape[2]), dtype) if d is None else d.copy())
    return tuple(out)
