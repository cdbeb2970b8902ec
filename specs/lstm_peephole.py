# Peephole LSTM (Gers & Schmidhuber 2000): the gates also see the cell state through
# per-unit weights; the output gate sees the new cell state.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_peephole", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
xi, xf, xg, xo = cell.linear("ih", x, gates=4)
hi, hf, hg, ho = cell.linear("hh", h, gates=4)
pi, pf, po = cell.vector("weight_ci"), cell.vector("weight_cf"), cell.vector("weight_co")
i = sigmoid(xi + hi + pi * c)
f = sigmoid(xf + hf + pf * c)
c_next = f * c + i * tanh(xg + hg)
o = sigmoid(xo + ho + po * c_next)
cell.update(c=c_next, h=o * tanh(c_next))
