#!/usr/bin/env python3
"""Builds and measures three HTTP server libraries from Debian 12 (tests/bench/http_libraries/).

  python3 tests/bench/http_libraries/run.py            # about 5 minutes
  python3 tests/bench/http_libraries/run.py --quick    # a smoke test, about 1 minute

Needs g++, libboost1.81-dev (already a dependency of the project) and, for this benchmark only,
`apt-get install libmicrohttpd-dev libcpp-httplib-dev`. Standard library only; builds with
g++ -O2 into --build-dir (default /tmp/http-libs), never into the project's build/.

Scenarios, each against a freshly started server, interleaved (rep 1: every scenario for every
server, then rep 2, ... with the server order rotated per rep), median of --reps:
  c1, c16  closed loop: N connections, keep-alive, POST /echo-size back to back for --seconds;
  slow     500 idle keep-alive connections (one request each, then silence) and 20 slowloris
           connections (a request head dripped one byte per 200 ms) opened first, then the c1
           load; in rep 1 the slowloris connections keep dripping until --watch-seconds after
           they were opened, to see whether the server's 30 s timeout closes them.
The server's thread count (/proc/PID/status Threads:) is sampled every 0.2 s during each run;
the table shows the largest sample. Each server prints the stack size of its handler thread
(pthread_getattr_np) when stopped.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

SERVERS = {
    # name: (binary, extra args)
    "beast": ("beast_server", []),
    "microhttpd": ("microhttpd_server", ["epoll"]),
    "microhttpd-tpc": ("microhttpd_server", ["tpc"]),
    "httplib": ("httplib_server", []),
}
LABELS = {
    "beast": "Boost.Beast 1.81 (1 io_context thread, async sessions)",
    "microhttpd": "libmicrohttpd 0.9.75 (INTERNAL_POLLING_THREAD+EPOLL)",
    "microhttpd-tpc": "libmicrohttpd 0.9.75 (THREAD_PER_CONNECTION, the alternative)",
    "httplib": "cpp-httplib 0.11.4 (default thread pool)",
}


def check_dependencies():
    missing = []
    if shutil.which("g++") is None:
        missing.append("g++ (apt-get install g++)")
    if not os.path.exists("/usr/include/boost/beast.hpp"):
        missing.append("Boost.Beast headers (apt-get install libboost1.81-dev)")
    if not os.path.exists("/usr/include/microhttpd.h"):
        missing.append("libmicrohttpd-dev")
    if not os.path.exists("/usr/include/httplib.h") or subprocess.run(
            ["pkg-config", "--exists", "cpp-httplib"]).returncode != 0:
        missing.append("libcpp-httplib-dev")
    if missing:
        sys.exit("http_libraries benchmark: missing " + ", ".join(missing) +
                 ".\nThis benchmark needs (for itself only, not for the project):\n"
                 "  apt-get install libmicrohttpd-dev libcpp-httplib-dev")


def build(build_dir):
    os.makedirs(build_dir, exist_ok=True)
    httplib_flags = subprocess.run(["pkg-config", "--cflags", "--libs", "cpp-httplib"],
                                   check=True, capture_output=True, text=True).stdout.split()
    targets = {
        "loadgen": (["loadgen.cc"], []),
        "beast_server": (["beast_server.cc"], []),
        "microhttpd_server": (["microhttpd_server.cc"], ["-lmicrohttpd"]),
        "httplib_server": (["httplib_server.cc"], httplib_flags),
    }
    jobs = []
    for name, (sources, libs) in targets.items():
        command = (["g++", "-std=c++17", "-O2", "-pthread", "-Wall", "-o",
                    os.path.join(build_dir, name)] + [os.path.join(HERE, s) for s in sources] +
                   libs)
        print("+ " + " ".join(command), flush=True)
        jobs.append(subprocess.Popen(command))
    if any(job.wait() != 0 for job in jobs):
        sys.exit("build failed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_once(build_dir, server, loadgen_args):
    binary, extra = SERVERS[server]
    port = free_port()
    proc = subprocess.Popen([os.path.join(build_dir, binary), str(port)] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"{server} did not start: {line!r} {proc.stderr.read()}")
    samples = []
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            samples.append(read_threads(proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = subprocess.run([os.path.join(build_dir, "loadgen"), "--port", str(port)] +
                             loadgen_args, check=True, capture_output=True, text=True).stdout
    finally:
        done.set()
        sampler.join()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    result = json.loads(out)
    result["threads_max"] = max(samples) if samples else read_threads(proc.pid)
    for token in err.split():
        if token.startswith("handler_thread_stack_bytes="):
            result["handler_stack_bytes"] = int(token.split("=")[1])
    return result


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(runs, args, started, cpu, command):
    """Prints the results table (medians over the reps) and the per-rep ratios to Beast."""
    servers = args.servers.split(",")

    def pick(scenario, server, key, rep=None):
        return [r.get(key) for r in runs if r["scenario"] == scenario and r["server"] == server
                and (rep is None or r["rep"] == rep)]

    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    print()
    print(f"Date: {started:%Y-%m-%d %H:%M %Z}; CPU: {cpu} ({os.cpu_count()} cores); "
          f"kernel {platform.release()}")
    print("Command: " + command)
    print(f"Medians of {args.reps} interleaved runs of {args.seconds:g} s; `slow` = "
          f"{args.idle} idle keep-alive + {args.slowloris} slowloris connections during the c=1 "
          f"load.")
    print()
    print("| library | c=1 req/s | c=16 req/s | c=16 slowest first answer | slow: req/s | "
          "slow: p99 | slow: responsive | slowloris closed (watched) | threads c=16 / slow | "
          "handler thread stack |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for server in servers:
        slow_rps = median(pick("slow", server, "rps"))
        slow_p99 = median(pick("slow", server, "p99_ms"))
        unanswered = sum(pick("slow", server, "unanswered"))
        # Responsive: every request of the c=1 client answered, p99 under 100 ms.
        responsive = "yes" if unanswered == 0 and slow_p99 is not None and slow_p99 < 100 else (
            f"no: the client's request got no answer in {unanswered} of {args.reps} runs"
            if unanswered else "no")
        slow_answered = median(pick("slow", server, "answered"))
        p99_text = (f"{fmt(slow_p99, ',.3f')} ms" if slow_answered else
                    f"no answer in {args.seconds:g} s")
        closed = pick("slow", server, "slowloris_closed", rep=1)[0]
        close_s = pick("slow", server, "slowloris_median_close_s", rep=1)[0]
        watched = pick("slow", server, "watched_s", rep=1)[0]
        opened = pick("slow", server, "sides_open_s", rep=1)[0]
        slowloris = (f"yes, {closed}/{args.slowloris} at {close_s:.0f} s" if closed == args.slowloris
                     else f"no, {closed}/{args.slowloris} in {watched:.0f} s")
        if opened > 2:
            slowloris += f" (opening the {args.idle + args.slowloris} took {opened:.0f} s)"
        stack = median(pick("c1", server, "handler_stack_bytes"))
        print(f"| {LABELS[server]} "
              f"| {fmt(median(pick('c1', server, 'rps')), ',.0f')} "
              f"| {fmt(median(pick('c16', server, 'rps')), ',.0f')} "
              f"| {fmt(median(pick('c16', server, 'first_answer_max_ms')), ',.1f')} ms "
              f"| {fmt(slow_rps, ',.0f')} "
              f"| {p99_text} "
              f"| {responsive} "
              f"| {slowloris} "
              f"| {fmt(median(pick('c16', server, 'threads_max')), '.0f')} / "
              f"{fmt(median(pick('slow', server, 'threads_max')), '.0f')} "
              f"| {fmt(stack / 1048576 if stack else None, '.0f')} MiB |")

    if "beast" in servers:
        print()
        print("Throughput relative to Beast, the median of the per-rep ratios (each ratio within "
              "one rep, whose runs of a scenario follow each other within seconds):")
        print()
        print("| library | c=1 | c=16 | slow |")
        print("|---|---:|---:|---:|")
        for server in servers:
            cells = []
            for scenario in ("c1", "c16", "slow"):
                ratios = []
                for rep in range(1, args.reps + 1):
                    base = pick(scenario, "beast", "rps", rep)
                    mine = pick(scenario, server, "rps", rep)
                    if base and mine and base[0]:
                        ratios.append(mine[0] / base[0])
                cells.append(fmt(median(ratios), ".2f"))
            print(f"| {LABELS[server]} | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="/tmp/http-libs")
    parser.add_argument("--servers", default="beast,microhttpd,httplib,microhttpd-tpc")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--slowloris", type=int, default=20)
    parser.add_argument("--watch-seconds", type=float, default=35,
                        help="rep 1 of `slow` watches the slowloris connections this long")
    parser.add_argument("--quick", action="store_true",
                        help="1 rep of 1 s runs, 3 s slowloris watch: a smoke test")
    parser.add_argument("--json", default=None, help="also write every run here")
    parser.add_argument("--report", default=None,
                        help="print the tables of a --json file again, without running anything")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        report(saved["runs"], argparse.Namespace(**saved["args"]),
               datetime.datetime.fromisoformat(saved["started"]), saved["cpu"],
               saved.get("command", "python3 tests/bench/http_libraries/run.py"))
        return
    if args.quick:
        args.reps, args.seconds, args.watch_seconds = 1, 1, 3
    servers = args.servers.split(",")
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}; known: {', '.join(SERVERS)}")

    check_dependencies()
    build(args.build_dir)

    started = datetime.datetime.now().astimezone()
    runs = []  # (rep, scenario, server, result)
    secs = str(args.seconds)
    for rep in range(1, args.reps + 1):
        order = servers[rep - 1:] + servers[:rep - 1]
        scenarios = {
            "c1": ["--conns", "1", "--seconds", secs],
            "c16": ["--conns", "16", "--seconds", secs],
            "slow": ["--conns", "1", "--seconds", secs, "--idle", str(args.idle),
                     "--slowloris", str(args.slowloris),
                     "--watch-seconds", str(args.watch_seconds if rep == 1 else 0)],
        }
        for scenario, loadgen_args in scenarios.items():
            for server in order:
                result = run_once(args.build_dir, server, loadgen_args)
                runs.append({"rep": rep, "scenario": scenario, "server": server, **result})
                print(f"rep {rep} {scenario:4} {server:15} {result['rps']:>10.0f} req/s  "
                      f"p99 {result['p99_ms']:.3f} ms  threads {result['threads_max']}  "
                      f"errors {result['errors']}  unanswered {result['unanswered']}  "
                      f"first answer max {result['first_answer_max_ms']:.1f} ms"
                      + (f"  slowloris closed {result['slowloris_closed']}/{args.slowloris}"
                         if scenario == "slow" else ""), flush=True)
    command = "python3 tests/bench/http_libraries/run.py " + " ".join(sys.argv[1:])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": started.isoformat(), "cpu": cpu_model(), "command": command,
                       "args": vars(args), "runs": runs}, f, indent=1)
    report(runs, args, started, cpu_model(), command)



if __name__ == "__main__":
    main()
