"""README's examples run as written (the install commands excepted)."""
import os
import re
import subprocess
import sys

from conftest import REPO


def blocks(lang):
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_readme_examples_run(tmp_path):
    (tmp_path / "examples").symlink_to(os.path.join(REPO, "examples"))   # commands run from the repo root
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    for code in blocks("bash"):
        if "pip install" in code or code.startswith("$ "):     # installs; transcripts of output
            continue
        result = subprocess.run(["bash", "-euc", code], cwd=tmp_path, capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, code + result.stdout + result.stderr
    # the Python examples continue one another, as in one session
    # (the GPU example runs only where a GPU is)
    code = "\n".join(b for b in blocks("python") if 'device="cuda"' not in b or _has_gpu())
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, code + result.stderr


def _has_gpu():
    try:
        from numba import cuda
        return cuda.is_available()
    except Exception:
        return False
