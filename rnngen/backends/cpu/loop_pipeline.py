"""How Numba compiles the time loops of the generated CPU modules: its own nopython pipeline with
two changes, both for those functions only.

1. The `noalias` flag, which marks every array argument of the loop `noalias` in LLVM. Without it
   LLVM cannot tell that two array arguments (the gates being written, the states being read) do
   not overlap, so before every vectorized j loop, once per batch row and step, it compares the
   ranges of every written array with those of every other (dozens of compares and register
   spills), and runs a scalar copy of the loop when they overlap. At the course size (H = 5, a
   loop over 5 units per row) that was a large part of each row: with the flag the module's
   forward takes 0.76-0.93x its time without (`python benchmarks/probes/modules_before_after.py
   --before bb6c35a`); the vector code itself is the same.

   The promise this makes, which the generated module's wrappers keep: no array a loop writes
   shares memory with any other array argument of the same call (each is allocated by the wrapper
   for that call; tests/backends/cpu/test_cpu_loop_pipeline.py checks every kernel call of every
   built-in cell). Arguments that are only read may share memory.

2. The LLVM function attribute `"prefer-vector-width"="512"` (what clang's -mprefer-vector-width=512
   sets), so that on a CPU with AVX-512 the loop vectorizer fills 512-bit registers: LLVM's tuning
   for Intel's AVX-512 CPUs otherwise prefers 256-bit vectors, and the gate math is then half as
   wide (an LSTM element in cache 3.4-3.6 ns with 256-bit vectors, 1.6 with 512-bit ones; `python
   benchmarks/probes/gate_math.py`). On a CPU without AVX-512, or one whose tuning already prefers
   512 bits (AMD Zen 4 and 5), nothing changes. Results are bit-identical either way (the same
   operations on more lanes at once).

`pipeline_class` is Numba's documented way to customise the compiler for one function (Numba's
"Customizing the Compiler"); `Flags.noalias` is the flag Numba's own parallel gufuncs compile with.
"""
from llvmlite.ir.values import FunctionAttributes
from numba.core import lowering
from numba.core.compiler import Compiler, DefaultPassBuilder
from numba.core.compiler_machinery import register_pass
from numba.core.typed_passes import NativeLowering

#: the function attribute of item 2, as LLVM's textual IR writes it
VECTOR_WIDTH = '"prefer-vector-width"="512"'


class _Attributes(FunctionAttributes):
    """llvmlite's function attributes, which know LLVM's keyword attributes only, plus VECTOR_WIDTH
    (written into the IR as it stands)."""
    _known = FunctionAttributes._known | {VECTOR_WIDTH}


class _WideLower(lowering.Lower):
    """Numba's lowering, with VECTOR_WIDTH on the function it lowers."""

    def setup_function(self, fndesc):
        super().setup_function(fndesc)
        old = self.function.attributes
        try:
            new = _Attributes(list(old) + [VECTOR_WIDTH])
            new.alignstack, new.personality = old.alignstack, old.personality
        except (AttributeError, TypeError, ValueError):   # an llvmlite whose attributes differ: the
            return                                         # loop compiles as before (speed only)
        self.function.attributes = new


@register_pass(mutates_CFG=True, analysis_only=False)
class WideNativeLowering(NativeLowering):
    """Numba's native lowering pass with _WideLower."""
    _name = "rnngen_wide_native_lowering"

    @property
    def lowering_class(self):
        return _WideLower


class LoopPipeline(Compiler):
    """Numba's default nopython pipeline with noalias set and the lowering above (see the top)."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(WideNativeLowering if p is NativeLowering else p, why) for p, why in pm.passes]
        pm.finalize()
        return [pm]
