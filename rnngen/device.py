"""Kept for generated modules built before the restructuring (they import `rnngen.device`): the
device routing is rnngen/runtime/device.py."""
from .runtime.device import cuda_module, is_device_array  # noqa: F401
