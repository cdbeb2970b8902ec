"""Pointers into numpy arrays for the CPU kernels (a Numba intrinsic)."""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def at(typingctx, a, index):
    """at(a, (i0, i1, ..., k)): a pointer to a[i0, i1, ..., k] that the kernels index as p[j]
    (= a[i0, i1, ..., k + j]), for the per-row gate blocks of the fused loops.

    A slice a[i0, i1, k:k + H] would do the same, but each slice Numba makes counts a reference to
    the array (an atomic increment and decrement, two library calls), once per gate block and row.
    A pointer counts nothing: backward 0.66-0.86x at the course size, 0.91-0.98x at small
    (`python benchmarks/probes/modules_before_after.py --before 94ff38d`, BENCHMARKS.md's machine). Each gate block read or written through its own pointer (not a[.., g * H + j] on one
    array, whose stores at distances of H LLVM cannot prove apart) lets the loop vectorize, with
    LLVM's run-time overlap checks. No bounds check (as Numba's indexing has none)."""
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(index, types.BaseTuple)
            and len(index) == a.ndim and all(isinstance(i, types.Integer) for i in index)):
        return None
    sig = types.CPointer(a.dtype)(a, index)

    def codegen(context, builder, signature, args):
        aryty, _ = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, v, ty, types.intp)
               for v, ty in zip(cgutils.unpack_tuple(builder, args[1], len(index)), index)]
        return cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)

    return sig, codegen
