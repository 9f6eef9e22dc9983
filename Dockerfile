# syntax=docker/dockerfile:1
# DINOv3 embedding service images (deploy/README.md has the build and run lines).
#
#   docker build --build-arg TORCH=cuda -t dinov3-server:cuda .        GPU image (default)
#   docker build --build-arg TORCH=cpu  -t dinov3-server:cpu .         CPU-only image
#   docker build --target exporter -t dinov3-exporter .                checkpoint -> TorchScript
#
# Stages: `build` runs the README's own setup (scripts/setup.sh --build-only: the Debian packages
# of scripts/debian-packages.txt, not the test-only ones, and the pinned .venv) and build
# (scripts/build.sh, the server and client only), so CI exercises these steps on every run; with
# TORCH=cuda it adds NVIDIA's CUDA compiler so that the server links LibTorch's CUDA libraries.
# `exporter` is the build stage with the export CLI as entrypoint. `runtime` is debian:12-slim
# with the runtime libraries of scripts/debian-runtime-packages.txt, LibTorch's shared libraries
# from the same wheel, the two binaries and nothing else, running as uid 10001, configured by
# config/examples/container.yaml. scripts/image-check.sh builds the CPU image and serves it.
ARG TORCH=cuda

FROM debian:12 AS build
ARG TORCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates curl python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The CUDA toolkit 13.0 (NVIDIA's Debian 12 repository; the torch wheel is cu130), for
# TORCH=cuda only: LibTorch's CMake config needs its headers and libraries to link.
RUN if [ "$TORCH" = cuda ]; then \
      curl -fsSL -o /tmp/keyring.deb \
        https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
      && dpkg -i /tmp/keyring.deb && rm /tmp/keyring.deb && apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           cuda-toolkit-13-0 \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PATH=/usr/local/cuda/bin:$PATH
WORKDIR /app
COPY scripts/setup.sh scripts/debian-packages.txt scripts/
COPY requirements.txt requirements-nodeps.txt ./
COPY proto/ proto/
COPY client/python/generate_stubs.py client/python/
RUN scripts/setup.sh --build-only && rm -rf /var/lib/apt/lists/* /root/.cache/pip
COPY . .
RUN CMAKE_ARGS="-DDINOV3_BUILD_TESTS=OFF -DDINOV3_TORCH_CUDA=$([ "$TORCH" = cuda ] && echo ON || echo OFF)" \
      scripts/build.sh --target dinov3-server --target dinov3-client
# LibTorch's shared libraries for the runtime stage (scripts/runtime-libs.sh says which).
RUN scripts/runtime-libs.sh "$TORCH" /opt/dinov3/lib \
 && mkdir -p /opt/dinov3/bin && cp build/bin/dinov3-server build/bin/dinov3-client /opt/dinov3/bin/

FROM build AS exporter
ENTRYPOINT [".venv/bin/python", "-m", "model.export"]

FROM debian:12-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY scripts/debian-runtime-packages.txt /tmp/
# Files that the packages bring but neither binary loads are not unpacked (dpkg path-exclude):
# Mesa's DRI drivers and the LLVM and Z3 libraries only they link (OpenCV's core links the GLX
# dispatch library, which loads a driver only for an OpenGL context), and PROJ's data. About
# 500 MB; scripts/image-check.sh lists what the serving process maps.
RUN printf 'path-exclude %s\n' '/usr/lib/*/dri/*' '/usr/lib/*/libLLVM-*' '/usr/lib/*/libz3.so*' \
      '/usr/share/proj/*' >/etc/dpkg/dpkg.cfg.d/dinov3-unused \
 && apt-get update -qq \
 && grep -v '^\s*#' /tmp/debian-runtime-packages.txt \
    | xargs apt-get install -y -qq --no-install-recommends \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/debian-runtime-packages.txt \
 && useradd --system --uid 10001 --user-group --no-create-home dinov3 \
 && mkdir -p /models /etc/dinov3
COPY --from=build /opt/dinov3 /opt/dinov3
# The image's configuration is a file, not DINOV3_* variables (which would override any file
# mounted over it): model.path /models/dinov3.pt, listen on all interfaces, JSON logs.
COPY config/examples/container.yaml /etc/dinov3/server.yaml
ENV LD_LIBRARY_PATH=/opt/dinov3/lib \
    PATH=/opt/dinov3/bin:$PATH \
    DINOV3_CONFIG=/etc/dinov3/server.yaml \
    HOME=/tmp \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
EXPOSE 50051 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["dinov3-client", "health", "--server=127.0.0.1:50051", "--timeout=4"]
ENTRYPOINT ["dinov3-server"]
