"""The Numba-CUDA backend: generated/_cuda_<cell>.py. Run time (what generated modules and
rnngen.RNN(device="cuda") import): compat (the one import of numba.cuda), config (knobs,
counters), checks (device inputs), elementwise, gemm, launch, mathlib. Compile time: target.py
(layout.py, slices.py, emit.py, module.py.j2)."""
