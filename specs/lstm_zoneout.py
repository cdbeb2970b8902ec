# LSTM with zoneout (Krueger et al. 2017) on h and on c: torch.nn.LSTM's gate order (i, f, g, o)
# and parameter names; one run-time rate `zoneout` p for both, with independent keep-masks.
#   h_new, c_new: the plain LSTM step from the un-zoned c
#   h' = m_h * h_new + (1 - m_h) * h,   c' = m_c * c_new + (1 - m_c) * c
# m_h, m_c are 1 with probability 1 - p, drawn every step; eval mode: (1 - p) * h_new + p * h.
# Rate 0 is exactly lstm.
from rnngen.spec import Cell, sigmoid, tanh

cell = Cell("lstm_zoneout", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
xi, xf, xg, xo = cell.linear("ih", x, gates=4)   # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hg, ho = cell.linear("hh", h, gates=4)   # weight_hh (4H, H), bias_hh (4H,)
m_h = cell.mask("m_h", rate="zoneout")           # keep-masks: 1 = take the new value
m_c = cell.mask("m_c", rate="zoneout")
i, f, g, o = sigmoid(xi + hi), sigmoid(xf + hf), tanh(xg + hg), sigmoid(xo + ho)
c_new = f * c + i * g
h_new = o * tanh(c_new)
cell.update(c=m_c * c_new + (1 - m_c) * c, h=m_h * h_new + (1 - m_h) * h)
