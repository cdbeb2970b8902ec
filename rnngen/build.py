"""Build generated modules from spec files (the pipeline is rnngen.compiler.driver), and check freshness."""
import glob
import os
import time

from .compiler import driver
from .compiler.driver import versions  # noqa: F401  (re-exported)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def builtin_specs_dir():
    import rnngen.specs
    return os.path.dirname(os.path.abspath(rnngen.specs.__file__))


def builtin_generated_dir():
    import rnngen.generated
    return os.path.dirname(os.path.abspath(rnngen.generated.__file__))


def spec_paths(specs_dir, names=None):
    """The spec files in `specs_dir` (every *.py not starting with '_'), or those named."""
    available = {os.path.splitext(os.path.basename(p))[0]: p
                 for p in sorted(glob.glob(os.path.join(specs_dir, "*.py")))
                 if not os.path.basename(p).startswith("_")}
    if not names:
        return list(available.values())
    missing = [n for n in names if n not in available]
    if missing:
        raise FileNotFoundError(f"no spec named {', '.join(missing)} in {specs_dir} "
                                f"(available: {', '.join(available)})")
    return [available[n] for n in names]


def generate(path):
    """Source text of the generated module for the spec at `path`."""
    name, files = generate_files(path)
    return name, files[f"{name}.py"]


def generate_files(path):
    """{file name: source text}: the CPU module <cell>.py and its CUDA sibling _cuda_<cell>.py
    (the leading underscore keeps it out of rnngen.available())."""
    return driver.generate_files(path)


def build(paths, out_dir, check=False, log=print, complete=False):
    """Write (or with check=True, compare) one module per spec. Returns the stale or written files.

    complete=True says `paths` are all the specs of the folder: a module in `out_dir` that none of
    them produces (its spec was removed or renamed) is then stale, and a build removes it.
    """
    os.makedirs(out_dir, exist_ok=True) if not check else None
    changed, produced = [], set()
    for path in paths:
        start = time.perf_counter()
        name, files = generate_files(path)
        for rel, text in files.items():
            produced.add(rel)
            target = os.path.join(out_dir, rel)
            old = None
            if os.path.exists(target):
                with open(target, encoding="utf-8") as f:
                    old = f.read()
            state = "fresh" if old == text else ("stale" if check else "written")
            if old != text:
                changed.append(target)
                if not check:
                    tmp = target + ".tmp"
                    with open(tmp, "w", encoding="utf-8") as f:
                        f.write(text)
                    os.replace(tmp, target)
            log(f"{name:14s} {state:8s} {time.perf_counter() - start:6.2f} s  {os.path.relpath(target)}")
    if complete and os.path.isdir(out_dir):
        for rel in sorted(os.listdir(out_dir)):
            if rel.endswith(".py") and rel != "__init__.py" and rel not in produced:
                target = os.path.join(out_dir, rel)
                changed.append(target)
                if not check:
                    os.remove(target)
                log(f"{'(no spec)':14s} {'stale' if check else 'removed':8s} {'':8s}  {os.path.relpath(target)}")
    return changed
