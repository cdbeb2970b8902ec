"""rnngen: recurrent cells written as SymPy specs, compiled to fused Numba kernels with derived backprop."""
from .version import __version__
from .errors import SpecError  # noqa: E402
from .runtime.registry import available, load  # noqa: E402
from .runtime.network import RNN  # noqa: E402
from .runtime.schedule import get_num_threads, set_num_threads  # noqa: E402

__all__ = ["SpecError", "load", "available", "RNN", "get_num_threads", "set_num_threads", "__version__"]
