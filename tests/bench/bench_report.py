"""BENCHMARKS.md and the PNG plots from the benchmark suite's results (pure functions + matplotlib).

Input: the machine description, one result dict per case (as run_bench.py saves it in
tests/bench/results/<case>.json) and the serialization benchmark's Google Benchmark JSON.

    text = render_report(machine, cases, serialization, plots)   # the generated markdown
    merged = merge_report(open("BENCHMARKS.md").read(), text, "cpu")  # keeps the rest

Only the text between the section's markers (`<!-- generated:cpu:begin -->` ... `end -->`; one
section per device class, so a GPU run adds its tables next to the CPU ones, and one for the CPU
dtype comparison, dtype_report.py) is rewritten; the rest of an existing file (the hand-written
`## Reading` section) is kept. A case dict holds "case" (settings),
"ceiling" ({batch: {"ms", "images_per_second"}}) and "servers" (list of {"name", "kind",
"closed": dinov3-bench JSON, "open": dinov3-bench JSON or None, "peak_rss_mib", ...}); on a CPU
also "gemm" ({dtype: {"ms", "gflops"}}, measured with the ceiling) and, for the cases that
have them, "hf" (hf_forward.py's JSON per mode: transformers' DINOv3ViTModel).
"""
import math



def markers(section):
    """(begin, end) markers of a generated section: "cpu", "gpu" or "cpu-dtype"."""
    return f"<!-- generated:{section}:begin -->", f"<!-- generated:{section}:end -->"


CASE_COLUMNS = ["server", "concurrency", "images/s", "p50 ms", "p99 ms", "queue ms",
                "preprocess ms", "inference ms", "mean batch", "errors"]
OPEN_COLUMNS = ["rate req/s", "images/s", "p50 ms", "p90 ms", "p99 ms", "queue ms", "errors"]
CEILING_COLUMNS = ["batch", "forward ms", "images/s", "before ms", "after ms"]
TARGET_COLUMNS = ["target (issue 7 sec 3)", "measured", "required", "status"]
GEMM_COLUMNS = ["what", "dtype", "ms", "GFLOP/s", "% of the GEMM rate"]
HF_COLUMNS = ["path", "batch", "forward ms", "images/s", "ceiling / it", "ours (best) / it",
              "notes"]
GEMM_TARGETS = {"float32": 0.80, "bfloat16": 0.70}  # DESIGN.md section 7, bare forward on CPU
DEFAULT_HEAD = """# Benchmarks

Measurements, not tests: numbers depend on the machine and on what else runs on it. Everything
between the `generated` markers below is rewritten by `scripts/bench.sh` in one run (tables,
plots under `tests/bench/results/`, raw JSON next to them); text outside the markers is kept.

"""
DEFAULT_TAIL = """

## Reading

_Placeholder: written by hand after a full run (where the time goes, which targets are missed
and why, what would fix it). `scripts/bench.sh` keeps this section when it rewrites the file._
"""


# ---------------------------------------------------------------- number formatting

def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_num(x, digits=1):
    """A rate or count with `digits` decimals; '–' when missing."""
    return f"{x:.{digits}f}" if finite(x) else "–"


def fmt_ms(x):
    """Milliseconds with about 3 significant digits (0.412, 8.31, 83.1, 831); '–' when missing."""
    if not finite(x):
        return "–"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def fmt_ratio(x):
    return f"{x:.2f}x" if finite(x) else "–"


def fmt_pct(x):
    return f"{100 * x:.0f}%" if finite(x) else "–"


def fmt_cell(text):
    """Free text (an error message) made safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def fmt_errors(errors):
    """'0', or 'UNAVAILABLE: 2, HTTP_500: 1' (sorted by name)."""
    items = sorted((k, v) for k, v in (errors or {}).items() if v)
    return ", ".join(f"{k}: {v}" for k, v in items) if items else "0"


def ratio(a, b):
    return a / b if finite(a) and finite(b) and b > 0 else None


def table(columns, rows):
    """A markdown table; rows are lists of already formatted cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


# ---------------------------------------------------------------- reading results

TIME_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def gbench_ms(entry):
    """An entry's real_time in milliseconds."""
    return entry["real_time"] * TIME_UNITS_MS[entry.get("time_unit", "ns")]


def gbench_entries(gbench):
    """The per-run entries of a Google Benchmark JSON (aggregates such as _mean left out)."""
    return [e for e in gbench.get("benchmarks", [])
            if e.get("run_type", "iteration") == "iteration"]


def name_fields(entry):
    """{"batch": "8", ...} from a Google Benchmark name such as Forward/batch:8/size:224."""
    return dict(part.split(":", 1) for part in entry["name"].split("/")[1:] if ":" in part)


def parse_ceiling(gbench):
    """{batch: {"ms": forward ms, "images_per_second"}} from dinov3-model-bench's JSON."""
    out = {}
    for entry in gbench_entries(gbench):
        if not entry["name"].startswith("Forward/"):
            continue
        batch, ms = int(name_fields(entry)["batch"]), gbench_ms(entry)
        ips = entry.get("images_per_second") or batch * 1000.0 / ms
        out[batch] = {"ms": ms, "images_per_second": ips}
    return out


def parse_gemm(gbench):
    """{dtype: {"ms", "gflops", "n"}} of the Gemm entries of dinov3-model-bench's JSON."""
    out = {}
    for entry in gbench_entries(gbench):
        if entry["name"].startswith("Gemm/"):
            fields, ms = name_fields(entry), gbench_ms(entry)
            n = int(fields["n"])
            out[fields["dtype"]] = {"ms": ms, "n": n,
                                    "gflops": entry.get("gflops") or 2e-6 * n ** 3 / ms}
    return out


def combine_ceilings(before, after):
    """The ceiling measured before the servers and again after them (parse_ceiling dicts): per
    batch the faster of the two (the harder bar), with both times kept for the table."""
    out = {}
    for batch, first in before.items():
        second = after.get(batch)
        best = min((m for m in (first, second) if m), key=lambda m: m["ms"])
        out[batch] = {"ms": best["ms"], "images_per_second": best["images_per_second"],
                      "ms_before": first["ms"], "ms_after": second["ms"] if second else None}
    return out


def points(bench, key="concurrency"):
    """{concurrency (or rate): point} of a dinov3-bench JSON; {} for None."""
    return {p[key]: p for p in (bench or {}).get("points", [])}


def best_point(bench):
    pts = (bench or {}).get("points", [])
    return max(pts, key=lambda p: p["images_per_second"]) if pts else None


def server_by_kind(case, kind):
    return next((s for s in case["servers"] if s["kind"] == kind), None)


def ceiling_at(case, batch):
    entry = case.get("ceiling", {}).get(batch) or case.get("ceiling", {}).get(str(batch))
    return entry or {}


def case_dtype(case):
    return case["case"].get("dtype") or "float32"


def forward_gflops(case, batch):
    """The bare forward's FLOP rate at `batch` (GFLOP/s): the architecture's FLOPs per image
    (settings "flops_per_image") times the ceiling's images/s."""
    flops = case["case"].get("flops_per_image")
    ips = ceiling_at(case, batch).get("images_per_second")
    return flops * ips / 1e9 if finite(flops) and finite(ips) else None


def gemm_gflops(case, dtype=None):
    """The machine's GEMM rate measured in this case (GFLOP/s), in `dtype` (the case's)."""
    return ((case.get("gemm") or {}).get(dtype or case_dtype(case)) or {}).get("gflops")


def hf_batch(result, batch):
    """One batch size of an hf_forward.py result ({} when not measured)."""
    batches = (result or {}).get("batches") or {}
    return batches.get(str(batch)) or batches.get(batch) or {}


# ---------------------------------------------------------------- targets

def status(value, bound, higher_is_better=True):
    """MET / MISSED, or n/a when either number is missing."""
    if not (finite(value) and finite(bound)):
        return "n/a"
    return "MET" if (value >= bound if higher_is_better else value <= bound) else "MISSED"


def targets(case):
    """The issue-7 targets of one case: [(name, measured, required, status)] formatted."""
    ours = server_by_kind(case, "ours")
    closed = points(ours["closed"]) if ours else {}
    mbs = case["case"]["max_batch_size"]
    rows = []
    best = best_point(ours["closed"]) if ours else None
    ceil = ceiling_at(case, mbs).get("images_per_second")
    sat = ratio(best["images_per_second"], ceil) if best else None
    rows.append([f"saturation >= 0.9 x ceiling at batch {mbs}", fmt_ratio(sat), "0.90x",
                 status(sat, 0.9)])
    one, forward = closed.get(1), ceiling_at(case, 1).get("ms")
    p50 = one["latency_ms"]["p50"] if one else None
    bound = forward + one["server_ms"]["preprocess"] + 2.0 if one and finite(forward) else None
    rows.append(["concurrency-1 p50 <= forward(b=1) + preprocess + 2 ms",
                 f"{fmt_ms(p50)} ms", f"{fmt_ms(bound)} ms", status(p50, bound, False)])
    rows.append(peer_target(case, closed, "python-grpc", "python gRPC at concurrency 16",
                            only=16, need=2.0))
    rows.append(peer_target(case, closed, "litserve", "LitServe at every concurrency",
                            only=None, need=1.0))
    rows.append(gemm_target(case))
    return rows


def gemm_target(case):
    """The bare forward at max_batch_size against the GEMM rate in its dtype (DESIGN §7)."""
    dtype, need = case_dtype(case), GEMM_TARGETS.get(case_dtype(case))
    share = ratio(forward_gflops(case, case["case"]["max_batch_size"]), gemm_gflops(case))
    if need is None:
        return [f"bare forward's share of the {dtype} GEMM rate", fmt_pct(share), "n/a", "n/a"]
    return [f"bare forward >= {need:.0%} of the {dtype} GEMM rate (DESIGN 7)", fmt_pct(share),
            f"{need:.0%}", status(share, need)]


def peer_target(case, closed, kind, what, only, need):
    """Ours / peer images/s at concurrency `only` (or the worst over all shared ones)."""
    label = f">= {need:g}x {what}" if only else f"ahead of {what}"
    peer = server_by_kind(case, kind)
    theirs = points(peer["closed"]) if peer else {}
    shared = [c for c in closed if c in theirs and (only is None or c == only)]
    if not shared:
        return [label, "n/a", f"{need:.2f}x" if only else "> 1.00x", "n/a"]
    pairs = [(ratio(closed[c]["images_per_second"], theirs[c]["images_per_second"]), c)
             for c in shared]
    value, at = min(pairs, key=lambda p: p[0] if finite(p[0]) else -1)
    measured = f"{fmt_ratio(value)} (c={at})" if only is None else fmt_ratio(value)
    met = status(value, need) if only else ("MET" if finite(value) and value > need else
                                             "MISSED" if finite(value) else "n/a")
    return [label, measured, f"{need:.2f}x" if only else "> 1.00x", met]


# ---------------------------------------------------------------- tables

def load_rows(server):
    """Table rows of one server's closed-loop sweep."""
    rows = []
    for c, p in sorted(points(server["closed"]).items()):
        s, lat = p.get("server_ms") or {}, p["latency_ms"]
        timed = any(s.get(k) for k in ("queue", "preprocess", "inference"))
        rows.append([server["name"], c, fmt_num(p["images_per_second"]), fmt_ms(lat["p50"]),
                     fmt_ms(lat["p99"]),
                     *(fmt_ms(s.get(k)) if timed else "–"
                       for k in ("queue", "preprocess", "inference")),
                     fmt_num(s.get("batch_size")) if timed else "–", fmt_errors(p["errors"])])
    return rows


def open_rows(bench):
    rows = []
    for rate, p in sorted(points(bench, "rate").items()):
        lat = p["latency_ms"]
        rows.append([f"{rate:g}", fmt_num(p["images_per_second"]), fmt_ms(lat["p50"]),
                     fmt_ms(lat["p90"]), fmt_ms(lat["p99"]),
                     fmt_ms((p.get("server_ms") or {}).get("queue")), fmt_errors(p["errors"])])
    return rows


def ceiling_rows(case):
    return [[b, fmt_ms(v["ms"]), fmt_num(v["images_per_second"]),
             fmt_ms(v.get("ms_before", v["ms"])), fmt_ms(v.get("ms_after"))]
            for b, v in sorted((int(b), v) for b, v in case.get("ceiling", {}).items())]


def gemm_section(case, level="###"):
    """The GEMM rate measured with the ceiling and the bare forward's FLOP rate against it."""
    gemm, c = case.get("gemm") or {}, case["case"]
    if not gemm:
        return []
    dtype, flops = case_dtype(case), c.get("flops_per_image")
    rows = [[f"GEMM {g['n']}x{g['n']}x{g['n']}", name, fmt_ms(g["ms"]), fmt_num(g["gflops"]),
             "100%" if name == dtype else "–"] for name, g in gemm.items()]
    for batch in sorted({1, c["max_batch_size"]}):
        rate = forward_gflops(case, batch)
        rows.append([f"bare forward, batch {batch}", dtype, fmt_ms(ceiling_at(case, batch).get("ms")),
                     fmt_num(rate), fmt_pct(ratio(rate, gemm_gflops(case)))])
    text = ("`torch.mm` of two N x N matrices into a preallocated one, in dinov3-model-bench on "
            "the ceiling's thread and intra-op threads, right before the ceiling. The forward's "
            f"FLOPs ({fmt_num(flops and flops / 1e9, 2)} GFLOP per image) are counted from the "
            "architecture: Linear layers, the patch-embedding convolution and both attention "
            "matmuls; norms, softmax and activations are not counted.")
    return ["", f"{level} GEMM rate and the forward's FLOP rate", "", text, ""] + \
        table(GEMM_COLUMNS, rows)


def hf_rows(case):
    """Rows of transformers' DINOv3ViTModel (hf_forward.py results), eager and compiled."""
    ours = server_by_kind(case, "ours")
    best = best_point(ours["closed"]) if ours else None
    mine = best["images_per_second"] if best else None
    rows = []
    for result in case.get("hf") or []:
        path = "transformers, torch.compile" if result["mode"] == "compile" else \
            "transformers, eager"
        notes = []
        if finite(result.get("compile_seconds")):
            notes.append(f"compiled in {result['compile_seconds']:.0f} s")
        if finite(result.get("parity_cosine")):
            notes.append(f"CLS cosine to ours {result['parity_cosine']:.6f}")
        batches = sorted(int(b) for b in result.get("batches") or {})
        for i, batch in enumerate(batches):
            m = hf_batch(result, batch)
            rows.append([path, batch, fmt_ms(m["ms"]), fmt_num(m["images_per_second"]),
                         fmt_ratio(ratio(ceiling_at(case, batch).get("images_per_second"),
                                         m["images_per_second"])),
                         fmt_ratio(ratio(mine, m["images_per_second"])),
                         "; ".join(notes) if i == 0 else ""])
        if result.get("error"):
            rows.append([path, "–", "–", "–", "–", "–",
                         f"FAILED: {fmt_cell(result['error'])}"])
    return rows


def hf_section(case, level="###"):
    rows = hf_rows(case)
    if not rows:
        return []
    c = case["case"]
    text = (f"The path a user would otherwise take: transformers' `DINOv3ViTModel` built from the "
            f"same weights, {case_dtype(case)}, {c['threads']} intra-op threads on a thread of "
            "its own, inference_mode, after warm-up (tests/bench/hf_forward.py). torch.compile: "
            "inductor, dynamic=False (one graph per batch size, compiled during the warm-up). "
            "ceiling / it: the bare TorchScript forward at the same batch size.")
    return ["", f"{level} transformers DINOv3ViTModel (same weights, dtype and threads)", "", text,
            ""] + table(HF_COLUMNS, rows)


def summary_rows(case):
    """Per server: best images/s, where, ratio to the ceiling, ours / it at each concurrency."""
    ours = server_by_kind(case, "ours")
    mine = points(ours["closed"]) if ours else {}
    conc = sorted(mine)
    ceil = ceiling_at(case, case["case"]["max_batch_size"]).get("images_per_second")
    rows = []
    for server in case["servers"]:
        best = best_point(server["closed"])
        theirs = points(server["closed"])
        vs = ["–" if server is ours or c not in theirs else
              fmt_ratio(ratio(mine[c]["images_per_second"], theirs[c]["images_per_second"]))
              for c in conc]
        rows.append([server["name"], fmt_num(best and best["images_per_second"]),
                     best["concurrency"] if best else "–",
                     fmt_ratio(ratio(best and best["images_per_second"], ceil)), *vs])
    return rows, conc


def case_section(case, plot_path):
    """The markdown of one case: settings, plot, tables, summary and targets."""
    c = case["case"]
    mbs = c["max_batch_size"]
    lines = [f"## {c['name']}: {c['title']}", "", c.get("description", ""), "",
             f"![{c['name']}: throughput vs concurrency, latency vs load]({plot_path})", "",
             "### Closed loop (C concurrent callers, one request in flight each)", ""]
    lines += table(CASE_COLUMNS, [r for s in case["servers"] for r in load_rows(s)])
    ours = server_by_kind(case, "ours")
    if ours and ours.get("open"):
        lines += ["", "### Our server, open loop (Poisson arrivals)", ""]
        lines += table(OPEN_COLUMNS, open_rows(ours["open"]))
    lines += ["", f"### Ceiling: bare TorchScript forward, {c['threads']} threads, no server", "",
              "Measured before the servers and again after them (batch 1 and the server's "
              "max_batch_size); the faster of the two is the ceiling. Their spread shows how "
              "much this machine drifts during a case.", ""]
    lines += table(CEILING_COLUMNS, ceiling_rows(case))
    lines += gemm_section(case) + hf_section(case)
    rows, conc = summary_rows(case)
    lines += ["", "### Summary", ""]
    lines += table(["server", "best images/s", "at concurrency", f"/ ceiling (batch {mbs})",
                    *(f"ours / it, c={k}" for k in conc)], rows)
    lines += ["", "### Targets", ""]
    lines += table(TARGET_COLUMNS, targets(case))
    return lines


def rss_rows(cases):
    return [[case["case"]["name"], s["name"], fmt_num(s.get("peak_rss_mib"), 0),
             s.get("processes", 1)]
            for case in cases for s in case["servers"] if finite(s.get("peak_rss_mib"))]


def serialization_rows(gbench):
    """name, time, wire MiB, GB/s for every entry of dinov3-serialization-bench's JSON."""
    rows = []
    for e in gbench_entries(gbench or {}):
        ms, wire = gbench_ms(e), e.get("wire_bytes")
        gbps = wire / (ms * 1e-3) / 1e9 if finite(wire) and ms > 0 else None
        rows.append([e["name"], fmt_ms(ms * 1e3), fmt_num(wire and wire / 2**20, 2),
                     fmt_num(gbps, 2)])
    return rows


def machine_section(machine):
    keys = [("cpu", "CPU"), ("cpu_flags", "CPU flags"), ("cores", "cores"), ("memory", "memory"), ("gpu", "GPU"),
            ("os", "OS"), ("torch", "torch"), ("transformers", "transformers"),
            ("peers", "peer packages"),
            ("commit", "git commit"), ("date", "date (UTC)"), ("duration", "run time")]
    lines = ["## Machine and command", ""]
    lines += [f"- {label}: {machine[k]}" for k, label in keys if machine.get(k)]
    lines += ["", "Command (one run produced everything below):", "", "```sh",
              machine.get("command", "?"), "```"]
    if machine.get("notes"):
        lines += ["", machine["notes"]]
    return lines


def targets_overview(cases):
    rows = [[case["case"]["name"], *row] for case in cases for row in targets(case)]
    return table(["case", *TARGET_COLUMNS], rows)


def render_report(machine, cases, serialization, plots):
    """The generated markdown (between the markers). plots: {case name: relative PNG path}."""
    lines = machine_section(machine)
    lines += ["", "## Targets at a glance", "",
              "Issue 7's targets, reported, not asserted (DESIGN.md section 7 sets stricter "
              "long-term ones: 0.95x the ceiling, 3x Python and 1.5x LitServe at concurrency 16, "
              "+1 ms at concurrency 1). n/a: not measured in this run.", ""]
    lines += targets_overview(cases)
    for case in cases:
        lines += [""] + case_section(case, plots.get(case["case"]["name"], ""))
    lines += ["", "## Peak resident memory", "",
              "VmHWM of each server, fresh per case; a multi-process server (LitServe) is the sum "
              "over its process tree (shared library pages count once per process).", ""]
    lines += table(["case", "server", "peak RSS MiB", "processes"], rss_rows(cases))
    if serialization:
        lines += ["", "## Serialization of a dense response (448x448 vitb16: 784 x 768 patch "
                  "tokens)", "", "dinov3-serialization-bench, in process, no network.", ""]
        lines += table(["benchmark", "time us", "wire MiB", "GB/s"],
                       serialization_rows(serialization))
    return "\n".join(lines) + "\n"


def merge_report(existing, generated, section="cpu"):
    """`generated` between the section's markers; text outside them in `existing` is kept. A
    file with only other sections gets this one after the last of them; a file without any
    markers is replaced whole (with a placeholder Reading section)."""
    begin, end = markers(section)
    block = f"{begin}\n{generated.strip()}\n{end}"
    if existing and begin in existing:
        head, rest = existing.split(begin, 1)
        if end in rest:
            return head + block + rest.split(end, 1)[1]
    if existing and "<!-- generated:" in existing:
        last = existing.rindex(":end -->") + len(":end -->")
        return existing[:last] + "\n\n" + block + existing[last:]
    return DEFAULT_HEAD + block + DEFAULT_TAIL


# ---------------------------------------------------------------- plots

def plot_case(case, png_path):
    """Throughput vs concurrency (ceiling as horizontal lines) and latency vs throughput."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, server in enumerate(case["servers"]):
        pts = sorted(points(server["closed"]).items())
        color = colors[i % len(colors)]
        left.plot([c for c, _ in pts], [p["images_per_second"] for _, p in pts], "o-",
                  color=color, label=server["name"])
        _latency(right, [p for _, p in pts], color, server["name"], "o")
        if server.get("open"):
            open_pts = [p for _, p in sorted(points(server["open"], "rate").items())]
            _latency(right, open_pts, color, server["name"] + ", open loop", "s")
    for batch, style in _ceiling_lines(case):
        entry = ceiling_at(case, batch)
        left.axhline(entry["images_per_second"], color="black", linestyle=style,
                     label=f"ceiling, batch {batch}")
    left.set(xscale="log", xlabel="concurrency (closed loop)", ylabel="images/s",
             title=f"{case['case']['name']}: throughput")
    concurrency = sorted({c for s in case["servers"] for c in points(s["closed"])})
    left.set_xticks(concurrency, [str(c) for c in concurrency])
    left.minorticks_off()
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.set(yscale="log", xlabel="achieved images/s", ylabel="latency ms (p50 solid, p99 dashed)",
              title=f"{case['case']['name']}: latency vs load")
    right.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    right.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    right.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def _ceiling_lines(case):
    wanted = [(1, ":"), (case["case"]["max_batch_size"], "--")]
    return [(b, s) for b, s in wanted if ceiling_at(case, b)]


def _latency(axis, pts, color, label, marker):
    """p50 (solid, labelled) and p99 (dashed) latency against achieved throughput."""
    x = [p["images_per_second"] for p in pts]
    axis.plot(x, [p["latency_ms"]["p50"] for p in pts], marker + "-", color=color, label=label)
    axis.plot(x, [p["latency_ms"]["p99"] for p in pts], marker + "--", color=color, alpha=0.6)
