"""rnngen's version (pyproject.toml has the same): a module of its own, which the Numba cache
locator (rnngen/backends/cpu/numba_cache.py) reads without importing the package."""
__version__ = "0.1.0"
