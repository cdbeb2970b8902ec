"""rnngen.torch with CUDA tensors, checked without a GPU.

Two levels: in this process, fakes for a CUDA tensor's interface check the dispatch (tensors, not
numpy arrays, reach the generated module; nothing is copied to the host; streams are ordered;
errors name what is missing). In a subprocess under the CUDA simulator
(cuda_bridge_sim_check.py next to this file, about 20 s) the real generated CUDA kernels run behind the bridge
and match the CPU bridge. What only a GPU can check (a real torch CUDA tensor handed to numba-cuda
and back, cuDNN parity) is in benchmarks/gpu_check.py (stage correct).
"""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnngen.torch as bt  # noqa: E402
import rnngen.runtime.tensors as tensors  # noqa: E402
from rnngen.runtime import device as rdevice  # noqa: E402
from helpers import simulator_rows  # noqa: E402

CUDA0 = torch.device("cuda", 0)


class FakeDeviceArray:
    """What the CUDA kernels return: memory behind __cuda_array_interface__ (host memory here)."""

    def __init__(self, array):
        self.host = np.ascontiguousarray(array)

    @property
    def shape(self):
        return self.host.shape

    @property
    def __cuda_array_interface__(self):
        return dict(typestr=self.host.dtype.str, shape=self.host.shape, strides=None,
                    data=(self.host.ctypes.data, False), version=2)


class FakeStream:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def __eq__(self, other):
        return isinstance(other, FakeStream) and other.name == self.name

    def wait_stream(self, other):
        self.log.append(f"{self.name} waits {other.name}")

    def synchronize(self):
        self.log.append(f"{self.name} synchronize")


@pytest.fixture
def fake_gpu(monkeypatch):
    """CPU tensors pose as CUDA tensors on cuda:0: they export __cuda_array_interface__ (unless they
    require grad, as torch's do), torch.as_tensor wraps a FakeDeviceArray's memory, torch.cuda's
    streams log, and `.numpy()`/`.cpu()` of a float tensor fail the test."""
    log = []
    state = {"current": "default", "device": 0}

    def cai(self):
        if self.requires_grad:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")
        assert self.is_contiguous()
        return dict(typestr=np.dtype(str(self.dtype)[6:]).str, shape=tuple(self.shape),
                    strides=None, data=(self.data_ptr(), False), version=2)

    real_numpy, real_as_tensor = torch.Tensor.numpy, torch.as_tensor

    def no_host(name):
        def f(self, *a, **k):
            if self.dtype.is_floating_point:
                raise AssertionError(f"tensor.{name}() called on the CUDA path")
            return (real_numpy if name == "numpy" else lambda t: t)(self, *a, **k)
        return f

    def as_tensor(data, *args, **kwargs):
        if isinstance(data, FakeDeviceArray):
            assert kwargs.get("device") == CUDA0
            log.append("as_tensor")
            return torch.from_numpy(data.host)
        return real_as_tensor(data, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "__cuda_array_interface__", property(cai))
    monkeypatch.setattr(torch.Tensor, "numpy", no_host("numpy"))
    monkeypatch.setattr(torch.Tensor, "cpu", no_host("cpu"))
    monkeypatch.setattr(torch, "as_tensor", as_tensor)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: state["device"])
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: FakeStream(state["current"], log))
    monkeypatch.setattr(torch.cuda, "default_stream", lambda d=None: FakeStream("default", log))
    monkeypatch.setattr(tensors, "_require_cuda", lambda device: "numba.cuda")
    crossing = tensors.CudaCrossing(CUDA0)
    crossing.real_numpy = real_numpy
    monkeypatch.setitem(tensors._CROSSINGS, torch.device("cpu"), crossing)   # CPU tensors go this way
    return crossing, log, state


class DeviceGen:
    """A generated module's device path: checks what it is given (objects that the real module
    routes to its CUDA kernels, C-contiguous, never numpy), computes with the CPU module on views
    of their memory and returns FakeDeviceArrays."""

    def __init__(self, gen, crossing, log):
        self.gen, self.crossing, self.log = gen, crossing, log
        self.STATES, self.PARAMS, self.NAME = gen.STATES, gen.PARAMS, gen.NAME

    def _host(self, a):
        assert isinstance(a, torch.Tensor) and not isinstance(a, np.ndarray), type(a)
        assert rdevice.is_device_array(a), "the generated module would not route this to CUDA"
        a.__cuda_array_interface__        # noqa: B018 -- exports (detached, contiguous)
        return self.crossing.real_numpy(a)

    def forward(self, x, params, state0, lengths, reverse):
        self.log.append("forward")
        assert lengths is None or isinstance(lengths, np.ndarray)     # lengths stay host-side
        y, final, saved = self.gen.forward(
            self._host(x), {k: self._host(v) for k, v in params.items()},
            None if state0 is None else tuple(self._host(s) for s in state0), lengths, reverse)
        return FakeDeviceArray(y), tuple(FakeDeviceArray(s) for s in final), saved

    def backward(self, dy, d_final, saved):
        self.log.append("backward")
        dx, d0, dp = self.gen.backward(None if dy is None else self._host(dy),
                                       tuple(None if d is None else self._host(d) for d in d_final),
                                       saved)
        return (FakeDeviceArray(dx), tuple(FakeDeviceArray(d) for d in d0),
                {k: FakeDeviceArray(v) for k, v in dp.items()})


def _run(rnn, x, hx):
    x = x.detach().clone().requires_grad_()
    hx = tuple(h.detach().clone().requires_grad_() for h in hx)
    rnn.zero_grad(set_to_none=True)
    y, h_n = rnn(x, hx)
    loss = (y * torch.linspace(-1, 1, y.shape[-1])).pow(2).sum() + h_n[0].sum() + 2 * h_n[1].sum()
    loss.backward()
    out = {"y": y, "dx": x.grad, "h_n": h_n[0], "c_n": h_n[1], "dh0": hx[0].grad, "dc0": hx[1].grad}
    out.update({n: p.grad for n, p in rnn.named_parameters()})
    return {k: v.detach().clone() for k, v in out.items()}


@pytest.mark.parametrize("stream", ["default", "side"])
def test_cuda_path_passes_tensors_and_wraps_results(fake_gpu, monkeypatch, stream):
    """2-layer bidirectional LSTM with hx, batch_first: the generated module gets the tensors
    themselves (no numpy, no .cpu()), results come back through torch.as_tensor, and outputs and
    gradients equal the CPU bridge's; on a side stream each call is fenced by waits both ways."""
    crossing, log, state = fake_gpu
    torch.manual_seed(0)
    rnn = bt.RNN("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 5, 3)
    hx = tuple(torch.randn(4, 2, 4) for _ in range(2))
    with monkeypatch.context() as m:       # the reference: the ordinary CPU crossing
        m.setitem(tensors._CROSSINGS, torch.device("cpu"), tensors.HostCrossing())
        m.setattr(torch.Tensor, "numpy", crossing.real_numpy)
        ref = _run(rnn, x, hx)
    rnn.gen = DeviceGen(rnn.gen, crossing, log)
    state["current"] = stream
    got = _run(rnn, x, hx)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=1e-6, atol=1e-6, msg=k)
    calls = [e for e in log if e != "as_tensor"]
    n = 4                                  # layers * directions
    if stream == "default":
        assert calls == ["forward"] * n + ["backward"] * n
    else:
        fence = ["default waits side"], ["side waits default"]
        assert calls == sum(([*fence[0], c, *fence[1]] for c in ["forward"] * n + ["backward"] * n), [])
    # forward: y and 2 final states; backward: dx, 2 d_state0, 4 parameters; per layer-direction
    assert log.count("as_tensor") == n * (3 + 3 + 4)


def test_run_switches_device_and_per_thread_stream_synchronizes(fake_gpu, monkeypatch):
    crossing, log, state = fake_gpu
    entered = []

    class Dev:
        def __init__(self, d):
            self.d = d

        def __enter__(self):
            entered.append(self.d)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "device", Dev)
    state["device"] = 1                     # torch's current device is not the tensors' one
    assert crossing.run(lambda a: a + 1, 1) == 2
    assert entered == [CUDA0]
    state["device"] = 0
    synced = []
    crossing.per_thread = True
    crossing.cuda = type("C", (), {"synchronize": staticmethod(lambda: synced.append(1))})
    state["current"] = "side"
    assert crossing.run(lambda: log.append("kernels") or 7) == 7
    assert log == ["side synchronize", "kernels"] and synced == [1]
    assert entered == [CUDA0]


def test_run_refuses_a_gpu_numba_is_not_on(fake_gpu):
    crossing, log, _ = fake_gpu

    class Numba:
        def __init__(self, dev):
            self.dev = dev

        def current_context(self):
            return type("Ctx", (), {"device": type("Dev", (), {"id": self.dev})()})()

    crossing.cuda = Numba(0)
    assert crossing.run(lambda: 3) == 3
    crossing.cuda = Numba(1)
    with pytest.raises(RuntimeError, match="numba-cuda works on GPU 1 in this thread"):
        crossing.run(lambda: log.append("launched"))
    assert "launched" not in log


def test_to_tensor_refuses_a_copy(fake_gpu, monkeypatch):
    crossing, _, _ = fake_gpu
    a = FakeDeviceArray(np.ones((2, 3), np.float32))
    t = crossing.to_tensor(a)
    assert t.data_ptr() == a.host.ctypes.data
    monkeypatch.setattr(torch, "as_tensor", lambda data, device=None: torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="another GPU"):
        crossing.to_tensor(a)


def test_to_kernel_detaches_and_makes_contiguous():
    x = torch.randn(3, 4, requires_grad=True)
    assert tensors.CudaCrossing.to_kernel(x).data_ptr() == x.data_ptr()
    assert not tensors.CudaCrossing.to_kernel(x).requires_grad
    xt = x.detach().t()
    k = tensors.CudaCrossing.to_kernel(xt)
    assert k.is_contiguous() and torch.equal(k, xt)


def test_mixed_devices_and_missing_backend(monkeypatch):
    cpu, meta = torch.zeros(1), torch.zeros(1, device="meta")
    with pytest.raises(RuntimeError, match="must be on one device, got tensors on cpu, meta"):
        tensors.crossing(cpu, None, meta)
    assert isinstance(tensors.crossing(cpu, None, cpu), tensors.HostCrossing)
    # this machine: numba-cuda imports and sees no GPU
    monkeypatch.delitem(tensors._CROSSINGS, CUDA0, raising=False)
    try:
        from numba import cuda
        gpu = cuda.is_available()
    except Exception:
        gpu = None
    if gpu is False:
        with pytest.raises(RuntimeError, match="tensors on cuda:0 need an NVIDIA GPU"):
            tensors.CudaCrossing(CUDA0)
    # numba-cuda not installed
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    with pytest.raises(RuntimeError, match=r"need rnngen's CUDA backend, numba-cuda \(pip install"):
        tensors.CudaCrossing(CUDA0)


def test_device_argument_and_from_torch_keep_the_device():
    rnn = bt.RNN("gru", 3, 4, device="meta")
    assert {p.device.type for p in rnn.parameters()} == {"meta"}
    ref = torch.nn.LSTM(3, 4, num_layers=2, device="meta")
    out = bt.from_torch(ref)
    assert {p.device.type for p in out.parameters()} == {"meta"}
    with pytest.raises(RuntimeError, match="one device"):
        out(torch.zeros(2, 1, 3))


@pytest.fixture(scope="module")
def sim_rows():
    pytest.importorskip("numba.cuda")
    return simulator_rows("torch/cuda_bridge_sim_check.py", ("cell", "stream"))


@pytest.mark.parametrize("cell,stream", [("lstm", "default"), ("lstm", "side"),
                                         ("gru_classic", "default")])
def test_simulated_cuda_kernels_behind_the_bridge_match_cpu(sim_rows, cell, stream):
    """Packed unsorted sequences, hx, 2 layers bidirectional, float32: the bridge's CUDA crossing
    hands tensors to the generated CUDA kernels (numba simulator) through
    __cuda_array_interface__, wraps their results without copies, and matches the CPU bridge."""
    row = sim_rows[cell, stream]
    assert "error" not in row, row["error"]
    bad = {k: v for k, v in row["errors"].items() if not v <= 1e-5}
    assert not bad, f"the CUDA path differs from the CPU path: {bad}"
    assert all(s > 0 for s in row["scale"].values()), row["scale"]
    assert row["host_copies"] == {"tensor.numpy": 0, "tensor.cpu": 0, "device.copy_to_host": 0}
    n = row["layers"]
    calls = ["forward"] * n + ["backward"] * n
    if stream == "side":
        calls = sum((["default waits side", c, "side waits default"] for c in calls), [])
    assert row["calls"] == calls
    assert row["as_cuda_array"] > 0
