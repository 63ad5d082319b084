#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh), then run the nightly Gemini batch DAG through a real
# Airflow scheduler and triggerer against the local emulator (or real Gemini if GEMINI_API_KEY is set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
