# LSTM with variational recurrent dropout (Gal & Ghahramani 2016): inverted dropout of h before
# the recurrent GEMM, with one mask per sequence (the same at every step). torch.nn.LSTM's gate
# order (i, f, g, o) and parameter names; run-time rate `dropout_h` p:
#   hi, hf, hg, ho = (m_h * h) @ weight_hh.T + bias_hh,   m_h in {0, 1/(1 - p)}
# eval mode (and p = 0): m_h = 1, the plain LSTM.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_vd", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
m_h = cell.mask("m_h", rate="dropout_h", per="sequence", inverted=True)
xi, xf, xg, xo = cell.linear("ih", x, gates=4)        # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hg, ho = cell.linear("hh", m_h * h, gates=4)  # weight_hh (4H, H), bias_hh (4H,)
i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), tanh(xg + hg), sigmoid(xo + ho)
c_next = f * c + i * g
cell.update(c=c_next, h=o * tanh(c_next))
