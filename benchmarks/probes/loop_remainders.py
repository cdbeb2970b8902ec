"""Issue 11 probe: the 4-wide loop remainders (rnngen/backends/cpu/mathlib.py sets LLVM's
-epilogue-vectorization-force-VF=4), measured with and without, each in a fresh process with a fresh
Numba cache ("without": llvmlite's set_option drops that one option, patched before rnngen is
imported):
- ns per element of an LSTM-element loop over (10, H) float32 arrays (mathlib's sigmoid and tanh);
- the 4-wide arithmetic in lstm's float32 forward, backward and inference loops (optimized IR);
- rnngen.RNN("lstm", 3, 5) at course size: min over 30 blocks of 300 calls, forward(need_grad=False)
  and forward+backward;
- that y, dx and every gradient of six cells (H = 5, 13, 125; float32 and float64; bidirectional,
  lengths) are bit-identical with and without.

    python benchmarks/probes/loop_remainders.py
"""
import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, re, sys, time, timeit
import numpy as np
import llvmlite.binding as llvm
if sys.argv[1] == "without":       # drop rnngen's option only (Numba's own calls go through)
    _set_option = llvm.set_option
    llvm.set_option = lambda name, option: None if "epilogue-vectorization" in option else _set_option(name, option)
import rnngen
from numba import njit
from rnngen.backends.cpu.mathlib import sigmoid, tanh

@njit(error_model="numpy", cache=False)
def lstm_elem(a0, a1, a2, a3, c, hn, cn, reps):
    B, H = a0.shape
    for r in range(reps):
        for b in range(B):
            for j in range(H):
                i = sigmoid(a0[b, j]); f = sigmoid(a1[b, j]); g = tanh(a2[b, j]); o = sigmoid(a3[b, j])
                cc = c[b, j] * f + g * i
                cn[b, j] = cc
                hn[b, j] = o * tanh(cc)

out = {"ns_per_element": {}, "four_wide_ops": {}, "course_us": {}}
for H in (5, 16, 125, 128):
    arrs = [np.random.default_rng(k).standard_normal((10, H)).astype(np.float32) for k in range(7)]
    reps = 200_000 // H
    lstm_elem(*arrs, 1)
    best = min(timeit.repeat(lambda: lstm_elem(*arrs, reps), number=1, repeat=5))
    out["ns_per_element"][H] = round(best * 1e9 / (10 * H) / reps, 2)

m = rnngen.load("lstm")
rng = np.random.default_rng(0)
params = m.init_params(4, 5)
x = rng.standard_normal((5, 3, 4)).astype(np.float32)
y, _, saved = m.forward(x, params)
m.backward(np.ones_like(y), None, saved)
m.forward(x, params, need_grad=False)
for k in (m._forward_loop, m._backward_loop, m._infer_loop):
    ir = k.inspect_llvm(k.signatures[0])
    out["four_wide_ops"][k.__name__] = len(re.findall(r"= f(?:add|sub|mul|div)(?: [a-z]+)* <4 x float>", ir))

net = rnngen.RNN("lstm", 3, 5)
x = rng.standard_normal((10, 10, 3)).astype(np.float32)
y, _ = net.forward(x)
dy = np.ones_like(y)
def fb():
    net.forward(x); net.backward(dy)
for _ in range(300):
    fb()
for name, f in (("forward(need_grad=False)", lambda: net.forward(x, need_grad=False)), ("forward+backward", fb)):
    out["course_us"][name] = round(min(timeit.repeat(f, number=300, repeat=30)) / 300 * 1e6, 1)

results = {}
for cell in ("lstm", "gru", "rnn_tanh", "layernorm_lstm", "slstm", "lstm_peephole"):
    for H, dt in ((5, np.float32), (13, np.float64), (125, np.float32)):
        net = rnngen.RNN(cell, 3, H, bidirectional=True, dtype=dt, **({"heads": 1} if cell == "slstm" else {}))
        xx = np.random.default_rng(0).standard_normal((7, 9, 3)).astype(dt)
        y, _ = net.forward(xx, lengths=[7, 3, 0, 1, 7, 5, 6, 2, 4])
        dx, _ = net.backward(np.ones_like(y))
        results[f"{cell} H={H} {np.dtype(dt).name}"] = np.concatenate(
            [y.ravel(), dx.ravel()] + [g.ravel() for g in net.grads.values()])
np.savez(sys.argv[2], **results)
print(json.dumps(out))
'''


def run(which, folder):
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, which))
    arrays = os.path.join(folder, f"{which}.npz")
    out = subprocess.run([sys.executable, "-c", CHILD, which, arrays], env=env, capture_output=True, text=True,
                         timeout=1200)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]), arrays


def main():
    import numpy as np
    with tempfile.TemporaryDirectory() as folder:
        rows = {which: run(which, folder) for which in ("without", "with")}
        a, b = (np.load(rows[w][1]) for w in ("without", "with"))
        differ = [k for k in a.files if not np.array_equal(a[k], b[k])]
        print(f"bit-identical with and without: {'yes' if not differ else 'NO: ' + ', '.join(differ)} "
              f"({len(a.files)} cases)")
    for key in ("ns_per_element", "four_wide_ops", "course_us"):
        print(key + ":", ", ".join(f"{k} {rows['without'][0][key][k]} -> {rows['with'][0][key][k]}"
                                    for k in rows["with"][0][key]))


if __name__ == "__main__":
    main()
