"""The example DAGs through a real Airflow deployment: api-server, scheduler, dag-processor and
triggerer as separate processes (LocalExecutor, SQLite), the emulator as its own process."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import Stack  # noqa: E402

pytestmark = pytest.mark.e2e

DAG_ID = "gemini_batch_nightly"
API_KEY = "e2e-recognisable-key-5b1f0c"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("airflow"), api_key=API_KEY,
               env={"GEMINI_BATCH_POLL_INTERVAL": "1"},
               emulator_args=("--batch-pending-seconds", "1", "--batch-running-seconds", "2")) as running:
        running.wait_for_dag(DAG_ID)
        running.wait_for_dag("gemini_results_report")
        yield running


def test_api_server_serves_the_connection_form(stack):
    [gemini] = [h for h in stack.get("/ui/connections/hook_meta") if h["connection_type"] == "gemini"]
    assert gemini["hook_name"] == "Google Gemini"
    form = json.dumps(gemini)
    assert all(field in form for field in ("base_url", "api_version", "vertexai", "project", "location", "API key"))


def test_the_connection_form_test_lists_the_models_or_says_what_is_missing(stack):
    extra = json.dumps({"base_url": stack.emulator_url})
    body = {"connection_id": "gemini_form", "conn_type": "gemini", "extra": extra}
    tested = stack.post("/api/v2/connections/test", {**body, "password": API_KEY})
    assert tested["status"] is True and "models visible" in tested["message"]
    assert "gemini-3.1-pro-preview" in tested["message"] and API_KEY not in tested["message"]
    missing = stack.post("/api/v2/connections/test", body)
    assert missing["status"] is False and "has no API key: put the Gemini API key in its password" in missing["message"]


def test_the_scheduled_nightly_run_defers_and_lands_one_row_per_module(stack):
    # The run the scheduler makes as the DAG comes on (its latest interval: catchup is off), as in the demo.
    run_id = stack.wait_for_run_of_type(DAG_ID, "scheduled")
    result = stack.wait_for_run(DAG_ID, run_id, timeout=600)
    task_log = stack.task_log(DAG_ID, run_id, "summarize_modules")
    assert result["state"] == "success", task_log
    assert stack.error_lines(DAG_ID, run_id) == []  # no ERROR line in a run that succeeded
    # The wait happened in the triggerer, not in a worker slot (the run may have ended before this
    # test first looked: Airflow's own log line says the task deferred).
    assert "Pausing task as DEFERRED" in task_log
    [trigger_log] = stack.trigger_logs(DAG_ID, run_id, "summarize_modules")
    trigger_text = trigger_log.read_text()
    assert "ended: JOB_STATE_SUCCEEDED" in trigger_text and "requests done" in trigger_text  # progress logged

    input_path = Path(stack.xcom(DAG_ID, run_id, "prepare_input"))
    modules = [json.loads(line)["module"] for line in input_path.read_text().splitlines()]
    summary = stack.xcom(DAG_ID, run_id, "summarize_modules")
    rows = [json.loads(line) for line in Path(summary["output_path"]).read_text().splitlines()]
    assert len(modules) > 300
    assert sorted(r["key"] for r in rows) == sorted(modules)  # exactly one row per input row
    assert all(r["status"] == "succeeded" for r in rows)
    assert all(r["parsed"] == json.loads(r["text"]) for r in rows)  # structured output, validated
    assert all(r["parsed"]["summary"].strip() and r["parsed"]["category"] for r in rows)
    assert summary["counts"] == {"succeeded": len(modules), "failed": 0, "invalid_output": 0, "missing": 0,
                                 "expired": 0, "cancelled": 0}
    assert len(summary["batch_jobs"]) == 1

    # The task links to its job in Google's console (the Gemini API: AI Studio's batch list).
    links = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/summarize_modules/links")
    assert links["extra_links"] == {"Gemini batch job": "https://aistudio.google.com/batches"}

    # The results asset's event carries the summary; it schedules the report DAG, which reads the
    # results the events name (Airflow may gather several runs' events into one report run).
    events = stack.get("/api/v2/assets/events?limit=100")["asset_events"]
    assert [e["extra"]["cost_usd"] for e in events if e["extra"].get("output_path") == summary["output_path"]] == [
        summary["cost_usd"]]
    for report in wait_for_reports(stack):
        landed = [json.loads(line) for line in Path(report["results"]).read_text().splitlines()]
        assert report["rows"] == len(landed)
        assert report["categories"] == dict(Counter(r["parsed"]["category"] for r in landed))



def test_images_dag_describes_each_photo_from_the_photo_itself(stack):
    run_id = stack.trigger("gemini_images", conf={"photo_limit": 12})
    result = stack.wait_for_run("gemini_images", run_id, timeout=600)
    assert result["state"] == "success", stack.task_log("gemini_images", run_id, "describe_photos")
    assert stack.error_lines("gemini_images", run_id) == []
    photos = [json.loads(line) for line in Path(stack.xcom("gemini_images", run_id, "list_photos")).read_text()
              .splitlines()]
    summary = stack.xcom("gemini_images", run_id, "describe_photos")
    rows = {r["key"]: r for r in map(json.loads, Path(summary["output_path"]).read_text().splitlines())}
    assert len(photos) == 12 and sorted(rows) == sorted(p["photo_id"] for p in photos)
    assert all(r["status"] == "succeeded" and r["parsed"]["people"] >= 0 for r in rows.values())
    # Each description comes from the photo (its size and colour, on the emulator).
    assert rows["astronaut"]["parsed"]["description"].startswith("A 512x512 image")
    assert rows["coffee"]["parsed"]["description"].startswith("A 600x400 image")
    assert len({r["parsed"]["description"] for r in rows.values()}) > 6


def wait_for_reports(stack, timeout=120):
    """The reports of the first gemini_results_report run (scheduled on the results asset) to succeed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in stack.get("/api/v2/dags/gemini_results_report/dagRuns")["dag_runs"]:
            if run["state"] == "success":
                assert run["run_type"] == "asset_triggered"
                assert stack.error_lines("gemini_results_report", run["dag_run_id"]) == []
                return stack.xcom("gemini_results_report", run["dag_run_id"], "report")
        time.sleep(1)
    raise TimeoutError(f"no gemini_results_report run succeeded within {timeout} s")


def test_row_limit_param_from_the_trigger_conf(stack):
    run_id = stack.trigger(DAG_ID, conf={"row_limit": 25})
    assert stack.wait_for_run(DAG_ID, run_id, timeout=600)["state"] == "success"
    summary = stack.xcom(DAG_ID, run_id, "summarize_modules")
    assert summary["rows"] == 25
    assert len(Path(summary["output_path"]).read_text().splitlines()) == 25



def test_urgent_dag_runs_online_and_lands_one_row_per_topic(stack):
    from pydoc_data.topics import topics

    run_id = stack.trigger("gemini_urgent", conf={"topic_limit": 1000})
    result = stack.wait_for_run("gemini_urgent", run_id, timeout=600)
    assert result["state"] == "success", stack.task_log("gemini_urgent", run_id, "explain_topics")
    assert stack.error_lines("gemini_urgent", run_id) == []  # online: no job, no link to look up
    assert "deferred" not in result["task_states_seen"]["explain_topics"]
    summary = stack.xcom("gemini_urgent", run_id, "explain_topics")
    rows = [json.loads(line) for line in Path(summary["output_path"]).read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(topics)
    assert all(r["status"] == "succeeded" and r["text"].strip() for r in rows)
    assert summary["path"] == "online" and summary["counts"]["succeeded"] == len(topics)


def test_vertex_dag_stages_in_cloud_storage_and_lands_one_row_per_builtin(stack):
    import builtins

    run_id = stack.trigger("gemini_vertex_batch")
    result = stack.wait_for_run("gemini_vertex_batch", run_id, timeout=600)
    assert result["state"] == "success", stack.task_log("gemini_vertex_batch", run_id, "summarize_builtins")
    assert stack.error_lines("gemini_vertex_batch", run_id) == []
    assert "deferred" in result["task_states_seen"]["summarize_builtins"]
    names = sorted(n for n in vars(builtins) if not n.startswith("_") and (getattr(builtins, n).__doc__ or "").strip())
    summary = stack.xcom("gemini_vertex_batch", run_id, "summarize_builtins")
    rows = [json.loads(line) for line in Path(summary["output_path"]).read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == names and all(r["status"] == "succeeded" for r in rows)
    assert len(summary["batch_jobs"]) == -(-len(names) // 50)  # 50 rows a job
    assert all("/batchPredictionJobs/" in name for name in summary["batch_jobs"])
    links = stack.get(f"/api/v2/dags/gemini_vertex_batch/dagRuns/{run_id}/taskInstances/summarize_builtins/links")
    assert links["extra_links"] == {
        "Gemini batch job": "https://console.cloud.google.com/vertex-ai/batch-predictions?project=emulator-project"}


def test_the_api_key_is_nowhere_airflow_kept(stack):
    """Runs that defer, succeed and fail, then everything Airflow kept is searched for the key: task
    and trigger logs, XCom, the trigger table's kwargs, rendered template fields, the
    metadata database whole, results, ledgers, component logs and exception messages."""
    import sqlite3

    from cryptography.fernet import Fernet

    fernet = Fernet(stack.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    trigger_kwargs: list[str] = []

    def capture_trigger_kwargs(task_id, state):
        if state == "deferred":
            with sqlite3.connect(stack.home / "airflow.db") as db:
                rows = [row[0] for row in db.execute("SELECT kwargs FROM trigger")]
            # Airflow 3.3 keeps them in clear JSON (it may encrypt them with the Fernet key).
            trigger_kwargs.extend(row if row.startswith("{") else fernet.decrypt(row.encode()).decode() for row in rows)

    # Results of its own, under the Airflow home (searched below): no earlier run's answers to reuse.
    nightly = stack.trigger(DAG_ID, conf={"row_limit": 30, "output_dir": str(stack.home / "key-search")})
    assert stack.wait_for_run(DAG_ID, nightly, on_poll=capture_trigger_kwargs)["state"] == "success"
    failing = stack.trigger("gemini_urgent", conf={"model": "gemini-9-ultra", "topic_limit": 5})
    assert stack.wait_for_run("gemini_urgent", failing)["state"] == "failed"
    error = stack.task_log("gemini_urgent", failing, "explain_topics")
    assert "model 'gemini-9-ultra' is not known to the API" in error and API_KEY not in error

    [job] = stack.xcom(DAG_ID, nightly, "summarize_modules")["batch_jobs"]
    assert trigger_kwargs and all(job in kwargs and API_KEY not in kwargs for kwargs in trigger_kwargs)
    for dag_id, run_id in ((DAG_ID, nightly), ("gemini_urgent", failing)):
        for ti in stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            assert API_KEY not in json.dumps(ti)  # rendered template fields included
            entries = stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries")
            for entry in entries["xcom_entries"]:
                assert API_KEY not in json.dumps(stack.xcom(dag_id, run_id, ti["task_id"], entry["key"]))
    # Every file under the Airflow home: logs of tasks, triggers and components, the metadata
    # database, inputs, results and ledgers.
    files = [path for path in stack.home.rglob("*") if path.is_file()]
    assert any(p.name.endswith(".gemini-batch.json") for p in files) and (stack.home / "airflow.db") in files
    assert [path for path in files if API_KEY.encode() in path.read_bytes()] == []


def test_two_nightly_runs_landing_into_one_answer_store_at_once_lose_nothing_and_the_next_night_sends_nothing(
        stack, tmp_path):
    # Two runs at once (a backfill beside the night, say), each landing its answers into the store
    # of the same output folder; then the next night, whose modules all were answered.
    conf = {"output_dir": str(tmp_path), "row_limit": 60}
    first, second = stack.trigger(DAG_ID, conf), stack.trigger(DAG_ID, conf)
    for run_id in (first, second):
        assert stack.wait_for_run(DAG_ID, run_id)["state"] == "success", stack.task_log(DAG_ID, run_id,
                                                                                          "summarize_modules")
    modules = {json.loads(line)["module"]
               for line in Path(stack.xcom(DAG_ID, first, "prepare_input")).read_text().splitlines()}
    parts = sorted((tmp_path / "answers").glob("answers-*.jsonl"))
    assert len(parts) == 2 and not list((tmp_path / "answers").glob("*.part"))
    for part in parts:  # each run's answers whole: one per module, every line a row
        rows = [json.loads(line) for line in part.read_text().splitlines()]
        assert sorted(r["key"] for r in rows) == sorted(modules) and all(r["request_digest"] for r in rows)

    night_2 = stack.trigger(DAG_ID, conf)
    assert stack.wait_for_run(DAG_ID, night_2)["state"] == "success"
    summary = stack.xcom(DAG_ID, night_2, "summarize_modules")
    assert summary["rows_by_path"] == {"reused": len(modules)} and summary["batch_jobs"] == []
    assert stack.error_lines(DAG_ID, night_2) == []  # no job: no link to look up, no ERROR line
    assert summary["cost_usd"] == 0 and summary["saved_cost_usd"] > 0
    rows = [json.loads(line) for line in Path(summary["output_path"]).read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(modules) and {r["reused_from"] for r in rows} == {"batch"}
