"""Checks of the arguments users pass to the runtime and the trainers (a ValueError naming the
argument): integers, positive numbers, flags, dtypes, devices."""
import numpy as np

from ..backends.checks import DTYPES

DEVICES = ("cpu", "cuda")


def as_int(name, value, minimum):
    """An int >= minimum (not a bool, not a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def positive(name, value):
    """A finite float > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def flag(name, value):
    """A bool (numpy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def probability(name, value):
    """A number in [0, 1) (a dropout rate)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value}")
    return value


def float_dtype(dtype):
    """np.dtype of float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype.type not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def device_name(device):
    """'cpu' or 'cuda' (a torch.device works too; 'cuda:1' is refused: the current CUDA device)."""
    name = getattr(device, "type", device)
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if name not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda' (the current CUDA device), got {device!r}")
    return name
