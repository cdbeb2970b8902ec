"""rnngen's worker threads: one per CPU this process may use, each pinned to its CPU, started on
first use. `run_all(tasks)` gives task k to worker k and waits for all of them.

Why pinned workers and not a thread pool with the caller taking a share: measured on a 2-core VM
with other processes on the second core, a thread woken by the caller started on the caller's own
CPU and moved only after several milliseconds, so 5 ms tasks ran one after the other (0.99x);
with each worker on its own CPU they ran side by side (1.96x). The caller only waits.

A task that itself calls run_all (from a worker) runs its tasks in order on that worker: nesting
never deadlocks. After a fork the child starts its own workers (the parent's threads are not in
it).
"""
import os
import queue
import threading

_workers = []
_lock = threading.Lock()
_local = threading.local()


class _Job:
    def __init__(self, fn):
        self.fn = fn
        self.done = threading.Event()
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as exc:        # noqa: B902 - handed to the caller, raised there
            self.error = exc
        finally:
            self.done.set()


def _cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _serve(jobs, cpu):
    _local.worker = True
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})     # this thread only (Linux)
        except (AttributeError, OSError, ValueError):
            pass
    while True:
        jobs.get().run()


def _start(n):
    """At least n workers (their job queues)."""
    with _lock:
        cpus = _cpus()
        while len(_workers) < n:
            k = len(_workers)
            jobs = queue.SimpleQueue()
            cpu = cpus[k] if k < len(cpus) else None
            threading.Thread(target=_serve, args=(jobs, cpu), name=f"rnngen-worker-{k}", daemon=True).start()
            _workers.append(jobs)
        return _workers[:n]


def _forget_after_fork():
    _workers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def in_worker():
    return getattr(_local, "worker", False)


def run_all(tasks):
    """Run the callables at the same time, task k on worker k, and return their results in order;
    the first exception raised by any of them is raised once all have finished."""
    if len(tasks) == 1 or in_worker():
        return [t() for t in tasks]
    jobs = [_Job(t) for t in tasks]
    for q, job in zip(_start(len(jobs)), jobs):
        q.put(job)
    for job in jobs:
        job.done.wait()
    for job in jobs:
        if job.error is not None:
            raise job.error
    return [job.result for job in jobs]
