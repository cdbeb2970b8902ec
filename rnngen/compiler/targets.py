"""The backends `rnngen build` writes modules for: one registration line each."""
from ..backends.cpu import target as cpu
from ..backends.cuda import target as cuda

TARGETS = (cpu, cuda)
