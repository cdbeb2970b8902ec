import os
import textwrap

import pytest

from rnngen.build import builtin_specs_dir
from rnngen.compiler.driver import Compilation


@pytest.fixture
def compile_builtin():
    """Compilation of a built-in spec by name."""
    return lambda name: Compilation(os.path.join(builtin_specs_dir(), f"{name}.py"))


@pytest.fixture
def compile_text(tmp_path):
    """Compilation of a spec given as text (dedented)."""
    def make(text, name="cell"):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        return Compilation(str(path))
    return make
