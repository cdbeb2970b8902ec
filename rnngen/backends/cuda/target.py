"""The CUDA target as the compiler driver sees it: the names its kernels use as globals, its
layout, its emitter and template, and the files whose bytes go into the build hash."""
import os

from ...compiler.render import file_bytes, render as render_template
from . import emit as _emit
from .layout import CudaLayout

NAME = "cuda"
KERNEL_GLOBALS = ("cuda", "math", "range", "min")     # a spec value of such a name is renamed
TIE_LINEARS = True                                    # save one sum and one dZ for tied linears
_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(_HERE, "module.py.j2")
LIBRARIES = (os.path.join(_HERE, "mathlib.py"), os.path.join(_HERE, "simwarp.py"),
             os.path.join(_HERE, "elementwise.py"), os.path.join(_HERE, "heads.py"))


def file_name(cell_name):
    return f"_cuda_{cell_name}.py"     # the leading underscore keeps it out of rnngen.available()


def source_bytes():
    return file_bytes(TEMPLATE, *LIBRARIES)


def layout(kernel):
    return CudaLayout(kernel)


def emit(kernel, layout, header, equations, rate0=None):
    """The CudaModule; `rate0`: the CudaModule of the cell with every mask 1 (None: no masks)."""
    return _emit.emit(kernel, layout, header, equations, rate0)


def render(module):
    return render_template(TEMPLATE, m=module, n=module.n)
