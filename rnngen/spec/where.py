"""Where a spec's call came from, for its SpecErrors: the first frame outside the rnngen package
(the spec's own line), and the checks of the names a spec gives."""
import keyword
import os
import sys

from ..errors import SpecError

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # rnngen/


def caller():
    """(file, line) of the first frame outside the rnngen package: the spec's own line."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


def fail(message, symbol=None):
    file, line = caller()
    raise SpecError(message, file=file, line=line, symbol=symbol)


def check_identifier(kind, name):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        fail(f"{kind} name must be a Python identifier, got {name!r}", symbol=str(name))
    if name.startswith("_"):
        why = ("reserved for the modules rnngen generates beside a cell's, like _cuda_<cell>.py"
               if kind == "cell" else "such names belong to the generated code")
        fail(f"{kind} name {name!r} must not start with '_' ({why})", symbol=name)
