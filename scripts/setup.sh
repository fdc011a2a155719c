#!/usr/bin/env bash
# Create .venv (if missing) and install privft with the extras named in $PRIVFT_EXTRAS
# (default: test). torch 2.13.0 goes first: it resolves to the CPU wheel on disk, and every
# later range accepts it, so pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${PRIVFT_EXTRAS:-test}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[${EXTRAS}]"
python -m pip check
