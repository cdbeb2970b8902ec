"""The compiler as a list of named stages; a Compilation keeps every intermediate.

    load     spec file -> Cell                              (rnngen.spec.loader)
    step     Cell -> Step: linears, levels, named values    (step.py)
    rewrite  Step -> Step in numerically stable forms       (rewrite.py)
    derive   Step -> StepProgram: forward and backward math (derive.py)
    lower    StepProgram -> Kernel IR: names, buffers, ops  (lower.py)
    cse      Kernel -> Kernel with shared subexpressions    (cse.py)
    layout:<target>, emit:<target>, render:<target>        (rnngen/backends/<target>/)

A cell with random masks (`cell.mask`) is compiled a second time with every mask set to 1
(`rate0()`, masks.without_masks): the CPU and CUDA modules hold both kernel sets and run the second when a
call draws no mask (rate 0, or eval mode of inverted masks), so that rate 0 costs nothing.

`rnngen build` takes the rendered texts; `rnngen show` reads the IR and the CPU emitter's output.
"""
import hashlib
import os

import sympy

from .. import __version__
from ..spec.loader import load_spec
from . import cse, derive, lower, names, printer, rewrite, step
from .masks import masks_of, without_masks
from .targets import TARGETS


def versions():
    major_minor = ".".join(sympy.__version__.split(".")[:2])
    return f"rnngen {__version__}, sympy {major_minor}"


class Compilation:
    """One spec through the pipeline; `comp[stage]` runs the stages up to `stage` once."""

    def __init__(self, path, targets=TARGETS, specs_folder=None, cell=None, variant=None):
        self.path = os.path.abspath(path)
        self.targets = {t.NAME: t for t in targets}
        self.specs_folder = specs_folder or os.path.dirname(self.path)    # the header's record of it
        self.variant = variant      # "rate0": the cell with every mask 1, compiled into the same modules
        self.results = {} if cell is None else {"load": cell}
        self._rate0 = False         # not made yet (rate0())

    def stages(self):
        out = [("load", lambda: load_spec(self.path)),
               ("step", lambda: step.step_of(self["load"])),
               ("rewrite", lambda: rewrite.rewrite(self["step"])),
               ("derive", lambda: derive.derive(self["rewrite"])),
               ("lower", self._lower),
               ("cse", lambda: {tie: cse.share_kernel(k) for tie, k in self["lower"].items()})]
        for name, t in self.targets.items():
            out += [(f"layout:{name}", lambda t=t: t.layout(self.kernel(t.NAME))),
                    (f"emit:{name}", lambda t=t: t.emit(self.kernel(t.NAME), self[f"layout:{t.NAME}"],
                                                        self.header(), printer.equations(self.kernel(t.NAME)),
                                                        rate0=self.rate0_emit(t.NAME))),
                    (f"render:{name}", lambda t=t: t.render(self[f"emit:{t.NAME}"]))]
        return out

    def __getitem__(self, stage):
        if stage not in self.results:
            fn = dict(self.stages())[stage]
            self.results[stage] = fn()
        return self.results[stage]

    def run(self):
        for stage, _ in self.stages():
            self[stage]
        return self

    def _lower(self):
        """The Kernel IR for each choice of the targets (tied linears saved once, or not)."""
        kernel_globals = sorted(set(names.KERNEL_GLOBALS).union(*(t.KERNEL_GLOBALS for t in self.targets.values())))
        return {tie: lower.lower(self["derive"], kernel_globals, tie)
                for tie in sorted({t.TIE_LINEARS for t in self.targets.values()})}

    def rate0(self):
        """The Compilation of the cell at rate 0 (masks.without_masks: every step and sequence mask
        1), whose kernels the modules run when no mask is drawn; None for a cell without masks."""
        if self._rate0 is False:
            cell = without_masks(self["load"]) if self.variant is None else None
            self._rate0 = None if cell is None else \
                Compilation(self.path, tuple(self.targets.values()), self.specs_folder, cell, "rate0")
        return self._rate0

    def rate0_emit(self, target):
        """`target`'s emitted module of the cell at rate 0, or None."""
        sub = self.rate0()
        return None if sub is None else sub[f"emit:{target}"]

    def kernel(self, target):
        """The (shared) Kernel IR `target` builds from."""
        return self["cse"][self.targets[target].TIE_LINEARS]

    def sha256(self):
        with open(self.path, "rb") as f:
            spec = f.read()
        libraries = b"".join(t.source_bytes() for t in self.targets.values())
        return hashlib.sha256(spec + libraries + versions().encode()).hexdigest()

    def header(self):
        cell = self["load"]
        return {"name": cell.name, "spec_file": os.path.basename(self.path), "specs_folder": self.specs_folder,
                "sha256": self.sha256(), "versions": versions(), "states": cell.states, "output": cell.output,
                "initial": dict(cell.initial),
                "masks": masks_of(cell), "rates": tuple(dict.fromkeys(r for r, _, _ in masks_of(cell).values())),
                "variant": self.variant}

    def files(self):
        """{file name: source text} of every target's module."""
        name = self["load"].name
        return {t.file_name(name): self[f"render:{t.NAME}"] for t in self.targets.values()}


