r"""The benchmark suite of issue 7: ceiling, our server and the peers back to back, one report.

For each case (vits16 224x224, vitb16 224x224, dense vitb16 448x448 with patch tokens; on a CPU
also vits16 and vitb16 224x224 in bfloat16 and in int8) it runs the bare TorchScript forward
(dinov3-model-bench, the ceiling; on a CPU with the machine's GEMM rate in float32 and bfloat16),
then dinov3-server, then the peers (tests/bench/peers: plain Python gRPC, LitServe; not in the
bfloat16 and int8 cases), each started fresh, checked for the same CLS as ours and driven by the
same dinov3-bench load, then (the 224x224 CPU cases but int8) transformers' DINOv3ViTModel eager
and torch.compile'd (hf_forward.py); then the serialization benchmark once. Writes BENCHMARKS.md
(only between its generated markers: the device's section and, on a CPU, the dtype comparison's),
PNG plots and raw JSON.

--dtype-comparison runs only the six 224x224 CPU cases (float32, bfloat16, int8), shorter, without
peers or the serialization benchmark, and rewrites only the dtype comparison's section.

    scripts/bench.sh [--smoke] [--dtype-comparison] [--device cpu|cuda:0] [--out BENCHMARKS.md]
    .venv/bin/python tests/bench/run_bench.py [--smoke] [--dtype-comparison] [--device cpu] \
        [--out BENCHMARKS.md] [--results-dir DIR] [--skip-peers] [--skip-hf] \
        [--cases vits16-224,vitb16-224,vitb16-448-dense] [--model vitb16=FILE.pt] [--report-only]

Models: random (UNTRAINED, seed 0) exports of each variant, made once into models/bench/
(depth 1 with --smoke, float16 on CUDA, bfloat16 for the -bf16 cases); --model VARIANT=FILE uses
a file of yours instead (VARIANT-bfloat16=FILE for the bfloat16 cases).

Exit status 0 when the report was written; 1 when a server, a tool or a peer's parity failed.
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_report  # noqa: E402
import bench_runner as runner  # noqa: E402
import dtype_report  # noqa: E402
from model_flops import forward_flops  # noqa: E402

ROOT = runner.ROOT


@dataclasses.dataclass
class Case:
    """One benchmark case and how long to measure it."""
    name: str
    title: str
    variant: str
    shape: runner.LoadShape
    ceiling_batches: tuple
    open_fractions: tuple = (0.3, 0.6, 0.85, 1.0)  # open-loop rates, x our best closed loop
    dense_row: bool = False         # also EmbedDense on our server
    batching_off_row: bool = False  # also our server at max_batch_size 1
    note: str = ""                  # said in the report (e.g. why the concurrency list is short)
    dtype: str = ""                 # of the export; "" = --model-dtype (float32; CUDA float16)
    peers: bool = True              # the peers too (unless --skip-peers)
    hf_modes: tuple = ()            # transformers' DINOv3ViTModel: "eager", "compile"
    hf_batches: tuple = ()          # () = 1 and max_batch_size
    compare_dtype: bool = False     # one of the CPU dtype comparison's cases


HF_MODES = ("eager", "compile")


def full_cases(device):
    """The five CPU cases (three on CUDA, plus vitl16), timed so that a CPU run of all of them
    takes ~60-75 min on 2 cores."""
    gpu = device.startswith("cuda")
    shape = runner.LoadShape
    small = shape(concurrency=(1, 4, 16, 64), window_seconds=2 if gpu else 4,
                  max_seconds=15 if gpu else 30)
    base = shape(concurrency=(1, 4, 16, 64) if gpu else (1, 4, 16),
                 window_seconds=2 if gpu else 6, max_seconds=15 if gpu else 40)
    dense = shape(image_size=448, resize=448, outputs=("patch_tokens",),
                  concurrency=(1, 4, 16) if gpu else (1, 4, 8), warmup_seconds=4,
                  window_seconds=2 if gpu else 10, max_seconds=15 if gpu else 45)
    cpu = {} if gpu else {"dtype": "float32", "hf_modes": HF_MODES, "compare_dtype": True}
    bf16 = {"dtype": "bfloat16", "peers": False, "hf_modes": HF_MODES, "compare_dtype": True}
    int8 = {"dtype": "int8", "peers": False, "compare_dtype": True}
    return [
        Case("vits16-224", "vits16, 224x224, Embed (CLS + pooled)", "vits16", small,
             (1, 2, 4, 8, 16, 32), batching_off_row=True, **cpu),
        Case("vitb16-224", "vitb16, 224x224, Embed (CLS + pooled)", "vitb16", base,
             (1, 2, 4, 8, 16, 32) if gpu else (1, 2, 4, 8, 16),
             note="" if gpu else SLOW_NOTE, **cpu),
        Case("vitb16-448-dense", "vitb16, 448x448, dense (patch tokens)", "vitb16", dense,
             (1, 2, 4, 8, 16) if gpu else (1, 2, 4, 8), open_fractions=(0.5, 0.85),
             dense_row=True, note="" if gpu else SLOW_NOTE + " The 2x-Python target is "
             "defined at concurrency 16, which this case does not reach (n/a)."),
    ] + ([Case("vitl16-224", "vitl16, 224x224, Embed (CLS + pooled)", "vitl16", small,
               (1, 2, 4, 8, 16, 32))] if gpu else [
        Case("vits16-224-bf16", "vits16, 224x224, bfloat16, Embed (CLS + pooled)", "vits16",
             small, (1, 2, 4, 8, 16, 32), note=BF16_NOTE, **bf16),
        Case("vitb16-224-bf16", "vitb16, 224x224, bfloat16, Embed (CLS + pooled)", "vitb16",
             base, (1, 2, 4, 8, 16), note=SLOW_NOTE + " " + BF16_NOTE, **bf16),
        Case("vits16-224-int8", "vits16, 224x224, int8, Embed (CLS + pooled)", "vits16",
             small, (1, 2, 4, 8, 16, 32), note=INT8_NOTE, **int8),
        Case("vitb16-224-int8", "vitb16, 224x224, int8, Embed (CLS + pooled)", "vitb16",
             base, (1, 2, 4, 8, 16), note=SLOW_NOTE + " " + INT8_NOTE, **int8)])


SLOW_NOTE = ("Shorter concurrency list and ceiling batches than the vits16 case: this model is "
             "several times slower on this CPU, and a closed loop at concurrency 64 would need "
             "minutes per point to reach a steady state.")
BF16_NOTE = ("A bfloat16 export; no peers (they would run the same bfloat16 forward: this case "
             "is about the dtype, the float32 case about the servers).")


INT8_NOTE = ("An int8 export (`--dtype int8`: dynamically quantised Linear layers, the rest "
             "float32); no peers, and no transformers rows: transformers has no int8 CPU path "
             "of its own (quantising its model by hand gives the same forward as this export).")
SUFFIX = {"float32": "", "bfloat16": "-bf16", "int8": "-int8"}


def dtype_cases(device, max_batch_size):
    """--dtype-comparison: vits16 and vitb16 at 224x224 in float32, bfloat16 and int8, no peers,
    closed loop at concurrency 1 and 16 only, ceiling at batch 1 and max_batch_size."""
    if device.startswith("cuda"):
        sys.exit("--dtype-comparison compares CPU dtypes: run it with --device cpu")
    shape = runner.LoadShape
    shapes = {"vits16": shape(concurrency=(1, 16), window_seconds=4, max_seconds=30),
              "vitb16": shape(concurrency=(1, 16), window_seconds=6, max_seconds=40)}
    batches = tuple(sorted({1, max_batch_size}))
    return [Case(f"{variant}-224{SUFFIX[dtype]}",
                 f"{variant}, 224x224, {dtype}, Embed (CLS + pooled)", variant, shapes[variant],
                 batches, open_fractions=(), dtype=dtype, peers=False,
                 hf_modes=() if dtype == "int8" else HF_MODES, compare_dtype=True,
                 note=INT8_NOTE if dtype == "int8" else "")
            for variant in ("vits16", "vitb16") for dtype in SUFFIX]


def smoke_cases(device, dtype_comparison=False, max_batch_size=2):
    """The same cases at a glance: concurrency 1,2, 1 s windows, at most 4 s a point; the
    transformers rows at max_batch_size only, torch.compile'd in the first case only (compiling
    is slow)."""
    cases = dtype_cases(device, max_batch_size) if dtype_comparison else full_cases(device)
    for case in cases:
        case.shape = dataclasses.replace(case.shape, concurrency=(1, 2), warmup_seconds=0.5,
                                         window_seconds=1, stable_windows=2, max_seconds=4,
                                         timeout_seconds=60)
        case.ceiling_batches, case.open_fractions, case.batching_off_row = (1, 2), (0.3, 0.6), False
        case.hf_batches = (max_batch_size,)
        if case is not cases[0]:
            case.hf_modes = tuple(m for m in case.hf_modes if m != "compile")
    return cases


# ---------------------------------------------------------------- one case

def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class CaseRun:
    """Runs one case and collects its result dict (the format bench_report reads)."""

    def __init__(self, case, model, args, results_dir):
        self.case, self.model, self.args, self.dir = case, model, args, results_dir
        self.threads = args.threads or os.cpu_count()
        self.servers, self.reference, self.gemm, self.hf = [], None, {}, []

    def path(self, what):
        return os.path.join(self.dir, f"{self.case.name}-{what}")

    def log(self, kind):
        return os.path.join(self.args.logs_dir, f"{self.case.name}-{kind}.log")

    def server_flags(self, max_batch_size):
        # The export's own dtype, as the ceiling and the peers compute (not a config's "auto").
        flags = [f"--max_batch_size={max_batch_size}", "--compute_dtype=export"]
        if self.args.device == "cpu":  # on CUDA the server's default (1 thread per instance)
            flags.append(f"--intra_op_threads={self.threads}")
        return flags

    def run(self):
        case, mbs = self.case, self.args.max_batch_size
        gemm = () if self.args.device.startswith("cuda") else ("float32", "bfloat16")
        log(f"{case.name}: ceiling, batches {case.ceiling_batches}" +
            (f", GEMM rate in {' and '.join(gemm)}" if gemm else ""))
        before = self.ceiling(case.ceiling_batches, "ceiling.json", gemm)
        self.run_ours("ours", "ours", mbs)
        if case.batching_off_row and mbs > 1:
            self.run_ours("ours-b1", "ours (max_batch_size=1)", 1)
        for kind in () if self.args.skip_peers or not case.peers else ("python-grpc",
                                                                          "litserve"):
            self.run_peer(kind)
        for mode in () if self.args.skip_hf else case.hf_modes:
            self.run_hf(mode)
        log(f"{case.name}: ceiling again, batches 1 and {mbs}")
        after = self.ceiling(sorted({1, mbs} & set(case.ceiling_batches)), "ceiling-after.json")
        return {"case": self.settings(), "ceiling": bench_report.combine_ceilings(before, after),
                "gemm": self.gemm, "servers": self.servers, "hf": self.hf}

    def ceiling(self, batches, file_name, gemm=()):
        result = runner.run_ceiling(
            self.model, self.args.device, self.threads, batches, self.case.shape.image_size,
            self.args.min_time, self.path(file_name), warmup_batch=self.args.max_batch_size,
            gemm_dtypes=gemm)
        if gemm:
            self.gemm = bench_report.parse_gemm(result)
        return bench_report.parse_ceiling(result)

    def run_hf(self, mode):
        batches = self.case.hf_batches or tuple(sorted({1, self.args.max_batch_size}))
        log(f"{self.case.name}: transformers DINOv3ViTModel, {mode}, batches {batches}")
        result = runner.run_hf(self.model, mode, self.threads, batches,
                               self.case.shape.image_size, self.args.min_time,
                               self.path(f"hf-{mode}.json"))
        if result.get("error"):
            log(f"{self.case.name}: transformers {mode} FAILED (reported in its row): "
                f"{result['error']}")
        self.hf.append(result)

    def settings(self):
        s = self.case.shape
        meta = export_metadata(self.model)
        return {"name": self.case.name, "title": self.case.title, "variant": self.case.variant,
                "model": os.path.relpath(self.model, ROOT), "device": self.args.device,
                "dtype": meta.get("dtype"), "compare_dtype": self.case.compare_dtype,
                "flops_per_image": model_flops(meta, s.image_size),
                "max_batch_size": self.args.max_batch_size, "threads": self.threads,
                "shape": dataclasses.asdict(s), "description": self.describe()}

    def describe(self):
        s, c, mbs = self.case.shape, self.case, self.args.max_batch_size
        size = f"raw RGB8 {s.image_size}x{s.image_size}" + (
            f", Preprocess {s.resize}x{s.resize}" if s.resize else "")
        text = [f"Model `{os.path.relpath(self.model, ROOT)}` ({c.variant}, "
                f"{export_metadata(self.model).get('dtype', '?')}), "
                f"{self.args.device}, {self.threads} intra-op threads.",
                f"Load: dinov3-bench, {size}, {s.images_per_request} image per request, "
                f"outputs {'+'.join(s.outputs)}, {s.dtype}; concurrency "
                f"{', '.join(map(str, s.concurrency))}; per point {s.warmup_seconds:g} s warm-up, "
                f"then windows of at least {s.window_seconds:g} s and 8 calls until "
                f"{s.stable_windows} agree within {s.stability:.0%} (at most {s.max_seconds:g} s).",
                f"Our server: max_batch_size {mbs}, other settings default." +
                (f" LitServe: max_batch_size {mbs}, batch_timeout 5 ms. Python gRPC: 8 worker "
                 "threads, no batching." if c.peers and not self.args.skip_peers else ""),
                c.note]
        return " ".join(t for t in text if t)

    def load(self, server, method, shape, tag):
        log(f"{self.case.name}: {server.name} {tag} ({method})")
        return runner.run_load(server.target, server.protocol, method, shape,
                               self.path(f"{tag}.json"), progress=not self.args.quiet)

    def run_ours(self, kind, name, max_batch_size):
        log(f"{self.case.name}: starting dinov3-server ({name})")
        with runner.start_ours(name, self.model, self.args.device,
                               self.server_flags(max_batch_size), self.log(kind)) as srv:
            size = self.case.shape.image_size
            if kind == "ours":
                self.reference = runner.cls_over_grpc(srv.target, runner.parity_image(size), size)
            closed = self.load(srv, "embed", self.case.shape, f"{kind}-closed")
            opened = self.run_open(srv, closed) if kind == "ours" else None
            dense = (self.load(srv, "dense", self.case.shape, "ours-dense-closed")
                     if kind == "ours" and self.case.dense_row else None)
        self.add(srv, kind, name, closed, opened)
        if dense:
            self.servers.append({"name": "ours (EmbedDense)", "kind": "ours-dense",
                                 "command": srv.command, "closed": dense, "open": None})

    def run_open(self, srv, closed):
        best = bench_report.best_point(closed)
        if self.args.no_open_loop or not self.case.open_fractions or not best or \
                best["requests_per_second"] <= 0:
            return None
        rates = tuple(round(f * best["requests_per_second"], 3) for f in self.case.open_fractions)
        return self.load(srv, "embed", dataclasses.replace(self.case.shape, rates=rates),
                         "ours-open")

    def run_peer(self, kind):
        log(f"{self.case.name}: starting peer {kind}")
        with runner.start_peer(kind, self.model, self.args.device, self.threads,
                               self.args.max_batch_size, self.log(kind)) as srv:
            value = runner.check_parity(self.reference, srv, self.case.shape.image_size)
            log(f"{self.case.name}: {kind} CLS cosine to ours {value:.6f}")
            closed = self.load(srv, "embed", self.case.shape, f"{kind}-closed")
        self.add(srv, kind, kind, closed, None, parity=value)

    def add(self, srv, kind, name, closed, opened, parity=None):
        mib, processes = srv.memory
        self.servers.append({"name": name, "kind": kind, "command": srv.command,
                             "peak_rss_mib": mib, "processes": processes,
                             "parity_cosine": parity, "closed": closed, "open": opened})


# ---------------------------------------------------------------- models

def export_metadata(path):
    """The dinov3.json of one of our exports (a TorchScript zip: <archive>/extra/dinov3.json),
    read without loading the model; {} when it has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/extra/dinov3.json")), None)
            return json.loads(archive.read(name)) if name else {}
    except (OSError, zipfile.BadZipFile, ValueError):
        return {}


def model_flops(metadata, image_size):
    """FLOPs of a forward of one image_size x image_size image (None without the architecture)."""
    from model.dinov3.config import ArchConfig
    arch = metadata.get("arch")
    return forward_flops(ArchConfig(**arch), image_size, image_size) if arch else None


# ---------------------------------------------------------------- machine and report

REPORTED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16", "amx_int8",
                      "avx512_vnni", "avx_vnni")


def cpu_flags():
    """Which of the flags that decide reduced-precision speed /proc/cpuinfo shows, e.g.
    "avx2 avx512f avx512_bf16 (not: amx_bf16 amx_int8 ...)"."""
    flags = set((read_first("/proc/cpuinfo", "flags") or "").split())
    have = [f for f in REPORTED_CPU_FLAGS if f in flags]
    missing = [f for f in REPORTED_CPU_FLAGS if f not in flags]
    return " ".join(have or ["none"]) + (f" (not: {' '.join(missing)})" if missing else "")


def read_first(path, key, sep=":"):
    """The value of the first `key<sep>value` line of a file (None when absent)."""
    try:
        with open(path) as f:
            return next((line.split(sep, 1)[1].strip() for line in f
                         if line.split(sep, 1)[0].strip() == key and sep in line), None)
    except OSError:
        return None


def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(command):
    """CPU, cores, memory, GPU, OS, package versions, commit, date and the command."""
    kib = read_first("/proc/meminfo", "MemTotal")
    os_name = read_first("/etc/os-release", "PRETTY_NAME", "=") or platform.platform()
    commit = command_output(["git", "rev-parse", "--short", "HEAD"])
    if command_output(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {"cpu": read_first("/proc/cpuinfo", "model name") or platform.processor(),
            "cpu_flags": cpu_flags(),
            "cores": os.cpu_count(),
            "memory": f"{int(kib.split()[0]) / 2**20:.1f} GiB" if kib else None,
            "gpu": command_output(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                   "--format=csv,noheader"]).replace("\n", "; ") or "none",
            "os": f"{os_name.strip(chr(34))}, kernel {platform.release()}",
            "torch": version("torch"),
            "transformers": version("transformers"),
            "peers": f"grpcio {version('grpcio')}, litserve {version('litserve')}",
            "commit": commit or "?",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "command": command,
            "notes": "The load generator (dinov3-bench) runs on the same machine as the server "
                     "under test and shares its cores."}


def write_report(args, machine, cases, serialization, results_dir):
    """The device's section (not with --dtype-comparison) and, when there are dtype comparison
    cases, the dtype comparison's; the rest of args.out is kept."""
    existing = open(args.out).read() if os.path.exists(args.out) else None
    if not args.dtype_comparison:
        out_dir = os.path.dirname(os.path.abspath(args.out))
        plots = {}
        for case in cases:
            png = os.path.join(results_dir, f"{case['case']['name']}.png")
            bench_report.plot_case(case, png)
            plots[case["case"]["name"]] = os.path.relpath(png, out_dir)
        text = bench_report.render_report(machine, cases, serialization, plots)
        existing = bench_report.merge_report(existing, text, device_class(args))
    compared = [c for c in cases if c["case"].get("compare_dtype")]
    if compared:
        text = dtype_report.render_dtype_report(machine, compared)
        existing = bench_report.merge_report(existing, text, dtype_report.SECTION)
    with open(args.out + ".tmp", "w") as f:
        f.write(existing)
    os.replace(args.out + ".tmp", args.out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="VARIANT=PATH",
                   help="use this exported model for a variant (default: a random export); "
                   "VARIANT-bfloat16=PATH for the bfloat16 cases")
    p.add_argument("--models-dir", default=os.path.join(ROOT, "models", "bench"),
                   help="where random models are exported once (cached)")
    p.add_argument("--model-dtype", help="dtype of the random exports (float32; CUDA float16)")
    p.add_argument("--smoke", action="store_true", help="a very short run (CI)")
    p.add_argument("--dtype-comparison", action="store_true",
                   help="only the CPU dtype comparison (its own section of --out)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--results-dir", help="default tests/bench/results/<cpu|gpu|cpu-dtype>; "
                   "with --smoke: bench-results next to --out")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--logs-dir", help="server logs (default: a new folder under /tmp)")
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--skip-hf", action="store_true", help="no transformers rows")
    p.add_argument("--no-open-loop", action="store_true")
    p.add_argument("--max-batch-size", type=int, help="ours and LitServe (default 8; smoke 2)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = cores)")
    p.add_argument("--min-time", type=float, help="Google Benchmark min time per entry, s")
    p.add_argument("--quiet", action="store_true", help="no dinov3-bench progress lines")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite --out from the JSON in the results folder")
    args = p.parse_args(argv)
    args.max_batch_size = args.max_batch_size or (2 if args.smoke else 8)
    args.min_time = args.min_time or (0.1 if args.smoke else 2.0)
    args.models = dict(m.split("=", 1) for m in args.model)
    args.model_dtype = args.model_dtype or ("float16" if args.device.startswith("cuda")
                                            else "float32")
    args.logs_dir = args.logs_dir or tempfile.mkdtemp(prefix="dinov3-bench-logs-")
    os.makedirs(args.logs_dir, exist_ok=True)
    return args


def model_key(args, case):
    """The key of a case's model in args.models: the variant, or VARIANT-DTYPE for a case whose
    dtype is not --model-dtype."""
    dtype = case.dtype or args.model_dtype
    return case.variant if dtype == args.model_dtype else f"{case.variant}-{dtype}"


def exporter_mtime():
    """When the exporter or the model code last changed (newest of model/export.py and
    model/dinov3/*.py)."""
    sources = [os.path.join(ROOT, "model", "export.py")] + [
        os.path.join(ROOT, "model", "dinov3", f)
        for f in os.listdir(os.path.join(ROOT, "model", "dinov3")) if f.endswith(".py")]
    return max(os.path.getmtime(f) for f in sources)


def ensure_model(args, variant, dtype):
    """A random (UNTRAINED) export of variant in dtype, cached in args.models_dir (depth 1 with
    --smoke), exported on first use and again when the model code is newer than the file."""
    depth = ["--depth", "1"] if args.smoke else []
    name = f"dinov3-{variant}{'-depth1' if args.smoke else ''}-{dtype}-untrained.pt"
    path = os.path.join(args.models_dir, name)
    if not os.path.exists(path) or os.path.getmtime(path) < exporter_mtime():
        log(f"exporting {path} (random weights, UNTRAINED)")
        os.makedirs(args.models_dir, exist_ok=True)
        subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", variant,
                        *depth, "--seed", "0", "--dtype", dtype,
                        "--output", path + ".tmp"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        os.replace(path + ".tmp", path)
    return path


def select_cases(args):
    if args.smoke:
        cases = smoke_cases(args.device, args.dtype_comparison, args.max_batch_size)
    elif args.dtype_comparison:
        cases = dtype_cases(args.device, args.max_batch_size)
    else:
        cases = full_cases(args.device)
    if args.cases:
        wanted = args.cases.split(",")
        unknown = set(wanted) - {c.name for c in cases}
        if unknown:
            sys.exit(f"unknown case(s) {sorted(unknown)}; known: {[c.name for c in cases]}")
        cases = [c for c in cases if c.name in wanted]
    for case in cases:
        key = model_key(args, case)
        if key not in args.models:
            args.models[key] = ensure_model(args, case.variant, case.dtype or args.model_dtype)
    return cases


def device_class(args):
    """"gpu" or "cpu": which generated section of the report and which results folder."""
    return "gpu" if args.device.startswith("cuda") else "cpu"


def results_dir_of(args):
    if args.results_dir:
        return args.results_dir
    if args.smoke:
        return os.path.join(os.path.dirname(os.path.abspath(args.out)), "bench-results")
    if args.dtype_comparison:
        return os.path.join(HERE, "results", dtype_report.SECTION)
    return os.path.join(HERE, "results", device_class(args))


def measure(args, cases, results_dir):
    """Runs every case and the serialization benchmark; saves each result's JSON as it goes."""
    results = []
    for case in cases:
        result = CaseRun(case, args.models[model_key(args, case)], args, results_dir).run()
        save_json(os.path.join(results_dir, f"{case.name}.json"), result)
        results.append(result)
    if args.dtype_comparison:
        return results, None
    log("serialization benchmark")
    serialization = runner.run_serialization(os.path.join(results_dir, "serialization.json"),
                                             0.01 if args.smoke else None)
    return results, serialization


def save_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def report_only(args, results_dir):
    """Re-renders the report from the JSON files of an earlier run in results_dir (with
    --dtype-comparison only the dtype comparison, also from a full run's results)."""
    run = load_json(os.path.join(results_dir, "run.json"))
    cases = [load_json(os.path.join(results_dir, f"{name}.json")) for name in run["cases"]]
    serialization = None if args.dtype_comparison else \
        load_json(os.path.join(results_dir, "serialization.json"))
    write_report(args, run["machine"], cases, serialization, results_dir)
    log(f"wrote {args.out} from {results_dir}")
    return 0


def main(argv=None):
    # SIGTERM unwinds like Ctrl-C, so that every started server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    results_dir = results_dir_of(args)
    if args.report_only:
        return report_only(args, results_dir)
    cases = select_cases(args)
    os.makedirs(results_dir, exist_ok=True)
    machine = machine_info(os.environ.get("BENCH_COMMAND") or
                           " ".join(["tests/bench/run_bench.py", *sys.argv[1:]]))
    began = time.monotonic()
    try:
        results, serialization = measure(args, cases, results_dir)
    except runner.BenchError as e:
        log(f"FAILED: {e}\n(server logs in {args.logs_dir})")
        return 1
    machine["duration"] = f"{(time.monotonic() - began) / 60:.1f} min"
    save_json(os.path.join(results_dir, "run.json"),
              {"machine": machine, "cases": [c.name for c in cases],
               "mode": "dtype-comparison" if args.dtype_comparison else "full"})
    write_report(args, machine, results, serialization, results_dir)
    log(f"wrote {args.out} (results in {results_dir}, server logs in {args.logs_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
