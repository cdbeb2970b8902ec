"""Where Numba caches the compiled kernels of an installed rnngen: a per-user folder, never site-packages.

Numba's `cache=True` writes its index and object files into `__pycache__` beside the module. For an
installed rnngen that is `site-packages/rnngen/generated/__pycache__`: pip's uninstall does not know
those files and leaves the folder, and Python then takes the left-over `rnngen/` for an empty
namespace package that shadows a later editable install. So, for the modules of an installed rnngen
only, `register()` puts a locator in front of Numba's own ones that sends their cache to
`<user cache dir>/rnngen/numba/` (`$XDG_CACHE_HOME/rnngen/numba`, default `~/.cache/rnngen/numba` on
Linux). A source checkout or an editable install keeps Numba's in-tree cache, nothing else is
claimed, and a user's NUMBA_CACHE_DIR (or NUMBA_CACHE_LOCATOR_CLASSES) still wins: Numba's
global settings are left as they are.
"""
import functools
import glob
import os

from numba.core import caching, config
from numba.misc.appdirs import AppDirs

from ...version import __version__

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # rnngen/

# numba 0.68 dropped the underscore of these two names
_CacheImpl = getattr(caching, "CacheImpl", None) or caching._CacheImpl


def is_installed(package_dir):
    """True when an installer put `package_dir` where it is: a `<name>-*.dist-info/RECORD` beside it
    lists its `__init__.py` (so pip's uninstall removes what the RECORD lists, and nothing else).
    False for a source checkout and for an editable install, whose dist-info lists only a finder."""
    parent, name = os.path.split(os.path.realpath(package_dir))
    entry = f"{name}/__init__.py,"
    for record in glob.glob(os.path.join(glob.escape(parent), f"{name}-*.dist-info", "RECORD")):
        try:
            with open(record, encoding="utf-8") as f:
                if any(line.startswith(entry) for line in f):
                    return True
        except OSError:
            continue
    return False


@functools.lru_cache(maxsize=None)
def installed_package_dir():
    """The real path of rnngen's package folder when it is installed, None when it is a checkout."""
    return os.path.realpath(PACKAGE_DIR) if is_installed(PACKAGE_DIR) else None


def cache_root():
    """The per-user folder holding the Numba cache of installed rnngen versions."""
    return os.path.join(AppDirs(appname="rnngen", appauthor=False).user_cache_dir, "numba")


def claims(py_file, package_dir):
    """True when `py_file` lies inside `package_dir` (None: nothing is claimed)."""
    if package_dir is None:
        return False
    try:
        return os.path.commonpath([os.path.realpath(py_file), package_dir]) == package_dir
    except ValueError:  # paths on different drives (Windows)
        return False


class InstalledPackageCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba cache locator for the modules of an installed rnngen: `cache_root()/rnngen-<version>/`,
    then one folder per source folder (Numba's own naming: `<folder name>_<sha1 of its path>`), so
    two installs or two versions never share cache files. Other files are left to Numba's locators."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(cache_root(), f"rnngen-{__version__}",
                                        self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        if config.CACHE_DIR or not claims(py_file, installed_package_dir()):
            return None  # the user's NUMBA_CACHE_DIR wins; other files are not ours
        return super().from_function(py_func, py_file)


def register():
    """Put the locator first in Numba's list (once). It claims only an installed rnngen's files."""
    locators = _CacheImpl._locator_classes
    if InstalledPackageCacheLocator not in locators:
        locators.insert(0, InstalledPackageCacheLocator)
