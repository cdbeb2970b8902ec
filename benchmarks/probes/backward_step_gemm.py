"""Issue 11 probe: the backward per-step GEMM dv = dz @ W_hh as np.dot(dz, W) (today) against
np.dot(dz, WT.T) over a W^T copied once per backward, and the forward np.dot(h, W.T), one BLAS thread,
GFLOP/s at B16/32 x H128/512 (the minimum of 5 calls, 3 rounds).

    python benchmarks/probes/backward_step_gemm.py
"""
import time, numpy as np, sys
from numba import njit
from rnngen.runtime import threads as blas
import scipy.linalg.cython_blas
@njit(nogil=True)
def nn(dz, W, out, dh):
    for s in range(dz.shape[0]-1, -1, -1):
        np.dot(dz[s], W, out)
        dh += out
@njit(nogil=True)
def nt(dz, WT, out, dh):
    for s in range(dz.shape[0]-1, -1, -1):
        np.dot(dz[s], WT.T, out)
        dh += out
@njit(nogil=True)
def fwd(h, W, out):
    for s in range(h.shape[0]):
        np.dot(h[s], W.T, out)
def best(f, n=5):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return min(ts)*1e3
for (T,B,H) in ((256,32,128),(256,16,128),(100,64,512),(100,32,512)):
    rng=np.random.default_rng(0)
    W=rng.standard_normal((4*H,H)).astype(np.float32); WT=np.ascontiguousarray(W.T)
    dz=rng.standard_normal((T,B,4*H)).astype(np.float32); out=np.empty((B,H),np.float32); dh=np.zeros((B,H),np.float32)
    h=rng.standard_normal((T,B,H)).astype(np.float32); z=np.empty((B,4*H),np.float32)
    fl=2*T*B*H*4*H/1e9
    with blas.threads_limited(1):
        r=[]
        for rep in range(3):
            a=best(lambda: nn(dz,W,out,dh)); b=best(lambda: nt(dz,WT,out,dh)); c=best(lambda: fwd(h,W,z))
            t=time.perf_counter(); WT2=np.ascontiguousarray(W.T); cp=(time.perf_counter()-t)*1e3
            r.append((a,b,c,cp))
        a,b,c,cp=[min(x[i] for x in r) for i in range(4)]
        print(f"T{T} B{B} H{H}: bwd NN {fl/a*1e3:.0f} GFLOP/s ({a:.1f} ms), NT with W^T copy {fl/b*1e3:.0f} ({b:.1f} ms, copy {cp:.2f} ms), fwd NT {fl/c*1e3:.0f}")
