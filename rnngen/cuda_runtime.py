"""rnngen.cuda_runtime: one namespace over the CUDA backend's run time (rnngen/backends/cuda/:
config, checks, elementwise, gemm, launch, compat), for generated CUDA modules built before the
restructuring and for the scripts and tests written against the one module it used to be.

Reading a name reads it from the module that defines it; setting one sets it there, so that the
run time sees it: a knob (`rt.SIM_UNITS = 2` sets rnngen.backends.cuda.config.SIM_UNITS) or a
stand-in (`rt.empty = ...` replaces rnngen.backends.cuda.elementwise.empty; deleting it puts the
original back, as pytest's monkeypatch does to undo). Names that changed
in the split are mapped (launch_persistent is launch.persistent, _device_limits is
config.device_limits, ...). New code imports the modules themselves.
"""
import sys as _sys
import types as _types

from .backends.cuda import checks as _part_checks, compat as _part_compat, config as _part_config
from .backends.cuda import elementwise as _part_elementwise, gemm as _part_gemm, launch as _part_launch
from .runtime import device as _part_device

# (the modules are imported under private names: this module's own names shadow the forwarded ones)
_PARTS = (_part_config, _part_checks, _part_elementwise, _part_gemm, _part_launch, _part_device)
_RENAMED = {"launch_persistent": (_part_launch, "persistent"), "_context_id": (_part_config, "context_id"),
            "_device_limits": (_part_config, "device_limits"), "_to_device": (_part_config, "to_device"),
            "_device_array": (_part_config, "device_array"), "_launched": (_part_config, "launched"),
            "_allocated": (_part_config, "allocated"), "_timed": (_part_config, "timed"),
            "_grid1d": (_part_elementwise, "grid1d"), "_flat_grid": (_part_elementwise, "flat_grid")}


_ORIGINALS = {}       # name -> its value before the first setattr through this module


def _where(name):
    """(module, attribute) holding `name`, or None."""
    if name in _RENAMED:
        return _RENAMED[name]
    if name == "cuda_compat":
        return None
    for part in _PARTS:
        if name in vars(part):
            return part, name
    return None


class _Runtime(_types.ModuleType):
    def __getattr__(self, name):          # only for names this module does not hold itself
        if name == "cuda_compat":
            return _part_compat
        where = _where(name)
        if where is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(*where)

    def __setattr__(self, name, value):
        where = _where(name) if name not in vars(self) else None
        if where is None:
            super().__setattr__(name, value)
            return
        _ORIGINALS.setdefault(name, getattr(*where))
        setattr(where[0], where[1], value)

    def __delattr__(self, name):
        """Deleting a name set through here puts the original back (what pytest's monkeypatch
        does to undo a setattr of a name this module does not hold itself)."""
        if name in _ORIGINALS:
            setattr(*_where(name), _ORIGINALS.pop(name))
        else:
            super().__delattr__(name)


_sys.modules[__name__].__class__ = _Runtime
