"""What training a SeqModel takes in memory, estimated without allocating it, and what is left."""
import os

import numpy as np

from ..backends.checks import param_shape
from ..runtime.network import RNN
from ..runtime.sizes import checked_sizes, output_size as unit_output_size


def parameter_shapes(cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False,
                     sizes=None):
    """{name: shape} of a SeqModel's parameters (the RNN's under torch names, then the dense
    layer's), computed from the cell's PARAMS without allocating anything; `sizes`: the cell's
    run-time sizes (proj_size=...)."""
    directions = 2 if bidirectional else 1
    sizes = checked_sizes(cell, sizes, "parameter_shapes", hidden_size)
    out = unit_output_size(cell, hidden_size, sizes)
    shapes = {}
    for k in range(num_layers):
        layer_in = input_size if k == 0 else out * directions
        for d in range(directions):
            for name, shape in cell.PARAMS.items():
                shapes[RNN._key(name, k, d)] = param_shape(shape, layer_in, hidden_size, sizes)
    shapes["dense.weight"] = (output_size, out * directions)
    shapes["dense.bias"] = (output_size,)
    return shapes


def training_memory_bytes(cell, input_size, hidden_size, output_size, num_layers=1, bidirectional=False,
                          seq_len=1, batch_size=1, dtype=np.float32, optimizer="adam", sizes=None):
    """An estimate (from above) of the memory that training a SeqModel takes: parameters, their
    gradients and a transient copy, Adam's two moments, and the activations of one step of
    seq_len x batch_size (each linear's outputs, the states and outputs of every layer, kept for
    backward, and as much again for their gradients; the logits, their softmax and gradient)."""
    shapes = parameter_shapes(cell, input_size, hidden_size, output_size, num_layers, bidirectional, sizes)
    run_sizes = checked_sizes(cell, sizes, "training_memory_bytes", hidden_size)
    sizes = [int(np.prod(s, dtype=object)) for s in shapes.values()]
    copies = 3 + (2 if optimizer == "adam" else 1)
    elements = copies * sum(sizes) + 3 * max(sizes)          # + the optimizer's temporaries
    rows = sum(param_shape(s, 1, hidden_size, run_sizes)[0] for s in cell.PARAMS.values() if len(s) == 2)
    per_layer = rows + (len(cell.STATES) + 2) * hidden_size
    directions = 2 if bidirectional else 1
    elements += 2 * seq_len * batch_size * num_layers * directions * per_layer
    elements += seq_len * batch_size * (4 * output_size + input_size)
    return elements * np.dtype(dtype).itemsize


def available_memory_bytes():
    """The memory this process may still use: /proc/meminfo's MemAvailable (Linux), lowered to what
    a cgroup v2 limit leaves, else the physical memory; None when none of them can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            return None
    return min(found)


def format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
