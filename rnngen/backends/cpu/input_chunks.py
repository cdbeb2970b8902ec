"""The inference forward's input GEMMs in chunks of steps (`forward(..., need_grad=False)`).

The training forward hoists `x @ W_ih.T` out of its time loop: one GEMM over all T*B rows before
the loop, whose (T, B, gates*H) output the loop reads and then overwrites with what backward needs.
The inference forward keeps nothing for backward, so its loop computes those products itself,
TC steps at a time, into a (TC, B, gates*H) chunk that is still in the L2 cache when the steps
read it: at step % TC == 0 it gathers x's rows of the next TC steps in loop order (gather_steps,
which also puts a reversed run's rows in order) and runs the per-step GEMM's register tile
(stepgemm.gemm_panels) on them. The hoisted output instead makes a round trip through memory
(8 MB per half-batch slice at T256 B16 H128), which the two workers of the default schedule
(batch slices) pay at once.

chunk_steps picks TC: chunks of about CHUNK_BYTES while the step's weights fit in the L2 cache
(MAX_WEIGHT_BYTES), else TC = T (one GEMM of every step at step 0: the hoisted GEMM, inside the
loop). The rule came from scratch runs on a 2-core Zen 5 guest (2026-12-07, a hand-written lstm
inference loop, each slice packing its own weights; BENCHMARKS.md): chunks won up to 2 MB of
weights and lost 3-8% at 8 MB. Since the slices share their packed weights (host_gemm.SharedPanels),
`python benchmarks/probes/input_chunks.py` finds chunks faster at 8 MB too (lstm T100 B64
I=H=512 inference 81.9-92.2 -> 72.0-78.9 ms, two runs, 19:13-19:16 UTC): MAX_WEIGHT_BYTES is to be
raised, not yet done.
"""
from numba import njit

#: the bytes of one chunk of the input products (the steps' rows, all hoisted linears)
CHUNK_BYTES = 256 << 10
#: the bytes of weights (every linear of the step) above which one chunk holds every step
MAX_WEIGHT_BYTES = 2 << 20


def chunk_steps(T, step_bytes, weights):
    """TC, the steps per chunk of the input GEMMs: `step_bytes` are one step's input products
    (B * their widths * itemsize), `weights` the arrays of the step's linears."""
    if sum(w.nbytes for w in weights) > MAX_WEIGHT_BYTES:
        return max(T, 1)
    return max(1, min(T, CHUNK_BYTES // max(step_bytes, 1)))


@njit(cache=True, nogil=True)
def gather_steps(x, lengths, reverse, step, out):
    """out[k, b] = the input row of sequence b at loop step `step + k` (x[t, b]: t = step + k, or
    lengths[b] - 1 - (step + k) when reverse), zeros past its length, for k < n = min(TC, T - step)
    (TC = out.shape[0]); returns n."""
    T, B, I = x.shape
    n = min(out.shape[0], T - step)
    for k in range(n):
        s = step + k
        for b in range(B):
            if s < lengths[b]:
                t = lengths[b] - 1 - s if reverse else s
                for i in range(I):
                    out[k, b, i] = x[t, b, i]
            else:
                for i in range(I):
                    out[k, b, i] = 0
    return n


@njit(cache=True, nogil=True)
def steps_rows(a, n):
    """The first n steps of a (TC, B, m) chunk as (n * B, m) rows, a view."""
    return a[:n].reshape(n * a.shape[1], a.shape[2])
