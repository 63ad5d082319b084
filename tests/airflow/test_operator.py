"""GeminiBatchOperator run by Airflow itself (``dag.test()``, triggers run in line) against the emulator."""

from __future__ import annotations

import json

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import API_KEY

pytestmark = pytest.mark.integration

RECORDS = [{"id": f"doc-{i}", "text": f"Document {i} is about topic {i % 3}. It has two sentences."} for i in range(7)]


def _run_dag(tmp_path, dag_id, records):
    tmp_path.mkdir(exist_ok=True)
    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    from tests.conftest import DAGS_FOLDER

    dag_run = DagBag(dag_folder=DAGS_FOLDER).get_dag(dag_id).test(run_conf={"in": str(source), "out": str(output)})
    rows = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return dag_run, rows



@pytest.mark.parametrize("dag_id", ["gemini_op_deferrable", "gemini_op_polling"])
def test_lands_one_row_per_record(airflow_db, emulator, gemini_conn, tmp_path, dag_id):
    dag_run, rows = _run_dag(tmp_path, dag_id, RECORDS)
    assert dag_run.state == "success"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    prompts = {r["id"]: f"Summarize: {r['text']}" for r in RECORDS}
    assert all(r["status"] == "succeeded" and r["text"] and r["text"] in prompts[r["key"]] for r in rows)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["rows"] == 7 and summary["counts"] == {"succeeded": 7, "failed": 0, "missing": 0}
    assert summary["path"] == "batch" and summary["rows_by_path"] == {"batch": 7}
    assert summary["usage"]["total_token_count"] == sum(r["usage"]["total_token_count"] for r in rows)
    [job] = summary["batch_jobs"]
    job_id = job.removeprefix("batches/")
    assert emulator.state.store.batches[job_id].resource["displayName"] == f"airflow:{dag_id}:batch:{dag_run.run_id}:-1"
    # The uploaded input file was deleted; only the job's output file remains.
    assert list(emulator.state.store.files) == [f"batch-{job_id}"]
    assert API_KEY not in json.dumps(summary)


def test_bad_input_fails_before_anything_is_uploaded(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = _run_dag(tmp_path, "gemini_op_deferrable", [*RECORDS, {"id": "doc-0", "text": "a duplicate"}])
    assert dag_run.state == "failed"
    assert emulator.state.store.files == {} and emulator.state.store.batches == {}
    assert rows == [] and list(tmp_path.glob("results.jsonl*")) == []


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_a_job_that_did_not_succeed_fails_the_task_with_its_state(state):
    from airflow.sdk.exceptions import AirflowException

    from gemini_batch_provider.triggers.batch import finish_event
    from tests.conftest import DAGS_FOLDER

    task = DagBag(dag_folder=DAGS_FOLDER).get_dag("gemini_op_deferrable").get_task("batch")
    event = finish_event([{"name": "batches/abc", "state": state, "output_file": None}])
    with pytest.raises(AirflowException, match=f"batch: batch jobs did not succeed: batches/abc {state}"):
        task.execute_complete(context={}, event=event)


def test_online_operator_lands_the_same_schema_and_summary(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.state.faults.config.error_503_rate = 0.3  # some calls fail and are retried
    dag_run, rows = _run_dag(tmp_path, "gemini_op_online", RECORDS)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)
    assert all(set(r) == {"key", "status", "path", "text", "usage", "error"} for r in rows)
    assert all(r["status"] == "succeeded" and r["path"] == "online" for r in rows)
    summary = dag_run.get_task_instance("online").xcom_pull(task_ids="online")
    assert summary["path"] == "online" and summary["batch_jobs"] == []
    assert summary["counts"] == {"succeeded": 7, "failed": 0, "missing": 0}
    assert emulator.state.counters["503"] > 0 and emulator.state.store.batches == {}


def test_auto_mode_routes_small_sets_online_and_large_ones_to_batch(airflow_db, emulator, gemini_conn, tmp_path):
    small_run, small_rows = _run_dag(tmp_path / "small", "gemini_op_auto", RECORDS[:5])
    assert small_run.state == "success" and {r["path"] for r in small_rows} == {"online"}
    assert emulator.state.store.batches == {}
    large_run, large_rows = _run_dag(tmp_path / "large", "gemini_op_auto", RECORDS)
    assert large_run.state == "success" and {r["path"] for r in large_rows} == {"batch"}
    assert len(emulator.state.store.batches) == 1


def test_deadline_cancels_the_batch_and_finishes_every_row_online(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.state.batches.pending_s = 60  # the batch would not finish before the 1 s deadline
    dag_run, rows = _run_dag(tmp_path, "gemini_op_deadline", RECORDS)
    assert dag_run.state == "success"
    [batch] = emulator.state.store.batches.values()
    assert batch.resource["state"] == "BATCH_STATE_CANCELLED"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row exactly once
    assert all(r["status"] == "succeeded" and r["path"] == "online" for r in rows)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["path"] == "batch+online" and summary["rows_by_path"] == {"online": 7}
    assert sum(summary["counts"].values()) == summary["rows"] == 7


@pytest.mark.parametrize(("code", "rerun"), [(503, True), (400, False)])
def test_retryable_row_errors_of_the_batch_run_again_online(airflow_db, emulator, gemini_conn, tmp_path, code, rerun):
    from gemini_batch_provider.emulator import RowErrors

    emulator.state.batches.row_errors = errors = RowErrors(rate=0.4, code=code)
    hit = {r["id"] for r in RECORDS if errors.hits(r["id"])}
    assert 0 < len(hit) < len(RECORDS)  # the rate and keys give both kinds of row
    dag_run, rows = _run_dag(tmp_path, "gemini_op_rerun", RECORDS)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row once
    by_key = {r["key"]: r for r in rows}
    for key, row in by_key.items():
        if key not in hit:
            assert (row["status"], row["path"]) == ("succeeded", "batch")
        elif rerun:
            assert (row["status"], row["path"], row["error"]) == ("succeeded", "online", None)
        else:
            assert (row["status"], row["path"], row["error"]["code"]) == ("failed", "batch", 400)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["rows"] == 7 and sum(summary["counts"].values()) == 7
    if rerun:
        assert summary["path"] == "batch+online"
        assert summary["rows_by_path"] == {"batch": 7 - len(hit), "online": len(hit)}
    else:
        assert summary["path"] == "batch" and summary["counts"]["failed"] == len(hit)
