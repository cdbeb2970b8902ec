"""rnngen.torch's CUDA crossing under the CUDA simulator, against the same module on the CPU.

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/torch/test_torch_cuda_bridge.py does). This
machine has neither a GPU nor a CUDA build of torch, so three stand-ins fill the gaps, each as thin
as possible, and everything else is the real code path:

- CPU tensors export a `__cuda_array_interface__` (their host pointer), as CUDA tensors do;
- the simulator, which has no `cuda.as_cuda_array`, gets one that views that pointer (no copy), and
  its device arrays export `__cuda_array_interface__` too;
- `torch.as_tensor` of a simulator array wraps its memory (no copy) as a CPU tensor, and
  `torch.cuda`'s device and stream functions are fakes that log what the bridge asks of them.

The bridge's CUDA crossing (rnngen/runtime/tensors.py) (to_kernel, run with its stream ordering, to_tensor with its no-copy
check) is then put in place of the CPU one, so that `rnngen.torch.RNN` hands tensors to the real
generated modules, which route them to the generated CUDA kernels (run by the simulator), and the
results come back through autograd. Prints one JSON line per case.
"""
import ctypes
import json
import math
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

import torch  # noqa: E402
from numba import cuda  # noqa: E402
from numba.cuda.simulator.cudadrv import devicearray as simda  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_sequence  # noqa: E402

import rnngen.torch as bt  # noqa: E402
import rnngen.runtime.tensors as tensors  # noqa: E402
from rnngen import cuda_runtime as rt  # noqa: E402

# Uninitialised device memory is NaN here, so an element the kernels leave unwritten shows up.
rt.empty = lambda shape, dtype: cuda.to_device(np.full(shape, np.nan, dtype))

# -- stand-ins -------------------------------------------------------------------------------
GPU = [False]      # True while the "GPU" run is on: only then do CPU tensors pose as CUDA ones
LOG = []           # what the bridge asked of torch.cuda and of the generated modules, in order
HOST_COPIES = {"tensor.numpy": 0, "tensor.cpu": 0, "device.copy_to_host": 0}
_real_cai = torch.Tensor.__cuda_array_interface__


def _tensor_cai(self):
    if not GPU[0]:
        return _real_cai.__get__(self)
    if self.requires_grad:   # as torch does
        raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")
    itemsize = self.element_size()
    return dict(typestr=np.dtype(str(self.dtype).replace("torch.", "")).str, shape=tuple(self.shape),
                strides=None if self.is_contiguous() else tuple(s * itemsize for s in self.stride()),
                data=(self.data_ptr(), False), version=2)


torch.Tensor.__cuda_array_interface__ = property(_tensor_cai)


def _view(desc):
    """A numpy view of the memory a __cuda_array_interface__ describes (C-contiguous only)."""
    assert desc.get("strides") is None, "the bridge must pass C-contiguous arrays"
    dtype, shape = np.dtype(desc["typestr"]), tuple(desc["shape"])
    n = math.prod(shape) * dtype.itemsize
    buf = (ctypes.c_char * max(n, 1)).from_address(desc["data"][0])
    return np.frombuffer(buf, dtype, count=math.prod(shape)).reshape(shape)


def _as_cuda_array(obj, sync=True):
    arr = simda.FakeCUDAArray(_view(obj.__cuda_array_interface__))
    arr._owner = obj                     # as numba's MemoryPointer(owner=obj)
    LOG.append("as_cuda_array")
    return arr


cuda.as_cuda_array = _as_cuda_array
simda.FakeCUDAArray.__cuda_array_interface__ = property(
    lambda self: dict(typestr=self._ary.dtype.str, shape=tuple(self._ary.shape),
                      strides=None if self._ary.flags.c_contiguous else self._ary.strides,
                      data=(self._ary.ctypes.data, False), version=2))

_real_as_tensor = torch.as_tensor


def _as_tensor(data, *args, **kwargs):
    if GPU[0] and isinstance(data, simda.FakeCUDAArray):
        assert kwargs.get("device") == torch.device("cuda", 0), kwargs
        return torch.from_numpy(data._ary)        # a view of the "device" memory
    return _real_as_tensor(data, *args, **kwargs)


torch.as_tensor = _as_tensor

for name, cls, key in (("numpy", torch.Tensor, "tensor.numpy"), ("cpu", torch.Tensor, "tensor.cpu"),
                       ("copy_to_host", simda.FakeCUDAArray, "device.copy_to_host")):
    def counted(self, *args, _real=getattr(cls, name), _key=key, **kwargs):
        # a float tensor made host-side (the lengths of a packed sequence are host data already)
        if GPU[0] and (_key != "tensor.numpy" or self.dtype.is_floating_point):
            HOST_COPIES[_key] += 1
        return _real(self, *args, **kwargs)
    setattr(cls, name, counted)


class FakeStream:
    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, FakeStream) and other.name == self.name

    def wait_stream(self, other):
        LOG.append(f"{self.name} waits {other.name}")

    def synchronize(self):
        LOG.append(f"{self.name} synchronize")


CURRENT = ["default"]
torch.cuda.current_device = lambda: 0
torch.cuda.current_stream = lambda device=None: FakeStream(CURRENT[0])
torch.cuda.default_stream = lambda device=None: FakeStream("default")


class Logged:
    """The generated module, logging its forward/backward calls among the stream waits."""

    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        return getattr(self._gen, name)

    def forward(self, *args):
        LOG.append("forward")
        out = self._gen.forward(*args)
        assert getattr(out[2], "device", False), "the generated module did not run on the device"
        return out

    def backward(self, *args):
        LOG.append("backward")
        return self._gen.backward(*args)


# -- the check -----------------------------------------------------------------------------
def run(rnn, packed, hx, gpu):
    """forward + backward of a fixed loss; returns {name: numpy} of outputs and gradients."""
    data = packed.data.detach().clone().requires_grad_()
    hx = tuple(h.detach().clone().requires_grad_() for h in hx)
    rnn.zero_grad(set_to_none=True)
    seq = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    GPU[0] = gpu
    try:
        y, h_n = rnn(seq, hx if len(hx) > 1 else hx[0])
        h_n = h_n if isinstance(h_n, tuple) else (h_n,)
        w = torch.linspace(-1, 1, y.data.shape[1])
        loss = (y.data * w).pow(2).sum() + sum((h * (k + 1)).sum() for k, h in enumerate(h_n))
        loss.backward()
    finally:
        GPU[0] = False
    out = {"y": y.data, "dx": data.grad}
    out.update({f"h_n{k}": h for k, h in enumerate(h_n)})
    out.update({f"dhx{k}": h.grad for k, h in enumerate(hx)})
    out.update({f"d_{n}": p.grad for n, p in rnn.named_parameters()})
    return {k: v.detach().numpy().copy() for k, v in out.items()}


def case(cell, stream):
    torch.manual_seed(0)
    I, H, L = 2, 3, 2
    rnn = bt.RNN(cell, I, H, num_layers=L, bidirectional=True)
    packed = pack_sequence([torch.randn(n, I) for n in (2, 3, 1)], enforce_sorted=False)
    hx = tuple(0.5 * torch.randn(2 * L, 3, H) for _ in rnn.states)
    ref = run(rnn, packed, hx, gpu=False)
    rnn.gen = Logged(rnn.gen)
    crossing = tensors.CudaCrossing(torch.device("cuda", 0))
    saved_cpu = tensors._CROSSINGS[torch.device("cpu")]
    tensors._CROSSINGS[torch.device("cpu")] = crossing
    CURRENT[0] = stream
    LOG.clear()
    for k in HOST_COPIES:
        HOST_COPIES[k] = 0
    try:
        got = run(rnn, packed, hx, gpu=True)
    finally:
        tensors._CROSSINGS[torch.device("cpu")] = saved_cpu
        CURRENT[0] = "default"
    errors = {k: float(np.max(np.abs(got[k] - v) / np.maximum(1.0, np.abs(v)))) if got[k].shape == v.shape
              else float("inf") for k, v in ref.items()}
    scale = {k: float(np.max(np.abs(v))) for k, v in ref.items()}
    calls = [e for e in LOG if e != "as_cuda_array"]
    return dict(cell=cell, stream=stream, errors=errors, scale=scale, host_copies=dict(HOST_COPIES),
                as_cuda_array=LOG.count("as_cuda_array"), calls=calls, layers=L * 2)


if __name__ == "__main__":
    cells = sys.argv[1:] or ["lstm", "gru_classic"]
    for cell in cells:
        for stream in ("default", "side"):
            if stream == "side" and cell != cells[0]:
                continue
            try:
                row = case(cell, stream)
            except Exception as exc:  # report, do not hide, the failure
                import traceback
                row = dict(cell=cell, stream=stream, error=traceback.format_exc()[-3000:])
            print(json.dumps(row), flush=True)
