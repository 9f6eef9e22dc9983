"""BENCHMARKS.md tables from dinov3-preprocess-bench's JSON (--benchmark_out, format json).

  build/bin/dinov3-preprocess-bench --benchmark_min_time=1 \\
      --benchmark_out=tests/bench/results/preprocess/preprocess.json --benchmark_out_format=json
  .venv/bin/python tests/bench/preprocess_report.py tests/bench/results/preprocess/preprocess.json
"""
import json
import sys

STAGES = [("Header", "header"), ("ImdecodeNoOrientation", "imdecode"),
          ("BgrToRgb", "BGR→RGB"), ("Decode", "decode (server: all of it)"),
          ("ToFloat", "to float (whole image)"), ("Resize", "resize (whole image)"),
          ("Normalize", "normalise"), ("ModelInput", "model input (server: in strips)"),
          ("ImdecodeReduced/2", "imdecode 1/2"), ("ImdecodeReduced/4", "imdecode 1/4"),
          ("ImdecodeReduced/8", "imdecode 1/8")]
PATHS = [("CpuWorkerExact", "CPU worker, exact"), ("CpuWorkerFast", "CPU worker, fast"),
         ("CudaHostExact", "CUDA worker's host share, exact"),
         ("CudaHostFast", "CUDA worker's host share, fast")]


def load(path):
    """{(stage, class): benchmark entry}."""
    with open(path) as f:
        data = json.load(f)
    out = {}
    for entry in data["benchmarks"]:
        name = entry["name"].removesuffix("/real_time")
        stage, _, size_class = name.rpartition("/")
        out[(stage, size_class)] = entry
    return data["context"], out


def ms(entry):
    return f"{entry['real_time']:.1f}" if entry else "–"


def main():
    context, results = load(sys.argv[1])
    classes = list(dict.fromkeys(c for _, c in results))
    print(f"{context.get('host_name', '')} {context.get('num_cpus')} CPUs, "
          f"{context.get('date', '')}; ms per image, one thread\n")
    print("| class | " + " | ".join(label for _, label in STAGES) + " |")
    print("|---" * (len(STAGES) + 1) + "|")
    for size_class in classes:
        cells = [ms(results.get((stage, size_class))) for stage, _ in STAGES]
        print(f"| {size_class} | " + " | ".join(cells) + " |")
    print("\n| class | " + " | ".join(label for _, label in PATHS) + " |")
    print("|---" * (len(PATHS) + 1) + "|")
    for size_class in classes:
        cells = []
        for stage, _ in PATHS:
            entry = results.get((stage, size_class))
            reduction = int(entry["reduction"]) if entry else 1
            cells.append(ms(entry) + (f" (1/{reduction})" if reduction > 1 else ""))
        print(f"| {size_class} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
