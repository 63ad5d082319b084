"""GeminiBatchJobTrigger against the emulator: it waits, never creates, never carries the key."""

from __future__ import annotations

import io
import json

import pytest

from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger
from tests.conftest import API_KEY

pytestmark = pytest.mark.integration


def _job(client, rows=2):
    data = "".join(
        json.dumps({"key": str(i), "request": {"contents": [{"parts": [{"text": f"Row {i}."}]}]}}) + "\n"
        for i in range(rows)
    )
    src = client.files.upload(file=io.BytesIO(data.encode()), config={"mime_type": "jsonl"}).name
    return client.batches.create(model="gemini-2.5-flash", src=src).name


async def _events(trigger):
    return [event.payload async for event in trigger.run()]


def test_serializes_conn_id_not_key():
    trigger = GeminiBatchJobTrigger(job_names=["batches/a"], gemini_conn_id="gemini_default", poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "gemini_batch_provider.triggers.batch.GeminiBatchJobTrigger"
    assert kwargs == {"job_names": ["batches/a"], "gemini_conn_id": "gemini_default", "poll_interval": 5,
                      "max_poll_interval": 300.0, "max_poll_errors": 10, "deadline": None,
                      "cancel_on_kill": False, "wave": False, "wake_at": None}
    assert GeminiBatchJobTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_waits_for_every_job_and_yields_one_event(client, emulator, gemini_conn, capsys):
    # Pending long enough that the first poll sees the jobs unanswered, however slowly they were created.
    emulator.configure("batches", pending_s=1.5)
    names = [_job(client), _job(client, rows=3)]
    jobs_before = len(emulator.state.store.batches)
    trigger = GeminiBatchJobTrigger(job_names=names, gemini_conn_id=gemini_conn, poll_interval=0.1)
    [event] = await _events(trigger)
    assert event["status"] == "ended" and event["message"] == "all batch jobs succeeded"
    # Progress from batchStats while the jobs were pending/running (the SDK does not give them);
    # Airflow's logging writes the trigger's log lines to stdout here.
    assert f"{names[1]}: JOB_STATE_PENDING, 0/3 requests done (0.0%), 0 failed, 3 pending" in capsys.readouterr().out
    assert [j["name"] for j in event["jobs"]] == names
    assert all(j["state"] == "JOB_STATE_SUCCEEDED" for j in event["jobs"])
    assert all(j["output_file"] == f"files/batch-{j['name'].removeprefix('batches/')}" for j in event["jobs"])
    assert len(emulator.state.store.batches) == jobs_before  # the trigger created nothing
    assert API_KEY not in json.dumps(event)


async def test_a_cancelled_job_ends_the_wait_and_is_named(client, gemini_conn):
    name = _job(client)
    client.batches.cancel(name=name)
    [event] = await _events(GeminiBatchJobTrigger(job_names=[name], gemini_conn_id=gemini_conn, poll_interval=0.1))
    assert event["status"] == "ended"
    assert event["jobs"][0]["state"] == "JOB_STATE_CANCELLED"
    assert f"{name} JOB_STATE_CANCELLED" in event["message"]


async def test_a_wave_wait_ends_when_one_job_ends_or_at_its_wake_time(client, emulator, gemini_conn):
    import time

    quick = _job(client)
    client.batches.cancel(name=quick)
    emulator.configure("batches", outcome="stall")
    stalled = _job(client)
    [event] = await _events(GeminiBatchJobTrigger(job_names=[stalled, quick], gemini_conn_id=gemini_conn,
                                                  poll_interval=0.1, wave=True))
    assert event["status"] == "room"  # one ended: room for the next wave, though the other still runs
    [still, ended] = [j["state"] for j in event["jobs"]]
    assert still in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING") and ended == "JOB_STATE_CANCELLED"

    wake_at = time.time() + 0.5
    [event] = await _events(GeminiBatchJobTrigger(job_names=[stalled], gemini_conn_id=gemini_conn, poll_interval=5,
                                                  wave=True, wake_at=wake_at))
    assert event["status"] == "room" and time.time() >= wake_at  # none ended: it woke when the API said to try
    [event] = await _events(GeminiBatchJobTrigger(job_names=[], gemini_conn_id=gemini_conn, poll_interval=5,
                                                  wave=True, wake_at=time.time() + 0.2))
    assert event == {"status": "room", "message": "room may have freed in the batch quota", "jobs": []}


async def test_a_missing_job_fails_fast(gemini_conn):
    trigger = GeminiBatchJobTrigger(job_names=["batches/nosuchjob"], gemini_conn_id=gemini_conn, poll_interval=0.1)
    [event] = await _events(trigger)
    assert event["status"] == "error" and "1 errors in a row" in event["message"] and "404" in event["message"]


async def test_transient_errors_are_tolerated_up_to_the_limit(monkeypatch):
    from gemini_batch_provider.emulator import free_port

    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused each poll
    conn = {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": unreachable}}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DOWN", json.dumps(conn))
    trigger = GeminiBatchJobTrigger(job_names=["batches/x"], gemini_conn_id="gemini_down", poll_interval=0.01,
                                    max_poll_errors=2)
    [event] = await _events(trigger)
    assert event["status"] == "error" and "3 errors in a row" in event["message"]
    assert API_KEY not in event["message"]


async def test_a_passed_deadline_yields_the_jobs_last_states_and_cancels_nothing(client, emulator, gemini_conn):
    import time

    emulator.configure("batches", pending_s=30)  # the job stays pending past the deadline
    name = _job(client)
    trigger = GeminiBatchJobTrigger(job_names=[name], gemini_conn_id=gemini_conn, poll_interval=0.1,
                                    deadline=time.time() + 0.5)
    [event] = await _events(trigger)
    assert event["status"] == "deadline"
    assert event["jobs"] == [{"name": name, "state": "JOB_STATE_PENDING", "output_file": None}]
    assert client.batches.get(name=name).state.value == "JOB_STATE_PENDING"  # waiting only; the task decides


@pytest.mark.parametrize("cancel_on_kill", [True, False])
async def test_on_kill_cancels_only_for_the_task_that_created_the_jobs(client, emulator, gemini_conn, cancel_on_kill):
    emulator.configure("batches", outcome="stall")
    name = _job(client)
    trigger = GeminiBatchJobTrigger(job_names=[name], gemini_conn_id=gemini_conn, cancel_on_kill=cancel_on_kill)
    await trigger.on_kill()
    expected = "JOB_STATE_CANCELLED" if cancel_on_kill else "JOB_STATE_PENDING"
    assert client.batches.get(name=name).state.value == expected
