"""How Numba compiles the time loops of the generated CPU modules: its own nopython pipeline with
one flag set, `noalias`, which marks every array argument of the loop `noalias` in LLVM.

Without it LLVM cannot tell that two array arguments (the gates being written, the states being
read) do not overlap, so before every vectorized j loop, once per batch row and step, it compares
the ranges of every written array with those of every other (dozens of compares and register
spills), and runs a scalar copy of the loop when they overlap. At the course size (H = 5, a loop
over 5 units per row) that was a large part of each row: with the flag the module's forward takes
0.76-0.93x its time without (`python benchmarks/probes/modules_before_after.py --before bb6c35a`);
the vector code itself is the same.

The promise this makes, which the generated module's wrappers keep: no array a loop writes shares
memory with any other array argument of the same call (each is allocated by the wrapper for that
call; tests/backends/cpu/test_cpu_noalias.py checks every kernel call of every built-in cell).
Arguments that are only read may share memory.

`pipeline_class` is Numba's documented way to customise the compiler for one function (Numba's
"Customizing the Compiler"); `Flags.noalias` is the flag Numba's own parallel gufuncs compile with.
"""
from numba.core.compiler import Compiler


class DisjointArrays(Compiler):
    """Numba's default pipeline for a function whose array arguments are disjoint (see above)."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()
