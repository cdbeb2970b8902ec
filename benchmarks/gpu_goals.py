"""Issue 13's goals and the throughput model, for stage `time` of benchmarks/gpu_check.py.

MODEL holds what BENCHMARKS.md ("GPU: the model") expects of rnngen's LSTM kernels on an
H100/H200 (fp32, TF32 off): microseconds per step of the persistent forward and backward kernels
and milliseconds of a whole forward and forward + backward, as (low, high). `goals(stage)` reads
the time stage's cases (the cuDNN table, the per-step kernel times, the launch counts, the
per-FLOP times of lstm_peephole and gru_classic) and prints one table: each goal, what was
measured, the model, and met / NOT MET / not measured.
"""
MODEL = {
    # size: per-step us (forward, backward) and ms (forward, forward + backward), (low, high)
    "fastrnns": {"fwd_us": (9, 12), "bwd_us": (14, 17), "fwd_ms": (1.2, 1.6), "fb_ms": (3.3, 4.2)},
    "big": {"fwd_us": (28, 36), "bwd_us": (27, 33), "fwd_ms": (3.9, 4.8), "fb_ms": (9.5, 11.5)},
    "small": {"fwd_us": (3.5, 6), "bwd_us": (4, 7), "fwd_ms": (1.0, 1.6), "fb_ms": (2.2, 3.5)},
    "course": {"fwd_us": (3, 6), "bwd_us": (3, 6), "fwd_ms": (0.05, 0.2), "fb_ms": (0.15, 0.6)},
}

# (size, what, cuDNN time / rnngen time at least): "f" forward, "fb" forward + backward
RATIO_GOALS = [("fastrnns", "f", 1.0), ("fastrnns", "fb", 1.0), ("big", "f", 1.0), ("big", "fb", 0.8),
               ("small", "fb", 0.7), ("course", "fb", 0.5)]
PER_FLOP_GOAL = 1.3           # lstm_peephole and gru_classic: time per FLOP within 1.3x of lstm's
LAUNCH_GOAL = {"forward": 4, "backward": 6}


def flops(mod, T, B, I, H):
    """Matrix FLOPs of one forward + backward (each weight: one GEMM forward, two backward)."""
    total = 0
    for name, shape in mod.PARAMS.items():
        if name.startswith("weight"):
            rows, cols = (eval(str(d), {}, {"I": I, "H": H}) for d in shape)
            total += 3 * 2 * T * B * rows * cols
    return total


def _case(stage, name):
    return next((c for c in stage.cases if c["case"] == name and c["status"] == "pass"), None)


def _range(r):
    return f"{r[0]:g}-{r[1]:g}"


def goals(stage, cells=("lstm", "gru", "rnn_tanh")):
    rows = []

    def add(goal, measured, ok, model=""):
        status = "not measured" if ok is None else ("met" if ok else "NOT MET")
        rows.append((goal, measured, model, status))

    for size, what, least in RATIO_GOALS:
        for cell in cells:
            c = _case(stage, f"vs cuDNN {cell} {size}")
            label = "forward" if what == "f" else "forward+backward"
            model = MODEL[size]["fwd_ms" if what == "f" else "fb_ms"] if cell == "lstm" else None
            if c is None:
                add(f"{cell} {size} {label}: cuDNN / rnngen >= {least}", "", None,
                    f"{_range(model)} ms" if model else "")
                continue
            ours, theirs = c[f"ours_{what}"], c[f"cudnn_{what}"]
            add(f"{cell} {size} {label}: cuDNN / rnngen >= {least}",
                f"{theirs / ours:.2f} ({ours:.3f} vs {theirs:.3f} ms)", theirs / ours >= least,
                f"{_range(model)} ms" if model else "")
    for size in ("fastrnns", "big"):
        c = _case(stage, f"kernel times lstm {size} T=(50, 100)")
        for part, key in (("forward", "fwd_us"), ("backward", "bwd_us")):
            got = c.get(f"persistent {part} us_per_step") if c else None
            add(f"lstm {size} persistent {part} us/step (model)", "" if got is None else f"{got:.2f}",
                None if got is None else got <= MODEL[size][key][1] * 1.5, f"{_range(MODEL[size][key])} us")
    c = _case(stage, "vs cuDNN lstm fastrnns")
    if c:
        add("lstm fastrnns forward <= 26 us/step (whole forward / T)", f"{1e3 * c['ours_f'] / 100:.1f}",
            1e3 * c["ours_f"] / 100 <= 26)
    for cell in ("lstm_peephole", "gru_classic"):
        c, ref = _case(stage, f"per FLOP {cell} fastrnns"), _case(stage, "per FLOP lstm fastrnns")
        if c and ref:
            r = c["ns_per_mflop"] / ref["ns_per_mflop"]
            add(f"{cell} fastrnns time per FLOP <= {PER_FLOP_GOAL} x lstm's", f"{r:.2f}", r <= PER_FLOP_GOAL)
        else:
            add(f"{cell} fastrnns time per FLOP <= {PER_FLOP_GOAL} x lstm's", "", None)
    for cell in ("lstm", "gru", "rnn_tanh", "gru_classic"):
        c = next((c for c in stage.cases if c["case"].startswith(f"launches and allocations {cell} ")
                  and c["status"] == "pass"), None)
        if c is None:
            add(f"{cell}: launches <= 4 forward, <= 6 backward; 1 allocation per call", "", None)
            continue
        f, b = c["forward"], c["backward"]
        ok = (f.get("launches", 0) <= LAUNCH_GOAL["forward"] and b.get("launches", 0) <= LAUNCH_GOAL["backward"]
              and f.get("allocations", 0) <= 2 and b.get("allocations", 0) <= 1)
        add(f"{cell}: launches <= 4 forward, <= 6 backward; 1 allocation per call (+ lengths upload)",
            f"{f.get('launches', 0)} / {b.get('launches', 0)} launches, {f.get('allocations', 0)} / "
            f"{b.get('allocations', 0)} allocations", ok)
    lines = ["| goal (issue 13) | measured | model | status |", "|---|---|---|---|"]
    lines += [f"| {g} | {m} | {mo} | {s} |" for g, m, mo, s in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    met = sum(r[3] == "met" for r in rows)
    missed = sum(r[3] == "NOT MET" for r in rows)
    return {"markdown": text, "rows": rows,
            "summary": f"{met} met, {missed} not met, {len(rows) - met - missed} not measured"}
