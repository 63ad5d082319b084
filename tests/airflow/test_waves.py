"""A night bigger than the project's batch quota, through real Airflow (``dag.test()``, the trigger
run by Airflow's own deferral loop) against the emulator: the jobs go in waves, the task deferred
between them, every row lands once, and no shard gets a second job."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pendulum
import pytest

from tests.conftest import RECORDS
from tests.dagbag import test_dag


def _run(tmp_path, **options: Any):
    """One run of a one-task DAG on RECORDS, one shard per row (7 shards): its DagRun, its rows,
    its summary, and the statuses of the wait events the task resumed with, in order."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    events: list[str] = []

    class Recording(GeminiBatchOperator):
        def execute_complete(self, context, event):
            events.append(event["status"])
            return super().execute_complete(context, event)

    name = uuid.uuid4().hex[:8]
    source, output = tmp_path / f"in-{name}.jsonl", tmp_path / f"out-{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    with DAG(dag_id=f"waves_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        Recording(task_id="night", input_path=str(source), output_path=str(output), key_field="id",
                  prompt_template="Summarize: {text}", reuse=False, max_requests_per_job=1,
                  **{"deferrable": True, "poll_interval": 0.1, "max_poll_interval": 0.2, **options})
    (tmp_path / f"bag-{name}").mkdir()
    dag_run = test_dag(dag, tmp_path / f"bag-{name}")
    rows = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return dag_run, rows, dag_run.get_task_instance("night").xcom_pull(task_ids="night"), events


def _most_unfinished_at_once(emulator) -> int:
    """The most batch jobs the emulator had unfinished at one moment (from their create and end times)."""
    moments = []
    for batch in emulator.state.store.batches.values():
        moments += [(pendulum.parse(batch.resource["createTime"]), 1), (pendulum.parse(batch.resource["endTime"]), -1)]
    most = now = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a create at the same moment
        now += step
        most = max(most, now)
    return most


def _each_row_once(rows) -> bool:
    return sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)


@pytest.mark.parametrize(("told", "api_limit", "at_once"), [
    ({"max_concurrent_jobs": 2}, 2, 2),
    ({"max_enqueued_tokens": 100}, None, 3),  # each shard is about 32 tokens: 3 fit
    ({}, 2, 2),  # the task told nothing: the API's 429 on create tells it
], ids=["told the concurrent jobs", "told the enqueued tokens", "told nothing"])
def test_a_night_of_more_shards_than_the_quota_holds_lands_in_waves_each_shard_created_once(
        airflow_db, emulator, gemini_conn, tmp_path, told, api_limit, at_once):
    """A task told the quota never meets a 429; a task that was not told meets the API's 429 on
    create and waits for room instead of failing."""
    emulator.configure("batches", max_concurrent_jobs=api_limit)
    dag_run, rows, summary, events = _run(tmp_path, **told)

    assert dag_run.state == "success" and _each_row_once(rows)
    assert {r["status"] for r in rows} == {"succeeded"} and summary["rows"] == 7
    jobs = emulator.state.store.batches.values()
    assert len(jobs) == 7 and len({job.resource["displayName"] for job in jobs}) == 7  # a job per shard, once
    assert sorted(summary["batch_jobs"]) == sorted(job.resource["name"] for job in jobs)
    assert _most_unfinished_at_once(emulator) == at_once
    # The task was deferred between waves: it resumed for room at least twice (7 jobs, at most 3
    # at a time), then once to land.
    assert events.count("room") >= 2 and events[-1] == "ended"
    refused = emulator.state.counters["429"]
    assert refused > 0 if not told else refused == 0
    ledger = json.loads((tmp_path / f"{summary['output_path'].rsplit('/', 1)[1]}.gemini-batch.json").read_text())
    assert {s["status"] for s in ledger["shards"]} == {"created"} and ledger["version"] == 4
    assert {s["tokens"] for s in ledger["shards"]} == {32}  # each shard's estimate, kept for the next waves


def test_waves_in_the_worker_when_not_deferrable(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows, _, events = _run(tmp_path, max_concurrent_jobs=2, deferrable=False)
    assert dag_run.state == "success" and _each_row_once(rows) and events == []  # never deferred
    assert len(emulator.state.store.batches) == 7 and _most_unfinished_at_once(emulator) == 2


@pytest.mark.parametrize("on_deadline", ["online", "cancel"])
def test_shards_still_waiting_at_the_deadline_are_never_created_and_their_rows_go_where_configured(
        airflow_db, emulator, gemini_conn, tmp_path, on_deadline):
    emulator.configure("batches", outcome="stall")  # the first wave's job never ends on its own
    dag_run, rows, _, events = _run(tmp_path, max_concurrent_jobs=2, deadline=1.0, on_deadline=on_deadline)

    assert _each_row_once(rows) and events == ["deadline"]
    jobs = list(emulator.state.store.batches.values())
    assert len(jobs) == 2 and {job.resource["state"] for job in jobs} == {"BATCH_STATE_CANCELLED"}
    by_key = {r["key"]: r for r in rows}
    waited = [r for r in rows if "never created" in (r.get("error") or {}).get("message", "")]
    if on_deadline == "online":
        assert dag_run.state == "success" and {r["status"] for r in rows} == {"succeeded"}
        assert {r["path"] for r in rows} == {"online"} and not waited  # every row answered online
    else:
        assert dag_run.state == "failed" and {r["status"] for r in rows} == {"cancelled"}
        assert len(waited) == 5 and all(by_key[r["key"]]["path"] == "batch" for r in waited)
