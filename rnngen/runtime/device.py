"""Route device arrays to a generated module's CUDA sibling (generated/_cuda_<cell>.py).

Imports nothing from numba.cuda: a machine without numba-cuda runs the CPU path unchanged.
"""
import importlib
import os
import sys


def is_device_array(value):
    """True for numba device arrays and anything exposing __cuda_array_interface__ (torch, cupy)."""
    return hasattr(value, "__cuda_array_interface__") or \
        (hasattr(value, "copy_to_host") and hasattr(value, "shape"))


def cuda_module(cpu_module_name, cpu_module_file, name):
    """The CUDA sibling _cuda_<name>.py of the CPU module `cpu_module_name` (file `cpu_module_file`):
    the package's own for a built-in cell; for a user-built one, the file next to it, imported once
    per CPU module and only when it was built from the same spec (the same SPEC_SHA256)."""
    package, _, _ = cpu_module_name.rpartition(".")
    if package:
        return importlib.import_module(f"{package}._cuda_{name}")
    module_name = f"{cpu_module_name}_cuda"
    if module_name in sys.modules:
        return sys.modules[module_name]
    from . import registry
    file = os.path.join(os.path.dirname(os.path.abspath(cpu_module_file)), f"_cuda_{name}.py")
    if not os.path.isfile(file):
        raise ValueError(f"no CUDA module {file}; rebuild the cell with `rnngen build`")
    source, sha = registry.read_generated(file, name, "cuda")
    if sha != getattr(sys.modules.get(cpu_module_name), "SPEC_SHA256", None):
        raise ValueError(f"{file} was not built with the loaded {cpu_module_file} (it was rebuilt "
                         f"since the cell was loaded, or only one of them was); load the cell again "
                         f"with rnngen.load({name!r}, path=...) after `rnngen build`")
    return registry.import_source(module_name, file, source)
