"""A task that succeeded logs no ERROR line, through real Airflow (``dag.test()``, whose task runs
log to the console): on the paths that create no batch job (online, reused) as on the batch one."""

from __future__ import annotations

import json
import re
import uuid

import pendulum
import pytest

from tests.conftest import RECORDS
from tests.dagbag import test_dag

ERROR_LINE = re.compile(r"\[(error|critical)\s*\]|\bERROR\b")


@pytest.mark.parametrize("mode", ["online", "batch"])
def test_a_successful_run_logs_no_error_line_with_or_without_a_job(airflow_db, emulator, gemini_conn, tmp_path,
                                                                   capfd, mode):
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    for night in (1, 2):  # night 2 reuses every answer: no job, nothing sent
        with DAG(dag_id=f"logs_{uuid.uuid4().hex[:8]}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            GeminiBatchOperator(task_id="run", input_path=str(source), output_path=str(tmp_path / f"out-{night}.jsonl"),
                                key_field="id", prompt_template="Summarize: {text}", mode=mode, poll_interval=0.2,
                                answer_store=str(tmp_path / "answers"))
        capfd.readouterr()
        dag_run = test_dag(dag, tmp_path / f"bag-{night}")
        output = capfd.readouterr()
        assert dag_run.state == "success"
        summary = dag_run.get_task_instance("run").xcom_pull(task_ids="run")
        assert summary["rows_by_path"] == ({mode: 7} if night == 1 else {"reused": 7})
        errors = [line for line in (output.out + output.err).splitlines() if ERROR_LINE.search(line)]
        assert errors == [], errors
