#!/usr/bin/env bash
# Packs the already-built binaries for a GPU machine that has its own torch but none of our
# Debian dev libraries (gRPC, protobuf, OpenCV, spdlog, abseil, ...). Run HERE, after a build;
# it builds nothing.
#
#   scripts/gpu-bundle.sh [BINARY_NAME...]     (default: the set in DEFAULT_BINS below)
#   XZ_LEVEL=1 scripts/gpu-bundle.sh           faster, larger (default 9: ~2 min on 2 cores)
#
# Output: .gpu-bundle/dinov3-gpu-bundle.tar.xz (git-ignored through .git/info/exclude), the only
# file in .gpu-bundle/, removed and rebuilt on every run. Archive layout:
#   bin/       the named build/bin/ executables
#   lib/       every shared library they need by `ldd`, symlinks resolved, stored under the
#              soname they are asked for, EXCEPT torch's own (libtorch*, libc10*, anything from
#              the torch or nvidia-* wheels: the target's torch provides them, same version) and
#              the base system libraries every glibc machine has (libc, libm, libdl, librt,
#              libpthread, ld-linux, libstdc++, libgcc_s)
#   model/, client/python/ (with the generated stubs when present), proto/, pytest.ini,
#   tests/integration/python/, tests/unit/model/runtime/make_fixtures.py,
#   tests/unit/model/hf_reference.py, scripts/gpu-check-bundle.sh, scripts/gpu_check_parity.py
#   MANIFEST   what went in, where each library came from, the build's git commit
# The target unpacks it and runs with LD_LIBRARY_PATH=<unpacked>/lib:<its torch>/lib
# (scripts/gpu-check-bundle.sh does exactly that).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DEFAULT_BINS=(dinov3-server dinov3-client dinov3-model-check engine_test model_runtime_test
              server_integration_test)
MAX_MIB=60
out_dir=.gpu-bundle
archive=$out_dir/dinov3-gpu-bundle.tar.xz

bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("${DEFAULT_BINS[@]}")

die() { echo "gpu-bundle: error: $*" >&2; exit 1; }

# Keep the bundle out of git without touching .gitignore (another engineer owns that file).
exclude_file=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)
mkdir -p "$(dirname "$exclude_file")"
grep -qxF '/.gpu-bundle/' "$exclude_file" 2>/dev/null || echo '/.gpu-bundle/' >> "$exclude_file"

rm -rf "$out_dir"
mkdir -p "$out_dir"
stage=$(mktemp -d /tmp/gpu-bundle.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"

# Base libraries the target has anyway (by soname).
is_base_lib() {
  case "$1" in
    linux-vdso.so.*|ld-linux*|libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|\
    libstdc++.so.*|libgcc_s.so.*|libresolv.so.*|libutil.so.*|libmvec.so.*) return 0 ;;
  esac
  return 1
}
# Torch's own libraries and those of the nvidia-* wheels (the target's torch brings them).
is_torch_lib() {
  local name=$1 path=$2
  case "$name" in libtorch*|libc10*) return 0 ;; esac
  case "$(readlink -f "$path")" in */site-packages/torch/*|*/site-packages/nvidia/*) return 0 ;; esac
  return 1
}

manifest=$stage/MANIFEST
{
  echo "dinov3 GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "git: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "torch (build): $(.venv/bin/python -c 'import torch; print(torch.__version__)' 2>/dev/null || echo unknown)"
  echo
  echo "[bin]"
} > "$manifest"

declare -A libs=()   # soname -> resolved path
for b in "${bins[@]}"; do
  src=build/bin/$b
  [ -x "$src" ] || die "$src not found or not executable (build first; this script does not)"
  cp -L "$src" "$stage/bin/$b"
  echo "$b  $(sha256sum "$src" | cut -c1-16)  $(date -r "$src" -u +%Y-%m-%dT%H:%M:%SZ)" >> "$manifest"
  ldd_out=$(ldd "$src") || die "ldd $src failed"
  if grep -q 'not found' <<<"$ldd_out"; then
    grep 'not found' <<<"$ldd_out" >&2
    die "$src has unresolved libraries here"
  fi
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue            # the vdso and the loader have no "=>"
    [ -n "$path" ] && [ "${path:0:1}" = / ] || continue
    is_base_lib "$name" && continue
    is_torch_lib "$name" "$path" && continue
    libs[$name]=$path
  done <<<"$ldd_out"
done

echo >> "$manifest"
echo "[lib]" >> "$manifest"
for name in $(printf '%s\n' "${!libs[@]}" | sort); do
  cp -L "${libs[$name]}" "$stage/lib/$name"
  echo "$name  <- $(readlink -f "${libs[$name]}")" >> "$manifest"
done

# Python side and the check scripts.
py_paths=(model client/python proto pytest.ini tests/integration/python
          tests/unit/model/runtime/make_fixtures.py tests/unit/model/hf_reference.py
          scripts/gpu-check-bundle.sh scripts/gpu_check_parity.py)
for p in "${py_paths[@]}"; do
  if [ -e "$p" ]; then
    mkdir -p "$stage/$(dirname "$p")"
    cp -a "$p" "$stage/$(dirname "$p")/"
  else
    echo "gpu-bundle: warning: $p not found, left out" >&2
  fi
done
[ -d client/python/dinov3_client/_generated ] ||
  echo "gpu-bundle: warning: no generated Python stubs (client/python/dinov3_client/_generated)" >&2
find "$stage" \( -name __pycache__ -o -name .pytest_cache \) -prune -exec rm -rf {} +
find "$stage" -name '*.pyc' -delete
{ echo; echo "[files]"; (cd "$stage" && find . -type f ! -path './lib/*' ! -path './bin/*' | sort); } >> "$manifest"

echo "gpu-bundle: $(ls "$stage/bin" | wc -l) binaries, $(ls "$stage/lib" | wc -l) libraries," \
     "$(du -sh "$stage" | cut -f1) uncompressed; compressing (xz -${XZ_LEVEL:-9})..."
tar -C "$stage" --owner=0 --group=0 --numeric-owner -cf - . |
  xz -"${XZ_LEVEL:-9}" -T"$(nproc)" -c > "$archive"

bytes=$(stat -c %s "$archive")
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu-bundle: $root/$archive: $bytes bytes ($mib MiB)"
if [ "$bytes" -gt $((MAX_MIB * 1048576)) ]; then
  die "the archive is above ${MAX_MIB} MiB (the device upload limit is 64 MiB in all)"
fi
