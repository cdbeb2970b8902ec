"""The random masks of a cell as its generated modules list them (MASKS): the spec's `cell.mask`
values, then the DropConnect masks of its linears (named as the weight parameter)."""


def masks_of(cell):
    """name -> (rate, per, inverted): per "step", "sequence", or "weight" (DropConnect, inverted)."""
    out = {m.name: (m.rate, m.per, m.inverted) for m in cell.masks}
    out.update({f"weight_{lin.name}": (lin.dropconnect, "weight", True) for lin in cell.linears if lin.dropconnect})
    return out
