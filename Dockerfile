# DINOv3 embedding service image. The install steps are the README's: scripts/setup.sh reads the
# same package lists, so CI exercises them on every run.
#
#   docker build -t dinov3 .
#   docker run --rm -v "$PWD/models:/app/models" dinov3
#
# Without the CUDA toolkit in the build stage the C++ build links LibTorch CPU-only
# (DINOV3_TORCH_CUDA=AUTO); the CUDA image with a slim non-root runtime stage follows with the
# deployment work.
FROM debian:12 AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
      ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts/setup.sh scripts/debian-packages.txt scripts/
COPY requirements.txt .
COPY proto/ proto/
RUN scripts/setup.sh && rm -rf /var/lib/apt/lists/* /root/.cache/pip
COPY . .
RUN CMAKE_ARGS="-DDINOV3_BUILD_TESTS=OFF" scripts/build.sh

FROM build AS exporter
ENTRYPOINT [".venv/bin/python", "-m", "model.export"]

FROM build AS runtime
EXPOSE 50051
RUN useradd --system --uid 10001 dinov3 && mkdir -p models && chown dinov3 models
USER dinov3
ENTRYPOINT ["scripts/run.sh"]
