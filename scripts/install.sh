#!/usr/bin/env bash
# Installs directnas and what it needs on a fresh machine (Debian, Python 3.11, root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
PY="${PYTHON:-python3}"
# torch pinned exactly: the local CPU wheel (an unpinned torch pulls gigabytes of CUDA packages)
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test,runtimes]"
