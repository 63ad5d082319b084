"""Faults through a real Airflow deployment: a lost worker, a killed triggerer, two triggerers, an
emulator restarted mid-job. Each run must succeed with exactly one batch job created and every
input row in the output once.

The tests share one stack: a test that kills, restarts or adds a component puts the stack back as it
found it when it ends, pass or fail (``components_restored``), and each run has input, output and
a batch job of its own."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from google import genai
from google.genai import types

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import Stack, services_reachable  # noqa: E402

pytestmark = pytest.mark.e2e

DAG_ID = "gemini_faults"
WAVES_DAG_ID = "gemini_faults_waves"
ROWS = [{"id": f"row-{i}", "text": f"Row {i} talks about topic {i % 7}. It has a second sentence."} for i in range(40)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A triggerer whose heartbeat is 15 s old is taken for dead, and its triggers go to a live one
    # (Airflow's default is 30 s): the tests that kill or stall one wait for that.
    # A trigger's on_kill asks the task's state of the Execution API, which a triggerer serves in
    # its own process and imports and builds on the first call (about 3 s of CPU), over the default
    # 30 s on_kill timeout when the whole suite runs on two cores. Timed out, on_kill does nothing
    # and the test would not see which way it went.
    env = {"AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15", "AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT": "300"}
    # On PostgreSQL, as a deployment runs: a component paused mid-write on SQLite would hold the
    # whole database's lock, and no other triggerer could take its trigger over.
    postgres = not services_reachable()
    if not postgres and os.environ.get("GEMINI_BATCH_E2E_DISTRIBUTED") == "require":
        pytest.fail(f"PostgreSQL was required but {services_reachable()} did not answer")
    with Stack(tmp_path_factory.mktemp("airflow"), dags_folder=Path(__file__).parent / "dags", env=env,
               postgres=postgres,
               emulator_args=("--batch-pending-seconds", "4", "--batch-running-seconds", "6")) as running:
        running.wait_for_dag(DAG_ID)
        running.wait_for_dag(WAVES_DAG_ID)
        yield running


@pytest.fixture
def components_restored(stack):
    """For a test that kills, restarts or adds components: the shared stack's components are put back
    as they were once the test ends."""
    yield
    stack.restore()


def _client(stack):
    return genai.Client(api_key="emulator-demo-key", http_options=types.HttpOptions(base_url=stack.emulator_url))


def _start(stack, name, dag_id=DAG_ID, **conf):
    source, output = stack.home / f"{name}.jsonl", stack.home / "results" / f"{name}.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return stack.trigger(dag_id, conf={"in": str(source), "out": str(output), **conf}), output


def _wait_for_state(stack, run_id, state, timeout=120, dag_id=DAG_ID, try_number=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [ti] = stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        if ti["state"] == state and try_number in (None, ti["try_number"]):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the task of {run_id} was never {state}" + (f" in try {try_number}" if try_number else ""))


def _check(stack, run_id, output, dag_id=DAG_ID, shards=1):
    result = stack.wait_for_run(dag_id, run_id, timeout=300)
    assert result["state"] == "success", stack.task_log(dag_id, run_id, "batch")
    client = _client(stack)  # kept in a name: a client collected mid-listing closes its connection
    jobs = [job for job in client.batches.list(config={"page_size": 100}) if run_id in (job.display_name or "")]
    # exactly one job per shard: nothing paid twice
    assert len(jobs) == len({job.display_name.split()[-2] for job in jobs}) == shards, [job.name for job in jobs]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in ROWS)  # every row, once
    assert all(r["status"] == "succeeded" for r in rows)
    return result


def _trigger_log_text(stack, run_id):
    return "".join(path.read_text() for path in stack.trigger_logs(DAG_ID, run_id, "batch"))


def _wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.3)


def _wait_for_trigger_log(stack, run_id, text, timeout=60):
    """Wait until the run's trigger has logged ``text``."""
    try:
        _wait_for(lambda: text in _trigger_log_text(stack, run_id), f"the trigger of {run_id} to log {text!r}",
                  timeout)
    except TimeoutError as exc:  # what the trigger did log, to tell why
        raise TimeoutError(f"{exc}; its logs end with:\n{_trigger_log_text(stack, run_id)[-3000:]}") from None


def test_a_worker_killed_right_after_the_create_call(stack):
    run_id, output = _start(stack, "killed-worker", kill_worker_after_create=True)
    result = _check(stack, run_id, output)
    # The first try died, the second reattached. Its try number says so; the states seen every second
    # may miss the moment the task was up for retry.
    ti = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/batch")
    assert ti["try_number"] == 2 and result["state"] == "success"
    assert "found by display name" in stack.task_log(DAG_ID, run_id, "batch", try_number=2)


@pytest.mark.usefixtures("components_restored")
def test_the_triggerer_killed_mid_wait_and_restarted(stack):
    run_id, output = _start(stack, "killed-triggerer")
    _wait_for_state(stack, run_id, "deferred")
    _wait_for_trigger_log(stack, run_id, "requests done")  # the trigger is polling
    stack.kill("triggerer")
    stack.restart("triggerer")
    _check(stack, run_id, output)
    logs = _trigger_log_text(stack, run_id)
    assert logs.count(") starting") >= 2  # the restarted triggerer ran the same trigger again


@pytest.mark.usefixtures("components_restored")
def test_a_night_in_waves_with_the_worker_and_the_triggerer_killed_once_each(stack):
    """4 shards, one job at a time: the worker dies right after the second shard's create (in the
    task resumed for the second wave), and the triggerer while the retry waits for room."""
    run_id, output = _start(stack, "waves", WAVES_DAG_ID, kill_worker_at_shard=2)
    _wait_for_state(stack, run_id, "deferred", timeout=180, dag_id=WAVES_DAG_ID, try_number=2)
    stack.kill("triggerer")
    stack.restart("triggerer")
    _check(stack, run_id, output, WAVES_DAG_ID, shards=4)
    retry = stack.task_log(WAVES_DAG_ID, run_id, "batch", try_number=2)
    assert "found by display name" in retry  # the second shard's job, created by the killed try
    assert "wait for room in the batch quota" in retry


@pytest.mark.usefixtures("components_restored")
def test_a_stalled_triggerer_hands_its_trigger_over_without_cancelling_the_job(stack):
    """Airflow 3.3 calls on_kill on a triggerer that finds its trigger gone to another; the task
    still waits there, so its job must go on. The emulator is held still meanwhile, so that the job
    outlasts the handover (a held job resumes where it was)."""
    run_id, output = _start(stack, "stalled-triggerer")
    _wait_for_state(stack, run_id, "deferred")
    _wait_for_trigger_log(stack, run_id, "requests done")
    stack.pause("emulator")
    stack.pause("triggerer")  # its heartbeat stops; a second triggerer takes the trigger over
    try:
        stack.add_triggerer()
        _wait_for(lambda: len(stack.trigger_logs(DAG_ID, run_id, "batch")) >= 2, "the trigger to move", timeout=120)
        stack.resume("triggerer")  # it finds the trigger gone, and Airflow calls on_kill
        # Minutes: a triggerer resumed on a loaded machine takes a while to heartbeat, reload its
        # triggers and ask the Execution API for the task's state.
        _wait_for_trigger_log(stack, run_id, "the task still waits, so its jobs go on", timeout=300)
    finally:
        stack.resume("triggerer")
        stack.resume("emulator")
    _check(stack, run_id, output)  # succeeded, with its one job: not cancelled


@pytest.mark.usefixtures("components_restored")
def test_two_triggerers_at_once(stack):
    stack.add_triggerer()  # stopped again by the fixture
    runs = [_start(stack, f"two-triggerers-{i}") for i in range(3)]
    for run_id, output in runs:
        _check(stack, run_id, output)


@pytest.mark.usefixtures("components_restored")
def test_the_emulator_restarted_mid_job(stack):
    run_id, output = _start(stack, "restarted-emulator")
    _wait_for_state(stack, run_id, "deferred")
    _wait_for_trigger_log(stack, run_id, "requests done")
    stack.kill("emulator")  # its jobs and files are saved in its data folder
    # Polls fail meanwhile: transient errors, tolerated, and the wait goes on.
    _wait_for_trigger_log(stack, run_id, "poll error 1 of 10 tolerated")
    stack.restart("emulator")
    _check(stack, run_id, output)


def test_marking_the_deferred_task_failed_cancels_its_job(stack):
    run_id, _ = _start(stack, "killed-by-user")
    _wait_for_state(stack, run_id, "deferred")
    _wait_for_trigger_log(stack, run_id, "requests done")  # Airflow calls on_kill only for a trigger already running
    stack._request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/batch", {"new_state": "failed"})
    client = _client(stack)
    deadline = time.monotonic() + 300  # on_kill's first question to the Execution API is slow (see ``stack``)
    while time.monotonic() < deadline:
        [job] = [j for j in client.batches.list(config={"page_size": 100}) if run_id in (j.display_name or "")]
        if job.state.value == "JOB_STATE_CANCELLED":
            return  # the trigger's on_kill cancelled the job the task had created
        time.sleep(0.5)
    raise AssertionError(f"{job.name} is still {job.state.value}")
