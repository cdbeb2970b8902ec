"""What the stages of benchmarks/gpu_check.py share: the import of rnngen from this source tree
(nothing needs installing; numba.cuda through rnngen.cuda_compat, so numpy 2.5 works), the mode
(a GPU, or the CUDA simulator, which runs the stages' logic at tiny sizes), random problems, and
the comparison with tolerances.
"""
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from rnngen import cuda_compat  # noqa: E402

cuda = cuda_compat.import_cuda()          # before anything compiles a kernel: the numpy 2.5 shim

import numpy as np  # noqa: E402


def _source_tree_packages():
    """Without `pip install`, map rnngen.generated and rnngen.specs to the folders of this tree
    (pyproject.toml's package-dir does that for an installed rnngen)."""
    import rnngen
    for sub in ("generated", "specs"):
        name = f"rnngen.{sub}"
        try:
            importlib.import_module(name)
        except ImportError:
            module = importlib.import_module(sub)
            sys.modules[name] = module
            setattr(rnngen, sub, module)


_source_tree_packages()

import rnngen  # noqa: E402,F401  (the stages import it from here)
from rnngen import cuda_runtime as rt  # noqa: E402

SIMULATOR = rt.SIMULATOR
MODE = "simulator" if SIMULATOR else "gpu"
CELLS = ("lstm", "gru", "rnn_tanh", "gru_classic")
TORCH_CELLS = ("lstm", "gru", "rnn_tanh")

# Tolerances of the largest |got - want| / max(1, |want|), by what is compared. Measured for
# scale without a GPU: rnngen's CPU float32 against torch's CPU float32 at fastrnns (T=100, B=64,
# I=H=512) differ by at most 5e-7 in y, 1.3e-6 in dx and 1.3e-4 in a weight or bias gradient (sums
# over 6400 rows). The GPU's summation orders differ again: these leave a margin of about 10.
TOL = {"output": 2e-5, "input_grad": 1e-4, "param_grad": 1e-3}

# Timing sizes (T, B, I, H), as DESIGN.md's anchors, and the cuDNN medians measured earlier on an
# H100 (torch 2.11, fp32, TF32 off): ms forward / forward+backward.
TIME_SIZES = {"course": (10, 10, 3, 5), "small": (256, 32, 128, 128), "fastrnns": (100, 64, 512, 512),
              "big": (100, 64, 1024, 1024)}
ANCHORS = {
    ("lstm", "course"): (0.186, 1.971), ("gru", "course"): (0.161, 1.358), ("rnn_tanh", "course"): (0.155, 1.040),
    ("lstm", "small"): (0.837, 2.429), ("gru", "small"): (0.406, 1.566), ("rnn_tanh", "small"): (0.279, 1.195),
    ("lstm", "fastrnns"): (2.625, 6.735), ("gru", "fastrnns"): (2.148, 6.355),
    ("rnn_tanh", "fastrnns"): (2.355, 5.966),
    ("lstm", "big"): (4.928, 13.556), ("gru", "big"): (4.374, 12.390), ("rnn_tanh", "big"): (2.349, 7.882),
}


def gpu_available():
    return not SIMULATOR and cuda.is_available()


def torch_cuda():
    """torch, when it is installed and sees the GPU; None otherwise (the torch cases skip then)."""
    if SIMULATOR:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def tolerance_class(label):
    if label.startswith("d_state0") or label == "dx":
        return "input_grad"
    if label.startswith("d_"):
        return "param_grad"
    return "output"


def host(a):
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a).copy_to_host()
    return np.asarray(a)


def relative_error(got, want):
    """max |got - want| / max(1, |want|): NaN when got has a NaN or infinity, inf on a shape
    mismatch."""
    got, want = host(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    if not np.all(np.isfinite(got)):
        return float("nan")
    return float(np.max(np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))))


def compare(pairs, tol=None):
    """Facts of a comparison of (label, want, got) triples: ok when every error is within its
    tolerance (a NaN never is), the errors, the worst relative to its tolerance, a summary."""
    tol = dict(TOL, **(tol or {}))
    errors, limits = {}, {}
    for label, want, got in pairs:
        errors[label] = relative_error(got, want)
        limits[label] = tol[tolerance_class(label)]
    bad = sorted(k for k, e in errors.items() if not e <= limits[k])
    ratio = {k: (e / limits[k] if e == e else float("inf")) for k, e in errors.items()}
    where = max(ratio, key=ratio.get) if ratio else ""
    summary = (f"max err {errors[where]:.2e} ({where}, tol {limits[where]:g})" if where else "nothing compared")
    if bad:
        summary = f"MISMATCH in {', '.join(bad[:6])}; " + summary
    return {"ok": not bad, "errors": errors, "tolerances": limits, "mismatches": bad, "summary": summary}


def lengths_for(B, T, seed=0):
    """Sequence lengths with the edge cases: T, 0 and 1 first, the rest random in [0, T]."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, T + 1, B)
    lengths[: min(3, B)] = [T, 0, 1][: min(3, B)]
    return lengths.astype(np.int64)


def problem(mod, T, B, I, H, seed=0, dtype=np.float32):
    """Parameters, x, state0, dy and d_final of one layer-direction (host arrays)."""
    rng = np.random.default_rng(seed)
    params = mod.init_params(I, H, dtype, seed=seed + 1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in mod.STATES)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    d_final = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in mod.STATES)
    return params, x, state0, dy, d_final


def to_device(tree):
    if isinstance(tree, dict):
        return {k: cuda.to_device(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(cuda.to_device(v) for v in tree)
    return cuda.to_device(tree)


def placement():
    """Where the last persistent launches kept the recurrent weights, and why (rt.PLACEMENT)."""
    return {name: {k: p.get(k) for k in ("kernel", "grid", "threads", "units", "shared_bytes", "on_chip",
                                          "reason", "carveout")}
            for name, p in rt.PLACEMENT.items()}
