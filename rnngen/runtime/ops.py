"""The array operations between layers, on numpy arrays (HostOps) or numba device arrays
(CudaOps), and the one place where what a user passes (numpy, a torch tensor, a device array)
becomes an array on the network's device, checked."""
import functools

import numpy as np

from ..backends.checks import CheckedLengths, check_finite, host_view, is_torch_tensor
from ..backends.cpu.checks import host_array
from .device import is_device_array


def require_cuda(needs="device='cuda' needs",
                 advice="Use device='cpu' (or NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels in numba's "
                        "simulator, very slowly)"):
    """numba.cuda, once it is known to work here; a RuntimeError naming what is missing otherwise.
    `needs` starts the message (who needs it), `advice` ends it."""
    try:
        from ..backends.cuda.compat import import_cuda
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


def to_numpy(name, value):
    """A host numpy array of an array-like, a torch tensor or a device array (copied to the host)."""
    if hasattr(value, "copy_to_host") and hasattr(value, "shape"):
        value = value.copy_to_host()
    elif hasattr(value, "__cuda_array_interface__"):
        from ..backends.cuda.compat import import_cuda
        value = import_cuda().as_cuda_array(value).copy_to_host()
    try:
        return np.asarray(host_view(value))
    except Exception as exc:
        raise ValueError(f"{name} must be an array: {exc}") from None


@functools.lru_cache(maxsize=8)
def full_lengths(B, T):
    """The CheckedLengths of B sequences of T steps (lengths=None), made once per (B, T) of the last
    few calls' (the kernels only read lengths): np.full costs a course-size call ~0.7 us."""
    return CheckedLengths(None, B, T)


class HostOps:
    """numpy arrays: what passes between layers, and the conversion of inputs."""
    name = "cpu"

    def __init__(self, dtype):
        self.dtype = dtype

    def input(self, name, value, ndim, validate=None, network_dtype=False):
        """`value` (numpy, a torch tensor) checked as an array of this device: `ndim` dimensions,
        this dtype, then `validate(array) -> array` (shapes, batch-first), then no NaN or inf.
        network_dtype: a wrong dtype is named as the network's (else as x's and the parameters')."""
        if type(value) is not np.ndarray:
            if is_device_array(value):
                raise ValueError(f"{name} is a device (GPU) array but this RNN runs on the CPU; create it "
                                 f"with device='cuda' or call .to('cuda'), or pass a host array")
            value = host_view(value)
        if network_dtype:
            arr = host_array(name, value, ndim)
            if arr.dtype != self.dtype:
                raise ValueError(f"{name} must have dtype {self.dtype} (the network's dtype), got {arr.dtype}")
        else:
            arr = host_array(name, value, ndim, self.dtype)
        if validate is not None:
            arr = validate(arr)
        check_finite(name, arr)
        return self.from_host(arr)

    def lengths(self, lengths, B, T):
        """lengths checked once for every layer and direction of a call."""
        if is_device_array(lengths):
            raise ValueError("lengths is a device (GPU) array but this RNN runs on the CPU; create it "
                             "with device='cuda' or call .to('cuda'), or pass a host array")
        return full_lengths(B, T) if lengths is None else CheckedLengths(lengths, B, T)

    def step_lengths(self, B):
        """The lengths of one step() (1 for each of B rows)."""
        return full_lengths(B, 1)

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

    def to_host(self, a):
        return a.copy()


class CudaOps(HostOps):
    """The same on numba device arrays (the CUDA backend's elementwise kernels); inputs may be device arrays
    (no copy, NaN not checked) or host ones (checked on the host, copied over once)."""
    name = "cuda"

    def __init__(self, dtype):
        super().__init__(dtype)
        self.cuda = require_cuda()
        from ..backends.cuda import checks, config, elementwise
        self.checks, self.config, self.ew = checks, config, elementwise
        self._step_lengths = {}

    def input(self, name, value, ndim, validate=None, network_dtype=False):
        if not is_device_array(value):
            return super().input(name, value, ndim, validate, network_dtype)
        arr = self.checks.as_device(name, value, ndim, self.dtype)
        return arr if validate is None else validate(arr)

    def lengths(self, lengths, B, T):
        if is_device_array(lengths) and not is_torch_tensor(lengths):
            lengths = to_numpy("lengths", lengths)
        checked = CheckedLengths(lengths, B, T)
        checked.device = self.cuda.to_device(checked.host)
        return checked

    def step_lengths(self, B):
        """One device copy per batch size (and CUDA context), not an upload every step()."""
        key = (B, self.config.context_id())
        if key not in self._step_lengths:
            self._step_lengths[key] = self.lengths(np.ones(B, np.int64), B, 1)
        return self._step_lengths[key]

    def empty(self, shape):
        return self.ew.empty(shape, self.dtype)

    def zeros(self, shape):
        return self.ew.zeros(shape, self.dtype)

    def put(self, dst, index, src):
        self.ew.copy(src, dst[index])

    def concat(self, parts):
        return self.ew.concat_last(parts)

    def take(self, src, offset, width):
        return self.ew.take_last(src, offset, width)

    def multiply(self, a, b):
        return self.ew.multiply(a, b)

    def add(self, a, b):
        return self.ew.add(a, b)

    def swap01(self, a):
        return self.ew.swap01(a)

    def from_host(self, a):
        return self.cuda.to_device(np.ascontiguousarray(a))

    def to_host(self, a):
        return a.copy_to_host()


def ops_for(device, dtype):
    return CudaOps(dtype) if device == "cuda" else HostOps(dtype)
