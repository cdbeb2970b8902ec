"""lower: the typed Kernel IR of a cell: buffers with roles, sizes and what forward saves, the ops
of each stage, the tied-linear saving, the accumulation flags and the names."""
import sympy as sp

from rnngen.compiler import ir
from rnngen.compiler.lower import lower

T, B, I, H = ir.T, ir.B, ir.I, ir.H


def _buffers(kernel):
    return {b.name: (b.role, b.dims, b.saved) for b in kernel.buffers}


def _ops(stages, kind):
    return [op for st in stages for op in st.ops if isinstance(op, kind)]


def test_lstm_buffers_with_tied_linears(compile_builtin):
    kernel = compile_builtin("lstm")["lower"][True]
    assert kernel.ties == {"ih": "hh"} and kernel.tie_sums == {"ih": ("xi_hi", "xf_hf", "xg_hg", "xo_ho")}
    assert _buffers(kernel) == {
        "x": ("x", (T, B, I), False), "y": ("y", (T, B, H), False), "dy": ("dy", (T, B, H), False),
        "zx_ih": ("x_preact", (T, B, 4 * H), True),
        "s_h": ("states", (T + 1, B, H), True), "s_c": ("states", (T + 1, B, H), True),
        "z_hh": ("preact", (B, 4 * H), False),              # this step's product only
        "d_h": ("d_state", (B, H), False), "d_c": ("d_state", (B, H), False),
        "dz_hh": ("d_preact", (T, B, 4 * H), False)}        # one dZ for both linears
    assert [(b.param, b.dims) for b in kernel.params] == [
        ("weight_ih", (4 * H, I)), ("bias_ih", (4 * H,)), ("weight_hh", (4 * H, H)), ("bias_hh", (4 * H,))]
    grads = kernel.after
    assert isinstance(grads[0], ir.WeightGrad) and grads[0].d.name == "dz_hh" and grads[0].loop_order
    assert isinstance(grads[-1], ir.BiasGrad) and grads[-1].same_as.param == "bias_ih"


def test_tied_reads(compile_builtin):
    kernel = compile_builtin("lstm")["lower"][True]
    fwd = _ops(kernel.forward, ir.Pointwise)[0]
    read = next(r for r in fwd.reads if r.symbol.name == "xi_hi")
    assert [(t.buffer.name, t.gate, t.at) for t in read.terms] == [
        ("zx_ih", 0, "t"), ("bias_ih", 0, "unit"), ("z_hh", 0, "row"), ("bias_hh", 0, "unit")]
    saves = [w for w in fwd.writes if w.ref.buffer.role == "x_preact"]
    assert [(w.ref.gate, w.value.name) for w in saves] == [(0, "xi_hi"), (1, "xf_hf"), (2, "xg_hg"), (3, "xo_ho")]
    bwd = _ops(kernel.backward, ir.Pointwise)[0]
    read = next(r for r in bwd.reads if r.symbol.name == "xi_hi")
    assert [(t.buffer.name, t.at) for t in read.terms] == [("zx_ih", "t")]      # the saved sum
    assert "hi" not in {r.symbol.name for r in fwd.reads + bwd.reads}


def test_without_ties(compile_builtin):
    kernel = lower(compile_builtin("lstm")["derive"], tie_linears=False)
    assert kernel.ties == {}
    buffers = _buffers(kernel)
    assert buffers["z_hh"] == ("preact", (T, B, 4 * H), True) and buffers["dzx_ih"][0] == "d_x_preact"


def test_two_stages(compile_builtin):
    kernel = compile_builtin("gru_classic")["lower"][True]
    assert kernel.ties == {}
    assert _buffers(kernel)["v_rh"] == ("linear_input", (T, B, H), True)
    assert [st.title for st in kernel.forward] == ["stage 1: recurrent GEMMs of hh", "stage 2: recurrent GEMMs of rh",
                                                   "update: new states"]
    adjoints = {op.linear: (op.out.name, op.accumulate) for op in _ops(kernel.backward, ir.GemmAdjoint)}
    assert adjoints == {"rh": ("dv_rh", False), "hh": ("d_h", True)}
    inputs = _ops(kernel.backward, ir.Pointwise)[1]
    assert all(w.accumulate for w in inputs.writes if w.ref.buffer.role == "d_state")
    gemm = _ops(kernel.forward, ir.Gemm)[1]
    assert (gemm.input.buffer.name, gemm.output.buffer.name, gemm.output.at) == ("v_rh", "z_rh", "step")


def test_vector_gradients_accumulate(compile_builtin):
    kernel = compile_builtin("indrnn")["lower"][True]
    blk = _ops(kernel.backward, ir.Pointwise)[0]
    dvec = [w for w in blk.writes if w.ref.buffer.role == "d_vector"]
    assert dvec and all(w.accumulate and w.ref.at == "unit" for w in dvec)
    assert kernel.vectors == {"weight_hh": "u"}


def test_the_generators_names_move_around_the_specs(compile_text):
    kernel = compile_text("""
        from rnngen.spec import Cell, tanh
        cell = Cell("names", states=("h",), output="h")
        (step,) = cell.linear("ih", cell.x)
        (b,) = cell.linear("hh", cell.h)
        s_h = tanh(step + b)
        cell.update(h=s_h)
    """)["lower"][True]
    assert kernel.loop["step"] == "step_" and kernel.loop["b"] == "b_" and kernel.loop["j"] == "j"
    assert kernel.buffer("states", "h").name == "s_h_"
    assert [s.name for s, _ in kernel.named] == ["s_h"]
    assert kernel.tie_sums == {"ih": ("step_b",)}
    assert sp.Symbol("s_h") in {s for st in kernel.forward for op in st.ops
                                if isinstance(op, ir.Pointwise) for s, _ in op.assigns}
