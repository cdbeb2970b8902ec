"""The CPU layout: the biases read in the loops (none folded into the hoisted GEMM), per-row
pointers to gate blocks (mathlib.at), a scratch for the GEMM adjoint added into a state's gradient, numpy allocation."""
from rnngen.compiler import ir


def test_biases_views_and_scratch(compile_builtin):
    comp = compile_builtin("lstm")
    kernel, lay = comp.kernel("cpu"), comp["layout:cpu"]
    read = next(r for op in kernel.forward[-1].ops for r in op.reads if r.symbol.name == "xi_hi")
    assert [t.buffer.name for t in lay.terms(read)] == ["zx_ih", "z_hh", "bias_ih_hh"]
    views = []
    assert lay.element(read.terms[0], views) == "zx_ih_g0[j]"
    assert lay.element(ir.Ref(read.terms[0].buffer, 2, "t"), views) == "zx_ih_g2[j]"
    assert views == ["zx_ih_g0 = _at(zx_ih, (t, b, 0))", "zx_ih_g2 = _at(zx_ih, (t, b, 2 * H))"]
    assert lay.element(read.terms[3]) == "bias_hh[j]" and lay.element(ir.Ref(read.terms[3].buffer, 1, "unit")) \
        == "bias_hh[H + j]"
    assert [b.name for b in lay.scratch.values()] == ["dv_hh"]
    assert lay.allocate(kernel.buffer("d_preact", "hh")) == "dz_hh = np.zeros((T, B, 4 * H), dtype)"
    assert lay.allocate(kernel.buffer("preact", "hh")) == "z_hh = np.empty((B, 4 * H), dtype)"


def test_printed_module(compile_builtin):
    m = compile_builtin("gru_classic")["emit:cpu"]
    assert m.forward_args[:3] == ["lengths", "reverse", "y"]
    assert m.forward_call[:3] == ["lengths", "reverse", "y"] and "panels_hh" in m.forward_call
    # the wrappers pack the weight once per call (shared by the batch slices) for the per-step GEMMs
    assert 'panels_hh = _panels_of(shared_panels, "panels_hh", params["weight_hh"].T)   # packed once per call' \
        in m.forward_setup
    assert any(line.startswith('panels_hh_adj = _panels_of(shared_panels, "panels_hh_adj", params["weight_hh"])')
               for line in m.backward_setup)
    assert 'params["weight_hh"]' not in m.forward_call and "panels_hh" in m.forward_args
    kinds = [[kind for kind, _ in st.items] for st in m.backward_stages]
    assert kinds == [["rows"], ["gemm", "rows"], ["gemm", "add"]]
    assert m.saved == [("zx_ih", "zx_ih"), ("s_h", "s_h"), ("z_rh", "z_rh"), ("v_rh", "v_rh")]   # z_hh: backward reads u, r where zx_ih kept them
    assert m.helpers == ["_at", "_chunk_steps", "_column_sum", "_entry_column_sum", "_entry_matmul", "_entry_matmul_tn",
                         "_gather_steps", "_gemm_panels", "_matmul", "_matmul_tn", "_one_call", "_panels", "_panels_of",
                         "_sigmoid", "_steps_rows", "_tanh"]
    # the inference entry: the same set-up with the parameters as arguments, the weights packed inside
    assert m.infer_entry.args[:6] == ["x", "lengths", "reverse", "TC", "H", "state0"]
    assert "panels_hh = _panels(weight_hh.T)   # packed once per call" in m.infer_entry.setup
    assert not any("params" in line or "_panels_of" in line for line in m.infer_entry.setup)
