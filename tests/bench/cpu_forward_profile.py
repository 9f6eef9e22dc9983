r"""CPU forward of the exported DINOv3 module against this machine's GEMM rate (a benchmark tool, not a test).

What it measures, in one process, with the same number of threads for everything (--threads,
default 2) and under torch.inference_mode:

* the GEMM rate per dtype: a 2048x2048 @ 2048x2048 torch.matmul, in GFLOP/s;
* the bare forward of the scripted module: model/dinov3/vit.py of the working tree and, with
  --baseline-rev REV, the vit.py of that git revision (--extra NAME=FILE for any other vit.py),
  all with the deterministic random weights of `python -m model.export --random` (random_init,
  seed 0), cast like the exporter does (parameters in the dtype, RoPE periods float32), scripted,
  saved and loaded back (what the server runs); warm-up runs first (TorchScript's profiling
  executor optimises during the first runs). Reported: ms per forward, images/s, GFLOP/s, % of the
  GEMM rate by wall time and by process CPU time, CPU ms and minor page faults per forward;
* the FLOPs of the forward, counted from the eager model: 2*M*in*out for every nn.Linear
  (M = batch * tokens, tokens = 1 + registers + patches), the patch-embedding convolution
  (2*B*patches*3*p*p*D), and the two attention matmuls QK^T and AV (2*B*heads*N*N*head_dim each)
  per block; elementwise work (norms, GELU, softmax, RoPE) is not counted;
* each module's outputs against the first one (the baseline when given): max |diff| and minimum
  per-token cosine (cls, registers, patch tokens), and against the float32 outputs of the first
  module (min and mean per-token cosine), so a bfloat16 candidate is judged against float32 too.

This machine is shared, and the load of other processes changes within seconds. Therefore every
round runs GEMM, module a, GEMM, module b, ..., GEMM (the order of the modules rotating from round
to round); each forward is set against the mean of the GEMM runs just before and after it, and the
tables give medians over the rounds. "%GEMMcpu" divides CPU times instead of wall times: it is
less sensitive to our threads being descheduled, which on an oversubscribed machine costs every
parallel op (each one ends in a barrier of the intra-op threads) a scheduler time slice.

Options:
  --profile    a torch.profiler table per dtype and module (self CPU time by op), then the same
               time grouped: GEMM, the bias copy addmm makes before its GEMM, attention (SDPA),
               LayerNorm, GELU/SiLU, elementwise mul/add (RoPE, LayerScale, residual), copies and
               dtype conversions, cat/slicing, weight reorders, the rest.
  --freeze     times torch.jit.freeze and torch.jit.optimize_for_inference of the working tree's
               module against the plain scripted one (load-time options the C++ server could
               apply; nothing of this is shipped), per dtype at --freeze-sizes x --freeze-batches,
               checks that the frozen modules still take other batch sizes and resolutions and how
               close their outputs stay (to the scripted module and to float32), and lists the ops
               the optimised graphs run.

Run from the repository root (about 5 minutes per dtype for the default comparison here):
  .venv/bin/python tests/bench/cpu_forward_profile.py --baseline-rev HEAD~1 --rounds 9
  .venv/bin/python tests/bench/cpu_forward_profile.py --profile --rounds 3
  .venv/bin/python tests/bench/cpu_forward_profile.py --skip-forward --freeze --rounds 5
  common: --variant vitb16 --size 224 --batch 8 --dtypes float32,bfloat16 --threads 2
          --depth N (fewer blocks, quick checks)
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from model.dinov3 import vit as current_vit  # noqa: E402
from model.dinov3.config import ArchConfig, preset  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GEMM_N = 2048


# ----------------------------------------------------------------------------------------------
# Modules

def load_vit_file(path: str, name: str):
    """Imports a vit.py from `path` as a module of its own (TorchScript names classes by module)."""
    spec = importlib.util.spec_from_file_location(f"vit_variant_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def vit_from_rev(rev: str, workdir: str):
    source = subprocess.run(["git", "show", f"{rev}:model/dinov3/vit.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = os.path.join(workdir, f"vit_{rev.replace('~', '_').replace('^', '_')}.py")
    with open(path, "w") as f:
        f.write(source)
    return load_vit_file(path, f"rev_{rev.replace('~', '_').replace('^', '_')}")


def reference_state(config: ArchConfig, seed: int = 0) -> Dict[str, torch.Tensor]:
    """The deterministic random weights of `python -m model.export --random`."""
    return current_vit.random_init(current_vit.DinoV3ViT(config), seed).state_dict()


def build_eager(vit_module, config: ArchConfig, state: Dict[str, torch.Tensor],
                dtype: torch.dtype) -> nn.Module:
    """As exporter.build_module: weights in `dtype`, the RoPE periods kept in float32."""
    model = vit_module.DinoV3ViT(config)
    model.load_state_dict(state, strict=True)
    model = model.to(dtype).eval()
    model.rope_embed.periods = state["rope_embed.periods"].to(torch.float32).clone()
    return model


def script_roundtrip(model: nn.Module) -> torch.jit.ScriptModule:
    """torch.jit.script, save and load back: what the server runs."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


# ----------------------------------------------------------------------------------------------
# FLOPs and timing

def forward_flops(model: nn.Module, config: ArchConfig, batch: int, height: int,
                  width: int) -> int:
    """Multiply-adds x2 of every Linear, the patch conv and the two attention matmuls."""
    patches = (height // config.patch_size) * (width // config.patch_size)
    tokens = 1 + config.num_registers + patches
    flops = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            flops += 2 * batch * tokens * module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            flops += 2 * batch * patches * module.in_channels * kernel * module.out_channels
    attention = 2 * (2 * batch * config.num_heads * tokens * tokens * config.head_dim)
    return flops + config.depth * attention


def time_call(fn: Callable[[], object], iters: int) -> Tuple[float, float, float]:
    """(wall seconds, process CPU seconds (user+sys, all threads), minor page faults) per call."""
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    wall = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return wall / iters, cpu / iters, (usage1.ru_minflt - usage0.ru_minflt) / iters


def gemm_fn(dtype: torch.dtype) -> Tuple[Callable[[], object], int]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=gen).to(dtype)
    b = torch.randn(GEMM_N, GEMM_N, generator=gen).to(dtype)
    return (lambda: torch.matmul(a, b)), 2 * GEMM_N ** 3


def median(values: List[float]) -> float:
    return statistics.median(values)


@dataclasses.dataclass
class Sample:
    """One timed call of a module and the GEMM measured right around it."""
    wall: float          # seconds per forward
    cpu: float           # process CPU seconds per forward (all threads, user + sys)
    faults: float        # minor page faults per forward
    gemm_wall: float     # seconds per GEMM, mean of the GEMM runs just before and just after
    gemm_cpu: float


def interleaved(gemm: Callable[[], object], fns: Dict[str, Callable[[], object]], rounds: int,
                warmup: int, gemm_iters: int = 3) -> Dict[str, List[Sample]]:
    """Per fn, one Sample per round. A round runs GEMM, fn a, GEMM, fn b, ..., GEMM (the order
    of the fns rotates from round to round), so that each forward is set against the GEMM rate
    of the seconds around it: the load of other processes on a shared machine changes fast."""
    for fn in [gemm, *fns.values()]:
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: Dict[str, List[Sample]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        before = time_call(gemm, gemm_iters)
        for name in order:
            wall, cpu, faults = time_call(fns[name], 1)
            after = time_call(gemm, gemm_iters)
            samples[name].append(Sample(wall, cpu, faults, (before[0] + after[0]) / 2,
                                        (before[1] + after[1]) / 2))
            before = after
    return samples


def percent_of_gemm(samples: List[Sample], flops: int, gemm_flops: int,
                    cpu: bool = False) -> List[float]:
    """Per sample: forward FLOP rate / GEMM FLOP rate, in %; by wall time, or by CPU time."""
    if cpu:
        return [100 * (flops / s.cpu) / (gemm_flops / s.gemm_cpu) for s in samples]
    return [100 * (flops / s.wall) / (gemm_flops / s.gemm_wall) for s in samples]


def token_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double().reshape(-1, a.shape[-1])
    b = b.double().reshape(-1, b.shape[-1])
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()


def compare_outputs(ref: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor]) -> Tuple[float, float]:
    """(max |diff|, min per-token cosine) over cls, registers and patch tokens."""
    diff, cos = 0.0, 1.0
    for key in ("cls", "registers", "patch_tokens"):
        if ref[key].shape != got[key].shape:
            return float("inf"), float("nan")
        diff = max(diff, (ref[key].float() - got[key].float()).abs().max().item())
        cos = min(cos, token_cosine(ref[key], got[key]))
    return diff, cos


# ----------------------------------------------------------------------------------------------
# Profile

CATEGORIES = [
    ("GEMM (Linear, matmul)", ("addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear",
                               "_linear_pointwise", "mkldnn_linear", "aten::baddbmm")),
    ("patch conv", ("convolution", "conv2d", "_convolution")),
    ("attention (SDPA / softmax)", ("scaled_dot_product", "softmax", "flash_attention")),
    ("LayerNorm", ("layer_norm",)),
    ("GELU / SiLU", ("gelu", "silu")),
    ("weight reorders", ("reorder", "to_mkldnn", "to_dense")),
    ("copies / dtype conversions", ("copy_", "_to_copy", "aten::to", "clone", "contiguous")),
    ("cat / slicing / flip / roll", ("aten::cat", "aten::slice", "aten::flip", "aten::roll",
                                     "aten::narrow", "aten::select", "aten::stack", "aten::index")),
    ("elementwise mul / add / neg (RoPE, LayerScale, residual)",
     ("aten::mul", "aten::add", "aten::neg", "aten::sub", "aten::addcmul", "aten::cos",
      "aten::sin", "aten::div")),
]


def categorise(name: str) -> str:
    for category, keys in CATEGORIES:
        if any(key in name for key in keys):
            return category
    return "other"


def profile_table(module: torch.jit.ScriptModule, pixels: torch.Tensor, rows: int,
                  iters: int) -> str:
    """The profiler's op table, then self time per category; an op called inside a GEMM op (the
    bias copy of addmm, a weight reorder) counts as GEMM, or as a weight reorder."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            module(pixels)
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages)
    grouped: Dict[str, float] = {}
    for e in prof.events():
        category = categorise(e.name)
        parent = e.cpu_parent
        while parent is not None and category not in ("weight reorders",):
            if categorise(parent.name).startswith("GEMM"):
                category = "GEMM (Linear, matmul)"
                if e.name in ("aten::copy_",):
                    category = "GEMM: bias copy before addmm"
                break
            parent = parent.cpu_parent
        grouped[category] = grouped.get(category, 0.0) + e.self_cpu_time_total
    lines = [averages.table(sort_by="self_cpu_time_total", row_limit=rows), "grouped self CPU time:"]
    for category, us in sorted(grouped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {category:58s} {us / 1e3 / iters:9.1f} ms  {100 * us / total:5.1f}%")
    lines.append(f"  {'total (per forward)':58s} {total / 1e3 / iters:9.1f} ms")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Main measurements

def run_forward(args, config: ArchConfig, variants: Dict[str, object],
                state: Dict[str, torch.Tensor]) -> None:
    pixels = torch.randn(args.batch, 3, args.size, args.size,
                         generator=torch.Generator().manual_seed(1))
    flops = None
    fp32_reference = None
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        modules = {}
        for name, vit_module in variants.items():
            eager = build_eager(vit_module, config, state, dtype)
            flops = forward_flops(eager, config, args.batch, args.size, args.size)
            modules[name] = script_roundtrip(eager)
        with torch.inference_mode():
            outputs = {name: m(pixels) for name, m in modules.items()}
            first = next(iter(outputs))
            if dtype_name == args.dtypes[0]:
                fp32_reference = outputs[first] if dtype == torch.float32 else None
            gemm, gemm_flops = gemm_fn(dtype)
            fns = {name: (lambda m=m: m(pixels)) for name, m in modules.items()}
            samples = interleaved(gemm, fns, args.rounds, args.warmup)
        print(f"\n{config.variant} {args.size}x{args.size} batch {args.batch} {dtype_name}, "
              f"{torch.get_num_threads()} threads, {args.rounds} rounds; forward "
              f"{flops / 1e9:.1f} GFLOP, GEMM {GEMM_N}^3")
        gemm_rates = [gemm_flops / s.gemm_wall / 1e9 for v in samples.values() for s in v]
        print(f"  GEMM rate around the forwards: median {median(gemm_rates):.1f} GFLOP/s "
              f"(min {min(gemm_rates):.1f}, max {max(gemm_rates):.1f})")
        print(f"  {'module':12s} {'ms/fwd':>8s} {'img/s':>6s} {'GFLOP/s':>7s} {'%GEMM':>6s} "
              f"{'(min-max)':>11s} {'%GEMMcpu':>8s} {'cpu ms':>7s} {'faults':>6s}  "
              f"vs {first}: max|d| min cos | vs float32 {first}: min cos, mean cos")
        for name in modules:
            ms = median([s.wall for s in samples[name]]) * 1e3
            pct = percent_of_gemm(samples[name], flops, gemm_flops)
            pct_cpu = percent_of_gemm(samples[name], flops, gemm_flops, cpu=True)
            diff, cos = compare_outputs(outputs[first], outputs[name])
            to_fp32 = ""
            if fp32_reference is not None:
                _, min_cos = compare_outputs(fp32_reference, outputs[name])
                mean_cos = statistics.fmean(
                    torch.nn.functional.cosine_similarity(
                        fp32_reference[k].double().reshape(-1, config.embed_dim),
                        outputs[name][k].double().reshape(-1, config.embed_dim), dim=-1).mean().item()
                    for k in ("cls", "registers", "patch_tokens"))
                to_fp32 = f" | {min_cos:.7f} {mean_cos:.7f}"
            print(f"  {name:12s} {ms:8.1f} {args.batch / (ms / 1e3):6.2f} "
                  f"{flops / (ms / 1e3) / 1e9:7.1f} {median(pct):5.1f}% "
                  f"({min(pct):4.0f}-{max(pct):4.0f}) {median(pct_cpu):7.1f}% "
                  f"{median([s.cpu for s in samples[name]]) * 1e3:7.0f} "
                  f"{median([s.faults for s in samples[name]]):6.0f}  {diff:.2e} {cos:.7f}{to_fp32}")
        if args.profile:
            with torch.inference_mode():
                for name, m in modules.items():
                    print(f"\n--- profile: {name} {dtype_name} ---")
                    print(profile_table(m, pixels, args.profile_rows, args.profile_iters))


def graph_ops(module: torch.jit.ScriptModule, pixels: torch.Tensor) -> Dict[str, int]:
    """Kinds of the ops the profiling executor last ran (inlined graph), with counts."""
    graph = torch.jit.last_executed_optimized_graph()
    counts: Dict[str, int] = {}
    for node in graph.nodes():
        kind = node.kind()
        if not kind.startswith("prim::") or "mkldnn" in kind or "Fused" in kind:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def run_freeze(args, config: ArchConfig, state: Dict[str, torch.Tensor]) -> None:
    """Times scripted vs torch.jit.freeze vs torch.jit.optimize_for_inference (working tree)."""
    reference = script_roundtrip(build_eager(current_vit, config, state, torch.float32))
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        eager = build_eager(current_vit, config, state, dtype)
        variants = {"scripted": script_roundtrip(eager)}
        variants["frozen"] = torch.jit.freeze(script_roundtrip(eager).eval())
        variants["opt4inf"] = torch.jit.optimize_for_inference(script_roundtrip(eager).eval())
        for size in args.freeze_sizes:
            for batch in args.freeze_batches:
                pixels = torch.randn(batch, 3, size, size,
                                     generator=torch.Generator().manual_seed(size + batch))
                flops = forward_flops(eager, config, batch, size, size)
                with torch.inference_mode():
                    gemm, gemm_flops = gemm_fn(dtype)
                    fns = {n: (lambda m=m: m(pixels)) for n, m in variants.items()}
                    samples = interleaved(gemm, fns, args.rounds, args.warmup)
                    outputs = {n: m(pixels) for n, m in variants.items()}
                    fp32_out = reference(pixels)
                gemm_rates = [gemm_flops / s.gemm_wall / 1e9 for v in samples.values() for s in v]
                print(f"\nfreeze: {config.variant} {size}x{size} batch {batch} {dtype_name}, "
                      f"{flops / 1e9:.1f} GFLOP: GEMM {median(gemm_rates):.1f} GFLOP/s")
                base_ms = median([s.wall for s in samples["scripted"]]) * 1e3
                for name in variants:
                    ms = median([s.wall for s in samples[name]]) * 1e3
                    pct = median(percent_of_gemm(samples[name], flops, gemm_flops))
                    pct_cpu = median(percent_of_gemm(samples[name], flops, gemm_flops, cpu=True))
                    ratios = [a.wall / b.wall for a, b in zip(samples["scripted"], samples[name])]
                    diff, cos = compare_outputs(outputs["scripted"], outputs[name])
                    _, cos32 = compare_outputs(fp32_out, outputs[name])
                    print(f"  {name:9s} {ms:8.1f} ms {batch / (ms / 1e3):7.2f} img/s "
                          f"{pct:5.1f}% GEMM ({pct_cpu:5.1f}% by CPU time)  speed-up "
                          f"x{base_ms / ms:.3f} (per-round median x{median(ratios):.3f})  "
                          f"vs scripted max|d| {diff:.2e} min cos {cos:.7f}; "
                          f"min cos to float32 {cos32:.7f}")
        # Do the load-time-optimised modules still accept other shapes after running these?
        with torch.inference_mode():
            for shape in [(3, 3, 160, 320), (2, 3, 64, 48), (5, 3, 224, 224)]:
                pixels = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
                ref = variants["scripted"](pixels)
                for name in ("frozen", "opt4inf"):
                    try:
                        diff, cos = compare_outputs(ref, variants[name](pixels))
                        verdict = f"ok, max|d| {diff:.2e} min cos {cos:.7f}"
                    except Exception as e:  # noqa: BLE001 - report whatever breaks
                        verdict = f"FAILS: {str(e).splitlines()[0][:120]}"
                    print(f"  other shape {list(shape)} {dtype_name} {name}: {verdict}")
            for name in ("frozen", "opt4inf"):
                variants[name](pixels)
                print(f"  {dtype_name} {name} ops run: {graph_ops(variants[name], pixels)}")
        params = {n: sum(1 for _ in m.parameters()) for n, m in variants.items()}
        print(f"  parameters left (the server's dtype conversion needs them): {params}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="vitb16")
    parser.add_argument("--depth", type=int, help="fewer blocks (quick checks)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--baseline-rev", help="also time model/dinov3/vit.py of this git revision")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FILE",
                        help="also time this vit.py (repeatable)")
    parser.add_argument("--no-current", action="store_true", help="skip the working tree's vit.py")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--profile-iters", type=int, default=3, help="forwards per profile")
    parser.add_argument("--freeze", action="store_true")
    parser.add_argument("--freeze-sizes", default="224,448")
    parser.add_argument("--freeze-batches", default="1,8")
    parser.add_argument("--skip-forward", action="store_true", help="only --freeze")
    args = parser.parse_args()
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.freeze_sizes = [int(v) for v in args.freeze_sizes.split(",")]
    args.freeze_batches = [int(v) for v in args.freeze_batches.split(",")]
    torch.set_num_threads(args.threads)
    config = preset(args.variant, args.depth)
    state = reference_state(config)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"oneDNN ISA cap {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as workdir:
        variants: Dict[str, object] = {}
        if args.baseline_rev:
            variants[f"rev:{args.baseline_rev}"] = vit_from_rev(args.baseline_rev, workdir)
        for spec in args.extra:
            name, path = spec.split("=", 1)
            variants[name] = load_vit_file(path, name)
        if not args.no_current:
            variants["worktree"] = current_vit
        if not args.skip_forward:
            run_forward(args, config, variants, state)
        if args.freeze:
            run_freeze(args, config, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
