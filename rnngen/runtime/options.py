"""A cell's run-time options beyond input_size and hidden_size, as rnngen.RNN and the PyTorch
bridge take them: its sizes (SIZES, e.g. heads=4 for slstm: keywords, SIZE_DEFAULTS for those
left out) and the rates of its random masks (RATES, e.g. rates={"zoneout": 0.1}), with the seeded
generator the masks are drawn from (rnngen/backends/masks.py)."""
import sys

import numpy as np

from ..backends.masks import check_rates, with_masks  # noqa: F401  (the PyTorch bridge's)
from .sizes import checked_sizes


def cell_options(cell, hidden_size, sizes, rates, seed, who):
    """(sizes, rates, mask generator) checked for `cell` (ValueError naming the keyword). The
    generator is seeded by `seed`; None (the bridge's default): torch.initial_seed()."""
    sizes = checked_sizes(cell, sizes, who, hidden_size)
    if seed is None:
        seed = sys.modules["torch"].initial_seed() if "torch" in sys.modules else 0
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{who}: seed must be a non-negative integer, got {seed!r}")
    return sizes, check_rates(rates, getattr(cell, "RATES", ())), np.random.default_rng([int(seed), 2])


def options_text(sizes, rates):
    """', heads=4, rates={...}' for a repr (empty when the cell has neither)."""
    return "".join(f", {k}={v}" for k, v in sizes.items()) + (f", rates={rates}" if rates else "")


def layer_masks(net, k, d, T, B, params=None):
    """(parameters, masks) of layer k, direction d of rnngen.RNN `net` for a call over (T, B): the
    masks drawn by the cell's draw_masks on the host (one seed gives the same masks on every
    device), None for a cell without masks. params: the network's parameters by key (None: net.params)."""
    params = net._layer_params(k, d, params)
    if not getattr(net.cell, "MASKS", None):
        return params, None
    return params, net.cell.draw_masks(T, B, net.hidden_size, net.rates, net.training, net.mask_rng, net.dtype, params)
