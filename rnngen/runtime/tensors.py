"""How torch tensors reach the generated kernels, for rnngen.torch (imported only by it: it imports
torch). CPU tensors cross to numpy arrays as views (HostCrossing); CUDA tensors go to the CUDA
kernels as they are, through __cuda_array_interface__ in both directions, ordered with torch's
streams (CudaCrossing); crossing() picks the one for a call's tensors, on one device."""
import contextlib

import torch

from .ops import require_cuda


class HostCrossing:
    """CPU tensors <-> numpy arrays, as views."""
    device = torch.device("cpu")

    @staticmethod
    def to_kernel(t):
        """A numpy view of a CPU tensor (a copy only when it is not C-contiguous)."""
        t = t.detach()
        if not t.is_contiguous():
            t = t.contiguous()
        return t.numpy()

    @staticmethod
    def to_tensor(a):
        return torch.from_numpy(a)

    @staticmethod
    def run(fn, *args):
        return fn(*args)


def _require_cuda(device):
    """numba.cuda, once it is known to see a GPU; a RuntimeError naming what is missing otherwise."""
    return require_cuda(f"rnngen.torch: tensors on {device} need",
                        "Or move the module and its inputs to the CPU with .cpu().")


class CudaCrossing:
    """CUDA tensors <-> the CUDA kernels, through __cuda_array_interface__: no copies."""

    def __init__(self, device):
        self.device = device
        self.cuda = _require_cuda(device)
        try:
            from numba.cuda import config
            self.per_thread = bool(config.CUDA_PER_THREAD_DEFAULT_STREAM)
        except Exception:
            self.per_thread = False

    @staticmethod
    def to_kernel(t):
        """The tensor itself (detached: a tensor that requires grad refuses to export its
        __cuda_array_interface__); copied only when it is not C-contiguous. Never leaves the GPU."""
        t = t.detach()
        if not t.is_contiguous():
            t = t.contiguous()
        return t

    def to_tensor(self, a):
        """A CUDA tensor over the memory of a numba device array, without a copy (torch keeps a
        reference to `a`, so the memory lives as long as the tensor)."""
        out = torch.as_tensor(a, device=self.device)
        ptr = a.__cuda_array_interface__["data"][0]
        if out.numel() and out.data_ptr() != ptr:
            raise RuntimeError(f"rnngen.torch: the CUDA kernels' result is not on {self.device} "
                               "(torch copied it); numba-cuda ran on another GPU")
        return out

    def run(self, fn, *args):
        """fn(*args) (a generated forward/backward) ordered after the work torch queued on its current
        stream, and with torch's later work ordered after it."""
        switch = self.device.index is not None and self.device.index != torch.cuda.current_device()
        with torch.cuda.device(self.device) if switch else contextlib.nullcontext():
            self._check_numba_device()
            current = torch.cuda.current_stream(self.device)
            if self.per_thread:
                current.synchronize()
                out = fn(*args)
                self.cuda.synchronize()
                return out
            default = torch.cuda.default_stream(self.device)
            other = current != default
            if other:
                default.wait_stream(current)
            out = fn(*args)
            if other:
                current.wait_stream(default)
            return out


    def _check_numba_device(self):
        """numba-cuda keeps one CUDA context per thread and cannot switch it: refuse tensors on another
        GPU than the one numba works on here, rather than launch on the wrong one."""
        try:
            numba_device = self.cuda.current_context().device.id
        except Exception:      # the simulator's device has no id; a real failure shows up in fn
            return
        if self.device.index is not None and numba_device != self.device.index:
            raise RuntimeError(
                f"rnngen.torch: the tensors are on {self.device}, but numba-cuda works on GPU "
                f"{numba_device} in this thread and cannot switch (it keeps one CUDA context per "
                "thread). Use one GPU per process (torch.cuda.set_device(rank) before any CUDA "
                "work, as with DistributedDataParallel), or move the module and inputs to "
                f"cuda:{numba_device}.")


_CROSSINGS = {torch.device("cpu"): HostCrossing()}


def crossing(*tensors):
    """How tensors (None ignored) reach the kernels: HostCrossing for CPU, CudaCrossing for one CUDA device."""
    devices = []
    for t in tensors:
        if t is not None and t.device not in devices:
            devices.append(t.device)
    if len(devices) > 1:
        raise RuntimeError(
            "rnngen.torch: the input, the initial states and the parameters must be on one device, "
            f"got tensors on {', '.join(str(d) for d in devices)} (move the module with "
            ".to(device) and the inputs with .to(device))")
    device = devices[0]
    crossing = _CROSSINGS.get(device)
    if crossing is None:
        if device.type != "cuda":
            raise RuntimeError(f"rnngen.torch: got a tensor on {device}; only CPU and CUDA tensors "
                               "are supported")
        crossing = _CROSSINGS[device] = CudaCrossing(device)
    return crossing


DTYPES = (torch.float32, torch.float64)


def check_dtype(what, dtype):
    """The one message for every dtype the kernels do not run (float16, bfloat16, complex, ints)."""
    if dtype not in DTYPES:
        raise ValueError(f"rnngen.torch: {what} has dtype {dtype}; rnngen's kernels run torch.float32 "
                         "and torch.float64 only (convert the module with .float() or .double(), "
                         "and the input likewise)")
