#!/usr/bin/env bash
# Installs everything the project needs, from this repository's own files. Idempotent: a second
# run only checks and returns.
#   1. Debian packages listed in scripts/debian-packages.txt and, for the tests,
#      scripts/debian-test-packages.txt (apt-get; needs root or sudo). With --build-only (the
#      Dockerfile's build stage) only the first list.
#   2. .venv/ with the pinned Python packages of requirements.txt and, without their dependencies,
#      requirements-nodeps.txt (re-installed when they change;
#      needs about 6 GiB free disk, checked before pip starts).
set -euo pipefail
cd "$(dirname "$0")/.."

lists=(scripts/debian-packages.txt scripts/debian-test-packages.txt)
case "${1:-}" in
  --build-only) lists=(scripts/debian-packages.txt) ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--build-only]" >&2; exit 2 ;;
esac
packages=$(cat "${lists[@]}" | grep -v '^\s*#' | xargs)
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Any kubectl serves the tests; Debian's kubernetes-client cannot be installed next to another
# kubectl package (e.g. Google Cloud's "kubectl", which owns /usr/bin/kubectl too).
if command -v kubectl >/dev/null 2>&1; then
  missing=$(echo " $missing " | sed 's/ kubernetes-client / /')
fi
missing=$(echo $missing)
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages: $missing"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  $python -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch and its CUDA libraries take about 5.2 GiB in .venv/; fail before pip, not halfway.
  need_kib=$((6 * 1024 * 1024))
  free_kib=$(df -Pk .venv | awk 'NR == 2 { print $4 }')
  if [ "$free_kib" -lt "$need_kib" ]; then
    echo "setup: the Python packages need about 6 GiB free for .venv/;" \
      "$(df -Ph .venv | awk 'NR == 2 { print $4 " free on " $6 }'): free some space" >&2
    exit 1
  fi
  echo "setup: installing Python packages from requirements.txt (torch is large: minutes)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
  echo "$want" > "$stamp"
fi
# Python gRPC stubs of the API for client/python/dinov3_client (git-ignored), regenerated only when
# the proto or the pinned packages (grpcio-tools) are newer than them, by the generator the
# package build uses too (client/python/generate_stubs.py).
proto=proto/dinov3/v1/embedding.proto
gen=client/python/dinov3_client/_generated
stale=0
for f in "$gen/dinov3/v1/embedding_pb2.py" "$gen/dinov3/v1/embedding_pb2_grpc.py"; do
  { [ "$f" -nt "$proto" ] && [ "$f" -nt "$stamp" ]; } || stale=1
done
if [ "$stale" = 1 ]; then
  echo "setup: generating Python gRPC stubs in $gen"
  .venv/bin/python client/python/generate_stubs.py proto "$gen"
fi
echo "setup: ok"
