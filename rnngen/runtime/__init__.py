"""The runtime: finds and loads generated modules (registry), routes device arrays to their CUDA
siblings (device), stacks layers and directions (network, stack, ops), checks what users pass
(validation) and owns the BLAS threads (threads). It imports no compiler module, no sympy and no
jinja2: `rnngen.load`, `rnngen.RNN` and `rnngen.available()` stay light."""
