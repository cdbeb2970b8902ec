"""Namer: a preferred name when free in every scope it enters, else name_, name_2, ..."""
from rnngen.compiler.names import Namer


def test_claims_and_suffixes():
    n = Namer(kernel=("np",), wrapper=("params",))
    assert n.claim("np") == "np_" and n.claim("np") == "np_2"
    assert n.claim("params") == "params"                 # a kernel name may equal a wrapper one
    assert n.claim("params", ("kernel", "wrapper")) == "params_"
    assert n.claim("for") == "for_"                      # keywords are taken


def test_copies_are_independent_and_numbering_skips_taken():
    n = Namer(kernel=("tmp0", "tmp2"))
    m = n.copy()
    gen = m.numbered("tmp")
    assert [next(gen), next(gen)] == ["tmp1", "tmp3"]
    assert n.free("tmp1") and not m.free("tmp1")
