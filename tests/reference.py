"""Plain-numpy reference cells, written from the textbook equations independently of the generator.

Each takes x (T, B, I), params (torch names), a tuple of initial states, lengths and reverse, and
returns (y, final states) with PyTorch's packed-sequence semantics.
"""
import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _rnn_tanh(x, h, p):
    return (np.tanh(x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]),)


def _lstm(x, state, p):
    h, c = state
    gates = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = np.split(gates, 4, axis=1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


def _gru(x, state, p):
    (h,) = state
    gx = x @ p["weight_ih"].T + p["bias_ih"]
    gh = h @ p["weight_hh"].T + p["bias_hh"]
    xr, xz, xn = np.split(gx, 3, axis=1)
    hr, hz, hn = np.split(gh, 3, axis=1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


def _gru_classic(x, state, p):
    (h,) = state
    xu, xr, xc = np.split(x @ p["weight_ih"].T + p["bias_ih"], 3, axis=1)
    hu, hr = np.split(h @ p["weight_hh"].T, 2, axis=1)
    u, r = _sigmoid(xu + hu), _sigmoid(xr + hr)
    candidate = np.tanh(xc + (r * h) @ p["weight_rh"].T)
    return (u * candidate + (1 - u) * h,)


STEPS = {"rnn_tanh": lambda x, s, p: _rnn_tanh(x, s[0], p), "lstm": _lstm, "gru": _gru,
         "gru_classic": _gru_classic}


def run(name, x, params, state0, lengths=None, reverse=False):
    step = STEPS[name]
    T, B, _ = x.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    H = state0[0].shape[1]
    y = np.zeros((T, B, H), x.dtype)
    final = [np.zeros_like(s) for s in state0]
    for b in range(B):                       # one sequence at a time: no masking tricks to share
        state = tuple(s[b:b + 1] for s in state0)
        order = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in order:
            state = step(x[t, b:b + 1], state, params)
            y[t, b] = state[0][0]
        for k, s in enumerate(state):
            final[k][b] = s[0]
    return y, tuple(final)
