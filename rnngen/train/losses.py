"""Losses: masked per-step softmax cross-entropy, and the softmax it is built on."""
import numpy as np

from ..backends.checks import check_lengths
from ..backends.cpu.checks import host_array
from ..runtime.validation import positive


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits, temperature=1.0):
    """Probabilities over the last axis, exp(logits / temperature) normalised, computed stably."""
    logits = np.asarray(logits)
    temperature = positive("temperature", temperature)
    shifted = logits - logits.max(axis=-1, keepdims=True)   # before dividing: a tiny temperature
    return np.exp(log_softmax(shifted / temperature))        # gives -inf and 0, never inf - inf


def softmax_cross_entropy(logits, targets, lengths=None, reduction="sum"):
    """Per-step cross-entropy of softmax(logits) against integer targets, masked past each length.

    logits (T, B, V), targets (T, B) ints in [0, V) (ignored past each length), lengths (B,) or None.
    reduction 'sum': the per-step losses summed over time and batch (the course's loss);
    'mean': that sum divided by the number of valid steps. Returns (loss, dlogits)."""
    logits = host_array("logits", logits, 3)
    T, B, V = logits.shape
    targets = np.asarray(targets)
    if targets.shape != (T, B):
        raise ValueError(f"targets must have shape (T, B) = ({T}, {B}), got {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise ValueError(f"targets must be integers, got dtype {targets.dtype}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    lengths = check_lengths(lengths, B, T)
    mask = np.arange(T)[:, None] < lengths[None, :]
    tgt = np.where(mask, targets, 0)
    if tgt.min() < 0 or tgt.max() >= V:
        raise ValueError(f"targets must lie in [0, V={V}) within each length, got min {tgt.min()} max {tgt.max()}")
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, tgt[..., None], axis=2)[..., 0]
    loss = -(picked * mask).sum()
    count = int(mask.sum())
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, tgt[..., None], np.take_along_axis(dlogits, tgt[..., None], axis=2) - 1, axis=2)
    dlogits *= mask[..., None]
    if reduction == "mean":
        scale = 1.0 / max(count, 1)
        loss *= scale
        dlogits *= dlogits.dtype.type(scale)
    return float(loss), dlogits
