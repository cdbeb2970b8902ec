"""The GEMM dispatch of the CUDA backend (blas.py), with no GPU: which library gemm.gemm() uses
and why, and the torch call it makes (checked on CPU tensors against numpy). On a GPU,
benchmarks/gpu_check.py --stage time measures cuBLAS and the tiled kernel side by side."""
import types

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from rnngen.backends.cuda import blas, config  # noqa: E402


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(config, "SIMULATOR", False)
    monkeypatch.setattr(blas, "_CHOSEN", {})
    monkeypatch.setattr(config, "GEMM_CHOICE", {})
    return monkeypatch


def test_picks_the_tiled_kernel_without_cuda_torch_or_cupy(fresh):
    """Here torch is the CPU build and cupy is not installed: the tiled kernel, saying why."""
    pytest.importorskip("torch")
    fresh.setattr(blas, "PROBES", dict(blas.PROBES, cupy=lambda: (None, "cupy is not installed")))
    library, module, reason = blas.choose()
    assert library == "tiled" and module is None
    assert "has no CUDA device" in reason and "cupy is not installed" in reason
    assert config.GEMM_CHOICE == {"library": "tiled", "reason": reason, "asked": "auto"}


def test_picks_torch_then_cupy_when_they_have_a_device(fresh):
    fake_torch, fake_cupy = types.SimpleNamespace(name="torch"), types.SimpleNamespace(name="cupy")
    fresh.setattr(blas, "PROBES", {"torch": lambda: (fake_torch, "cuBLAS through torch"),
                                   "cupy": lambda: (fake_cupy, "cuBLAS through cupy")})
    assert blas.choose()[:2] == ("torch", fake_torch)
    fresh.setattr(config, "GEMM_LIBRARY", "cupy")
    assert blas.choose()[:2] == ("cupy", fake_cupy)
    fresh.setattr(config, "GEMM_LIBRARY", "tiled")
    assert blas.choose()[0] == "tiled"
    fresh.setattr(blas, "PROBES", {"torch": lambda: (None, "torch is not installed"),
                                   "cupy": lambda: (fake_cupy, "cuBLAS through cupy")})
    fresh.setattr(blas, "_CHOSEN", {})
    fresh.setattr(config, "GEMM_LIBRARY", "auto")
    assert blas.choose()[:2] == ("cupy", fake_cupy)


def test_the_simulator_and_bad_knobs(fresh):
    fresh.setattr(config, "SIMULATOR", True)
    assert blas.choose()[0] == "tiled"
    fresh.setattr(config, "GEMM_LIBRARY", "cublas")
    with pytest.raises(ValueError, match="GEMM_LIBRARY must be"):
        blas.choose()


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_torch_call_writes_into_the_output(trans_a, trans_b, accumulate):
    """blas.torch_mm on CPU tensors: op(a) @ op(b) written (or added) into c's own storage."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    M, N, K = 7, 5, 3
    a = rng.standard_normal((K, M) if trans_a else (M, K))
    b = rng.standard_normal((N, K) if trans_b else (K, N))
    c = rng.standard_normal((M, N))
    want = (c if accumulate else 0) + (a.T if trans_a else a) @ (b.T if trans_b else b)
    tc = torch.from_numpy(c)
    ptr = tc.data_ptr()
    torch_mm = blas.torch_mm(torch, torch.from_numpy(a), torch.from_numpy(b), tc, trans_a, trans_b, accumulate)
    assert torch_mm.data_ptr() == ptr
    np.testing.assert_allclose(c, want, rtol=1e-12, atol=1e-12)       # c itself holds the result


def test_tf32_is_off_for_the_call_and_put_back():
    torch = pytest.importorskip("torch")
    m = torch.backends.cuda.matmul
    attr = "fp32_precision" if hasattr(m, "fp32_precision") else "allow_tf32"
    before = getattr(m, attr)
    try:
        setattr(m, attr, "tf32" if attr == "fp32_precision" else True)
        with blas._ieee_fp32(torch):
            assert getattr(m, attr) in ("ieee", False)
        assert getattr(m, attr) in ("tf32", True)
    finally:
        setattr(m, attr, before)


def test_gemm_dispatches_to_the_library(monkeypatch):
    """gemm.gemm() hands the arrays to blas.run() when a library is chosen, and counts a launch."""
    from rnngen.backends.cuda import gemm
    calls = []
    monkeypatch.setattr(blas, "choose", lambda: ("torch", "module", "why"))
    monkeypatch.setattr(blas, "run", lambda *args: calls.append(args) or args[4])
    before = config.COUNTS["launch gemm"]
    arr = lambda *shape: types.SimpleNamespace(shape=shape, dtype=np.float32)   # noqa: E731
    a, b, out = arr(6, 4), arr(5, 4), arr(6, 5)
    assert gemm.gemm(a, b, out, trans_b=True) is out
    assert calls == [("torch", "module", a, b, out, False, True, False)]
    assert config.COUNTS["launch gemm"] == before + 1


def test_run_through_torch_shares_the_arrays_and_uses_the_default_stream():
    """blas.run("torch", ...) with a stand-in torch whose tensors are CPU tensors over the same
    numpy memory: as_tensor asked for device "cuda" on each array, the product written into the
    caller's array, TF32 off during the call, and torch's default stream (where numba launches)
    entered when torch's current stream is another one."""
    import contextlib
    torch = pytest.importorskip("torch")
    seen = {"devices": [], "streams": [], "precision": []}
    matmul = types.SimpleNamespace(fp32_precision="tf32")

    def as_tensor(v, device):
        seen["devices"].append(device)
        return torch.from_numpy(v)

    def mm(a, b, out):
        seen["precision"].append(matmul.fp32_precision)
        return torch.mm(a, b, out=out)

    @contextlib.contextmanager
    def stream(s):
        seen["streams"].append(s)
        yield

    fake = types.SimpleNamespace(
        as_tensor=as_tensor, mm=mm, backends=types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=matmul)),
        cuda=types.SimpleNamespace(default_stream=lambda: "legacy", current_stream=lambda: "side", stream=stream))
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    out = np.zeros((4, 5))
    assert blas.run("torch", fake, a, b, out, False, True, False) is out
    np.testing.assert_allclose(out, a @ b.T, rtol=1e-12)
    assert seen == {"devices": ["cuda"] * 3, "streams": ["legacy"], "precision": ["ieee"]}
    assert matmul.fp32_precision == "tf32"
