"""The CPU target as the compiler driver sees it: the names its kernels use as globals, its
layout, its emitter and template, and the files whose bytes go into the build hash."""
import os

from ...compiler.render import file_bytes, render as render_template
from . import emit as _emit
from .layout import CpuLayout

NAME = "cpu"
KERNEL_GLOBALS = ("np", "math", "range")      # a spec value of such a name is renamed
TIE_LINEARS = True                            # save one sum and one dZ for tied linears
_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(_HERE, "module.py.j2")
LIBRARY = os.path.join(_HERE, "mathlib.py")
PIPELINE = os.path.join(_HERE, "loop_pipeline.py")       # how Numba compiles the loops
KERNEL_LIBRARIES = [os.path.join(_HERE, name) for name in ("pointers.py", "stepgemm.py", "host_gemm.py", "input_chunks.py", "entry_ops.py")]   # mathlib imports them


def file_name(cell_name):
    return f"{cell_name}.py"


def source_bytes():
    """The template, the math library (and the modules it takes the kernels' pointers and per-step
    GEMM from) and the compiler pipeline the generated modules import (see mathlib.py)."""
    return file_bytes(TEMPLATE, LIBRARY, *KERNEL_LIBRARIES, PIPELINE)


def layout(kernel):
    return CpuLayout(kernel)


def emit(kernel, layout, header, equations, rate0=None):
    """The CpuModule; `rate0`: the CpuModule of the cell with every mask 1 (None: no masks)."""
    return _emit.emit(kernel, layout, header, equations, rate0)


def render(module):
    return render_template(TEMPLATE, m=module, n=module.n)
