"""The GEMM slices of the persistent kernels (printed lines): each block computes its units' rows
of z[step] = v[step] @ W.T forward and its units' columns of dz[step] @ W backward.

Work is split into warp tiles of 2 batch rows x 4 columns (weight rows forward, units backward):
a warp takes a tile, its lanes split k (lane l: k = l, l + 32, ...), each lane keeps the 8
partial dot products in registers (mathlib.lane_tile), a butterfly of warp shuffles sums them
(mathlib.lane_sum8) and lane 0 stores the tile. So a warp's loads of an input row are one
coalesced 128-byte line per 32 k, its shared-memory loads of the weights hit 32 different banks,
every warp of the block has tiles in both passes (plan() sizes blocks from these tiles), and the
sums are in a fixed order (bit-reproducible). Consecutive warps take tiles of the same batch rows,
so they read the same input lines at about the same time (L1 hits).

A block-diagonal (heads) linear reads its (heads, gates*DH, DH) weight as it is: a row of the
forward slice is the DH weights of its unit's head, dotted with the head's DH inputs; a column of
the backward slice is the gates*DH weights of its unit in its head, dotted with the head's gates*DH
gradients (forward_heads, backward_heads): NH small products, no zeros multiplied.

Each stage's GEMMs are one Gemm each (the template prints them in the stage's order); a new kind
of stage (a reduction over the hidden units) is another constructor next to forward() and
backward() returning the same record.
"""
from dataclasses import dataclass

COLS = 4          # columns of a warp tile (weight rows forward, units backward)
ROWS = 2          # batch rows of a warp tile


@dataclass
class Gemm:
    """One recurrent linear's slice of a GEMM inside the persistent kernel."""
    linear: str
    title: str
    count: str           # work items: warp tiles of ROWS x COLS
    load: list           # lines copying the slice into shared memory (inside `if _on_chip:`)
    head: list           # lines mapping the work item _e to its tile
    shared: str          # the lane's partial tile, reading the weight from shared memory
    global_: str         # the same reading it from global memory (the fallback)
    store: list          # lines writing the tile (lane 0, after the warp sum)
    size: str            # shared-memory elements of the slice
    locals: list = None  # lines before the time loop (a heads weight's DH)


def _columns(count):
    """Lines: this tile's columns _c0.._c3 of `count` (a clamped duplicate of _c0 past the end)."""
    return [f"_c{i} = _c0 + {i} if _c0 + {i} < {count} else _c0" for i in range(1, COLS)]


def _tile_head(b, B, count):
    return [f"_nc = ({count} + {COLS - 1}) // {COLS}              # tiles: columns _c0 .. _c0 + {COLS - 1}",
            f"_nb = ({B} + 1) // 2                    # ... of batch rows {b} and {b} + _nb",
            f"{b} = _e // _nc",
            f"_c0 = {COLS} * (_e - {b} * _nc)",
            *_columns(count),
            f"_b1 = {b} + _nb if {b} + _nb < {B} else {b}"]


def _sizes(op, lay):
    """(K: the linear's input size, O: its output size per gate, this block's units of O and of
    K): the kernels' locals (H unless the spec declares another size)."""
    if lay is None:
        return "H", "H", "_nu", "_nu"
    dims = lay.dims(op.weight)
    out = dims[0] / op.weight.gates
    k = dims[1]
    return lay.size_name(k), lay.size_name(out), lay.units_name(out), lay.units_name(k)


def forward(op, n, level, lay=None):
    """z[step, b, rows of this block's units] = v[step, b] @ W[rows].T"""
    if op.heads:
        return forward_heads(op, n, level)
    G, b, B, step = op.weight.gates, n["b"], n["B"], n["step"]
    H, O, nu, _ = _sizes(op, lay)       # H: the input size (the dot products' length)
    src, w, lin = op.input.buffer.name, op.weight.name, op.linear
    rows = nu if G == 1 else f"{G} * {nu}"       # this block's rows of the weight
    z = op.output.buffer.name
    at = f"{step}, " if op.output.at == "step" else ""
    off = f"_off_{lin}"
    head = _tile_head(b, B, rows)
    for i in range(COLS):
        head += [f"_g = _c{i} // {nu}", f"_row{i} = _g * {O} + _j0 + _c{i} - _g * {nu}"]

    def ref(row, c):
        return f"{z}[{at}{b if row == 0 else '_b1'}, _row{c}] = _a{row}{c}"
    cols = ", ".join(f"_wsh[{off} + _c{i} * ({H} + 1):]" for i in range(COLS))
    return Gemm(
        linear=lin,
        title=f"stage {level}: {z}[{step}] = {src}[{step}] @ {w}.T, rows of this block's units",
        count=f"(({B} + 1) // 2) * (({rows} + {COLS - 1}) // {COLS})",
        load=[f"for _e in range(_tid, {rows} * {H}, _nt):",
              f"    _r = _e // {H}",
              f"    _k = _e - _r * {H}",
              f"    _g = _r // {nu}",
              f"    _wsh[{off} + _r * ({H} + 1) + _k] = {w}[_g * {O} + _j0 + _r - _g * {nu}, _k]"],
        head=head,
        shared=f"_lane_tile({src}[{step}, {b}], {src}[{step}, _b1], {cols}, {H}, _lane, _lanes, _zero)",
        global_=f"_lane_tile({src}[{step}, {b}], {src}[{step}, _b1], "
                + ", ".join(f"{w}[_row{i}]" for i in range(COLS)) + f", {H}, _lane, _lanes, _zero)",
        store=_tile_stores(ref, b),
        size=f"{G} * _units * ({H} + 1)")


def backward(op, n, level, lay=None):
    """columns of this block's units of dz[step] @ W, into d_state (+=) or dv (=)"""
    if op.heads:
        return backward_heads(op, n, level)
    G, b, j, B, step = op.weight.gates, n["b"], n["j"], n["B"], n["step"]
    _, H, _, nu = _sizes(op, lay)       # H: the output size per gate; nu: this block's input units
    w, lin, dz = op.weight.name, op.linear, op.d.buffer.name
    rows = H if G == 1 else f"{G} * {H}"
    prows = rows if G == 1 else f"({rows})"
    off = f"_off_{lin}"
    units = [j] + [f"_j{i}" for i in range(1, COLS)]
    head = _tile_head(b, B, nu) + [f"{units[i]} = _j0 + _c{i}" for i in range(COLS)]

    def ref(row, c):
        return f"{op.out.name}[{b if row == 0 else '_b1'}, {units[int(c)]}] {'+=' if op.accumulate else '='} _a{row}{c}"
    cols = ", ".join(f"_wsh[{off} + _c{i} * ({rows} + 1):]" for i in range(COLS))
    return Gemm(
        linear=lin,
        title=f"stage {level}: columns of this block's units of {dz}[{step}] @ {w}",
        count=f"(({B} + 1) // 2) * (({nu} + {COLS - 1}) // {COLS})",
        load=[f"for _e in range(_tid, {nu} * {rows}, _nt):",
              f"    _u = _e // {prows}",
              f"    _k = _e - _u * {prows}",
              f"    _wsh[{off} + _u * ({rows} + 1) + _k] = {w}[_k, _j0 + _u]"],
        head=head,
        shared=f"_lane_tile({dz}[{step}, {b}], {dz}[{step}, _b1], {cols}, {rows}, _lane, _lanes, _zero)",
        global_=f"_lane_tile({dz}[{step}, {b}], {dz}[{step}, _b1], "
                + ", ".join(f"{w}[:, {units[i]}]" for i in range(COLS)) + f", {rows}, _lane, _lanes, _zero)",
        store=_tile_stores(ref, b),
        size=f"_units * ({rows} + 1)")


def forward_heads(op, n, level):
    """z[step, b, rows of this block's units] for a block-diagonal weight W (heads, G*DH, DH): the
    row of gate g, unit u (head u // DH) is W[u // DH, g*DH + u % DH], over v[step, b] from the
    head's first unit."""
    G, b, B, step, H = op.weight.gates, n["b"], n["B"], n["step"], n["H"]
    src, w, lin = op.input.buffer.name, op.weight.name, op.linear
    dh = f"_dh_{lin}"
    rows = "_nu" if G == 1 else f"{G} * _nu"
    z = op.output.buffer.name
    at = f"{step}, " if op.output.at == "step" else ""
    off = f"_off_{lin}"
    head = _tile_head(b, B, rows)
    for i in range(COLS):
        head += [f"_g = _c{i} // _nu", f"_u = _j0 + _c{i} - _g * _nu", f"_row{i} = _g * {H} + _u",
                 f"_o{i} = _u - _u % {dh}   # the first unit of its head",
                 f"_n{i} = _u // {dh}", f"_q{i} = _g * {dh} + _u - _o{i}"]

    def ref(row, c):
        return f"{z}[{at}{b if row == 0 else '_b1'}, _row{c}] = _a{row}{c}"
    cols = ", ".join(f"_wsh[{off} + _c{i} * ({dh} + 1):]" for i in range(COLS))
    offs = ", ".join(f"_o{i}" for i in range(COLS))
    return Gemm(
        linear=lin,
        title=f"stage {level}: {z}[{step}] = {src}[{step}] @ blockdiag({w}).T, rows of this block's units",
        count=f"(({B} + 1) // 2) * (({rows} + {COLS - 1}) // {COLS})",
        load=[f"for _e in range(_tid, {rows} * {dh}, _nt):",
              f"    _r = _e // {dh}",
              f"    _k = _e - _r * {dh}",
              f"    _g = _r // _nu",
              f"    _u = _j0 + _r - _g * _nu",
              f"    _wsh[{off} + _r * ({dh} + 1) + _k] = {w}[_u // {dh}, _g * {dh} + _u % {dh}, _k]"],
        head=head,
        shared=f"_lane_tile_heads({src}[{step}, {b}], {src}[{step}, _b1], {cols}, {offs}, {dh}, _lane, _lanes, _zero)",
        global_=f"_lane_tile_heads({src}[{step}, {b}], {src}[{step}, _b1], "
                + ", ".join(f"{w}[_n{i}, _q{i}]" for i in range(COLS)) + f", {offs}, {dh}, _lane, _lanes, _zero)",
        store=_tile_stores(ref, b),
        size=f"{G} * _units * ({dh} + 1)",
        locals=[f"{dh} = {w}.shape[2]   # the units of a head of {w}"])


def backward_heads(op, n, level):
    """columns of this block's units of dz[step] @ blockdiag(W): unit u of head u // DH reads the
    G*DH gradients of its head's rows (g*H + head start + e) against W[u // DH, :, u % DH]."""
    G, b, j, B, step, H = op.weight.gates, n["b"], n["j"], n["B"], n["step"], n["H"]
    w, lin, dz = op.weight.name, op.linear, op.d.buffer.name
    dh = f"_dh_{lin}"
    col = f"{G} * {dh}" if G > 1 else dh
    off = f"_off_{lin}"
    units = [j] + [f"_j{i}" for i in range(1, COLS)]
    head = _tile_head(b, B, "_nu") + [f"{units[i]} = _j0 + _c{i}" for i in range(COLS)]
    head += [f"_o{i} = {units[i]} - {units[i]} % {dh}" for i in range(COLS)]

    def ref(row, c):
        return f"{op.out.name}[{b if row == 0 else '_b1'}, {units[int(c)]}] {'+=' if op.accumulate else '='} _a{row}{c}"
    cols = ", ".join(f"_wsh[{off} + _c{i} * ({col} + 1):]" for i in range(COLS))
    offs = ", ".join(f"_o{i}" for i in range(COLS))
    return Gemm(
        linear=lin,
        title=f"stage {level}: columns of this block's units of {dz}[{step}] @ blockdiag({w})",
        count=f"(({B} + 1) // 2) * ((_nu + {COLS - 1}) // {COLS})",
        load=[f"for _e in range(_tid, _nu * {col}, _nt):",
              f"    _u = _e // ({col})",
              f"    _k = _e - _u * ({col})",
              f"    _wsh[{off} + _u * ({col} + 1) + _k] = {w}[(_j0 + _u) // {dh}, _k, (_j0 + _u) % {dh}]"],
        head=head,
        shared=f"_lane_tile_heads_t({dz}[{step}, {b}], {dz}[{step}, _b1], {cols}, {offs}, {G}, {H}, {dh}, "
               "_lane, _lanes, _zero)",
        global_=f"_lane_tile_heads_t({dz}[{step}, {b}], {dz}[{step}, _b1], "
                + ", ".join(f"{w}[{units[i]} // {dh}, :, {units[i]} % {dh}]" for i in range(COLS))
                + f", {offs}, {G}, {H}, {dh}, _lane, _lanes, _zero)",
        store=_tile_stores(ref, b),
        size=f"_units * ({col} + 1)",
        locals=[f"{dh} = {w}.shape[2]   # the units of a head of {w}"])


def _tile_stores(ref, b):
    """Store the 2x4 tile; `ref(row, col)` prints an element. Clamped duplicates are skipped."""
    lines = []
    for row in (0, 1):
        inner = [ref(row, "0")]
        for c in range(1, COLS):
            inner += [f"if _c{c} != _c0:", "    " + ref(row, str(c))]
        lines += inner if row == 0 else [f"if _b1 != {b}:"] + ["    " + line for line in inner]
    return lines


def offsets(gemms):
    """Lines placing each linear's slice in the block's shared memory, one after the other."""
    lines, prev = [], None
    for g in gemms:
        lines += g.locals or []
        lines.append(f"_off_{g.linear} = " + ("0" if prev is None else f"_off_{prev.linear} + {prev.size}"))
        prev = g
    return lines
