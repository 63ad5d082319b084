"""Nothing read back is trusted alone: a task instance run again (a cleared task, a retry) over a
ledger or keys file that was damaged, or that names jobs not its own, is refused with a LedgerError
naming the file and the way out, and lands nothing over the first run's results.

Each case runs ``GeminiBatchOperator`` twice through ``dag.test()`` with the same run id, damaging
the files in between, as a person or another process could.
"""

from __future__ import annotations

import json
import re
import uuid

import pendulum
import pytest
from airflow.sdk import DAG

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from tests.dagbag import recording_failures, test_dag

pytestmark = pytest.mark.integration

RECORDS = [{"id": f"k{i:03d}", "text": f"Row {i} is about topic {i % 5}."} for i in range(40)]
WHEN = pendulum.datetime(2026, 3, 1, tz="UTC")


DAMAGED_KEYS = {
    "cut to its first 20 keys": (lambda lines: lines[:20], r"\[20\] keys per shard where the shards had \[40\]"),
    "one key written over another": (lambda lines: [*lines[:39], lines[0]], "line 40 repeats the key 'k000'"),
    "a key the input does not have": (lambda lines: [*lines, '["k999", 0]'], r"\[41\] keys per shard"),
    "cut mid-line": (lambda lines: [*lines[:30], lines[30][:4]], r"line 31 is not a \[key, shard\] pair"),
}


class Run:
    """The DAG of one ``GeminiBatchOperator`` over ``RECORDS``, run again with the same run id."""

    def __init__(self, tmp_path):
        self.folder = tmp_path
        self.source, self.output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
        self.ledger = tmp_path / "results.jsonl.gemini-batch.json"
        self.keys = tmp_path / "results.jsonl.gemini-batch-keys.jsonl"
        self.source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
        self.task = recording_failures(GeminiBatchOperator)
        # A DAG id of its own: tests side by side must not share a task instance's scratch folder.
        dag_id = f"read_back_{uuid.uuid4().hex[:8]}"
        with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as self.dag:
            self.task(task_id="batch", input_path=str(self.source), output_path=str(self.output),
                      prompt_template="Summarize: {text}", key_field="id", poll_interval=0.2)

    def __call__(self):
        dag_run = test_dag(self.dag, self.folder / "no-dags", logical_date=WHEN, run_after=WHEN)
        return dag_run.state, [json.loads(line) for line in self.output.read_text().splitlines()]


@pytest.mark.parametrize("case", DAMAGED_KEYS)
def test_a_damaged_keys_file_is_refused_and_lands_nothing_over_the_first_run(airflow_db, emulator, gemini_conn,
                                                                            tmp_path, case):
    run = Run(tmp_path)
    state, rows = run()
    assert state == "success" and [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    first = run.output.read_text()
    damage, why = DAMAGED_KEYS[case]
    run.keys.write_text("".join(line + "\n" for line in damage(run.keys.read_text().splitlines())))

    state, _ = run()
    assert state == "failed" and run.output.read_text() == first  # nothing landed over run 1's rows
    [error] = set(run.task.errors)  # raised once (execute_complete called in line by execute records it too)
    assert error.startswith("LedgerError: ") and str(run.keys) in error and str(run.ledger) in error
    assert re.search(why, error), error
    assert len(emulator.state.store.batches) == 1  # nothing submitted again


def test_a_ledger_naming_another_inputs_job_is_refused(airflow_db, emulator, client, gemini_conn, tmp_path):
    run = Run(tmp_path)
    assert run()[0] == "success"
    first = run.output.read_text()
    # A job created for another input with the same keys, as another task could have made it.
    other_input = tmp_path / "other.jsonl"
    other_input.write_text("".join(
        json.dumps({"key": r["id"], "request": {"contents": [{"parts": [{"text": "Another input."}]}]}}) + "\n"
        for r in RECORDS))
    uploaded = client.files.upload(file=str(other_input), config={"mime_type": "jsonl"})
    other = client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config={"display_name": "another"})
    ledger = json.loads(run.ledger.read_text())
    ledger["shards"][0]["job"] = other.name
    run.ledger.write_text(json.dumps(ledger))

    state, _ = run()
    assert state == "failed" and run.output.read_text() == first
    [error] = set(run.task.errors)  # raised once (execute_complete called in line by execute records it too)
    assert error.startswith("LedgerError: ") and str(run.ledger) in error
    assert f"is {other.name}, but that job is 'another'" in error and "another input's job" in error


@pytest.mark.parametrize(("shards", "why"), [
    ([], "it records no shard"),
    ("batches/gone-0001", "batches/gone-0001, which the API no longer knows"),
])
def test_a_ledger_with_no_shard_or_a_job_the_api_no_longer_knows_is_refused(airflow_db, emulator, gemini_conn,
                                                                           tmp_path, shards, why):
    run = Run(tmp_path)
    assert run()[0] == "success"
    ledger = json.loads(run.ledger.read_text())
    if isinstance(shards, str):
        ledger["shards"][0]["job"] = shards
    else:
        ledger["shards"] = shards
    run.ledger.write_text(json.dumps(ledger))

    state, rows = run()
    assert state == "failed" and len(rows) == len(RECORDS)
    [error] = set(run.task.errors)  # raised once (execute_complete called in line by execute records it too)
    assert error.startswith("LedgerError: ") and str(run.ledger) in error and why in error
    assert "Restore" in error and "to submit everything anew, paying again" in error  # the way out
    assert len(emulator.state.store.batches) == 1
