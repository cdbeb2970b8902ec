"""rnngen.cuda_compat: the one import of numba.cuda (the numpy 2.5 shim), and the kernel
attributes set through the driver (the > 48 KiB shared-memory opt-in, the carveout).

numpy 2.5 removed np.row_stack, and numba-cuda 0.30.4 registers an overload of it when it compiles
its first kernel: every compile then fails. Here numpy 2.4 is installed, so each test deletes
np.row_stack in a fresh process before anything imports numba.cuda, as numpy 2.5 would have it.
That the shim is enough on numpy 2.5.2 itself, on a GPU, is benchmarks/gpu_check.py's preflight
(its "versions" case records the numpy version and the shim).
"""
import os
import re
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from rnngen import cuda_compat  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NO_ROW_STACK = "import numpy as np\ndel np.row_stack\nassert not hasattr(np, 'row_stack')\n"
# compile_ptx of a kernel that indexes arrays: numba-cuda then loads its numpy overloads
# (np.row_stack among them); no GPU needed
COMPILE = ("import numba\n"
           "def kernel(a, b):\n"
           "    a[cuda.grid(1)] = b[cuda.grid(1), 0]\n"
           "ptx, _ = cuda.compile_ptx(kernel, (numba.float32[::1], numba.float32[:, ::1]), cc=(9, 0))\n"
           "assert '.entry' in ptx\n")


def _python(code, simulator=False):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_without_the_shim_numpy_25_breaks_every_compile():
    """The control: numba.cuda imported directly, with numpy as 2.5 has it, cannot compile."""
    out = _python(NO_ROW_STACK + "from numba import cuda\n" + COMPILE)
    assert out.returncode != 0 and "row_stack" in out.stderr, out.stderr[-2000:]


def test_import_cuda_compiles_under_numpy_without_row_stack():
    out = _python(NO_ROW_STACK + "from rnngen.cuda_compat import import_cuda, NUMPY_SHIM\ncuda = import_cuda()\n"
                  + COMPILE + "assert NUMPY_SHIM == ['np.row_stack'], NUMPY_SHIM\nprint('ok')\n")
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("entry", [
    "import rnngen\nnet = rnngen.RNN('rnn_tanh', 2, 3, device='cuda')\n"
    "y, _ = net.forward(np.ones((2, 1, 2), np.float32))\nassert y.copy_to_host().shape == (2, 1, 3)\n",
    "import rnngen.torch as bt\nimport rnngen.runtime.tensors as tensors\ntensors._require_cuda('cuda:0')\n",
    "import rnngen.generated._cuda_lstm as m\nassert m.cuda is sys.modules['numba.cuda']\n",
    "from rnngen import cuda_runtime\n",
], ids=["RNN(device='cuda')", "torch bridge", "generated CUDA module", "cuda_runtime"])
def test_every_cuda_entry_applies_the_shim_first(entry):
    """Each way into the CUDA path, in a fresh process under the simulator (numpy without
    row_stack, numba.cuda not yet imported): numba.cuda is imported only after the shim."""
    code = (NO_ROW_STACK + "import sys\nassert 'numba.cuda' not in sys.modules\n" + entry
            + "from rnngen import cuda_compat\n"
              "assert 'numba.cuda' in sys.modules and np.row_stack is cuda_compat._row_stack\nprint('ok')\n")
    out = _python(code, simulator=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_the_shim_is_vstack():
    a, b = np.ones((2, 3)), np.zeros((1, 3))
    assert np.array_equal(cuda_compat._row_stack((a, b)), np.vstack((a, b)))


def test_nothing_imports_numba_cuda_around_cuda_compat():
    """No rnngen module, template or generated module imports numba.cuda itself (the shim would
    be skipped); they use rnngen.cuda_compat.import_cuda()."""
    direct = re.compile(r"^\s*(from numba import cuda\b|import numba\.cuda\b)", re.M)
    offenders = []
    for folder in ("rnngen", "generated"):          # every package module and backend template
        for root, _, names in os.walk(os.path.join(REPO, folder)):
            for name in names:
                if name.endswith((".py", ".j2")) and name not in ("compat.py", "cuda_compat.py"):
                    with open(os.path.join(root, name)) as f:
                        if direct.search(f.read()):
                            offenders.append(os.path.relpath(os.path.join(root, name), REPO))
    assert not offenders, f"import numba.cuda through rnngen.cuda_compat.import_cuda(): {offenders}"


# -- kernel attributes (what needs a GPU to confirm: benchmarks/gpu_check.py --stage preflight) ----
class _Driver:
    """Stands in for numba-cuda's driver object: records calls, keeps attributes per handle."""

    def __init__(self, grant=None):
        self.calls, self.values, self.grant = [], {}, grant

    def cuKernelSetAttribute(self, attr, value, handle, device):
        self.calls.append(("cuKernelSetAttribute", attr, value, device))
        self.values[attr] = value if self.grant is None else min(value, self.grant)

    def cuKernelGetAttribute(self, attr, handle, device):
        return self.values.get(attr, 0)

    def cuFuncSetAttribute(self, handle, attr, value):
        self.calls.append(("cuFuncSetAttribute", attr, value))
        self.values[attr] = value if self.grant is None else min(value, self.grant)

    def cuFuncGetAttribute(self, attr, handle):
        return self.values.get(attr, 0)


_BINDING = types.SimpleNamespace(CUfunction_attribute=types.SimpleNamespace(
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES="MAX_DYN", CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT="CARVE"))


def _function(handle_type):
    handle = type(handle_type, (), {})()
    return types.SimpleNamespace(handle=handle, device=types.SimpleNamespace(id=0),
                                 attrs=types.SimpleNamespace(shared=0, maxthreads=1024))


@pytest.mark.parametrize("handle_type, call", [("CUkernel", "cuKernelSetAttribute"),
                                               ("CUfunction", "cuFuncSetAttribute")])
def test_the_opt_in_uses_the_api_of_the_handle_and_reads_it_back(monkeypatch, handle_type, call):
    """numba-cuda >= 0.2x loads kernels through the library API (a CUkernel: cuKernelSetAttribute
    with the device); older ones give a CUfunction (cuFuncSetAttribute)."""
    driver = _Driver()
    monkeypatch.setattr(cuda_compat, "_driver_api", lambda: (driver, _BINDING))
    assert cuda_compat.allow_dynamic_shared(_function(handle_type), 131200) == 131200
    assert driver.calls[0][0] == call and driver.calls[0][1:3] == ("MAX_DYN", 131200)


def test_an_opt_in_the_driver_does_not_grant_is_an_error(monkeypatch):
    driver = _Driver(grant=48 * 1024)
    monkeypatch.setattr(cuda_compat, "_driver_api", lambda: (driver, _BINDING))
    with pytest.raises(cuda_compat.KernelAttributeError, match="49152 bytes .* after asking for 131200"):
        cuda_compat.allow_dynamic_shared(_function("CUkernel"), 131200)


def test_an_unknown_handle_is_an_error(monkeypatch):
    monkeypatch.setattr(cuda_compat, "_driver_api", lambda: (_Driver(), _BINDING))
    with pytest.raises(cuda_compat.KernelAttributeError, match="unknown kernel handle type int"):
        cuda_compat.set_function_attribute(types.SimpleNamespace(handle=3, device=None), "MAX_DYNAMIC_SHARED_SIZE_BYTES", 1)


def test_carveout_holds_the_blocks_of_an_sm_and_no_more():
    per_sm = 228 * 1024
    assert cuda_compat.carveout_percent(0, 1, per_sm) == 0                  # global weights: all L1
    assert cuda_compat.carveout_percent(131200, 1, per_sm) == 57            # H=1024 LSTM forward slice
    assert cuda_compat.carveout_percent(227 * 1024, 1, per_sm) == 100
    assert cuda_compat.carveout_percent(32 * 1024, 2, per_sm) == 29         # two blocks per SM


@pytest.fixture
def rt(monkeypatch):
    from rnngen import cuda_runtime
    monkeypatch.setattr(cuda_runtime, "SIMULATOR", False)
    monkeypatch.setattr(cuda_runtime, "_device_limits", lambda: (132, 227 * 1024))   # an H100
    monkeypatch.setattr(cuda_runtime, "_warned", set())
    monkeypatch.setattr(cuda_runtime, "SHARED_OPTIN", {})
    return cuda_runtime


def test_a_failed_opt_in_falls_back_loudly_with_the_reason(rt):
    """A kernel handle this rnngen does not know (here: no loaded function at all): the H=1024
    LSTM forward slice (131200 bytes) cannot be opted in; the plan keeps the weights in global
    memory, warns once naming the reason, and says so in its details (what the GPU check reads)."""
    kernel = types.SimpleNamespace(cooperative=True, max_cooperative_grid_blocks=lambda threads, nbytes: 132,
                                   py_func=types.SimpleNamespace(__module__="m", __name__="forward_kernel"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = rt.plan_details(kernel, 1024, 64, 4, 1, False, 4)
    assert not d["on_chip"] and d["shared_bytes"] == 0 and d["carveout"] == 0
    assert "opt-in to 131200 bytes" in d["reason"] and "KernelAttributeError" in d["reason"]
    messages = [str(w.message) for w in caught if "global memory" in str(w.message)]
    assert len(messages) == 1 and d["reason"] in messages[0] and "H=1024" in messages[0]
    assert rt.SHARED_OPTIN["m.forward_kernel"]["granted"] is None
    again = rt.plan_details(kernel, 1024, 64, 4, 1, False, 4)          # the same kernel, planned again
    assert not again["on_chip"] and "opt-in" in again["reason"]


def test_a_granted_opt_in_keeps_the_weights_on_chip(rt, monkeypatch):
    granted = []
    monkeypatch.setattr(rt.cuda_compat, "kernel_function", lambda k: _function("CUkernel"))
    monkeypatch.setattr(rt.cuda_compat, "allow_dynamic_shared", lambda fn, n: granted.append(n) or n)
    monkeypatch.setattr(rt.cuda_compat, "set_function_attribute", lambda fn, name, v: v)
    kernel = types.SimpleNamespace(cooperative=True, max_cooperative_grid_blocks=lambda threads, nbytes: 132,
                                   py_func=types.SimpleNamespace(__module__="m", __name__="forward_kernel"))
    d = rt.plan_details(kernel, 1024, 64, 4, 1, False, 4)
    assert d["on_chip"] and d["shared_bytes"] == 131200 and d["reason"] is None
    assert granted == [131200] and d["carveout"] == 57
    assert rt.SHARED_OPTIN["m.forward_kernel"]["carveout"] == 57
