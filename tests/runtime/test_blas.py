"""rnngen.blas: the BLAS thread counts inside and after the runtime's `threads_limited` block, and
the rule that leaves a user's own setting alone (read back with threadpoolctl.threadpool_info())."""
import os
import subprocess
import sys

import pytest
import threadpoolctl

from rnngen import blas


def _counts():
    """{library file: threads} of the BLAS libraries rnngen uses, as threadpoolctl reports them."""
    files = {lib["filepath"] for lib in blas.info()}
    return {d["filepath"]: d["num_threads"] for d in threadpoolctl.threadpool_info()
            if d["user_api"] == "blas" and d["filepath"] in files}


@pytest.fixture(autouse=True)
def _runtime_owns_threads(monkeypatch):
    """Each test starts with the libraries' defaults, no user limit and no thread variable, and
    gives back whatever limit another test module had set."""
    for name in blas.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    earlier = blas._user_limit
    blas.limit_threads(None)
    yield
    blas.limit_threads(None)
    if earlier is not None:
        blas.limit_threads(earlier)


def _other_than(counts):
    """A thread count that differs from every current one (1, or 2 where the default is 1)."""
    return 2 if 1 in counts.values() else 1


def test_defaults_are_the_runtimes():
    counts = _counts()
    assert counts, "numpy's / SciPy's BLAS not found by threadpoolctl"
    assert blas.user_setting() is None
    assert sorted(blas.threads()) == sorted(counts.values())


def test_threads_limited_sets_inside_and_restores_after():
    before = _counts()
    n = _other_than(before)
    with blas.threads_limited(n) as applied:
        assert applied is True
        assert set(_counts().values()) == {n}
    assert _counts() == before


def test_threads_limited_restores_after_an_exception():
    before = _counts()
    with pytest.raises(RuntimeError):
        with blas.threads_limited(_other_than(before)):
            raise RuntimeError("in the block")
    assert _counts() == before
    assert blas.user_setting() is None


def test_nested_runtime_blocks_set_their_own_count():
    before = _counts()
    with blas.threads_limited(1):
        with blas.threads_limited(2) as inner:
            assert inner is True
            assert set(_counts().values()) == {2}
        assert set(_counts().values()) == {1}
    assert _counts() == before


def test_user_limit_threads_is_respected_until_handed_back():
    before = _counts()
    n = _other_than(before)
    assert sorted(blas.limit_threads(n)) == sorted(before.values())
    assert set(_counts().values()) == {n}
    assert "limit_threads" in blas.user_setting()
    with blas.threads_limited(3) as applied:
        assert applied is False
        assert set(_counts().values()) == {n}
    assert set(_counts().values()) == {n}
    blas.limit_threads(None)
    assert _counts() == before and blas.user_setting() is None


def test_users_threadpoolctl_block_is_respected():
    before = _counts()
    n = _other_than(before)
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        assert "not its default" in blas.user_setting()
        with blas.threads_limited(3) as applied:
            assert applied is False
            assert set(_counts().values()) == {n}
        assert set(_counts().values()) == {n}
    assert _counts() == before


@pytest.mark.parametrize("variable", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_thread_variable_is_respected(monkeypatch, variable):
    before = _counts()
    monkeypatch.setenv(variable, "1")
    assert variable in blas.user_setting()
    with blas.threads_limited(_other_than(before)) as applied:
        assert applied is False
        assert _counts() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="thread count"):
        blas.limit_threads(bad)
    with pytest.raises(ValueError, match="thread count"):
        with blas.threads_limited(bad):
            pass


def test_a_variable_set_before_start_is_the_users():
    """OPENBLAS_NUM_THREADS=1 at start: the libraries run 1 thread and the runtime keeps it."""
    code = ("from rnngen import blas\n"
            "with blas.threads_limited(2) as applied:\n"
            "    print(applied, sorted(set(blas.threads())), blas.user_setting())\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:2] == ["False", "[1]"], res.stdout
