#!/usr/bin/env bash
# The tests: set up (scripts/setup.sh), lint, then every test: unit, integration (real SDK against
# the emulator) and end-to-end (real Airflow components). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check provider tests dags scripts benchmarks
exec .venv/bin/python -m pytest "$@"
