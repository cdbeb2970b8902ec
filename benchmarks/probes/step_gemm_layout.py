"""Issue 11 probe: the per-step recurrent GEMM rate from nopython code, one BLAS thread:
np.dot(h, W.T) (today's layout), np.dot(h, WT) (a contiguous transposed copy) and np.dot(W, h.T)
(the transposed state layout), for 16/32 rows at H=128 and 32 rows at H=512.

    python benchmarks/probes/step_gemm_layout.py
"""
import time, numpy as np, threadpoolctl
import scipy.linalg.cython_blas
from numba import njit
@njit(nogil=True)
def g_t(h, W, z, n):
    for i in range(n):
        np.dot(h, W.T, z)
@njit(nogil=True)
def g_c(h, WT, z, n):
    for i in range(n):
        np.dot(h, WT, z)
@njit(nogil=True)
def g_rev(W, hT, zT, n):
    for i in range(n):
        np.dot(W, hT, zT)
def med(f, n=7):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return np.median(ts)*1e3
with threadpoolctl.threadpool_limits(1):
  for B,H in ((16,128),(32,128),(32,512)):
    W = np.random.rand(4*H,H).astype(np.float32); WT = np.ascontiguousarray(W.T)
    h = np.random.rand(B,H).astype(np.float32); z = np.empty((B,4*H),np.float32)
    hT = np.ascontiguousarray(h.T); zT = np.empty((4*H,B),np.float32)
    N=256
    fl = 2*B*H*4*H*N/1e9
    a=med(lambda: g_t(h,W,z,N)); b=med(lambda: g_c(h,WT,z,N)); c=med(lambda: g_rev(W,hT,zT,N))
    print(f"B{B} H{H}: h@W.T {fl/a*1e3:.0f} GFLOP/s, h@WT(contig) {fl/b*1e3:.0f}, W@hT {fl/c*1e3:.0f}")
