"""The one place rnngen imports numba.cuda, and what differs between numba-cuda versions.

- import_cuda(): numba.cuda, after the numpy 2.5 shim (numba-cuda 0.30.4 registers an overload of
  np.row_stack when it compiles its first kernel, and numpy 2.5 removed np.row_stack: without the
  shim every kernel compile fails with AttributeError). The CUDA backend's run time (this folder),
  the generated _cuda_<cell>.py modules, rnngen.RNN(device="cuda") and the torch bridge all import
  through it.
- environment(): the versions a GPU check records (numba, numba-cuda, numpy, driver, NVVM,
  nvJitLink, the linker).
- kernel attributes set through the driver (the > 48 KiB dynamic shared-memory opt-in, the L1 /
  shared-memory carveout) for the kernel handles numba-cuda gives: a CUkernel (numba-cuda >= 0.2x,
  library API: cuKernelSetAttribute) or a CUfunction (cuFuncSetAttribute), read back after setting.

Importing this module imports nothing from numba.cuda.
"""
import importlib
import math
import os
import re

import numpy as np

NUMPY_SHIM = []          # what import_cuda() patched in numpy (["np.row_stack"] under numpy >= 2.5)


class CudaImportError(ImportError):
    """numba.cuda cannot be imported here; the message names what failed and the fix."""


def _row_stack(tup, *, dtype=None, casting="same_kind"):
    """np.vstack under the name numpy 2.5 removed (installed by rnngen.backends.cuda.compat for numba-cuda)."""
    return np.vstack(tup, dtype=dtype, casting=casting)


def apply_numpy_shim():
    """Give numpy back the names numba-cuda 0.30.4 registers overloads for (np.row_stack, removed in
    numpy 2.5): np.vstack under the old name. Returns the names added (none when numpy has them)."""
    added = []
    if not hasattr(np, "row_stack"):
        np.row_stack = _row_stack
        added.append("np.row_stack")
    NUMPY_SHIM.extend(a for a in added if a not in NUMPY_SHIM)
    return added


def import_cuda():
    """numba.cuda, with the numpy shim applied first. Raises CudaImportError naming the cause and
    the fix when numba-cuda is missing or broken."""
    apply_numpy_shim()
    try:
        cuda = importlib.import_module("numba.cuda")
    except Exception as exc:
        raise CudaImportError(
            f"rnngen's CUDA backend needs numba-cuda (pip install 'rnngen[cuda]'); importing numba.cuda "
            f"failed under numpy {np.__version__}: {type(exc).__name__}: {exc}") from None
    return cuda


def simulator_enabled(cuda=None):
    cuda = cuda or import_cuda()
    if hasattr(cuda, "simulator_enabled"):
        return bool(cuda.simulator_enabled)
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


# -- versions ----------------------------------------------------------------------------------
def _try(fn):
    try:
        return fn()
    except Exception as exc:  # each fact on its own: one missing piece must not hide the others
        return f"unavailable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


def _dist_version(name):
    from importlib import metadata
    return metadata.version(name)


def _nvvm_version():
    from numba.cuda.cudadrv.nvvm import NVVM
    nvvm = NVVM()
    return {"version": ".".join(map(str, nvvm.get_version())),
            "ir_version": ".".join(map(str, nvvm.get_ir_version()))}


def _nvjitlink_version():
    from cuda.bindings import nvjitlink
    return ".".join(map(str, nvjitlink.version()))


def _have_nvjitlink():
    from numba.cuda.cudadrv import driver
    return bool(driver._have_nvjitlink())


def _linker_backend():
    from cuda.core import Linker
    return str(Linker.which_backend())


def _cudadevrt():
    from numba.cuda.cudadrv.libs import get_cudalib
    return get_cudalib("cudadevrt", static=True)


def _driver_version():
    from numba.cuda.cudadrv.driver import driver
    return ".".join(map(str, driver.get_version()))


def _runtime_version():
    from numba.cuda.cudadrv.runtime import runtime
    return ".".join(map(str, runtime.get_version()))


def environment(device=True):
    """Versions and libraries the CUDA path depends on (strings; 'unavailable (...)' where a piece
    cannot be read). device=False skips what needs the driver (no GPU here)."""
    import platform
    cuda = import_cuda()
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_shim": list(NUMPY_SHIM),
        "numba": _try(lambda: _dist_version("numba")),
        "numba-cuda": _try(lambda: _dist_version("numba-cuda")),
        "cuda-bindings": _try(lambda: _dist_version("cuda-bindings")),
        "cuda-core": _try(lambda: _dist_version("cuda-core")),
        "simulator": simulator_enabled(cuda),
    }
    if env["simulator"]:
        return env
    env.update({
        "nvvm": _try(_nvvm_version),
        "nvjitlink": _try(_nvjitlink_version),
        "numba_uses_nvjitlink": _try(_have_nvjitlink),
        "linker_backend": _try(_linker_backend),
        "cudadevrt": _try(_cudadevrt),
    })
    if device:
        env["driver"] = _try(_driver_version)
        env["runtime"] = _try(_runtime_version)
    return env


# -- kernel attributes through the driver ----------------------------------------------------------
class KernelAttributeError(RuntimeError):
    """A kernel attribute could not be set or read back (the message says which and why)."""


def kernel_function(kernel):
    """The loaded function (numba's CUDA function object: .handle, .device, .attrs) behind a
    compiled kernel of a numba-cuda dispatcher."""
    library = getattr(kernel, "_codelibrary", None)
    if library is not None:
        return library.get_cufunc()
    func = getattr(kernel, "_func", None)         # older numba-cuda: a cached function
    if func is not None and hasattr(func, "get"):
        return func.get()
    raise KernelAttributeError(f"cannot find the loaded function of {type(kernel).__name__} "
                               f"(this numba-cuda version is not known to rnngen)")


def _driver_api():
    from numba.cuda.cudadrv.driver import binding, driver
    return driver, binding


def _handle_kind(handle):
    name = type(handle).__name__
    if name in ("CUkernel", "CUfunction"):
        return name
    raise KernelAttributeError(f"unknown kernel handle type {name} (expected CUkernel or CUfunction)")


def get_function_attribute(fn, name):
    """Read CU_FUNC_ATTRIBUTE_<name> of numba's loaded function `fn` from the driver."""
    driver, binding = _driver_api()
    attr = getattr(binding.CUfunction_attribute, f"CU_FUNC_ATTRIBUTE_{name}")
    if _handle_kind(fn.handle) == "CUkernel":
        return int(driver.cuKernelGetAttribute(attr, fn.handle, fn.device.id))
    return int(driver.cuFuncGetAttribute(attr, fn.handle))


def set_function_attribute(fn, name, value):
    """Set CU_FUNC_ATTRIBUTE_<name> of `fn` (for its device) and return the value read back."""
    driver, binding = _driver_api()
    attr = getattr(binding.CUfunction_attribute, f"CU_FUNC_ATTRIBUTE_{name}")
    try:
        if _handle_kind(fn.handle) == "CUkernel":
            driver.cuKernelSetAttribute(attr, int(value), fn.handle, fn.device.id)
        else:
            driver.cuFuncSetAttribute(fn.handle, attr, int(value))
    except KernelAttributeError:
        raise
    except Exception as exc:
        raise KernelAttributeError(f"setting {name} = {value} failed: {type(exc).__name__}: {exc}") from None
    return get_function_attribute(fn, name)


def allow_dynamic_shared(fn, nbytes):
    """Let `fn` launch with `nbytes` of dynamic shared memory (the opt-in above 48 KiB): sets
    MAX_DYNAMIC_SHARED_SIZE_BYTES and checks the value read back. Returns it; raises
    KernelAttributeError naming the reason when the driver does not grant it."""
    granted = set_function_attribute(fn, "MAX_DYNAMIC_SHARED_SIZE_BYTES", nbytes)
    if granted < nbytes:
        raise KernelAttributeError(f"the driver reports {granted} bytes of dynamic shared memory "
                                   f"after asking for {nbytes}")
    return granted


def carveout_percent(shared_bytes_per_block, blocks_per_sm, shared_per_sm, reserved_per_block=1024):
    """The preferred shared-memory carveout (percent of the largest shared-memory configuration of
    an SM) that holds `blocks_per_sm` blocks of `shared_bytes_per_block` each, and no more: the rest
    of the SM's unified L1 / shared storage stays L1 cache (which the global loads of the kernels
    use). The driver rounds it up to a configuration the chip has; 0 when no shared memory is used.
    `reserved_per_block`: the 1 KiB per block the system takes on sm_80 and later."""
    if shared_bytes_per_block <= 0 or blocks_per_sm <= 0:
        return 0
    need = blocks_per_sm * (shared_bytes_per_block + reserved_per_block)
    return min(100, math.ceil(100 * need / shared_per_sm))


# -- linking without a GPU (what numba-cuda does on one) -------------------------------------------
def link_with_nvjitlink(code, cc, lto=False, cudadevrt=True):
    """Link PTX (str), or LTO-IR (bytes, lto=True), with libcudadevrt into a cubin for sm_<cc>
    through nvJitLink, as numba-cuda links a kernel that calls grid.sync() on a GPU; needs no GPU.
    Returns (cubin size in bytes, nvJitLink's info log: registers, stack, local memory of each
    function). Raises RuntimeError with nvJitLink's error log when the link fails."""
    from cuda.bindings import nvjitlink
    options = [f"-arch=sm_{cc[0]}{cc[1]}", "-verbose"] + (["-lto"] if lto else [])
    handle = nvjitlink.create(len(options), options)
    try:
        data = code.encode() if isinstance(code, str) else bytes(code)
        kind = nvjitlink.InputType.LTOIR if lto else nvjitlink.InputType.PTX
        nvjitlink.add_data(handle, kind, data, len(data), "kernel")
        if cudadevrt:
            from numba.cuda.cudadrv.libs import get_cudalib
            nvjitlink.add_file(handle, nvjitlink.InputType.LIBRARY, get_cudalib("cudadevrt", static=True))
        try:
            nvjitlink.complete(handle)
        except Exception as exc:
            raise RuntimeError(f"nvJitLink failed ({exc}): {_nvjitlink_log(nvjitlink, handle, 'error')}") from None
        return nvjitlink.get_linked_cubin_size(handle), _nvjitlink_log(nvjitlink, handle, "info")
    finally:
        nvjitlink.destroy(handle)


def _nvjitlink_log(nvjitlink, handle, which):
    size = getattr(nvjitlink, f"get_{which}_log_size")(handle)
    buf = bytearray(size)
    if size:
        getattr(nvjitlink, f"get_{which}_log")(handle, buf)
    return buf.decode(errors="replace").rstrip("\x00")


_PROPERTIES = re.compile(r"Function properties for '([^']+)':\s*\n\s*info\s*:\s*used (\d+) registers.*?"
                         r"(\d+) stack, (\d+) bytes smem.*?(\d+) bytes lmem")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def function_properties(info_log):
    """{mangled function name: {registers, stack, smem, lmem}} from an nvJitLink -verbose log."""
    out = {}
    for name, regs, stack, smem, lmem in _PROPERTIES.findall(info_log):
        out[name] = {"registers": int(regs), "stack": int(stack), "smem": int(smem), "lmem": int(lmem)}
    spills = _SPILLS.findall(info_log)
    if spills:
        out["_spills"] = {"stores": sum(int(s) for s, _ in spills), "loads": sum(int(l) for _, l in spills)}
    return out
