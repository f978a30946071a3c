#!/usr/bin/env bash
# Set up from a fresh clone and run the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# torch exactly 2.13.0 first: the CPU build on local disk. Any other spec pulls a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[torch,test,dev]'
# Browser tests render the HTML reports in Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get install -y -qq chromium >/dev/null 2>&1 || (sudo apt-get update -qq && sudo apt-get install -y -qq chromium)) >/dev/null
  fi
fi
exec .venv/bin/python -m pytest -q "$@"
