"""The CUDA layout (no GPU, no numba.cuda needed): biases added in the loops, flat gate columns,
per-(b, j) vector gradients, zeros written past a row's length, kernel argument ranks."""
from rnngen.compiler import ir


def test_terms_columns_and_inactive_zeros(compile_builtin):
    comp = compile_builtin("lstm_peephole")
    kernel, lay = comp.kernel("cuda"), comp["layout:cuda"]
    read = next(r for op in kernel.forward[-1].ops for r in op.reads if r.symbol.name == "xf_hf")
    assert [lay.element(t) for t in lay.terms(read)] == ["zx_ih[t, b, H + j]", "bias_ih[H + j]", "z_hh[b, H + j]",
                                                        "bias_hh[H + j]"]
    dvec = kernel.buffer("d_vector", "weight_ci")
    assert lay.dims(dvec) == (ir.B, ir.H) and lay.element(ir.Ref(dvec, 0, "unit")) == "dvec_weight_ci[b, j]"
    zeros = lay.inactive_zeros(True)
    assert [(w.ref.buffer.name, w.ref.gate, w.ref.at) for w in zeros] == [("dz_hh", g, "step") for g in range(4)]
    assert [w.ref.buffer.name for w in lay.inactive_zeros(False)] == ["y"]


def test_printed_module(compile_builtin):
    m = compile_builtin("lstm")["emit:cuda"]
    assert dict(m.backward_kernel_args) == {"lengths": 1, "reverse": 0, "dy": 3, "zx_ih": 3, "s_c": 3, "d_h": 2,
                                            "d_c": 2, "dz_hh": 3, "weight_hh": 2, "_init_d_h": 2, "_init_d_c": 2,
                                            "_acc_dz_hh": 2, "_db_bias_ih": 1, "_db_bias_hh": 1,
                                            "_units": 0, "_on_chip": 0}
    assert "bias_hh" not in m.backward_params         # the tied sums hold the biases already
    assert [s.kind for s in m.backward_steps] == ["pointwise", "grid_sync", "gemm", "block_sync"]
    assert any("_loop_order(x, lengths, " in line for line in m.backward_result)
    # item 11 of issue 13: the tied linears ih and hh share ONE pre-activation gradient (dz_hh) on
    # CUDA too, with one bias accumulator written to both bias gradients
    assert not any(b.role == "d_x_preact" for b in compile_builtin("lstm").kernel("cuda").buffers)
    assert [line.split(" =")[0] for line in m.backward_setup if "workspace.scratch(" in line] == ["dz_hh", "_acc_dz_hh"]
    assert m.backward_epilogue[-2:] == ["        _db_bias_ih[_col] = _s", "        _db_bias_hh[_col] = _s"]
