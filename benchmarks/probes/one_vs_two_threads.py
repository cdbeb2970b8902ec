"""Issue 11 probe: RNN(cell, 128, 128).forward(x, need_grad=False) at T256 B32, one thread against
two (rnngen.set_num_threads), 3 rounds of 15 calls, medians in ms.

    python benchmarks/probes/one_vs_two_threads.py rnn_tanh
"""
import numpy as np, rnngen, time, sys
cell = sys.argv[1]
net = rnngen.RNN(cell, 128, 128)
x = np.random.default_rng(0).standard_normal((256, 32, 128)).astype(np.float32)
def med(f, n=15):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return np.median(ts)*1e3
for r in range(3):
    out=[]
    for n in (1, 2):
        rnngen.set_num_threads(n)
        out.append(med(lambda: net.forward(x, need_grad=False)))
    print(cell, "fwd 1 thread %.2f  2 threads %.2f" % tuple(out))
