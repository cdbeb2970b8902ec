"""rnngen's built-in generated modules. Importing this package first puts rnngen's Numba cache
locator in place (rnngen/backends/cpu/numba_cache.py), before any of its modules compiles a
kernel: an installed rnngen caches them in a per-user folder, not in site-packages."""
from rnngen.backends.cpu.numba_cache import register

register()
