#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with uv, Airflow 3.3.2, this
# provider (editable) and the test tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
UV_COMPILE_BYTECODE=1 .venv/bin/uv pip install --quiet --python .venv/bin/python \
  "apache-airflow==3.3.2" -e ".[dev]"
