#!/usr/bin/env bash
# The LibTorch shared libraries (from the torch and nvidia-* wheels in .venv) that the runtime
# image needs next to dinov3-server, for the Dockerfile's runtime stage.
#
#   scripts/runtime-libs.sh cuda|cpu DEST    copy them into DEST
#   scripts/runtime-libs.sh cuda|cpu --list  print their paths
#
# cuda: every library of torch/lib and nvidia/*/lib (LibTorch dlopens some by soname: NVRTC,
#   cuDNN's engines, ...) except the multi-node plugins (NVSHMEM's MPI/PMIx/UCX/libfabric/
#   InfiniBand bootstraps and transports, cuFile's RDMA), which need libraries the image lacks. cpu: what the DINOV3_TORCH_CUDA=OFF link uses (libtorch_cpu and
#   libc10, cmake/LibTorch.cmake) and everything they link from the wheels, followed
#   recursively: the CUDA wheel's libtorch_cpu itself links the CUDA runtime and CUPTI.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/runtime-libs.sh cuda|cpu DEST|--list}
dest=${2:?usage: scripts/runtime-libs.sh cuda|cpu DEST|--list}
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
wheel_libs() { find "$site/torch/lib" "$site"/nvidia/*/lib -maxdepth 1 -name '*.so*' 2>/dev/null; }

case "$mode" in
  cuda) files=$(wheel_libs | grep -v -E '/(nvshmem_bootstrap_|nvshmem_transport_|libcufile_rdma)' \
                 | sort) ;;
  cpu)
    declare -A by_name=() chosen=()
    while read -r f; do by_name[$(basename "$f")]=$f; done < <(wheel_libs)
    todo=(libtorch_cpu.so libc10.so)
    while [ ${#todo[@]} -gt 0 ]; do
      name=${todo[0]}; todo=("${todo[@]:1}")
      [ -n "${chosen[$name]:-}" ] || [ -z "${by_name[$name]:-}" ] && continue
      chosen[$name]=${by_name[$name]}
      while read -r needed; do todo+=("$needed"); done < <(
        readelf -d "${by_name[$name]}" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    done
    files=$(printf '%s\n' "${chosen[@]}" | sort) ;;
  *) echo "runtime-libs: mode must be cuda or cpu, got '$mode'" >&2; exit 2 ;;
esac

if [ "$dest" = --list ]; then
  echo "$files"
else
  mkdir -p "$dest"
  # shellcheck disable=SC2086  # one path per word
  cp -aL $files "$dest"/
  # cpu: the wheel's LibTorch libraries keep their full symbol tables (libtorch_cpu.so 451 MB,
  # 358 MB without); the dynamic symbols the loader and backtraces use stay. The CUDA image's
  # libraries are copied as they are (not checked stripped on a GPU).
  if [ "$mode" = cpu ]; then
    for f in $files; do
      case "$f" in */torch/lib/*) strip --strip-unneeded "$dest/$(basename "$f")" ;; esac
    done
  fi
fi
