"""Route device arrays to a generated module's CUDA sibling (generated/_cuda_<cell>.py).

Imports nothing from numba.cuda: a machine without numba-cuda runs the CPU path unchanged.
"""
import importlib
import importlib.util
import os
import sys


def is_device_array(value):
    """True for numba device arrays and anything exposing __cuda_array_interface__ (torch, cupy)."""
    return hasattr(value, "__cuda_array_interface__") or \
        (hasattr(value, "copy_to_host") and hasattr(value, "shape"))


def cuda_module(cpu_module_name, cpu_module_file, name):
    """Import _cuda_<name>.py, built next to the CPU module `cpu_module_name` (file `cpu_module_file`)."""
    package, _, _ = cpu_module_name.rpartition(".")
    if package:
        return importlib.import_module(f"{package}._cuda_{name}")
    file = os.path.join(os.path.dirname(os.path.abspath(cpu_module_file)), f"_cuda_{name}.py")
    if not os.path.isfile(file):
        raise ValueError(f"no CUDA module {file}; rebuild the cell with `rnngen build`")
    module_name = f"{cpu_module_name}_cuda"
    return import_file(module_name, file)


def import_file(module_name, path):
    """Import the Python file `path` as module `module_name` (once: later calls get sys.modules')."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
