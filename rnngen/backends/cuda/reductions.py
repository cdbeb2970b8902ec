"""The reductions (cell.mean) of the persistent CUDA kernels: partial sums per block, a grid.sync,
then the rows finished across the grid.

Block k owns units [k*units, (k+1)*units) of every row, as for the GEMM slices, so a row's sum
spans the blocks. Rather than give rows to single blocks (which would need a second partition of
the work, and of the weight slices in shared memory, for the stages around each reduction), a
block with a reduction runs its pointwise block one batch row per thread: the thread walks the
block's own units in order, does every write of the block for them and sums the reduction's values
in a register, then stores that partial sum into part_<m>[block, b]. After grid.sync, the rows are
finished across the grid (row b by thread b of the grid): m[b] = (sum over the blocks, in block
order, of the partials) * 1/count, and a second grid.sync (the one after every pointwise phase)
publishes them. No atomics: the sums are the same on every run.
"""
from dataclasses import dataclass


@dataclass
class Reduction:
    """A pointwise block with reductions, printed in the row-per-thread form."""
    title: str
    nu: str              # the units of this block (_nu or _nu_<size>)
    head: list           # per row, before the units loop: accumulators
    lines: list          # per (b, j) of an active row: reads, assignments, writes, sums
    tail: list           # per row, after the units loop: the partial sums' stores
    inactive: list       # per (b, j) past a row's length
    finish: list         # after grid.sync: per row b of the grid, the finished values


def reduction(printer, blk, extra_inactive=()):
    """The Reduction of one ir.Pointwise with writes that have `reduce` set."""
    lay, n = printer.lay, printer.k.loop
    lines = [f"{r.symbol.name} = " + " + ".join(printer.element(t) for t in lay.terms(r)) for r in blk.reads]
    lines += [f"{s.name} = {printer.printer.doprint(e)}" for s, e in blk.assigns]
    head, tail, finish = [], [], []
    for w in blk.writes:
        if w.reduce is None:
            lines.append(f"{printer.element(w.ref)} {'+=' if w.accumulate else '='} {printer.value(w.value)}")
            continue
        acc = lay.namer.claim(f"sum_{w.ref.buffer.name}")
        part = lay.partial(w.ref.buffer)
        printer.used.add(part)
        head.append(f"{acc} = _zero")
        lines.append(f"{acc} += {printer.value(w.value)}")
        tail.append(f"{part.name}[cuda.blockIdx.x, {n['b']}] = {acc}")
        target = printer.element(w.ref)
        finish += [f"{acc} = _zero",
                   "for _k in range(cuda.gridDim.x):",
                   f"    {acc} += {part.name}[_k, {n['b']}]",
                   f"{target} {'+=' if w.accumulate else '='} {acc}*{printer.scale(w.reduce)}"]
    inactive = [f"{printer.element(w.ref)} = {printer.value(w.value)}"
                for w in list(blk.inactive) + list(extra_inactive)]
    return Reduction(blk.title, lay.units_name(blk.size), head, lines, tail, inactive, finish)


def has_reduction(blk):
    return any(w.reduce is not None for w in blk.writes)
