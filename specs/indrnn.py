# IndRNN (Li et al. 2018): each unit has its own scalar recurrent weight, no hidden matmul.
from rnngen.spec import Cell, relu

cell = Cell("indrnn", states=("h",), output="h")
(xa,) = cell.linear("ih", cell.x)
u = cell.vector("weight_hh")          # (H,): h_j <- relu(W x + u_j * h_j + b)
cell.update(h=relu(xa + u * cell.h))
