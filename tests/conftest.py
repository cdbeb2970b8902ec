import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def compile_builtin():
    """The compiler's Compilation of a built-in spec, by name."""
    from rnngen.tools.build import builtin_specs_dir
    from rnngen.compiler.driver import Compilation
    return lambda name: Compilation(os.path.join(builtin_specs_dir(), f"{name}.py"))


@pytest.fixture
def compile_text(tmp_path):
    """The compiler's Compilation of a spec given as text (dedented)."""
    import textwrap
    from rnngen.compiler.driver import Compilation

    def make(text, name="cell"):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        return Compilation(str(path))
    return make


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test, or a module whose shared fixture (a CUDA-simulator "
                                       "run, the PTX compiles), takes a minute or more (still part of "
                                       "the default run and of CI; such files run first)")


def pytest_collection_modifyitems(config, items):
    """The files with a slow test first (in their collection order, each file's tests in theirs):
    the workers (pytest-xdist, one file each at a time) then start on the long ones and end together."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
