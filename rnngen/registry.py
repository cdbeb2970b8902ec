"""Find and import generated modules: the built-in ones, or those a user built into a folder."""
import hashlib
import importlib
import os

from .device import import_file


def _builtin_dir():
    from .build import builtin_generated_dir
    return builtin_generated_dir()


def available(path=None):
    """Names of the cells whose generated modules are in `path` (default: the built-in ones)."""
    folder = path or _builtin_dir()
    return sorted(os.path.splitext(f)[0] for f in os.listdir(folder)
                  if f.endswith(".py") and not f.startswith("_"))


def load(name, path=None):
    """Import the generated module of cell `name` (built-in, or from folder `path` built with --out)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"cell name must be an identifier, got {name!r}")
    if path is None:
        try:
            return importlib.import_module(f"rnngen.generated.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rnngen.generated.{name}":
                raise
            raise ValueError(f"no built-in cell {name!r}; available: {', '.join(available())}") from None
    folder = os.path.abspath(path)
    file = os.path.join(folder, f"{name}.py")
    if not os.path.isfile(file):
        raise ValueError(f"no generated module {name}.py in {folder}; build it with "
                         f"`rnngen build {name} --specs SPECS --out {path}`")
    # the same name in every process (str hash() is salted per process), so Numba's cache is reused
    module_name = f"rnngen_user_{hashlib.sha256(folder.encode()).hexdigest()[:12]}_{name}"
    return import_file(module_name, file)
