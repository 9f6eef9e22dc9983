#!/usr/bin/env bash
# Builds the repository's Dockerfile (CPU image, --build-arg TORCH=cpu) without a Docker daemon
# and checks that the images work:
#   1. base images debian:12 and debian:12-slim, made with debootstrap (public registries are out
#      of reach) and kept in buildah's storage between runs;
#   2. the build, exporter and runtime stages, built from the Dockerfile unchanged with
#      `buildah bud --isolation chroot`. pip inside the build reaches PyPI through the host's CA
#      bundle, passed in as a build-time volume with a pip configuration that points at it (the
#      way a user behind a TLS-inspecting proxy would), never written into an image;
#   3. the runtime image serves: the server runs as uid 10001 with the root file system read-only,
#      the baked-in configuration and a model mounted at its configured path; the image's own
#      HEALTHCHECK command must report SERVING; Embed called from the host must equal the
#      host-built server's answer on the same image and model within 1e-5;
#   4. the exporter image converts a random Hugging Face-layout folder into an export whose outputs
#      equal the host exporter's;
#   5. prints the image sizes, what fills the runtime image, and the time of each step.
# Everything it made is removed at the end except the cached base images.
#
#   scripts/image-check.sh               needs root (buildah), scripts/setup.sh and scripts/build.sh
#   scripts/image-check.sh --build-only  steps 1-2 only; keeps the images (unless it fails) for:
#   scripts/image-check.sh --prebuilt    steps 3-5 on the images of a --build-only run (CI builds
#                                        the images beside its sanitizer builds: most of a build
#                                        is downloads, unpacking and layer commits)
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), CA_BUNDLE (default: the
# host's, $PIP_CERT or /etc/ssl/certs/ca-certificates.crt), IMAGE_CHECK_KEEP=1 keeps the images.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "image-check: needs root (buildah, debootstrap)" >&2; exit 1; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null \
    || { echo "image-check: $tool missing: scripts/setup.sh installs it" >&2; exit 1; }
done

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
name=localhost/dinov3-image-check
work=$(mktemp -d /tmp/dinov3-image-check.XXXXXX)
all_images() { buildah images -a -q --no-trunc | sed 's/^sha256://'; }
# The images there were before (what the cleanup leaves), kept for a --prebuilt run.
before_file=/var/tmp/dinov3-image-check.images-before
mode=${1:-all}
case "$mode" in
  all) images_before=$(all_images) ;;
  --build-only) images_before=$(all_images); echo "$images_before" >"$before_file" ;;
  --prebuilt) images_before=$(cat "$before_file") \
                || { echo "image-check: --prebuilt needs a --build-only run first" >&2; exit 1; } ;;
  *) echo "usage: scripts/image-check.sh [--build-only | --prebuilt]" >&2; exit 2 ;;
esac
containers=()
mounts=()
timings=()

cleanup() {
  local status=$?
  set +e
  if [ -n "${server_pid:-}" ]; then  # buildah run does not pass signals on: stop the server
    kill -KILL $(server_process) 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  [ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || true; done
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  if [ "${IMAGE_CHECK_KEEP:-0}" != 1 ] && { [ "$mode" != --build-only ] || [ "$status" != 0 ]; }
  then
    # Every image this run made (the stages and their cached layers), except the bases.
    local keep="" base
    for base in docker.io/library/debian:12 docker.io/library/debian:12-slim; do
      keep+=$(buildah inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null)$'\n'
    done
    # An image with children cannot go before them: repeat while that removes some.
    local ours left=-1
    while ours=$(all_images | grep -v -x -F -f <(echo "$images_before"; echo "$keep")) \
          && [ "$(echo "$ours" | wc -l)" != "$left" ]; do
      left=$(echo "$ours" | wc -l)
      for image in $ours; do buildah rmi -f "$image" >/dev/null 2>&1; done
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# step NAME COMMAND...: runs COMMAND and records how long it took.
step() {
  local label=$1 start=$SECONDS
  shift
  echo "image-check: $label"
  "$@"
  timings+=("$(printf '%-44s %5d s' "$label" $((SECONDS - start)))")
}

# The two bases, as Debian's own images are made: debian:12 is a minbase bootstrap of bookworm
# with its updates and security suites; debian:12-slim also leaves out documentation, manual pages
# and translations (files removed and excluded from later installs, as the official slim does).
make_base() {
  local image=$1 slim=$2 dir="$work/base-${1##*:}" ctr mnt
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; return 1; }
  cat >"$dir/etc/apt/sources.list" <<EOF
deb ${mirror} bookworm main
deb ${mirror} bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
  if [ "$slim" = 1 ]; then
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$dir/usr/share/man/"* "$dir/usr/share/info/"* "$dir/usr/share/lintian/"*
  fi
  # As in Debian's official images: apt keeps no package files or caches in image layers.
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke {
  "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin";
};
APT::Update::Post-Invoke {
  "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin";
};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/cache/apt/"*.bin "$dir/var/lib/apt/lists/"*
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$dir" -c . | tar -C "$mnt" -x
  buildah umount "$ctr" >/dev/null
  buildah config --cmd /bin/bash "$ctr"
  buildah commit -q "$ctr" "$image" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$dir"
}

bases() {
  for image in docker.io/library/debian:12 docker.io/library/debian:12-slim; do
    if buildah inspect --type image "$image" >/dev/null 2>&1; then
      echo "image-check:   $image cached"
    else
      make_base "$image" "$([ "${image##*-}" = slim ] && echo 1 || echo 0)"
    fi
  done
}

# buildah bud for one Dockerfile stage; the stages share cached layers (--layers). The Docker
# image format keeps the HEALTHCHECK (OCI's has no such field). The build stage's pip gets the CA
# bundle and a pip.conf naming it as volumes; the runtime stage is built without them (its build
# stage comes from the cache), since buildah leaves an empty mount point of each volume in the
# image.
build_stage() {
  local volumes=()
  [ "$1" = runtime ] || volumes=(-v "$ca_bundle:/run/dinov3-build/ca-certificates.crt:ro"
                                 -v "$work/pip.conf:/etc/pip.conf:ro")
  buildah bud --isolation chroot --network host --layers --format docker --pull-never \
    "${volumes[@]}" --build-arg TORCH=cpu --target "$1" -t "$name-$1" . \
    >"$work/build-$1.log" 2>&1 || { tail -40 "$work/build-$1.log"; return 1; }
}

# image_config IMAGE KEY: a field of the image's Docker configuration as a shell word list
# (Entrypoint, User, Healthcheck's command without its CMD/CMD-SHELL marker).
image_config() {
  buildah inspect --type image "$1" | .venv/bin/python -c '
import json, shlex, sys
config, key = json.load(sys.stdin)["Docker"]["config"], sys.argv[1]
if key == "Healthcheck":
    kind, *test = config["Healthcheck"]["Test"]
    value = test if kind == "CMD" else ["/bin/sh", "-c", test[0]]
else:
    value = config[key] if isinstance(config[key], list) else [config[key]]
print(shlex.join(value))' "$2"
}

# new_container IMAGE [ro]: sets $ctr to a new container of IMAGE, with a writable volume at /tmp
# (the server's HOME, like the pod's emptyDir). With ro its root file system is read-only: a
# first run makes the mount points buildah binds (/etc/hosts, /etc/resolv.conf, ...), then the
# container's overlay is re-mounted read-only.
new_container() {
  ctr=$(buildah from --pull-never "$1")
  containers+=("$ctr")
  mkdir -p "$work/$ctr/tmp" "$work/$ctr/run" && chmod 1777 "$work/$ctr/tmp"
  if [ "${2:-}" = ro ]; then
    run_in "$ctr" -- true
    local mnt
    mnt=$(buildah mount "$ctr")
    mount --bind "$mnt" "$mnt" && mount -o remount,bind,ro "$mnt"
    mounts+=("$mnt")
    # buildah creates and removes /run/.containerenv in the root on every run, so /run is a
    # writable directory bound into the root itself (a volume is not mounted at removal time).
    mount --bind "$work/$ctr/run" "$mnt/run"
    mounts+=("$mnt/run")
  fi
}

# run_in CONTAINER [buildah run options] -- COMMAND...: runs COMMAND in CONTAINER on the host's
# network, as the image's user, in the image's working directory and environment.
run_in() {
  local c=$1 options=()
  shift
  while [ "$1" != -- ]; do options+=("$1"); shift; done
  shift
  buildah run --isolation chroot --network host -v "$work/$c/tmp:/tmp" "${options[@]}" "$c" -- "$@"
}

# The pid of the image's server process: named dinov3-server, run by the image's user.
server_process() { pgrep -x -u "${server_user%%:*}" dinov3-server; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The runtime image serves: a model at the configured path (/models/dinov3.pt), the baked-in
# configuration, the image's entrypoint and user, a read-only root file system.
serve_runtime() {
  local image=$name-runtime entrypoint words out deadline=$((SECONDS + 300)) pid
  for port in 50051 9464; do
    port_free "$port" \
      || { echo "image-check: port $port (the image's configuration) is in use" >&2; return 1; }
  done
  mkdir -p "$work/model"
  .venv/bin/python -m model.export --random --variant vits16 --depth 2 --seed 5 \
    --output "$work/model/dinov3.pt" >/dev/null
  words=$(image_config "$image" Entrypoint) && eval "entrypoint=($words)"
  words=$(image_config "$image" Healthcheck) && eval "health=($words)"
  server_user=$(image_config "$image" User)
  new_container "$image" ro
  server_ctr=$ctr
  for binary in dinov3-server dinov3-client; do
    out=$(run_in "$server_ctr" -- /bin/sh -c "ldd \$(command -v $binary)")
    if grep 'not found' <<<"$out"; then
      echo "image-check: $binary misses libraries in the image" >&2; return 1
    fi
  done
  if out=$(run_in "$server_ctr" -- touch /opt/dinov3/probe 2>&1) \
     || ! grep -q 'Read-only file system' <<<"$out"; then
    echo "image-check: the root file system is not read-only: $out" >&2; return 1
  fi
  run_in "$server_ctr" -v "$work/model:/models:ro" -- "${entrypoint[@]}" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  echo "image-check:   waiting for SERVING through the HEALTHCHECK command: ${health[*]}"
  until run_in "$server_ctr" -- "${health[@]}" >"$work/health.log" 2>&1; do
    if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "image-check: the server in the image did not become healthy; its log:" >&2
      tail -30 "$work/server.log" >&2; cat "$work/health.log" >&2; return 1
    fi
    sleep 2
  done
  pid=$(server_process) \
    || { echo "image-check: no process named dinov3-server runs as the image's user" \
           "$server_user" >&2; return 1; }
  echo "image-check:   healthy; dinov3-server (pid $pid) runs as uid" \
    "$(ps -o uid= -p "$pid" | xargs)"
}

# The host-built server on the same model and configuration file answers the same.
compare_with_host() {
  local port
  port=$(.venv/bin/python -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  build/bin/dinov3-server --config config/examples/container.yaml --listen "127.0.0.1:$port" \
    --metrics_enabled=false --http_listen=127.0.0.1:0 --model "$work/model/dinov3.pt" \
    >"$work/host-server.log" 2>&1 &
  host_pid=$!
  until build/bin/dinov3-client health --server="127.0.0.1:$port" --timeout=4 >/dev/null 2>&1; do
    kill -0 "$host_pid" 2>/dev/null || { tail -20 "$work/host-server.log" >&2; return 1; }
    sleep 1
  done
  .venv/bin/python scripts/image_check.py embed-equal 127.0.0.1:50051 "127.0.0.1:$port"
  kill "$host_pid" && wait "$host_pid" || true
  host_pid=
}

# The exporter image converts a Hugging Face folder into the same export as the host's exporter.
export_in_image() {
  local entrypoint words
  mkdir -p "$work/hf" "$work/exported" && chmod 777 "$work/exported"
  .venv/bin/python scripts/image_check.py hf-folder "$work/hf"
  words=$(image_config "$name-exporter" Entrypoint) && eval "entrypoint=($words)"
  new_container "$name-exporter"
  run_in "$ctr" -v "$work/hf:/checkpoint:ro" -v "$work/exported:/exported" -- \
    "${entrypoint[@]}" --hf-dir /checkpoint --output /exported/dinov3.pt
  .venv/bin/python -m model.export --hf-dir "$work/hf" --output "$work/host-export.pt" >/dev/null
  .venv/bin/python scripts/image_check.py exports-equal "$work/exported/dinov3.pt" \
    "$work/host-export.pt"
}

# Image sizes, and what fills the runtime image (its root file system, read through the server
# container's mount).
report_sizes() {
  local mnt pid
  buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' \
    | grep -E "dinov3-image-check|library/debian" | sed 's/^/image-check:   /'
  mnt=$(buildah mount "$server_ctr")
  echo "image-check:   runtime image contents:"
  for dir in / /opt/dinov3/lib /opt/dinov3/bin /usr/lib/x86_64-linux-gnu /usr/share; do
    printf 'image-check:     %6s %s\n' "$(du -sh --apparent-size "$mnt$dir" | cut -f1)" "$dir"
  done
  echo "image-check:   largest files:"
  find "$mnt" -xdev -type f -size +8M -printf '%s %p\n' | sort -rn | head -12 \
    | awk -v m="$mnt" '{ sub(m, "", $2); printf "image-check:     %6.1f MB %s\n", $1 / 1e6, $2 }'
  # What the serving process has mapped, against the shared libraries the image carries.
  pid=$(server_process)
  awk '$6 ~ /\.so/ { print $6 }' "/proc/$pid/maps" | sed -E 's#^.*/(merged|mnt/rootfs)/#/#' \
    | sort -u >"$work/mapped"
  (cd "$mnt" && find . -xdev -type f -name '*.so*' -printf '%s /%P\n') | sort -k2 >"$work/libs"
  awk 'NR == FNR { mapped[$1] = 1; next }
       { total += $1; if ($2 in mapped) used += $1 }
       END { printf "shared libraries: %.0f MB; the serving process maps %.0f MB of them\n",
                    total / 1e6, used / 1e6 }' "$work/mapped" "$work/libs" \
    | sed 's/^/image-check:   /'
  echo "image-check:   shared libraries over 1 MB that it does not map:"
  awk 'NR == FNR { mapped[$1] = 1; next } !($2 in mapped) && $1 > 1e6' "$work/mapped" \
    "$work/libs" | sort -rn | awk '{ printf "image-check:     %6.1f MB %s\n", $1 / 1e6, $2 }'
}

stop_runtime() {
  local pid
  pid=$(server_process) && kill -TERM "$pid"
  wait "$server_pid" || { echo "image-check: the server did not drain and exit 0" >&2; return 1; }
  server_pid=
}

if [ "$mode" != --prebuilt ]; then
  printf '[global]\ncert = /run/dinov3-build/ca-certificates.crt\n' >"$work/pip.conf"
  step "base images (debootstrap unless cached)" bases
  step "build stage (setup.sh, build.sh)" build_stage build
  step "exporter stage" build_stage exporter
  step "runtime stage" build_stage runtime
fi
if [ "$mode" != --build-only ]; then
  rm -f "$before_file"
  step "serve the runtime image until healthy" serve_runtime
  step "Embed: image vs host-built server" compare_with_host
  step "runtime image sizes" report_sizes
  step "stop the server (SIGTERM)" stop_runtime
  step "exporter image: HF folder -> export" export_in_image
fi
echo "image-check: step times"
printf 'image-check:   %s\n' "${timings[@]}"
echo "image-check: ok"
