"""Issue 11 probe: the course-size call (T10 B10 I3 H5, float32) of rnngen.RNN with the whole package
of an earlier commit (runtime, math library, generated modules: a `git worktree` of it in a
temporary folder) against the working tree's, each side in its own processes (PYTHONPATH, and its
own generated folder as rnngen.generated, which an editable install maps to its checkout's), the
sides alternated: per cell, the minimum over the rounds of each round's best block of 300 calls,
in microseconds, of forward(need_grad=False) and of forward+backward. What a change of the
runtime's Python bought at the course size (course_call.py --before swaps the generated module only).

    python benchmarks/probes/runtime_before_after.py --before <commit> [--cells lstm,gru,rnn_tanh] [--rounds 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r'''
import importlib.util, json, os, sys, timeit
import numpy as np
import rnngen
# the tree's own generated modules: an editable install maps rnngen.generated to its checkout's folder
folder = os.path.join(os.getcwd(), "generated")
spec = importlib.util.spec_from_file_location("rnngen.generated", os.path.join(folder, "__init__.py"),
                                              submodule_search_locations=[folder])
sys.modules["rnngen.generated"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["rnngen.generated"])
rnngen.generated = sys.modules["rnngen.generated"]
out = {"file": rnngen.__file__, "generated": rnngen.load("lstm").__file__}
for cell in sys.argv[1].split(","):
    net = rnngen.RNN(cell, 3, 5, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((10, 10, 3)).astype(np.float32)
    dy = np.ones((10, 10, net.output_size), np.float32)
    calls = {"inference": lambda: net.forward(x, need_grad=False),
             "forward+backward": lambda: (net.forward(x), net.backward(dy))}
    for name, f in calls.items():
        for _ in range(300):
            f()
        out[cell, name] = min(timeit.repeat(f, number=300, repeat=20)) / 300 * 1e6
print(json.dumps({"|".join(k) if isinstance(k, tuple) else k: v for k, v in out.items()}))
'''


def run_side(tree, cells):
    env = dict(os.environ, PYTHONPATH=tree)
    done = subprocess.run([sys.executable, "-c", CHILD, cells], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the run in {tree} failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    for what in ("file", "generated"):
        if not os.path.realpath(result.pop(what)).startswith(os.path.realpath(tree)):
            raise SystemExit(f"the child imported another rnngen ({what}) than the one in {tree}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--cells", default="lstm,gru,rnn_tanh")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        before = os.path.join(folder, "before")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "-q", "--detach", before, a.before], check=True)
        try:
            print(f"# rnngen.RNN course size, the package at {a.before} -> the working tree; {a.rounds} rounds "
                  f"alternated; load {os.getloadavg()}")
            best = {}
            for _ in range(a.rounds):
                for side, tree in (("before", before), ("after", ROOT)):
                    for key, us in run_side(tree, a.cells).items():
                        best[side, key] = min(us, best.get((side, key), us))
            print("| cell | call | before us | after us | after/before |")
            print("|---|---|---|---|---|")
            for key in sorted({k for _, k in best}):
                cell, name = key.split("|")
                b, t = best["before", key], best["after", key]
                print(f"| {cell} | {name} | {b:.1f} | {t:.1f} | {t / b:.2f} |")
            print(f"# load at end {os.getloadavg()}")
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", before], check=True)


if __name__ == "__main__":
    main()
