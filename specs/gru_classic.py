# The GRU of the course notes and of Cho et al. 2014: the reset gate scales h before the matmul,
# so the step has two stages (a second GEMM over r * h).
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("gru_classic", states=("h",), output="h")
x, h = cell.x, cell.h
xu, xr, xc = cell.linear("ih", x, gates=3)
hu, hr = cell.linear("hh", h, gates=2, bias=False)
u, r = sigmoid(xu + hu), sigmoid(xr + hr)
(hc,) = cell.linear("rh", r * h, gates=1, bias=False)   # second stage
cell.update(h=u * tanh(xc + hc) + (1 - u) * h)
