"""The lines of a generated CPU module's wrappers around its time loops: the sizes they read, the
set-up before a loop (the hoisted GEMMs, the state sequences, the scratch arrays), the host
operations after the backward loop (HostOps: the GEMMs through mathlib.matmul / matmul_tn, which
pick BLAS or rnngen's panels, host_gemm.py) and the math library functions a module imports."""
from ...compiler import ir
from ..host import HostOps, weight_setup, width


def wrapper_sizes(kernel, backward):
    """The wrappers' lines reading H and the run-time sizes (from the parameters' shapes)."""
    if not kernel.sizes and kernel.output_size == ir.H:
        return ["H = dy.shape[2]" if backward else "H = state0[0].shape[1]"]
    return ["H = checks.hidden_size(params, PARAMS)"] + \
        [f'{size} = checks.sizes_of(params, PARAMS)["{size}"]' for size in kernel.sizes]


def forward_setup(k, lay, saving=True):
    hoisted = []
    for g in k.hoisted:
        product = OPS.gemm.format(a="x2d", b=f'params["{g.weight.param}"].T')
        hoisted.append(f"{g.out.name} = {product}.reshape(T, B, {width(g.out)})")
    # the inference loop computes them itself, in chunks of steps (input_chunks.py)
    setup = lay.chunk_setup() if lay.chunked else list(hoisted)
    for i, s in enumerate(k.states):
        buf = k.buffer("states", s)
        setup += [lay.allocate(buf), f"{buf.name}[0] = state0[{i}]"]
    setup += [f'{b.name} = masks["{b.owner}"]' for b in k.buffers if b.role == "mask"]
    setup += weight_setup(k, lay.dropped, True)
    for b in k.buffers:
        if b.role == "preact":
            x = next((a for a, r in k.ties.items() if r == b.owner), None)
            note = ""
            if saving and x:
                note = f"this step's product: the loop saves what backward needs in {k.buffer('x_preact', x).name}"
            elif saving and not b.saved:
                note = "this step's product (backward does not read it)"
            setup.append(lay.allocate(b, note))
        elif b.role in ("linear_input", "mean"):
            setup.append(lay.allocate(b))
    setup += lay.allocate_head_scratch("forward")
    return setup, hoisted


def backward_setup(k, lay):
    setup = weight_setup(k, lay.dropped, False)
    setup += [f"{k.buffer('d_state', s).name} = d_final[{i}]" for i, s in enumerate(k.states)]
    setup += [lay.allocate(b) for b in k.buffers if b.role in ("d_preact", "d_x_preact", "d_linear_input", "d_mean")]
    setup += [lay.allocate(b, "the product dv = dz @ W, added to the state's gradient")
              for b in lay.scratch.values()]
    setup += [lay.allocate(b) for b in k.buffers if b.role == "d_vector"]
    setup += lay.allocate_head_scratch("backward")
    return setup


OPS = HostOps(gemm_tn="_matmul_tn({a}, {b})", gemm="_matmul({a}, {b})", accumulate="{a} += {b}", column_sum="_column_sum({a})",
              copy="{a}.copy()", vector_grad="{a}", zeros="np.zeros({a}, dtype)",
              head_gemm_tn="_head_weight_grad({a}, {b}, {heads})")


def helpers(kernel, called, layout, infer_layout):
    """The mathlib functions (their local names) the module calls: `called` by the kernels' lines,
    and those of the layouts and the wrappers."""
    out = set(called) | ({"_at"} if layout.views or infer_layout.views else set())
    out |= {"_gemm_panels", "_panels_of"} if layout.packed or infer_layout.packed else set()
    out |= {"_chunk_steps", "_gather_steps", "_steps_rows"} if infer_layout.chunked else set()
    out |= {"_matmul"} if kernel.hoisted or any(isinstance(op, ir.InputGrad) for op in kernel.after) else set()
    out |= {"_matmul_tn"} if any(isinstance(op, ir.WeightGrad) and not op.heads for op in kernel.after) else set()
    out |= {"_head_weight_grad"} if any(getattr(op, "heads", False) for op in kernel.after) else set()
    out |= {"_column_sum"} if any(isinstance(op, ir.BiasGrad) and not op.same_as for op in kernel.after) else set()
    return sorted(out)
