"""The launch of the persistent kernels: how many hidden units per block, threads, the shared
memory of the recurrent weights' slices (the > 48 KiB opt-in, the carveout), the cooperative grid."""
import math
import warnings

import numpy as np

from . import compat, config

cuda = config.cuda
_warned = set()


def shared_elements(units, H, rows, num_linears, backward):
    """Shared-memory elements for `units` hidden units: rows of pitch H + 1 (forward) or columns of
    pitch rows_of_W + 1 (backward), so that neighbouring threads hit different banks."""
    if backward:
        return units * (rows * H + num_linears)
    return units * rows * (H + 1)


DEFAULT_SHARED = 48 * 1024       # dynamic shared memory per block a kernel gets without the opt-in
SYSTEM_SHARED = 1024             # what the system keeps of an SM's shared memory per block (sm_80+)


def _kernel_key(kernel):
    """'<module>.<function>' of a dispatcher or compiled kernel, and the element type of a compiled
    one ('rnngen.generated._cuda_lstm.forward_kernel[float32]')."""
    fn = getattr(kernel, "py_func", None)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__name__', type(kernel).__name__)}"
    dtypes = [str(t.dtype) for t in getattr(kernel, "argument_types", ()) if hasattr(t, "dtype")
              and str(t.dtype).startswith("float")]
    return f"{name}[{dtypes[0]}]" if dtypes else name


def _allow_shared(kernel, nbytes):
    """Let `kernel` launch with `nbytes` of dynamic shared memory: above 48 KiB through the
    per-kernel opt-in (compat.allow_dynamic_shared, checked by reading the attribute back).
    Returns None when granted, else the reason (the plan then keeps the weights in global memory)."""
    if nbytes <= DEFAULT_SHARED:
        return None
    record = config.SHARED_OPTIN.setdefault(_kernel_key(kernel), {})
    if (record.get("granted") or 0) >= nbytes:
        return None
    try:
        granted = compat.allow_dynamic_shared(compat.kernel_function(kernel), nbytes)
    except Exception as exc:
        record.update(requested=nbytes, granted=None, error=f"{type(exc).__name__}: {exc}")
        return f"the opt-in to {nbytes} bytes of dynamic shared memory per block failed ({record['error']})"
    record.update(requested=nbytes, granted=granted, error=None)
    return None


def _prefer_carveout(kernel, percent):
    """Set the kernel's preferred L1 / shared-memory carveout (a hint to the driver); a failure
    warns once and leaves the driver's choice."""
    record = config.SHARED_OPTIN.setdefault(_kernel_key(kernel), {})
    if record.get("carveout_asked") == percent:         # set (or failed) already: no driver call
        return
    record["carveout_asked"] = percent
    try:
        got = compat.set_function_attribute(compat.kernel_function(kernel),
                                                 "PREFERRED_SHARED_MEMORY_CARVEOUT", percent)
        record.update(carveout=percent, carveout_read_back=got, carveout_error=None)
    except Exception as exc:
        record.update(carveout=None, carveout_error=f"{type(exc).__name__}: {exc}")
        _warn_once(("carveout", str(exc)), f"rnngen: cannot set the shared-memory carveout of "
                                           f"{_kernel_key(kernel)} ({exc}); the driver chooses")


def carveout_for(nbytes, grid, sms, optin):
    """The carveout decision of a persistent launch: the smallest that holds the blocks one SM
    runs (ceil(grid / SMs), one for a grid of one block per SM) with `nbytes` each, so that the
    rest of the SM's L1 / shared storage stays L1 cache for the kernel's global loads; 0 (all L1)
    with the weights in global memory."""
    return compat.carveout_percent(nbytes, math.ceil(grid / sms), optin + SYSTEM_SHARED,
                                        SYSTEM_SHARED)


def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def plan(kernel, H, B, rows, num_linears, backward, itemsize):
    """(grid, threads, units, shared bytes, on_chip) for a persistent launch (plan_details())."""
    d = plan_details(kernel, H, B, rows, num_linears, backward, itemsize)
    return d["grid"], d["threads"], d["units"], d["shared_bytes"], d["on_chip"]


def plan_details(kernel, H, B, rows, num_linears, backward, itemsize, max_threads=None):
    """The launch of one persistent kernel, as a dict: grid, threads, units (hidden units per
    block), shared_bytes (dynamic), on_chip (the recurrent weights in shared memory), reason (why
    they are not, or None), carveout (percent, or None under the simulator).

    units = ceil(H / SMs) so that one block runs per SM; more units per block when the cooperative
    grid would not fit; weights in global memory when their slice does not fit in shared memory or
    the opt-in above 48 KiB fails (a RuntimeWarning names the reason, once).
    """
    if config.SIMULATOR:      # the stock simulator syncs a cooperative grid of ONE block only
        units = min(config.SIM_UNITS or H, H)
        on_chip = not config.FORCE_GLOBAL_WEIGHTS and rows > 0
        nbytes = shared_elements(units, H, rows, num_linears, backward) * itemsize if on_chip else 0
        return dict(grid=math.ceil(H / units), threads=config.SIM_THREADS, units=units, shared_bytes=nbytes,
                    on_chip=on_chip, reason=_offchip_reason(rows, None), carveout=None)
    sms, optin = config.device_limits()
    most_threads, static = min(config.THREADS, max_threads or config.THREADS), 0   # the module's own bound
    try:      # what the kernel's registers allow, and the shared memory it declares itself
        attrs = compat.kernel_function(kernel).attrs
        most_threads = min(most_threads, attrs.maxthreads // 32 * 32)
        static = int(attrs.shared)
    except Exception:
        pass
    first_units = min(H, config.UNITS) if config.UNITS else max(1, math.ceil(H / sms))
    cooperative = getattr(kernel, "cooperative", False)
    reason = None
    for on_chip in ((True, False) if rows > 0 and not config.FORCE_GLOBAL_WEIGHTS else (False,)):
        units = first_units
        while units <= H:
            grid = math.ceil(H / units)
            work = B * units * max(rows, 1)          # dot products per block and step
            threads = max(32, min(most_threads, math.ceil(work / 32) * 32))
            nbytes = shared_elements(units, H, rows, num_linears, backward) * itemsize if on_chip else 0
            if on_chip and nbytes + static > optin:
                reason = reason or (f"the weight slice needs {nbytes} bytes of shared memory per block "
                                    f"(and the kernel {static} of its own), the device allows {optin}")
                break                                # more units only need more shared memory
            if on_chip:
                failed = _allow_shared(kernel, nbytes)
                if failed:
                    reason = failed
                    break
            carveout = carveout_for(nbytes + static, grid, sms, optin)
            _prefer_carveout(kernel, carveout)
            if not cooperative or kernel.max_cooperative_grid_blocks(threads, nbytes) >= grid:
                if not on_chip and rows > 0 and not config.FORCE_GLOBAL_WEIGHTS:
                    reason = reason or "no cooperative grid of blocks with their weight slice in shared memory fits"
                    _warn_once(("global", H, rows, backward, reason),
                               f"rnngen: the recurrent weights of H={H} "
                               f"({'backward' if backward else 'forward'}) are read from global memory "
                               f"(correct, slower): {reason}")
                return dict(grid=grid, threads=threads, units=units, shared_bytes=nbytes, on_chip=on_chip,
                            reason=_offchip_reason(rows, reason if not on_chip else None), carveout=carveout)
            units += 1
    raise RuntimeError(f"rnngen: no cooperative grid for H={H} fits this GPU")


def _offchip_reason(rows, reason):
    if rows == 0:
        return "the cell has no recurrent weight matrix"
    if config.FORCE_GLOBAL_WEIGHTS:
        return "FORCE_GLOBAL_WEIGHTS is set"
    return reason


_PLANS = {}


def persistent(dispatcher, H, B, rows, num_linears, backward, args, max_threads=None):
    """Compile (once per signature), size and launch one persistent kernel. config.PLACEMENT[name] and
    config.LAST_PLAN[name] say how it ran (name: "persistent forward" or "persistent backward")."""
    itemsize = np.dtype(args[2].dtype).itemsize
    key = (id(dispatcher), H, B, rows, num_linears, backward, itemsize, max_threads, config.FORCE_GLOBAL_WEIGHTS, config.THREADS, config.UNITS,
           config.SIM_UNITS, config.SIM_THREADS, config.context_id())
    if key not in _PLANS:
        kernel = None
        if not config.SIMULATOR:
            probe = tuple(args) + (1, True)
            kernel = dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in probe))
        _PLANS[key] = kernel, plan_details(kernel, H, B, rows, num_linears, backward, itemsize, max_threads)
    kernel, d = _PLANS[key]
    grid, threads, units, nbytes, on_chip = d["grid"], d["threads"], d["units"], d["shared_bytes"], d["on_chip"]
    if not config.SIMULATOR:       # the kernel's attributes may have been set for another plan since
        _allow_shared(kernel, nbytes)
        _prefer_carveout(kernel, d["carveout"])
    name = "persistent backward" if backward else "persistent forward"
    config.LAST_PLAN[name] = (grid, threads, units, nbytes, on_chip)
    config.PLACEMENT[name] = dict(d, H=H, B=B, kernel=_kernel_key(kernel if kernel is not None else dispatcher))
    config.launched(name, kernel=config.PLACEMENT[name]["kernel"], grid=grid, threads=threads, shared_bytes=nbytes,
              on_chip=on_chip)
    with config.timed(name):
        dispatcher[grid, threads, 0, nbytes](*args, units, on_chip)
