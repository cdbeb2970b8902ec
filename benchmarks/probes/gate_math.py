"""Issue 11 probe: ns per element of the CPU math library's sigmoid, tanh and an LSTM element
(3 sigmoids, 2 tanh) over large arrays and over in-cache arrays; set NUMBA_CPU_FEATURES with
-prefer-256-bit to see 512-bit vectors. Prints the vector registers in the assembly.

    python benchmarks/probes/gate_math.py
"""
import time, numpy as np
from numba import njit
from rnngen.backends.cpu.mathlib import sigmoid, tanh
@njit(error_model="numpy")
def f(x, y):
    for j in range(x.shape[0]):
        y[j] = sigmoid(x[j])
@njit(error_model="numpy")
def g(x, y):
    for j in range(x.shape[0]):
        y[j] = tanh(x[j])
@njit(error_model="numpy")
def lstm_elem(a0, a1, a2, a3, c, hn, cn):
    for j in range(a0.shape[0]):
        i = sigmoid(a0[j]); ff = sigmoid(a1[j]); gg = tanh(a2[j]); o = sigmoid(a3[j])
        cc = c[j]*ff + gg*i
        cn[j] = cc
        hn[j] = o*tanh(cc)
n = 1 << 20
x = np.random.default_rng(0).standard_normal(n).astype(np.float32); y = np.empty_like(x)
arrs = [np.random.default_rng(k).standard_normal(n).astype(np.float32) for k in range(7)]
for fn, args in ((f, (x, y)), (g, (x, y)), (lstm_elem, arrs)):
    fn(*args)
    ts = []
    for _ in range(11):
        t = time.perf_counter(); fn(*args); ts.append(time.perf_counter() - t)
    print(fn.__name__, f"{np.median(ts)*1e9/n:.2f} ns/elem")
n = 4096
arrs = [np.random.default_rng(k).standard_normal(n).astype(np.float32) for k in range(7)]
@njit(error_model="numpy")
def rep(a0, a1, a2, a3, c, hn, cn):
    for r in range(256):
        lstm_elem(a0, a1, a2, a3, c, hn, cn)
rep(*arrs)
ts = []
for _ in range(11):
    t = time.perf_counter(); rep(*arrs); ts.append(time.perf_counter() - t)
print("in-cache lstm_elem", f"{np.median(ts)*1e9/n/256:.2f} ns/elem")
for fn in (f, lstm_elem):
    import re
    asm = fn.inspect_asm(fn.signatures[0])
    print(fn.__name__, "ymm", len(re.findall("ymm", asm)), "zmm", len(re.findall("zmm", asm)), "vdivps", len(re.findall("vdivps", asm)), "divss", len(re.findall(r"\bv?divss", asm)))

# The same in-cache LSTM elements compiled with the generated loops' pipeline (rnngen/backends/cpu/
# loop_pipeline.py: "prefer-vector-width"="512"). `NUMBA_CPU_NAME=icelake-server python
# benchmarks/probes/gate_math.py` shows what an Intel AVX-512 CPU's tuning gives (256-bit vectors
# without the attribute, 512-bit with it).
from rnngen.backends.cpu.loop_pipeline import LoopPipeline
def rep_body(a0, a1, a2, a3, c, hn, cn):
    for r in range(256):
        for j in range(a0.shape[0]):
            i = sigmoid(a0[j]); ff = sigmoid(a1[j]); gg = tanh(a2[j]); o = sigmoid(a3[j])
            cc = c[j]*ff + gg*i
            cn[j] = cc
            hn[j] = o*tanh(cc)
plain = njit(error_model="numpy", fastmath={"contract"})(rep_body)
wide = njit(error_model="numpy", fastmath={"contract"}, pipeline_class=LoopPipeline)(rep_body)
for rnd in range(3):
    for name, fn in (("numba's pipeline", plain), ("loop pipeline", wide)):
        fn(*arrs)
        ts = []
        for _ in range(11):
            t = time.perf_counter(); fn(*arrs); ts.append(time.perf_counter() - t)
        asm = fn.inspect_asm(fn.signatures[0])
        print(f"in-cache lstm elements, {name}: {np.median(ts)*1e9/n/256:.2f} ns/elem, zmm {asm.count('zmm')}, ymm {asm.count('ymm')}")
