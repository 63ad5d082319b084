"""Every example DAG through ``airflow dags test`` (no scheduler, no triggerer: Airflow runs the
tasks and the triggers in one process), on the emulator, checked for one result row per input row.

This is what the Airflow version matrix in ``.ci/run`` runs on each older Airflow 3 release; the
end-to-end tests run the same DAGs through a real deployment on the newest one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import BIN, Stack  # noqa: E402

pytestmark = pytest.mark.integration

# Each example that lands results: its input file (written by its first task) and the key field.
LANDING = {
    "gemini_batch_nightly": ("input.jsonl", "module", {}),
    "gemini_images": ("photos.jsonl", "photo_id", {"photo_limit": 12}),
    "gemini_urgent": ("topics.jsonl", "topic", {}),
    "gemini_vertex_batch": ("builtins.jsonl", "name", {}),
}


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("dags-test"),
                  emulator_args=("--batch-pending-seconds", "1", "--batch-running-seconds", "2"))
    try:
        stack.start_emulators()
        # The DAGs registered as a dag-processor would: that makes their assets active, which a
        # task with asset inlets or outlets needs (Airflow 3.0's `dags test` does not do it itself).
        stack.airflow(["db", "migrate"], ["dags", "reserialize"])
        yield stack
    finally:
        stack.stop()


def dags_test(stack: Stack, dag_id: str, conf: dict) -> str:
    """``airflow dags test DAG_ID -c CONF``; returns the run's id once the metadata database says it
    succeeded (the command's exit code and output differ between Airflow releases)."""
    done = subprocess.run([str(BIN / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)], env=stack.env,
                          cwd=stack.home, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    with sqlite3.connect(stack.home / "airflow.db") as db:
        runs = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
    output = done.stdout[-5000:] + done.stderr[-5000:]
    assert [state for _, state in runs] == ["success"], output
    return runs[0][0]


@pytest.mark.parametrize("dag_id", sorted(LANDING))
def test_each_example_dag_lands_one_row_per_input_row(emulators, tmp_path, dag_id):
    input_name, key_field, conf = LANDING[dag_id]
    run_id = dags_test(emulators, dag_id, {**conf, "output_dir": str(tmp_path)})
    folder = tmp_path / run_id
    keys = [json.loads(line)[key_field] for line in (folder / input_name).read_text().splitlines()]
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert len(keys) >= 12
    assert sorted(r["key"] for r in rows) == sorted(keys)  # exactly one row per input row
    assert all(r["status"] == "succeeded" for r in rows)


def test_the_report_dag_runs_with_no_results_to_report(emulators):
    """Scheduled on the nightly results asset; run by hand with no asset event, it reports nothing."""
    dags_test(emulators, "gemini_results_report", {})


def test_every_example_dag_is_tested_here():
    assert {p.stem for p in (REPO / "dags").glob("*.py")} == {*LANDING, "gemini_results_report"}
