#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step functions are called as "step_$name"
# The GPU checks, run on a lent GPU machine from prebuilt binaries: the target has its own torch
# (same version as our build's LibTorch) but none of our Debian dev libraries and no network.
# Run HERE first, as a dry run on the CPU, after scripts/gpu-bundle.sh.
#
#   scripts/gpu-check-bundle.sh [--device=cuda:0]        on the GPU machine, from the repo root
#   DEVICE=cpu PYTHON=.venv/bin/python scripts/gpu-check-bundle.sh      dry run here
#
# Input: .gpu-bundle/dinov3-gpu-bundle.tar.xz (BUNDLE=...), made by scripts/gpu-bundle.sh and
# carried to the machine. It is unpacked to /tmp/b (UNPACK=...); our binaries run with
# LD_LIBRARY_PATH=/tmp/b/lib:<the machine's torch>/lib. Python (PYTHON, default python3) runs
# with the machine's own libraries (our Debian libraries would shadow its OpenSSL, zlib, ...).
# Steps, each in its own process with `set -euo pipefail` and its own timeout; a failed step
# does not stop the next ones:
#   unpack, env (nvidia-smi, torch, ldd of the bundle), export (random vits16 float32/float16/
#   bfloat16, vitb16 float16 to /tmp/m), model_check (throughput at two batch sizes),
#   fixtures + runtime_test + engine_test (engine tests on DEVICE), integration (CPU server),
#   server_start / embed_parity / metrics / server_stop (vits16 float32 on DEVICE: health,
#   embed PNGs, cosine against torch on the CPU, Prometheus scrape, SIGTERM -> exit 0),
#   server_fp16, server_bf16 (the same round for the half-precision exports).
# Output under $OUT (default /tmp/out): gpu-check.log (everything), summary.txt (PASS / FAIL /
# SKIP per step with seconds, appended as steps end), throughput.txt, ldd.txt, server-*.log,
# metrics.txt, parity-*.txt. BUDGET_S (default 480) caps the whole run: step timeouts are cut
# to what is left and steps are skipped once it is spent. --only=step,step runs a subset.
# Exit status: 0 when no step failed.
set -uo pipefail

SELF=$(readlink -f "$0")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

step_names=(unpack env export model_check fixtures runtime_test engine_test integration
            server_start embed_parity metrics server_stop server_fp16 server_bf16)
declare -A step_timeout=([unpack]=90 [env]=90 [export]=240 [model_check]=300 [fixtures]=120
                         [runtime_test]=120 [engine_test]=240 [integration]=240
                         [server_start]=180 [embed_parity]=180 [metrics]=30 [server_stop]=60
                         [server_fp16]=240 [server_bf16]=240)
declare -A step_about=(
  [unpack]="unpack the bundle to \$UNPACK"
  [env]="nvidia-smi, python/torch, ldd of the bundled binaries"
  [export]="random exports: vits16 float32/float16/bfloat16, vitb16 float16"
  [model_check]="dinov3-model-check throughput on \$DEVICE"
  [fixtures]="model_runtime fixtures (make_fixtures.py)"
  [runtime_test]="model_runtime_test (CPU, fixtures)"
  [engine_test]="engine_test on \$DEVICE"
  [integration]="server_integration_test (CPU server, bundled binaries)"
  [server_start]="dinov3-server vits16 float32 on \$DEVICE until SERVING"
  [embed_parity]="dinov3-client embed vs torch on CPU (cosine >= 0.9999)"
  [metrics]="scrape /metrics (dinov3_device_memory*, dinov3_batch_size*)"
  [server_stop]="SIGTERM the server, exit status 0"
  [server_fp16]="vits16 float16 served on \$DEVICE vs float32 reference (cosine >= 0.999)"
  [server_bf16]="vits16 bfloat16 served on \$DEVICE vs float32 reference (cosine >= 0.99)")

# ---------------------------------------------------------------------------------- helpers
banner() { echo; echo "======== $* ========"; }
note() { echo "[gpu-check] $*"; }
is_cuda() { [[ "$DEVICE" == cuda* ]]; }
# Our binaries, with the bundled libraries and the machine's torch.
bin() { local b=$1; shift; LD_LIBRARY_PATH="$BIN_LD_PATH" "$UNPACK/bin/$b" "$@"; }
py() { (cd "$UNPACK" && PYTHONPATH="$UNPACK" "$PYTHON" "$@"); }
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
server_has_flag() {  # (no `| grep -q`: with pipefail, the writer's SIGPIPE fails the test)
  local help
  help=$(bin dinov3-server --helpfull 2>&1 || true)
  grep -q -- "--$1 " <<<"$help"
}
port_is_free() {
  "$PYTHON" -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
SKIP=77   # a step that exits with this was skipped, not failed

# ------------------------------------------------------------------------------------ steps
step_unpack() {
  [ -f "$BUNDLE" ] || { echo "bundle $BUNDLE not found (run scripts/gpu-bundle.sh here)"; return 1; }
  ls -l "$BUNDLE"
  rm -rf "$UNPACK"
  mkdir -p "$UNPACK"
  if command -v xz >/dev/null; then
    tar -C "$UNPACK" -xJf "$BUNDLE"
  else  # a bare image may lack xz-utils; Python's lzma does the same
    echo "no xz here: unpacking with Python's tarfile"
    "$PYTHON" -c 'import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    t.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))' \
      "$BUNDLE" "$UNPACK"
  fi
  sed -n '1,3p' "$UNPACK/MANIFEST"
  echo "bin: $(ls "$UNPACK/bin" | tr '\n' ' ')"
  echo "lib: $(ls "$UNPACK/lib" | wc -l) libraries"
}

step_env() {
  local failed=0
  if is_cuda; then
    nvidia-smi || failed=1
  else
    note "DEVICE=$DEVICE: nvidia-smi skipped"
  fi
  echo "os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}"); $(ldd --version | head -1); cores: $(nproc)"
  echo "python: $PYTHON -> $(command -v "$PYTHON") ($("$PYTHON" --version 2>&1))"
  echo "torch lib dir: $TORCH_LIB"
  "$PYTHON" - "$DEVICE" <<'EOF' || failed=1
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__} cuda {torch.version.cuda} cudnn {torch.backends.cudnn.version()}"
      f" cuda available {torch.cuda.is_available()} devices {torch.cuda.device_count()}")
for name in ("numpy", "transformers", "safetensors", "grpc", "google.protobuf", "pytest", "PIL"):
    try:
        module = __import__(name, fromlist=["__version__"])
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as e:
        print(f"  {name}: not importable ({type(e).__name__})")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("torch says CUDA is not available")
    print("  device:", torch.cuda.get_device_name(torch.device(device)),
          "capability", torch.cuda.get_device_capability(torch.device(device)))
EOF
  local built
  built=$(sed -n 's/^torch (build): //p' "$UNPACK/MANIFEST")
  local here
  here=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "?")
  if [ "$built" != "$here" ]; then
    echo "WARNING: binaries built against torch $built, this machine has torch $here"
  else
    echo "torch versions match: $here"
  fi

  # Everything but torch's own libraries must come from the bundle: ldd with the bundle alone
  # (torch's libs may be unresolved then) and with the full path (nothing may be unresolved).
  local base='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+\.so|libgcc_s\.so|libresolv\.so|libutil\.so|libmvec\.so)'
  local torchy='^(libtorch|libc10|libcaffe2|libgomp|libcuda\.|libcudart|libcublas|libcudnn|libcufft|libcufile|libcupti|libcurand|libcusparse|libcusolver|libnvJitLink|libnvrtc|libnvshmem|libnccl|libnvToolsExt|libnvperf)'
  echo "ldd with LD_LIBRARY_PATH=$UNPACK/lib only:"
  local b out bad missing
  for b in "$UNPACK"/bin/*; do
    out=$(LD_LIBRARY_PATH="$UNPACK/lib" ldd "$b" 2>&1)
    bad=$(awk '/=>/ && $3 != "not" {print $1 " => " $3}' <<<"$out" | grep -Ev "$base|$torchy" |
          grep -Ev "=> $UNPACK/lib/" || true)
    missing=$(awk '/not found/ {print $1}' <<<"$out" | grep -Ev "$torchy" || true)
    printf '  %-26s %3d libs; unresolved (torch, expected where no RUNPATH matches): %s\n' \
      "$(basename "$b")" "$(grep -c '=>' <<<"$out")" \
      "$(awk '/not found/ {print $1}' <<<"$out" | tr '\n' ' ')"
    if [ -n "$missing" ]; then echo "    NOT FOUND (not torch): $missing"; failed=1; fi
    if [ -n "$bad" ]; then
      echo "    from outside the bundle (neither base nor torch):"; sed 's/^/      /' <<<"$bad"
      failed=1
    fi
  done
  echo "ldd with LD_LIBRARY_PATH=$BIN_LD_PATH (all of it in $OUT/ldd.txt):"
  : > "$OUT/ldd.txt"
  for b in "$UNPACK"/bin/*; do
    out=$(LD_LIBRARY_PATH="$BIN_LD_PATH" ldd "$b" 2>&1)
    { echo "== $(basename "$b")"; echo "$out"; } >> "$OUT/ldd.txt"
    if grep -q 'not found' <<<"$out"; then
      echo "  $(basename "$b"): NOT FOUND: $(awk '/not found/ {print $1}' <<<"$out" | tr '\n' ' ')"
      failed=1
    else
      echo "  $(basename "$b"): all resolved"
    fi
    # Loading for real (symbol versions included): --helpfull prints and exits.
    out=$(LD_LIBRARY_PATH="$BIN_LD_PATH" "$b" --helpfull 2>&1 >/dev/null | head -5 || true)
    if grep -qE 'error while loading|version .* not found|symbol lookup error' <<<"$out"; then
      echo "  $(basename "$b") does not load: $out"; failed=1
    fi
  done
  return $failed
}

step_export() {
  mkdir -p "$MODELS"
  local -a names=(vits16 vits16-fp16 vits16-bf16 vitb16-fp16)
  local -a args=("--variant vits16" "--variant vits16 --dtype float16"
                 "--variant vits16 --dtype bfloat16" "--variant vitb16 --dtype float16")
  local i pids=() failed=0
  for i in "${!names[@]}"; do
    # shellcheck disable=SC2086  # the args are words
    py -m model.export --random ${args[$i]} --seed 0 --output "$MODELS/${names[$i]}.pt" \
      > "$WORK/export-${names[$i]}.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!names[@]}"; do
    if wait "${pids[$i]}"; then
      echo "${names[$i]}: $(tail -1 "$WORK/export-${names[$i]}.log")"
    else
      echo "${names[$i]}: FAILED"; cat "$WORK/export-${names[$i]}.log"; failed=1
    fi
  done
  ls -l "$MODELS"
  return $failed
}

step_model_check() {
  local -a runs
  local iterations
  if is_cuda; then
    iterations=20
    runs=("vits16 1" "vits16 32" "vits16-fp16 1" "vits16-fp16 64" "vits16-bf16 64"
          "vitb16-fp16 1" "vitb16-fp16 64")
  else
    iterations=2
    runs=("vits16 1" "vits16 4" "vits16-fp16 4" "vits16-bf16 4" "vitb16-fp16 1")
  fi
  local run name batch out mean failed=0
  for run in "${runs[@]}"; do
    read -r name batch <<<"$run"
    echo "--- dinov3-model-check --device=$DEVICE --batch=$batch --iterations=$iterations $name.pt"
    if out=$(bin dinov3-model-check --device="$DEVICE" --batch="$batch" \
               --iterations="$iterations" "$MODELS/$name.pt" 2>&1); then
      echo "$out"
      mean=$(sed -n 's/.*mean_of_[0-9]*=\([0-9.]*\) ms.*/\1/p' <<<"$out")
      awk -v n="$name" -v b="$batch" -v m="$mean" -v d="$DEVICE" 'BEGIN {
        printf "throughput %-12s %-7s batch %3d: %8.2f ms/forward  %9.1f images/s\n",
               n, d, b, m, (m > 0 ? b * 1000 / m : 0) }' | tee -a "$OUT/throughput.txt"
    else
      echo "$out"; echo "FAILED: $name batch $batch"; failed=1
    fi
  done
  return $failed
}

step_fixtures() {
  rm -rf "$WORK/fixtures"
  py tests/unit/model/runtime/make_fixtures.py "$WORK/fixtures"
  ls "$WORK/fixtures"
}

step_runtime_test() {
  DINOV3_RUNTIME_FIXTURES="$WORK/fixtures" bin model_runtime_test --gtest_brief=1
}

step_engine_test() {
  DINOV3_ENGINE_TEST_DEVICE="$DEVICE" DINOV3_ENGINE_TEST_MODEL="$WORK/fixtures/model.pt" \
    bin engine_test
}

step_integration() {
  # The test starts bundled servers and clients itself; they inherit LD_LIBRARY_PATH.
  DINOV3_SERVER_BIN="$UNPACK/bin/dinov3-server" DINOV3_CLIENT_BIN="$UNPACK/bin/dinov3-client" \
    DINOV3_TEST_MODEL="$WORK/fixtures/model.pt" bin server_integration_test --gtest_brief=1
}

# start_server TAG MODEL [extra server flags...]: runs dinov3-server in the background (its log
# in $OUT/server-TAG.log, pid in $WORK/TAG.pid, exit status in $WORK/TAG.rc once it ends) and
# waits until `dinov3-client health` says SERVING.
start_server() {
  local tag=$1 model=$2; shift 2
  local port
  port=$(free_port)
  echo "$port" > "$WORK/$tag.port"
  rm -f "$WORK/$tag.rc" "$WORK/$tag.pid"
  echo "starting: dinov3-server --model=$model --device=$DEVICE --listen=127.0.0.1:$port --drain_seconds=5 $*"
  (
    set +e  # the exit status is what this subshell is for
    LD_LIBRARY_PATH="$BIN_LD_PATH" "$UNPACK/bin/dinov3-server" --model="$model" \
      --device="$DEVICE" --listen="127.0.0.1:$port" --drain_seconds=5 "$@" &
    echo $! > "$WORK/$tag.pid"
    wait $!
    echo $? > "$WORK/$tag.rc"
  ) > "$OUT/server-$tag.log" 2>&1 < /dev/null &
  local start=$SECONDS
  while true; do
    if [ -f "$WORK/$tag.rc" ]; then
      echo "the server exited with status $(cat "$WORK/$tag.rc") before SERVING:"
      tail -30 "$OUT/server-$tag.log"; return 1
    fi
    if bin dinov3-client health --server="127.0.0.1:$port" --timeout=2 >/dev/null 2>&1; then
      echo "SERVING after $((SECONDS - start)) s on port $port (pid $(cat "$WORK/$tag.pid"))"
      return 0
    fi
    if [ $((SECONDS - start)) -ge 150 ]; then
      echo "not SERVING after 150 s:"; tail -30 "$OUT/server-$tag.log"; return 1
    fi
    sleep 0.5
  done
}

# embed_and_compare TAG MODEL REFERENCE MIN_COSINE
embed_and_compare() {
  local tag=$1 model=$2 reference=$3 min_cosine=$4
  local port
  port=$(cat "$WORK/$tag.port")
  bin dinov3-client info --server="127.0.0.1:$port"
  rm -rf "$WORK/images"
  py scripts/gpu_check_parity.py images "$WORK/images" > "$WORK/images.txt"
  mapfile -t images < "$WORK/images.txt"
  [ ${#images[@]} -gt 0 ]
  bin dinov3-client embed "${images[@]}" --server="127.0.0.1:$port" \
    --outputs=cls,pooled,patch_tokens > "$WORK/embed-$tag.jsonl"
  echo "embedded ${#images[@]} images: $(wc -c < "$WORK/embed-$tag.jsonl") bytes of JSON"
  py scripts/gpu_check_parity.py compare --model "$model" --reference "$reference" \
    --embed "$WORK/embed-$tag.jsonl" --images "$WORK/images" --min-cosine "$min_cosine" |
    tee "$OUT/parity-$tag.txt"
  # A rough end-to-end rate: 32 images (4 files x 8) per call, 3 calls, one client.
  local many=() i
  for i in 1 2 3 4 5 6 7 8; do many+=("${images[@]}"); done
  local t0 t1
  for i in 1 2 3; do
    t0=$(date +%s.%N)
    bin dinov3-client embed "${many[@]}" --server="127.0.0.1:$port" --outputs=cls > /dev/null
    t1=$(date +%s.%N)
    awk -v t0="$t0" -v t1="$t1" -v n="${#many[@]}" -v tag="$tag" -v d="$DEVICE" 'BEGIN {
      printf "server %-6s %-7s one client, %d mixed-size PNGs per call: %7.1f ms, %7.1f images/s\n",
             tag, d, n, (t1 - t0) * 1000, n / (t1 - t0) }' | tee -a "$OUT/throughput.txt"
  done
}

# stop_server TAG: SIGTERM, then the exit status must be 0 within 30 s.
stop_server() {
  local tag=$1
  [ -f "$WORK/$tag.pid" ] || { echo "no server pid for $tag"; return 1; }
  local pid start
  pid=$(cat "$WORK/$tag.pid")
  if [ -f "$WORK/$tag.rc" ]; then
    echo "the server had already exited with status $(cat "$WORK/$tag.rc")"; return 1
  fi
  start=$SECONDS
  kill -TERM "$pid"
  while [ ! -f "$WORK/$tag.rc" ] && [ $((SECONDS - start)) -lt 30 ]; do sleep 0.2; done
  if [ ! -f "$WORK/$tag.rc" ]; then
    echo "still running 30 s after SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null; return 1
  fi
  local rc
  rc=$(cat "$WORK/$tag.rc")
  echo "exit status $rc, $((SECONDS - start)) s after SIGTERM; last log lines:"
  tail -5 "$OUT/server-$tag.log"
  [ "$rc" = 0 ]
}

step_server_start() {
  local -a extra=()
  if server_has_flag metrics_listen; then
    local port=$METRICS_PORT
    if ! port_is_free "$port"; then
      port=$(free_port)
      echo "port $METRICS_PORT is taken here: metrics on $port instead"
    fi
    extra+=(--metrics_listen="127.0.0.1:$port")
    echo "$port" > "$WORK/metrics_port"
    echo yes > "$WORK/metrics_flag"
  else
    echo "this dinov3-server has no --metrics_listen flag: no metrics endpoint"
    echo no > "$WORK/metrics_flag"
  fi
  start_server fp32 "$MODELS/vits16.pt" "${extra[@]}"
}

step_embed_parity() {
  embed_and_compare fp32 "$MODELS/vits16.pt" "$MODELS/vits16.pt" 0.9999
}

step_metrics() {
  if [ "$(cat "$WORK/metrics_flag" 2>/dev/null)" != yes ]; then
    echo "SKIP: the server binary has no --metrics_listen flag yet"; return $SKIP
  fi
  "$PYTHON" - "http://127.0.0.1:$(cat "$WORK/metrics_port")/metrics" "$OUT/metrics.txt" "$DEVICE" <<'EOF'
import sys, urllib.request
url, out, device = sys.argv[1:4]
text = urllib.request.urlopen(url, timeout=10).read().decode()
open(out, "w").write(text)
print(f"{url}: {len(text.splitlines())} lines (all in {out})")
found = {}
for prefix in ("dinov3_device_memory", "dinov3_batch_size"):
    lines = [l for l in text.splitlines() if l.startswith(prefix)]
    found[prefix] = len(lines)
    print("\n".join(lines) if lines else f"(no line starts with {prefix})")
missing = [p for p, n in found.items() if n == 0
           and not (p == "dinov3_device_memory" and not device.startswith("cuda"))]
if missing:
    sys.exit(f"missing: {', '.join(missing)}")
EOF
}

step_server_stop() { stop_server fp32; }

# One whole round for a half-precision export: start, embed, compare, stop.
half_round() {
  local tag=$1 model=$2 min_cosine=$3
  local -a extra=()
  if server_has_flag metrics_enabled; then
    extra+=(--metrics_enabled=false)
  elif server_has_flag metrics_listen; then
    extra+=(--metrics_listen="127.0.0.1:$(free_port)")
  fi
  start_server "$tag" "$model" "${extra[@]}"
  local failed=0
  # In the background so that `set -e` still holds inside (it is off in an `||` context).
  embed_and_compare "$tag" "$model" "$MODELS/vits16.pt" "$min_cosine" &
  wait $! || failed=1
  stop_server "$tag" &
  wait $! || failed=1
  return $failed
}
step_server_fp16() { half_round fp16 "$MODELS/vits16-fp16.pt" 0.999; }
step_server_bf16() { half_round bf16 "$MODELS/vits16-bf16.pt" 0.99; }

# ------------------------------------------------------------------------------- one step
if [ "${1:-}" = "--step" ]; then
  STEP_NAME=$2
  set -Eeuo pipefail
  trap 'rc=$?; [ $rc = $SKIP ] || echo "!! step $STEP_NAME: status $rc at line $LINENO: $BASH_COMMAND" >&2' ERR
  "step_$STEP_NAME"
  exit $?
fi

# ------------------------------------------------------------------------------------ driver
DEVICE=${DEVICE:-cuda:0}
while [ $# -gt 0 ]; do
  case "$1" in
    --device=*) DEVICE=${1#--device=} ;;
    --device) DEVICE=$2; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    *) echo "usage: scripts/gpu-check-bundle.sh [--device=cuda:0|cpu] [--only=step,step]" >&2
       echo "steps: ${step_names[*]}" >&2; exit 2 ;;
  esac
  shift
done
export DEVICE
PYTHON=${PYTHON:-python3}
# Absolute, since Python runs from $UNPACK; symlinks kept (a venv's python is one).
case "$PYTHON" in
  /*) ;;
  */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;;
  *) PYTHON=$(command -v "$PYTHON" || echo "$PYTHON") ;;
esac
export PYTHON
export OUT=${OUT:-/tmp/out}
export BUNDLE=${BUNDLE:-$ROOT/.gpu-bundle/dinov3-gpu-bundle.tar.xz}
export UNPACK=${UNPACK:-/tmp/b}
export MODELS=${MODELS:-/tmp/m}
export WORK=${WORK:-/tmp/gpu-check-work}
export METRICS_PORT=${METRICS_PORT:-9464}
# Whole-run budget: no step's timeout goes past it, and steps left when it is spent are skipped
# (the device run's own limit must leave room for this plus the machine's start).
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$OUT" "$WORK"
rm -f "$OUT/throughput.txt" "$OUT/summary.txt"
LOG=$OUT/gpu-check.log
exec > >(tee "$LOG") 2>&1

TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")' 2>/dev/null || true)
[ -n "$TORCH_LIB" ] || echo "WARNING: '$PYTHON' cannot import torch: no torch lib dir"
export TORCH_LIB
export BIN_LD_PATH="$UNPACK/lib${TORCH_LIB:+:$TORCH_LIB}"
note "device=$DEVICE python=$PYTHON out=$OUT bundle=$BUNDLE unpack=$UNPACK"
note "binaries run with LD_LIBRARY_PATH=$BIN_LD_PATH"
if is_cuda && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
fi

cleanup() {
  # Servers this script started and that a failed step left running (by their recorded pid).
  local f
  for f in "$WORK"/*.pid; do
    [ -f "$f" ] || continue
    local tag
    tag=$(basename "$f" .pid)
    if [ ! -f "$WORK/$tag.rc" ]; then
      echo "cleanup: killing the $tag server (pid $(cat "$f"))"
      kill -KILL "$(cat "$f")" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
rm -f "$WORK"/*.pid "$WORK"/*.rc

declare -A result=() seconds=()
total_start=$SECONDS
echo "gpu-check-bundle (in progress; rewritten at the end): device=$DEVICE" > "$OUT/summary.txt"
for s in "${step_names[@]}"; do
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$s,"* ]]; then continue; fi
  left=$((BUDGET_S - (SECONDS - total_start)))
  limit=${step_timeout[$s]}
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    result[$s]="SKIP (budget of $BUDGET_S s spent)"; seconds[$s]=0
  else
    banner "STEP $s: ${step_about[$s]} (timeout $limit s)"
    t0=$SECONDS
    timeout -k 10 "$limit" bash "$SELF" --step "$s"
    rc=$?
    seconds[$s]=$((SECONDS - t0))
    case $rc in
      0) result[$s]=PASS ;;
      "$SKIP") result[$s]=SKIP ;;
      124|137) result[$s]="FAIL (timeout after $limit s)" ;;
      *) result[$s]="FAIL (status $rc)" ;;
    esac
  fi
  echo "-------- $s: ${result[$s]} in ${seconds[$s]} s"
  printf '  %-13s %-32s %4d s\n' "$s" "${result[$s]}" "${seconds[$s]}" >> "$OUT/summary.txt"
done

failed=0
{
  echo "gpu-check-bundle summary: device=$DEVICE, $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - total_start)) s"
  for s in "${step_names[@]}"; do
    [ -n "${result[$s]:-}" ] || continue
    printf '  %-13s %-32s %4d s\n' "$s" "${result[$s]}" "${seconds[$s]}"
    [[ "${result[$s]}" == FAIL* ]] && failed=1
  done
  [ -f "$OUT/throughput.txt" ] && { echo; cat "$OUT/throughput.txt"; }
  echo
  [ $failed = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL"
} > "$OUT/summary.txt"
banner "SUMMARY"
cat "$OUT/summary.txt"
exit $failed
