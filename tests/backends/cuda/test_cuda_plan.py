"""Launch planning of the persistent kernels (grid, units per block, shared memory), with no GPU."""
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("numba.cuda")


@pytest.fixture
def rt(monkeypatch):
    from rnngen import cuda_runtime
    monkeypatch.setattr(cuda_runtime, "SIMULATOR", False)
    monkeypatch.setattr(cuda_runtime, "_device_limits", lambda: (132, 227 * 1024))   # an H100
    monkeypatch.setattr(cuda_runtime, "_allow_shared", lambda kernel, nbytes: None)    # granted
    monkeypatch.setattr(cuda_runtime, "_prefer_carveout", lambda kernel, percent: None)
    monkeypatch.setattr(cuda_runtime, "_warned", set())
    return cuda_runtime


def fake_kernel(cooperative=True, sms=132, smem=228 * 1024, max_threads=2048):
    def most(threads, nbytes):
        by_smem = smem // nbytes if nbytes else 32
        return sms * min(by_smem, max_threads // threads, 32)
    return types.SimpleNamespace(cooperative=cooperative, max_cooperative_grid_blocks=most)


def test_one_block_per_sm_with_weights_on_chip(rt):
    grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(), 1024, 64, 4, 1, False, 4)
    assert (grid, units, on_chip, threads) == (128, 8, True, 512)
    assert nbytes == 8 * 4 * 1025 * 4
    grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(), 1024, 64, 4, 1, True, 4)
    assert (grid, units, on_chip, nbytes) == (128, 8, True, 8 * (4 * 1024 + 1) * 4)


def test_small_hidden_size(rt):
    """The course size: 5 warp tiles (B = 10 rows in pairs, 4 gate rows of the one unit)."""
    grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(), 5, 10, 4, 1, False, 4)
    assert (grid, units, on_chip, threads) == (5, 1, True, 160)


# -- threads from the warp tiles of each pass (issue 13, item 8) --------------------------------
def _tiles(B, columns):
    """Warp tiles of 2 batch rows x 4 columns, counted here independently of slices.py."""
    return -(-B // 2) * -(-columns // 4)


@pytest.mark.parametrize("size", [(64, 512, 4), (64, 1024, 4), (32, 128, 4), (10, 5, 4), (64, 512, 3), (64, 512, 1)])
def test_threads_follow_the_tiles_of_each_pass(rt, size):
    """Forward: a block's tiles cover B x (gates * units) outputs, backward B x units (over 4H
    each); a warp per tile up to 16 warps, at least a thread per (b, j) of the pointwise phases."""
    B, H, rows = size
    for backward in (False, True):
        grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(), H, B, rows, 1, backward, 4)
        work = _tiles(B, units if backward else rows * units)
        want = min(512, 32 * max(work, -(-B * units // 32)))
        assert threads == want, (size, backward, threads, want, units)
        assert threads % 32 == 0 and grid * units >= H
    # fastrnns: 16 busy warps in both passes (the old plan gave the backward 2 of 16 work)
    assert rt.plan(fake_kernel(), 512, 64, 4, 1, True, 4)[1] == 512
    assert _tiles(64, 4) >= 16 and _tiles(64, 16) >= 16


def test_fewer_warps_before_more_units(rt):
    """A cooperative grid that does not fit at 512 threads per block gets fewer warps (each
    taking more tiles) before blocks get more units."""
    grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(max_threads=256), 512, 64, 4, 1, False, 4)
    assert (units, threads) == (4, 256) and grid == 128


def test_falls_back_to_global_weights_and_warns_once(rt):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(), 4096, 64, 4, 1, False, 4)
        rt.plan(fake_kernel(), 4096, 64, 4, 1, False, 4)
    assert not on_chip and nbytes == 0 and grid * units >= 4096
    assert len([w for w in caught if "global memory" in str(w.message)]) == 1


def test_grows_units_until_the_cooperative_grid_fits(rt):
    grid, threads, units, nbytes, on_chip = rt.plan(fake_kernel(sms=132, max_threads=256), 2048, 8, 1, 1,
                                                    False, 4)
    assert grid <= 132 and grid * units >= 2048 and on_chip


def test_cpu_modules_import_without_numba_cuda():
    code = ("import sys, rnngen; [rnngen.load(n) for n in rnngen.available()]; "
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_global_weights_when_the_slice_fits_the_limit_but_not_an_sm(rt):
    small_sm = fake_kernel(smem=100 * 1024)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        grid, threads, units, nbytes, on_chip = rt.plan(small_sm, 1024, 64, 4, 1, False, 4)
    assert (grid, units, on_chip, nbytes) == (128, 8, False, 0)


# -- the tiled GEMM's launch: M (T*B rows) on grid.x ---------------------------------------------
def test_gemm_launch_of_five_million_rows(rt):
    """T*B = 5M rows (T=5000, B=1000, say): more tiles along M than grid.y's 65535 allows with the
    small tile; on grid.x (up to 2**31 - 1) every tile shape launches."""
    M = 5_000_000
    for tiles in (rt.GEMM_TILES, rt.GEMM_TILES_SMALL, rt.SIM_GEMM_TILES):
        grid, threads = rt.gemm_launch(M, 2048, tiles)
        bm, bn = tiles[:2]
        assert grid == (-(-M // bm), -(-2048 // bn)) and grid[0] * bm >= M
        assert grid[0] <= 2 ** 31 - 1 and grid[1] <= 65535
        assert threads == (bm // tiles[3]) * (bn // tiles[4])
    assert rt.gemm_launch(M, 2048, rt.GEMM_TILES_SMALL)[0][0] > 65535       # grid.y could not hold it


def test_gemm_launch_refuses_what_no_grid_covers(rt):
    with pytest.raises(ValueError, match=r"gemm: an \(10, 4194368\) result needs a grid of \(1, 65537\)"):
        rt.gemm_launch(10, 65537 * 64, rt.GEMM_TILES_SMALL)


def test_gemm_launches_with_m_on_grid_x(rt, monkeypatch):
    """rt.gemm() of a (5M, 512) @ (2048, 512).T product launches the grid gemm_launch() plans
    (a stand-in kernel records the launch: no GPU, no 40 GB result)."""
    launches = []

    class Kernel:
        def __getitem__(self, config):
            return lambda *args: launches.append((config, args[3:]))

    monkeypatch.setattr(rt, "_gemm", lambda dtype, tiles: Kernel())
    array = lambda *shape: types.SimpleNamespace(shape=shape, dtype=np.float32)   # noqa: E731
    M = 5_000_000
    rt.gemm(array(M, 512), array(2048, 512), array(M, 2048), trans_b=True)
    (grid, threads), flags = launches[0]
    assert grid == rt.gemm_launch(M, 2048, rt.GEMM_TILES)[0] == (-(-M // 128), 16) and threads == 256
    assert flags == (False, True, False)


# -- the cached launch (issue 13, item 10) -------------------------------------------------------
class _Compiled:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def launch(self, args, griddim, blockdim, stream, sharedmem):
        if self.fail:
            raise TypeError("launch() takes 5 arguments")
        self.calls.append((args, griddim, blockdim, stream, sharedmem))


class _Dispatcher:
    def __init__(self):
        self.calls = []

    def __getitem__(self, conf):
        return lambda *args: self.calls.append((conf, args))


def test_the_configured_launch_goes_to_the_compiled_kernel(rt):
    """One configured launch per plan: the compiled kernel's launch with the plan's grid, threads,
    shared memory and numba's default stream, no dispatcher in between."""
    from numba.cuda.cudadrv import driver
    from rnngen.backends.cuda import launch
    kernel, dispatcher = _Compiled(), _Dispatcher()
    run = launch._configured(dispatcher, kernel, 128, 512, 65600)
    run("a", "b", 4, True)
    run("c", "d", 4, True)
    assert [c[0] for c in kernel.calls] == [("a", "b", 4, True), ("c", "d", 4, True)] and not dispatcher.calls
    args, griddim, blockdim, stream, nbytes = kernel.calls[0]
    assert (griddim, blockdim, nbytes) == ((128, 1, 1), (512, 1, 1), 65600)
    assert type(stream) is type(driver._to_core_stream(0))


def test_a_failing_direct_launch_falls_back_to_the_dispatcher(rt):
    from rnngen.backends.cuda import launch
    kernel, dispatcher = _Compiled(fail=True), _Dispatcher()
    run = launch._configured(dispatcher, kernel, 5, 160, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(1)
        run(2)
    assert dispatcher.calls == [((5, 160, 0, 0), (1,)), ((5, 160, 0, 0), (2,))]
    assert len([w for w in caught if "direct launch" in str(w.message)]) == 1
    assert launch._configured(dispatcher, None, 5, 160, 0) is not None        # the simulator's
