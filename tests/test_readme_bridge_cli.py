"""The README's examples for the PyTorch bridge and `rnngen show`/`list` run as written."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def section(title):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_bridge_example(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    code = blocks(section("PyTorch bridge"), "python")
    assert code
    for block in code:
        gpu = 'device="cuda"' in block
        if gpu and not _has_gpu():          # the CUDA example runs only where a GPU is
            continue
        out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        if not gpu:
            assert "True" in out.stdout and "weight_co_l0" in out.stdout


def _has_gpu():
    try:
        import torch
        from numba import cuda
        return torch.cuda.is_available() and cuda.is_available()
    except Exception:
        return False


def test_cli_examples(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    text = section("Command line: `rnngen show` and `rnngen list`")
    scripts = [b for b in blocks(text, "bash") if not b.startswith("$ ")]
    assert len(scripts) == 2
    for script in scripts:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    assert r"\begin{align*}" in (tmp_path / "lstm.tex").read_text()
    assert "RNN('mycell', 3, 5)" in out.stdout
    # the listed excerpt is what `rnngen list` prints (column widths aside: they follow the longest row)
    listed = subprocess.run([sys.executable, "-m", "rnngen.cli", "list"], capture_output=True, text=True,
                            timeout=60).stdout.splitlines()
    listed = {" ".join(line.split()) for line in listed}
    shown = blocks(text, "bash")[0].splitlines()[1:]
    for line in shown:
        if line != "...":
            assert " ".join(line.split()) in listed, line


def test_show_excerpt_is_what_show_prints():
    """Every line of the README's `rnngen show lstm` excerpt ("..." aside) is a line of the output."""
    text = section("Command line: `rnngen show` and `rnngen list`")
    excerpt = text[text.index("An excerpt of `rnngen show lstm`"):]
    excerpt = re.search(r"```\n(.*?)```", excerpt, re.S).group(1).splitlines()
    out = subprocess.run([sys.executable, "-m", "rnngen.cli", "show", "lstm"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.rstrip() for line in out.stdout.splitlines()}
    assert len(excerpt) > 10
    for line in excerpt:
        if line.strip() != "...":
            assert line.rstrip() in lines, line
