#!/usr/bin/env bash
# The tests: set up (scripts/setup.sh), lint, then every test: unit, integration (real SDK against
# the emulator) and end-to-end (real Airflow components), the test files spread over three pytest-xdist
# workers: a file's tests stay in one worker, so a module's stack starts once, and the end-to-end
# tests partly wait, so three workers keep two cores busy (the longest files start first, see
# tests/conftest.py); four ran slower here, 6 min 8 s against 5 min 45 s, each stack's polling and
# start-up slowed by the others'. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check provider tests dags scripts benchmarks
exec .venv/bin/python -m pytest --numprocesses 3 --dist loadfile --no-loadscope-reorder "$@"
