"""rnngen.torch under DistributedDataParallel: 2 processes on localhost (gloo) train as one does."""
import os
import socket
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "ddp_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_single_process(tmp_path):
    start = time.perf_counter()
    base = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()), WORLD_SIZE="2", GLOO_SOCKET_IFNAME="lo")
    out = str(tmp_path / "ddp.pt")
    procs = [subprocess.Popen([sys.executable, WORKER, "ddp", out], env=dict(base, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    single = str(tmp_path / "single.pt")
    solo = subprocess.run([sys.executable, WORKER, "single", single], env=base, capture_output=True,
                          text=True, timeout=120)
    assert solo.returncode == 0, solo.stdout + solo.stderr
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    ref = torch.load(single)
    for rank in range(2):
        got = torch.load(f"{out}.rank{rank}")
        assert set(got) == set(ref)
        for name in ref:
            assert got[name].dtype == torch.float64
            diff = (got[name] - ref[name]).abs().max().item()
            assert diff <= 1e-10, (rank, name, diff)
    # the parameters moved: training happened
    torch.manual_seed(1)
    sys.path.insert(0, HERE)
    try:
        import ddp_worker
        init = ddp_worker.Classifier().state_dict()
    finally:
        sys.path.remove(HERE)
    assert max((ref[n] - init[n]).abs().max().item() for n in ref) > 1e-3
    print(f"DDP test wall time {time.perf_counter() - start:.1f} s")


def test_ddp_example_runs_under_torchrun():
    example = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "ddp_classifier.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", example,
           "--epochs", "1", "--train", "128"]
    out = subprocess.run(cmd, env=dict(os.environ, GLOO_SOCKET_IFNAME="lo"), capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "epoch 1: train loss" in out.stdout
    assert "2 processes, parameters identical on every rank" in out.stdout
