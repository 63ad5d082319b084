#!/usr/bin/env bash
# One leg of the test matrix: `scripts/matrix.sh 3.0.6` makes .matrix/3.0.6, a virtual environment
# with that Airflow release (a leg named <minor>-pre, such as 3.4-pre: the newest release or
# pre-release of that minor on the package index), on the Python and with the pins
# scripts/airflow-matrix.txt names for it, this provider (editable) and the test tools, resolved
# together in one install, then runs every test that needs no whole deployment: unit, integration
# against the emulator, dag.test() runs, and `airflow dags test` of every example DAG. A leg named
# <airflow>+google also installs Google's provider (apache-airflow-providers-google, at the version
# its pins name) in that same install, as a Cloud Composer environment has it, and its tests of the
# two providers side by side must run (GEMINI_BATCH_GOOGLE_PROVIDER=require). Extra arguments go to
# pytest. The end-to-end tests (tests/e2e) run on the newest release only, through scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
leg=${1:?usage: scripts/matrix.sh LEG [pytest args], LEG from scripts/airflow-matrix.txt}
shift
read -r _ python pins < <(awk -v leg="$leg" '$1 == leg' scripts/airflow-matrix.txt) || {
  echo "$leg is not a leg of scripts/airflow-matrix.txt" >&2; exit 2; }
airflow=${leg%+google}
if [[ $airflow == *-pre ]]; then
  # A forward leg, <minor>-pre: the newest release or pre-release of that minor on the package index
  # (uv takes pre-releases of a package whose requirement names one).
  minor=${airflow%-pre}
  requirement="apache-airflow>=$minor.0a0,<${minor%%.*}.$((${minor#*.} + 1))"
else
  requirement="apache-airflow==$airflow"
fi
with=()
if [ "$leg" != "$airflow" ]; then
  with=(apache-airflow-providers-google)
  export GEMINI_BATCH_GOOGLE_PROVIDER=require
fi

# The interpreter: pythonX.Y on PATH, else one that pyenv built (its shims only answer for the
# version it is set to).
interpreter=""
for candidate in "$(command -v "python$python" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$python".*/bin/"python$python"; do
  if [ -x "$candidate" ] && "$candidate" -c "import sys" >/dev/null 2>&1; then interpreter=$candidate; break; fi
done
[ -n "$interpreter" ] || { echo "Python $python (for $leg) is not on this machine" >&2; exit 2; }

[ -x .venv/bin/uv ] || scripts/setup.sh
venv=.matrix/$leg
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf '%s\n' $pins > "$constraints"
export UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
[ -x "$venv/bin/python" ] || .venv/bin/uv venv --quiet --python "$interpreter" "$venv"
.venv/bin/uv pip install --quiet --python "$venv/bin/python" --constraint "$constraints" \
  "$requirement" "${with[@]}" -e ".[dev]"
# Two workers, handed the tests as scripts/test.sh's are (tests/conftest.py): the dag.test() runs
# wait on their polls half the time, and the leg would otherwise keep one core of two busy.
exec "$venv/bin/python" -m pytest --ignore=tests/e2e --numprocesses 2 --no-loadscope-reorder "$@"
