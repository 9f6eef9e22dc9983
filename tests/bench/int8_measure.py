r"""Dynamic int8 for the Linear layers of the DINOv3 module: speed and fidelity against float32 and
bfloat16, on this CPU and with oneDNN capped to older ISAs (a measurement tool, not a test).

What it measures, for each variant (default vits16, vitb16) at 224x224:

* modules, all TorchScript (scripted, saved and loaded back, as the server would load them):
  float32, bfloat16 (the exporter's cast: parameters bfloat16, RoPE periods float32), and
  float32 with every nn.Linear replaced by torch.ao.quantization.quantize_dynamic (int8 weights
  per tensor, activations quantised per call) under each quantized engine (--engines, default
  x86 and onednn; torch.backends.quantized.engine is set while quantizing, loading and running,
  because the packed weights are made, and remade when an archive is loaded, for the engine in
  effect). Scripting the quantized module works; tracing is tried too and reported (a trace
  bakes in the resolution: the RoPE tables and reshapes are computed from H and W);
* speed: ms per forward at each batch size (--batches, default 1 and 8), the modules
  interleaved round by round (the order rotating) on the same threads, medians over the rounds,
  and the speed-up against float32 and against bfloat16 of the same run;
* fidelity on real photographs (/usr/share/backgrounds/mate/nature/*.jpg, 12 photos, RGB,
  x/255, resized to 224x224 bilinear with antialias, normalised with mean (0.485, 0.456, 0.406),
  std (0.229, 0.224, 0.225)): per-token cosine to the float32 module, min and mean, for the CLS
  token, the pooled embedding (mean of the patch tokens) and every patch token, with the photos
  run one at a time and in batches of 8 (dynamic quantisation picks one activation scale per
  call, so the batch can change the result);
* each --isa setting runs in its own process with ONEDNN_MAX_CPU_ISA set (native = unset).
  AVX512_CORE hides avx512_bf16 and VNNI from oneDNN (a Skylake-class CPU without native
  bfloat16); AVX512_CORE_VNNI hides avx512_bf16 only (Cascade Lake / Ice Lake class). The cap
  applies to oneDNN (float32/bfloat16 GEMMs, the onednn int8 engine), not to FBGEMM: the x86
  engine's int8 GEMMs still use VNNI here.

The weights are the deterministic random init of model/dinov3/vit.py (random_init, seed 0; no
real weights here), so the fidelity numbers show the numerical effect of int8 on a network of
the real shape, not the effect on trained features.

Run from the repository root (about 15 minutes on this 2-core machine with the defaults):
  .venv/bin/python tests/bench/int8_measure.py
  options: --variants vits16,vitb16 --batches 1,8 --engines x86,onednn
           --isa native,AVX512_CORE_VNNI,AVX512_CORE --rounds 5 --warmup 2 --threads 2
           --per-channel (also int8 with per-channel weight scales)
           --skip-fidelity --depth N (fewer blocks, quick checks)
"""
from __future__ import annotations

import argparse
import copy
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from model.dinov3.config import LVD_MEAN, LVD_STD, ArchConfig, preset  # noqa: E402
from model.dinov3.exporter import build_module  # noqa: E402
from model.dinov3.vit import DinoV3ViT, random_init  # noqa: E402

PHOTOS = "/usr/share/backgrounds/mate/nature/*.jpg"
SIZE = 224


def load_photos() -> torch.Tensor:
    """[12, 3, 224, 224] float32, preprocessed as the Hugging Face image processor does."""
    from PIL import Image
    images = []
    for path in sorted(glob.glob(PHOTOS)):
        with Image.open(path) as img:
            rgb = torch.frombuffer(bytearray(img.convert("RGB").tobytes()), dtype=torch.uint8)
            rgb = rgb.reshape(img.height, img.width, 3)
        pixels = rgb.permute(2, 0, 1)[None].float() / 255.0
        pixels = F.interpolate(pixels, size=(SIZE, SIZE), mode="bilinear", antialias=True,
                               align_corners=False)
        images.append(pixels[0])
    if not images:
        raise SystemExit(f"no photos at {PHOTOS}")
    mean = torch.tensor(LVD_MEAN).view(3, 1, 1)
    std = torch.tensor(LVD_STD).view(3, 1, 1)
    return (torch.stack(images) - mean) / std


def roundtrip(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def archive_mib(scripted: torch.jit.ScriptModule) -> float:
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return len(buffer.getvalue()) / 2 ** 20


class Runner:
    """A loaded module and the quantized engine it must run under (None: any)."""

    def __init__(self, module: torch.jit.ScriptModule, engine: str | None) -> None:
        self.module = module
        self.engine = engine

    def __call__(self, pixels: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.engine is not None:
            torch.backends.quantized.engine = self.engine
        return self.module(pixels)


def build_runners(config: ArchConfig, engines: List[str], per_channel: bool,
                  notes: List[str]) -> Dict[str, Runner]:
    state = random_init(DinoV3ViT(config), 0).state_dict()
    fp32 = build_module(config, state, "float32")
    runners = {
        "float32": Runner(roundtrip(torch.jit.script(fp32)), None),
        "bfloat16": Runner(roundtrip(torch.jit.script(build_module(config, state, "bfloat16"))),
                           None),
    }
    sizes = {name: archive_mib(r.module) for name, r in runners.items()}
    schemes = {"int8": {nn.Linear}}
    if per_channel:  # int8 weights with one scale per output channel instead of per tensor
        schemes["int8pc"] = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    for scheme, spec in schemes.items():
        for engine in engines:
            torch.backends.quantized.engine = engine
            quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), spec,
                                                               dtype=torch.qint8)
            scripted = torch.jit.script(quantized)
            name = f"{scheme}-{engine}"
            sizes[name] = archive_mib(scripted)
            runners[name] = Runner(roundtrip(scripted), engine)
            if engine == engines[0] and scheme == "int8":
                notes.append(try_trace(quantized, runners[name], engine))
    notes.append(f"{config.variant} archive MiB: "
                 + ", ".join(f"{n} {mib:.1f}" for n, mib in sizes.items()))
    return runners


def try_trace(quantized: nn.Module, scripted: Runner, engine: str) -> str:
    """Whether torch.jit.trace works on the quantized module and generalises to another size."""
    example = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    other = torch.randn(1, 3, 160, 320, generator=torch.Generator().manual_seed(6))
    try:
        with torch.no_grad():
            traced = torch.jit.trace(quantized, example, check_trace=False, strict=False)
    except Exception as e:  # noqa: BLE001 - report whatever breaks
        return f"trace ({engine}): fails: {str(e).strip().splitlines()[-1][:160]}"
    with torch.inference_mode():
        same = (traced(example)["cls"] - scripted(example)["cls"]).abs().max().item()
        try:
            got = traced(other)["patch_tokens"]
            want = scripted(other)["patch_tokens"]
            if got.shape != want.shape:
                verdict = f"wrong shape {list(got.shape)} at 160x320"
            else:
                verdict = f"max|d| {(got - want).abs().max().item():.2e} at 160x320"
        except Exception as e:  # noqa: BLE001
            verdict = f"fails at 160x320: {str(e).strip().splitlines()[-1][:120]}"
    return (f"trace ({engine}): works at the traced size (max|d| to scripted {same:.2e}); "
            f"other size: {verdict}")


def time_rounds(fns: Dict[str, Callable[[], object]], rounds: int, warmup: int) -> Dict[str, float]:
    """Median seconds per call; rounds run every fn once, in an order rotating round to round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def cosines(ref: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor]) -> Dict[str, List[float]]:
    def cos(a: torch.Tensor, b: torch.Tensor) -> List[float]:
        return F.cosine_similarity(a.double(), b.double(), dim=-1).reshape(-1).tolist()
    return {
        "cls": cos(ref["cls"], got["cls"]),
        "pooled": cos(ref["patch_tokens"].mean(1), got["patch_tokens"].float().mean(1)),
        "patch": cos(ref["patch_tokens"], got["patch_tokens"]),
    }


def fidelity(runners: Dict[str, Runner], photos: torch.Tensor, batch: int) -> Dict[str, dict]:
    """Per module: min and mean cosine to float32 for cls, pooled and patch tokens."""
    collected: Dict[str, Dict[str, List[float]]] = {}
    with torch.inference_mode():
        for start in range(0, photos.size(0), batch):
            chunk = photos[start:start + batch]
            ref = runners["float32"](chunk)
            for name, runner in runners.items():
                if name == "float32":
                    continue
                for key, values in cosines(ref, runner(chunk)).items():
                    collected.setdefault(name, {}).setdefault(key, []).extend(values)
    return {name: {key: {"min": min(v), "mean": statistics.fmean(v)} for key, v in keys.items()}
            for name, keys in collected.items()}


def child(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    result: dict = {"isa": args.isa, "threads": torch.get_num_threads(), "speed": {},
                    "fidelity": {}, "notes": []}
    photos = None if args.skip_fidelity else load_photos()
    for variant in args.variants:
        config = preset(variant, args.depth)
        runners = build_runners(config, args.engines, args.per_channel, result["notes"])
        for batch in args.batches:
            pixels = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
            with torch.inference_mode():
                fns = {name: (lambda r=r: r(pixels)) for name, r in runners.items()}
                result["speed"][f"{variant} b{batch}"] = time_rounds(fns, args.rounds, args.warmup)
            if photos is not None:
                result["fidelity"][f"{variant} b{batch}"] = fidelity(runners, photos, batch)
            print(f"  [{args.isa}] {variant} batch {batch} done", file=sys.stderr, flush=True)
    return result


def print_tables(results: List[dict]) -> None:
    for res in results:
        print(f"\n=== ONEDNN_MAX_CPU_ISA={res['isa']} ({res['threads']} threads) ===")
        for note in res["notes"]:
            print(f"  {note}")
        print(f"  {'case':12s} {'module':15s} {'ms/fwd':>9s} {'img/s':>8s} "
              f"{'vs fp32':>8s} {'vs bf16':>8s}")
        for case, times in res["speed"].items():
            batch = int(case.split(" b")[1])
            for name, seconds in times.items():
                print(f"  {case:12s} {name:15s} {seconds * 1e3:9.1f} {batch / seconds:8.2f} "
                      f"{times['float32'] / seconds:7.2f}x {times['bfloat16'] / seconds:7.2f}x")
        if res["fidelity"]:
            print(f"\n  cosine to float32 on {len(glob.glob(PHOTOS))} photos: min / mean")
            print(f"  {'case':12s} {'module':15s} {'CLS':>21s} {'pooled':>21s} {'patch tokens':>21s}")
            for case, modules in res["fidelity"].items():
                for name, keys in modules.items():
                    cells = " ".join(f"{keys[k]['min']:.6f} / {keys[k]['mean']:.6f}"
                                     for k in ("cls", "pooled", "patch"))
                    print(f"  {case:12s} {name:15s} {cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="vits16,vitb16")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--engines", default="x86,onednn")
    parser.add_argument("--isa", default="native,AVX512_CORE_VNNI,AVX512_CORE",
                        help="comma list of ONEDNN_MAX_CPU_ISA values; native = unset")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--depth", type=int, help="fewer blocks (quick checks)")
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--per-channel", action="store_true",
                        help="also int8 with per-channel weight scales (per_channel_dynamic_qconfig)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.variants = args.variants.split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.engines = args.engines.split(",")
    if args.child:
        print(json.dumps(child(args)))
        return 0
    print(f"torch {torch.__version__}, quantized engines {torch.backends.quantized.supported_engines}")
    for isa in args.isa.split(","):
        env = dict(os.environ)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if isa != "native":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        argv = [sys.executable, os.path.abspath(__file__), "--child", "--isa", isa,
                "--variants", ",".join(args.variants),
                "--batches", ",".join(str(b) for b in args.batches),
                "--engines", ",".join(args.engines), "--rounds", str(args.rounds),
                "--warmup", str(args.warmup), "--threads", str(args.threads)]
        if args.depth:
            argv += ["--depth", str(args.depth)]
        if args.skip_fidelity:
            argv.append("--skip-fidelity")
        if args.per_channel:
            argv.append("--per-channel")
        done = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"ISA {isa}: child failed with status {done.returncode}", file=sys.stderr)
            return 1
        print_tables([json.loads(done.stdout.strip().splitlines()[-1])])
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
