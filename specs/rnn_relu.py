# Elman RNN as torch.nn.RNN(nonlinearity="relu").
from rnngen.spec import Cell, relu

cell = Cell("rnn_relu", states=("h",), output="h")
(xa,) = cell.linear("ih", cell.x)
(ha,) = cell.linear("hh", cell.h)
cell.update(h=relu(xa + ha))
