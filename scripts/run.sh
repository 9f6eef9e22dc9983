#!/usr/bin/env bash
# The main job, one command on a fresh machine: set up, build, make sure a model exists, and
# start the gRPC server (build/bin/dinov3-server) on 127.0.0.1:50051 until Ctrl-C / SIGTERM.
# Loopback only by default; to expose it, add TLS (SECURITY.md) or, for development,
# --listen=0.0.0.0:50051 --allow_plaintext=true.
#
# The model is $DINOV3_MODEL if set; otherwise models/dinov3-vits16-untrained.pt, a
# deterministic RANDOM (untrained) vits16 exported on first use. Extra arguments go to the
# server (e.g. --listen=127.0.0.1:6000 --device=cuda:0; see build/bin/dinov3-server --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=${DINOV3_MODEL:-models/dinov3-vits16-untrained.pt}
if [ ! -f "$model" ]; then
  if [ -n "${DINOV3_MODEL:-}" ]; then
    echo "run: DINOV3_MODEL=$model does not exist" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$model")"
  echo "run: exporting the default model (random weights, UNTRAINED) to $model"
  .venv/bin/python -m model.export --random --variant vits16 --seed 0 --output "$model.tmp"
  mv "$model.tmp" "$model"
fi
cat <<HELP
run: starting dinov3-server with $model
run: call it from another terminal, for example:
       build/bin/dinov3-client health
       build/bin/dinov3-client info
       build/bin/dinov3-client embed photo.jpg --outputs=cls,pooled
       .venv/bin/python client/python/examples/embed_images.py photo.jpg
       grpcurl -plaintext localhost:50051 list        # server reflection
       curl -s localhost:9464/metrics                 # Prometheus metrics
HELP
exec build/bin/dinov3-server --model="$model" "$@"
