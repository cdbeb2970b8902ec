"""Today's generated modules compute what the modules stored before the restructuring computed:
forward and backward of every built-in cell, float32 and float64, with lengths and reverse, within
1e-6 (float32) and 1e-12 (float64) of the largest magnitude of each array.

The stored file is written by `python tests/stored_outputs.py` (only when numbers are meant to change).
"""
import numpy as np
import pytest

import rnngen
from stored_outputs import CASES, DTYPES, FILE, outputs, seed_of

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.fixture(scope="module")
def stored():
    with np.load(FILE) as data:
        return dict(data)


def test_stored_file_covers_every_builtin_cell(stored):
    assert {key.split("/")[0] for key in stored} == set(rnngen.available())


@pytest.mark.parametrize("dname", list(DTYPES))
@pytest.mark.parametrize("name", rnngen.available())
def test_outputs_match_stored(stored, name, dname):
    module = rnngen.load(name)
    seed = seed_of(name)
    for case in CASES:
        got = outputs(module, DTYPES[dname], case, seed)
        prefix = f"{name}/{dname}/{case}/"
        expected = {key[len(prefix):]: arr for key, arr in stored.items() if key.startswith(prefix)}
        assert set(got) == set(expected), (case, sorted(got), sorted(expected))
        for key, ref in expected.items():
            assert got[key].dtype == ref.dtype and got[key].shape == ref.shape, (case, key)
            scale = max(float(np.abs(ref).max()), np.finfo(ref.dtype).tiny)
            err = float(np.abs(got[key].astype(np.float64) - ref).max()) / scale
            assert err <= TOLERANCE[dname], f"{case} {key}: relative error {err:.3g}"
