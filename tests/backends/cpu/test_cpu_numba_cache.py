"""rnngen/numba_cache.py: an installed rnngen's Numba cache goes to a per-user folder, never into
site-packages; a checkout keeps Numba's in-tree cache, and NUMBA_CACHE_DIR still wins.
(.ci/install_order.sh runs README's two install commands for real, in both orders.)"""
import os
import subprocess
import sys
import textwrap

import pytest

from rnngen import __version__
from rnngen.backends.cpu import numba_cache


def fake_site(tmp_path, record_lines):
    """site-packages/rnngen/ with a rnngen-<version>.dist-info/RECORD holding `record_lines`."""
    site = tmp_path / "site-packages"
    (site / "rnngen" / "generated").mkdir(parents=True)
    (site / "rnngen" / "__init__.py").write_text("")
    info = site / f"rnngen-{__version__}.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("".join(line + "\n" for line in record_lines))
    return site / "rnngen"


WHEEL_RECORD = ["rnngen/__init__.py,sha256=abc,10", "rnngen/generated/lstm.py,sha256=def,20",
                f"rnngen-{__version__}.dist-info/RECORD,,"]
EDITABLE_RECORD = [f"__editable__.rnngen-{__version__}.pth,sha256=abc,83",
                   f"__editable___rnngen_{__version__.replace('.', '_')}_finder.py,sha256=def,3461"]


def test_a_wheel_install_is_installed(tmp_path):
    assert numba_cache.is_installed(fake_site(tmp_path, WHEEL_RECORD))


@pytest.mark.parametrize("record", [EDITABLE_RECORD, ["rnngen_extra/__init__.py,sha256=abc,1"]],
                         ids=["editable", "another package"])
def test_a_record_not_listing_the_package_is_not_installed(tmp_path, record):
    assert not numba_cache.is_installed(fake_site(tmp_path, record))


def test_a_folder_without_dist_info_is_not_installed(tmp_path):
    package = fake_site(tmp_path, WHEEL_RECORD)
    for record in package.parent.glob("*.dist-info/RECORD"):
        record.unlink()
    assert not numba_cache.is_installed(package)


def test_this_checkout_is_not_installed():
    """The tests run from a source checkout (editable install): Numba's in-tree cache stays."""
    assert numba_cache.installed_package_dir() is None
    assert not numba_cache.claims(os.path.join(numba_cache.PACKAGE_DIR, "network.py"), None)


def test_claims_only_files_inside_the_package(tmp_path):
    package = str(fake_site(tmp_path, WHEEL_RECORD))
    assert numba_cache.claims(os.path.join(package, "generated", "lstm.py"), package)
    assert numba_cache.claims(os.path.join(package, "network.py"), package)
    assert not numba_cache.claims(package + "_extra/generated/lstm.py", package)  # a name sharing the prefix
    assert not numba_cache.claims(str(tmp_path / "mycells" / "lstm.py"), package)  # a user's build folder


def test_claims_through_a_symlinked_path(tmp_path):
    """venvs reach site-packages through lib64 -> lib; the rule compares real paths."""
    package = fake_site(tmp_path, WHEEL_RECORD)
    (tmp_path / "lib64").symlink_to(package.parent)
    assert numba_cache.claims(str(tmp_path / "lib64" / "rnngen" / "generated" / "lstm.py"),
                              os.path.realpath(package))


def test_cache_root_follows_xdg_cache_home(tmp_path, monkeypatch):
    if sys.platform in ("darwin", "win32"):
        pytest.skip("XDG_CACHE_HOME is the Linux/Unix rule; macOS and Windows use their own cache folders")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache.cache_root() == str(tmp_path / "xdg" / "rnngen" / "numba")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert numba_cache.cache_root() == os.path.expanduser("~/.cache/rnngen/numba")


def test_registered_first_by_the_generated_package():
    import rnngen.generated  # noqa: F401  (registers)
    assert numba_cache._CacheImpl._locator_classes[0] is numba_cache.InstalledPackageCacheLocator
    numba_cache.register()
    assert numba_cache._CacheImpl._locator_classes.count(numba_cache.InstalledPackageCacheLocator) == 1


# A real compile in a fresh process: a module inside a fake installed rnngen, with njit(cache=True).
KERNEL = "from numba import njit\n\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
RUN = textwrap.dedent("""
    import importlib.util, sys
    from rnngen.backends.cpu import numba_cache
    numba_cache.PACKAGE_DIR = sys.argv[1]          # the fake installed package stands in for rnngen's
    numba_cache.installed_package_dir.cache_clear()
    numba_cache.register()
    spec = importlib.util.spec_from_file_location("kernel", sys.argv[2])
    module = sys.modules["kernel"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.twice(21) == 42
    print(module.twice.stats.cache_hits and "hit" or "miss", module.twice._cache.cache_path)
""")


def run_kernel(tmp_path, package, kernel, **env):
    """Compile and call the kernel in a fresh process: ("hit" or "miss", the folder Numba cached in)."""
    env = {**{k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"},
           "XDG_CACHE_HOME": str(tmp_path / "xdg"), **env}
    result = subprocess.run([sys.executable, "-c", RUN, str(package), str(kernel)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    hit, path = result.stdout.split()
    return hit, path


def cache_files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_an_installed_module_is_cached_in_the_user_folder_and_reused(tmp_path):
    package = fake_site(tmp_path, WHEEL_RECORD)
    kernel = package / "generated" / "kernel.py"
    kernel.write_text(KERNEL)
    user_root = tmp_path / "xdg" / "rnngen" / "numba" / f"rnngen-{__version__}"
    first = run_kernel(tmp_path, package, kernel)
    second = run_kernel(tmp_path, package, kernel)
    assert os.path.dirname(first[1]) == str(user_root)
    assert first == ("miss", second[1]) and second[0] == "hit"   # a second process reuses the cache
    assert cache_files(user_root)
    assert not (package / "generated" / "__pycache__").exists()   # nothing written into the package
    assert not cache_files(package)


def test_a_checkout_module_keeps_the_in_tree_cache(tmp_path):
    package = fake_site(tmp_path, EDITABLE_RECORD)        # not installed: a checkout
    kernel = package / "generated" / "kernel.py"
    kernel.write_text(KERNEL)
    _, path = run_kernel(tmp_path, package, kernel)
    assert path == str(package / "generated" / "__pycache__")
    assert cache_files(package / "generated" / "__pycache__")
    assert not (tmp_path / "xdg" / "rnngen").exists()


def test_the_users_numba_cache_dir_wins(tmp_path):
    package = fake_site(tmp_path, WHEEL_RECORD)
    kernel = package / "generated" / "kernel.py"
    kernel.write_text(KERNEL)
    _, path = run_kernel(tmp_path, package, kernel, NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    assert os.path.dirname(path) == str(tmp_path / "mine")
    assert cache_files(tmp_path / "mine")
    assert not (tmp_path / "xdg" / "rnngen").exists()
    assert not (package / "generated" / "__pycache__").exists()
