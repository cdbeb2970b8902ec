"""Run a spec file and return its Cell, turning every failure into a SpecError with file and line."""
import os
import sys
import traceback
import types

import sympy as sp

from ..errors import SpecError
from .cell import Cell


def _spec_line(exc, path):
    """The deepest line of the spec file in the exception's traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    if line is None and isinstance(exc, SyntaxError) and exc.filename and \
            os.path.abspath(exc.filename) == path:
        line = exc.lineno
    return line


def load_spec(path):
    """Execute the spec at `path` and return its checked `cell`."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise SpecError("spec file not found", file=path)
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = f"_rnngen_spec_{stem}"
    module = types.ModuleType(module_name)
    module.__file__ = path
    try:
        with open(path, "rb") as f:
            source = f.read()
        # compiled here, not imported: no __pycache__ is written into the user's specs folder, and
        # no cached bytecode of an earlier version of the file (same size, same second) is run
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    except SpecError as exc:
        raise exc.located(path, _spec_line(exc, path)) from None
    except KeyboardInterrupt:
        raise                   # the user's Ctrl-C: the command stops, as any command does
    except BaseException as exc:  # any failure of user code (sys.exit() too) is reported at its line
        line = _spec_line(exc, path)
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):
            message = (f"the spec raised SystemExit({exc.code!r}) (as sys.exit() does); a spec file "
                       f"declares a cell and must not exit")
        if isinstance(exc, ValueError) and "unpack" in str(exc):
            cells = [v for v in vars(module).values() if isinstance(v, Cell)]
            lins = [lin for c in cells for lin in c.linears if lin.line == line]
            if lins:
                message = (f"linear {lins[-1].name!r} declares {lins[-1].gates} gates, "
                           f"but the spec unpacks a different number ({exc})")
                raise SpecError(message, file=path, line=line, symbol=lins[-1].name) from None
        raise SpecError(message, file=path, line=line) from None
    finally:
        sys.modules.pop(module_name, None)
    cell = getattr(module, "cell", None)
    if not isinstance(cell, Cell):
        raise SpecError("spec file must define `cell = Cell(...)`", file=path)
    cell.source_names = _source_names(cell, vars(module))     # before check(): errors use the spec's names
    try:
        cell.check()
    except SpecError as exc:
        raise exc.located(path, None) from None
    cell.source_exprs = _source_exprs(cell, vars(module))
    cell.path = path
    doc = vars(module).get("__doc__")
    cell.doc = doc.strip() if isinstance(doc, str) else ""      # the spec's docstring, for `rnngen show`
    return cell


def _source_names(cell, namespace):
    """The spec's own variable names for its symbols (xi for ih_0), used to name kernel locals."""
    ours = {cell.state_symbol(s) for s in cell.states}
    ours |= {o for lin in cell.linears for o in lin.outputs} | {s for v in cell.vectors for s in v.symbols}
    ours |= {m.symbol for m in cell.means}
    names = {}
    for var, value in namespace.items():
        if not var.startswith("_") and isinstance(value, sp.Symbol) and value in ours:
            names.setdefault(value, var)
    return names


def _source_exprs(cell, namespace):
    """The spec's named intermediate expressions [(name, expr)] in definition order (i = sigmoid(..))."""
    known = set(cell.source_names) if hasattr(cell, "source_names") else set()
    ours = {cell.state_symbol(s) for s in cell.states}
    ours |= {o for lin in cell.linears for o in lin.outputs} | {s for v in cell.vectors for s in v.symbols}
    ours |= {m.symbol for m in cell.means}
    out, seen = [], set()
    for var, value in namespace.items():
        if var.startswith("_") or not isinstance(value, sp.Expr) or isinstance(value, (sp.Symbol, sp.Number)):
            continue
        if value.free_symbols <= ours and value not in seen and value not in known:
            seen.add(value)
            out.append((var, value))
    return out
