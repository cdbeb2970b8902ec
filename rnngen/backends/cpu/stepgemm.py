"""The per-step recurrent GEMM of the CPU loops, out = a @ B, with B packed once per call.

A time loop multiplies the same weight by a new (B, H) state at every step. Through BLAS
(np.dot) each of those small products packs the whole weight again and runs at 40-60% of the
machine's GEMM rate (BENCHMARKS.md). Here the weight is packed once per call (`pack`, by the
module's wrapper through host_gemm.panels_of) and every step runs `gemm_panels` on it. The wrappers' large GEMMs use the
same tile where it beats BLAS (host_gemm.py), with `gemm_panels_tn` for a weight gradient dZ.T @ v.

- panels(w) / pack(w, out): w (K, N) as ceil(N / NR) panels of NR columns, each (K, NR)
  contiguous, the last padded with zeros; NR is two vectors of 64 bytes (32 float32 or 16 float64
  columns).
- gemm_panels(a, p, out): for each block of KC = 256 rows of B and each panel, the rows of `a`
  in tiles of up to MR rows: a register tile (`_tile`, a Numba intrinsic that writes the LLVM IR
  of the tile itself) keeps MR x NR sums in vector registers across the block's k, adds a[m, k]
  times the panel's row k with one fused multiply-add per vector, and stores (the first block)
  or adds (the others) the sums once; the last, partial panel stores through a mask. A panel
  block (KC x NR, 32 KB) stays in the L1 cache for all the row tiles.
- gemm_panels_tn(a, p, out): the same with the operand a.T, read in place from a (K, M) with
  C-contiguous rows: the tile loads a[k, m] at k * lda + m instead of m * lda + k (the same sums).

Each out[m, n] is the sum over k in order of a[m, k] * B[k, n], one rounding per k (FMA) within
a block of KC, the blocks added in order: the same for any MR, any number of rows and any batch
slice of them (a batch slice gives bit-identical rows). It differs from BLAS's order by rounding.

Speed (`python benchmarks/probes/step_gemm.py`): 1.4-5x np.dot's rate at the per-step shapes
of BENCHMARKS.md's sizes, one thread. Plain arithmetic on any x86 or other CPU: the vectors of 64
bytes are AVX-512 registers where there are some, pairs of 32-byte ones elsewhere.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .numba_cache import register
from .pointers import at

register()

VECTOR_BYTES = 64        # one vector: an AVX-512 register
NV = 2                   # vectors per panel row: NR = NV * lanes columns
KC = 256                 # rows of B per block: a (KC, NR) panel block is 32 KB (L1)
MC = 256                 # rows of a per block: a (MC, KC) block is 256 KB (float32; L2)


def _has_avx512():
    try:
        import llvmlite.binding as llvm
        return bool(llvm.get_host_cpu_features().get("avx512f"))
    except Exception:       # a CPU whose features LLVM cannot read: the smaller tile is safe
        return False


#: rows per register tile: 8 x 2 vector sums fill 16 of AVX-512's 32 registers; with 16 (AVX2),
#: 4 rows. The tile's height does not change any result (each sum runs over k alone).
MR = 8 if _has_avx512() else 4


def lanes(dtype):
    """Values of `dtype` in one vector."""
    return VECTOR_BYTES // (dtype.itemsize if isinstance(dtype, np.dtype) else np.dtype(dtype).itemsize)


@intrinsic
def _tile(typingctx, a, lda, b, out, ldo, k, ncols, rows, add, trans):
    """out[r, 0:ncols] (=, or += with add=1) sum over kk < k of a[r, kk] * b[kk * NR + 0:ncols]
    for r < rows (a literal), through pointers: a (rows of `a`), b (a panel block), out.
    a[r, kk] is a[r * lda + kk] (trans=0: rows of `a` contiguous) or a[kk * lda + r] (trans=1:
    columns contiguous, the transpose of a C-contiguous array)."""
    if not (all(isinstance(v, types.IntegerLiteral) for v in (rows, add, trans))
            and all(isinstance(p, types.CPointer) and p.dtype in (types.float32, types.float64) for p in (a, b, out))
            and a.dtype == b.dtype == out.dtype):
        return None
    R, ADD, TRANS = rows.literal_value, add.literal_value, trans.literal_value
    sig = types.void(a, lda, b, out, ldo, k, ncols, rows, add, trans)

    def codegen(context, builder, signature, args):
        a_p, _, b_p, o_p = args[0], args[1], args[2], args[3]
        intp = context.get_value_type(types.intp)
        lda, ldo, kk_n, nc = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 4, 5, 6))
        fty = context.get_value_type(signature.args[0].dtype)
        L = VECTOR_BYTES // context.get_abi_sizeof(fty)
        vty, i32 = ir.VectorType(fty, L), ir.IntType(32)
        vptr = vty.as_pointer()
        name = f"v{L}{'f32' if isinstance(fty, ir.FloatType) else 'f64'}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.{name}")
        mty = ir.VectorType(ir.IntType(1), L)
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vptr, i32, mty]), f"llvm.masked.store.{name}.p0")
        mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vptr, i32, mty, vty]), f"llvm.masked.load.{name}.p0")
        zero = ir.Constant(vty, None)
        undef = ir.Constant(vty, ir.Undefined)
        splat0 = ir.Constant(ir.VectorType(i32, L), [0] * L)

        def const(v):
            return ir.Constant(intp, v)

        def vector_at(ptr, offset):
            return builder.bitcast(builder.gep(ptr, [offset]), vptr)

        # the loop over k: sums[r][v] as phi nodes, one FMA per row and vector
        pre = builder.block
        loop = builder.append_basic_block("tile.k")
        done = builder.append_basic_block("tile.done")
        builder.cbranch(builder.icmp_signed(">", kk_n, const(0)), loop, done)
        builder.position_at_end(loop)
        kk = builder.phi(intp)
        sums = [[builder.phi(vty) for _ in range(NV)] for _ in range(R)]
        row = builder.gep(b_p, [builder.mul(kk, const(NV * L))])
        bv = [builder.load(vector_at(row, const(v * L)), align=4) for v in range(NV)]
        new = []
        for r in range(R):
            offset = builder.add(builder.mul(kk, lda), const(r)) if TRANS else builder.add(builder.mul(const(r), lda), kk)
            s = builder.load(builder.gep(a_p, [offset]))
            sv = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
            new.append([builder.call(fma, [sv, bv[v], sums[r][v]]) for v in range(NV)])
        k1 = builder.add(kk, const(1))
        end = builder.block
        kk.add_incoming(const(0), pre)
        kk.add_incoming(k1, end)
        for r in range(R):
            for v in range(NV):
                sums[r][v].add_incoming(zero, pre)
                sums[r][v].add_incoming(new[r][v], end)
        builder.cbranch(builder.icmp_signed("<", k1, kk_n), loop, done)

        # the stores: whole vectors, or through a mask in a partial panel (ncols < NR)
        builder.position_at_end(done)
        res = [[builder.phi(vty) for _ in range(NV)] for _ in range(R)]
        for r in range(R):
            for v in range(NV):
                res[r][v].add_incoming(zero, pre)
                res[r][v].add_incoming(new[r][v], end)
        ncv = builder.trunc(nc, i32)
        ncs = builder.shuffle_vector(builder.insert_element(ir.Constant(ir.VectorType(i32, L), ir.Undefined), ncv,
                                                            ir.Constant(i32, 0)),
                                     ir.Constant(ir.VectorType(i32, L), ir.Undefined), splat0)
        masks = [builder.icmp_signed("<", ir.Constant(ir.VectorType(i32, L), [v * L + q for q in range(L)]), ncs)
                 for v in range(NV)]
        whole = builder.icmp_signed(">=", nc, const(NV * L))
        with builder.if_else(whole) as (full, part):
            with full:
                for r in range(R):
                    for v in range(NV):
                        p = vector_at(o_p, builder.add(builder.mul(const(r), ldo), const(v * L)))
                        x = builder.fadd(res[r][v], builder.load(p, align=4)) if ADD else res[r][v]
                        builder.store(x, p, align=4)
            with part:
                for r in range(R):
                    for v in range(NV):
                        p = vector_at(o_p, builder.add(builder.mul(const(r), ldo), const(v * L)))
                        x = res[r][v]
                        if ADD:
                            x = builder.fadd(x, builder.call(mload, [p, ir.Constant(i32, 4), masks[v], zero]))
                        builder.call(mstore, [x, p, ir.Constant(i32, 4), masks[v]])
        return context.get_dummy_value()

    return sig, codegen


def panel_shape(K, N, dtype):
    """The shape of panels() of a (K, N) matrix of `dtype`: (ceil(N / NR), K, NR)."""
    NR = NV * lanes(dtype)
    return ((N + NR - 1) // NR, K, NR)


@njit(cache=True, nogil=True)
def pack(w, out):
    """out (P, K, NR) = w (K, N), any layout, as panels (see panels), the padding zeros."""
    K, N = w.shape
    NR = out.shape[2]
    for p in range(out.shape[0]):
        n0 = p * NR
        nc = min(NR, N - n0)
        for k in range(K):
            for c in range(NR):
                out[p, k, c] = w[k, n0 + c] if c < nc else 0


@njit(cache=True, nogil=True)
def panels(w):
    """w (K, N), any layout (w.T of a weight is fine) -> (ceil(N / NR), K, NR), zero-padded."""
    K, N = w.shape
    NR = NV * (VECTOR_BYTES // w.itemsize)
    out = np.empty(((N + NR - 1) // NR, K, NR), w.dtype)
    pack(w, out)
    return out


@njit(inline="always")
def _a_at(a, m, k, trans):
    """A pointer to the operand's (m, k): a[m, k], or a[k, m] when trans (the operand is a.T)."""
    return at(a, (k, m)) if trans else at(a, (m, k))


@njit(inline="always")
def _row_tiles(a, m0, m1, k0, panel, out, col, kc, ncols, add, trans):
    """Rows m0 <= m < m1 of the operand against one panel block: tiles of MR rows, then one of the rest."""
    lda = a.strides[0] // a.itemsize
    ldo = out.strides[0] // out.itemsize
    m = m0
    while m + MR <= m1:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, MR, add, trans)
        m += MR
    r = m1 - m
    if r == 1:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 1, add, trans)
    elif r == 2:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 2, add, trans)
    elif r == 3:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 3, add, trans)
    elif r == 4 and MR > 4:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 4, add, trans)
    elif r == 5 and MR > 5:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 5, add, trans)
    elif r == 6 and MR > 6:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 6, add, trans)
    elif r == 7 and MR > 7:
        _tile(_a_at(a, m, k0, trans), lda, panel, at(out, (m, col)), ldo, kc, ncols, 7, add, trans)


@njit(inline="always")
def _blocks(a, p, out, trans):
    """out = the operand (a, or a.T when trans) @ the matrix p holds, in blocks (see gemm_panels)."""
    M, N = out.shape
    K = a.shape[0] if trans else a.shape[1]
    NR = p.shape[2]
    for m0 in range(0, M, MC):
        m1 = min(M, m0 + MC)
        for k0 in range(0, K, KC):
            kc = min(KC, K - k0)
            for q in range(p.shape[0]):
                panel = at(p, (q, k0, 0))
                if k0 == 0:
                    _row_tiles(a, m0, m1, k0, panel, out, q * NR, kc, min(NR, N - q * NR), 0, trans)
                else:
                    _row_tiles(a, m0, m1, k0, panel, out, q * NR, kc, min(NR, N - q * NR), 1, trans)


@njit(cache=True, nogil=True)
def gemm_panels(a, p, out):
    """out (M, N) = a (M, K) @ the (K, N) matrix `p` = panels(w) holds. a and out: C-contiguous
    rows (a step's row of a (T, B, n) array is). Rows in blocks of MC (their block of `a` stays
    in the L2 cache across the panels)."""
    _blocks(a, p, out, 0)


@njit(cache=True, nogil=True)
def gemm_panels_tn(a, p, out):
    """out (M, N) = a.T @ the (K, N) matrix `p` = panels(w) holds, for a (K, M) with C-contiguous
    rows (a weight gradient dZ.T @ v), read in place; out C-contiguous. Sums as gemm_panels'."""
    _blocks(a, p, out, 1)

