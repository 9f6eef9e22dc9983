"""The CPU dtype comparison of BENCHMARKS.md (float32 against bfloat16 and int8), from the case
results.

Its own generated section (`<!-- generated:cpu-dtype:begin -->` ... `end -->`), written by
`scripts/bench.sh --dtype-comparison` (those cases only, no peers) and by a full CPU run (from
the same measurements as its per-case sections). Input: the cases whose settings carry a
"dtype" (bench_report's case dicts, with "gemm" and "hf"); pure functions.

    text = render_dtype_report(machine, cases)
    merged = bench_report.merge_report(existing, text, SECTION)
"""
import bench_report as r

SECTION = "cpu-dtype"
GLANCE_COLUMNS = ["case", "dtype", "GEMM GFLOP/s", "forward GFLOP/s", "forward / GEMM",
                  "ceiling images/s", "ours images/s", "ours / ceiling",
                  "HF eager images/s", "HF compile images/s", "ours / HF eager",
                  "ours / HF compile"]
SPEEDUP_COLUMNS = ["variant", "dtype", "GEMM", "ceiling, batch 1", "ceiling, batch B",
                   "ours (best)",
                   "HF eager, batch B", "HF compile, batch B"]


def hf_result(case, mode):
    return next((h for h in case.get("hf") or [] if h.get("mode") == mode), None)


def hf_rate(case, mode, batch):
    return r.hf_batch(hf_result(case, mode), batch).get("images_per_second")


def ours_best(case):
    ours = r.server_by_kind(case, "ours")
    best = r.best_point(ours["closed"]) if ours else None
    return best["images_per_second"] if best else None


def glance_row(case):
    c = case["case"]
    mbs = c["max_batch_size"]
    forward, gemm = r.forward_gflops(case, mbs), r.gemm_gflops(case)
    ceiling = r.ceiling_at(case, mbs).get("images_per_second")
    ours = ours_best(case)
    eager, compiled = hf_rate(case, "eager", mbs), hf_rate(case, "compile", mbs)
    return [c["name"], r.case_dtype(case), r.fmt_num(gemm), r.fmt_num(forward),
            r.fmt_pct(r.ratio(forward, gemm)), r.fmt_num(ceiling, 2), r.fmt_num(ours, 2),
            r.fmt_ratio(r.ratio(ours, ceiling)), r.fmt_num(eager, 2), r.fmt_num(compiled, 2),
            r.fmt_ratio(r.ratio(ours, eager)), r.fmt_ratio(r.ratio(ours, compiled))]


def pairs(cases):
    """[(float32 case, case in another dtype)] of the same variant and input size, in case
    order."""
    by_key = {}
    for case in cases:
        c = case["case"]
        by_key.setdefault((c["variant"], c["shape"]["image_size"]), {})[r.case_dtype(case)] = case
    return [(d["float32"], other) for d in by_key.values() if "float32" in d
            for dtype, other in d.items() if dtype != "float32"]


def speedup_rows(cases):
    """(other dtype) / float32 of each rate, per variant (> 1: the other dtype is faster)."""
    rows = []
    for f32, low in pairs(cases):
        mbs = f32["case"]["max_batch_size"]

        def both(get):
            return r.fmt_ratio(r.ratio(get(low), get(f32)))
        rows.append([f"{f32['case']['variant']} {f32['case']['shape']['image_size']}",
                     r.case_dtype(low),
                     both(lambda c: r.gemm_gflops(c)),
                     both(lambda c: r.ceiling_at(c, 1).get("images_per_second")),
                     both(lambda c: r.ceiling_at(c, mbs).get("images_per_second")),
                     both(ours_best),
                     both(lambda c: hf_rate(c, "eager", mbs)),
                     both(lambda c: hf_rate(c, "compile", mbs))])
    return rows


def machine_lines(machine):
    keys = [("cpu", "CPU"), ("cpu_flags", "CPU flags"), ("cores", "cores"),
            ("memory", "memory"), ("os", "OS"), ("torch", "torch"),
            ("transformers", "transformers"), ("commit", "git commit"),
            ("date", "date (UTC)"), ("duration", "run time")]
    lines = [f"- {label}: {machine[k]}" for k, label in keys if machine.get(k)]
    return lines + ["", "Command:", "", "```sh", machine.get("command", "?"), "```"]


def case_lines(case):
    c = case["case"]
    lines = ["", f"### {c['name']}: {c['title']}", "", c.get("description", ""), "",
             "#### Closed loop", ""]
    lines += r.table(r.CASE_COLUMNS, [row for s in case["servers"] for row in r.load_rows(s)])
    lines += ["", f"#### Ceiling: bare TorchScript forward, {c['threads']} threads", ""]
    lines += r.table(r.CEILING_COLUMNS, r.ceiling_rows(case))
    lines += r.gemm_section(case, "####") + r.hf_section(case, "####")
    return lines


def render_dtype_report(machine, cases):
    """The markdown of the section (between its markers)."""
    cases = [c for c in cases if c["case"].get("dtype")]
    mbs = sorted({c["case"]["max_batch_size"] for c in cases}) or ["B"]
    batch = mbs[0] if len(mbs) == 1 else "B"
    lines = ["## CPU dtype comparison: float32, bfloat16 and int8", "",
             "Each case: the GEMM rate and the bare forward (dinov3-model-bench), our server, "
             "transformers' DINOv3ViTModel eager and torch.compile'd, all in the case's dtype on "
             "the same threads, back to back in one run. bfloat16 and int8 cases use an export "
             "in that dtype (`python -m model.export --dtype bfloat16|int8`; int8: dynamically "
             "quantised Linear layers, no int8 GEMM row and no transformers rows). Rates per "
             "batch are at batch "
             f"{batch} (the server's max_batch_size); ours: the best closed-loop point.", ""]
    lines += machine_lines(machine)
    lines += ["", "### At a glance", ""]
    lines += r.table([c.replace("images/s", f"images/s (b={batch})") if c.startswith(
        ("ceiling", "HF")) else c for c in GLANCE_COLUMNS], [glance_row(c) for c in cases])
    speedups = speedup_rows(cases)
    if speedups:
        lines += ["", "### Against float32", "",
                  "Each rate in the row's dtype divided by the same rate in float32 (above 1: "
                  "faster than float32). GEMM: bfloat16 GEMMs only (int8 has no GEMM row).", ""]
        lines += r.table([c.replace("batch B", f"batch {batch}") for c in SPEEDUP_COLUMNS],
                         speedups)
    for case in cases:
        lines += case_lines(case)
    return "\n".join(lines) + "\n"
