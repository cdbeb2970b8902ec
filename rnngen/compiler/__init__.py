"""The compiler: a spec's Cell -> a typed, backend-neutral IR -> the backends' modules.

driver.py runs it as named stages (load, step, rewrite, derive, lower, cse, then per backend
layout, emit, render) and keeps every intermediate. Imported by `rnngen build` and `rnngen show`
only; the runtime never imports it (nor sympy or jinja2).
"""
