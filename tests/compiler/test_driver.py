"""driver: the pipeline as named stages whose intermediates a Compilation keeps; the header's sha256
covers the spec, the templates, the math libraries and the versions."""
import os

from rnngen.backends.cpu import target as cpu
from rnngen.tools.build import builtin_generated_dir
from rnngen.compiler import driver


def test_stages_in_order_and_kept(compile_builtin):
    comp = compile_builtin("gru")
    names = [name for name, _ in comp.stages()]
    assert names == ["load", "step", "rewrite", "derive", "lower", "cse", "layout:cpu", "emit:cpu", "render:cpu",
                     "layout:cuda", "emit:cuda", "render:cuda"]
    comp.run()
    assert set(comp.results) == set(names)
    assert comp["lower"] is comp["lower"]                       # each stage runs once
    assert comp.kernel("cpu") is comp.kernel("cuda")            # one IR for both backends
    assert set(comp.files()) == {"gru.py", "_cuda_gru.py"}


def test_files_are_the_built_in_modules(compile_builtin):
    from rnngen.runtime.header import BUILTIN_SPECS
    comp = compile_builtin("lstm")
    comp.specs_folder = BUILTIN_SPECS        # what `rnngen build` records for the built-in specs
    for name, text in comp.files().items():
        with open(os.path.join(builtin_generated_dir(), name), encoding="utf-8") as f:
            assert f.read() == text, name


def test_sha_covers_the_math_library(compile_builtin, monkeypatch):
    """Numba caches a kernel against its own file only: a changed math library must change every
    generated file, through the sha256 in its header."""
    before = compile_builtin("lstm")
    sha = before.sha256()
    assert f'SPEC_SHA256 = "{sha}"' in before["render:cpu"]
    library = cpu.source_bytes()
    monkeypatch.setattr(cpu, "source_bytes", lambda: library + b"# changed\n")
    after = compile_builtin("lstm")
    assert after.sha256() != sha and after["render:cpu"] != before["render:cpu"]


def test_versions():
    assert driver.versions().startswith("rnngen ")
