"""The CUDA modules' input checks (run time): device arrays (numba's, or anything exposing
__cuda_array_interface__: torch, cupy), checked by rnngen/backends/checks.py without a copy."""
import numpy as np

from .. import checks as shared
from ..checks import Saved, hidden_size, initial_value, sizes_of  # noqa: F401  (the generated modules use them from here)
from ..masks import at_rate0 as masks_at_rate0, check_masks, draw as draw_masks  # noqa: F401  (used by the generated modules)
from . import config, elementwise, workspace
from .config import numba_type  # noqa: F401  (the generated modules use it from here)

cuda = config.cuda


def _contiguous(name, arr):
    ok = getattr(arr, "is_c_contiguous", None)
    if ok is not None and not ok():
        raise ValueError(f"{name} must be C-contiguous on the device (call .contiguous() first)")
    return arr


def as_device(name, value, ndim=None, dtype=None):
    """A device view of `value` (no copy for device arrays; host arrays are copied over)."""
    if hasattr(value, "copy_to_host") and hasattr(value, "shape"):
        arr = value
    elif hasattr(value, "__cuda_array_interface__"):
        arr = cuda.as_cuda_array(value)
    else:
        try:
            arr = config.to_device(np.ascontiguousarray(np.asarray(value)))
        except Exception as exc:
            raise ValueError(f"{name} must be an array: {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if dtype is None:
        if np.dtype(arr.dtype).type not in shared.DTYPES:
            raise ValueError(f"{name} must be float32 or float64, got {arr.dtype}")
    elif np.dtype(arr.dtype) != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)} (as x and the parameters), "
                         f"got {arr.dtype}")
    return _contiguous(name, arr)


def forward_inputs(x, params, state0, lengths, reverse, spec_params, states, state_sizes=None, initial=None):
    """The checks of the CPU path (shared.check_forward) for device arrays. NaN is not checked;
    a state0 not given stays None (the wrapper's copy fills its INITIAL value, or zeros)."""
    x, params, state0, lengths, reverse, _ = shared.check_forward(
        x, params, state0, lengths, reverse, spec_params, states, array=as_device,
        lengths_of=_device_lengths, finite=None, state_sizes=state_sizes)
    return x, params, state0, lengths, reverse


def forward_masks(masks, spec_masks, T, B, H, dtype, params=None, at_rate0=False):
    """forward()'s `masks` on the device (host arrays are copied over); those left out are ones
    (None with at_rate0: the module's kernels at rate 0 read no step or sequence mask)."""
    def array(name, value, ndim):
        if isinstance(value, np.ndarray) and value.dtype != np.dtype(dtype):
            value = value.astype(dtype)
        return as_device(name, value, ndim, dtype)
    # one left out: cached ones the kernels only read (no allocation, no copy per call)
    return check_masks(masks, spec_masks, T, B, H, array, params,
                       ones=lambda shape: workspace.filled(shape, dtype, 1), at_rate0=at_rate0)


def drop_weight(weight, mask):
    """A DropConnect linear's weight in this call (weight * mask; the weight itself at rate 0)."""
    return weight if mask is None else elementwise.multiply(weight, mask)


_FULL_LENGTHS = {}


def _device_lengths(lengths, B, T):
    """`lengths` on the device, checked on a host copy by shared.check_lengths; None: a cached
    array of T; CheckedLengths for this (B, T) (a network checks once per call) are used as they
    are, their device copy if they have one (no round trip)."""
    if lengths is None:
        key = (T, B, config.context_id())
        if key not in _FULL_LENGTHS:
            _FULL_LENGTHS[key] = config.to_device(np.full(B, T, np.int64))
        return _FULL_LENGTHS[key]
    if isinstance(lengths, shared.CheckedLengths) and (lengths.B, lengths.T) == (B, T):
        if lengths.device is None:
            lengths.device = config.to_device(lengths.host)
        return lengths.device
    if hasattr(lengths, "copy_to_host"):
        host = lengths.copy_to_host()
    elif hasattr(lengths, "__cuda_array_interface__"):
        host = cuda.as_cuda_array(lengths).copy_to_host()
    else:
        host = lengths
    return config.to_device(shared.check_lengths(host, B, T))


def backward_inputs(dy, d_final, saved, cell_name, states, output=None):
    if not isinstance(saved, shared.Saved) or saved.cell != cell_name or not getattr(saved, "device", False):
        raise ValueError(f"saved must be what forward() of cell {cell_name!r} returned for device arrays")
    T, B, _ = saved.x.shape
    dims = [getattr(saved, f"s_{s}").shape[2] for s in states]      # each state's own size
    H = getattr(saved, f"s_{output or states[0]}").shape[2]
    dtype = saved.x.dtype
    dy = workspace.zeros((T, B, H), dtype) if dy is None else as_device("dy", dy, 3, dtype)
    if tuple(dy.shape) != (T, B, H):
        raise ValueError(f"dy must have shape (T, B, H) = ({T}, {B}, {H}), got {tuple(dy.shape)}")
    if d_final is None:
        d_final = (None,) * len(states)
    if not isinstance(d_final, (tuple, list)) or len(d_final) != len(states):
        raise ValueError(f"d_final must be None or a tuple of {len(states)} arrays {states}, each (B, H)")
    # the kernel reads d_final (it writes d_state0 into new arrays): no copies
    return dy, initial(tuple(None if d is None else
                             shared.check_state(f"d_final[{k}] ({states[k]})", d, B, dims[k], dtype, as_device, None)
                             for k, d in enumerate(d_final)), B, dims, dtype)


def initial(arrays, B, dims, dtype, values=()):
    """state0 or d_final for the kernels: for each one not given a cached read-only array (B, dims[k])
    of zeros, or of values[k] (a state's INITIAL value, checks.initial_value)."""
    dims = [dims] * len(arrays) if isinstance(dims, int) else list(dims)
    values = list(values) + [0] * (len(arrays) - len(values))
    return tuple((workspace.zeros((B, dims[k]), dtype) if not values[k] else
                  workspace.filled((B, dims[k]), dtype, values[k])) if a is None else a
                 for k, a in enumerate(arrays))
