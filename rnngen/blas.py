"""rnngen.blas is rnngen/runtime/threads.py (the BLAS threads): this public name is the same module
object, so its state (the user's limit_threads setting) is one."""
import sys

from .runtime import threads

sys.modules[__name__] = threads
