"""The GEMM (c (+)= op(a) @ op(b)) the generated CUDA modules run before and after their
persistent kernels (the input projection, the weight gradients, dx): cuBLAS through torch or cupy
when one is there (blas.py), else a register-tiled kernel."""
import functools
import math

import numpy as np

from . import blas, config, elementwise

cuda = config.cuda


# -- GEMM: c (M, N) (+)= op(a) @ op(b), op = transpose or not ------------------------------
# (block rows, block cols, k step, rows and cols per thread): 256 threads each; ptxas for sm_90:
# 142 registers without spills for the large tile, 64 for the small one (used when the large
# tile would leave SMs idle)
GEMM_TILES = (128, 128, 8, 8, 8)
GEMM_TILES_SMALL = (64, 64, 16, 4, 4)


def gemm_kernel_for(nt, bm, bn, bk, rm, rn):
    """A register-tiled GEMM: each block computes a (bm, bn) tile, each thread (rm, rn) of it."""
    tx_n = bn // rn
    ty_m = bm // rm
    pa, pb = bm + 1, bn + 1      # padded rows: the transposing stores hit different banks

    def gemm(a, b, c, trans_a, trans_b, accumulate):
        M, N = c.shape
        K = a.shape[0] if trans_a else a.shape[1]
        sa = cuda.shared.array((bk, pa), nt)
        sb = cuda.shared.array((bk, pb), nt)
        acc = cuda.local.array((rm, rn), nt)
        ra = cuda.local.array(rm, nt)
        rb = cuda.local.array(rn, nt)
        tid = cuda.threadIdx.x
        nthreads = cuda.blockDim.x
        tx = tid % tx_n
        ty = tid // tx_n
        m0 = cuda.blockIdx.x * bm       # M (T*B rows: millions) on grid.x, which allows 2**31 - 1
        n0 = cuda.blockIdx.y * bn       # N (a multiple of H) on grid.y, at most 65535 tiles
        zero = nt(0)
        for r in range(rm):
            for s in range(rn):
                acc[r, s] = zero
        for k0 in range(0, K, bk):
            for e in range(tid, bk * bm, nthreads):
                if trans_a:            # a is (K, M): consecutive threads read consecutive m
                    kk = e // bm
                    mm = e - kk * bm
                else:                  # a is (M, K): consecutive threads read consecutive k
                    mm = e // bk
                    kk = e - mm * bk
                m = m0 + mm
                k = k0 + kk
                v = zero
                if m < M and k < K:
                    v = a[k, m] if trans_a else a[m, k]
                sa[kk, mm] = v
            for e in range(tid, bk * bn, nthreads):
                if trans_b:            # b is (N, K)
                    nn = e // bk
                    kk = e - nn * bk
                else:                  # b is (K, N)
                    kk = e // bn
                    nn = e - kk * bn
                n = n0 + nn
                k = k0 + kk
                v = zero
                if n < N and k < K:
                    v = b[n, k] if trans_b else b[k, n]
                sb[kk, nn] = v
            cuda.syncthreads()
            for kk in range(bk):
                for r in range(rm):
                    ra[r] = sa[kk, ty + r * ty_m]
                for s in range(rn):
                    rb[s] = sb[kk, tx + s * tx_n]
                for r in range(rm):
                    for s in range(rn):
                        acc[r, s] += ra[r] * rb[s]
            cuda.syncthreads()
        for r in range(rm):
            m = m0 + ty + r * ty_m
            for s in range(rn):
                n = n0 + tx + s * tx_n
                if m < M and n < N:
                    if accumulate:
                        c[m, n] += acc[r, s]
                    else:
                        c[m, n] = acc[r, s]

    return gemm


@functools.lru_cache(maxsize=None)
def _gemm(dtype, tiles):
    return cuda.jit(gemm_kernel_for(config.numba_type(dtype), *tiles))


def gemm_tiles(M, N):
    if config.SIMULATOR:
        return config.SIM_GEMM_TILES
    bm, bn = GEMM_TILES[:2]
    if math.ceil(M / bm) * math.ceil(N / bn) >= config.device_limits()[0]:
        return GEMM_TILES
    return GEMM_TILES_SMALL


def gemm(a, b, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (M, N) = op(a) @ op(b) (or += with accumulate); returns out. cuBLAS through torch or cupy
    when blas.choose() finds one, else the tiled kernel."""
    M = a.shape[1] if trans_a else a.shape[0]
    K = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    if (b.shape[1] if trans_b else b.shape[0]) != K:
        raise ValueError(f"gemm: inner sizes differ: {a.shape}{'.T' if trans_a else ''} @ "
                         f"{b.shape}{'.T' if trans_b else ''}")
    if out is None:
        out = elementwise.empty((M, N), a.dtype)
    library, module, _ = blas.choose()
    if library != "tiled":
        config.launched("gemm", kernel=f"cublas via {library}[{np.dtype(a.dtype)}]")
        with config.timed(f"gemm {M}x{N}x{K}"):
            return blas.run(library, module, a, b, out, trans_a, trans_b, accumulate)
    tiles = gemm_tiles(M, N)
    bm, bn, bk, rm, rn = tiles
    kernel = _gemm(np.dtype(a.dtype), tiles)
    grid, threads = gemm_launch(M, N, tiles)
    config.launched("gemm", kernel=f"gemm{tiles}[{np.dtype(a.dtype)}]", grid=grid, threads=threads)
    with config.timed(f"gemm {M}x{N}x{K}"):
        kernel[grid, threads](a, b, out, bool(trans_a), bool(trans_b), bool(accumulate))
    return out


GRID_X_MAX = 2 ** 31 - 1
GRID_YZ_MAX = 65535


def gemm_launch(M, N, tiles):
    """(grid, threads) of the tiled GEMM for an (M, N) result: M tiles on grid.x (up to 2**31 - 1),
    N tiles on grid.y (up to 65535). A ValueError names the size that no launch can cover."""
    bm, bn, _, rm, rn = tiles
    grid = (math.ceil(M / bm), math.ceil(N / bn))
    if grid[0] > GRID_X_MAX or grid[1] > GRID_YZ_MAX:
        raise ValueError(f"gemm: an ({M}, {N}) result needs a grid of {grid} tiles of ({bm}, {bn}); "
                         f"CUDA allows at most ({GRID_X_MAX}, {GRID_YZ_MAX})")
    return (max(1, grid[0]), max(1, grid[1])), (bm // rm) * (bn // rn)
