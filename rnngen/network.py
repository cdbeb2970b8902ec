"""rnngen.network: kept as the public path of rnngen.RNN and last_valid (rnngen/runtime/network.py)."""
from .runtime.network import RNN, last_valid, last_valid_backward  # noqa: F401
from .runtime.ops import require_cuda  # noqa: F401
