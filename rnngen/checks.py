"""Kept for generated modules built before the restructuring (they import `rnngen.checks`): the
checks are rnngen/backends/checks.py (shared) and rnngen/backends/cpu/checks.py."""
from .backends.checks import *  # noqa: F401,F403
from .backends.checks import check_finite as _finite, check_input_size as _check_input_size  # noqa: F401
from .backends.checks import check_state as _check_state
from .backends.cpu.checks import backward_inputs, forward_inputs, host_array as _array  # noqa: F401


def _state(name, s, B, H, dtype, array=_array, finite=_finite):
    return _check_state(name, s, B, H, dtype, array, finite)
