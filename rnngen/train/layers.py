"""The layers of a trainable model: a dense output layer, and SeqModel, an RNN followed by a dense
layer at every step (rnngen.training re-exports them)."""
import numpy as np

from ..runtime.network import RNN
from ..runtime.validation import as_int
from .losses import softmax_cross_entropy


class Dense:
    """y = x @ weight.T + bias on the last axis. weight (out, in) ~ U(-1/sqrt(in), 1/sqrt(in)), bias 0."""

    def __init__(self, in_features, out_features, dtype=np.float32, seed=0):
        in_features = as_int("in_features", in_features, 1)
        out_features = as_int("out_features", out_features, 1)
        rng = np.random.default_rng([int(seed), 2])
        bound = 1.0 / np.sqrt(in_features)
        self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        self.bias = np.zeros(out_features, dtype)
        self.grads = {"weight": np.zeros_like(self.weight), "bias": np.zeros_like(self.bias)}
        self._x = None

    def forward(self, x):
        self._x = x
        out = x.reshape(-1, x.shape[-1]) @ self.weight.T + self.bias
        return out.reshape(x.shape[:-1] + (self.weight.shape[0],))

    def backward(self, dy):
        x2 = self._x.reshape(-1, self._x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        self.grads["weight"] = dy2.T @ x2
        self.grads["bias"] = dy2.sum(axis=0)
        return (dy2 @ self.weight).reshape(self._x.shape)


class SeqModel:
    """An RNN followed by a dense layer at every step: logits (T, B, V) for per-step classification
    (a language model predicts the next token). `params` / `grads` hold the RNN's parameters under
    torch names plus 'dense.weight' and 'dense.bias'."""

    def __init__(self, cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False,
                 dropout=0.0, dtype=np.float32, seed=0):
        self.rnn = RNN(cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                       dropout=dropout, dtype=dtype, seed=seed)
        self.dense = Dense(self.rnn.output_size, output_size, dtype, seed)
        self.output_size = self.dense.weight.shape[0]
        self.params = dict(self.rnn.params)
        self.params["dense.weight"] = self.dense.weight
        self.params["dense.bias"] = self.dense.bias

    @property
    def dtype(self):
        return self.rnn.dtype

    @property
    def grads(self):
        g = dict(self.rnn.grads)
        g["dense.weight"] = self.dense.grads["weight"]
        g["dense.bias"] = self.dense.grads["bias"]
        return g

    def train(self, mode=True):
        self.rnn.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def logits(self, x, state0=None, lengths=None, need_grad=True):
        y, final = self.rnn.forward(x, state0, lengths, need_grad=need_grad)
        return self.dense.forward(y), final

    def loss(self, x, targets, lengths=None, reduction="sum", backward=True):
        """Forward, masked per-step softmax cross-entropy, and (by default) backward into .grads."""
        logits, _ = self.logits(x, None, lengths, need_grad=backward)
        loss, dlogits = softmax_cross_entropy(logits, targets, lengths, reduction)
        if backward and not np.isfinite(loss):
            raise ValueError(f"the loss is {loss}: the parameters overflowed (training diverged; "
                             "try a lower learning rate)")
        if backward:
            self.rnn.backward(self.dense.backward(dlogits))
        return loss
