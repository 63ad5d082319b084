"""Beside Google's provider (apache-airflow-providers-google), as every Cloud Composer image has it:
both are listed by Airflow, Google's Gemini operators still import, and the two share one google-genai
at run time (Google's operator reads back the batch job this provider created, on the emulator).

These run where Google's provider is installed: the ``3.3.2+google`` leg of ``scripts/matrix.sh``,
which sets ``GEMINI_BATCH_GOOGLE_PROVIDER=require`` so that a missing provider fails them there
instead of skipping. Elsewhere they are skipped.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

from tests.conftest import API_KEY
from tests.dagbag import test_dag

if importlib.util.find_spec("airflow.providers.google") is None:
    if os.environ.get("GEMINI_BATCH_GOOGLE_PROVIDER") == "require":
        raise RuntimeError("GEMINI_BATCH_GOOGLE_PROVIDER=require, but apache-airflow-providers-google is not installed")
    pytest.skip("apache-airflow-providers-google is not installed", allow_module_level=True)

import google.genai
from airflow.providers.google.cloud.hooks import gen_ai as google_hooks
from airflow.providers.google.cloud.operators.gen_ai import (
    GenAIGeminiCancelBatchJobOperator,
    GenAIGeminiCreateBatchJobOperator,
    GenAIGeminiGetBatchJobOperator,
)
from airflow.sdk import DAG

from gemini_batch_provider.hooks import gemini as our_hook
from gemini_batch_provider.operators.results import GeminiBatchResultsOperator
from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
from gemini_batch_provider.sensors.batch import GeminiBatchJobSensor

pytestmark = pytest.mark.integration

RECORDS = [{"id": f"doc-{i}", "text": f"Document {i} is about topic {i % 3}."} for i in range(5)]


def test_airflow_lists_both_providers():
    airflow = Path(sys.executable).parent / "airflow"
    listed = subprocess.run([str(airflow), "providers", "list", "-o", "json"], capture_output=True, text=True,
                            check=True, stdin=subprocess.DEVNULL)
    packages = {provider["package_name"] for provider in json.loads(listed.stdout)}
    assert {"apache-airflow-providers-google", "airflow-provider-gemini-batch"} <= packages


def test_googles_gemini_operators_import_beside_this_provider():
    operators = (GenAIGeminiCreateBatchJobOperator, GenAIGeminiGetBatchJobOperator, GenAIGeminiCancelBatchJobOperator)
    assert all(op(task_id="t", **_required(op)).task_id == "t" for op in operators)
    assert google_hooks.genai is our_hook.genai is google.genai  # one SDK for both


def _required(operator: type) -> dict[str, object]:
    """Values for an operator's required arguments, enough to build it."""
    values = {"gemini_api_key": "k", "job_name": "batches/x", "model": "gemini-2.5-flash",
              "input_source": "files/x", "project_id": "p", "location": "us-central1"}
    required = [name for name, p in inspect.signature(operator.__init__).parameters.items()
                if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY and name != "task_id"]
    return {name: values[name] for name in required}


def test_googles_operator_reads_the_job_this_provider_created(airflow_db, emulator, gemini_conn, monkeypatch,
                                                              tmp_path):
    # Google's hook builds its client from the API key alone: the SDK's own variable points it here.
    # It also reads a Google Cloud connection, which it does not use for the Gemini API.
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps({"conn_type": "google_cloud_platform"}))
    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    common = {"input_path": str(source), "output_path": str(output), "prompt_template": "Summarize: {text}",
              "key_field": "id"}
    with DAG(dag_id="beside_google", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        submit = GeminiSubmitBatchOperator(task_id="submit", **common)
        wait = GeminiBatchJobSensor(task_id="wait", job_names=submit.output, poke_interval=0.2, deferrable=True)
        read = GenAIGeminiGetBatchJobOperator(task_id="google_get", gemini_api_key=API_KEY, project_id="p",
                                              location="us-central1",
                                              job_name="{{ ti.xcom_pull(task_ids='submit')[0] }}")
        land = GeminiBatchResultsOperator(task_id="land", job_names=submit.output, **common)
        submit >> wait >> read >> land
    dag_run = test_dag(dag, tmp_path / "no-dags")

    assert dag_run.state == "success"
    [job_name] = dag_run.get_task_instance("submit").xcom_pull(task_ids="submit")
    seen_by_google = dag_run.get_task_instance("google_get").xcom_pull(task_ids="google_get")
    [job] = emulator.state.store.batches.values()
    assert (seen_by_google["name"], seen_by_google["state"]) == (job_name, "JOB_STATE_SUCCEEDED")
    assert seen_by_google["display_name"] == job.resource["displayName"]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and {r["status"] for r in rows} == {"succeeded"}
