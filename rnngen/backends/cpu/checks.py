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
    caller checked); the states not given at their initial values (`initial`, the module's
    INITIAL; zeros for the others; (B, the state's size)), the others copied. `state_sizes`:
    STATE_SIZES of a cell whose states are not all of size H."""
    x, params, state0, lengths, reverse, H = check_forward(x, params, state0, lengths, reverse,
                                                           spec_params, states, host_array,
                                                           params_finite=not params_checked,
                                                           state_sizes=state_sizes)
    B = x.shape[1]
    dims = state_dims(state_sizes, states, H, sizes_of(params, spec_params)) if state_sizes else (H,) * len(states)
    state0 = tuple(np.full((B, n), initial_value(initial, name, x.dtype), x.dtype) if s is None else s.copy()
                   for name, s, n in zip(states, state0, dims))
    return x, params, state0, lengths, reverse


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


def backward_inputs(dy, d_final, saved, cell_name, states, output=None):
    """backward()'s inputs checked against what forward() saved; d_final copied (accumulated into)."""
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
    d_final = tuple(np.zeros((B, dims[k]), dtype) if d is None else
                    check_state(f"d_final[{k}] ({states[k]})", d, B, dims[k], dtype, host_array).copy()
                    for k, d in enumerate(d_final))
    return dy, d_final
