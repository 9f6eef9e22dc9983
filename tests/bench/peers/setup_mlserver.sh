#!/usr/bin/env bash
# Makes .venv-mlserver/, the virtualenv of the Seldon MLServer benchmark peer
# (tests/bench/peers/mlserver_server.py), with the pins of tests/bench/peers/requirements-mlserver.txt.
# Its own virtualenv because mlserver 1.7.1 pins fastapi < 0.116, which the LitServe peer's
# packages in .venv (fastapi 0.165.0) contradict; no --system-site-packages, so nothing of .venv
# leaks in. Idempotent: re-installs only when the requirements file changed (a sha256 stamp).
#   tests/bench/peers/setup_mlserver.sh           # PYTHON=python3.11 to pick the interpreter
# Needs about 6 GiB free (torch with its CUDA libraries, as scripts/setup.sh installs it) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/../../.."

venv=.venv-mlserver
requirements=tests/bench/peers/requirements-mlserver.txt
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup_mlserver: creating $venv with $($python --version)"
  $python -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  need_kib=$((6 * 1024 * 1024))
  free_kib=$(df -Pk "$venv" | awk 'NR == 2 { print $4 }')
  if [ "$free_kib" -lt "$need_kib" ]; then
    echo "setup_mlserver: $venv needs about 6 GiB free;" \
      "$(df -Ph "$venv" | awk 'NR == 2 { print $4 " free on " $6 }')" >&2
    exit 1
  fi
  echo "setup_mlserver: installing $requirements into $venv (torch is large: minutes)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  "$venv/bin/pip" check
  echo "$want" > "$stamp"
fi
echo "setup_mlserver: ok ($("$venv/bin/python" -c 'import mlserver; print("mlserver", mlserver.__version__)'))"
