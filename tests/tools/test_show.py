"""`rnngen show` and `rnngen list`."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnngen
from rnngen.backends.host import saved_key
from rnngen.tools.build import builtin_generated_dir
from rnngen.cli import main
from rnngen.tools.show import EXAMPLE, Analysis, B, H, I, find_spec

USER_SPEC = textwrap.dedent("""
    from rnngen.spec import Cell, sigmoid, tanh

    cell = Cell("twostage", states=("h", "m"), output="h")
    x, h, m = cell.x, cell.h, cell.m
    xa, xb = cell.linear("ih", x, gates=2)
    (ha,) = cell.linear("hh", h, gates=1)
    (hb,) = cell.linear("mh", sigmoid(ha + xa) * m, gates=1, bias=False)
    k = cell.vector("decay")
    cell.update(h=tanh(xb + hb), m=k * m + h)
""")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("cell", rnngen.available())
def test_show_text_matches_generated_kernels(capsys, cell):
    code, out, _ = run(capsys, "show", cell)
    assert code == 0
    gen = rnngen.load(cell)
    for name, shape in gen.PARAMS.items():
        assert re.search(rf"^  {name}\s+\({re.escape(', '.join(shape))}", out, re.M), name
    for section in ("Forward step", "Forward stages", "Backward step", "FLOPs per step",
                    "Bytes saved per step for training"):
        assert section in out
    # every fused-loop line and GEMM of the forward and the derived backward is a line of the kernel
    with open(os.path.join(builtin_generated_dir(), f"{cell}.py"), encoding="utf-8") as f:
        source = {line.strip() for line in f}
    shown = re.findall(r"^\s+(?:read|share|write|GEMM|add)\s+(.*)$", out, re.M)
    assert len(shown) > 3
    for line in shown:
        assert line.strip() in source, line


def test_show_counts_lstm(capsys):
    a = Analysis(find_spec("lstm"))
    fwd, bwd = a.flops()
    assert fwd["x GEMMs (hoisted, per step)"] == 8 * B * I * H
    assert fwd["recurrent GEMMs"] == 8 * B * H ** 2
    assert bwd["recurrent GEMM adjoints (dv = dz W)"] == 8 * B * H ** 2 + B * H
    assert bwd["after the loop: dW, dx, db (per step)"] == 8 * B * H * I + 8 * B * H * I + 8 * B * H ** 2 + 8 * B * H
    assert a.saved_elements() == 6 * B * H          # zx + z_hh summed (4H), h, c
    code, out, _ = run(capsys, "show", "lstm")
    total = sum(fwd.values()).subs(EXAMPLE)
    assert f"= {int(total) / 1e6:.3g} MFLOP" in out
    assert "24*B*H bytes" in out and "48*B*H bytes" in out


@pytest.mark.parametrize("cell", ["lstm", "gru_classic", "lstm_peephole", "mingru"])
def test_saved_bytes_match_what_forward_keeps(cell):
    """The per-step count equals the arrays the generated forward really keeps (T+1 states aside)."""
    a = Analysis(find_spec(cell))
    gen = rnngen.load(cell)
    T, nB, nI, nH = 3, 2, 4, 5
    params = gen.init_params(nI, nH, np.float64)
    _, _, saved = gen.forward(np.zeros((T, nB, nI)), params)
    total = sum(getattr(saved, saved_key(b)).size for b in a.saved)
    total -= nB * nH * len(gen.STATES)            # s_<state> holds T + 1 steps
    assert total == T * a.saved_elements().subs({B: nB, H: nH, I: nI})


def test_show_latex(capsys):
    code, out, _ = run(capsys, "show", "gru", "--latex")
    assert code == 0
    assert out.count(r"\begin{align*}") == out.count(r"\end{align*}") >= 3
    assert r"\operatorname{sigmoid}" in out and r"\overline{h'}" in out
    assert "B H^{2}" in out


def test_show_and_list_user_cell(tmp_path, capsys):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "twostage.py").write_text(USER_SPEC)
    code, by_path, _ = run(capsys, "show", str(specs / "twostage.py"))
    assert code == 0
    code, by_name, _ = run(capsys, "show", "twostage", "--specs", str(specs))
    assert code == 0 and by_name == by_path
    assert "stage 2: recurrent GEMMs of mh" in by_name
    assert re.search(r"^  decay\s+\(H,\)", by_name, re.M)
    assert "dvec_decay[j] +=" in by_name
    code, out, _ = run(capsys, "show", "twostage", "--specs", str(specs), "--latex")
    assert code == 0 and r"\overline{\mathit{decay}} &\mathrel{+}=" in out

    (specs / "broken.py").write_text("from rnngen.spec import Cell\ncell = Cell('broken')\n")
    code, out, _ = run(capsys, "list", "--specs", str(specs))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("cell")
    assert re.match(r"twostage\s+h,m\s+weight_ih\(2\*H,I\) bias_ih\(2\*H,\) weight_hh\(H,H\) bias_hh\(H,\) "
                    r"weight_mh\(H,H\) decay\(H,\)\s+x:ih \| 1:hh \| 2:mh \| update$", lines[2]), lines[2]
    assert "broken" in lines[1] and "has no update" in lines[1]


def test_list_builtin(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 + len(rnngen.available())
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(rnngen.available())
    assert re.match(r"lstm\s+h,c\s+weight_ih\(4\*H,I\) bias_ih\(4\*H,\) weight_hh\(4\*H,H\) bias_hh\(4\*H,\)"
                    r"\s+x:ih \| 1:hh \| update$", rows["lstm"])
    assert rows["gru_classic"].endswith("x:ih | 1:hh | 2:rh | update")
    assert rows["mingru"].endswith("x:ih | update")


def test_errors(capsys, tmp_path):
    code, _, err = run(capsys, "show", "nope")
    assert code == 2 and "no spec named nope" in err
    bad = tmp_path / "bad.py"
    bad.write_text("from rnngen.spec import Cell\ncell = Cell('bad')\ncell.update(h=cell.q)\n")
    code, _, err = run(capsys, "show", str(bad))
    assert code == 1 and "SpecError" in err and "bad.py:3" in err


def test_console_script():
    out = subprocess.run([sys.executable, "-m", "rnngen.cli", "show", "rnn_tanh"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "h <- tanh(ha + xa)" in out.stdout


def test_show_size(capsys):
    code, out, _ = run(capsys, "show", "rnn_tanh", "--size", "10", "3", "5")
    assert code == 0
    # forward: 2*B*H*I + 2*B*H^2 + pointwise; saved: zx + z_hh summed, s_h = 2*B*H elements
    assert "example B=10, I=3, H=5" in out
    assert "float32: 8*B*H bytes = 400 B at B=10, I=3, H=5" in out
