"""benchmarks/gpu_check.py, the staged GPU check, run here without a GPU.

Under the CUDA simulator every stage runs its logic at tiny sizes (mode "simulator"): the cases,
the JSON, the summary line, "launching X" and the exit codes; the plumbing (watchdog, budget,
failures) is checked with cases that hang, fail or return NaN. Without a GPU and without the
simulator the preflight must fail, naming that there is no GPU. Whether the stages pass on a GPU is
what a GPU session finds out (BENCHMARKS.md records it).
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba.cuda")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "gpu_check.py")


def _run(args, simulator=True, timeout=900, script=SCRIPT):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, script] + args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _json(folder, stage):
    with open(os.path.join(folder, f"{stage}.json")) as f:
        return json.load(f)


def test_preflight_under_the_simulator(tmp_path):
    out = _run(["--stage", "preflight", "--out", str(tmp_path)])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("preflight: PASS 3/5 passed, 2 skipped") and "preflight.json" in last
    assert "launching grid.sync smoke" in out.stdout
    data = _json(tmp_path, "preflight")
    assert data["status"] == "pass" and data["mode"] == "simulator"
    cases = {c["case"]: c for c in data["cases"]}
    assert cases["versions"]["numba-cuda"] and cases["versions"]["numpy"]
    assert cases["grid.sync smoke"]["runs"]["one"]["counter_ok"]
    assert cases["shared-memory opt-in"]["status"] == "skipped"


def test_preflight_without_a_gpu_fails_and_says_so(tmp_path):
    """No GPU, no simulator: the versions (NVVM, nvJitLink, the linker) are still read; the device
    case fails naming the missing GPU, and the exit code is 1."""
    out = _run(["--stage", "preflight", "--out", str(tmp_path)], simulator=False)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    cases = {c["case"]: c for c in _json(tmp_path, "preflight")["cases"]}
    assert cases["versions"]["status"] == "pass"
    assert cases["versions"]["nvjitlink"][0].isdigit() and cases["versions"]["linker_backend"]
    assert cases["device"]["status"] == "fail" and "no GPU" in cases["device"]["summary"]
    link = cases["nvJitLink link (no GPU needed)"]
    assert link["status"] == "pass" and link["cubin_bytes"] > 0 and link["kernel"]["lmem"] == 0
    assert out.stdout.strip().splitlines()[-1].startswith("preflight: FAIL")


@pytest.mark.slow
def test_correct_stage_under_the_simulator(tmp_path):
    """Every case of the correct stage at tiny sizes (about a minute); the torch cases skip."""
    out = _run(["--stage", "correct", "--out", str(tmp_path)], timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    data = _json(tmp_path, "correct")
    statuses = {c["case"]: c["status"] for c in data["cases"]}
    skipped = sorted(k for k, v in statuses.items() if v == "skipped")
    assert all(k.startswith(("torch bridge", "cuDNN parity")) for k in skipped), skipped
    assert sum(v == "pass" for v in statuses.values()) == 24, statuses
    race = next(c for c in data["cases"] if c["case"].startswith("race lstm"))
    assert race["differ"] == [] and race["runs"] == 3
    forced = next(c for c in data["cases"] if "FORCE_GLOBAL_WEIGHTS" in c["case"])
    assert all(p["reason"] == "FORCE_GLOBAL_WEIGHTS is set" for p in forced["placement"].values())


def test_time_stage_under_the_simulator(tmp_path):
    out = _run(["--stage", "time", "--out", str(tmp_path)])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    cases = {c["case"]: c for c in _json(tmp_path, "time")["cases"]}
    counts = cases["launches and allocations lstm tiny"]
    assert counts["forward"]["launch persistent forward"] == 1 and counts["backward"]["launches"] >= 3
    assert "persistent forward us_per_step" in cases["kernel times lstm tiny T=(2, 4)"]
    assert cases["table"]["status"] == "skipped"


def test_only_and_list(tmp_path):
    names = _run(["--stage", "correct", "--list"]).stdout.splitlines()
    assert "race gru_classic (3, 3, 2, 3) x3" in names and len(names) == 30
    out = _run(["--stage", "correct", "--only", "lstm H=3 T=3 B=3 lengths reverse", "--out", str(tmp_path)])
    assert out.returncode == 0 and [c["case"] for c in _json(tmp_path, "correct")["cases"]] == \
        ["lstm H=3 T=3 B=3 lengths reverse"]
    out = _run(["--stage", "correct", "--only", "no such case", "--out", str(tmp_path)])
    assert out.returncode == 1 and "no case matches" in out.stdout


def test_gpu_py_runs_the_stages_and_stops_at_a_failure(tmp_path):
    out = _run(["--out", str(tmp_path), "--stages", "preflight,time"], simulator=False,
               script=os.path.join(REPO, "benchmarks", "gpu.py"))
    assert out.returncode == 1 and "stage preflight exited with 1: stopping" in out.stdout
    assert not os.path.exists(tmp_path / "time.json")


# -- the plumbing: benchmarks/staging.py ---------------------------------------------------------
PLUMBING = r'''
import sys, time
sys.path.insert(0, {bench!r})
from staging import Stage
stage = Stage("demo", {out!r}, case_timeout=float(sys.argv[2]), budget_s=float(sys.argv[3]))
cases = {{
    "pass": lambda: {{"summary": "fine"}},
    "fail": lambda: {{"ok": False, "summary": "MISMATCH"}},
    "raise": lambda: 1 / 0,
    "hang": lambda: time.sleep(60),
    "slow": lambda: time.sleep(1.5),
}}
cases["summary"] = lambda: {{"summary": "of " + str(len(stage.cases) - 1) + " cases"}}
for name in sys.argv[1].split(","):
    stage.run(name, cases[name], always=name == "summary")
sys.exit(stage.finish())
'''


def _plumbing(tmp_path, names, timeout=30.0, budget=100.0):
    code = PLUMBING.format(bench=os.path.join(REPO, "benchmarks"), out=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code, names, str(timeout), str(budget)], capture_output=True,
                         text=True, timeout=120)
    return out, _json(tmp_path, "demo")


def test_a_failed_or_raising_case_exits_1(tmp_path):
    out, data = _plumbing(tmp_path, "pass,fail,raise,pass")
    assert out.returncode == 1
    assert [c["status"] for c in data["cases"]] == ["pass", "fail", "fail", "pass"]
    assert "ZeroDivisionError" in data["cases"][2]["error"] and "Traceback" in data["cases"][2]["traceback"]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("demo: FAIL 2/4 passed in ") and "; not passed: fail, raise (" in last


def test_a_hung_case_ends_the_process_with_3_and_leaves_the_json(tmp_path):
    out, data = _plumbing(tmp_path, "pass,hang,pass", timeout=1.0)
    assert out.returncode == 3
    assert [c["status"] for c in data["cases"]] == ["pass", "hang"] and data["status"] == "hang"
    assert "watchdog" in data["cases"][1]["error"]
    assert "tracebacks of every thread" in out.stdout and "in <lambda>" in out.stdout   # where it hung
    assert "demo: HANG 1/2 passed" in out.stdout


def test_a_spent_budget_skips_the_rest_and_exits_4(tmp_path):
    out, data = _plumbing(tmp_path, "slow,pass,pass", budget=1.0)
    assert out.returncode == 4
    assert [c["status"] for c in data["cases"]] == ["pass", "skipped", "skipped"]
    assert data["status"] == "incomplete"


def test_a_summary_case_runs_past_the_budget(tmp_path):
    """The time stage's table and goals (SUMMARIES) run even when the budget stopped the cases
    before them: they only read what was measured."""
    out, data = _plumbing(tmp_path, "slow,pass,summary", budget=1.0)
    assert [c["status"] for c in data["cases"]] == ["pass", "skipped", "pass"]
    assert out.returncode == 4 and data["cases"][2]["summary"] == "of 2 cases"
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import gpu_time
    assert set(gpu_time.SUMMARIES) == {"table", "goals"}
    assert [name for name, _ in gpu_time.cases(None, "simulator")][-2:] == ["table", "goals"]


def test_a_nan_is_a_mismatch():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import numpy as np
    from gpu_common import compare
    facts = compare([("y", np.ones(3), np.array([1.0, np.nan, 1.0])), ("dx", np.ones(2), np.ones(2))])
    assert not facts["ok"] and facts["mismatches"] == ["y"] and "MISMATCH in y" in facts["summary"]
    assert compare([("d_weight_hh", np.ones(2), np.ones(2) + 5e-4)])["ok"]          # within 1e-3
    assert not compare([("y", np.ones(2), np.ones(2) + 5e-4)])["ok"]                # outputs: 2e-5
