# LSTM with torch.nn.LSTM's gate order (i, f, g, o) and parameter names.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
xi, xf, xg, xo = cell.linear("ih", x, gates=4)   # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hg, ho = cell.linear("hh", h, gates=4)   # weight_hh (4H, H), bias_hh (4H,)
i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), tanh(xg + hg), sigmoid(xo + ho)
c_next = f * c + i * g
cell.update(c=c_next, h=o * tanh(c_next))
