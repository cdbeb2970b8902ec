"""LayerNorm LSTM (Ba et al. 2016, as in haste's LayerNormLSTM): layer normalization of the two
linears' outputs over all 4H gate values, and of the new cell state over its H units.

    LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5), over all the values listed
            (var(v) = mean(v**2) - mean(v)**2: both means in one pass over the units)
    z = LN_4H(W_ih x) * ln_ih_gain + LN_4H(W_hh h) * ln_hh_gain + bias,   split as i, f, g, o
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(LN_H(c') * ln_c_gain + ln_c_bias)

Parameters: weight_ih (4H, I), weight_hh (4H, H) (no biases on the linears), ln_ih_gain (4H,),
ln_hh_gain (4H,), bias (4H,), ln_c_gain (H,), ln_c_bias (H,). init_params sets the gains to 1 and
the biases to 0 (the weights U(-1/sqrt(H), 1/sqrt(H)) as torch.nn.LSTM's).
"""
from rnngen.spec import Cell, layer_norm, sigmoid, tanh

cell = Cell("layernorm_lstm", states=("h", "c"), output="h")
x, h, c = cell.x, cell.h, cell.c
wx = cell.linear("ih", x, gates=4, bias=False)          # weight_ih (4H, I)
wh = cell.linear("hh", h, gates=4, bias=False)          # weight_hh (4H, H)
gx = cell.vector("ln_ih_gain", gates=4, init=1.0)       # (4H,)
gh = cell.vector("ln_hh_gain", gates=4, init=1.0)       # (4H,)
bias = cell.vector("bias", gates=4, init=0.0)           # (4H,)
gc = cell.vector("ln_c_gain", init=1.0)                 # (H,)
bc = cell.vector("ln_c_bias", init=0.0)                 # (H,)
nx = layer_norm(cell, wx, "ln_ih")
nh = layer_norm(cell, wh, "ln_hh")
zi, zf, zg, zo = [nx[k] * gx[k] + nh[k] * gh[k] + bias[k] for k in range(4)]
c_next = sigmoid(zf) * c + sigmoid(zi) * tanh(zg)
cell.update(c=c_next, h=sigmoid(zo) * tanh(layer_norm(cell, c_next, "ln_c") * gc + bc))
