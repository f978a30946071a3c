#!/usr/bin/env bash
# Set up from a fresh clone and run the main job on the bundled demo assets (no torch needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/mweval eval --ckpt step-002200 --golden demo-v1 "$@"
