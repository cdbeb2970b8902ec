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


def forward(op, n, level):
    """z[step, b, rows of this block's units] = v[step, b] @ W[rows].T"""
    G, b, H, B, step = op.weight.gates, n["b"], n["H"], n["B"], n["step"]
    src, w, lin = op.input.buffer.name, op.weight.name, op.linear
    rows = "_nu" if G == 1 else f"{G} * _nu"       # this block's rows of the weight
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
              "    _g = _r // _nu",
              f"    _wsh[{off} + _r * ({H} + 1) + _k] = {w}[_g * {H} + _j0 + _r - _g * _nu, _k]"],
        head=[f"_nc = ({rows} + 1) // 2              # tile: rows _c0, _c0 + _nc of the slice",
              f"_nb = ({B} + 1) // 2                    # ... and batch rows {b}, {b} + _nb",
              f"{b} = _e // _nc",
              f"_c0 = _e - {b} * _nc",
              f"_c1 = _c0 + _nc if _c0 + _nc < {rows} else _c0   # an odd count: a 1-wide tile",
              f"_b1 = {b} + _nb if {b} + _nb < {B} else {b}",
              "_g = _c0 // _nu",
              f"_row0 = _g * {H} + _j0 + _c0 - _g * _nu",
              "_g = _c1 // _nu",
              f"_row1 = _g * {H} + _j0 + _c1 - _g * _nu"],
        shared=f"_tile({src}[{step}, {b}], {src}[{step}, _b1], _wsh[{off} + _c0 * ({H} + 1):], "
               f"_wsh[{off} + _c1 * ({H} + 1):], {H}, _zero)",
        global_=f"_tile({src}[{step}, {b}], {src}[{step}, _b1], {w}[_row0], {w}[_row1], {H}, _zero)",
        store=_tile_stores(ref, b),
        size=f"{G} * _units * ({H} + 1)")


def backward(op, n, level):
    """columns of this block's units of dz[step] @ W, into d_state (+=) or dv (=)"""
    G, b, j, H, B, step = op.weight.gates, n["b"], n["j"], n["H"], n["B"], n["step"]
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
        count=f"(({B} + 1) // 2) * ((_nu + 1) // 2)",
        load=[f"for _e in range(_tid, _nu * {rows}, _nt):",
              f"    _u = _e // {prows}",
              f"    _k = _e - _u * {prows}",
              f"    _wsh[{off} + _u * ({rows} + 1) + _k] = {w}[_k, _j0 + _u]"],
        head=["_nc = (_nu + 1) // 2                 # tile: units _c0, _c0 + _nc of this block",
              f"_nb = ({B} + 1) // 2                    # ... and batch rows {b}, {b} + _nb",
              f"{b} = _e // _nc",
              f"_c0 = _e - {b} * _nc",
              "_c1 = _c0 + _nc if _c0 + _nc < _nu else _c0   # an odd count: a 1-wide tile",
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
