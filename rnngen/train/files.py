"""Files written atomically and checked for writability, for checkpoints: a temporary file beside
the target, fsynced, then os.replace; temporaries of killed writers are cleaned up."""
import hashlib
import os
import re
import secrets
import stat

_TEMP_INFIX = ".tmp-"


def _temp_stem(target):
    """The start of the temporary files' names of checkpoint `target` (its basename, hidden)."""
    base = os.path.basename(target)
    if len(base) > 120:          # a pid and random digits follow: stay under NAME_MAX (255)
        base = base[:80] + "~" + hashlib.sha256(base.encode()).hexdigest()[:16]
    return "." + base + _TEMP_INFIX


def _process_alive(pid):
    if os.name != "posix":
        return True                      # no safe probe: never remove another process's file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_orphaned_temps(target):
    """Remove the temporary files that earlier saves of `target` left behind when they were killed:
    files named .<target name>.tmp-<pid>-<hex>.npz in its folder whose process <pid> is gone."""
    folder = os.path.dirname(os.path.abspath(target))
    pattern = re.compile(re.escape(_temp_stem(target)) + r"(\d+)-[0-9a-f]+\.npz")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(target):
    """(fd, name) of a new file .<target name>.tmp-<pid>-<hex>.npz beside `target` (mode: the
    umask's, as for any new file). Raises OSError."""
    stem = os.path.join(os.path.dirname(target), _temp_stem(target) + f"{os.getpid()}-")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = stem + secrets.token_hex(4) + ".npz"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_atomically(path, write):
    """Call write(binary file) on a new temporary file beside `path`, fsync it, then os.replace it
    onto `path`: `path` is either its old content or the complete new one, never a part. A save
    that is killed leaves its temporary file; the next save of the same path removes it."""
    path = os.fspath(path)
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise ValueError(f"cannot write {path}: it is a folder")
    folder = os.path.dirname(target)
    _remove_orphaned_temps(target)
    try:
        fd, tmp = _create_temp(target)
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror} ({folder})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))   # replacing keeps the mode
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    _fsync_folder(folder)
    return path


def check_writable(path, flag="path"):
    """None when `path` can be written by write_atomically, else a one-line reason naming `flag`.
    Creates nothing: the probe file it makes beside `path` is removed at once (and, were the
    process killed in between, by the next save, as a temporary file of `path`)."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        return f"{flag} {path} is a folder; name a file in it (e.g. {os.path.join(path, 'charlm.npz')})"
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist (create it first)"
        return f"{flag} {path}: {folder} {what}"
    try:
        fd, probe = _create_temp(target)
    except OSError as exc:
        return f"{flag} {path}: cannot write in {folder} ({exc.strerror})"
    os.close(fd)
    os.remove(probe)
    return None
