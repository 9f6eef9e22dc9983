"""Tests of the benchmark suite (scripts/bench.sh, tests/bench/run_bench.py): the OUTPUT FORMAT,
never the numbers (timing belongs in benchmarks, not in pass/fail tests).

1. Unit tests of the pure report functions (bench_report, dtype_report) on hand-made inputs:
   number formatting, MET/MISSED logic, marker preservation, table shapes, a plot, the FLOP
   count, the mapping of our weights onto transformers' DINOv3ViTModel. Fast.
2. The smoke run: `scripts/bench.sh --smoke --no-build --out TMP/B.md` once (depth-1 models,
   concurrency 1,2, the real binaries of build/bin, the real peers, the transformers rows),
   then checks of the markdown (the CPU section and the dtype comparison's), the PNGs and the
   raw JSON it wrote, and of `--dtype-comparison --report-only` on those results. About 4-6
   minutes on 2 cores (torch.compile of one tiny model included); it fails (never skips) when
   a binary is missing. --no-build: CI has built the tree before the tests run.

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
import dtype_report  # noqa: E402

CASES = ["vits16-224", "vitb16-224", "vitb16-448-dense", "vits16-224-bf16", "vitb16-224-bf16",
         "vits16-224-int8", "vitb16-224-int8"]
PEER_CASES = CASES[:3]  # the bfloat16 and int8 cases run without peers
DTYPE_CASES = ["vits16-224", "vitb16-224", "vits16-224-bf16", "vitb16-224-bf16",
               "vits16-224-int8", "vitb16-224-int8"]
INT8_CASES = DTYPE_CASES[4:]  # no int8 GEMM row, no transformers rows
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


def make_case(ours=None, python=None, litserve=None, ceiling=None, p50_c1=50.0, **settings):
    ours = ours or {1: 9.0, 4: 9.5, 16: 9.6}
    servers = [server("ours", "ours", ours, p50_c1)]
    if python:
        servers.append(server("python-grpc", "python-grpc", python))
    if litserve:
        servers.append(server("litserve", "litserve", litserve, peak_rss_mib=900.0,
                              processes=4))
    return {"case": {"name": "t", "title": "test", "max_batch_size": 8, "threads": 2,
                     **settings},
            "ceiling": ceiling if ceiling is not None else
            {1: {"ms": 46.5, "images_per_second": 10.0}, 8: {"ms": 800.0,
                                                             "images_per_second": 10.0}},
            "servers": servers}


def by_target(case):
    rows = report.targets(case)
    return {"saturation": rows[0], "latency": rows[1], "python": rows[2], "litserve": rows[3],
            "gemm": rows[4]}


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
    assert [row[3] for row in report.targets(case)] == ["n/a"] * 5


def test_gemm_target_and_flop_rate():
    # 10 images/s x 9 GFLOP = 90 GFLOP/s against a 100 GFLOP/s float32 GEMM: 90% >= 80%.
    case = make_case(flops_per_image=9e9, dtype="float32")
    case["gemm"] = {"float32": {"ms": 100.0, "n": 2048, "gflops": 100.0},
                    "bfloat16": {"ms": 50.0, "n": 2048, "gflops": 200.0}}
    assert report.forward_gflops(case, 8) == pytest.approx(90.0)
    assert by_target(case)["gemm"][1:] == ["90%", "80%", "MET"]
    case["case"]["dtype"] = "bfloat16"  # 90 of 200: 45% < 70%
    assert by_target(case)["gemm"][1:] == ["45%", "70%", "MISSED"]
    case["case"]["dtype"] = "float16"  # no target for it
    assert by_target(case)["gemm"][2:] == ["n/a", "n/a"]
    header, rows = markdown_tables("\n".join(report.gemm_section(case)))[0]
    assert header == report.GEMM_COLUMNS
    assert [r[0] for r in rows] == ["GEMM 2048x2048x2048"] * 2 + [
        "bare forward, batch 1", "bare forward, batch 8"]


def test_parse_gemm_and_ceiling_keep_their_entries_apart():
    gbench = {"benchmarks": [
        {"name": "Forward/batch:8/size:224/real_time", "run_type": "iteration",
         "real_time": 400.0, "time_unit": "ms", "images_per_second": 20.0},
        {"name": "Gemm/dtype:float32/n:2048/real_time", "run_type": "iteration",
         "real_time": 100.0, "time_unit": "ms", "gflops": 171.8e9 * 1e-9}]}
    assert list(report.parse_ceiling(gbench)) == [8]
    gemm = report.parse_gemm(gbench)
    assert list(gemm) == ["float32"] and gemm["float32"]["n"] == 2048
    assert gemm["float32"]["gflops"] == pytest.approx(171.8)


def test_forward_flops_from_the_architecture():
    from model_flops import forward_flops
    sys.path.insert(0, ROOT)
    from model.dinov3.config import preset
    # vits16 at 224: 196 patches + CLS + 4 registers = 201 tokens, 12 blocks of
    # 2*201*384*(3*384 + 384 + 2*1536) + 4*201^2*384, plus the patch embedding 2*196*768*384.
    expected = 12 * (2 * 201 * 384 * (4 * 384 + 2 * 1536) + 4 * 201 ** 2 * 384) + \
        2 * 196 * 768 * 384
    assert forward_flops(preset("vits16"), 224, 224) == expected
    assert forward_flops(preset("vits16"), 224, 224, batch=8) == 8 * expected
    swiglu = preset("vith16plus")  # three FFN matrices
    n, d, h = 201, swiglu.embed_dim, swiglu.ffn_hidden
    block = 2 * n * d * 4 * d + 4 * n * n * d + 3 * 2 * n * d * h
    assert forward_flops(swiglu, 224, 224) == 32 * block + 2 * 196 * 768 * d


def test_hf_rows_report_a_failure_in_the_row():
    case = make_case(dtype="float32")
    case["hf"] = [
        {"mode": "eager", "batches": {"1": {"ms": 50.0, "images_per_second": 20.0}},
         "parity_cosine": 0.9999999, "error": None},
        {"mode": "compile", "batches": {}, "compile_seconds": None,
         "error": "InductorError: CppCompileError: C++ compile error | g++: not found"}]
    rows = report.hf_rows(case)
    assert rows[0][:4] == ["transformers, eager", 1, "50.0", "20.0"]
    assert rows[0][4] == "0.50x"  # the ceiling: 10 images/s at batch 1
    assert "CLS cosine to ours 1.000000" in rows[0][6]
    assert rows[1][0] == "transformers, torch.compile" and rows[1][1:6] == ["–"] * 5
    assert rows[1][6] == "FAILED: InductorError: CppCompileError: C++ compile error \\| " \
        "g++: not found"


def test_hf_weights_map_onto_dinov3vitmodel():
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "model"))
    from hf_reference import random_hf_model
    from hf_forward import hf_state_dict
    from model.dinov3.checkpoints import hf_to_internal
    from model.dinov3.config import preset
    import dataclasses
    model = random_hf_model("vits16", seed=3, depth=1)
    theirs = {k: v for k, v in model.state_dict().items() if k != "embeddings.mask_token"}
    config = dataclasses.replace(preset("vits16"), depth=1)
    back = hf_state_dict(hf_to_internal(theirs, config, "test"), config)
    assert sorted(back) == sorted(theirs)
    assert all(back[k].equal(theirs[k]) for k in theirs)


def dtype_case(name, variant, dtype, ceiling_ips, ours_ips, gemm, eager, compiled):
    case = make_case(ours={1: ours_ips / 2, 16: ours_ips}, dtype=dtype, variant=variant,
                     name=name, compare_dtype=True, flops_per_image=10e9,
                     shape={"image_size": 224},
                     ceiling={1: {"ms": 100.0, "images_per_second": ceiling_ips / 2},
                              8: {"ms": 8000.0 / ceiling_ips, "images_per_second": ceiling_ips}})
    case["gemm"] = {dtype: {"ms": 10.0, "n": 2048, "gflops": gemm}}
    case["hf"] = [{"mode": "eager", "batches": {"8": {"ms": 1.0, "images_per_second": eager}}},
                  {"mode": "compile", "batches": {"8": {"ms": 1.0,
                                                        "images_per_second": compiled}}}]
    return case


def test_dtype_report_tables():
    cases = [dtype_case("s", "vits16", "float32", 10.0, 9.5, 200.0, 5.0, 8.0),
             dtype_case("s-bf16", "vits16", "bfloat16", 20.0, 19.0, 400.0, 10.0, 16.0)]
    text = dtype_report.render_dtype_report({"cpu": "Test CPU", "cpu_flags": "avx2",
                                             "command": "bench"}, cases)
    tables = markdown_tables(text)
    header, glance = tables[0]
    assert header[:3] == ["case", "dtype", "GEMM GFLOP/s"]
    assert glance[0] == ["s", "float32", "200.0", "100.0", "50%", "10.00", "9.50", "0.95x",
                         "5.00", "8.00", "1.90x", "1.19x"]
    header, speedup = tables[1]
    assert header[:2] == ["variant", "dtype"]
    assert speedup == [["vits16 224", "bfloat16"] + ["2.00x"] * 6]
    assert "- CPU flags: avx2" in text and text.startswith("## CPU dtype comparison")


def test_merge_report_keeps_the_cpu_section_next_to_the_dtype_one():
    cpu = report.merge_report(None, "CPU TABLES\n", "cpu")
    both = report.merge_report(cpu, "DTYPE TABLES\n", dtype_report.SECTION)
    again = report.merge_report(both, "NEW DTYPE\n", dtype_report.SECTION)
    assert "CPU TABLES" in again and "NEW DTYPE" in again and "DTYPE TABLES" not in again
    assert again.index("CPU TABLES") < again.index("NEW DTYPE") < again.index("## Reading")


def test_dtype_comparison_cases():
    import run_bench
    args = run_bench.parse_args(["--dtype-comparison", "--out", os.devnull])
    cases = run_bench.dtype_cases(args.device, args.max_batch_size)
    assert [c.name for c in cases] == ["vits16-224", "vits16-224-bf16", "vits16-224-int8",
                                       "vitb16-224", "vitb16-224-bf16", "vitb16-224-int8"]
    assert all(not c.peers and c.compare_dtype and c.ceiling_batches == (1, 8) for c in cases)
    # transformers has no int8 path of its own: no transformers rows for the int8 cases
    assert [c.hf_modes for c in cases] == [("eager", "compile"), ("eager", "compile"), ()] * 2
    assert [run_bench.model_key(args, c) for c in cases] == [
        "vits16", "vits16-bfloat16", "vits16-int8", "vitb16", "vitb16-bfloat16", "vitb16-int8"]


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
    for label in ("CPU", "CPU flags", "cores", "memory", "GPU", "OS", "torch", "transformers",
                  "git commit", "date (UTC)"):
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
    servers = ["ours"] + (["python-grpc", "litserve"] if name in PEER_CASES else []) + \
        (["ours (EmbedDense)"] if "dense" in name else [])
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
    assert len(targets) == 5 and all(r[3] in ("MET", "MISSED", "n/a") for r in targets)
    assert any(h[0] == "rate req/s" for h in headers), "open-loop table"
    gemm = tables[headers.index(report.GEMM_COLUMNS)][1]
    assert [(r[0], r[1]) for r in gemm[:2]] == [("GEMM 2048x2048x2048", "float32"),
                                                ("GEMM 2048x2048x2048", "bfloat16")]
    assert [r[0] for r in gemm[2:]] == ["bare forward, batch 1", "bare forward, batch 2"]
    assert all(positive(r[3]) for r in gemm), gemm  # GFLOP/s
    assert all(r[4] == "–" if name in INT8_CASES else r[4].endswith("%") for r in gemm[2:]), gemm
    if name in DTYPE_CASES and name not in INT8_CASES:
        assert_hf_rows(tables[headers.index(report.HF_COLUMNS)][1], name)
    else:
        assert report.HF_COLUMNS not in headers


def assert_hf_rows(rows, name):
    """Eager at batch 2 (the smoke's max_batch_size) everywhere, torch.compile too in the first
    case: numbers, or the failure in the row (torch.compile needs a C++ compiler)."""
    modes = ["transformers, eager"] + (["transformers, torch.compile"] if name == CASES[0]
                                       else [])
    assert sorted({r[0] for r in rows}) == sorted(modes), rows
    for row in rows:
        if row[6].startswith("FAILED: "):
            assert row[0] == "transformers, torch.compile", row  # eager must work
            continue
        assert row[1] == "2" and positive(row[2]) and positive(row[3]), row
        assert "CLS cosine to ours" in row[6], row
        cosine = float(row[6].split("CLS cosine to ours ")[1][:8])
        assert cosine > (0.999 if name.endswith("bf16") else 0.99999), row


def test_smoke_dtype_section(smoke):
    _, text = smoke
    begin, end = report.markers(dtype_report.SECTION)
    assert text.index(report.markers("cpu")[1]) < text.index(begin) < text.index(end) < \
        text.index("## Reading")
    section = text[text.index(begin):text.index(end)]
    assert_dtype_section(section)


def assert_dtype_section(section):
    assert "## CPU dtype comparison" in section
    assert re.search(r"^- CPU flags: \S", section, re.M)
    tables = markdown_tables(section)
    header, glance = tables[0]
    assert header[0] == "case" and [r[0] for r in glance] == DTYPE_CASES
    assert [r[1] for r in glance] == ["float32", "float32", "bfloat16", "bfloat16", "int8", "int8"]
    for row in glance:
        int8 = row[1] == "int8"
        assert all(positive(row[i]) for i in (3, 5, 6) + (() if int8 else (2, 8))), row
        assert not int8 or row[2] == row[8] == "–", row  # no int8 GEMM, no transformers rows
    header, speedup = tables[1]
    assert header[:2] == ["variant", "dtype"]
    assert [r[:2] for r in speedup] == [["vits16 224", "bfloat16"], ["vits16 224", "int8"],
                                        ["vitb16 224", "bfloat16"], ["vitb16 224", "int8"]]
    for row in speedup:  # GEMM (bfloat16 only), ceiling at batch 1 and B, ours
        cells = row[3:6] if row[1] == "int8" else row[2:6]
        assert all(re.fullmatch(r"\d+\.\d\dx", c) for c in cells), speedup


def test_smoke_plots(smoke):
    out_dir, text = smoke
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)  # the dtype section has none
    assert len(plots) == len(CASES)
    for rel in plots:
        assert not os.path.isabs(rel)
        assert_png(os.path.join(out_dir, rel))


def test_smoke_memory_and_serialization(smoke):
    _, text = smoke
    memory = markdown_tables(sections(text)["Peak resident memory"])[0][1]
    assert {(r[0], r[1]) for r in memory} >= {(c, s) for c in PEER_CASES
                                              for s in ("ours", "python-grpc", "litserve")}
    assert {(r[0], r[1]) for r in memory} >= {(c, "ours") for c in CASES}
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
        assert ceiling["context"]["forward_thread"] == "dispatch"
        names = [e["name"] for e in report.gbench_entries(ceiling)]
        assert [n.split("/")[0] for n in names] == ["Forward", "Forward", "Gemm", "Gemm"]
        for entry in report.gbench_entries(ceiling):
            if entry["name"].startswith("Forward/"):
                assert re.fullmatch(r"Forward/batch:\d+/size:\d+(/real_time)?", entry["name"])
                assert {"images_per_second", "page_faults", "real_time"} <= set(entry)
            else:
                assert re.fullmatch(r"Gemm/dtype:(float32|bfloat16)/n:2048(/real_time)?",
                                    entry["name"])
                assert entry["gflops"] > 0
        assert set(case["gemm"]) == {"float32", "bfloat16"}
        assert case["case"]["flops_per_image"] > 0
        assert [h["mode"] for h in case["hf"]] == (
            [] if name not in DTYPE_CASES or name in INT8_CASES
            else ["eager", "compile"] if name == CASES[0] else ["eager"])
    serialization = json.loads((results / "serialization.json").read_text())
    assert all("wire_bytes" in e for e in report.gbench_entries(serialization))


def test_smoke_dtype_comparison_report_only(smoke, tmp_path):
    """--dtype-comparison's own report path, from the smoke run's results: only its section."""
    out_dir, _ = smoke
    out = tmp_path / "D.md"
    proc = subprocess.run([sys.executable, os.path.join(HERE, "run_bench.py"), "--smoke",
                           "--dtype-comparison", "--report-only", "--results-dir",
                           str(out_dir / "bench-results"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert report.markers("cpu")[0] not in text
    begin, end = report.markers(dtype_report.SECTION)
    assert_dtype_section(text[text.index(begin):text.index(end)])


def assert_bench_json(result, mode):
    assert set(result) >= BENCH_KEYS and result["mode"] == mode
    assert result["points"]
    for p in result["points"]:
        assert set(p) >= POINT_KEYS, sorted(POINT_KEYS - set(p))
        assert set(p["latency_ms"]) >= {"mean", "p50", "p90", "p95", "p99", "max"}
        assert set(p["server_ms"]) >= {"queue", "preprocess", "inference", "batch_size"}
        assert p["errors"] == {}, p["errors"]
        assert p["images_per_second"] > 0
