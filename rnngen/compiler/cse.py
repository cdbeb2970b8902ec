"""Common-subexpression elimination of the pointwise blocks, seeded with the spec's names.

A block's assignments already hold the spec's named values and their adjoints (`i`, `c_next`,
`d_c_next`); CSE shares what else repeats as tmp0, tmp1, ... Each temporary is placed right before
the first line that needs it, the named values keep their order, and what no write needs is dropped.
"""
import dataclasses

import sympy as sp

from . import ir


def _schedule(assigns, temps, writes):
    """The assignments in order: each after what it uses; only what the writes need."""
    defined = dict(temps)
    defined.update(assigns)
    rank = {s: k for k, s in enumerate([s for s, _ in temps] + [s for s, _ in assigns])}
    needed, todo = set(), [s for w in writes for s in _free(w.value) if s in defined]
    while todo:
        s = todo.pop()
        if s not in needed:
            needed.add(s)
            todo += [q for q in defined[s].free_symbols if q in defined]
    order, done = [], set()

    def place(s):
        if s in done or s not in needed:
            return
        done.add(s)
        for q in sorted(defined[s].free_symbols & defined.keys(), key=rank.get):
            place(q)
        order.append((s, defined[s]))

    for s, _ in assigns:
        place(s)
    for w in writes:
        for s in sorted(_free(w.value) & defined.keys(), key=rank.get):
            place(s)
    return order


def _alias(temps, assigns, writes):
    """A named value CSE reduced to one temporary (`f = tmp3`) takes the temporary's place."""
    temp_set = {t for t, _ in temps}
    alias = {}
    for s, e in assigns:
        if e in temp_set and e not in alias:
            alias[e] = s
    if not alias:
        return temps, assigns, writes
    defs = dict(temps)
    temps = [(t, e.xreplace(alias)) for t, e in temps if t not in alias]
    assigns = [(s, (defs[e] if alias.get(e) == s else e).xreplace(alias)) for s, e in assigns]
    writes = [dataclasses.replace(w, value=w.value.xreplace(alias)) if isinstance(w.value, sp.Basic) else w
              for w in writes]
    return temps, assigns, writes


def _free(value):
    return value.free_symbols if isinstance(value, sp.Basic) else set()


def share(block, namer):
    """The block with common subexpressions shared; temporaries named by `namer` (tmp0, ...)."""
    exprs = [e for _, e in block.assigns]
    slots = [k for k, w in enumerate(block.writes) if isinstance(w.value, sp.Basic)]
    exprs += [block.writes[k].value for k in slots]
    internal = sp.numbered_symbols("_cse")
    temps, reduced = sp.cse(exprs, symbols=internal, order="canonical")
    n = len(block.assigns)
    assigns = [(s, e) for (s, _), e in zip(block.assigns, reduced[:n])]
    writes = list(block.writes)
    for k, e in zip(slots, reduced[n:]):
        writes[k] = dataclasses.replace(writes[k], value=e)
    temps, assigns, writes = _alias(temps, assigns, writes)
    order = _schedule(assigns, temps, writes)
    names = {}
    temp_symbols = {t for t, _ in temps}
    for s, _ in order:
        if s in temp_symbols:
            names[s] = sp.Symbol(next(namer.numbered("tmp")))
    assigns = [(names.get(s, s), e.xreplace(names)) for s, e in order]
    writes = [dataclasses.replace(w, value=w.value.xreplace(names)) if isinstance(w.value, sp.Basic) else w
              for w in writes]
    used = set().union(*(e.free_symbols for _, e in assigns), *(_free(w.value) for w in writes))
    reads = [r for r in block.reads if r.symbol in used]
    return dataclasses.replace(block, reads=reads, assigns=assigns, writes=writes)


def share_kernel(kernel):
    """The Kernel with every pointwise block shared (a stage of the pipeline). Each block numbers
    its temporaries from tmp0 (they are local to its loop); the kernel's namer learns them all."""
    namer = kernel.namer.copy()

    def one(op):
        if not isinstance(op, ir.Pointwise):
            return op
        own = kernel.namer.copy()
        out = share(op, own)
        namer.scopes["kernel"] |= own.scopes["kernel"]
        return out

    def stages(list_):
        return [ir.Stage(st.title, [one(op) for op in st.ops]) for st in list_]
    return dataclasses.replace(kernel, forward=stages(kernel.forward), backward=stages(kernel.backward),
                               namer=namer)
