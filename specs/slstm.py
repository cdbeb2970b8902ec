# sLSTM (Beck et al. 2024, xLSTM): exponential input and forget gates with a stabiliser state m,
# a normaliser state n and a block-diagonal (multi-head) recurrent matrix. Gate order i, f, z, o.
#   weight_ih (4H, I), bias_ih (4H,); weight_hh (heads, 4*DH, DH) with DH = H / heads, no bias
#   (heads: a run-time size, RNN("slstm", I, H, heads=4); default 1):
#   in head k, rows g*DH + d hold gate g's weights of unit k*DH + d over h[k*DH:(k+1)*DH].
# With the raw pre-activations i~, f~, z~, o~ (x @ weight_ih.T + bias_ih + the heads' h GEMMs):
#   m' = max(log_sigmoid(f~) + m, i~)
#   i' = exp(i~ - m'),  f' = exp(log_sigmoid(f~) + m - m')      (both <= 1: no overflow)
#   c' = f' c + i' tanh(z~),  n' = f' n + i',  h' = sigmoid(o~) c' / n'
# h, c, n start at 0 and m at the dtype's most negative finite number (-inf in effect): a first
# step gives m' = i~, i' = 1, f' = 0, n' = 1, and n' >= 1 after it.
from rnngen.spec import Cell, exp, log_sigmoid, maximum, sigmoid, tanh

cell = Cell("slstm", states=("h", "c", "n", "m"), output="h", initial={"m": "lowest"})
x, h, c, n, m = cell.x, cell.h, cell.c, cell.n, cell.m
xi, xf, xz, xo = cell.linear("ih", x, gates=4)                          # weight_ih (4H, I), bias_ih (4H,)
hi, hf, hz, ho = cell.linear("hh", h, gates=4, bias=False, heads=True)  # weight_hh (heads, 4*DH, DH)
i_raw, f_raw, z_raw, o_raw = xi + hi, xf + hf, xz + hz, xo + ho
log_f = log_sigmoid(f_raw)
m_next = maximum(log_f + m, i_raw)
i = exp(i_raw - m_next)
f = exp(log_f + m - m_next)
c_next = f * c + i * tanh(z_raw)
n_next = f * n + i
cell.update(h=sigmoid(o_raw) * c_next / n_next, c=c_next, n=n_next, m=m_next)
