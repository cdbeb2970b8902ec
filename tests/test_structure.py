"""The package's shape (issue 10): the runtime imports no compiler module (nor sympy, jinja2), no
module is over 400 lines, and no two modules import each other, even through imports inside
functions."""
import ast
import os
import subprocess
import sys

from conftest import REPO

PACKAGE = os.path.join(REPO, "rnngen")
RUNTIME_CHECK = ("import rnngen, sys; rnngen.available(); rnngen.load('lstm'); "
                 "assert not {'sympy','jinja2'} & set(sys.modules)")
# what the runtime, the trainers and the backends' run-time parts may never import
COMPILE_TIME = ("rnngen.compiler", "rnngen.spec", "rnngen.tools", "sympy", "jinja2")
RUN_TIME = ("rnngen/runtime/", "rnngen/train/", "rnngen/backends/checks.py", "rnngen/backends/cpu/checks.py",
            "rnngen/backends/cpu/mathlib.py", "rnngen/backends/cpu/numba_cache.py", "rnngen/backends/cuda/checks.py",
            "rnngen/backends/cuda/compat.py", "rnngen/backends/cuda/config.py", "rnngen/backends/cuda/elementwise.py",
            "rnngen/backends/cuda/gemm.py", "rnngen/backends/cuda/launch.py", "rnngen/backends/cuda/mathlib.py")


def modules():
    """{module name: file} of every module of the package (its generated modules aside)."""
    out = {}
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "generated", "specs", "data")]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(root, f)
    return out


def imports(name, path, known):
    """The modules `name` imports anywhere in its file (module level or inside functions)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    return found


def test_the_runtime_imports_no_compiler():
    result = subprocess.run([sys.executable, "-c", RUNTIME_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_run_time_modules_import_nothing_of_compile_time():
    known = modules()
    bad = []
    for name, path in known.items():
        rel = os.path.relpath(path, REPO).replace(os.sep, "/")
        if rel.startswith(RUN_TIME):
            bad += [(rel, m) for m in imports(name, path, known) if m.startswith(COMPILE_TIME)]
    assert not bad, bad


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules().items()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > 400}
    assert not long, long


def test_no_import_cycles():
    known = modules()
    graph = {name: {m for m in imports(name, path, known) if m in known and m != name}
             for name, path in known.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
