r"""The path a user would otherwise take: transformers' DINOv3ViTModel, timed like the ceiling.

Builds the Hugging Face model from the weights of one of our exports (the inverse of
model.dinov3.checkpoints.hf_to_internal), in the export's dtype, checks that it computes our CLS
(cosine on one image), then times its forward at each batch size: eager, or torch.compile'd
(inductor, dynamic=False: one specialised graph per batch size, compiled during the warm-up).
Like dinov3-model-bench: the same intra-op threads, set on a thread of its own that does all
the computing (not Python's main thread, whose glibc heap hands freed activations back to the
kernel after each forward; and one OpenMP pool only), inference_mode, the input normalised
random RGB8 images, built untimed.

    .venv/bin/python tests/bench/hf_forward.py --model M.pt --mode eager|compile \
        [--threads 2] [--batches 1,8] [--image-size 224] [--min-time 2] --json OUT.json

Writes {"mode", "dtype", "threads", "batches": {B: {"ms", "images_per_second",
"iterations"}}, "compile_seconds", "parity_cosine", "transformers", "torch", "error"} and exits
0, also when the forward or torch.compile failed: then "error" holds its first lines (the
report shows them), and the batches measured before it are kept.
"""
import argparse
import json
import os
import re
import sys
import threading
import time
import traceback

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from model.dinov3.checkpoints import hf_name  # noqa: E402
from model.dinov3.config import ArchConfig  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_export(path):
    """(TorchScript module, metadata dict) of one of our exports."""
    extra = {"dinov3.json": ""}
    module = torch.jit.load(path, map_location="cpu", _extra_files=extra).eval()
    return module, json.loads(extra["dinov3.json"])


def hf_state_dict(state, config):
    """Our (DinoV3ViT) state dict under the Hugging Face DINOv3ViTModel's names: the fused qkv
    split into q/k/v (the K bias, zero in DINOv3, dropped: HF has none), RoPE periods left out
    (HF computes them)."""
    out = {}
    for key, value in state.items():
        if key == "rope_embed.periods":
            continue
        fused = re.match(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if fused:
            index, kind = fused.groups()
            for name, part in zip("qkv", value.chunk(3)):
                if not (kind == "bias" and name == "k"):
                    out[f"model.layer.{index}.attention.{name}_proj.{kind}"] = part
            continue
        name = hf_name(key, config.ffn)
        out[f"model.{name}" if name.startswith("layer.") else name] = value
    return out


def hf_model(module, metadata):
    """DINOv3ViTModel with the export's weights, in the export's dtype, eval mode."""
    from transformers import DINOv3ViTModel
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "model"))
    from hf_reference import hf_config_for
    config = ArchConfig(**metadata["arch"])
    model = DINOv3ViTModel(hf_config_for(config))
    state = hf_state_dict(module.state_dict(), config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"embeddings.mask_token"}:
        raise RuntimeError(f"weights do not map onto DINOv3ViTModel: missing {missing}, "
                           f"unexpected {unexpected}")
    return model.to(DTYPES[metadata["dtype"]]).eval()


def server_like_input(metadata, batch, size, dtype):
    """Normalised random RGB8 images (what dinov3-bench sends), [batch, 3, size, size]."""
    gen = torch.Generator().manual_seed(batch)
    pixels = torch.randint(0, 256, (batch, 3, size, size), generator=gen).float() / 255.0
    mean = torch.tensor(metadata["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(metadata["image_std"]).view(1, 3, 1, 1)
    return ((pixels - mean) / std).to(dtype).contiguous()


def parity_cosine(module, model, metadata, size):
    """Cosine of the HF model's CLS to our export's, one image, in the export's dtype."""
    x = server_like_input(metadata, 1, size, DTYPES[metadata["dtype"]])
    with torch.inference_mode():
        ours = module(x)["cls"].double().flatten()
        theirs = model(pixel_values=x).last_hidden_state[:, 0].double().flatten()
    return float(ours @ theirs / (ours.norm() * theirs.norm()).clamp_min(1e-30))


def time_forward(forward, x, min_time, min_iterations=3):
    """Mean wall time (ms) of forward(x) over at least min_time seconds, and the count."""
    iterations, began = 0, time.perf_counter()
    while iterations < min_iterations or time.perf_counter() - began < min_time:
        forward(x)
        iterations += 1
    return (time.perf_counter() - began) * 1e3 / iterations, iterations


def measure(args, module, metadata, result):
    """Everything that computes, on the forward thread only (one OpenMP pool, as in the server
    and the ceiling: a second pool on another thread changes how libgomp waits): the model, its
    parity, warm-up and timing. Fills `result` as it goes."""
    torch.set_num_threads(args.threads)
    model = hf_model(module, metadata)
    result["parity_cosine"] = parity_cosine(module, model, metadata, args.image_size)
    dtype = DTYPES[metadata["dtype"]]
    forward = model
    if args.mode == "compile":
        forward = torch.compile(model, dynamic=False)
    with torch.inference_mode():
        for batch in args.batches:
            x = server_like_input(metadata, batch, args.image_size, dtype)
            began = time.perf_counter()
            forward(pixel_values=x)  # compiles this shape in compile mode
            if args.mode == "compile":
                result["compile_seconds"] = (result.get("compile_seconds") or 0.0) + \
                    time.perf_counter() - began
            forward(pixel_values=x)
            ms, iterations = time_forward(lambda t: forward(pixel_values=t), x, args.min_time)
            result["batches"][batch] = {"ms": ms, "images_per_second": batch * 1e3 / ms,
                                        "iterations": iterations}


def first_lines(error, n=3):
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return " | ".join(line.strip() for line in text.splitlines()[:n] if line.strip())[:600]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="one of our exports (python -m model.export)")
    p.add_argument("--mode", choices=("eager", "compile"), default="eager")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batches", default="1,8")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds timed per batch size")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b]
    return args


def main(argv=None):
    args = parse_args(argv)
    import transformers
    module, metadata = load_export(args.model)
    result = {"mode": args.mode, "dtype": metadata["dtype"], "threads": args.threads,
              "image_size": args.image_size, "batches": {}, "compile_seconds": None,
              "parity_cosine": None, "transformers": transformers.__version__,
              "torch": torch.__version__, "error": None}
    try:
        failure = []

        def run():
            try:
                measure(args, module, metadata, result)
            except Exception as e:  # noqa: BLE001 - reported in the row, not hidden
                failure.append(e)

        thread = threading.Thread(target=run, name="forward")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
    except Exception as e:  # noqa: BLE001
        result["error"] = first_lines(e)
        print(f"hf_forward ({args.mode}): {result['error']}", file=sys.stderr)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
