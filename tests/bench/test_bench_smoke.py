"""Tests of the benchmark suite (scripts/bench.sh, tests/bench/run_bench.py): the OUTPUT FORMAT,
never the numbers (timing belongs in benchmarks, not in pass/fail tests).

1. Unit tests of the pure report functions (bench_report) on hand-made inputs: number
   formatting, MET/MISSED logic, marker preservation, table shapes, a plot. Fast.
2. The smoke run: `scripts/bench.sh --smoke --no-build --out TMP/B.md` once (depth-1 models,
   concurrency 1,2, the real binaries of build/bin and the real peers), then checks of the
   markdown, the PNGs and the raw JSON it wrote. About 2 minutes on 2 cores; it fails (never
   skips) when a binary is missing. --no-build: CI has built the tree before the tests run.

    .venv/bin/python -m pytest -q tests/bench/test_bench_smoke.py
"""
import hashlib
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import bench_report as report  # noqa: E402

CASES = ["vits16-224", "vitb16-224", "vitb16-448-dense"]
CLOSED_HEADER = ["server", "concurrency", "images/s", "p50 ms", "p99 ms", "queue ms",
                 "preprocess ms", "inference ms", "mean batch", "errors"]
POINT_KEYS = {"concurrency", "rate", "stable", "windows", "seconds", "requests", "images",
              "errors", "requests_per_second", "images_per_second", "latency_ms", "server_ms",
              "response_bytes"}
BENCH_KEYS = {"tool", "target", "protocol", "method", "mode", "images_per_request", "image",
              "outputs", "dtype", "points"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- hand-made inputs

def point(c, ips, p50=50.0, p99=80.0, preprocess=1.5, rate=0, errors=None):
    return {"concurrency": c, "rate": rate, "stable": True, "windows": 3, "seconds": 9.0,
            "requests": 90, "images": 90, "errors": errors or {}, "requests_per_second": ips,
            "images_per_second": ips,
            "latency_ms": {"mean": p50, "p50": p50, "p90": p99, "p95": p99, "p99": p99,
                           "max": p99},
            "server_ms": {"queue": 2.0, "preprocess": preprocess, "inference": 40.0,
                          "batch_size": 1.0}, "response_bytes": 3100}


def bench(pts, mode="closed"):
    return {"tool": "dinov3-bench", "mode": mode, "points": pts}


def server(name, kind, throughputs, p50_c1=50.0, **extra):
    pts = [point(c, ips, p50=p50_c1 if c == 1 else 100.0) for c, ips in throughputs.items()]
    return {"name": name, "kind": kind, "closed": bench(pts), "open": None,
            "peak_rss_mib": 400.0, "processes": 1, **extra}


def make_case(ours=None, python=None, litserve=None, ceiling=None, p50_c1=50.0):
    ours = ours or {1: 9.0, 4: 9.5, 16: 9.6}
    servers = [server("ours", "ours", ours, p50_c1)]
    if python:
        servers.append(server("python-grpc", "python-grpc", python))
    if litserve:
        servers.append(server("litserve", "litserve", litserve, peak_rss_mib=900.0,
                              processes=4))
    return {"case": {"name": "t", "title": "test", "max_batch_size": 8, "threads": 2},
            "ceiling": ceiling if ceiling is not None else
            {1: {"ms": 46.5, "images_per_second": 10.0}, 8: {"ms": 800.0,
                                                             "images_per_second": 10.0}},
            "servers": servers}


def by_target(case):
    rows = report.targets(case)
    return {"saturation": rows[0], "latency": rows[1], "python": rows[2], "litserve": rows[3]}


# ---------------------------------------------------------------- unit tests

@pytest.mark.parametrize("value, text", [(0.4123, "0.41"), (8.314, "8.31"), (83.14, "83.1"),
                                         (831.4, "831"), (None, "–"), (float("nan"), "–"),
                                         (float("inf"), "–")])
def test_fmt_ms(value, text):
    assert report.fmt_ms(value) == text


def test_fmt_ratio_num_errors():
    assert report.fmt_ratio(1.234) == "1.23x"
    assert report.fmt_ratio(None) == "–"
    assert report.fmt_num(12.345) == "12.3"
    assert report.fmt_num(None) == "–"
    assert report.fmt_errors({}) == "0"
    assert report.fmt_errors(None) == "0"
    assert report.fmt_errors({"UNAVAILABLE": 2, "HTTP_500": 1, "CANCELLED": 0}) == \
        "HTTP_500: 1, UNAVAILABLE: 2"
    assert report.ratio(3.0, 0.0) is None and report.ratio(3.0, 1.5) == 2.0


def test_status():
    assert report.status(0.95, 0.9) == "MET"
    assert report.status(0.9, 0.9) == "MET"
    assert report.status(0.89, 0.9) == "MISSED"
    assert report.status(10.0, 12.0, higher_is_better=False) == "MET"
    assert report.status(None, 0.9) == "n/a"
    assert report.status(float("nan"), 0.9) == "n/a"


def test_targets_met():
    case = make_case(ours={1: 9.0, 4: 9.5, 16: 9.6}, python={1: 4.0, 4: 4.0, 16: 4.0},
                     litserve={1: 8.0, 4: 9.0, 16: 9.0}, p50_c1=49.0)
    t = by_target(case)
    assert t["saturation"][1:] == ["0.96x", "0.90x", "MET"]
    assert t["latency"][1:] == ["49.0 ms", "50.0 ms", "MET"]  # 46.5 + 1.5 + 2
    assert t["python"][1:] == ["2.40x", "2.00x", "MET"]
    assert t["litserve"][1:] == ["1.06x (c=4)", "> 1.00x", "MET"]


def test_targets_missed():
    case = make_case(ours={1: 8.0, 4: 8.5, 16: 8.5}, python={1: 4.0, 16: 5.0},
                     litserve={1: 7.0, 4: 8.5, 16: 9.0}, p50_c1=51.0)
    t = by_target(case)
    assert t["saturation"][3] == "MISSED"
    assert t["latency"][3] == "MISSED"
    assert t["python"][1:] == ["1.70x", "2.00x", "MISSED"]
    assert t["litserve"][1] == "0.94x (c=16)"  # the worst concurrency is reported
    assert t["litserve"][3] == "MISSED"
    even = make_case(ours={1: 8.0}, litserve={1: 8.0})
    assert by_target(even)["litserve"][3] == "MISSED"  # a tie is not "ahead"


def test_targets_not_measured():
    case = make_case(ours={1: 9.0, 4: 9.5}, ceiling={})
    assert [row[3] for row in report.targets(case)] == ["n/a"] * 4


def test_combine_ceilings_keeps_the_faster_and_both_times():
    before = {1: {"ms": 80.0, "images_per_second": 12.5}, 2: {"ms": 150.0, "images_per_second": 13.3}}
    after = {1: {"ms": 70.0, "images_per_second": 14.3}}
    combined = report.combine_ceilings(before, after)
    assert combined[1] == {"ms": 70.0, "images_per_second": 14.3, "ms_before": 80.0,
                           "ms_after": 70.0}
    assert combined[2]["ms"] == 150.0 and combined[2]["ms_after"] is None
    rows = report.ceiling_rows({"ceiling": combined})
    assert rows[0] == [1, "70.0", "14.3", "80.0", "70.0"] and rows[1][4] == "–"


def test_parse_ceiling_units_and_aggregates():
    gbench = {"benchmarks": [
        {"name": "Forward/batch:1/size:224", "run_type": "iteration", "real_time": 80000.0,
         "time_unit": "us", "images_per_second": 12.5},
        {"name": "Forward/batch:8/size:224", "run_type": "iteration", "real_time": 0.5,
         "time_unit": "s"},
        {"name": "Forward/batch:8/size:224_mean", "run_type": "aggregate", "real_time": 1.0,
         "time_unit": "s"}]}
    ceiling = report.parse_ceiling(gbench)
    assert ceiling == {1: {"ms": 80.0, "images_per_second": 12.5},
                       8: {"ms": 500.0, "images_per_second": 16.0}}


def test_serialization_rows():
    gbench = {"benchmarks": [{"name": "EncodePatchTokens/float32", "real_time": 1000.0,
                              "time_unit": "us", "wire_bytes": 2 * 2**20}]}
    assert report.serialization_rows(gbench) == [
        ["EncodePatchTokens/float32", "1000", "2.00", "2.10"]]


def test_merge_report_keeps_text_outside_markers():
    begin, end = report.markers("cpu")
    existing = ("# Benchmarks\n\nintro by hand\n\n" + begin + "\nold tables\n" +
                end + "\n\n## Reading\n\nhuman notes\n")
    merged = report.merge_report(existing, "new tables\n")
    assert "intro by hand" in merged and "human notes" in merged
    assert "new tables" in merged and "old tables" not in merged
    assert report.merge_report(merged, "new tables\n") == merged  # idempotent


def test_merge_report_without_markers_replaces_the_file():
    for existing in (None, "# Benchmarks\n\nissue 4 tables\n"):
        merged = report.merge_report(existing, "NEW TEXT\n")
        assert "issue 4 tables" not in merged
        begin, end = report.markers("cpu")
        assert merged.index(begin) < merged.index("NEW TEXT") < merged.index(end) < \
            merged.index("## Reading")
        assert merged.endswith("\n")


def test_merge_report_adds_a_gpu_section_next_to_the_cpu_one():
    cpu = report.merge_report(None, "CPU TABLES\n", "cpu")
    both = report.merge_report(cpu, "GPU TABLES\n", "gpu")
    assert both.index("CPU TABLES") < both.index("GPU TABLES") < both.index("## Reading")
    again = report.merge_report(both, "NEW CPU\n", "cpu")
    assert "CPU TABLES" not in again and "GPU TABLES" in again and "NEW CPU" in again


def test_case_table_has_one_row_per_server_and_concurrency():
    case = make_case(python={1: 4.0, 4: 4.0, 16: 4.0}, litserve={1: 8.0, 4: 9.0, 16: 9.0})
    text = "\n".join(report.case_section(case, "results/t.png"))
    header, rows = markdown_tables(text)[0]
    assert header == CLOSED_HEADER
    assert sorted((r[0], int(r[1])) for r in rows) == sorted(
        (s, c) for s in ("ours", "python-grpc", "litserve") for c in (1, 4, 16))
    assert "![t: throughput vs concurrency, latency vs load](results/t.png)" in text


def test_plot_case_writes_a_png(smoke, tmp_path):
    # `smoke` first: scripts/bench.sh installs matplotlib (a peers' requirement) into .venv.
    case = make_case(python={1: 4.0, 4: 4.0, 16: 4.0}, litserve={1: 8.0, 4: 9.0, 16: 9.0})
    case["servers"][0]["open"] = bench([point(0, 3.0, rate=3.0), point(0, 6.0, rate=6.0)],
                                       "open")
    path = tmp_path / "t.png"
    report.plot_case(case, str(path))
    assert_png(str(path))


def test_check_parity_refuses_a_peer_that_disagrees(monkeypatch):
    import bench_runner as runner
    reference = (np.ones(8, np.float32), 196)
    peer = runner.Server.__new__(runner.Server)
    peer.name, peer.protocol, peer.target = "peer", "grpc", "127.0.0.1:1"
    monkeypatch.setattr(runner, "cls_over_grpc", lambda *_: (np.ones(8) * 3.0, 196))
    assert runner.check_parity(reference, peer, 224) == pytest.approx(1.0)
    wrong = np.ones(8)
    wrong[:4] = -1.0
    monkeypatch.setattr(runner, "cls_over_grpc", lambda *_: (wrong, 196))
    with pytest.raises(runner.BenchError, match="PARITY FAILURE: peer"):
        runner.check_parity(reference, peer, 224)
    monkeypatch.setattr(runner, "cls_over_grpc", lambda *_: (np.ones(8), 49))
    with pytest.raises(runner.BenchError, match="49 patch tokens"):
        runner.check_parity(reference, peer, 224)


def test_rss_of_a_process_tree():
    import bench_runner as runner
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in runner.process_tree(os.getpid())
        sampler = runner.RssSampler(os.getpid(), interval=0.05)
        mib, processes = sampler.stop()
        assert processes >= 2 and mib > 1
        assert runner.vm_hwm_kib(2**22 + 12345) is None  # no such process
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- helpers for the smoke run

def markdown_tables(text):
    """[(header cells, [row cells])] of every pipe table in `text`."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---") and \
                (i == 0 or not lines[i - 1].startswith("|")):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            tables.append((cells(line), rows))
    return tables


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def sections(text):
    """{heading: body} of the level-2 sections of the markdown."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def positive(cell):
    value = float(cell)
    return math.isfinite(value) and value > 0


def assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_MAGIC), path
    assert len(data) > 10_000, f"{path}: only {len(data)} bytes"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------- the smoke run

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench-smoke")
    out = out_dir / "B.md"
    repo_report = os.path.join(ROOT, "BENCHMARKS.md")
    before = sha256(repo_report) if os.path.exists(repo_report) else None
    proc = subprocess.Popen(["bash", "scripts/bench.sh", "--smoke", "--no-build", "--out",
                             str(out), "--", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        proc.terminate()  # run_bench.py stops its servers on SIGTERM
        stdout, stderr = proc.communicate(timeout=120)
        pytest.fail(f"bench.sh --smoke still running after 1200 s:\n{stderr[-6000:]}")
    assert proc.returncode == 0, f"bench.sh --smoke failed:\n{stdout[-3000:]}\n" \
                                 f"{stderr[-6000:]}"
    after = sha256(repo_report) if os.path.exists(repo_report) else None
    assert before == after, "a smoke run must not rewrite BENCHMARKS.md"
    return out_dir, out.read_text()


def test_smoke_machine_section(smoke):
    _, text = smoke
    machine = sections(text)["Machine and command"]
    for label in ("CPU", "cores", "memory", "GPU", "OS", "torch", "git commit", "date (UTC)"):
        assert re.search(rf"^- {re.escape(label)}: \S", machine, re.M), label
    assert re.search(r"^scripts/bench\.sh --smoke", machine, re.M)
    begin, end = report.markers("cpu")
    assert text.index(begin) < text.index(end) < text.index("## Reading")


@pytest.mark.parametrize("name", CASES)
def test_smoke_case_tables(smoke, name):
    _, text = smoke
    [body] = [b for h, b in sections(text).items() if h.startswith(name + ":")]
    tables = markdown_tables(body)
    header, rows = tables[0]
    assert header == CLOSED_HEADER
    servers = ["ours", "python-grpc", "litserve"] + (["ours (EmbedDense)"] if "dense" in name
                                                     else [])
    assert sorted((r[0], r[1]) for r in rows) == sorted((s, c) for s in servers for c in "12")
    for row in rows:
        assert all(positive(v) for v in row[2:5]), row  # images/s, p50, p99
        assert row[-1] == "0", f"errors: {row}"
    ours = [r for r in rows if r[0] == "ours"]
    assert all(positive(r[7]) for r in ours), ours  # server timing (inference ms) is filled
    headers = [t[0] for t in tables]
    assert report.CEILING_COLUMNS in headers
    ceiling = tables[headers.index(report.CEILING_COLUMNS)][1]
    assert [r[0] for r in ceiling] == ["1", "2"]
    assert all(positive(r[2]) and positive(r[3]) and positive(r[4]) for r in ceiling), ceiling
    targets = tables[headers.index(report.TARGET_COLUMNS)][1]
    assert len(targets) == 4 and all(r[3] in ("MET", "MISSED", "n/a") for r in targets)
    assert any(h[0] == "rate req/s" for h in headers), "open-loop table"


def test_smoke_plots(smoke):
    out_dir, text = smoke
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(plots) == len(CASES)
    for rel in plots:
        assert not os.path.isabs(rel)
        assert_png(os.path.join(out_dir, rel))


def test_smoke_memory_and_serialization(smoke):
    _, text = smoke
    memory = markdown_tables(sections(text)["Peak resident memory"])[0][1]
    assert {(r[0], r[1]) for r in memory} >= {(c, s) for c in CASES
                                              for s in ("ours", "python-grpc", "litserve")}
    assert all(positive(r[2]) for r in memory)
    [serial] = [b for h, b in sections(text).items() if h.startswith("Serialization")]
    rows = markdown_tables(serial)[0][1]
    names = [r[0] for r in rows]
    assert any("float32" in n for n in names) and any("float16" in n for n in names)
    assert all(positive(r[1]) and positive(r[2]) for r in rows)


def test_smoke_raw_json(smoke):
    out_dir, _ = smoke
    results = out_dir / "bench-results"
    run = json.loads((results / "run.json").read_text())
    assert run["cases"] == CASES
    for name in CASES:
        case = json.loads((results / f"{name}.json").read_text())
        assert set(case) >= {"case", "ceiling", "servers"}
        for srv in case["servers"]:
            assert_bench_json(srv["closed"], "closed")
            if srv.get("open"):
                assert_bench_json(srv["open"], "open")
        ceiling = json.loads((results / f"{name}-ceiling.json").read_text())
        for entry in report.gbench_entries(ceiling):
            assert re.fullmatch(r"Forward/batch:\d+/size:\d+(/real_time)?", entry["name"])
            assert "images_per_second" in entry and "real_time" in entry
    serialization = json.loads((results / "serialization.json").read_text())
    assert all("wire_bytes" in e for e in report.gbench_entries(serialization))


def assert_bench_json(result, mode):
    assert set(result) >= BENCH_KEYS and result["mode"] == mode
    assert result["points"]
    for p in result["points"]:
        assert set(p) >= POINT_KEYS, sorted(POINT_KEYS - set(p))
        assert set(p["latency_ms"]) >= {"mean", "p50", "p90", "p95", "p99", "max"}
        assert set(p["server_ms"]) >= {"queue", "preprocess", "inference", "batch_size"}
        assert p["errors"] == {}, p["errors"]
        assert p["images_per_second"] > 0
