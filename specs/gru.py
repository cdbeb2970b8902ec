# GRU with torch.nn.GRU's equations: gate order (r, z, n), reset applied after the hidden matmul.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("gru", states=("h",), output="h")
x, h = cell.x, cell.h
xr, xz, xn = cell.linear("ih", x, gates=3)
hr, hz, hn = cell.linear("hh", h, gates=3)
r, z = sigmoid(xr + hr), sigmoid(xz + hz)
n = tanh(xn + r * hn)
cell.update(h=(1 - z) * n + z * h)
