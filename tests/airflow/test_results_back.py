"""Rows out: a downstream task reads the rows back by the summary alone (``gemini_batch_provider.results``),
through real Airflow (``dag.test()``)."""

from __future__ import annotations

import json

import pendulum
import pytest

from tests.conftest import RECORDS
from tests.dagbag import test_dag


def test_a_downstream_task_reads_the_rows_by_status_as_dicts_and_as_a_dataframe(airflow_db, emulator, gemini_conn,
                                                                              tmp_path):
    from airflow.sdk import DAG, task

    from gemini_batch_provider.emulator.batches import RowErrors
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    emulator.configure("batches", row_errors=RowErrors(rate=0.4, code=3))  # some rows answered with an error
    with DAG(dag_id="read_back", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        summary = GeminiBatchOperator(task_id="summarize", records=RECORDS, key_field="id", reuse=False,
                                      prompt_template="Summarize: {text}", output_path=str(tmp_path / "out.jsonl"),
                                      poll_interval=0.2).output

        @task
        def report(summary: dict) -> dict:
            from gemini_batch_provider.results import read_results, results_frame

            failed = [row["key"] for row in read_results(summary, status="failed")]
            frame = results_frame(summary, status=["succeeded", "failed"])
            return {"failed": failed, "frame_keys": sorted(frame["key"]), "columns": sorted(frame.columns),
                    "succeeded_texts": int(frame[frame["status"] == "succeeded"]["text"].notna().sum())}

        report(summary)
    dag_run = test_dag(dag, tmp_path / "bag")
    assert dag_run.state == "success"
    got = dag_run.get_task_instance("report").xcom_pull(task_ids="report")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    failed = [r["key"] for r in rows if r["status"] == "failed"]
    assert 0 < len(failed) < len(RECORDS) and got["failed"] == failed  # in the file's order
    assert got["frame_keys"] == sorted(r["id"] for r in RECORDS)
    assert got["succeeded_texts"] == len(RECORDS) - len(failed)
    assert {"key", "status", "path", "text", "usage", "error"} <= set(got["columns"])


def test_reading_back_says_what_is_wrong(tmp_path):
    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.results import read_results

    with pytest.raises(InputError, match=r"unknown row status \['done'\]; a row's status is one of \['succeeded'"):
        next(read_results(str(tmp_path / "x.jsonl"), status="done"))
    with pytest.raises(InputError, match="a summary names its results file in 'output_path'; this one has keys"):
        next(read_results({"rows": 3}))
    with pytest.raises(InputError, match=r"no results file at .*x\.jsonl; the task that writes it has not landed"):
        next(read_results(str(tmp_path / "x.jsonl")))
