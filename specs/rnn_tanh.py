# Elman RNN as torch.nn.RNN(nonlinearity="tanh").
from rnngen.spec import Cell, tanh

cell = Cell("rnn_tanh", states=("h",), output="h")
(xa,) = cell.linear("ih", cell.x)
(ha,) = cell.linear("hh", cell.h)
cell.update(h=tanh(xa + ha))
