"""Compile every CUDA kernel of every built-in cell to PTX for sm_90 with no GPU, and inspect it.

Run in its own process (tests/test_cuda_ptx.py does): compile_ptx and the CUDA simulator cannot
share one. Prints one JSON line per kernel: name, dtype, PTX facts and, when ptxas is installed,
registers / spills / shared memory from `ptxas -v`.
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
import numba.cuda.dispatcher as _dispatcher
from numba import cuda

# Device functions are compiled for "the current device"; with no GPU, stand in an sm_90.
_dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

from rnngen import cuda_runtime as rt  # noqa: E402
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
        "fma_f64": ptx.count("fma.rn.f64"),
        "local": ptx.count("ld.local") + ptx.count("st.local"),
        "grid_sync": "cudaCGSynchronizeGrid" in ptx or "cudaCGGetIntrinsicHandle" in ptx,
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


def report(kind, cell, kernel, dtype, ptx):
    row = {"cell": cell, "kernel": kernel, "dtype": dtype}
    row.update(facts(ptx))
    row["ptxas"] = _ptxas(ptx)
    print(json.dumps(row), flush=True)


def main(cells):
    for dtype, nt in (("float32", numba.float32), ("float64", numba.float64)):
        for cell in cells:
            mod = __import__(f"rnngen.generated._cuda_{cell}", fromlist=["_kernels_for"])
            ks = mod._kernels_for(nt)
            for kernel in ("forward", "backward"):
                ptx, _ = cuda.compile_ptx(getattr(ks, kernel), signature(mod.KERNEL_ARGS[kernel], nt), cc=CC)
                report("persistent", cell, kernel, dtype, ptx)
        a2 = numba.types.Array(nt, 2, "A")
        gemm = rt.gemm_kernel_for(nt, *rt.GEMM_TILES)
        ptx, _ = cuda.compile_ptx(gemm, (a2, a2, a2, numba.boolean, numba.boolean, numba.boolean), cc=CC)
        report("runtime", "runtime", "gemm", dtype, ptx)
        colsum = rt.column_sum_kernel_for(nt, 32, 8)
        ptx, _ = cuda.compile_ptx(colsum, (a2, numba.types.Array(nt, 1, "C"), numba.int64), cc=CC)
        report("runtime", "runtime", "column_sum", dtype, ptx)
        # what rnngen.RNN(device="cuda") runs between layers
        a1, a3 = numba.types.Array(nt, 1, "C"), numba.types.Array(nt, 3, "C")
        for name, sig in (("_into_last", (a3, a3, numba.int64)), ("_from_last", (a3, a3, numba.int64)),
                          ("_multiply", (a1, a1, a1)), ("_add", (a1, a1, a1)), ("_swap01", (a3, a3))):
            ptx, _ = cuda.compile_ptx(getattr(rt, name).py_func, sig, cc=CC)
            report("runtime", "runtime", name, dtype, ptx)
        # what the generated modules call after a reversed run's tied-linear backward
        ptx, _ = cuda.compile_ptx(elementwise._loop_order.py_func, (a3, numba.int64[::1], a3), cc=CC)
        report("runtime", "runtime", "_loop_order", dtype, ptx)


if __name__ == "__main__":
    main(sys.argv[1:] or available())
