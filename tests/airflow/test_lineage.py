"""OpenLineage: with the real OpenLineage provider installed and its file transport configured, a
``dag.test()`` run emits the events Airflow's listener builds from the operators'
``get_openlineage_facets_on_*``, and the test reads them back from the file.

The run is a subprocess: the provider decides once per process, when its plugin loads, whether
lineage is on (``[openlineage] transport`` set), and the other tests' runs must not emit any."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.openlineage")

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
from gemini_batch_provider.lineage import dataset_name
from tests.conftest import API_KEY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = [{"id": f"doc-{i}", "text": f"Document {i} is about topic {i % 3}."} for i in range(6)]

DAG_SCRIPT = """
import sys
import pendulum
from airflow.sdk import DAG
from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator
from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
from tests.dagbag import test_dag

source, folder = sys.argv[1], sys.argv[2]
with DAG(dag_id="gemini_lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    GeminiBatchOperator(task_id="batch", input_path=source, output_path=f"{folder}/batch.jsonl", key_field="id",
                        prompt_template="Summarize: {text}", model="gemini-3-flash-preview", poll_interval=0.2,
                        deferrable=False)
    GeminiConcurrentGenerateOperator(task_id="urgent", records=[{"id": "a", "text": "Now."}], key_field="id",
                                     output_path=f"{folder}/urgent.jsonl", prompt_template="Answer: {text}",
                                     model="gemini-3-flash-preview")
    GeminiSubmitBatchOperator(task_id="submit", records=[{"id": "b", "text": "Later."}], key_field="id",
                              output_path=f"{folder}/submit.jsonl", prompt_template="Answer: {text}",
                              model="gemini-3-flash-preview")
run = test_dag(dag, f"{folder}/no-dags")
sys.exit(0 if run.state == "success" else 1)
"""


@pytest.fixture(scope="module")
def lineage_run(airflow_db, tmp_path_factory):
    """The DAG run with lineage on, against an emulator of its own: its events by (task id, event
    type), the input file and the run's folder."""
    folder = tmp_path_factory.mktemp("lineage")
    source, events = folder / "rows.jsonl", folder / "events.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    with EmulatorThread(EmulatorConfig(batch_pending_s=0.1, batch_running_s=0.2)) as emulator:
        env = {**os.environ,
               "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                              "append": True}),
               "AIRFLOW__OPENLINEAGE__NAMESPACE": "tests",
               "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps({"conn_type": "gemini", "password": API_KEY,
                                                          "extra": {"base_url": emulator.base_url}}),
               "PYTHONPATH": str(REPO)}
        run = subprocess.run([sys.executable, "-c", DAG_SCRIPT, str(source), str(folder)], env=env, cwd=REPO,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = {}
    for event in map(json.loads, events.read_text().splitlines()):
        task = event["job"]["name"].rpartition(".")[2]
        found[task, event["eventType"]] = event
    return found, source, folder


def test_a_batch_run_reports_its_input_and_results_files_and_its_job(lineage_run):
    events, source, tmp_path = lineage_run

    start = events["batch", "START"]
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [("file", str(source))]
    assert [(d["namespace"], d["name"]) for d in start["outputs"]] == [("file", str(tmp_path / "batch.jsonl"))]

    complete = events["batch", "COMPLETE"]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [("file", str(source))]
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(tmp_path / "batch.jsonl"))
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == len(ROWS)
    facet = complete["run"]["facets"]["geminiBatch"]
    [job] = facet["batchJobs"]
    assert job.startswith("batches/")
    assert facet["model"] == "gemini-3-flash-preview"
    assert facet["rows"] == len(ROWS) and facet["counts"]["succeeded"] == len(ROWS)
    assert facet["path"] == "batch" and facet["costUsd"] > 0
    assert complete["run"]["facets"]["externalQuery"] == {
        **complete["run"]["facets"]["externalQuery"], "externalQueryId": job, "source": "gemini"}


def test_records_online_have_no_input_dataset_and_no_job(lineage_run):
    events, _, tmp_path = lineage_run
    complete = events["urgent", "COMPLETE"]
    assert complete["inputs"] == []  # records given to the task are no dataset
    assert [d["name"] for d in complete["outputs"]] == [str(tmp_path / "urgent.jsonl")]
    facet = complete["run"]["facets"]["geminiBatch"]
    assert facet["batchJobs"] == [] and facet["path"] == "online" and facet["rows"] == 1
    assert "externalQuery" not in complete["run"]["facets"]


def test_a_submit_reports_its_job_and_no_results_file(lineage_run):
    events, _, _ = lineage_run
    complete = events["submit", "COMPLETE"]
    assert complete["inputs"] == [] and complete["outputs"] == []  # it writes no results
    facet = complete["run"]["facets"]["geminiBatch"]
    [job] = facet["batchJobs"]
    assert job.startswith("batches/") and facet.get("rows") is None  # nothing landed yet
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == job


@pytest.mark.parametrize(("location", "expected"), [
    ("/data/in.jsonl", ("file", "/data/in.jsonl")),
    ("file:///data/in.jsonl", ("file", "/data/in.jsonl")),
    ("s3://bucket/a/in.jsonl", ("s3://bucket", "a/in.jsonl")),
    ("gs://bucket/a/in.jsonl", ("gs://bucket", "a/in.jsonl")),
    ("https://example.com:8443/a/in.jsonl", ("https://example.com:8443", "/a/in.jsonl")),
])
def test_dataset_names_follow_the_openlineage_naming_spec(location, expected):
    assert dataset_name(location) == expected
