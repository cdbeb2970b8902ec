"""The Numba-CUDA backend: generated/_cuda_<cell>.py. Run time: mathlib.py (and, for now,
rnngen.cuda_runtime). Compile time: target.py (layout.py, emit.py, module.py.j2)."""
