"""A bad-row policy, through real Airflow (``dag.test()``) against the emulator: ``fail`` (the
default) refuses the run before anything is sent; ``land`` lands each bad row ``failed``, path
``refused``, with its reason, and sends the rest, on every path."""

from __future__ import annotations

import json
import uuid

import pendulum
import pytest

from tests.conftest import RECORDS
from tests.dagbag import recording_failures, test_dag

BAD = [{"id": "null-text", "text": None}, {"id": "nested", "text": {"title": "a dict"}}]


def _run(tmp_path, **options):
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    operator = recording_failures(GeminiBatchOperator)
    name = uuid.uuid4().hex[:8]
    source, output = tmp_path / f"in-{name}.jsonl", tmp_path / f"out-{name}.jsonl"
    rows = [*RECORDS[:3], BAD[0], *RECORDS[3:], BAD[1]]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with DAG(dag_id=f"bad_rows_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        operator(task_id="run", input_path=str(source), output_path=str(output), key_field="id",
                 prompt_template="Summarize: {text}", poll_interval=0.2, delete_input_files=False, **options)
    dag_run = test_dag(dag, tmp_path / f"bag-{name}")
    landed = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return dag_run, landed, dag_run.get_task_instance("run").xcom_pull(task_ids="run"), operator.errors


def test_by_default_a_bad_row_fails_the_run_naming_its_key_before_anything_is_sent(airflow_db, emulator, gemini_conn,
                                                                                 tmp_path):
    dag_run, landed, _, errors = _run(tmp_path)
    assert dag_run.state == "failed" and landed == []
    assert "row 3 (key 'null-text'): field 'text' used by prompt_template is missing or null" in errors[-1]
    assert emulator.state.counters["uploads"] == 0 and not emulator.state.store.batches


@pytest.mark.parametrize("mode", ["batch", "online", "flex"])
def test_under_land_bad_rows_land_failed_with_their_reason_and_the_rest_are_sent(airflow_db, emulator, gemini_conn,
                                                                               tmp_path, mode):
    dag_run, landed, summary, _ = _run(tmp_path, on_bad_row="land", mode=mode, reuse=False)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in landed) == sorted([*(r["id"] for r in RECORDS), "null-text", "nested"])
    refused = {r["key"]: r for r in landed if r["path"] == "refused"}
    assert sorted(refused) == ["nested", "null-text"] and {r["status"] for r in refused.values()} == {"failed"}
    assert "row 3 (key 'null-text'): field 'text' used by prompt_template" in refused["null-text"]["error"]["message"]
    assert "row 8 (key 'nested'): field 'text' is a dict" in refused["nested"]["error"]["message"]
    assert {r["status"] for r in landed if r["path"] != "refused"} == {"succeeded"}
    assert summary["rows"] == 9 and summary["counts"]["failed"] == 2
    assert summary["rows_by_path"] == {mode: 7, "refused": 2}
    if mode == "batch":  # the job's input holds the good rows alone
        [job] = emulator.state.store.batches.values()
        assert job.resource["batchStats"]["requestCount"] == "7"


def test_refused_rows_stay_refused_on_a_night_that_reuses_the_rest(airflow_db, emulator, gemini_conn, tmp_path):
    store = str(tmp_path / "answers")
    _run(tmp_path, on_bad_row="land", answer_store=store)
    dag_run, landed, summary, _ = _run(tmp_path, on_bad_row="land", answer_store=store)
    assert dag_run.state == "success" and summary["rows_by_path"] == {"reused": 7, "refused": 2}
    assert [r["key"] for r in landed if r["path"] == "refused"] == ["null-text", "nested"]
    assert len(emulator.state.store.batches) == 1  # night 2 sent nothing


def test_the_submit_operator_refuses_the_lenient_policy_when_the_dag_is_parsed():
    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator

    with pytest.raises(InputError, match="submit: on_bad_row='land' is for the operators that land their rows"):
        GeminiSubmitBatchOperator(task_id="submit", records=RECORDS, prompt_template="{text}",
                                  output_path="/tmp/o.jsonl", on_bad_row="land")
