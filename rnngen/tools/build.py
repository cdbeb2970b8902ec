"""Build generated modules from spec files (the compiler's pipeline: rnngen/compiler/driver.py), and
check freshness.

What a build may touch in its output folder: only modules whose header says rnngen generated them
(rnngen/header.py); anything else there is never removed, and a build that would overwrite it stops
before writing anything. A build runs in three steps:
  1. every spec is loaded and generated in memory and the output folder is checked: a bad spec, two
     specs of one cell name, or a file in the way stops the build with nothing written;
  2. each changed module is written to a temporary file and moved into place (os.replace), so a
     module is always either its old or its new text, even if the build is killed;
  3. when the build covers a whole specs folder, the modules whose header says that same folder
     produced them, but whose spec is gone, are removed. Modules of other spec folders are kept.
"""
import glob
import os
import re
import time
from dataclasses import dataclass

from ..compiler.driver import Compilation, versions  # noqa: F401  (versions: re-exported)
from ..errors import BuildError, SpecError
from ..runtime import header as headers

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # rnngen/
_TEMP = re.compile(r"^\.(?:_cuda_)?[A-Za-z][A-Za-z0-9_]*\.py\.(\d+)\.rnngen-tmp$")


def builtin_specs_dir():
    import rnngen.specs
    return os.path.dirname(os.path.abspath(rnngen.specs.__file__))


def builtin_generated_dir():
    import rnngen.generated
    return os.path.dirname(os.path.abspath(rnngen.generated.__file__))


def spec_paths(specs_dir, names=None):
    """The spec files in `specs_dir` (every *.py not starting with '_'), or those named (by file
    name without .py, which a build requires to be the cell's name)."""
    if not os.path.isdir(specs_dir):
        reason = "is not a folder" if os.path.exists(specs_dir) else "does not exist"
        raise FileNotFoundError(f"specs folder {specs_dir} {reason}")
    available = {os.path.splitext(os.path.basename(p))[0]: p
                 for p in sorted(glob.glob(os.path.join(glob.escape(specs_dir), "*.py")))
                 if not os.path.basename(p).startswith("_")}
    if not available:
        raise FileNotFoundError(f"no spec files in {specs_dir} (a spec is a *.py file whose name "
                                f"does not start with '_')")
    if not names:
        return list(available.values())
    missing = [n for n in names if n not in available]
    if missing:
        raise FileNotFoundError(f"no spec named {', '.join(missing)} in {specs_dir} "
                                f"(found: {', '.join(f'{n}.py' for n in available)})")
    return [available[n] for n in names]


def same_folder(a, b):
    """True when the paths `a` and `b` name one folder (textually, or through links)."""
    a, b = os.path.normpath(os.path.abspath(a)), os.path.normpath(os.path.abspath(b))
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def specs_folder_record(specs_dir, out_dir=None):
    """What a module's header records as the folder of its spec (see rnngen/header.py):
    BUILTIN_SPECS for the built-in specs, else the folder relative to `out_dir` (absolute without
    `out_dir`, or when no relative path exists, as across Windows drives)."""
    if same_folder(specs_dir, builtin_specs_dir()):
        return headers.BUILTIN_SPECS
    specs_dir = os.path.abspath(specs_dir)
    if out_dir is None:
        return specs_dir
    try:
        return os.path.relpath(specs_dir, os.path.abspath(out_dir)).replace(os.sep, "/")
    except ValueError:
        return specs_dir


@dataclass
class Generated:
    """One spec's modules, generated in memory."""
    path: str           # the spec file
    cell: object        # its Cell
    files: dict         # {module file name: source text}
    seconds: float      # time to generate them


def generate(path):
    """Source text of the generated CPU module for the spec at `path`."""
    g = generate_files(path)
    return g.cell.name, g.files[headers.module_file(g.cell.name, "cpu")]


def generate_files(path, out_dir=None):
    """The CPU module <cell>.py and its CUDA sibling _cuda_<cell>.py (the leading underscore keeps it
    out of rnngen.available()) for the spec at `path`, as they would be written into `out_dir`."""
    start = time.perf_counter()
    path = os.path.abspath(path)
    comp = Compilation(path, specs_folder=specs_folder_record(os.path.dirname(path), out_dir))
    cell, files = comp["load"], comp.files()
    return Generated(path, cell, files, time.perf_counter() - start)


# -- step 1: everything that can stop a build, before it writes ----------------------------------
def check_cell_names(generated):
    """SpecError unless every cell has its own name (also ignoring case: one file on macOS and
    Windows). A spec file may be named otherwise than its cell: `rnngen build NAME` and
    `rnngen show NAME` select spec files by file name, `rnngen.load(NAME)` modules by cell name."""
    seen = {}
    for g in generated:
        name = g.cell.name
        other = seen.get(name.casefold())
        if other is not None:
            same = "" if other.cell.name == name else f" as {other.cell.name!r} (names that differ only in case)"
            raise SpecError(f"cell {name!r} is also declared{same} by {other.path}; each cell needs its "
                            f"own name", file=g.path, line=g.cell.line, symbol=name)
        seen[name.casefold()] = g


def check_out_folder(out_dir, specs_dir, into_package):
    """BuildError for an output folder that no build may write."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise BuildError(f"--out {out_dir} is a file, not a folder")
    if specs_dir is not None and same_folder(out_dir, specs_dir):
        raise BuildError(f"--out {out_dir} is the specs folder: the generated modules would replace "
                         f"the spec files; choose another --out")
    if (not into_package and same_folder(out_dir, builtin_generated_dir())
            and not (specs_dir is not None and same_folder(specs_dir, builtin_specs_dir()))):
        raise BuildError(f"--out {out_dir} is rnngen's own generated/ folder, which holds the built-in "
                         f"cells; to build the specs of {specs_dir} into it, add --into-package")


@dataclass
class Plan:
    """What a build does in its output folder."""
    writes: list        # [(Generated, target, text, state, note)], state: "new", "changed" or "fresh"
    removals: list      # [target]: modules of this specs folder whose spec is gone
    kept: list          # [target]: stale-looking modules whose header names no specs folder (older)
    refused: list       # [target]: files in the way that rnngen did not generate


def plan(generated, out_dir, specs_dir, complete):
    """The Plan of a build of `generated` into `out_dir`; `complete` says they are all the specs of
    `specs_dir`, so that folder's modules without a spec are removed."""
    writes, removals, kept, refused = [], [], [], []
    for g in generated:
        for rel, text in g.files.items():
            target = os.path.join(out_dir, rel)
            if not os.path.lexists(target):
                writes.append((g, target, text, "new", ""))
                continue
            old_header = headers.read(target)
            if old_header is None:
                refused.append(target)
                continue
            with open(target, "rb") as f:
                old = f.read()
            state = "fresh" if old == text.encode("utf-8") else "changed"
            writes.append((g, target, text, state, _replaces(old_header, out_dir, g.path, state)))
    if complete and os.path.isdir(out_dir):
        produced = {rel for g in generated for rel in g.files}
        for rel in sorted(os.listdir(out_dir)):
            target = os.path.join(out_dir, rel)
            header = headers.read(target) if rel.endswith(".py") and rel not in produced else None
            if header is None:
                continue                    # not a module rnngen generated, or one this build writes
            folder = headers.specs_folder_of(header, out_dir, builtin_specs_dir())
            if folder is None:
                kept.append(target)
            elif same_folder(folder, specs_dir):
                removals.append(target)
    return Plan(writes, removals, kept, refused)


def _replaces(old_header, out_dir, spec_path, state):
    """A note for the log when a build replaces the module of another specs folder."""
    folder = headers.specs_folder_of(old_header, out_dir, builtin_specs_dir())
    if state == "fresh" or folder is None or same_folder(folder, os.path.dirname(spec_path)):
        return ""
    return f"  (replaces the module built from {old_header.specs_folder})"


def _refusal(targets, out_dir, check):
    names = ", ".join(os.path.basename(t) for t in targets)
    one = len(targets) == 1
    verb = "a build would overwrite" if check else "the build would overwrite"
    return BuildError(f"{names} in {out_dir} {'is' if one else 'are'} not {'a module' if one else 'modules'} "
                      f"rnngen generated (no rnngen header) and {verb} {'it' if one else 'them'}; "
                      f"nothing was written (move {'it' if one else 'them'} away, or choose another --out)")


# -- steps 2 and 3: write, then remove -----------------------------------------------------------
def _pid_alive(pid):
    if pid == os.getpid() or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                         # alive, another user's
    return True


def remove_stale_temps(out_dir):
    """Remove the temporary files of earlier builds into `out_dir` that were killed before moving
    them into place (named .<module>.<pid>.rnngen-tmp; a running build's are left alone)."""
    for rel in os.listdir(out_dir):
        match = _TEMP.match(rel)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(out_dir, rel))
            except OSError:
                pass                        # a read-only folder: nothing of this build goes there


def write_atomic(target, text):
    """Write `text` to `target` through a temporary file in its folder and os.replace: `target` is
    always either its old or its new text."""
    folder, rel = os.path.split(target)
    tmp = os.path.join(folder, f".{rel}.{os.getpid()}.rnngen-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _io_error(what, path, exc, done):
    after = f"; the {done} modules written before it are complete, run the build again" if done else \
        "; nothing was written"
    return BuildError(f"cannot {what} {path}: {exc.strerror or exc}{after}")


def _log_line(name, state, seconds, target):
    time_text = f"{seconds:6.2f} s" if seconds is not None else " " * 8
    return f"{name:14s} {state:8s} {time_text}  {os.path.relpath(target)}"


def build(paths, out_dir, check=False, log=print, complete=False, specs_dir=None, into_package=False):
    """Write (or with check=True, compare) the modules of the specs at `paths` in `out_dir`. Returns
    the files written or removed (with check=True: those a build would write or remove).

    `specs_dir` is the folder of the specs (default: the folder of `paths`, which must then be one).
    complete=True says `paths` are all the specs of `specs_dir`: a module in `out_dir` whose header
    says `specs_dir` produced it, but which none of them produces (its spec was removed or renamed),
    is then stale, and a build removes it. Building specs other than the built-in ones into rnngen's
    own generated/ folder needs into_package=True.

    Raises SpecError (a bad spec) or BuildError (an output folder it must not or cannot write) before
    writing anything; an I/O failure midway is a BuildError that says what was written.
    """
    if not paths:
        raise BuildError("no spec files to build; nothing was written or removed")
    paths = [os.path.abspath(p) for p in paths]
    folders = {os.path.dirname(p) for p in paths}
    if specs_dir is None and len(folders) == 1:
        specs_dir = folders.pop()
    if complete and specs_dir is None:
        raise BuildError("a complete build takes the specs of one folder")
    out_dir = os.path.abspath(out_dir)
    check_out_folder(out_dir, specs_dir, into_package)
    generated = [generate_files(p, out_dir) for p in paths]
    check_cell_names(generated)
    todo = plan(generated, out_dir, specs_dir, complete)
    if todo.refused:
        raise _refusal(todo.refused, out_dir, check)
    if check:
        return _report(todo, log)
    return _apply(todo, out_dir, log)


def _report(todo, log):
    stale = []
    for g, target, _, state, note in todo.writes:
        log(_log_line(g.cell.name, "fresh" if state == "fresh" else "stale", g.seconds, target) + note)
        if state != "fresh":
            stale.append(target)
    for target in todo.removals:
        log(_log_line("(no spec)", "stale", None, target))
    for target in todo.kept:
        log(_log_line("(no spec)", "kept", None, target) + "  (made by an older rnngen: header names no specs folder)")
    return stale + todo.removals


def _apply(todo, out_dir, log):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise _io_error("create the folder", out_dir, exc, 0) from None
    remove_stale_temps(out_dir)
    changed = []
    for g, target, text, state, note in todo.writes:
        if state != "fresh":
            try:
                write_atomic(target, text)
            except OSError as exc:
                raise _io_error("write", target, exc, len(changed)) from None
            changed.append(target)
        log(_log_line(g.cell.name, "fresh" if state == "fresh" else "written", g.seconds, target) + note)
    for target in todo.removals:
        try:
            os.remove(target)
        except OSError as exc:
            raise _io_error("remove", target, exc, len(changed)) from None
        changed.append(target)
        log(_log_line("(no spec)", "removed", None, target))
    for target in todo.kept:
        log(_log_line("(no spec)", "kept", None, target) + "  (made by an older rnngen: header names no specs folder)")
    return changed
