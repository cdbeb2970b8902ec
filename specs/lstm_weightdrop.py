# LSTM with DropConnect on the recurrent weight (the weight-dropped LSTM of AWD-LSTM, Merity et al.
# 2017): torch.nn.LSTM's gate order (i, f, g, o) and parameter names; run-time rate `weight_drop` p.
# In training mode every forward call multiplies weight_hh by one keep-mask of its shape (1 with
# probability 1 - p), scaled by 1/(1 - p); backward uses the same mask. Eval mode and p = 0: lstm.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_weightdrop", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
xi, xf, xg, xo = cell.linear("ih", x, gates=4)                             # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hg, ho = cell.linear("hh", h, gates=4, dropconnect="weight_drop")  # weight_hh (4H, H), bias_hh (4H,)
i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), tanh(xg + hg), sigmoid(xo + ho)
c_next = f * c + i * g
cell.update(c=c_next, h=o * tanh(c_next))
