"""rnngen.blas: kept as the public path of limit_threads and threads (rnngen/runtime/threads.py)."""
from .runtime.threads import limit_threads, threads  # noqa: F401
