"""Compile every CUDA kernel (each built-in cell's persistent kernels and every kernel of
rnngen/cuda_runtime.py) for sm_90 with no GPU, and inspect it.

Run in its own process (tests/backends/cuda/test_cuda_ptx.py does): compile_ptx and the CUDA simulator cannot
share one. Prints one JSON line per kernel and dtype: PTX facts (f64 instructions, local memory,
shared loads, fma, grid.sync); "link": for float32, the kernel compiled to LTO-IR and linked with
libcudadevrt by nvJitLink for sm_90, as numba-cuda does on a GPU (registers, stack, local memory,
spills from nvJitLink's log: no GPU needed); "ptxas": the same from `ptxas -v` when it is installed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import numba
import numba.np.numpy_support  # noqa: F401

from rnngen.cuda_compat import import_cuda

cuda = import_cuda()
import numba.cuda.dispatcher as _dispatcher  # noqa: E402

# Device functions are compiled for "the current device"; with no GPU, stand in an sm_90.
_dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

from rnngen import cuda_compat, cuda_runtime as rt  # noqa: E402
from rnngen.backends.cuda import elementwise  # noqa: E402
from rnngen.runtime.registry import available  # noqa: E402

CC = (9, 0)
F64_OP = re.compile(r"\.f64\b")


def _ptxas(ptx):
    exe = shutil.which("ptxas")
    if not exe:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:   # an older ptxas reads the newer PTX ISA of these kernels fine
            f.write(re.sub(r"^\.version \d+\.\d+", ".version 8.0", ptx, count=1, flags=re.M))
        out = subprocess.run([exe, "-arch=sm_90", "-c", "-v", path, "-o", os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        return {"error": text[-2000:]}
    info = {}
    m = re.search(r"Used (\d+) registers", text)
    info["registers"] = int(m.group(1)) if m else None
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    info["spill_stores"], info["spill_loads"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    m = re.search(r"(\d+) bytes stack frame", text)
    info["stack"] = int(m.group(1)) if m else None
    m = re.search(r"(\d+) bytes smem", text)
    info["static_smem"] = int(m.group(1)) if m else 0
    return info


def facts(ptx):
    return {
        "f64_ops": len(F64_OP.findall(ptx)),
        "ld_shared": ptx.count("ld.shared"),
        "fma_f32": ptx.count("fma.rn.f32"),
        "f32_ops": len(re.findall(r"\b(?:add|sub|mul|fma)(?:\.rn)?(?:\.ftz)?\.f32\b", ptx)),
        "fma_f64": ptx.count("fma.rn.f64"),
        "local": ptx.count("ld.local") + ptx.count("st.local"),
        "grid_sync": "cudaCGSynchronizeGrid" in ptx or "cudaCGGetIntrinsicHandle" in ptx,
        "shfl_bfly": ptx.count("shfl.sync.bfly"),
        "atomics": len(re.findall(r"\b(?:atom|red)\.", ptx)),
        "ld_global": ptx.count("ld.global"),
    }


def array(nt, ndim):
    return nt[(slice(None),) * ndim] if ndim > 1 else nt[::1]


def signature(args, nt):
    sig = []
    for name, ndim in args:
        if ndim == 0:
            sig.append(numba.int64 if name == "_units" else numba.boolean)
        elif name == "lengths":
            sig.append(numba.int64[::1])
        else:
            sig.append(numba.types.Array(nt, ndim, "C"))
    return tuple(sig)


THREADS = {"persistent": rt.THREADS, "runtime": 256}     # threads per block each kind launches with


def _entry(properties):
    """The kernel's own entry in nvJitLink's log (the others are libcudadevrt's functions)."""
    own = {k: v for k, v in properties.items() if not k.startswith(("__nv_", "_spills"))}
    return next(iter(own.values())) if len(own) == 1 else {"error": f"entries: {sorted(own)}"}


def compile_ptx_and_ltoir(pyfunc, sig):
    """The kernel's PTX and its LTO-IR from one compile: what cuda.compile_ptx and cuda.compile(...,
    output="ltoir") give (the same NVVM options; gen-lto only for the LTO-IR), with numba-cuda's
    front end run once instead of twice (most of a compile's time). Through numba-cuda's internal
    _compile_pyfunc_with_fixup; where a numba-cuda lacks it, the two public calls."""
    try:
        from numba.cuda.compiler import _compile_pyfunc_with_fixup
        lib, _ = _compile_pyfunc_with_fixup(pyfunc, sig, device=False, cc=CC, abi="numba")
        return lib.get_asm_strs(cc=CC)[0], lib.get_ltoir(cc=CC)
    except (ImportError, AttributeError, TypeError):
        ptx, _ = cuda.compile_ptx(pyfunc, sig, cc=CC)
        ltoir, _ = cuda.compile(pyfunc, sig, device=False, cc=CC, output="ltoir", abi="numba")
        return ptx, ltoir


def link_facts(ltoir):
    """What numba-cuda does on a GPU with nvJitLink present: the LTO-IR linked with libcudadevrt
    for sm_90; registers, stack, local memory and spills from nvJitLink's log."""
    try:
        size, log = cuda_compat.link_with_nvjitlink(ltoir, CC, lto=True)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
    props = cuda_compat.function_properties(log)
    facts = dict(_entry(props), cubin_bytes=size)
    facts["spills"] = props.get("_spills", {"stores": 0, "loads": 0})
    return facts


def report(kind, cell, kernel, dtype, pyfunc, sig, threads=None):
    if dtype == "float32":                # linked as on a GPU too
        ptx, ltoir = compile_ptx_and_ltoir(pyfunc, sig)
    else:
        (ptx, _), ltoir = cuda.compile_ptx(pyfunc, sig, cc=CC), None
    row = {"cell": cell, "kernel": kernel, "dtype": dtype, "kind": kind, "threads": threads or THREADS[kind]}
    row.update(facts(ptx))
    row["ptxas"] = _ptxas(ptx)
    row["link"] = link_facts(ltoir) if ltoir is not None else None
    print(json.dumps(row), flush=True)


def runtime_kernels(nt):
    """(name, python function, signature) of every kernel cuda_runtime.py launches."""
    a1, a2, a3 = (numba.types.Array(nt, n, "C") for n in (1, 2, 3))
    aa2 = numba.types.Array(nt, 2, "A")
    gemm_sig = (aa2, aa2, aa2, numba.boolean, numba.boolean, numba.boolean)
    fill, copy1d = rt._elementwise(numba.np.numpy_support.as_dtype(nt))
    out = [(f"gemm {'x'.join(map(str, tiles))}", rt.gemm_kernel_for(nt, *tiles), gemm_sig)
           for tiles in (rt.GEMM_TILES, rt.GEMM_TILES_SMALL)]
    out += [("fill", fill.py_func, (a1, nt)), ("copy1d", copy1d.py_func, (a1, a1))]
    # what rnngen.RNN(device="cuda") runs between layers
    for name, sig in (("_into_last", (a3, a3, numba.int64)), ("_from_last", (a3, a3, numba.int64)),
                      ("_multiply", (a1, a1, a1)), ("_add", (a1, a1, a1)), ("_swap01", (a3, a3))):
        out.append((name, getattr(rt, name).py_func, sig))
    # what the generated modules call after a reversed run's tied-linear backward
    out.append(("_loop_order", elementwise._loop_order.py_func, (a3, numba.int64[::1], a3, nt)))
    # what the generated modules of a cell with a block-diagonal (heads) linear call
    from rnngen.backends.cuda import heads
    out += [("heads _blocks", heads._blocks.py_func, (a2, a3))]
    return out


def main(cells, dtypes=("float32", "float64")):
    for dtype in dtypes:
        nt = getattr(numba, dtype)
        for cell in cells:
            mod = __import__(f"rnngen.generated._cuda_{cell}", fromlist=["_kernels_for"])
            ks = mod._kernels_for(nt)
            for kernel in mod.KERNEL_ARGS:       # forward, backward (and those at rate 0 of a cell with masks)
                report("persistent", cell, kernel, dtype, getattr(ks, kernel),
                       signature(mod.KERNEL_ARGS[kernel], nt), getattr(mod, "MAX_THREADS", None))
        for name, pyfunc, sig in runtime_kernels(nt):
            report("runtime", "runtime", name, dtype, pyfunc, sig)


if __name__ == "__main__":
    # cuda_ptx_check.py [--dtype float32|float64] [cell ...]: one dtype per process lets the test
    # compile both side by side
    args = sys.argv[1:]
    dtypes = ("float32", "float64")
    if args[:1] == ["--dtype"]:
        dtypes, args = (args[1],), args[2:]
    main(args or available(), dtypes)
