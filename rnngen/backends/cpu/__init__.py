"""The Numba CPU backend: generated/<cell>.py. Run time: mathlib.py. Compile time: target.py
(layout.py, emit.py, module.py.j2)."""
