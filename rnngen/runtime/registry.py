"""Find and import generated modules: the built-in ones, or those a user built into a folder.

Only files that rnngen generated are imported: the cell name must be an identifier not starting
with '_', and the file's header (rnngen/header.py) must say that rnngen generated it for that cell.
A module loaded from a folder (`path=`) is imported under a name derived from the folder and the
file's content, compiled from the bytes that were checked: a rebuilt file is noticed and imported
anew (a module loaded before keeps its own kernels), and the same content gets the same name in
every process. (Numba's on-disk cache, next to the file, is keyed by the file, its mtime and size
and the functions' bytecode, so it stays right for every version.)
"""
import hashlib
import importlib
import importlib.util
import os
import sys

from . import header

BUILD_HINT = "build one with `rnngen build NAME --specs DIR --out DIR` and pass path=DIR"


def builtin_dir():
    """The package's own folder of generated modules (without importing the compiler)."""
    import rnngen.generated
    return os.path.dirname(os.path.abspath(rnngen.generated.__file__))


def available(path=None):
    """Names of the cells whose generated modules are in `path` (default: the built-in ones):
    the files <cell>.py whose header says rnngen generated them for that cell."""
    folder = os.path.abspath(path) if path is not None else builtin_dir()
    if not os.path.isdir(folder):
        raise ValueError(f"path {folder} is not a folder")
    names = []
    for file in sorted(os.listdir(folder)):
        found = header.read(os.path.join(folder, file)) if file.endswith(".py") else None
        if found is not None and found.kind == "cpu" and not found.cell.startswith("_"):
            names.append(found.cell)
    return names


def _unknown(name, folder, builtin):
    cells = ", ".join(available(folder)) or "none"
    if builtin:
        return ValueError(f"no built-in cell {name!r} (looked in the built-in generated folder {folder}; "
                          f"available: {cells}); for a cell of your own, "
                          f"{BUILD_HINT.replace('NAME', name)}")
    return ValueError(f"no generated cell {name!r} in {folder} (available: {cells}); build it with "
                      f"`rnngen build {name} --specs DIR --out {folder}`")


def read_generated(file, name, kind="cpu"):
    """(bytes of `file`, its spec sha256) after checking from its text that rnngen generated it
    for cell `name` (header.require: a ValueError naming the file otherwise)."""
    sha = header.require(file, name, kind)
    with open(file, "rb") as f:
        source = f.read()
    found = header.parse(source[:4096].decode("utf-8", errors="replace"))
    if found is None or (found.cell, found.kind, found.sha256) != (name, kind, sha):
        raise ValueError(f"{file} changed while it was being read (a build running?); load it again")
    return source, sha


def load(name, path=None):
    """Import the generated module of cell `name`: a built-in one, or the one built into folder
    `path` (`rnngen build NAME --specs DIR --out path`). A file rebuilt since an earlier load is
    imported anew."""
    header.check_cell_name(name)
    builtin = path is None
    folder = builtin_dir() if builtin else os.path.abspath(path)
    if not os.path.isdir(folder):
        raise ValueError(f"path {folder} is not a folder; {BUILD_HINT.replace('NAME', name)}")
    file = os.path.join(folder, f"{name}.py")
    if not os.path.isfile(file):
        raise _unknown(name, folder, builtin)
    source, _ = read_generated(file, name)
    if builtin:
        return importlib.import_module(f"rnngen.generated.{name}")
    return import_source(module_name(folder, name, source), file, source)


def module_name(folder, name, source):
    """rnngen_user_<folder hash>_<name>_<content hash>: the same in every process (str hash() is
    salted per process), different for every content of the file."""
    where = hashlib.sha256(folder.encode()).hexdigest()[:12]
    what = hashlib.sha256(source).hexdigest()[:12]
    return f"rnngen_user_{where}_{name}_{what}"


def import_source(module_name, file, source):
    """Import `source` (the bytes read from `file`) as module `module_name`; once: a later call
    gets sys.modules'. The bytes are compiled as they were read and checked, never a cached .pyc
    of an earlier version of the file."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    code = compile(source, file, "exec", dont_inherit=True)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
