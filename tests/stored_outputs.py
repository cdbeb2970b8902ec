"""The forward and backward outputs of every built-in generated CPU module, stored before the
restructuring (issue 10) so that a later generator can be checked against them.

    python tests/stored_outputs.py      # (re)writes tests/data/stored_outputs.npz
    python tests/stored_outputs.py --add   # adds the cells the file lacks, keeps the others

Run it only when the numbers are meant to change; tests/test_stored_outputs.py compares.
Each cell's inputs come from its own seed (seed_of), so a new cell changes no other cell's.
"""
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FILE = os.path.join(HERE, "data", "stored_outputs.npz")
T, B, I, H = 4, 3, 3, 4
LENGTHS = np.array([4, 1, 3])
CASES = {"plain": (None, False), "reverse": (None, True), "lengths": (LENGTHS, False),
         "lengths_reverse": (LENGTHS, True)}
DTYPES = {"float32": np.float32, "float64": np.float64}


def inputs(module, dtype, seed):
    """x, params, state0, dy, d_final of one case, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    params = {k: (2 * v).astype(dtype) for k, v in module.init_params(I, H, dtype, seed=seed).items()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in module.STATES)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    d_final = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in module.STATES)
    return x, params, state0, dy, d_final


def outputs(module, dtype, case, seed):
    """{array name: array} of forward and backward for one case."""
    lengths, reverse = CASES[case]
    x, params, state0, dy, d_final = inputs(module, dtype, seed)
    y, final, saved = module.forward(x, params, state0, lengths=lengths, reverse=reverse)
    dx, d_state0, d_params = module.backward(dy, d_final, saved)
    out = {"y": y, "dx": dx}
    for k, s in enumerate(module.STATES):
        out[f"final_{s}"] = final[k]
        out[f"d_state0_{s}"] = d_state0[k]
    for name, g in d_params.items():
        out[f"d_{name}"] = g
    return out


# the cells stored before the restructuring, seeded by their place in rnngen.available() then
ORIGINAL = ("gru", "gru_classic", "indrnn", "lstm", "lstm_peephole", "mingru", "rnn_relu", "rnn_tanh")


def seed_of(name):
    """A cell's seed: its index in ORIGINAL, else from its name (independent of the other cells)."""
    return ORIGINAL.index(name) if name in ORIGINAL else zlib.crc32(name.encode()) % 10**6


def all_outputs(load, names):
    """{"<cell>/<dtype>/<case>/<array>": array} for every cell, dtype and case."""
    stored = {}
    for name in names:
        seed = seed_of(name)
        module = load(name)
        for dname, dtype in DTYPES.items():
            for case in CASES:
                for key, arr in outputs(module, dtype, case, seed).items():
                    stored[f"{name}/{dname}/{case}/{key}"] = arr
    return stored


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    import rnngen
    names = rnngen.available()
    if "--add" in sys.argv[1:]:
        with np.load(FILE) as data:
            kept = dict(data)
        have = {key.split("/")[0] for key in kept}
        np.savez_compressed(FILE, **kept, **all_outputs(rnngen.load, [n for n in names if n not in have]))
    else:
        np.savez_compressed(FILE, **all_outputs(rnngen.load, names))
    print(FILE, os.path.getsize(FILE), "bytes")
