"""Shared test helpers: random problems and finite differences."""
import numpy as np


def random_problem(module, T=5, B=3, I=4, H=3, dtype=np.float64, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    params = {k: (v * scale).astype(dtype) for k, v in module.init_params(I, H, dtype, seed=seed).items()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in module.STATES)
    return x, params, state0


def numeric_gradient(f, arr, eps=1e-6):
    """Central differences of scalar f() with respect to every element of arr (changed in place)."""
    grad = np.zeros_like(arr)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad
