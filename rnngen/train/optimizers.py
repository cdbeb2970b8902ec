"""Gradient clipping (by value, by global norm without overflow; NaN and inf reported, never spread)
and the optimizers SGD and Adam, in place on numpy arrays."""
import numpy as np

from ..runtime.validation import positive


def clip_by_value(grads, max_value):
    """The course's clipping: every gradient entry clipped into [-max_value, max_value], in place.
    Returns grads."""
    m = positive("max_value", max_value)
    for g in grads.values():
        np.clip(g, -m, m, out=g)
    return grads


def _nonfinite(grads):
    """[(name, 'NaN' or 'inf')] of the gradients holding a non-finite entry."""
    bad = []
    for name, g in grads.items():
        if g.size and not np.isfinite(g).all():
            bad.append((name, "NaN" if np.isnan(g).any() else "inf"))
    return bad


def check_finite_grads(grads):
    """Raise ValueError naming the first gradient that holds NaN or inf (training diverged, or the
    input held them); return grads otherwise."""
    bad = _nonfinite(grads)
    if bad:
        name, kind = bad[0]
        others = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"gradient {name!r}{others} holds {kind}: the loss diverged or the input "
                         f"holds NaN/inf; nothing was clipped or updated (try a lower learning rate)")
    return grads


def _norm_parts(grads):
    """(M, r) with M the largest |entry| over all (finite) gradients and r the global L2 norm
    divided by M, summed in float64: the norm M * r is computed without overflow (entries of 1e20
    in float32 square to inf) or underflow (entries of 1e-30 square to 0)."""
    M = max((float(np.max(np.abs(g))) for g in grads.values() if g.size), default=0.0)
    if M == 0.0:
        return 0.0, 0.0
    total = 0.0
    for g in grads.values():
        if g.size:
            scaled = np.divide(g, M, dtype=np.float64)
            total += float(np.vdot(scaled, scaled))
    return M, float(np.sqrt(total))


def global_norm(grads):
    """The L2 norm of all gradients together, computed without overflow or underflow. nan when an
    entry is NaN, inf when one is inf (or when the norm exceeds float64's range)."""
    bad = _nonfinite(grads)
    if bad:
        return float("nan") if any(kind == "NaN" for _, kind in bad) else float("inf")
    M, r = _norm_parts(grads)
    with np.errstate(over="ignore"):
        return float(np.float64(M) * r)


def clip_by_global_norm(grads, max_norm, error_if_nonfinite=True):
    """Scale every gradient by max_norm / norm when the global L2 norm exceeds max_norm, in place.
    Returns the norm before clipping (computed without overflow: see global_norm).

    A gradient holding NaN or inf is never spread into the others: by default that is a ValueError
    naming it; with error_if_nonfinite=False every gradient is left untouched and the non-finite
    norm (nan or inf) is returned, for the caller to skip the step."""
    m = positive("max_norm", max_norm)
    if error_if_nonfinite:
        check_finite_grads(grads)
    elif _nonfinite(grads):
        return global_norm(grads)
    M, r = _norm_parts(grads)
    with np.errstate(over="ignore"):
        norm = float(np.float64(M) * r)
    if norm > m:
        for g in grads.values():
            _scale(g, M, r, m)
    return norm


def _scale(g, M, r, m):
    """g *= m / (M * r) in place, as one multiplication when that factor is a normal number of
    g's dtype, else as (g / M) * (m / r) in float64 (gradients near the top of the dtype's range)."""
    with np.errstate(under="ignore"):
        factor = (m / M) / r
        if factor >= np.finfo(g.dtype).tiny:
            g *= g.dtype.type(factor)
        else:
            g[...] = np.divide(g, M, dtype=np.float64) * (m / r)


class SGD:
    """p -= lr * (g + momentum buffer), in place on the arrays of `params`."""

    def __init__(self, params, lr=0.1, momentum=0.0):
        self.params = params
        self.lr = positive("lr", lr)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.velocity = {n: np.zeros_like(p) for n, p in params.items()} if momentum else None

    def step(self, grads):
        for name, p in self.params.items():
            g = grads[name]
            if self.velocity is not None:
                v = self.velocity[name]
                v *= p.dtype.type(self.momentum)
                v += g
                g = v
            p -= p.dtype.type(self.lr) * g


class Adam:
    """Adam (Kingma & Ba), in place on the arrays of `params`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr = positive("lr", lr)
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.betas = (b1, b2)
        self.eps = positive("eps", eps)
        self.t = 0
        self.m = {n: np.zeros_like(p) for n, p in params.items()}
        self.v = {n: np.zeros_like(p) for n, p in params.items()}

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for name, p in self.params.items():
            g = grads[name]
            m, v = self.m[name], self.v[name]
            m *= p.dtype.type(b1)
            m += p.dtype.type(1 - b1) * g
            v *= p.dtype.type(b2)
            v += p.dtype.type(1 - b2) * (g * g)
            p -= p.dtype.type(lr_t) * m / (np.sqrt(v) + p.dtype.type(self.eps))
