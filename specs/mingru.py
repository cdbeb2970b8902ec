# minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates depend on x only, so every
# GEMM is hoisted out of the time loop and the step is pure pointwise work.
from rnngen.spec import Cell, sigmoid

cell = Cell("mingru", states=("h",), output="h")
xz, xh = cell.linear("ih", cell.x, gates=2)
z = sigmoid(xz)
cell.update(h=(1 - z) * cell.h + z * xh)
