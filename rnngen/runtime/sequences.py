"""Many-to-one helpers over an RNN's outputs: each sequence's last valid output, and its gradient."""
import numpy as np

from ..backends.checks import check_lengths


def last_valid(y, lengths, batch_first=False):
    """Many-to-one: each sequence's last valid output, y[lengths[b]-1, b] -> (B, F).

    For a bidirectional network this takes the forward direction at the last step and the reverse
    direction there too (which has seen only that step); use the final states (h_n) to read the
    reverse direction's summary of the whole sequence."""
    y = np.asarray(y)
    if y.ndim != 3:
        raise ValueError(f"y must have 3 dimensions, got shape {y.shape}")
    if batch_first:
        y = y.transpose(1, 0, 2)
    T, B, _ = y.shape
    lengths = check_lengths(lengths, B, T)
    if B and lengths.min() < 1:
        raise ValueError("lengths must be >= 1 to take a last valid output")
    return y[lengths - 1, np.arange(B)]


def last_valid_backward(d_last, lengths, T, batch_first=False):
    """The gradient of last_valid(): d_last (B, F) scattered into a zero dy shaped like y."""
    d_last = np.asarray(d_last)
    if d_last.ndim != 2:
        raise ValueError(f"d_last must have shape (B, F), got {d_last.shape}")
    B, F = d_last.shape
    lengths = check_lengths(lengths, B, T)
    dy = np.zeros((T, B, F), d_last.dtype)
    dy[lengths - 1, np.arange(B)] = d_last
    return np.ascontiguousarray(dy.transpose(1, 0, 2)) if batch_first else dy
