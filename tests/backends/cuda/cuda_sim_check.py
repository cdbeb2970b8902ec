"""Run every built-in cell's CUDA kernels under the CUDA simulator and compare with the CPU path.

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/backends/cuda/test_cuda_sim.py does). Tiny sizes; one
block per grid, or several under a patched simulator that runs a grid's blocks together (the stock
one runs them one after another, so grid.sync() would not wait). Prints one JSON line per
(cell, case): the largest error of every output relative to max(1, |CPU value|).
"""
import json
import os
import sys
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

from numba import cuda  # noqa: E402

import rnngen  # noqa: E402
from rnngen import cuda_runtime as rt  # noqa: E402
from rnngen.backends.cuda import workspace  # noqa: E402

# -- a simulator whose cooperative grids really synchronise ------------------------------------
# numba-cuda's simulator runs the blocks of a launch one after another, so grid.sync() does not
# wait for the other blocks. For the persistent kernels, run a launch's blocks under one scheduler
# that honours both barriers and is adversarial: one block runs at a time, as far as it can (to
# its next barrier), lowest block first; a block waiting in cuda.syncthreads() goes on at once, a
# block waiting in grid.sync() only once every block has reached that grid.sync(). A missing
# grid.sync() then makes a block read another block's results before they exist (NaN here).
# Each block gets its own dynamic shared memory.
from numba.cuda.simulator import kernel as _sim_kernel, kernelapi as _sim_api  # noqa: E402

_CONCURRENT = [False]
_shared_array = _sim_api.FakeCUDAShared.array
_grid_sync = _sim_api.GridGroup.sync


def _grid_wide_sync(self):
    if not _CONCURRENT[0]:
        return _grid_sync(self)
    me = threading.current_thread()
    me.in_grid_sync = True
    try:
        me.syncthreads()
    finally:
        me.in_grid_sync = False


def _release(threads):
    for t in threads:
        t.syncthreads_blocked = False
        t.syncthreads_event.set()


class _Thread(_sim_kernel.BlockThread):
    """A simulated thread that says when it is done (after its exception, if any, is recorded), so
    the schedulers below poll one attribute instead of Thread.is_alive()."""

    def run(self):
        try:
            super().run()
        finally:
            self.done = True


def _threads(manager, block, args, held):
    out = []
    for point in np.ndindex(*manager._block_dim):
        t = _Thread(lambda: manager._f(*args), manager, block, point, manager._debug)
        t.in_grid_sync, t.done = False, False
        t.syncthreads_blocked = held          # held: until the scheduler lets its block run
        out.append(t)
    return out


def _wait_at_barrier(threads, everyone):
    """Until each of `threads` waits at a barrier or is done (the scheduler sleeps meanwhile, so
    the simulated threads have the GIL); then raise the first exception of any of them."""
    while not all(t.syncthreads_blocked or t.done for t in threads):
        time.sleep(0.0005)
    for t in threads:
        if t.done:
            t.join()
            if t.exception:
                for other in everyone:
                    other.abort = True
                _release(everyone)
                raise t.exception[0].with_traceback(t.exception[1])
    return [t for t in threads if not t.done]


def _run_one_block(self, grid_point, *args):
    """The stock simulator's block (every thread started at once, each cuda.syncthreads() released
    once every live thread waits at it), polling cheaply (the stock loop calls is_alive() on
    every thread without a pause, taking the GIL from the threads it waits for)."""
    threads = _threads(self, grid_point, args, held=False)
    for t in threads:
        t.start()
    live = threads
    while live:
        live = _wait_at_barrier(live, threads)
        _release(live)


def _run_grid(self, grid_point, *args):
    if not _CONCURRENT[0]:
        return _run_one_block(self, grid_point, *args)
    if any(grid_point):
        return None                      # every block already ran with block (0, 0, 0)
    blocks = list(np.ndindex(*self._grid_dim))
    live = {block: _threads(self, block, args, held=True) for block in blocks}
    everyone = [t for block in blocks for t in live[block]]
    passed = set()                                # blocks let through the current grid.sync()
    started = set()
    while True:
        if not passed and len(started) == len(blocks) and \
                all(t.in_grid_sync for block in blocks for t in live[block]):
            passed = set(blocks)                  # every block reached grid.sync()
        for block in blocks:
            mine = live[block]
            if not mine:
                continue
            if block not in started:              # first run of this block
                started.add(block)
                for t in mine:
                    t.syncthreads_blocked = False
                    t.start()
                break
            if not any(t.in_grid_sync for t in mine):
                _release(mine)                    # cuda.syncthreads(): only this block waits
                break
            if block in passed:
                passed.discard(block)
                _release(mine)
                break
        else:
            if any(live.values()):
                raise RuntimeError("simulated grid deadlocked: no block can go on")
            return
        live[block] = _wait_at_barrier(mine, everyone)   # this block, to its next barrier or its end


_SHARED_LOCK = threading.Lock()


def _per_block_shared(self, shape, dtype, alignment=None):
    """cuda.shared.array under the simulator: the dynamic array per block (under the grid-wide
    scheduler), a static array per calling line. Created under a lock: the stock simulator's
    check-then-create lets two threads of a block that arrive together get two different arrays
    (seen with 256-thread GEMM blocks: a block's threads then read tiles nobody wrote)."""
    if _CONCURRENT[0] and shape == 0:
        key = tuple(threading.current_thread().blockIdx)
        with _SHARED_LOCK:
            blocks = self.__dict__.setdefault("_blocks", {})
            if key not in blocks:
                blocks[key] = _sim_api.FakeCUDAShared(self._dynshared_size)
        return _shared_array(blocks[key], shape, dtype, alignment)
    if shape == 0:
        return _shared_array(self, shape, dtype, alignment)
    # static arrays: keyed by the calling line, as the simulator's own method does (a wrapper
    # around it would make every static array of a kernel one and the same)
    if isinstance(dtype, _sim_api.types.Type):
        dtype = _sim_api.numpy_support.as_dtype(dtype)
    caller = _sim_api.traceback.extract_stack(sys._getframe())[-2][0:2]
    with _SHARED_LOCK:
        if caller not in self._allocations:
            self._allocations[caller] = np.empty(shape, dtype)
        return self._allocations[caller]


_sim_kernel.BlockManager.run = _run_grid
_sim_api.GridGroup.sync = _grid_wide_sync
_sim_api.FakeCUDAShared.array = _per_block_shared
_launch = rt.launch_persistent


def _launch_concurrently(*args, **kwargs):
    _CONCURRENT[0] = True
    try:
        return _launch(*args, **kwargs)
    finally:
        _CONCURRENT[0] = False


rt.launch_persistent = _launch_concurrently

# Uninitialised device memory is NaN here, so a kernel that leaves an element unwritten shows up.
rt.empty = lambda shape, dtype: cuda.to_device(np.full(shape, np.nan, dtype))

CASES = {
    # name: (dtype, T, B, I, H, lengths, reverse, weights in global memory)
    "lengths": (np.float32, 3, 3, 3, 3, [3, 1, 2], False, False),
    "reverse_global_weights": (np.float32, 3, 2, 2, 3, [2, 3], True, True),
    "float64": (np.float64, 2, 2, 2, 2, None, False, False),
    # several blocks of 2 units (the last one holds 1), synchronised by the grid-wide barrier above
    "blocks": (np.float32, 3, 3, 2, 5, [3, 1, 2], False, False),
    "blocks_reverse_global_weights": (np.float32, 3, 3, 2, 5, [2, 3, 0], True, True),
}
CASES["user_folder"] = CASES["lengths"]
# a block-diagonal linear of 3 heads of 2 units, on 3 blocks of 2 units (cells with SIZES)
CASES["heads"] = (np.float32, 3, 3, 2, 6, [3, 1, 2], True, False)
# ... and on one block, whose tiles of 4 columns cross the heads' boundaries, weights in global memory
CASES["heads_one_block"] = (np.float32, 3, 3, 2, 6, [3, 0, 2], False, True)
# a user's one-gate heads linear: 2 heads of 3 units on 3 blocks of 2 units (blocks cross heads)
CASES["heads_user"] = (np.float32, 3, 3, 2, 6, [3, 1, 2], True, False)
CASES["spec_names"] = (np.float32, 3, 3, 2, 5, [3, 1, 2], True, False)
# a cell with step or sequence masks, none given: its kernels at rate 0 (every mask 1), 3 blocks
CASES["rate0"] = (np.float32, 3, 3, 2, 5, [3, 1, 0], True, False)
SIM_UNITS = {"blocks": 2, "blocks_reverse_global_weights": 2, "heads": 2, "rate0": 2, "heads_user": 2}


def has_step_masks(mod):
    return any(per != "weight" for _, per, _ in getattr(mod, "MASKS", {}).values())


def sizes_for(mod, H, case):
    """The run-time sizes of a cell with SIZES (heads): H heads of one unit, 3 in the cases 'heads*',
    2 (of 3 units: blocks of 2 units cross them) in case 'heads_user'."""
    if "heads" not in getattr(mod, "SIZES", ()):
        return {}
    return {"heads": 2 if case == "heads_user" else 3 if case.startswith("heads") else H}


HEADS_USER = """
from rnngen.spec import Cell, tanh
cell = Cell("heads_user", states=("h",), output="h")
(xa,) = cell.linear("ih", cell.x)
(ha,) = cell.linear("hh", cell.h, heads=True)    # one gate: a (heads, DH, DH) weight
cell.update(h=tanh(xa + ha) + 0.5 * cell.h)
"""


def built_module(name, text):
    """A user's spec (its text) built into a temporary folder and loaded from there."""
    import tempfile
    from rnngen.tools.build import build
    folder = tempfile.mkdtemp(prefix=f"rnngen_{name}_")
    spec = os.path.join(folder, f"{name}.py")
    with open(spec, "w") as f:
        f.write(text)
    build([spec], os.path.join(folder, "gen"), log=lambda *a: None)
    return rnngen.load(name, path=os.path.join(folder, "gen"))


def heads_user_module():
    """A user's cell whose block-diagonal linear has one gate."""
    return built_module("heads_user", HEADS_USER)


def user_folder(cell):
    """The cell built with `rnngen build --out DIR` and loaded from there (path-based imports)."""
    import tempfile
    from rnngen.tools.build import build, builtin_specs_dir, spec_paths
    out = tempfile.mkdtemp(prefix="rnngen_cuda_")
    build(spec_paths(builtin_specs_dir(), [cell]), out, log=lambda *a: None)
    return rnngen.load(cell, path=out)


def spec_names_module():
    """A spec whose names are the generator's own (tests/helpers.py), built into a folder."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from helpers import CLASH
    return built_module("clash", CLASH)


def run(cell, case):
    dtype, T, B, I, H, lengths, reverse, global_weights = CASES[case]
    mod = {"user_folder": user_folder, "spec_names": lambda _: spec_names_module(),
           "heads_user": lambda _: heads_user_module()}.get(case, rnngen.load)(cell)
    rng = np.random.default_rng(7)
    params = mod.init_params(I, H, dtype, seed=11, **sizes_for(mod, H, case))
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in mod.STATES)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    d_final = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in mod.STATES)
    # a cell with masks runs with the same drawn masks (rate 0.5) on both; one with initial values
    # (slstm: a normaliser n) from positive states (initial_case checks state0=None)
    masks = None
    if mod.MASKS and case != "rate0":
        masks = mod.draw_masks(T, B, H, {r: 0.5 for r in mod.RATES}, rng=3, dtype=dtype, params=params)
    if mod.INITIAL:
        state0 = tuple(np.abs(s) + dtype(0.5) for s in state0)
    ref_y, ref_final, saved = mod.forward(x, params, state0, lengths, reverse, masks=masks)
    ref_dx, ref_d0, ref_dp = mod.backward(dy, d_final, saved)

    rt.FORCE_GLOBAL_WEIGHTS = global_weights
    rt.SIM_UNITS = SIM_UNITS.get(case)
    workspace.release()              # NaN workspaces: an element a kernel reads before it writes shows
    dev = cuda.to_device
    # through the CPU module: a device array routes to generated/_cuda_<cell>.py
    y, final, saved_d = mod.forward(dev(x), {k: dev(v) for k, v in params.items()},
                                    None if state0 is None else tuple(dev(s) for s in state0),
                                    None if lengths is None else np.array(lengths), reverse, masks=masks)
    dx, d0, dp = mod.backward(dev(dy), tuple(dev(d) for d in d_final), saved_d)
    rt.FORCE_GLOBAL_WEIGHTS = False
    rt.SIM_UNITS = None

    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
    pairs += [(f"final_{s}", a, b) for s, a, b in zip(mod.STATES, ref_final, final)]
    pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(mod.STATES, ref_d0, d0)]
    pairs += [(f"d_{k}", ref_dp[k], dp[k]) for k in mod.PARAMS]
    errors, scale, devices = {}, {}, True
    for name, ref, got in pairs:
        devices &= rt.is_device_array(got)
        got = got.copy_to_host()
        errors[name] = float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))
        scale[name] = float(np.max(np.abs(ref)))
    return {"cell": cell, "case": case, "errors": errors, "scale": scale, "device_outputs": devices,
            "rate0_kernels": [getattr(saved, "rate0", False), getattr(saved_d, "rate0", False)]}


def initial_case(cell):
    """A cell whose spec gives initial values (slstm's m): forward with state0=None on the device
    (its wrapper fills them) against the CPU module, 3 blocks."""
    mod = rnngen.load(cell)
    T, B, I, H = 3, 2, 2, 6
    params = mod.init_params(I, H, np.float32, seed=4, **sizes_for(mod, H, "heads"))
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype(np.float32)
    ref_y, ref_final, _ = mod.forward(x, params)
    rt.SIM_UNITS = 2
    y, final, _ = mod.forward(cuda.to_device(x), {k: cuda.to_device(v) for k, v in params.items()})
    rt.SIM_UNITS = None
    errors = {"y": float(np.max(np.abs(y.copy_to_host() - ref_y) / np.maximum(1, np.abs(ref_y))))}
    errors.update({f"final_{s}": float(np.max(np.abs(f.copy_to_host() - r) / np.maximum(1, np.abs(r))))
                   for s, f, r in zip(mod.STATES, final, ref_final)})
    print(json.dumps({"cell": cell, "case": "initial", "errors": errors, "scale": {"y": float(np.abs(ref_y).max())},
                      "device_outputs": rt.is_device_array(y)}), flush=True)


def gemm_checks():
    """The GPU's GEMM tile shapes and the simulator's small one, every transposition, on results of
    several tiles along M (grid.x) and, for the smaller tiles, along N (grid.y): (2, 1), (3, 2)
    and (3, 2) tiles."""
    rng = np.random.default_rng(3)
    default = rt.SIM_GEMM_TILES
    sizes = {rt.GEMM_TILES: (140, 70, 21), rt.GEMM_TILES_SMALL: (140, 70, 21), default: (10, 7, 5)}
    for tiles in (rt.GEMM_TILES, rt.GEMM_TILES_SMALL, default):
        rt.SIM_GEMM_TILES = tiles
        worst = 0.0
        M, N, K = sizes[tiles]
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
                b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
                c = rng.standard_normal((M, N)).astype(np.float32)
                out = cuda.to_device(c)
                rt.gemm(cuda.to_device(a), cuda.to_device(b), out, ta, tb, accumulate=True)
                ref = c + (a.T if ta else a) @ (b.T if tb else b)
                worst = max(worst, float(np.max(np.abs(out.copy_to_host() - ref) / np.maximum(1, np.abs(ref)))))
        print(json.dumps({"cell": "gemm", "case": "x".join(map(str, tiles)), "errors": {"c": worst},
                          "scale": {"c": 1.0}, "device_outputs": True,
                          "grid": list(rt.gemm_launch(M, N, tiles)[0])}), flush=True)
    rt.SIM_GEMM_TILES = default


def benchmark_script_check():
    """A case of benchmarks/gpu_check.py's correct stage (what a GPU session runs), at a tiny size."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import gpu_correct
    facts = gpu_correct.cell_case("lstm", 2, 3, 2, 3, reverse=True, on_chip=True)()
    print(json.dumps({"cell": "benchmarks/gpu_correct.py", "case": "cell_case", "errors": facts["errors"],
                      "scale": {k: 1.0 for k in facts["errors"]}, "device_outputs": facts["ok"]}), flush=True)


def reuse_check():
    """Workspaces are reused, returned arrays are not: two forward + backward calls of the same
    shapes (lstm_peephole: states, saved pre-activations, bias and vector gradients; reversed,
    with lengths, so that the loop-order workspaces are used too) on different inputs, the
    second one while the first call's results are still held. Both must equal the CPU path, and
    the first call's y, final states, dx, d_state0 and gradients must be unchanged by the second."""
    cell = "lstm_peephole"
    mod = rnngen.load(cell)
    T, B, I, H, lengths = 3, 3, 2, 3, np.array([3, 1, 2])
    workspace.release()
    calls, held = [], []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        params = mod.init_params(I, H, np.float32, seed=seed)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        dy = rng.standard_normal((T, B, H)).astype(np.float32)
        ref_y, ref_final, saved = mod.forward(x, params, None, lengths, True)
        ref_dx, ref_d0, ref_dp = mod.backward(dy, None, saved)
        y, final, sv = mod.forward(cuda.to_device(x), {k: cuda.to_device(v) for k, v in params.items()}, None,
                                   lengths, True)
        dx, d0, dp = mod.backward(cuda.to_device(dy), None, sv)
        held.append({"y": y, "dx": dx, **{f"final_{i}": f for i, f in enumerate(final)},
                     **{f"d_state0_{i}": d for i, d in enumerate(d0)}, **{f"d_{k}": v for k, v in dp.items()}})
        calls.append({"y": ref_y, "dx": ref_dx, **{f"final_{i}": f for i, f in enumerate(ref_final)},
                      **{f"d_state0_{i}": d for i, d in enumerate(ref_d0)},
                      **{f"d_{k}": v for k, v in ref_dp.items()}})
    errors = {}
    for n, (ref, got) in enumerate(zip(calls, held)):
        for k in ref:
            g = got[k].copy_to_host()
            errors[f"call {n + 1} {k}"] = float(np.max(np.abs(g - ref[k]) / np.maximum(1.0, np.abs(ref[k]))))
    print(json.dumps({"cell": "reuse", "case": "two calls", "errors": errors, "scale": {"any": 1.0},
                      "device_outputs": True}), flush=True)


def negative_control():
    """The scheduler above must catch a missing grid.sync(): lstm's backward with its first
    grid.sync() turned into cuda.syncthreads() has to differ from the CPU path on several blocks."""
    import importlib.util
    import tempfile
    from rnngen.runtime import device
    cpu = rnngen.load("lstm")
    good = device.cuda_module(cpu.__name__, cpu.__file__, cpu.NAME)
    with open(good.__file__) as f:
        text = f.read()
    at = text.index("_grid.sync()", text.index("for step in range(T - 1, -1, -1):"))
    text = text[:at] + "cuda.syncthreads()" + text[at + len("_grid.sync()"):]
    path = os.path.join(tempfile.mkdtemp(prefix="rnngen_broken_"), "_cuda_lstm_broken.py")
    with open(path, "w") as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location("_cuda_lstm_broken", path)
    broken = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(broken)
    rng = np.random.default_rng(5)
    T, B, I, H = 3, 3, 2, 5
    params = cpu.init_params(I, H, np.float32, seed=2)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    _, _, saved = cpu.forward(x, params)
    ref_dx = cpu.backward(dy, None, saved)[0]
    found = {}
    for units in (None, 2):          # one block: a block barrier is enough; three blocks: it is not
        rt.SIM_UNITS = units
        workspace.release()          # NaN workspaces: no values left by the run before
        _, _, sv = broken.forward(cuda.to_device(x), {k: cuda.to_device(v) for k, v in params.items()})
        dx = broken.backward(cuda.to_device(dy), None, sv)[0].copy_to_host()
        found["one block" if units is None else "three blocks"] = bool(np.allclose(dx, ref_dx, atol=1e-5))
    rt.SIM_UNITS = None
    print(json.dumps({"cell": "negative_control", "case": "missing grid.sync", "matches_cpu": found}),
          flush=True)


def skip(cell, case):
    """The (built-in cell, case) pairs that do not apply."""
    if case == "float64":
        return cell not in ("lstm", "gru_classic")
    if case == "user_folder":
        return cell != "gru_classic"
    if case.startswith("heads"):
        return not getattr(rnngen.load(cell), "SIZES", ())
    if case == "rate0":
        return not has_step_masks(rnngen.load(cell))
    return False


def main(cells):
    gemm_checks()
    benchmark_script_check()
    negative_control()
    reuse_check()
    for cell in cells:
        if getattr(rnngen.load(cell), "INITIAL", None):
            try:
                initial_case(cell)
            except Exception as exc:  # report, keep going
                print(json.dumps({"cell": cell, "case": "initial", "error": f"{type(exc).__name__}: {exc}"}))
    for cell in cells + ["clash", "heads_user"]:
        for case in CASES:
            own = {"clash": "spec_names", "heads_user": "heads_user"}     # user cells: their own case only
            if own.get(cell) != case and (cell in own or case in own.values()):
                continue
            if cell not in own and skip(cell, case):
                continue
            try:
                row = run(cell, case)
            except Exception as exc:  # report, keep going
                row = {"cell": cell, "case": case, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or rnngen.available())
