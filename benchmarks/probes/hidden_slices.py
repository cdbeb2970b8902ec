"""Issue 11 probe: lstm forward at small and fastrnns, one BLAS thread: today's batch slices
(rnngen.runtime.schedule.forward with 2 slices) against hidden-unit slices with a spin barrier
(benchmarks/schedules.py's hslice_spin_worker on rnngen's pinned workers) plus the hoisted GEMM
split over the two workers, and the serial forward; medians in ms. Run from the repo root:

    python benchmarks/probes/hidden_slices.py
"""
import sys, time, numpy as np, threadpoolctl
sys.path.insert(0, "benchmarks"); sys.argv = ["x"]
import schedules as S
import rnngen
from rnngen.runtime import schedule
from rnngen.runtime.workers import run_all
gen = rnngen.load("lstm")
F32 = np.float32
def med(f, n=9):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return np.median(ts)*1e3
for (T,B,I,H) in ((256,32,128,128),(100,64,512,512)):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T,B,I)).astype(F32)
    p = gen.init_params(I,H)
    wg = S.gather_slices(p["weight_hh"], 2)
    lengths = np.full(B, T, np.int64)
    zx = (x.reshape(T*B,I) @ p["weight_ih"].T).reshape(T,B,4*H) + p["bias_ih"]
    zbuf = np.empty((2, B, 4*(H//2)), F32)
    s_h = np.zeros((T+1,B,H),F32); s_c = np.zeros((T+1,B,H),F32); y = np.zeros((T,B,H),F32)
    def hs_loop():
        flags = np.zeros(2, np.int64)
        zw = zx.copy()
        args = (4000, lengths, False, y, zw, s_h, s_c, wg, zbuf, p["bias_hh"])
        run_all([lambda: S.hslice_spin_worker(0, flags, *args), lambda: S.hslice_spin_worker(1, flags, *args)])
    def hoisted2():
        half = T*B//2; x2 = x.reshape(T*B, I); out = np.empty((T*B, 4*H), F32)
        def part(a, b):
            np.matmul(x2[a:b], p["weight_ih"].T, out=out[a:b])
        run_all([lambda: part(0, half), lambda: part(half, T*B)])
    with threadpoolctl.threadpool_limits(1):
        cur = med(lambda: schedule.forward(gen, x, p, None, None, False, False, 2))
        hl = med(hs_loop); h2 = med(hoisted2)
        ser = med(lambda: gen.forward(x, p, need_grad=False))
    print(f"T{T} B{B} H{H}: batch halves (now) {cur:.1f} ms; hidden slices: loop {hl:.1f} + hoisted on 2 workers {h2:.1f} = {hl+h2:.1f}; serial {ser:.1f}")
