#!/usr/bin/env bash
# The benchmark suite of issue 7 in one command: the bare-model ceiling (with the machine's
# GEMM rate), dinov3-server, the peer servers (plain Python gRPC, LitServe) and transformers'
# DINOv3ViTModel (eager, torch.compile) back to back on the same machine, then BENCHMARKS.md
# (tables + PNG plots under tests/bench/results/, raw JSON beside them).
#
#   scripts/bench.sh [--smoke] [--dtype-comparison] [--device cpu|cuda:0] [--out FILE]
#                    [--skip-peers] [--no-build] [-- EXTRA run_bench.py ARGS, e.g. --cases vits16-224]
#
#   --smoke       a very short run for CI (depth-1 models, concurrency 1,2, 1 s windows); it
#                 needs --out and never writes BENCHMARKS.md; its plots and JSON go to
#                 bench-results/ next to --out.
#   --dtype-comparison  only the CPU dtype comparison: vits16 and vitb16 at 224x224 in float32,
#                 bfloat16 and int8 (GEMM rate, ceiling, our server, transformers eager and
#                 compiled; no peers), about 13-35 min on 2 cores; rewrites only the section between
#                 `<!-- generated:cpu-dtype:begin/end -->` (a full CPU run writes it too).
#   --device      cpu (default) or cuda[:N]; on CUDA the models are exported in float16 and a
#                 vitl16 case is added (pick cases with: -- --cases vits16-224,vitl16-224).
#   --out         the report (default BENCHMARKS.md); only the text between its
#                 `<!-- generated:...:begin/end -->` markers is replaced, the rest (## Reading) kept.
#   --skip-peers  only the ceiling, our server and the transformers rows.
#   --no-build    use the binaries already in build/bin (the smoke test does: CI built them).
#
# Steps: scripts/setup.sh only when .venv/ is missing (run it yourself after changing
# requirements.txt); scripts/build.sh for the four binaries; the peers' pip requirements
# (tests/bench/peers/requirements.txt, into .venv, re-installed only when the file changes);
# then tests/bench/run_bench.py, which exports the random (UNTRAINED) models it needs once into
# models/bench/ (cached; `-- --model vitb16=FILE.pt` uses a file of yours instead).
# A full CPU run takes about 60-75 minutes on 2 cores (the bfloat16 cases and torch.compile add
# about 30 to the 30-40 of the float32 cases with peers).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

export BENCH_COMMAND="scripts/bench.sh${*:+ $*}"  # shown in the report
smoke=0 dtypes=0 device=cpu out="" skip_peers=0 build=1 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --dtype-comparison) dtypes=1 ;;
    --device) device=$2; shift ;;
    --device=*) device=${1#*=} ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#*=} ;;
    --skip-peers) skip_peers=1 ;;
    --no-build) build=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$smoke" = 1 ] && [ -z "$out" ]; then
  echo "bench: --smoke needs --out FILE (a smoke run never writes BENCHMARKS.md)" >&2
  exit 2
fi
case "$out" in ""|/*) ;; *) out=$caller/$out ;; esac  # relative to where it was called
out=${out:-BENCHMARKS.md}
if [ "$smoke" = 1 ] && [ "$(realpath -m "$out")" = "$(realpath -m BENCHMARKS.md)" ]; then
  echo "bench: --smoke must not overwrite BENCHMARKS.md" >&2
  exit 2
fi

[ -x .venv/bin/python ] || scripts/setup.sh
if [ "$build" = 1 ]; then
  scripts/build.sh --target dinov3-server dinov3-bench dinov3-model-bench \
    dinov3-serialization-bench
fi

requirements=tests/bench/peers/requirements.txt
stamp=.venv/.bench-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench: installing the peers' Python packages ($requirements)"
  .venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

args=(--device "$device" --out "$out")
[ "$smoke" = 1 ] && args+=(--smoke)
[ "$dtypes" = 1 ] && args+=(--dtype-comparison)
[ "$skip_peers" = 1 ] && args+=(--skip-peers)
exec .venv/bin/python tests/bench/run_bench.py "${args[@]}" "${extra[@]}"
