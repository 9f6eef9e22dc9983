"""locust against dinov3-bench on the same server and load: OpenAI `POST /v1/embeddings`, a
closed loop of --users callers, one data-URL JPEG per request, base64 answers.

One dinov3-server (random full-depth vits16 export, CPU, float32, default batching, --threads
intra-op threads, default: the machine's cores) and the images of oip_peers.py / front_doors.py
(640x480 JPEGs of /usr/share/backgrounds). Per round, back to back, in an order that alternates
from round to round:
  dinov3-bench --protocol=openai --openai_encoding=base64 --concurrency=USERS
      --warmup_seconds=WARMUP, then one window of SECONDS
  locust -f tests/bench/locust/locustfile.py --headless -u USERS -r USERS -t WARMUP+SECONDS
      --reset-stats  (statistics restart once every user is spawned; the throughput and p50
      below are over the window [WARMUP, WARMUP+SECONDS] of locust's per-second history when
      it has one, else over its whole reset run)
Reported per run: images/s, p50 latency (locust rounds percentiles above 100 ms to 2 significant
digits), failures, the load generator's CPU (its process CPU time sampled at the window's edges,
start-up excluded: cores and ms per request) and the server's CPU per request over the same
window, the other processes' CPU and /proc/loadavg. Per round:
locust / dinov3-bench ratios; overall: their medians. Both tools share the 2 cores with the
server: locust (Python + gevent) costs far more CPU per request than dinov3-bench (C++), and that
CPU is taken from the server; the CPU columns show how much.

    .venv/bin/pip install -r tests/bench/peers/requirements.txt   # locust
    .venv/bin/python tests/bench/locust_vs_bench.py [--rounds 3] [--json out.json]
"""
import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.bench.front_doors import cpu_model  # noqa: E402
from tests.bench.oip_peers import (BENCH, compilers_running, run_dinov3_bench,  # noqa: E402
                                   run_sampled, set_bench, wait_for_quiet, write_images)
from tests.integration.python.server_process import (SERVER, export_random_model,  # noqa: E402
                                                      http_port, start_server, stop_server)

LOCUSTFILE = os.path.join(ROOT, "tests", "bench", "locust", "locustfile.py")
LOCUST = os.path.join(os.path.dirname(sys.executable), "locust")
LOCUST_START_SECONDS = 1.0  # locust's start-up (imports, the users' spawn) before its clock


def locust_window(prefix, warmup, seconds):
    """(requests/s, p50 ms, requests, failures) of the aggregated stats; throughput from the
    per-second history over [warmup, warmup + seconds] when it covers it."""
    with open(f"{prefix}_stats.csv") as f:
        [total] = [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    rate = float(total["Requests/s"])
    try:
        with open(f"{prefix}_stats_history.csv") as f:
            history = [(int(r["Timestamp"]), int(r["Total Request Count"]))
                       for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    except (OSError, KeyError, ValueError):
        history = []
    if history:
        t0 = history[0][0]
        inside = [(t, n) for t, n in history if warmup <= t - t0 <= warmup + seconds]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            rate = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    return rate, float(total["50%"]), requests, failures


def run_locust(http, model, image_dir, users, warmup, seconds, prefix, cpu_args):
    command = [LOCUST, "-f", LOCUSTFILE, "--headless", "-u", str(users), "-r", str(users),
               "-t", f"{int(round(warmup + seconds))}s", "--host", f"http://{http}",
               "--dino-model", model, "--dino-images", image_dir, "--dino-encoding", "base64",
               "--csv", prefix, "--csv-full-history", "--reset-stats", "--only-summary",
               "--loglevel", "WARNING", "--stop-timeout", "10"]
    # locust needs about a second to start (imports) before its clock runs: sample from then.
    status, cpu = run_sampled(command, warmup + LOCUST_START_SECONDS, seconds, cpu_args,
                              prefix + ".log", timeout=seconds + 120)
    if status not in (0, 1):  # 1: some requests failed (reported below)
        with open(prefix + ".log") as f:
            raise RuntimeError(f"locust exited with {status}:\n{f.read()[-3000:]}")
    rate, p50, requests, failures = locust_window(prefix, warmup, seconds)
    return {"tool": "locust", "images_per_second": rate, "p50_ms": p50, "requests": requests,
            "errors": failures, "command": " ".join(command), **cpu.fields(rate)}


def run_bench(http, model, image_files, users, warmup, seconds, json_path, cpu_args):
    point, command, cpu = run_dinov3_bench("openai", http, model, image_files, users, warmup,
                                           seconds, json_path, cpu_args,
                                           ["--openai_encoding=base64"])
    return {"tool": "dinov3-bench", "images_per_second": point["images_per_second"],
            "p50_ms": point["latency_ms"]["p50"], "requests": point["requests"],
            "errors": sum(point["errors"].values()), "command": " ".join(command),
            **cpu.fields(point["images_per_second"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16, help="closed-loop callers")
    parser.add_argument("--seconds", type=float, default=30, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured start of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=8, help="distinct images sent in turn")
    parser.add_argument("--threads", type=int, default=0,
                        help="the server's intra-op threads (0 = the machine's cores)")
    parser.add_argument("--quiet_wait", type=float, default=30,
                        help="before each run, wait at most this long for a second in which "
                             "other processes take < 0.25 cores")
    parser.add_argument("--json", help="write the runs and the summary here")
    parser.add_argument("--server", default=SERVER, help="dinov3-server binary")
    parser.add_argument("--bench", default=BENCH, help="dinov3-bench binary")
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    set_bench(args.bench)
    for tool in (args.server, args.bench, LOCUST):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing (build, or pip install -r "
                     "tests/bench/peers/requirements.txt for locust)")
    began = time.time()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        image_dir = os.path.join(tmp, "images")
        os.makedirs(image_dir)
        _, image_files, image_note = write_images(image_dir, args.images)
        model = export_random_model(tmp, seed=1, depth=12, name="vits16.pt")
        log = os.path.join(tmp, "server.log")
        proc, _, client = start_server(model, log, f"--intra_op_threads={threads}",
                                       server=args.server)
        try:
            http = f"127.0.0.1:{http_port(log)}"
            for r in range(args.rounds):
                tools = ["dinov3-bench", "locust"] if r % 2 == 0 else ["locust", "dinov3-bench"]
                for tool in tools:
                    waited = wait_for_quiet([proc.pid], args.quiet_wait)
                    compilers = compilers_running()
                    if tool == "locust":
                        run = run_locust(http, "vits16", image_dir, args.users, args.warmup,
                                         args.seconds, os.path.join(tmp, f"locust{r}"),
                                         (proc.pid,))
                    else:
                        run = run_bench(http, "vits16", image_files, args.users, args.warmup,
                                        args.seconds, os.path.join(tmp, "bench.json"),
                                        (proc.pid,))
                    run.update(round=r, waited_for_quiet_seconds=round(waited, 1),
                               compilers_at_start=compilers)
                    runs.append(run)
                    print(f"round {r + 1}/{args.rounds} {tool:<12} "
                          f"{run['images_per_second']:6.2f} img/s  p50 {run['p50_ms']:7.1f} ms  "
                          f"errors {run['errors']}  load generator "
                          f"{run['client_cpu_cores']:.2f} cores "
                          f"({run['client_cpu_ms_per_image'] or 0:.1f} ms/req)  server CPU "
                          f"{run['server_cpu_ms_per_image'] or 0:.1f} ms/req  others "
                          f"{run['other_cpu_cores']:.2f} cores  load {run['loadavg_after']}",
                          flush=True)
        finally:
            stop_server(proc, client)
    rounds = []
    for r in range(args.rounds):
        by_tool = {run["tool"]: run for run in runs if run["round"] == r}
        b, lo = by_tool["dinov3-bench"], by_tool["locust"]
        rounds.append({"round": r,
                       "throughput_ratio": lo["images_per_second"] / b["images_per_second"],
                       "p50_ratio": lo["p50_ms"] / b["p50_ms"]})
    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
            "command": " ".join(sys.argv), "images": image_note, "users": args.users,
            "seconds": args.seconds, "warmup": args.warmup,
            "run_minutes": round((time.time() - began) / 60, 1)}
    print(f"\n{meta['cpu']}, {meta['cores']} cores, {meta['date_utc']} UTC, "
          f"{meta['run_minutes']} min; {image_note}\n")
    print("| round | tool | images/s | p50 ms | errors | load generator CPU (cores) "
          "| load generator CPU ms/request | server CPU ms/request | other CPU (cores) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {run['round'] + 1} | {run['tool']} | {run['images_per_second']:.2f} "
              f"| {run['p50_ms']:.0f} | {run['errors']} | {run['client_cpu_cores']:.2f} "
              f"| {run['client_cpu_ms_per_image'] or 0:.1f} "
              f"| {run['server_cpu_ms_per_image'] or 0:.1f} | {run['other_cpu_cores']:.2f} |")
    tp = statistics.median(x["throughput_ratio"] for x in rounds)
    p50 = statistics.median(x["p50_ratio"] for x in rounds)
    print(f"\nlocust / dinov3-bench: throughput {tp:.3f} (per round "
          f"{', '.join(format(x['throughput_ratio'], '.3f') for x in rounds)}), p50 {p50:.3f} "
          f"(per round {', '.join(format(x['p50_ratio'], '.3f') for x in rounds)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "runs": runs, "rounds": rounds,
                       "median_throughput_ratio": tp, "median_p50_ratio": p50}, f, indent=1)


if __name__ == "__main__":
    main()
