"""LSTM with a projection (LSTMP; torch.nn.LSTM(..., proj_size=P)): gate order i, f, g, o and
parameter names as in torch.nn.LSTM. The hidden state h has the run-time size proj_size (P), the
cell state c has size H:

    i, f, g, o = sigmoid(W_ii x + b_ii + W_hi h + b_hi), ..., tanh(...), sigmoid(...)
    c' = f * c + i * g                       (H units)
    h' = W_hr (o * tanh(c'))                 (P units; weight_hr (P, H), no bias)

Parameters: weight_ih (4H, I), bias_ih (4H,), weight_hh (4H, P), bias_hh (4H,), weight_hr (P, H).
`proj_size` is a keyword of init_params, rnngen.RNN, rnngen.torch.RNN and `rnngen train`
(--size proj_size=P); without it P = H.
"""
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_proj", states=("h", "c"), output="h", sizes={"h": "proj_size"})
cell.size("proj_size", default="H")     # without proj_size=, P = H
x, h, c = cell.x, cell.h, cell.c
xi, xf, xg, xo = cell.linear("ih", x, gates=4)   # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hg, ho = cell.linear("hh", h, gates=4)   # weight_hh (4H, P), bias_hh (4H,)
i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), tanh(xg + hg), sigmoid(xo + ho)
c_next = f * c + i * g
(h_next,) = cell.linear("hr", o * tanh(c_next), bias=False, size="proj_size")   # weight_hr (P, H)
cell.update(c=c_next, h=h_next)
