#!/usr/bin/env bash
# Fuzzes each libFuzzer target of tests/fuzz for a bounded time, all at once (one core each),
# in build-asan/ (ASan + UBSan, see tests/sanitizers/env.sh).
#
#   scripts/fuzz.sh [--seconds N] [--no-build]
#     --seconds N   run time of each fuzzer (default 60)
#     --no-build    use the fuzzers already built in build-asan/bin
#
# Each fuzzer starts from its committed seed corpus (tests/fuzz/corpus/<target>/, read-only) and
# the inputs it found on earlier runs (build-asan/fuzz-corpus/<target>/, where new ones go).
# Crash, leak, timeout and out-of-memory inputs are saved under build-asan/fuzz-artifacts/;
# logs under build-asan/fuzz-logs/. Exits non-zero when any fuzzer found something. To replay
# one input: build-asan/bin/<target>_fuzzer <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/sanitizers/env.sh

seconds=60
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: $0 [--seconds N] [--no-build]" >&2; exit 2 ;;
  esac
done

# target name -> largest input (bytes): a few KiB covers every header path and small images; a
# request carries several images.
declare -A max_len=([image_decode]=16384 [embed_request]=32768 [http_request]=16384)
targets=(image_decode embed_request http_request)
dir=$DINOV3_ASAN_BUILD_DIR

if [ "$build" = 1 ]; then
  scripts/sanitize.sh --build "${targets[@]/%/_fuzzer}"
fi

declare -A pids
for t in "${targets[@]}"; do
  mkdir -p "$dir/fuzz-corpus/$t" "$dir/fuzz-artifacts/$t" "$dir/fuzz-logs"
  # -timeout: seconds per input; -rss_limit_mb: the whole process (LibTorch is loaded in
  # embed_request); -malloc_limit_mb: one allocation, far above any image the limits accept
  # (4M pixels) and far below a decompression bomb's.
  "$dir/bin/${t}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
    -malloc_limit_mb=512 -max_len="${max_len[$t]}" -print_final_stats=1 \
    -artifact_prefix="$dir/fuzz-artifacts/$t/" \
    "$dir/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$dir/fuzz-logs/$t.log" 2>&1 &
  pids[$t]=$!
done

failed=0
for t in "${targets[@]}"; do
  rc=0
  wait "${pids[$t]}" || rc=$?
  summary=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/fuzz-logs/$t.log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$dir/fuzz-logs/$t.log" | awk '{print $2}')
  echo "fuzz: $t: exit $rc, ${execs:-?} inputs, ${summary:-no DONE line}"
  if [ "$rc" != 0 ]; then
    failed=1
    echo "fuzz: $t FOUND SOMETHING; log $dir/fuzz-logs/$t.log, inputs in $dir/fuzz-artifacts/$t/:"
    ls -l "$dir/fuzz-artifacts/$t/" || true
    # libFuzzer writes "==N== ERROR: libFuzzer: ..." (out-of-memory, timeout, leak), ASan
    # "==N==ERROR: AddressSanitizer: ...".
    grep -a -E -A30 '^==[0-9]+== ?ERROR|runtime error|fuzz invariant broken|ALARM' \
      "$dir/fuzz-logs/$t.log" | head -60 || true
    # The inputs themselves (small: max_len), so a finding on a CI machine can be replayed.
    for input in "$dir/fuzz-artifacts/$t"/*; do
      [ -f "$input" ] || continue
      echo "fuzz: $t input $(basename "$input") as base64:"
      head -c "${max_len[$t]}" "$input" | base64 -w 100
    done
  fi
done
exit "$failed"
