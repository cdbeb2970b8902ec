"""The former name of loop_pipeline.py, kept for CPU modules generated before 2026-12-07 (they import
DisjointArrays from here): the same pipeline, now with the 512-bit vector width too. Rebuild such
modules (`rnngen build`) to import loop_pipeline.LoopPipeline directly."""
from .loop_pipeline import LoopPipeline as DisjointArrays  # noqa: F401
