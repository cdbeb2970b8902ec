"""Issue 11 probe: per-step GEMM rates on one BLAS thread, np.dot(h, W.T) from nopython code
against Numba-written loops over a W_hh^T packed once (mm_a: a row at a time; mm_b: 4 rows share
each W row; mm_c: 4 k per pass; mm_d: 2 rows x 4 k), in GFLOP/s, each checked against h @ W.T.

    python benchmarks/probes/numba_step_gemm.py
"""
import time, numpy as np, threadpoolctl
import scipy.linalg.cython_blas
from numba import njit
@njit(nogil=True, fastmath=False, error_model="numpy")
def mm_a(h, WT, z, n):
    B, K = h.shape; N = WT.shape[1]
    for it in range(n):
        for b in range(B):
            zb = z[b]
            for g in range(N):
                zb[g] = 0
            for k in range(K):
                hb = h[b, k]; w = WT[k]
                for g in range(N):
                    zb[g] += hb * w[g]
@njit(nogil=True, error_model="numpy")
def mm_b(h, WT, z, n):
    B, K = h.shape; N = WT.shape[1]
    for it in range(n):
        for b in range(0, B, 4):
            z0 = z[b]; z1 = z[b+1]; z2 = z[b+2]; z3 = z[b+3]
            for g in range(N):
                z0[g] = 0; z1[g] = 0; z2[g] = 0; z3[g] = 0
            for k in range(K):
                h0 = h[b, k]; h1 = h[b+1, k]; h2 = h[b+2, k]; h3 = h[b+3, k]; w = WT[k]
                for g in range(N):
                    wg = w[g]
                    z0[g] += h0 * wg; z1[g] += h1 * wg; z2[g] += h2 * wg; z3[g] += h3 * wg
@njit(nogil=True, error_model="numpy")
def mm_c(h, WT, z, n):
    # k blocked by 4: each z row loaded/stored once per 4 k
    B, K = h.shape; N = WT.shape[1]
    for it in range(n):
        for b in range(B):
            zb = z[b]
            for g in range(N):
                zb[g] = 0
            for k in range(0, K, 4):
                a0 = h[b, k]; a1 = h[b, k+1]; a2 = h[b, k+2]; a3 = h[b, k+3]
                w0 = WT[k]; w1 = WT[k+1]; w2 = WT[k+2]; w3 = WT[k+3]
                for g in range(N):
                    zb[g] += a0 * w0[g] + a1 * w1[g] + a2 * w2[g] + a3 * w3[g]
@njit(nogil=True, error_model="numpy")
def mm_d(h, WT, z, n):
    # 2 rows x 4 k
    B, K = h.shape; N = WT.shape[1]
    for it in range(n):
        for b in range(0, B, 2):
            z0 = z[b]; z1 = z[b+1]
            for g in range(N):
                z0[g] = 0; z1[g] = 0
            for k in range(0, K, 4):
                a0 = h[b, k]; a1 = h[b, k+1]; a2 = h[b, k+2]; a3 = h[b, k+3]
                c0 = h[b+1, k]; c1 = h[b+1, k+1]; c2 = h[b+1, k+2]; c3 = h[b+1, k+3]
                w0 = WT[k]; w1 = WT[k+1]; w2 = WT[k+2]; w3 = WT[k+3]
                for g in range(N):
                    x0 = w0[g]; x1 = w1[g]; x2 = w2[g]; x3 = w3[g]
                    z0[g] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                    z1[g] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
@njit(nogil=True)
def g_t(h, W, z, n):
    for i in range(n):
        np.dot(h, W.T, z)
def rate(f, args, flops):
    f(*args, 1); ts = []
    for _ in range(7):
        t = time.perf_counter(); f(*args, 50); ts.append(time.perf_counter() - t)
    return flops * 50 / min(ts) / 1e9
with threadpoolctl.threadpool_limits(1):
    for B, H in ((16, 128), (32, 128), (16, 256), (32, 512)):
        W = np.random.rand(4*H, H).astype(np.float32); WT = np.ascontiguousarray(W.T)
        h = np.random.rand(B, H).astype(np.float32); z = np.empty((B, 4*H), np.float32)
        ref = h @ W.T
        fl = 2 * B * H * 4 * H
        out = [f"B{B} H{H}: np.dot {rate(g_t, (h, W, z), fl):.0f}"]
        for f in (mm_a, mm_b, mm_c, mm_d):
            r = rate(f, (h, WT, z), fl)
            assert np.allclose(z, ref, rtol=1e-4), f.__name__
            out.append(f"{f.__name__} {r:.0f}")
        print(", ".join(out), "GFLOP/s")
