"""Plumbing of the staged GPU check (benchmarks/gpu_check.py): cases run one at a time under a
watchdog, one JSON file per stage (rewritten after every case, so a killed run leaves what it
had), "launching X" before each first kernel launch, a one-line summary and the exit code.

Exit codes: 0 every case passed; 1 a case failed (mismatch, NaN, exception); 3 a case hung (the
watchdog wrote the JSON, dumped every thread's traceback and ended the process); 4 the stage ran
out of its time budget before its last case (the cases not run are listed as skipped).
"""
import faulthandler
import json
import math
import os
import sys
import threading
import time
import traceback

EXIT_OK, EXIT_FAIL, EXIT_HANG, EXIT_INCOMPLETE = 0, 1, 3, 4


def log(*args):
    print(*args, flush=True)


def jsonable(value):
    """Plain JSON: NaN and infinity as strings, tuples as lists, numpy scalars as numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except Exception:
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Stage:
    """One stage: run(name, fn) runs a case, finish() writes the result and returns the exit code.

    A case is a function returning a dict of facts; its key "ok" (default True) says whether it
    passed, "skipped" (a reason) that it did not apply. An exception fails the case (its traceback
    goes into the JSON). A case still running after `case_timeout` seconds is a hang.
    """

    def __init__(self, name, out_dir, case_timeout=90.0, budget_s=240.0, meta=None):
        self.name = name
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, f"{name}.json")
        self.case_timeout = float(case_timeout)
        self.budget_s = float(budget_s)
        self.meta = dict(meta or {})
        self.cases = []
        self.current = None
        self.started = time.time()
        self.start = time.perf_counter()
        self._launched = set()
        self._lock = threading.Lock()
        self.write()

    # -- "launching X" ---------------------------------------------------------------------
    def launching(self, name, detail=None):
        """Print "launching <name>" (flushed) before the first launch of each kernel: a hang inside
        a launch then names it. Installed as rnngen.cuda_runtime.LAUNCH_HOOK."""
        detail = detail or {}
        key = (name, detail.get("kernel"))
        if key in self._launched:
            return
        self._launched.add(key)
        parts = [name, detail.get("kernel")] + [f"{k}={v}" for k, v in detail.items() if k != "kernel"]
        where = f" (in {self.current['case']})" if self.current else ""
        log(f"    launching {' '.join(str(p) for p in parts if p)}{where}")

    # -- cases -----------------------------------------------------------------------------
    def elapsed(self):
        return time.perf_counter() - self.start

    def run(self, name, fn, always=False, **info):
        """Run one case (`always`: even when the budget is used up: a summary of the cases before)."""
        case = {"case": name, **info}
        if not always and self.elapsed() > self.budget_s:
            case.update(status="skipped", reason=f"stage budget of {self.budget_s:.0f} s used up")
            self.cases.append(case)
            self.write()
            log(f"[{self.name}] {name}: skipped (budget)")
            return case
        case["status"] = "running"
        self.cases.append(case)
        self.current = case
        self.write()
        log(f"[{self.name}] {name} ...")
        timer = self._arm()
        t0 = time.perf_counter()
        try:
            facts = fn() or {}
            ok = bool(facts.pop("ok", True))
            skipped = facts.pop("skipped", None)
            case.update(jsonable(facts))
            case["status"] = "skipped" if skipped else ("pass" if ok else "fail")
            if skipped:
                case["reason"] = skipped
        except Exception as exc:
            case.update(status="fail", error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:2000]}",
                        traceback=traceback.format_exc()[-4000:])
        finally:
            self._disarm(timer)
            case["seconds"] = round(time.perf_counter() - t0, 3)
            self.current = None
        self.write()
        brief = case.get("summary") or case.get("error") or case.get("reason") or ""
        log(f"[{self.name}] {name}: {case['status'].upper()} ({case['seconds']:.1f} s) {brief}"[:400])
        return case

    # -- the watchdog ----------------------------------------------------------------------
    def _arm(self):
        # The C-level backstop: fires even if the hung call holds the GIL (exit code 1).
        faulthandler.dump_traceback_later(self.case_timeout + 15, exit=True)
        timer = threading.Timer(self.case_timeout, self._hang)
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def _disarm(timer):
        timer.cancel()
        faulthandler.cancel_dump_traceback_later()

    def _hang(self):
        with self._lock:
            case = self.current
            if case is not None:
                case.update(status="hang", error=f"no result after {self.case_timeout:.0f} s (watchdog); "
                                                 f"the process was ended")
            self.write(final=True)
            log(self.summary())
            log("tracebacks of every thread at the hang:")
            faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
            sys.stdout.flush()
            os._exit(EXIT_HANG)

    # -- results ---------------------------------------------------------------------------
    def counts(self):
        out = {}
        for c in self.cases:
            out[c["status"]] = out.get(c["status"], 0) + 1
        return out

    def status(self):
        statuses = {c["status"] for c in self.cases}
        if "hang" in statuses:
            return "hang"
        if statuses & {"fail", "running"}:
            return "fail"
        if any(c["status"] == "skipped" and "budget" in c.get("reason", "") for c in self.cases):
            return "incomplete"
        return "pass"

    def exit_code(self):
        return {"pass": EXIT_OK, "fail": EXIT_FAIL, "hang": EXIT_HANG, "incomplete": EXIT_INCOMPLETE}[self.status()]

    def summary(self):
        n = self.counts()
        bad = [c["case"] for c in self.cases if c["status"] in ("fail", "hang", "running")]
        text = (f"{self.name}: {self.status().upper()} {n.get('pass', 0)}/{len(self.cases)} passed"
                f"{', %d skipped' % n['skipped'] if n.get('skipped') else ''} in {self.elapsed():.0f} s")
        if bad:
            text += f"; not passed: {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}"
        return f"{text} ({self.path})"

    def write(self, final=False):
        data = {"stage": self.name, "status": self.status() if (final or not self.current) else "running",
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "seconds": round(self.elapsed(), 1), "case_timeout_s": self.case_timeout,
                "budget_s": self.budget_s, **jsonable(self.meta), "counts": self.counts(),
                "cases": jsonable(self.cases)}
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    def finish(self):
        """Write the final JSON, print the one-line summary; returns the exit code."""
        self.write(final=True)
        log(self.summary())
        return self.exit_code()
