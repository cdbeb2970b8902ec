"""The GEMM slices of the persistent kernels (printed lines): each block computes its units' rows
of z[step] = v[step] @ W.T forward and its units' columns of dz[step] @ W backward, in 2x2 register
tiles (mathlib.tile) of (batch row, weight row) or (batch row, unit)."""
from dataclasses import dataclass


@dataclass
class Gemm:
    """One recurrent linear's slice of a GEMM inside the persistent kernel."""
    linear: str
    title: str
    count: str           # work items: 2x2 tiles
    load: list           # lines copying the slice into shared memory (inside `if _on_chip:`)
    head: list           # lines mapping the work item _e to its tile
    shared: str          # the tile's call reading the weight from shared memory
    global_: str         # the same reading it from global memory (the fallback)
    store: list          # lines writing the tile
    size: str            # shared-memory elements of the slice


def _sizes(op, lay):
    """(K: the linear's input size, O: its output size per gate, this block's units of O and of
    K): the kernels' locals (H unless the spec declares another size)."""
    if lay is None:
        return "H", "H", "_nu", "_nu"
    dims = lay.dims(op.weight)          # a block-diagonal (heads) weight: its dense matrix's
    out = dims[0] / op.weight.gates
    k = dims[1]
    return lay.size_name(k), lay.size_name(out), lay.units_name(out), lay.units_name(k)


def forward(op, n, level, lay=None):
    """z[step, b, rows of this block's units] = v[step, b] @ W[rows].T"""
    G, b, B, step = op.weight.gates, n["b"], n["B"], n["step"]
    H, O, nu, _ = _sizes(op, lay)       # H: the input size (the dot products' length)
    src, w, lin = op.input.buffer.name, op.weight.name, op.linear
    rows = nu if G == 1 else f"{G} * {nu}"       # this block's rows of the weight
    z = op.output.buffer.name
    at = f"{step}, " if op.output.at == "step" else ""
    off = f"_off_{lin}"

    def ref(row, c):
        acc = f"_a{'0' if row == 'b' else '1'}{c}"
        return f"{z}[{at}{b if row == 'b' else '_b1'}, _row{c}] = {acc}"
    return Gemm(
        linear=lin,
        title=f"stage {level}: {z}[{step}] = {src}[{step}] @ {w}.T, rows of this block's units",
        count=f"(({B} + 1) // 2) * (({rows} + 1) // 2)",
        load=[f"for _e in range(_tid, {rows} * {H}, _nt):",
              f"    _r = _e // {H}",
              f"    _k = _e - _r * {H}",
              f"    _g = _r // {nu}",
              f"    _wsh[{off} + _r * ({H} + 1) + _k] = {w}[_g * {O} + _j0 + _r - _g * {nu}, _k]"],
        head=[f"_nc = ({rows} + 1) // 2              # tile: rows _c0, _c0 + _nc of the slice",
              f"_nb = ({B} + 1) // 2                    # ... and batch rows {b}, {b} + _nb",
              f"{b} = _e // _nc",
              f"_c0 = _e - {b} * _nc",
              f"_c1 = _c0 + _nc if _c0 + _nc < {rows} else _c0   # an odd count: a 1-wide tile",
              f"_b1 = {b} + _nb if {b} + _nb < {B} else {b}",
              f"_g = _c0 // {nu}",
              f"_row0 = _g * {O} + _j0 + _c0 - _g * {nu}",
              f"_g = _c1 // {nu}",
              f"_row1 = _g * {O} + _j0 + _c1 - _g * {nu}"],
        shared=f"_tile({src}[{step}, {b}], {src}[{step}, _b1], _wsh[{off} + _c0 * ({H} + 1):], "
               f"_wsh[{off} + _c1 * ({H} + 1):], {H}, _zero)",
        global_=f"_tile({src}[{step}, {b}], {src}[{step}, _b1], {w}[_row0], {w}[_row1], {H}, _zero)",
        store=_tile_stores(ref, b),
        size=f"{G} * _units * ({H} + 1)")


def backward(op, n, level, lay=None):
    """columns of this block's units of dz[step] @ W, into d_state (+=) or dv (=)"""
    G, b, j, B, step = op.weight.gates, n["b"], n["j"], n["B"], n["step"]
    _, H, _, nu = _sizes(op, lay)       # H: the output size per gate; nu: this block's input units
    w, lin, dz = op.weight.name, op.linear, op.d.buffer.name
    rows = H if G == 1 else f"{G} * {H}"
    prows = rows if G == 1 else f"({rows})"
    off = f"_off_{lin}"

    def ref(row, c):
        acc = f"_a{'0' if row == 'b' else '1'}{c}"
        col = j if c == "0" else "_j1"
        return f"{op.out.name}[{b if row == 'b' else '_b1'}, {col}] {'+=' if op.accumulate else '='} {acc}"
    return Gemm(
        linear=lin,
        title=f"stage {level}: columns of this block's units of {dz}[{step}] @ {w}",
        count=f"(({B} + 1) // 2) * (({nu} + 1) // 2)",
        load=[f"for _e in range(_tid, {nu} * {rows}, _nt):",
              f"    _u = _e // {prows}",
              f"    _k = _e - _u * {prows}",
              f"    _wsh[{off} + _u * ({rows} + 1) + _k] = {w}[_k, _j0 + _u]"],
        head=[f"_nc = ({nu} + 1) // 2                 # tile: units _c0, _c0 + _nc of this block",
              f"_nb = ({B} + 1) // 2                    # ... and batch rows {b}, {b} + _nb",
              f"{b} = _e // _nc",
              f"_c0 = _e - {b} * _nc",
              f"_c1 = _c0 + _nc if _c0 + _nc < {nu} else _c0   # an odd count: a 1-wide tile",
              f"_b1 = {b} + _nb if {b} + _nb < {B} else {b}",
              f"{j} = _j0 + _c0",
              "_j1 = _j0 + _c1"],
        shared=f"_tile({dz}[{step}, {b}], {dz}[{step}, _b1], _wsh[{off} + _c0 * ({rows} + 1):], "
               f"_wsh[{off} + _c1 * ({rows} + 1):], {rows}, _zero)",
        global_=f"_tile({dz}[{step}, {b}], {dz}[{step}, _b1], {w}[:, {j}], {w}[:, _j1], {rows}, _zero)",
        store=_tile_stores(ref, b),
        size=f"_units * ({rows} + 1)")


def _tile_stores(ref, b):
    """Store the 2x2 tile; `ref(row, col)` prints an element. Clamped duplicates are skipped."""
    return [ref("b", "0"),
            "if _c1 != _c0:",
            "    " + ref("b", "1"),
            f"if _b1 != {b}:",
            "    " + ref("_b1", "0"),
            "    if _c1 != _c0:",
            "        " + ref("_b1", "1")]


def offsets(gemms):
    """Lines placing each linear's slice in the block's shared memory, one after the other."""
    lines, prev = [], None
    for g in gemms:
        lines.append(f"_off_{g.linear} = " + ("0" if prev is None else f"_off_{prev.linear} + {prev.size}"))
        prev = g
    return lines
