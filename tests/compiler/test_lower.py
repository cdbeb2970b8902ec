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
    # the gates, not the sums, take the sums' places: backward reads i, f, g, o
    saves = [w for w in fwd.writes if w.ref.buffer.role == "x_preact"]
    assert [(w.ref.gate, w.value.name, w.for_backward) for w in saves] == [
        (0, "i", True), (1, "f", True), (2, "g", True), (3, "o", True)]
    bwd = _ops(kernel.backward, ir.Pointwise)[0]
    read = next(r for r in bwd.reads if r.symbol.name == "i")
    assert [(t.buffer.name, t.gate, t.at) for t in read.terms] == [("zx_ih", 0, "t")]
    assert "hi" not in {r.symbol.name for r in fwd.reads + bwd.reads}
    assert "xi_hi" not in {r.symbol.name for r in bwd.reads}


def _calls(block):
    return sorted(str(f.func) for _, e in block.assigns for f in e.atoms(sp.Function))


def test_kept_values(compile_builtin):
    """A named value is saved in the place of the one pre-activation backward reads only for it;
    backward reads it instead of computing it again."""
    lstm = compile_builtin("lstm")["lower"][True]
    assert lstm.kept_values == {"i": ("zx_ih", 0), "f": ("zx_ih", 1), "g": ("zx_ih", 2), "o": ("zx_ih", 3)}
    shared = compile_builtin("lstm")["cse"][True]
    assert _calls(_ops(shared.backward, ir.Pointwise)[0]) == ["tanh"]          # tanh(c_next) only
    gru = compile_builtin("gru")["lower"][True]
    assert gru.kept_values == {"r": ("zx_ih", 0), "z": ("zx_ih", 1), "n": ("zx_ih", 2)}
    bwd = _ops(compile_builtin("gru")["cse"][True].backward, ir.Pointwise)[0]
    assert _calls(bwd) == []
    assert "hn" in {r.symbol.name for r in bwd.reads}        # d_r needs hn itself: it stays
    # written by the last forward block computing it: o by the inputs of the projection (stage 2)
    proj = compile_builtin("lstm_proj")["lower"][True]
    assert set(proj.kept_values) == {"i", "f", "g", "o"}
    stage2 = _ops(proj.forward[1:2], ir.Pointwise)[0]
    assert [w.value.name for w in stage2.writes if w.for_backward] == ["o"]
    # untied, each value takes the x-linear's place and the recurrent one's is not read
    untied = lower(compile_builtin("lstm")["derive"], tie_linears=False)
    assert untied.kept_values == lstm.kept_values
    assert not {t.buffer.name for r in _ops(untied.backward, ir.Pointwise)[0].reads for t in r.terms} & {"z_hh"}


def test_nothing_kept_where_backward_needs_the_pre_activation(compile_text):
    """A pre-activation backward reads outside the one value (here a * sigmoid(a): its derivative
    needs a) keeps its place; the value is computed again."""
    spec = """
        from rnngen.spec import Cell, sigmoid, tanh
        cell = Cell("cell", states=("h",), output="h")
        a, = cell.linear("ih", cell.x, gates=1)
        b, = cell.linear("hh", cell.h, gates=1)
        s = sigmoid(a)
        n = tanh(b)
        cell.update(h=a * s + n)
        """
    kernel = compile_text(spec)["lower"][True]
    assert "s" not in kernel.kept_values and kernel.kept_values == {"n": ("z_hh", 0)}
    bwd = _ops(kernel.backward, ir.Pointwise)[0]
    assert "sigmoid" in _calls(bwd)


def test_the_inference_forward_keeps_nothing(compile_builtin):
    from rnngen.backends.cpu.infer import pruned_forward
    kernel = compile_builtin("gru")["cse"][True]
    writes = [w for st in pruned_forward(kernel) for op in st.ops if isinstance(op, ir.Pointwise) for w in op.writes]
    assert writes and not any(w.for_backward for w in writes)
    assert {w.ref.buffer.role for w in writes} == {"states", "y"}


def test_without_ties(compile_builtin):
    kernel = lower(compile_builtin("lstm")["derive"], tie_linears=False)
    assert kernel.ties == {}
    buffers = _buffers(kernel)
    assert buffers["dzx_ih"][0] == "d_x_preact"
    # backward reads i, f, g, o from zx_ih, not z_hh: the GEMM output lives for one step
    assert buffers["z_hh"] == ("preact", (B, 4 * H), False)
    gemm = _ops(kernel.forward, ir.Gemm)[0]
    assert (gemm.output.buffer.name, gemm.output.at) == ("z_hh", "all")


def test_a_preact_backward_still_reads_is_saved(compile_builtin):
    """GRU's backward reads hn (d_r = d_n*(1 - n**2)*hn): z_hh stays saved, every step."""
    assert _buffers(compile_builtin("gru")["lower"][True])["z_hh"] == ("preact", (T, B, 3 * H), True)


def test_a_projected_lstm_saves_no_recurrent_product(compile_builtin):
    buffers = _buffers(compile_builtin("lstm_proj")["lower"][True])
    assert buffers["z_hh"][1:] == ((B, 4 * H), False)


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
