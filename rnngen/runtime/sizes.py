"""The run-time sizes of a cell beyond input_size and hidden_size (a projected LSTM's proj_size):
one mechanism for every size a spec declares (`cell.size(name)` / `sizes=` / `size=`).

A generated module lists them in SIZES (SIZE_DEFAULTS: the defaults of those that have one, an
int or "H" for the hidden size) and gives each state's size in STATE_SIZES ("H" or a size
name); PARAMS shapes use the names ('proj_size', 'H'); `init_params(I, H, ..., proj_size=P)` takes
them as keywords and `sizes_of(params)` reads them back from the parameters' shapes. rnngen.RNN,
rnngen.torch.RNN, SeqModel/CharLM and `rnngen train --size NAME=VALUE` take them the same way, and
checkpoints record them (metadata "sizes").
"""
from ..backends.checks import check_sizes, param_shape


def size_names(cell):
    """The cell's run-time size names (a module generated before sizes existed has none)."""
    return tuple(getattr(cell, "SIZES", ()))


def checked_sizes(cell, sizes, who, hidden_size=None):
    """{name: int} for the cell's SIZES from the keywords given, SIZE_DEFAULTS for the others
    (ValueError naming the keyword)."""
    return check_sizes(size_names(cell), sizes, who, getattr(cell, "SIZE_DEFAULTS", {}), hidden_size)


def state_size(cell, state, hidden_size, sizes):
    """The number of units of `state`: hidden_size, or the run-time size STATE_SIZES names."""
    name = getattr(cell, "STATE_SIZES", {}).get(state, "H")
    return hidden_size if name == "H" else sizes[name]


def state_sizes(cell, hidden_size, sizes):
    """The size of each state in STATES order."""
    return tuple(state_size(cell, s, hidden_size, sizes) for s in cell.STATES)


def output_size(cell, hidden_size, sizes):
    """The units of one direction's output: the size of the OUTPUT state."""
    return state_size(cell, cell.OUTPUT, hidden_size, sizes)


def layer_param_shape(shape, input_size, hidden_size, sizes):
    """A PARAMS shape for one layer, with the run-time sizes."""
    return param_shape(shape, input_size, hidden_size, sizes)
