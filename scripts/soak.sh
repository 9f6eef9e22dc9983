#!/usr/bin/env bash
# Soak test of dinov3-server (tests/soak/soak.py): starts build/bin/dinov3-server on loopback
# (CPU, a random depth-1 vits16 unless --model is given), sends a steady mix of valid (raw and
# PNG, Embed, StreamEmbed, EmbedDense) and invalid requests, samples the server's RSS, then
# checks: RSS growth after warm-up < 5%, no outcome other than OK for valid and
# INVALID_ARGUMENT for invalid requests, and the server's dinov3_requests_total /
# dinov3_images_total equal the client's own counts. Prints a summary table; exit 1 on failure.
#
#   scripts/soak.sh                          # the CI length: 60 s at 10 requests/s
#   scripts/soak.sh --seconds 1800 --rate 20 # the long mode (30 min; warm-up: the first quarter)
#   scripts/soak.sh --seconds 600 --server_arg=--max_connection_age_seconds=30  # with GOAWAYs
#
# All arguments go to tests/soak/soak.py (--help lists them). Uses the binaries already built in
# ${BUILD_DIR:-build}/bin (scripts/build.sh builds them) and the Python of .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/soak/soak.py --server "${BUILD_DIR:-build}/bin/dinov3-server" "$@"
