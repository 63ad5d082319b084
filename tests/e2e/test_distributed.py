"""The example DAGs on the topology of docker-compose.yaml, run natively: PostgreSQL as the metadata
database, CeleryExecutor with Redis as the broker, a Celery worker, two triggerers, plus the
api-server, scheduler and dag-processor, each its own process.

Runs when PostgreSQL and Redis answer on loopback, else is skipped; with
``GEMINI_BATCH_E2E_DISTRIBUTED=require`` (as ``.ci/run`` sets it) unreachable services fail the run.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import NO_SCHEDULED_RUNS, Stack, services_reachable  # noqa: E402

pytestmark = pytest.mark.e2e

API_KEY = "e2e-distributed-key-9d3e7a"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    down = services_reachable()
    if down:
        if os.environ.get("GEMINI_BATCH_E2E_DISTRIBUTED") == "require":
            pytest.fail(f"the distributed run was required but {', '.join(down)} did not answer")
        pytest.skip(f"{', '.join(down)} not reachable")
    with Stack(tmp_path_factory.mktemp("airflow-distributed"), api_key=API_KEY, distributed=True,
               env={**NO_SCHEDULED_RUNS, "GEMINI_BATCH_POLL_INTERVAL": "1"},
               emulator_args=("--batch-pending-seconds", "1", "--batch-running-seconds", "2")) as running:
        for dag_id in ("gemini_batch_nightly", "gemini_urgent", "gemini_vertex_batch"):
            running.wait_for_dag(dag_id)
        yield running


def rows_of(summary: dict) -> list[dict]:
    return [json.loads(line) for line in Path(summary["output_path"]).read_text().splitlines()]


def test_the_example_dags_pass_on_postgres_redis_celery_and_two_triggerers(stack):
    # The three DAGs at once, the nightly one twice: four runs share the worker and the triggerers.
    # Each nightly run has an output folder (and answer store) of its own, so each sends its rows and
    # defers, whichever lands first.
    runs = [("gemini_batch_nightly", stack.trigger("gemini_batch_nightly", conf={
                "row_limit": 120, "output_dir": str(stack.home / "nightly-120")})),
            ("gemini_batch_nightly", stack.trigger("gemini_batch_nightly", conf={
                "row_limit": 80, "output_dir": str(stack.home / "nightly-80")})),
            ("gemini_urgent", stack.trigger("gemini_urgent", conf={"topic_limit": 60})),
            ("gemini_vertex_batch", stack.trigger("gemini_vertex_batch"))]
    results = {run_id: stack.wait_for_run(dag_id, run_id, timeout=600) for dag_id, run_id in runs}

    for dag_id, run_id in runs:
        task_ids = list(results[run_id]["task_states_seen"])
        assert results[run_id]["state"] == "success", [stack.task_log(dag_id, run_id, t) for t in task_ids]
        # Every task went through Celery, on this stack's queue.
        for ti in stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            assert ti["queue"] == stack.name and ti["state"] == "success", ti

    nightly = [stack.xcom(d, r, "summarize_modules") for d, r in runs if d == "gemini_batch_nightly"]
    assert [s["rows"] for s in nightly] == [120, 80]
    for summary in nightly:
        rows = rows_of(summary)
        assert len({r["key"] for r in rows}) == len(rows) == summary["rows"]
        assert all(r["status"] == "succeeded" for r in rows)

    [(_, urgent_run)] = [(d, r) for d, r in runs if d == "gemini_urgent"]
    urgent = stack.xcom("gemini_urgent", urgent_run, "explain_topics")
    assert urgent["path"] == "online" and urgent["counts"]["succeeded"] == 60 == len(rows_of(urgent))

    [(_, vertex_run)] = [(d, r) for d, r in runs if d == "gemini_vertex_batch"]
    vertex = stack.xcom("gemini_vertex_batch", vertex_run, "summarize_builtins")
    names = {n for n in vars(builtins) if not n.startswith("_") and (getattr(builtins, n).__doc__ or "").strip()}
    assert {r["key"] for r in rows_of(vertex)} == names

    # The batch waits happened in the triggerers (each wrote the trigger's log), not in worker slots.
    for dag_id, run_id in runs:
        task_id = {"gemini_batch_nightly": "summarize_modules", "gemini_vertex_batch": "summarize_builtins"}.get(dag_id)
        if task_id:
            [trigger_log] = stack.trigger_logs(dag_id, run_id, task_id)
            assert "ended: JOB_STATE_SUCCEEDED" in trigger_log.read_text()
    # Both triggerers were alive and heartbeating in the metadata database throughout.
    [(triggerers,)] = stack.query("SELECT count(*) FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
    assert triggerers == 2

    for path in stack.home.joinpath("logs").rglob("*.log"):
        assert API_KEY not in path.read_text(errors="replace"), path


def test_the_batches_page_answers_422_not_500_to_a_nul_byte_on_postgres(stack):
    signed_in = {"Authorization": f"Bearer {stack.token()}"}

    def status(query: str) -> int:
        return stack.status(f"/gemini-batches/api/batches?{query}", signed_in)

    # PostgreSQL refuses a NUL byte in text ("invalid byte sequence"); the page refuses it first.
    assert [status(q) for q in ("dag_id=%00", "state=%00", "dag_id=gemini%00batch")] == [422, 422, 422]
    assert status("dag_id=gemini_batch_nightly&state=success") == 200
