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
(MAX_WEIGHT_BYTES) or the batch slices of the call share their packed weights (host_gemm.SharedPanels),
else TC = T (one GEMM of every step at step 0: the hoisted GEMM, inside the loop). A chunk re-reads
the input weights' panels, from the L3 cache once they are beyond the L2; a run alone or beside
another run with weights of its own (the two directions of a bidirectional layer) pays that at
every chunk, while two slices reading one shared copy pay it less than the hoisted output's round
trip through memory. Measured on a 2-core Zen 5 guest (2026-12-07, rnngen.RNN inference, medians of
alternated blocks, load 0-1.2): lstm T100 B64 I=H=512 at default threads (two slices sharing):
chunks 82.0 / 70.8 / 83.3 ms, TC = T 96.0 / 73.1 / 88.1 (`python benchmarks/probes/input_chunks.py`
and two scratch runs); on one thread (`--threads 1`): chunks 168.8 / 156.0, TC = T 151.1 / 147.5;
bidirectional at default threads (one run per direction, each with its own weights): chunks 179.3,
TC = T 157.5. With weights of <= 2 MB chunks win on one thread too (lstm T256 B64 H256: 88.2 vs
106.5 ms). Scratch runs before the weights were shared are in BENCHMARKS.md.
"""
from numba import njit

#: the bytes of one chunk of the input products (the steps' rows, all hoisted linears)
CHUNK_BYTES = 256 << 10
#: the bytes of weights (every linear of the step) above which one chunk holds every step, unless
#: the call's slices share them
MAX_WEIGHT_BYTES = 2 << 20


def chunk_steps(T, step_bytes, weights, shared=False):
    """TC, the steps per chunk of the input GEMMs: `step_bytes` are one step's input products
    (B * their widths * itemsize), `weights` the arrays of the step's linears, `shared` whether
    the call's batch slices share one packed copy of them (modules generated before 2026-12-07
    do not pass it)."""
    if not shared and sum([w.nbytes for w in weights]) > MAX_WEIGHT_BYTES:
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
