#!/usr/bin/env bash
# Set up from a fresh clone and run the main job on the bundled demo assets (no torch needed):
# diagnose the demo "regressed" checkpoint (step-002200) on the bundled golden set demo-v1.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/mweval diagnose --ckpt step-002200 --golden demo-v1 "$@"
