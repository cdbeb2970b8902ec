"""Stage `preflight` of benchmarks/gpu_check.py: the facts to know before any rnngen kernel runs
(a few seconds of work after start-up).

- versions: numba, numba-cuda, numpy (and whether rnngen's numpy shim was needed), the driver,
  NVVM, nvJitLink, which linker numba-cuda uses, libcudadevrt;
- the device: SM count, shared memory per block (default and opt-in) and per SM, cooperative
  launch;
- the link alone: a grid.sync kernel's PTX and libcudadevrt through nvJitLink (no driver call;
  the pip NVVM writes PTX ISA 9.5, which a CUDA 13.0 ptxas or driver JIT rejects);
- grid.sync: a cooperative kernel of one block per SM links libcudadevrt (the path the
  persistent kernels need), loads and runs 2000
  grid-wide barriers with an atomic counter checked after each, and gives microseconds per sync;
- the > 48 KiB dynamic shared-memory opt-in: rnngen's opt-in on a kernel, the attribute read back,
  a write/read-back of all of that memory in every block, the carveout set and read back, and
  whether the same launch without the opt-in is refused.

Under the CUDA simulator the same logic runs on one block, and what needs a GPU is skipped.
"""
import contextlib
import types

import numba

from gpu_common import MODE, SIMULATOR, cuda, cuda_compat, np, rt

ROUNDS = 2000


def versions():
    env = cuda_compat.environment(device=not SIMULATOR)
    env["mode"] = MODE
    keys = ("numpy", "numba", "numba-cuda", "driver", "nvvm", "nvjitlink", "linker_backend")
    short = ", ".join(f"{k} {env[k]['version'] if isinstance(env.get(k), dict) else env.get(k)}"
                      for k in keys if k in env)
    return dict(env, summary=f"{MODE}: {short}; numpy shim {env['numpy_shim'] or 'not needed'}")


def device():
    if SIMULATOR:
        return {"mode": MODE, "summary": "simulator: no device to read"}
    if not cuda.is_available():
        try:
            cuda.get_current_device()
            why = "numba.cuda.is_available() is False"
        except Exception as exc:
            why = " ".join(str(exc).split())
        return {"ok": False, "summary": f"no GPU: {why}"}
    dev = cuda.get_current_device()
    free, total = cuda.current_context().get_memory_info()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    facts = {
        "name": name,
        "compute_capability": list(dev.compute_capability),
        "sms": dev.MULTIPROCESSOR_COUNT,
        "shared_per_block": dev.MAX_SHARED_MEMORY_PER_BLOCK,
        "shared_per_block_optin": dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        "shared_per_sm": dev.MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
        "registers_per_block": dev.MAX_REGISTERS_PER_BLOCK,
        "cooperative_launch": bool(dev.COOPERATIVE_LAUNCH),
        "memory_total_gib": round(total / 2 ** 30, 1),
        "memory_free_gib": round(free / 2 ** 30, 1),
        "rnngen_device_limits": list(rt._device_limits()),
    }
    ok = facts["cooperative_launch"] and facts["shared_per_block_optin"] > 48 * 1024
    facts.update(ok=ok, summary=f"{name} cc {dev.compute_capability}, {facts['sms']} SMs, opt-in shared "
                                f"{facts['shared_per_block_optin']} B/block, cooperative launch "
                                f"{facts['cooperative_launch']}")
    return facts


def _grid_sync_kernel():
    @cuda.jit
    def grid_sync_smoke(counts, bad, rounds):
        grid = cuda.cg.this_grid()
        for r in range(rounds):
            if cuda.threadIdx.x == 0:
                cuda.atomic.add(counts, r, 1)
            grid.sync()
            if cuda.threadIdx.x == 0 and cuda.atomic.add(counts, r, 0) != cuda.gridDim.x:
                cuda.atomic.add(bad, 0, 1)

    return grid_sync_smoke


def _ptx_version(fn, sig):
    ptx, _ = cuda.compile_ptx_for_current_device(fn, sig)
    return next((line.split()[1] for line in ptx.splitlines() if line.startswith(".version")), "?")


def _run_grid_sync(kernel, blocks, threads, rounds, stage):
    counts = cuda.to_device(np.zeros(max(rounds, 1), np.int32))
    bad = cuda.to_device(np.zeros(1, np.int32))
    if stage is not None:
        stage.launching("grid.sync smoke", {"kernel": "grid_sync_smoke", "grid": blocks, "threads": threads,
                                            "rounds": rounds})
    start, end = cuda.event(), cuda.event()
    start.record()
    kernel[blocks, threads](counts, bad, rounds)
    end.record()
    end.synchronize()
    c = counts.copy_to_host()[:rounds]
    return {"ms": start.elapsed_time(end), "counter_ok": bool(np.all(c == blocks)),
            "bad_reads": int(bad.copy_to_host()[0]), "counts_seen": sorted(set(int(v) for v in c))[:5]}


def grid_sync(stage=None):
    kernel = _grid_sync_kernel()
    sig = (numba.int32[::1], numba.int32[::1], numba.int64)
    facts = {}
    if SIMULATOR:
        blocks, threads = 1, 4               # the stock simulator syncs one block only
        runs = {"one": _run_grid_sync(kernel, blocks, threads, 3, stage)}
    else:
        facts["ptx_version"] = _ptx_version(kernel.py_func, sig)
        compiled = kernel.compile(sig)
        facts["cooperative"] = bool(getattr(compiled, "cooperative", False))
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        blocks, threads = sms, 128
        facts["max_cooperative_blocks"] = compiled.max_cooperative_grid_blocks(threads)
        try:
            fn = cuda_compat.kernel_function(compiled)
            facts["registers"] = fn.attrs.regs
            facts["handle"] = type(fn.handle).__name__
        except Exception as exc:
            facts["handle"] = f"unknown ({exc})"
        runs = {"first (link, load)": _run_grid_sync(kernel, blocks, threads, 1, stage),
                "one": _run_grid_sync(kernel, blocks, threads, 1, stage),
                "many": _run_grid_sync(kernel, blocks, threads, ROUNDS + 1, stage)}
        wide = min(facts["max_cooperative_blocks"], 4 * sms)
        runs[f"{wide} blocks"] = _run_grid_sync(kernel, wide, threads, 10, stage)
        facts["us_per_sync"] = round(1e3 * (runs["many"]["ms"] - runs["one"]["ms"]) / ROUNDS, 3)
    ok = all(r["counter_ok"] and r["bad_reads"] == 0 for r in runs.values())
    facts.update(ok=ok, blocks=blocks, threads=threads, runs=runs)
    per_sync = f", {facts['us_per_sync']} us per sync" if "us_per_sync" in facts else ""
    facts["summary"] = (f"{blocks} blocks x {threads} threads: counters {'ok' if ok else 'WRONG'}{per_sync}"
                        f"{', PTX ' + facts['ptx_version'] if 'ptx_version' in facts else ''}")
    return facts


@contextlib.contextmanager
def _device_functions_for(cc):
    """Without a GPU, numba-cuda compiles device functions (this_grid() among them) for the
    "current device": stand in one of compute capability `cc` (None: leave it)."""
    if cc is None:
        yield
        return
    import numba.cuda.dispatcher as dispatcher
    real = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = real


def nvjitlink_link():
    """The grid.sync kernel's PTX (from this NVVM) linked with libcudadevrt by nvJitLink, for the
    device's architecture (sm_90 without a GPU): the link the persistent kernels need, on its own,
    before any driver call; the PTX ISA version NVVM writes."""
    if SIMULATOR:
        return {"skipped": "simulator: nothing is compiled"}
    gpu = cuda.is_available()
    cc = tuple(cuda.get_current_device().compute_capability) if gpu else (9, 0)
    sig = (numba.int32[::1], numba.int32[::1], numba.int64)
    with _device_functions_for(None if gpu else cc):
        ptx, _ = cuda.compile_ptx(_grid_sync_kernel().py_func, sig, cc=cc)
    version = next((line.split()[1] for line in ptx.splitlines() if line.startswith(".version")), "?")
    release = next((line.split("release")[1].strip() for line in ptx.splitlines() if "release" in line), "?")
    size, log = cuda_compat.link_with_nvjitlink(ptx, cc)
    props = {k: v for k, v in cuda_compat.function_properties(log).items() if "grid_sync_smoke" in k}
    return {"cc": list(cc), "ptx_version": version, "nvvm_release": release, "cubin_bytes": size,
            "kernel": next(iter(props.values()), None),
            "summary": f"PTX {version} (NVVM {release}) linked for sm_{cc[0]}{cc[1]} with libcudadevrt: "
                       f"{size} bytes"}


def _shared_kernel():
    @cuda.jit
    def shared_readback(wrong, n):
        sh = cuda.shared.array(0, numba.float32)
        tid, nt, blk = cuda.threadIdx.x, cuda.blockDim.x, cuda.blockIdx.x
        for e in range(tid, n, nt):
            sh[e] = numba.float32(e + blk)
        cuda.syncthreads()
        for e in range(tid, n, nt):          # each thread reads what other threads wrote
            k = n - 1 - e
            if sh[k] != numba.float32(k + blk):
                cuda.atomic.add(wrong, 0, 1)

    return shared_readback


def _shared_launch(kernel, blocks, threads, nbytes, stage):
    wrong = cuda.to_device(np.zeros(1, np.int32))
    if stage is not None:
        stage.launching("shared-memory readback", {"kernel": "shared_readback", "grid": blocks,
                                                   "threads": threads, "shared_bytes": nbytes})
    kernel[blocks, threads, 0, nbytes](wrong, nbytes // 4)
    cuda.synchronize()
    return int(wrong.copy_to_host()[0])


def shared_optin(stage=None):
    if SIMULATOR:
        return {"skipped": "simulator: shared memory there is a numpy array, no opt-in exists"}
    dev = cuda.get_current_device()
    optin, sms = dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev.MULTIPROCESSOR_COUNT
    sig = (numba.int32[::1], numba.int64)
    kernel = _shared_kernel()
    compiled = kernel.compile(sig)
    static = int(cuda_compat.kernel_function(compiled).attrs.shared)   # what the kernel declares itself
    facts = {"optin_limit": optin, "static_shared": static, "sizes": {}}
    ok = True
    for nbytes in sorted({100 * 1024, (optin - static) // 16 * 16}):
        failed = rt._allow_shared(compiled, nbytes)
        row = {"opt_in": failed or "granted"}
        if not failed:
            fn = cuda_compat.kernel_function(compiled)
            row["read_back"] = cuda_compat.get_function_attribute(fn, "MAX_DYNAMIC_SHARED_SIZE_BYTES")
            percent = rt.carveout_for(nbytes, sms, sms, optin)
            rt._prefer_carveout(compiled, percent)
            row["carveout"] = {"asked": percent, **{k: v for k, v in rt.SHARED_OPTIN.get(rt._kernel_key(compiled), {})
                                                    .items() if k.startswith("carveout")}}
            row["wrong_values"] = _shared_launch(kernel, sms, 256, nbytes, stage)
            ok &= row["read_back"] >= nbytes and row["wrong_values"] == 0
        else:
            ok = False
        facts["sizes"][str(nbytes)] = row
    # the same launch without the opt-in (a fresh kernel): refused, or the driver did not need it
    plain = _shared_kernel()
    try:
        _shared_launch(plain, 1, 256, 100 * 1024, stage)
        facts["without_optin"] = "launched (the opt-in was not needed)"
    except Exception as exc:
        facts["without_optin"] = f"refused: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    facts.update(ok=ok, summary="; ".join(f"{n} B: {r.get('opt_in')}, read back {r.get('read_back')}, "
                                          f"{r.get('wrong_values')} wrong" for n, r in facts["sizes"].items())
                 + f"; without opt-in {facts['without_optin'][:40]}")
    return facts


def cases(stage, sizes):
    """(name, function) of this stage, in order."""
    return [("versions", versions),
            ("nvJitLink link (no GPU needed)", nvjitlink_link),
            ("device", device),
            ("grid.sync smoke", lambda: grid_sync(stage)),
            ("shared-memory opt-in", lambda: shared_optin(stage))]
