"""rnngen.RNN(..., device="cuda") under the CUDA simulator against the CPU RNN (same seed).

Run with NUMBA_ENABLE_CUDASIM=1 in its own process (tests/runtime/test_cuda_rnn.py does). Tiny sizes, one
block per persistent launch. Prints one JSON line per case: the largest error of every output
relative to max(1, |CPU value|), whether the outputs are device arrays, and how many device -> host
copies forward + backward made (the stack must make none when its inputs are on the device).
"""
import json
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

from numba import cuda  # noqa: E402
from numba.cuda.simulator.cudadrv import devicearray as _sim_devicearray  # noqa: E402

import rnngen  # noqa: E402
from rnngen import cuda_runtime as rt  # noqa: E402

# Uninitialised device memory is NaN here, so an element the stack leaves unwritten shows up.
rt.empty = lambda shape, dtype: cuda.to_device(np.full(shape, np.nan, dtype))

# Count device -> host copies (a host round trip between layers would show up here).
_COPIES = [0]
_copy_to_host = _sim_devicearray.FakeCUDAArray.copy_to_host


def _counting_copy_to_host(self, *args, **kwargs):
    _COPIES[0] += 1
    return _copy_to_host(self, *args, **kwargs)


_sim_devicearray.FakeCUDAArray.copy_to_host = _counting_copy_to_host


def host(a):
    return _copy_to_host(a) if rt.is_device_array(a) else np.asarray(a)


def compare(pairs):
    errors, scale, devices = {}, {}, True
    for name, ref, got in pairs:
        devices &= rt.is_device_array(got)
        got = host(got)
        if got.shape != ref.shape:
            errors[name] = float("inf")
            continue
        errors[name] = float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))
        scale[name] = float(np.max(np.abs(ref)))
    return errors, scale, devices


MASKS = [None]


def stack(cell, T=3, B=3, I=2, H=3, lengths=(3, 1, 2), dropout=0.0, batch_first=False, host_inputs=False,
          **extra):
    """A 2-layer bidirectional RNN on the CPU and on the (simulated) GPU: forward + backward;
    `extra`: the cell's rates and run-time sizes (the same seed draws the same masks on both)."""
    kw = dict(num_layers=2, bidirectional=True, dropout=dropout, batch_first=batch_first,
              dtype=np.float32, seed=5, **extra)
    cpu = rnngen.RNN(cell, I, H, **kw)
    gpu = rnngen.RNN(cell, I, H, device="cuda", **kw)
    rng = np.random.default_rng(7)
    L = 4
    shape_x = (B, T, I) if batch_first else (T, B, I)
    shape_y = (B, T, 2 * H) if batch_first else (T, B, 2 * H)
    x = rng.standard_normal(shape_x).astype(np.float32)
    state0 = tuple((0.5 * rng.standard_normal((L, B, H))).astype(np.float32) for _ in cpu.states)
    if getattr(cpu.cell, "INITIAL", None):      # slstm: a positive normaliser n
        state0 = tuple(np.abs(s) + np.float32(0.5) for s in state0)
    dy = rng.standard_normal(shape_y).astype(np.float32)
    d_final = tuple(rng.standard_normal((L, B, H)).astype(np.float32) for _ in cpu.states)
    lengths = np.array(lengths)

    ref_y, ref_fin = cpu.forward(x, state0, lengths)
    ref_dx, ref_d0 = cpu.backward(dy, d_final)

    dev = (lambda a: a) if host_inputs else cuda.to_device
    xd, s0d = dev(x), tuple(dev(s) for s in state0)
    dyd, dfd = dev(dy), tuple(dev(d) for d in d_final)
    _COPIES[0] = 0
    y, fin = gpu.forward(xd, s0d, lengths)
    dx, d0 = gpu.backward(dyd, dfd)
    copies = _COPIES[0]
    masks = gpu._cache[1]
    MASKS[0] = [None if m is None else [rt.is_device_array(m), float(np.mean(host(m) == 0))] for m in masks]

    pairs = [("y", ref_y, y), ("dx", ref_dx, dx)]
    pairs += [(f"final_{s}", a, b) for s, a, b in zip(cpu.states, ref_fin, fin)]
    pairs += [(f"d_state0_{s}", a, b) for s, a, b in zip(cpu.states, ref_d0, d0)]
    pairs += [(f"d_{name}", cpu.grads[name], gpu.grads[name]) for name in cpu.params]
    assert set(cpu.grads) == set(gpu.grads) and len(gpu.grads) == 2 * 2 * len(cpu.cell.PARAMS)
    errors, scale, devices = compare(pairs)
    return {"errors": errors, "scale": scale, "device_outputs": devices, "host_copies": copies}


def dropout_case():
    """Training-mode dropout (the default mode): the same seed draws the same masks on both devices;
    batch_first, host inputs copied over."""
    row = stack("lstm", T=3, B=2, I=2, H=2, lengths=(3, 2), dropout=0.5, batch_first=True,
                host_inputs=True)
    row["masks"] = MASKS[0]
    return row


def extras():
    """step(), state_dict()/load_state_dict(), to(), and the errors, on a small unidirectional net."""
    out = {}
    rng = np.random.default_rng(3)
    cpu = rnngen.RNN("gru_classic", 2, 3, num_layers=2, seed=9)
    gpu = rnngen.RNN("gru_classic", 2, 3, num_layers=2, seed=9, device="cuda")
    out["params_on_device"] = all(rt.is_device_array(v) for v in gpu.params.values())
    sd = gpu.state_dict()
    out["state_dict_host"] = all(type(v) is np.ndarray for v in sd.values()) and \
        all(np.array_equal(sd[k], v) for k, v in cpu.state_dict().items())
    # load a perturbed state dict on both, step once
    new = {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in sd.items()}
    cpu.load_state_dict(new)
    gpu.load_state_dict(new)
    x_t = rng.standard_normal((2, 2)).astype(np.float32)
    y_ref, s_ref = cpu.step(x_t)
    y, s = gpu.step(cuda.to_device(x_t))
    errors, _, devices = compare([("step_y", y_ref, y), ("step_h", s_ref[0], s[0])])
    # a second step() of the same batch size reuses the device lengths of the first
    lengths_made = dict(gpu._ops._step_lengths)
    y_again, _ = gpu.step(cuda.to_device(x_t))
    out["step_lengths_cached"] = len(lengths_made) == 1 and gpu._ops._step_lengths == lengths_made and \
        np.array_equal(y_again.copy_to_host(), y.copy_to_host())
    # moving: cuda -> cpu gives the same parameters and numpy arrays
    gpu.to("cpu")
    errors["to_cpu_params"] = max(float(np.max(np.abs(gpu.params[k] - v))) for k, v in new.items())
    out["to_cpu_numpy"] = all(type(v) is np.ndarray for v in gpu.params.values())
    gpu.to("cuda")
    out["to_cuda_device"] = all(rt.is_device_array(v) for v in gpu.params.values())

    def raises(fn, *words):
        try:
            fn()
        except ValueError as exc:
            return all(w in str(exc) for w in words) or str(exc)
        return "no error"

    x = rng.standard_normal((3, 2, 2)).astype(np.float32)
    module = rnngen.load("gru_classic")
    module_params = module.init_params(2, 3)
    first = next(iter(module.PARAMS))
    out["errors_raised"] = {
        "cpu net, device x": raises(lambda: cpu.forward(cuda.to_device(x)), "device", "cuda"),
        "cpu net, device state0": raises(lambda: cpu.forward(x, cuda.to_device(np.zeros((2, 2, 3), np.float32))),
                                         "state0", "device"),
        "cuda net, float64 x": raises(lambda: gpu.forward(cuda.to_device(x.astype(np.float64))), "x", "float32"),
        "cuda net, wrong features": raises(lambda: gpu.forward(cuda.to_device(x[:, :, :1].copy())), "x", "input_size"),
        "cuda net, bad lengths": raises(lambda: gpu.forward(x, lengths=[3, 4]), "lengths"),
        "cuda net, wrong dy shape": raises(lambda: (gpu.forward(x), gpu.backward(cuda.to_device(x)))[1], "dy"),
        "cuda module, list param": raises(lambda: module.forward(cuda.to_device(x), {**module_params, first: [[1.0]]}),
                                          f"params[{first!r}]"),
        "cuda module, bad state0": raises(lambda: module.forward(cuda.to_device(x), module_params, ([[0.0]],)),
                                          "state0[0] (h)"),
        "bad device": raises(lambda: rnngen.RNN("lstm", 2, 3, device="tpu"), "device"),
        "bad state dict": raises(lambda: gpu.load_state_dict({**new, "weight_ih_l0": np.zeros((1, 1))}),
                                 "weight_ih_l0"),
    }
    return {"errors": errors, "scale": {}, "device_outputs": devices, "checks": out}


def benchmark_script_check():
    """benchmarks/gpu_check.py's check of RNN(device="cuda") (what a GPU session runs), tiny size."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks"))
    import gpu_correct
    facts = gpu_correct.rnn_case("lstm", 2, 2, 2, 2, dropout=0.3)()
    return {"errors": facts["errors"], "scale": {}, "device_outputs": facts["ok"]}


def main():
    cases = [("lstm", "2 layers bidirectional lengths", lambda: stack("lstm")),
             ("gru_classic", "2 layers bidirectional lengths", lambda: stack("gru_classic", lengths=(3, 0, 2))),
             ("lstm", "dropout batch_first host inputs", dropout_case),
             ("lstm_zoneout", "rates", lambda: stack("lstm_zoneout", rates={"zoneout": 0.5})),
             ("lstm_vd", "rates", lambda: stack("lstm_vd", rates={"dropout_h": 0.5}, dropout=0.3)),
             ("lstm_weightdrop", "rates", lambda: stack("lstm_weightdrop", rates={"weight_drop": 0.5})),
             ("slstm", "heads", lambda: stack("slstm", H=4, heads=2)),
             ("gru_classic", "step state_dict to errors", extras),
             ("benchmarks/gpu_correct.py", "rnn_case", benchmark_script_check)]
    for cell, case, fn in cases:
        try:
            row = fn()
        except Exception as exc:  # report, keep going
            import traceback
            row = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"}
        row.update(cell=cell, case=case)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
