"""Helpers written from the spec language's primitives (not special cases of the compiler)."""
import sympy as sp


def layer_norm(cell, exprs, name=None, eps=1e-5, two_pass=False):
    """Layer normalization of `exprs` (one expression, or a list: the gates of a linear) over the
    hidden units and over all the listed expressions together, LN(v) = (v - mu) / sqrt(var + eps):

        mu = cell.mean(*exprs)                            (name_mean)
        var = cell.mean(*[e**2]) - mu**2                  (name_sq: both means in one stage)
        returns [(e - mu) / sqrt(var + eps) for e in exprs]   (a list, or one expression)

    two_pass=True takes var = cell.mean(*[(e - mu)**2]) instead (name_var, a stage after mu: no
    cancellation when |mu| >> the spread, one more stage and pass over the units). Gains and
    biases are the caller's: `n * gain + bias` with cell.vector(..., gates=k)."""
    single = not isinstance(exprs, (list, tuple))
    exprs = [exprs] if single else list(exprs)
    mu = cell.mean(*exprs, name=None if name is None else f"{name}_mean")
    if two_pass:
        var = cell.mean(*[(e - mu) ** 2 for e in exprs], name=None if name is None else f"{name}_var")
    else:
        var = cell.mean(*[e ** 2 for e in exprs], name=None if name is None else f"{name}_sq") - mu ** 2
    inv = 1 / sp.sqrt(var + sp.Float(eps))
    out = [(e - mu) * inv for e in exprs]
    return out[0] if single else out
