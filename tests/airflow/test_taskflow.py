"""TaskFlow in: ``records`` given as an upstream task's output, through real Airflow (``dag.test()``)."""

from __future__ import annotations

import json

import pendulum
import pytest

from tests.conftest import RECORDS
from tests.dagbag import recording_failures, test_dag


def test_records_from_an_upstream_task_land_each_row_once_and_their_strings_are_never_rendered(
        airflow_db, emulator, gemini_conn, tmp_path):
    from airflow.sdk import DAG, task

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    braces = {"id": "braces", "text": "A row that says {{ ds }} and {% raw %} as data."}

    with DAG(dag_id="taskflow_records", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        @task
        def make_records() -> list[dict[str, str]]:
            return [*RECORDS, braces]

        run = GeminiBatchOperator(task_id="summarize", records=make_records(), key_field="id",
                                  prompt_template="Summarize: {text}", output_path=str(tmp_path / "out.jsonl"),
                                  poll_interval=0.2, reuse=False, delete_input_files=False)
    assert run.upstream_task_ids == {"make_records"}  # the output is an input: Airflow orders the tasks
    dag_run = test_dag(dag, tmp_path / "bag")
    assert dag_run.state == "success"
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted([*(r["id"] for r in RECORDS), "braces"])
    [job] = emulator.state.store.batches.values()
    sent = emulator.state.store.file_path(job.resource["inputConfig"]["fileName"].removeprefix("files/")).read_text()
    [line] = [json.loads(line) for line in sent.splitlines() if '"braces"' in line]
    assert "A row that says {{ ds }} and {% raw %} as data." in line["request"]["contents"][0]["parts"][0]["text"]


def test_an_upstream_output_that_is_no_list_of_rows_fails_naming_the_task_before_anything_is_sent(
        airflow_db, emulator, gemini_conn, tmp_path):
    from airflow.sdk import DAG, task

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    operator = recording_failures(GeminiBatchOperator)
    with DAG(dag_id="taskflow_bad_records", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        @task
        def make_records() -> str:
            return "not rows"

        operator(task_id="summarize", records=make_records(), prompt_template="Summarize: {text}",
                 output_path=str(tmp_path / "out.jsonl"))
    assert test_dag(dag, tmp_path / "bag").state == "failed"
    assert "summarize: records must be a list of dicts, one per row; the upstream task gave str" in operator.errors[-1]
    assert not emulator.state.store.batches and emulator.state.counters["uploads"] == 0


@pytest.mark.parametrize("records", [[{"id": "a", "text": "x"}], ({"id": "a", "text": "x"} for _ in range(1))])
def test_records_given_in_the_dag_file_stay_as_they_are(records):
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    task = GeminiBatchOperator(task_id="t", records=records, prompt_template="{text}", output_path="/tmp/o.jsonl")
    assert repr(task.records) == "Records(1 rows)" and task.plan().records == ({"id": "a", "text": "x"},)
