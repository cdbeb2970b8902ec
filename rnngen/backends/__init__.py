"""One folder per target. Each has a compile-time part (layout, emitter, template: `target.py`, which
only the compiler imports) and a run-time part (its math library) that generated modules import.
Importing this package imports nothing else."""
