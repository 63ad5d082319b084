#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with uv, the newest Airflow
# release of scripts/airflow-matrix.txt (with its pins), this provider (editable), the test tools and Sphinx,
# and Debian's Chromium for the browser test (Playwright drives it; no browser download).
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r airflow _ pins < <(grep -E '^[0-9]' scripts/airflow-matrix.txt | tail -n 1)
[ -x .venv/bin/python ] || python3 -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf '%s\n' $pins > "$constraints"
UV_COMPILE_BYTECODE=1 .venv/bin/uv pip install --quiet --python .venv/bin/python --constraint "$constraints" \
  "apache-airflow==$airflow" -e ".[dev,common-ai,openlineage,docs]" \
  "apache-airflow-providers-fab>=3.0"  # the Gemini batches page's test of per-DAG access (FAB roles)
command -v chromium > /dev/null || {
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get install -y -q chromium > /dev/null || { $sudo apt-get update -q && $sudo apt-get install -y -q chromium; }
}
