"""rnngen.cuda_compat is rnngen/backends/cuda/compat.py (the one import of numba.cuda): this name is
kept for the scripts and tests that import it, as the same module object."""
import sys

from .backends.cuda import compat

sys.modules[__name__] = compat
