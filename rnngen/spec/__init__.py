"""What users write: `Cell`, the pointwise functions, and the loader that runs a spec file.

    from rnngen.spec import Cell, sigmoid, tanh

Importing this package imports SymPy; the runtime (rnngen.load, rnngen.RNN) never does.
"""
from .cell import Cell, Linear, Mask, Mean, Vector, X
from .sizes import HIDDEN, Size
from .norms import layer_norm
from .functions import (KNOWN_FUNCTIONS, exp, exp_nonpositive, log, log_sigmoid, maximum, relu, sigmoid,
                        softplus, sqrt, step, tanh)

__all__ = ["Cell", "Linear", "Mask", "Mean", "Vector", "X", "Size", "HIDDEN", "KNOWN_FUNCTIONS", "exp",
           "exp_nonpositive", "log", "log_sigmoid", "maximum", "relu", "sigmoid", "softplus", "sqrt", "step", "tanh",
           "layer_norm"]
